//! The block device: an in-memory disk and device threads that "DMA" into
//! and out of bio pages, slowly and observably, then complete the bio.
//!
//! This file holds the device's API, its queue and its counts; the disk is
//! in `disk.rs`, the bvec storage a bio travels in in `storage.rs`, the
//! gates and the submitter's one-shot wait in `wait.rs`, and what a device
//! thread does with a request (transfer, checksum, end the bio) in
//! `worker.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use gupio::bio::{BioOp, BioStatus};
use gupio::release::{CompletedBio, Completion, ReleaseError, SubmittedBio};
use gupio::sync::atomic::{AtomicUsize, Ordering};

use crate::memory::lock;
use crate::Memory;

mod disk;
mod storage;
mod wait;
mod worker;

pub use disk::Disk;
pub use storage::OwnedBvecs;
pub use wait::Gate;
use wait::GateSpec;
pub(crate) use wait::{Waiter, WaiterSet};
pub use worker::bio_checksums;

/// How the device behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Device threads; 0 makes the device synchronous: requests queue up
    /// and run on the thread that calls [`Device::process_one`] (or waits).
    pub threads: usize,
    /// Pause after each chunk of a transfer (a slow, observable DMA).
    pub latency: Duration,
    /// Bytes copied per chunk (a multiple of 8).
    pub chunk_bytes: usize,
    /// The most chunks one bio is cut into: large bios use larger chunks,
    /// so a 2 MiB write does not take 2 MiB / `chunk_bytes` pauses.
    pub max_chunks: usize,
}

impl DeviceConfig {
    /// No threads, no latency: for deterministic tests and the fuzzer.
    pub const fn synchronous() -> Self {
        Self {
            threads: 0,
            latency: Duration::ZERO,
            chunk_bytes: 1024,
            max_chunks: 64,
        }
    }

    /// `threads` device threads pausing `latency` after each chunk.
    pub const fn threaded(threads: usize, latency: Duration) -> Self {
        Self {
            threads,
            latency,
            chunk_bytes: 1024,
            max_chunks: 64,
        }
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self::threaded(2, Duration::ZERO)
    }
}

/// A misbehaviour to inject into the next request the device processes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Transfer nothing and complete with this error status.
    Fail(BioStatus),
    /// Transfer, then report the completion twice (a buggy driver): the
    /// second report must be refused, and nothing released twice.
    CompleteTwice,
}

/// A write whose bytes changed while the device wrote them: the checksum
/// the filesystem computed when it submitted the page does not match what
/// reached the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnstableWrite {
    /// The first sector of the page.
    pub sector: u64,
    /// The checksum the filesystem computed at submission.
    pub expected: u64,
    /// The checksum of the bytes written.
    pub written: u64,
}

impl fmt::Display for UnstableWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unstable write at sector {}: checksum {:#018x} at submission, {:#018x} on disk",
            self.sector, self.expected, self.written
        )
    }
}

/// What the device did, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Read bios completed.
    pub reads: usize,
    /// Write bios completed.
    pub writes: usize,
    /// Bytes copied from disk into pages.
    pub bytes_read: usize,
    /// Bytes copied from pages to disk.
    pub bytes_written: usize,
    /// Bios failed (injected errors, and requests the device refused).
    pub failed: usize,
    /// Pages written whose checksum did not match (unstable writes).
    pub unstable_pages: usize,
    /// Second completions the completion path refused.
    pub double_completions: usize,
}

/// What a request's submitter runs when the device completes it (its
/// `bi_end_io`), on the device thread: it owns the [`CompletedBio`] and
/// must release it.
pub type EndIo = Box<dyn FnOnce(CompletedBio<OwnedBvecs>) + Send>;

struct Request {
    bio: SubmittedBio<OwnedBvecs>,
    completion: Completion,
    checksums: Option<Vec<u64>>,
    end_io: EndIo,
}

#[derive(Default)]
struct Queue {
    requests: VecDeque<Request>,
    busy: usize,
    stopping: bool,
}

struct Shared {
    memory: Arc<Memory>,
    disk: Disk,
    config: DeviceConfig,
    queue: Mutex<Queue>,
    work: Condvar,
    idle: Condvar,
    faults: Mutex<VecDeque<Fault>>,
    gates: Mutex<Vec<GateSpec>>,
    unstable: Mutex<Vec<UnstableWrite>>,
    recorded: Mutex<std::collections::BTreeMap<u64, (usize, u64)>>,
    completion_errors: Mutex<Vec<ReleaseError>>,
    reads: AtomicUsize,
    writes: AtomicUsize,
    bytes_read: AtomicUsize,
    bytes_written: AtomicUsize,
    failed: AtomicUsize,
    unstable_pages: AtomicUsize,
    double_completions: AtomicUsize,
}

/// The simulated block device: a [`Disk`] and device threads that take
/// submitted bios from a queue, copy data between the disk and the bios'
/// pages in chunks with a pause after each (so a transfer is slow and
/// other threads see it half done), then complete the bio from the device
/// thread: [`SubmittedBio::end`] with the bio's [`Completion`], and the
/// submitter's [`EndIo`] with the [`CompletedBio`].
///
/// Writes may carry one checksum per page, computed by the filesystem when
/// it submitted them; the device recomputes each over what it wrote and
/// counts a mismatch as an [`UnstableWrite`].
///
/// With [`DeviceConfig::threads`] 0 the device is synchronous: requests
/// run when someone calls [`Device::process_one`] or waits for one.
///
/// ```
/// use std::sync::{Arc, mpsc};
/// use gupio::prelude::*;
/// use gupio_host::{Device, DeviceConfig, Memory, OwnedBvecs};
///
/// let memory = Arc::new(Memory::new(4).unwrap());
/// let device = Device::new(memory.clone(), 64, DeviceConfig::default());
/// let page = memory.alloc_folio(0, true).unwrap(); // a kernel buffer
/// let mut bio = Bio::new(OwnedBvecs::with_capacity(1), BioOp::Read, Sector(8), BioLimits::default());
/// let _ = bio.add_page(page, 4096, 0, Origin::Referenced).unwrap();
/// let (done, finished) = mpsc::channel();
/// let mem = memory.clone();
/// device.submit(SubmittedBio::submit(bio).unwrap(), None, Box::new(move |bio| {
///     let released = bio.release(&Tracker::new(&*mem), false); // frees the buffer
///     done.send(released.result.is_ok()).unwrap();
/// }));
/// assert!(finished.recv().unwrap());
/// assert!(memory.allocated_folios().is_empty());
/// ```
pub struct Device {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Device {
    /// A device over `memory` with a fresh disk of `sectors` sectors,
    /// starting `config.threads` device threads.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(device.is_synchronous());
    /// ```
    pub fn new(memory: Arc<Memory>, sectors: u64, config: DeviceConfig) -> Self {
        let shared = Arc::new(Shared {
            memory,
            disk: Disk::new(sectors),
            config,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            faults: Mutex::new(VecDeque::new()),
            gates: Mutex::new(Vec::new()),
            unstable: Mutex::new(Vec::new()),
            recorded: Mutex::new(std::collections::BTreeMap::new()),
            completion_errors: Mutex::new(Vec::new()),
            reads: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            bytes_read: AtomicUsize::new(0),
            bytes_written: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            unstable_pages: AtomicUsize::new(0),
            double_completions: AtomicUsize::new(0),
        });
        let threads = (0..config.threads)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.run())
            })
            .collect();
        Self {
            shared,
            threads: Mutex::new(threads),
        }
    }

    /// Whether requests run only when processed or waited for.
    pub fn is_synchronous(&self) -> bool {
        self.shared.config.threads == 0
    }

    /// The disk.
    pub fn disk(&self) -> &Disk {
        &self.shared.disk
    }

    /// The device's configuration.
    pub fn config(&self) -> DeviceConfig {
        self.shared.config
    }

    /// Queues `bio` for the device; `checksums` (writes only) holds the
    /// filesystem's checksum of each page piece of the bio, in order; the
    /// device runs `end_io` with the completed bio when it is done. Starts
    /// the bio's [`Completion`]. A device that is shutting down runs the
    /// request on the caller's thread.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use gupio::prelude::*;
    /// use gupio_host::{Device, DeviceConfig, Memory, OwnedBvecs};
    /// let memory = Arc::new(Memory::new(4).unwrap());
    /// let device = Device::new(memory.clone(), 64, DeviceConfig::synchronous());
    /// let page = memory.alloc_folio(0, true).unwrap();
    /// memory.frame(page).unwrap().store(0, 7);
    /// let mut bio = Bio::new(OwnedBvecs::with_capacity(1), BioOp::Write, Sector(8), BioLimits::default());
    /// let _ = bio.add_page(page, 4096, 0, Origin::Borrowed).unwrap();
    /// let sums = gupio_host::device::bio_checksums(&memory, &bio);
    /// device.submit(SubmittedBio::submit(bio).unwrap(), Some(sums), Box::new(|_| {}));
    /// device.wait_idle(); // a synchronous device runs it here
    /// assert_eq!(device.disk().read_words(8, 1).unwrap(), [7]);
    /// assert_eq!(device.stats().unstable_pages, 0);
    /// ```
    pub fn submit(
        &self,
        bio: SubmittedBio<OwnedBvecs>,
        checksums: Option<Vec<u64>>,
        end_io: EndIo,
    ) {
        let completion = Completion::new();
        // A new completion is idle: starting it cannot fail.
        let started = completion.start();
        let request = Request {
            bio,
            completion,
            checksums,
            end_io,
        };
        if let Err(error) = started {
            lock(&self.shared.completion_errors).push(error);
        }
        let mut queue = lock(&self.shared.queue);
        if queue.stopping && !self.is_synchronous() {
            drop(queue);
            self.shared.process(request);
            return;
        }
        queue.requests.push_back(request);
        drop(queue);
        self.shared.work.notify_one();
    }

    /// Runs the oldest queued request on this thread, if there is one, and
    /// says whether there was. For the synchronous device; on a threaded
    /// one it competes with the device threads.
    pub fn process_one(&self) -> bool {
        let request = {
            let mut queue = lock(&self.shared.queue);
            let Some(request) = queue.requests.pop_front() else {
                return false;
            };
            queue.busy += 1;
            request
        };
        self.shared.process(request);
        self.shared.finished_one();
        true
    }

    /// Requests queued and not yet taken by a device thread.
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).requests.len()
    }

    /// Waits until no request is queued or in progress (a synchronous
    /// device processes them all on this thread).
    pub fn wait_idle(&self) {
        if self.is_synchronous() {
            while self.process_one() {}
            return;
        }
        let mut queue = lock(&self.shared.queue);
        while !queue.requests.is_empty() || queue.busy > 0 {
            queue = self
                .shared
                .idle
                .wait(queue)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Injects `fault` into the next request processed (faults queue up).
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Sets a gate in the next transfer of kind `op`: the device stops
    /// after `after_chunks` chunks of it until the returned [`Gate`] is
    /// released (or dropped). See [`Gate::wait_reached`] for an example.
    pub fn gate(&self, op: BioOp, after_chunks: usize) -> Gate {
        let (reached_tx, reached_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        lock(&self.shared.gates).push(GateSpec {
            op,
            after_chunks,
            reached: reached_tx,
            release: release_rx,
        });
        Gate {
            reached: reached_rx,
            release: release_tx,
        }
    }

    /// What the device did so far.
    pub fn stats(&self) -> DeviceStats {
        let s = &self.shared;
        // Relaxed: statistics; they order nothing.
        let read = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        DeviceStats {
            reads: read(&s.reads),
            writes: read(&s.writes),
            bytes_read: read(&s.bytes_read),
            bytes_written: read(&s.bytes_written),
            failed: read(&s.failed),
            unstable_pages: read(&s.unstable_pages),
            double_completions: read(&s.double_completions),
        }
    }

    /// Scrubs the disk: every block a checksummed write reached whose
    /// bytes on disk now differ from the checksum recorded with its last
    /// write (what a checksumming filesystem or T10 PI reports when the
    /// block is read back). A block torn by an unstable write and then
    /// written again whole is not reported.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(device.scrub().is_empty());
    /// ```
    pub fn scrub(&self) -> Vec<UnstableWrite> {
        let recorded = lock(&self.shared.recorded).clone();
        recorded
            .into_iter()
            .filter_map(|(sector, (words, expected))| {
                let written = self.shared.disk.checksum(sector, words).ok()?;
                (written != expected).then_some(UnstableWrite {
                    sector,
                    expected,
                    written,
                })
            })
            .collect()
    }

    /// Every unstable write seen so far.
    pub fn unstable_writes(&self) -> Vec<UnstableWrite> {
        lock(&self.shared.unstable).clone()
    }

    /// Errors the completion path returned to the device (a second
    /// completion refused, for one), oldest first.
    pub fn completion_errors(&self) -> Vec<ReleaseError> {
        lock(&self.shared.completion_errors).clone()
    }

    /// Removes and returns the errors [`completion_errors`](Self::completion_errors) lists.
    pub fn take_completion_errors(&self) -> Vec<ReleaseError> {
        std::mem::take(&mut *lock(&self.shared.completion_errors))
    }

    /// Processes what is queued, stops the device threads and joins them.
    /// Requests submitted afterwards run on the submitter's thread.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.work.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            // A device thread that panicked has nothing left to join.
            let _ = thread.join();
        }
        // A synchronous device, or a request queued during the stop.
        while self.process_one() {}
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("config", &self.shared.config)
            .field("disk", &self.shared.disk)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
