//! The machine: memory, device, page cache and processes wired together,
//! direct I/O through gupio, the deferred-release worker, and the audit.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, Sector, BIO_MAX_VECS};
use gupio::pin::{GupFlags, Tracker, UserAddr};
use gupio::release::{
    add_user_range, release_pages, set_pages_dirty, DeferredList, StableStats, SubmittedBio,
};
use gupio::sync::atomic::{AtomicUsize, Ordering};

use crate::device::{Device, DeviceConfig, EndIo, OwnedBvecs, Waiter};
use crate::memory::lock;
use crate::space::{Process, Registry};
use crate::{HostError, Memory, PageCache};

/// Bios the deferred-release list holds before completions spill into the
/// harness's overflow queue.
const DEFERRED_SLOTS: usize = 64;

mod audit;
mod deferred;
mod stable;

pub use audit::{Audit, OffBaseline};
use deferred::{Deferred, WorkerState};
pub use stable::HostStableIo;

/// How a [`Machine`] is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// Frames of memory (the zero page included).
    pub frames: usize,
    /// Sectors of disk.
    pub disk_sectors: u64,
    /// The block device.
    pub device: DeviceConfig,
    /// Whether a worker thread drains deferred releases; without one they
    /// wait for [`Machine::run_deferred`] (or [`Machine::quiesce`]).
    pub deferred_worker: bool,
}

impl MachineConfig {
    /// 256 frames, 4 MiB of disk, two device threads without latency, a
    /// deferred-release worker: enough for examples and small tests.
    ///
    /// ```
    /// assert_eq!(gupio_host::MachineConfig::small().frames, 256);
    /// ```
    pub const fn small() -> Self {
        Self {
            frames: 256,
            disk_sectors: 8192,
            device: DeviceConfig::threaded(2, std::time::Duration::ZERO),
            deferred_worker: true,
        }
    }

    /// No threads at all: a synchronous device and no worker. Everything
    /// runs on the caller's thread, in an order the caller controls.
    ///
    /// ```
    /// let config = gupio_host::MachineConfig::synchronous(64, 1024);
    /// assert_eq!(config.device.threads, 0);
    /// ```
    pub const fn synchronous(frames: usize, disk_sectors: u64) -> Self {
        Self {
            frames,
            disk_sectors,
            device: DeviceConfig::synchronous(),
            deferred_worker: false,
        }
    }
}

/// A direct I/O submitted and not yet waited for.
///
/// ```
/// use gupio::prelude::*;
/// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
/// let process = machine.spawn_process();
/// let buffer = process.mmap_anonymous(2).unwrap();
/// let pending = machine.submit_dio_read(&process, buffer, 8192, Sector(0)).unwrap();
/// // ... other work while the device runs it ...
/// assert_eq!(pending.wait(&machine).unwrap().pages, 2);
/// ```
#[must_use = "wait for the I/O, or its outcome is lost"]
pub struct PendingIo {
    waiter: Waiter<BioStatus>,
    done: DioDone,
}

impl fmt::Debug for PendingIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingIo")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl PendingIo {
    /// Whether the device has completed the I/O (reissues included), without
    /// waiting; a synchronous device is not run.
    pub fn is_complete(&self) -> bool {
        self.waiter.is_set()
    }

    /// Waits until the device completed the I/O (its pages may still wait
    /// for the deferred-release worker; [`Machine::quiesce`] waits for that).
    ///
    /// # Errors
    /// [`HostError::Io`] if the device failed it (its pages are released
    /// all the same), [`HostError::DeviceGone`].
    ///
    /// ```
    /// use gupio::prelude::*;
    /// use gupio_host::{Fault, HostError, Machine, MachineConfig};
    /// let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let buffer = process.mmap_anonymous(1).unwrap();
    /// machine.device().inject(Fault::Fail(BioStatus::Medium));
    /// let pending = machine.submit_dio_read(&process, buffer, 4096, Sector(0)).unwrap();
    /// assert_eq!(pending.wait(&machine), Err(HostError::Io { status: BioStatus::Medium }));
    /// machine.quiesce();
    /// assert!(machine.audit().is_clean(), "released all the same");
    /// ```
    pub fn wait(self, machine: &Machine) -> Result<DioDone, HostError> {
        let status = self.waiter.wait(&machine.device)?;
        if status.is_ok() {
            Ok(self.done)
        } else {
            Err(HostError::Io { status })
        }
    }
}

/// What a finished direct I/O moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DioDone {
    /// Bytes transferred (less than asked when pinning stopped short).
    pub bytes: usize,
    /// Pages pinned for it.
    pub pages: usize,
}

/// Running totals of the machine's direct I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineStats {
    /// Direct-I/O reads submitted.
    pub dio_reads: usize,
    /// Direct-I/O writes submitted.
    pub dio_writes: usize,
    /// Pages pinned by submitted direct I/O.
    pub pages_pinned: usize,
    /// Direct-I/O read completions deferred to the worker.
    pub deferred_releases: usize,
    /// Folios those deferred releases found clean under the folio lock:
    /// writeback wrote and cleaned them while a device could write into
    /// them. A deferral can also come from a completion that saw a folio
    /// clean while a writeback pass was still deciding about it (briefly
    /// clean, dirty again under the same lock hold); this counts only the
    /// real ones.
    pub folios_cleaned_under_dma: usize,
}

/// The simulated machine: [`Memory`], a block [`Device`], a [`PageCache`],
/// processes, direct I/O through gupio, and a worker for deferred releases.
///
/// Direct I/O follows Linux's path: pin the user pages with
/// [`add_user_range`] (a write pin for a read), dirty them with
/// [`set_pages_dirty`], submit, and at completion release them with
/// [`CompletedBio::complete_dio_read`](gupio::release::CompletedBio::complete_dio_read),
/// which defers to the worker if writeback cleaned a page meanwhile.
///
/// ```
/// use gupio::prelude::*;
/// use gupio_host::{Machine, MachineConfig};
///
/// let machine = Machine::new(MachineConfig::small()).unwrap();
/// let process = machine.spawn_process();
/// let buffer = process.mmap_anonymous(4).unwrap();
/// let region = machine.cache().reserve_sectors(64).unwrap();
/// let done = machine.dio_read(&process, buffer, 16384, Sector(region)).unwrap();
/// assert_eq!((done.bytes, done.pages), (16384, 4));
/// let disk = machine.device().disk().read_words(region, 2).unwrap();
/// assert_eq!(process.load(buffer, 2).unwrap(), disk);
/// machine.quiesce();
/// assert!(machine.audit().is_clean());
/// ```
pub struct Machine {
    memory: Arc<Memory>,
    device: Arc<Device>,
    cache: Arc<PageCache>,
    deferred: Arc<Deferred>,
    worker: Mutex<Option<JoinHandle<()>>>,
    processes: Registry,
    dio_reads: AtomicUsize,
    dio_writes: AtomicUsize,
    pages_pinned: AtomicUsize,
    stable_stats: Arc<StableStats>,
}

impl Machine {
    /// A machine built as `config` says.
    ///
    /// # Errors
    /// [`HostError::OutOfMemory`] if `config.frames` is 0.
    ///
    /// ```
    /// use gupio_host::{Machine, MachineConfig};
    /// assert!(Machine::new(MachineConfig::synchronous(16, 256)).is_ok());
    /// ```
    pub fn new(config: MachineConfig) -> Result<Self, HostError> {
        let memory = Arc::new(Memory::new(config.frames)?);
        let device = Arc::new(Device::new(
            memory.clone(),
            config.disk_sectors,
            config.device,
        ));
        let cache = Arc::new(PageCache::new(memory.clone(), device.clone()));
        let deferred = Arc::new(Deferred {
            memory: memory.clone(),
            list: DeferredList::new(),
            overflow: Mutex::new(Vec::new()),
            state: Mutex::new(WorkerState::default()),
            wake: Condvar::new(),
            idle: Condvar::new(),
            deferred: AtomicUsize::new(0),
            errors: Mutex::new(Vec::new()),
            stable_errors: Mutex::new(Vec::new()),
        });
        let worker = config.deferred_worker.then(|| {
            let deferred = deferred.clone();
            thread::spawn(move || deferred.run())
        });
        Ok(Self {
            memory,
            device,
            cache,
            deferred,
            worker: Mutex::new(worker),
            processes: Registry::default(),
            dio_reads: AtomicUsize::new(0),
            dio_writes: AtomicUsize::new(0),
            pages_pinned: AtomicUsize::new(0),
            stable_stats: Arc::new(StableStats::new()),
        })
    }

    /// The memory.
    pub fn memory(&self) -> &Arc<Memory> {
        &self.memory
    }

    /// The block device.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    /// The page cache.
    pub fn cache(&self) -> &Arc<PageCache> {
        &self.cache
    }

    /// A pin tracker over the machine's memory.
    pub fn tracker(&self) -> Tracker<'_, Memory> {
        Tracker::new(&self.memory)
    }

    /// A new process with an empty address space (the audit counts its
    /// PTEs' references as owned while it lives).
    ///
    /// ```
    /// # use gupio_host::{Machine, MachineConfig};
    /// let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// process.store(process.mmap_anonymous(1).unwrap(), &[1]).unwrap();
    /// assert!(machine.audit().is_clean(), "the page is the process's");
    /// drop(process);
    /// assert!(machine.memory().allocated_folios().is_empty());
    /// ```
    pub fn spawn_process(&self) -> Process {
        Process::new(
            self.memory.clone(),
            self.cache.clone(),
            self.processes.clone(),
        )
    }

    /// Submits a direct-I/O read of `len` bytes from disk `sector` into the
    /// user buffer at `addr` (the `O_DIRECT` `read` path) and returns
    /// without waiting.
    ///
    /// # Errors
    /// gupio's typed errors (a fault pinning the first page, a fragment the
    /// bio refuses, a zero-length or unaligned bio refused at submission).
    /// Nothing stays pinned after an error.
    ///
    /// ```
    /// use gupio::prelude::*;
    /// use gupio::pin::UserAddr;
    /// # use gupio_host::{HostError, Machine, MachineConfig};
    /// # let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let error = machine
    ///     .submit_dio_read(&process, UserAddr::new(0x1000), 4096, Sector(0))
    ///     .unwrap_err();
    /// assert!(matches!(error, HostError::Core(gupio::Error::Release(_))), "not mapped");
    /// assert_eq!(machine.memory().pin_stats().acquired(), 0);
    /// ```
    pub fn submit_dio_read(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
    ) -> Result<PendingIo, HostError> {
        self.submit_dio(process, addr, len, sector, BioOp::Read)
    }

    /// Submits a direct-I/O write of `len` bytes from the user buffer at
    /// `addr` to disk `sector` (the `O_DIRECT` `write` path).
    ///
    /// # Errors
    /// As [`submit_dio_read`](Self::submit_dio_read).
    ///
    /// ```
    /// use gupio::prelude::*;
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let buffer = process.mmap_zero_page(1).unwrap(); // the zero page, read-pinned
    /// let pending = machine.submit_dio_write(&process, buffer, 4096, Sector(0)).unwrap();
    /// pending.wait(&machine).unwrap();
    /// assert_eq!(machine.device().disk().read_words(0, 512).unwrap(), vec![0; 512]);
    /// ```
    pub fn submit_dio_write(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
    ) -> Result<PendingIo, HostError> {
        self.submit_dio(process, addr, len, sector, BioOp::Write)
    }

    /// A direct-I/O read, waited for.
    ///
    /// # Errors
    /// As [`submit_dio_read`](Self::submit_dio_read) and [`PendingIo::wait`].
    pub fn dio_read(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
    ) -> Result<DioDone, HostError> {
        self.submit_dio_read(process, addr, len, sector)?.wait(self)
    }

    /// A direct-I/O write, waited for.
    ///
    /// # Errors
    /// As [`submit_dio_write`](Self::submit_dio_write) and [`PendingIo::wait`].
    ///
    /// ```
    /// use gupio::prelude::*;
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let buffer = process.mmap_anonymous(1).unwrap();
    /// process.store(buffer, &[0xab; 512]).unwrap();
    /// let region = machine.cache().reserve_sectors(8).unwrap();
    /// machine.dio_write(&process, buffer, 4096, Sector(region)).unwrap();
    /// assert_eq!(machine.device().disk().read_words(region, 512).unwrap(), vec![0xab; 512]);
    /// ```
    pub fn dio_write(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
    ) -> Result<DioDone, HostError> {
        self.submit_dio_write(process, addr, len, sector)?
            .wait(self)
    }

    fn submit_dio(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
        op: BioOp,
    ) -> Result<PendingIo, HostError> {
        let tracker = self.tracker();
        let read = op == BioOp::Read;
        let guard = process.gup();
        let (bio, done) = self.pin_dio(&guard, addr, len, sector, op)?;
        drop(guard);
        if read {
            // Dirty the pages before the device may write them. A page
            // writeback cleaned is dirtied under its folio lock, which
            // writeback holds across its write: a DMA never starts under an
            // in-place write that missed this pin.
            if let Err(error) = set_pages_dirty(&tracker, &bio) {
                let _ = release_pages(&tracker, &bio, false);
                return Err(error.into());
            }
        }
        let submitted = SubmittedBio::submit(bio).map_err(|(bio, error)| {
            let _ = release_pages(&tracker, &bio, false);
            HostError::from(error)
        })?;
        let waiter = Waiter::new();
        let set = waiter.setter();
        let end_io: EndIo = if read {
            let deferred = self.deferred.clone();
            Box::new(move |completed| {
                let status = completed.status();
                deferred.complete_dio_read(completed);
                set.set(status);
            })
        } else {
            let deferred = self.deferred.clone();
            Box::new(move |completed| {
                let status = completed.status();
                let released = completed.release(&Tracker::new(&*deferred.memory), false);
                deferred.record(released.result);
                set.set(status);
            })
        };
        let counter = if read {
            &self.dio_reads
        } else {
            &self.dio_writes
        };
        // Relaxed: statistics; they order nothing.
        counter.fetch_add(1, Ordering::Relaxed);
        self.pages_pinned.fetch_add(done.pages, Ordering::Relaxed);
        self.device.submit(submitted, None, end_io);
        Ok(PendingIo { waiter, done })
    }

    /// Pins the user buffer into a new bio of `op` at `sector`, as far as
    /// it can (a short I/O if a later page fails or the bio fills up).
    pub(crate) fn pin_dio(
        &self,
        guard: &crate::space::GupGuard<'_>,
        addr: UserAddr,
        len: usize,
        sector: Sector,
        op: BioOp,
    ) -> Result<(Bio<OwnedBvecs>, DioDone), HostError> {
        let tracker = self.tracker();
        // A read lets the device write the pages: a write pin.
        let flags = match op {
            BioOp::Read => GupFlags::WRITE,
            _ => GupFlags::empty(),
        };
        let mut bio = Bio::new(
            OwnedBvecs::with_capacity(BIO_MAX_VECS),
            op,
            sector,
            BioLimits::default(),
        );
        let mut added = 0usize;
        while added < len {
            let start = UserAddr::new(addr.get().wrapping_add(added));
            match add_user_range(&tracker, guard, &mut bio, start, len - added, flags) {
                Ok(0) => break,
                Ok(more) => added += more,
                Err(error) if added == 0 => return Err(error.into()),
                // A later page failed (or the bio is full): a short I/O.
                Err(_) => break,
            }
        }
        let done = DioDone {
            bytes: usize::try_from(bio.size()).unwrap_or(usize::MAX),
            pages: bio.all_pages().count(),
        };
        Ok((bio, done))
    }

    /// Releases the deferred direct-I/O completions now, on this thread;
    /// returns how many.
    pub fn run_deferred(&self) -> usize {
        self.deferred.drain()
    }

    /// Waits until the device is idle and every deferred release is done.
    pub fn quiesce(&self) {
        loop {
            self.device.wait_idle();
            self.deferred.drain();
            self.deferred.wait_drained();
            if self.device.queued() == 0 && !self.deferred.pending() {
                self.device.wait_idle();
                if self.device.queued() == 0 && !self.deferred.pending() {
                    return;
                }
            }
        }
    }

    /// Running totals of direct I/O.
    pub fn stats(&self) -> MachineStats {
        // Relaxed: statistics; they order nothing.
        MachineStats {
            dio_reads: self.dio_reads.load(Ordering::Relaxed),
            dio_writes: self.dio_writes.load(Ordering::Relaxed),
            pages_pinned: self.pages_pinned.load(Ordering::Relaxed),
            deferred_releases: self.deferred.deferred.load(Ordering::Relaxed),
            folios_cleaned_under_dma: self.memory.stats().cleaned_under_dma,
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        lock(&self.deferred.state).stopping = true;
        self.deferred.wake.notify_all();
        if let Some(worker) = lock(&self.worker).take() {
            // A worker that panicked has nothing left to join.
            let _ = worker.join();
        }
        self.device.shutdown();
        self.deferred.drain();
    }
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("memory", &self.memory)
            .field("device", &self.device)
            .field("cache", &self.cache)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
