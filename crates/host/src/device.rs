//! The block device: an in-memory disk and device threads that "DMA" into
//! and out of bio pages, slowly and observably, then complete the bio.

use std::collections::VecDeque;
use std::fmt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use gupio::bio::{BioOp, BioStatus, BioVec, BvecStorage};
use gupio::pfn::Pfn;
use gupio::release::{CompletedBio, Completion, ReleaseError, SubmittedBio};
use gupio::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::data::{disk_pattern, SECTOR_SIZE, WORDS_PER_SECTOR};
use crate::memory::{lock, Frame};
use crate::{HostError, Memory};

/// A bio's bvec table in owned, heap-backed storage with a fixed capacity,
/// so a bio can travel to a device thread and back.
///
/// ```
/// use gupio::prelude::*;
/// use gupio_host::OwnedBvecs;
/// let mut bio = Bio::new(OwnedBvecs::with_capacity(2), BioOp::Write, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Borrowed).unwrap();
/// let _ = bio.add_page(Pfn::new(9), 4096, 0, Origin::Borrowed).unwrap();
/// let full = bio.add_page(Pfn::new(20), 4096, 0, Origin::Borrowed).unwrap_err();
/// assert_eq!(full.error(), gupio::bio::BioError::TooManyVecs { max_vecs: 2 });
/// ```
#[derive(Clone, Debug, Default)]
pub struct OwnedBvecs {
    vecs: Vec<BioVec>,
    capacity: usize,
}

impl OwnedBvecs {
    /// Empty storage for up to `capacity` bvecs.
    ///
    /// ```
    /// use gupio::embed::BvecStorage;
    /// assert_eq!(gupio_host::OwnedBvecs::with_capacity(16).capacity(), 16);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            vecs: Vec::with_capacity(capacity),
            capacity,
        }
    }
}

impl BvecStorage for OwnedBvecs {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn as_slice(&self) -> &[BioVec] {
        &self.vecs
    }

    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        &mut self.vecs
    }

    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        if self.vecs.len() >= self.capacity {
            return Err(bvec);
        }
        self.vecs.push(bvec);
        Ok(())
    }

    fn clear(&mut self) {
        self.vecs.clear();
    }
}

/// The in-memory disk: 64-bit words, each atomic, so the device threads
/// and the checks read and write it concurrently without locks.
///
/// ```
/// use gupio_host::Disk;
/// let disk = Disk::new(16);
/// disk.write_words(3, &[7; 64]).unwrap();
/// assert_eq!(disk.read_words(3, 64).unwrap(), vec![7; 64]);
/// assert!(disk.read_words(16, 1).is_err(), "past the end");
/// ```
pub struct Disk {
    words: Box<[AtomicU64]>,
}

impl Disk {
    /// A disk of `sectors` sectors, each word holding a distinct pattern
    /// ([`disk_pattern`] of its word address).
    ///
    /// ```
    /// assert_eq!(gupio_host::Disk::new(8).sectors(), 8);
    /// ```
    pub fn new(sectors: u64) -> Self {
        let words = usize::try_from(sectors)
            .unwrap_or(0)
            .saturating_mul(WORDS_PER_SECTOR);
        let words = (0..words)
            .map(|word| AtomicU64::new(disk_pattern(u64::try_from(word).unwrap_or(u64::MAX))))
            .collect();
        Self { words }
    }

    /// The disk's size in sectors.
    ///
    /// ```
    /// assert_eq!(gupio_host::Disk::new(3).sectors(), 3);
    /// ```
    pub fn sectors(&self) -> u64 {
        u64::try_from(self.words.len() / WORDS_PER_SECTOR).unwrap_or(u64::MAX)
    }

    /// The words `count` words long from the start of `sector`.
    fn range(&self, sector: u64, count: usize) -> Result<&[AtomicU64], HostError> {
        let past = || HostError::PastEndOfDisk {
            sector,
            sectors: u64::try_from(count.div_ceil(WORDS_PER_SECTOR)).unwrap_or(u64::MAX),
        };
        let start = usize::try_from(sector)
            .ok()
            .and_then(|s| s.checked_mul(WORDS_PER_SECTOR))
            .ok_or_else(past)?;
        let end = start.checked_add(count).ok_or_else(past)?;
        self.words.get(start..end).ok_or_else(past)
    }

    /// Reads `count` words from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    ///
    /// ```
    /// let disk = gupio_host::Disk::new(1);
    /// assert_eq!(disk.read_words(0, 2).unwrap().len(), 2);
    /// ```
    pub fn read_words(&self, sector: u64, count: usize) -> Result<Vec<u64>, HostError> {
        // Relaxed: data; the I/O's completion orders it for whoever waits.
        Ok(self
            .range(sector, count)?
            .iter()
            .map(|word| word.load(Ordering::Relaxed))
            .collect())
    }

    /// Writes `words` from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    ///
    /// ```
    /// let disk = gupio_host::Disk::new(1);
    /// disk.write_words(0, &[1, 2]).unwrap();
    /// assert_eq!(disk.read_words(0, 2).unwrap(), [1, 2]);
    /// ```
    pub fn write_words(&self, sector: u64, words: &[u64]) -> Result<(), HostError> {
        for (slot, &word) in self.range(sector, words.len())?.iter().zip(words) {
            // Relaxed: data; the I/O's completion orders it.
            slot.store(word, Ordering::Relaxed);
        }
        Ok(())
    }

    /// FNV-1a over `count` words from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    ///
    /// ```
    /// let disk = gupio_host::Disk::new(1);
    /// disk.write_words(0, &[5; 64]).unwrap();
    /// assert_eq!(disk.checksum(0, 64).unwrap(), gupio_host::data::fnv1a(vec![5; 64]));
    /// ```
    pub fn checksum(&self, sector: u64, count: usize) -> Result<u64, HostError> {
        Ok(crate::data::fnv1a_atomic(self.range(sector, count)?))
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("sectors", &self.sectors())
            .finish()
    }
}

/// How the device behaves.
///
/// ```
/// use gupio_host::DeviceConfig;
/// let config = DeviceConfig::synchronous();
/// assert_eq!(config.threads, 0);
/// ```
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
    ///
    /// ```
    /// assert!(gupio_host::DeviceConfig::synchronous().latency.is_zero());
    /// ```
    pub const fn synchronous() -> Self {
        Self {
            threads: 0,
            latency: Duration::ZERO,
            chunk_bytes: 1024,
            max_chunks: 64,
        }
    }

    /// `threads` device threads pausing `latency` after each chunk.
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = gupio_host::DeviceConfig::threaded(2, Duration::from_micros(5));
    /// assert_eq!(c.threads, 2);
    /// ```
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
///
/// ```
/// use gupio::bio::BioStatus;
/// use gupio_host::Fault;
/// assert_ne!(Fault::Fail(BioStatus::Medium), Fault::CompleteTwice);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Transfer nothing and complete with this error status.
    Fail(BioStatus),
    /// Transfer, then report the completion twice (a buggy driver): the
    /// second report must be refused, and nothing released twice.
    CompleteTwice,
}

/// The test's side of a gate: the device stops in the middle of its next
/// transfer of one kind until the test releases it. Lets tests force an
/// interleaving (a DMA half done while writeback runs) with no sleeps.
///
/// ```
/// use gupio::bio::BioOp;
/// use gupio_host::{Device, DeviceConfig, Memory};
/// use std::sync::Arc;
/// let device = Device::new(Arc::new(Memory::new(4).unwrap()), 64, DeviceConfig::default());
/// let gate = device.gate(BioOp::Read, 1);
/// drop(gate); // an unused gate lets its transfer through
/// ```
#[derive(Debug)]
pub struct Gate {
    reached: Receiver<()>,
    release: Sender<()>,
}

impl Gate {
    /// Blocks until the device reaches the gate.
    ///
    /// # Errors
    /// [`HostError::DeviceGone`] if the device dropped the gate unreached
    /// (it shut down).
    ///
    /// ```
    /// use gupio::bio::BioOp;
    /// use gupio_host::{Machine, MachineConfig};
    /// let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(1, &[]).unwrap();
    /// let gate = machine.device().gate(BioOp::Read, 0); // before the first chunk
    /// std::thread::scope(|s| {
    ///     let reader = s.spawn(|| machine.cache().read(&file, 0));
    ///     gate.wait_reached().unwrap(); // the fill is held at the gate
    ///     gate.release();
    ///     assert!(reader.join().unwrap().is_ok());
    /// });
    /// ```
    pub fn wait_reached(&self) -> Result<(), HostError> {
        self.reached.recv().map_err(|_| HostError::DeviceGone)
    }

    /// Lets the device go on with the transfer (see
    /// [`wait_reached`](Self::wait_reached)).
    pub fn release(self) {
        // The device may have gone: then there is nothing to release.
        let _ = self.release.send(());
    }
}

struct GateSpec {
    op: BioOp,
    after_chunks: usize,
    reached: Sender<()>,
    release: Receiver<()>,
}

impl GateSpec {
    fn stop(&self) {
        // The test may have dropped its side: then it does not care.
        if self.reached.send(()).is_ok() {
            let _ = self.release.recv();
        }
    }
}

/// A write whose bytes changed while the device wrote them: the checksum
/// the filesystem computed when it submitted the page does not match what
/// reached the disk.
///
/// ```
/// let w = gupio_host::UnstableWrite { sector: 8, expected: 1, written: 2 };
/// assert!(w.to_string().contains("sector 8"));
/// ```
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
///
/// ```
/// let stats = gupio_host::DeviceStats::default();
/// assert_eq!(stats.unstable_pages, 0);
/// ```
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
///
/// ```
/// use std::sync::Arc;
/// use gupio::prelude::*;
/// use gupio_host::{EndIo, Memory};
/// let memory = Arc::new(Memory::new(2).unwrap());
/// let end_io: EndIo = Box::new(move |bio| {
///     let _ = bio.release(&Tracker::new(&*memory), false);
/// });
/// # drop(end_io);
/// ```
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
/// thread: [`Completion::complete`], [`SubmittedBio::complete`], and the
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::default());
    /// assert!(!device.is_synchronous());
    /// ```
    pub fn is_synchronous(&self) -> bool {
        self.shared.config.threads == 0
    }

    /// The disk.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert_eq!(device.disk().sectors(), 8);
    /// ```
    pub fn disk(&self) -> &Disk {
        &self.shared.disk
    }

    /// The device's configuration.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert_eq!(device.config(), DeviceConfig::synchronous());
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(!device.process_one(), "nothing queued");
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert_eq!(device.queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        lock(&self.shared.queue).requests.len()
    }

    /// Waits until no request is queued or in progress (a synchronous
    /// device processes them all on this thread).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::default());
    /// device.wait_idle();
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Fault, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// device.inject(Fault::CompleteTwice);
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert_eq!(device.stats().reads, 0);
    /// ```
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
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(device.unstable_writes().is_empty());
    /// ```
    pub fn unstable_writes(&self) -> Vec<UnstableWrite> {
        lock(&self.shared.unstable).clone()
    }

    /// Errors the completion path returned to the device (a second
    /// completion refused, for one), oldest first.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(device.completion_errors().is_empty());
    /// ```
    pub fn completion_errors(&self) -> Vec<ReleaseError> {
        lock(&self.shared.completion_errors).clone()
    }

    /// Removes and returns the errors [`completion_errors`](Self::completion_errors) lists.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::synchronous());
    /// assert!(device.take_completion_errors().is_empty());
    /// ```
    pub fn take_completion_errors(&self) -> Vec<ReleaseError> {
        std::mem::take(&mut *lock(&self.shared.completion_errors))
    }

    /// Processes what is queued, stops the device threads and joins them.
    /// Requests submitted afterwards run on the submitter's thread.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use gupio_host::{Device, DeviceConfig, Memory};
    /// let device = Device::new(Arc::new(Memory::new(2).unwrap()), 8, DeviceConfig::default());
    /// device.shutdown();
    /// device.shutdown(); // idempotent
    /// ```
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

/// Where a transfer stands: chunks done and words since the last pause.
struct Pacer<'a> {
    shared: &'a Shared,
    gate: Option<GateSpec>,
    chunk_words: usize,
    since_pause: usize,
    chunks: usize,
}

impl Pacer<'_> {
    /// Counts `words` copied; pauses (gate, latency) at each chunk end.
    fn copied(&mut self, words: usize) {
        self.since_pause += words;
        while self.since_pause >= self.chunk_words {
            self.since_pause -= self.chunk_words;
            self.chunks += 1;
            self.pause();
        }
    }

    fn pause(&mut self) {
        if self
            .gate
            .as_ref()
            .is_some_and(|gate| gate.after_chunks == self.chunks)
        {
            if let Some(gate) = self.gate.take() {
                gate.stop();
            }
        }
        if !self.shared.config.latency.is_zero() {
            thread::sleep(self.shared.config.latency);
        }
    }
}

impl Shared {
    /// A device thread: takes requests until the device stops.
    fn run(&self) {
        loop {
            let request = {
                let mut queue = lock(&self.queue);
                loop {
                    if let Some(request) = queue.requests.pop_front() {
                        queue.busy += 1;
                        break request;
                    }
                    if queue.stopping {
                        return;
                    }
                    queue = self
                        .work
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            self.process(request);
            self.finished_one();
        }
    }

    fn finished_one(&self) {
        let mut queue = lock(&self.queue);
        queue.busy = queue.busy.saturating_sub(1);
        if queue.busy == 0 && queue.requests.is_empty() {
            self.idle.notify_all();
        }
    }

    fn take_gate(&self, op: BioOp) -> Option<GateSpec> {
        let mut gates = lock(&self.gates);
        let index = gates.iter().position(|gate| gate.op == op)?;
        Some(gates.remove(index))
    }

    /// Transfers, checks and completes one request.
    fn process(&self, request: Request) {
        let Request {
            bio,
            completion,
            checksums,
            end_io,
        } = request;
        let op = bio.bio().op();
        let fault = lock(&self.faults).pop_front();
        let mut status = match fault {
            Some(Fault::Fail(status)) => status,
            _ => BioStatus::Ok,
        };
        if status.is_ok() {
            let gate = self.take_gate(op);
            status = self.transfer(bio.bio(), gate);
            if status.is_ok() && op == BioOp::Write {
                if let Some(checksums) = &checksums {
                    self.verify(bio.bio(), checksums);
                }
            }
        }
        if status.is_err() {
            // Relaxed: a statistic; it orders nothing.
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        // The interrupt handler: report the bio done; exactly one report
        // gets to run end_io.
        let memory = &*self.memory;
        // Nothing chains to these completions, so each bio ends alone: the
        // one rule gives back a completed bio whatever the completion said.
        let ended = bio.end(&completion, status, memory);
        if fault == Some(Fault::CompleteTwice) {
            if let Err(error) = completion.complete(status, memory) {
                // Relaxed: a statistic; it orders nothing.
                self.double_completions.fetch_add(1, Ordering::Relaxed);
                lock(&self.completion_errors).push(error);
            }
        }
        let counter = match op {
            BioOp::Read => &self.reads,
            _ => &self.writes,
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = ended.result {
            lock(&self.completion_errors).push(error);
        }
        end_io(ended.bio);
    }

    /// Copies the bio's data, chunk by chunk.
    fn transfer(&self, bio: &gupio::bio::Bio<OwnedBvecs>, gate: Option<GateSpec>) -> BioStatus {
        let op = bio.op();
        if !op.has_data() {
            return BioStatus::Ok;
        }
        let config = self.config;
        let total = usize::try_from(bio.size()).unwrap_or(usize::MAX);
        let chunk_bytes = config
            .chunk_bytes
            .max(total / config.max_chunks.max(1))
            .max(8);
        let mut pacer = Pacer {
            shared: self,
            gate,
            chunk_words: chunk_bytes / 8,
            since_pause: 0,
            chunks: 0,
        };
        if pacer.gate.as_ref().is_some_and(|g| g.after_chunks == 0) {
            pacer.pause();
        }
        let mut disk_word = match usize::try_from(bio.sector().0)
            .ok()
            .and_then(|s| s.checked_mul(WORDS_PER_SECTOR))
        {
            Some(word) => word,
            None => return BioStatus::Invalid,
        };
        for piece in bio.pages() {
            let Some(frame) = piece.page().and_then(|pfn| self.memory.frame(pfn)) else {
                return BioStatus::Protection;
            };
            let (offset, len) = (piece.offset(), piece.len());
            if offset % 8 != 0 || len % 8 != 0 {
                return BioStatus::Invalid;
            }
            let first = usize::try_from(offset / 8).unwrap_or(usize::MAX);
            let words = usize::try_from(len / 8).unwrap_or(usize::MAX);
            let Some(disk) = disk_word
                .checked_add(words)
                .and_then(|end| self.disk.words.get(disk_word..end))
            else {
                return BioStatus::Invalid;
            };
            let Some(page) = frame.words().get(first..first + words) else {
                return BioStatus::Invalid;
            };
            self.copy(op, page, disk, &mut pacer);
            disk_word += words;
        }
        let (counter, bytes) = match op {
            BioOp::Read => (&self.bytes_read, total),
            _ => (&self.bytes_written, total),
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(bytes, Ordering::Relaxed);
        if let Some(gate) = pacer.gate.take() {
            // The transfer ended before the gate: stop at the end instead,
            // so the test still sees it reached.
            gate.stop();
        }
        BioStatus::Ok
    }

    /// The DMA of one page piece, word by word, pausing at chunk ends.
    fn copy(&self, op: BioOp, page: &[AtomicU64], disk: &[AtomicU64], pacer: &mut Pacer<'_>) {
        let mut done = 0;
        while done < page.len() {
            let step = (pacer.chunk_words - pacer.since_pause).min(page.len() - done);
            let range = done..done + step;
            let (Some(page), Some(disk)) = (page.get(range.clone()), disk.get(range)) else {
                return;
            };
            let (from, to) = match op {
                BioOp::Read => (disk, page),
                _ => (page, disk),
            };
            for (source, target) in from.iter().zip(to) {
                // Relaxed: DMA words; the completion's AcqRel orders the
                // whole transfer before end_io.
                target.store(source.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            done += step;
            pacer.copied(step);
        }
    }

    /// Recomputes each page piece's checksum over what reached the disk.
    fn verify(&self, bio: &gupio::bio::Bio<OwnedBvecs>, checksums: &[u64]) {
        let mut sector = bio.sector().0;
        for (piece, &expected) in bio.pages().zip(checksums) {
            let words = usize::try_from(piece.len() / 8).unwrap_or(0);
            // The device keeps the filesystem's checksum of the block (its
            // protection information, overwritten by the block's next
            // write) for a later scrub, replacing the blocks it overlaps.
            {
                let mut recorded = lock(&self.recorded);
                let sectors = |words: usize| {
                    u64::try_from(words.div_ceil(WORDS_PER_SECTOR)).unwrap_or(u64::MAX)
                };
                let end = sector.saturating_add(sectors(words));
                let overlapping: Vec<u64> = recorded
                    .range(sector.saturating_sub(64)..end)
                    .filter(|(&start, &(len, _))| start.saturating_add(sectors(len)) > sector)
                    .map(|(&start, _)| start)
                    .collect();
                for start in overlapping {
                    recorded.remove(&start);
                }
                recorded.insert(sector, (words, expected));
            }
            if let Ok(written) = self.disk.checksum(sector, words) {
                if written != expected {
                    // Relaxed: a statistic; it orders nothing.
                    self.unstable_pages.fetch_add(1, Ordering::Relaxed);
                    lock(&self.unstable).push(UnstableWrite {
                        sector,
                        expected,
                        written,
                    });
                }
            }
            sector += u64::from(piece.len()) / u64::try_from(SECTOR_SIZE).unwrap_or(1);
        }
    }
}

/// The filesystem's checksum of each page piece of `bio`, in order, over
/// the pieces' current contents (what [`Device::submit`] takes).
///
/// ```
/// use gupio::prelude::*;
/// use gupio_host::{device::bio_checksums, Memory, OwnedBvecs};
/// let memory = Memory::new(4).unwrap();
/// let page = memory.alloc_folio(0, true).unwrap();
/// let mut bio = Bio::new(OwnedBvecs::with_capacity(1), BioOp::Write, Sector(0), BioLimits::default());
/// let _ = bio.add_page(page, 4096, 0, Origin::Borrowed).unwrap();
/// assert_eq!(bio_checksums(&memory, &bio), [gupio_host::data::fnv1a(vec![0; 512])]);
/// ```
pub fn bio_checksums(memory: &Memory, bio: &gupio::bio::Bio<OwnedBvecs>) -> Vec<u64> {
    bio.pages()
        .map(|piece| {
            let first = usize::try_from(piece.offset() / 8).unwrap_or(0);
            let words = usize::try_from(piece.len() / 8).unwrap_or(0);
            piece
                .page()
                .and_then(|pfn: Pfn| memory.frame(pfn))
                .map(Frame::words)
                .and_then(|page| page.get(first..first + words))
                .map_or(0, crate::data::fnv1a_atomic)
        })
        .collect()
}

/// A one-shot slot that a bio's `end_io` fills and its submitter waits on.
pub(crate) struct Waiter<T> {
    slot: Arc<(Mutex<Option<T>>, Condvar)>,
}

/// The `end_io` side of a [`Waiter`].
pub(crate) struct WaiterSet<T> {
    slot: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Waiter<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    pub(crate) fn setter(&self) -> WaiterSet<T> {
        WaiterSet {
            slot: self.slot.clone(),
        }
    }

    fn try_take(&self) -> Option<T> {
        lock(&self.slot.0).take()
    }

    /// Whether the value is there (without taking it).
    pub(crate) fn is_set(&self) -> bool {
        lock(&self.slot.0).is_some()
    }

    /// Waits for the value; a synchronous device runs its queue meanwhile.
    pub(crate) fn wait(&self, device: &Device) -> Result<T, HostError> {
        if device.is_synchronous() {
            loop {
                if let Some(value) = self.try_take() {
                    return Ok(value);
                }
                if !device.process_one() {
                    return self.try_take().ok_or(HostError::DeviceGone);
                }
            }
        }
        let (slot, filled) = &*self.slot;
        let mut value = lock(slot);
        loop {
            if let Some(value) = value.take() {
                return Ok(value);
            }
            value = filled
                .wait(value)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl<T> WaiterSet<T> {
    pub(crate) fn set(self, value: T) {
        *lock(&self.slot.0) = Some(value);
        self.slot.1.notify_all();
    }
}

#[cfg(test)]
mod tests;
