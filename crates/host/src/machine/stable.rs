//! Stable direct-I/O writes on the simulated machine: the four
//! [`StableMode`]s of gupio-release, driven the way a kernel's direct-I/O
//! write path would drive them.

use std::sync::{Arc, Mutex, Weak};

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, Sector, BIO_MAX_VECS};
use gupio::embed::{AddressSpace, StableIo};
use gupio::pfn::Pfn;
use gupio::pin::{Tracker, UserAddr};
use gupio::release::{
    bounce_bio, bounce_piece, for_each_checksum, pinned_elsewhere, release_pages, verify_pages,
    CompletedBio, FaultChoice, Mismatch, StableError, StableMode, StablePolicy, StableStats,
    StableWrite, SubmittedBio,
};
use gupio::sync::atomic::Ordering;

use super::deferred::Deferred;
use super::{DioDone, Machine, PendingIo};
use crate::data::{fnv1a_atomic, SECTOR_SIZE};
use crate::device::{Device, EndIo, OwnedBvecs, Waiter, WaiterSet};
use crate::space::{HostWindow, Process};
use crate::{HostError, Memory};

/// The machine's [`StableIo`]: bounce pages from its allocator, word
/// copies, and the filesystem's checksum (FNV-1a over the bytes, the one
/// [`bio_checksums`](crate::device::bio_checksums) computes).
#[derive(Clone, Copy, Debug)]
pub struct HostStableIo<'m> {
    memory: &'m Memory,
}

impl<'m> HostStableIo<'m> {
    /// Stable-write I/O over `memory`.
    pub fn new(memory: &'m Memory) -> Self {
        Self { memory }
    }

    fn words(
        &self,
        pfn: Pfn,
        offset: u32,
        len: u32,
    ) -> Option<&'m [gupio::sync::atomic::AtomicU64]> {
        let first = usize::try_from(offset / 8).ok()?;
        let count = usize::try_from(len / 8).ok()?;
        self.memory
            .frame(pfn)?
            .words()
            .get(first..first.checked_add(count)?)
    }
}

impl StableIo for HostStableIo<'_> {
    type Error = HostError;

    fn alloc_bounce_page(&self) -> Result<Pfn, HostError> {
        self.memory.alloc_folio(0, false)
    }

    fn copy_page(&self, from: Pfn, to: Pfn, offset: u32, len: u32) {
        if let (Some(from), Some(to)) = (self.words(from, offset, len), self.words(to, offset, len))
        {
            for (source, target) in from.iter().zip(to) {
                // Relaxed: data words; the bio's submission orders the copy
                // before the device reads it.
                target.store(source.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        }
    }

    fn checksum(&self, pfn: Pfn, offset: u32, len: u32) -> u64 {
        self.words(pfn, offset, len).map_or(0, fnv1a_atomic)
    }
}

fn stable_error(error: StableError<HostError>) -> HostError {
    error.into()
}

impl Deferred {
    fn record_stable(&self, error: impl Into<HostError>) {
        crate::memory::lock(&self.stable_errors).push(error.into());
    }
}

impl Machine {
    /// The counts of what stable direct-I/O writes did on this machine.
    pub fn stable_stats(&self) -> &StableStats {
        &self.stable_stats
    }

    /// Submits a direct-I/O write of `len` bytes from the user buffer at
    /// `addr` to disk `sector` for a device that checksums its data: the
    /// filesystem computes a checksum of each page piece as it submits
    /// the write, and the device records it with the block. `policy`
    /// chooses how the pages the device reads are kept stable, per write
    /// ([`StablePolicy`]: a constant [`StableMode`], [`BySize`](gupio::release::BySize),
    /// a closure); with [`StableMode::WriteProtect`], `fault` says what a
    /// CPU write to the buffer does meanwhile, and a write with a page
    /// pinned elsewhere ([`pinned_elsewhere`]: a device may be writing it)
    /// is bounced instead, counted in `protect_bounced`. The I/O is done when
    /// [`PendingIo::wait`] returns, reissues included.
    ///
    /// # Errors
    /// As [`submit_dio_write`](Self::submit_dio_write); a write-protect
    /// the address space refuses ([`HostError::Stable`]); an allocation
    /// failure bouncing. Nothing stays pinned after an error.
    ///
    /// ```
    /// use gupio::prelude::*;
    /// use gupio::release::{FaultChoice, StableMode};
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let buffer = process.mmap_anonymous(2).unwrap();
    /// process.store(buffer, &[5; 1024]).unwrap();
    /// let region = machine.cache().reserve_sectors(16).unwrap();
    /// for mode in StableMode::ALL {
    ///     let io = machine.submit_stable_dio_write(&process, buffer, 8192, Sector(region), &mode, FaultChoice::Wait)?;
    ///     io.wait(&machine)?;
    /// }
    /// machine.quiesce();
    /// assert!(machine.device().scrub().is_empty());
    /// assert_eq!(machine.stable_stats().counts().pages_copied, 2, "bounce copied both pages");
    /// assert!(machine.audit().is_clean());
    /// # Ok::<(), gupio_host::HostError>(())
    /// ```
    pub fn submit_stable_dio_write<P: StablePolicy + ?Sized>(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
        policy: &P,
        fault: FaultChoice,
    ) -> Result<PendingIo, HostError> {
        let tracker = self.tracker();
        let io = HostStableIo::new(&self.memory);
        let guard = process.gup();
        let (bio, done) = self.pin_dio(&guard, addr, len, sector, BioOp::Write)?;
        // The simulated device records a checksum per block: it needs
        // stable pages. The policy chooses per bio.
        let mut mode = policy.mode(StableWrite {
            bytes: u64::from(bio.size()),
            pages: done.pages,
            stable_required: true,
        });
        if mode == StableMode::WriteProtect {
            // Write protection holds off the CPU's writers only: a page
            // someone else has pinned (a direct-I/O read into the same
            // buffer) may change under a device's DMA. Bounce that write.
            match pinned_elsewhere(&tracker, &bio) {
                Ok(false) => {}
                Ok(true) => {
                    self.stable_stats.count_protect_bounced(1);
                    mode = StableMode::Bounce;
                }
                Err(error) => {
                    let _ = release_pages(&tracker, &bio, false);
                    return Err(error.into());
                }
            }
        }
        let mut window = None;
        let bio = match mode {
            StableMode::WriteProtect => {
                // Open first, then protect: a fault that finds a protected
                // page finds the window open.
                let host = Arc::new(HostWindow::new(
                    addr,
                    done.bytes,
                    fault,
                    self.stable_stats.clone(),
                    Arc::downgrade(&self.device),
                ));
                let space = process.space();
                space.register_window(host.clone());
                let opened = host.gate().open::<HostError>();
                let protected = opened.and_then(|()| {
                    guard
                        .write_protect(addr, done.bytes)
                        .map_err(StableError::Protect)
                });
                if let Err(error) = protected {
                    host.close_and_wake();
                    space.unregister_window(&host);
                    let _ = release_pages(&tracker, &bio, false);
                    return Err(stable_error(error));
                }
                window = Some((host, space));
                bio
            }
            StableMode::Bounce => {
                let into = Bio::new(
                    OwnedBvecs::with_capacity(BIO_MAX_VECS),
                    BioOp::Write,
                    bio.sector(),
                    BioLimits::default(),
                );
                let mut release_error = None;
                match bounce_bio(&tracker, &io, bio, into, &mut |e| {
                    release_error.get_or_insert(e);
                }) {
                    Ok(bounced) => {
                        self.stable_stats.count_copied(bounced.pages_copied);
                        if let Some(error) = release_error {
                            self.deferred.record(Err(error));
                        }
                        bounced.bio
                    }
                    Err((bio, error)) => {
                        let _ = release_pages(&tracker, &bio, false);
                        return Err(stable_error(error));
                    }
                }
            }
            StableMode::ZeroCopy | StableMode::Verify => bio,
            _ => bio,
        };
        drop(guard);
        self.stable_stats.count_write(mode, done.pages);
        let mut checksums = Vec::with_capacity(bio.vcnt());
        if let Err(error) = for_each_checksum(&io, &bio, |_, sum| checksums.push(sum)) {
            let _ = release_pages(&tracker, &bio, false);
            return Err(stable_error(error));
        }
        let submitted = match SubmittedBio::submit(bio) {
            Ok(submitted) => submitted,
            Err((bio, error)) => {
                let _ = release_pages(&tracker, &bio, false);
                if let Some((host, space)) = window {
                    let _ = space.restore_write_range(addr, done.bytes);
                    host.close_and_wake();
                    space.unregister_window(&host);
                }
                return Err(HostError::from(error));
            }
        };
        let waiter = Waiter::new();
        let set = waiter.setter();
        let deferred = self.deferred.clone();
        let end_io: EndIo = match (mode, window) {
            (StableMode::WriteProtect, Some((host, space))) => Box::new(move |completed| {
                // The device has read every byte: restore the mappings,
                // then close the window and wake the writers, then unpin.
                // Completion context: the page-table lock only, never the
                // mmap lock (a waiting writer holds it for reading).
                let restored = space.restore_write_range(addr, done.bytes);
                host.close_and_wake();
                space.unregister_window(&host);
                if let Err(error) = restored {
                    deferred.record_stable(StableError::<HostError>::Protect(error));
                }
                finish(&deferred, completed, set);
            }),
            (StableMode::Verify, _) => {
                let device = Arc::downgrade(&self.device);
                let stats = self.stable_stats.clone();
                Box::new(move |completed| {
                    verify_and_reissue(&deferred, &device, &stats, completed, &checksums, set);
                })
            }
            _ => Box::new(move |completed| finish(&deferred, completed, set)),
        };
        // Relaxed: statistics; they order nothing.
        self.dio_writes.fetch_add(1, Ordering::Relaxed);
        self.pages_pinned.fetch_add(done.pages, Ordering::Relaxed);
        let sums = checksums_for_device(&self.memory, submitted.bio());
        self.device.submit(submitted, Some(sums), end_io);
        Ok(PendingIo { waiter, done })
    }

    /// A stable direct-I/O write, waited for.
    ///
    /// # Errors
    /// As [`submit_stable_dio_write`](Self::submit_stable_dio_write) and
    /// [`PendingIo::wait`].
    pub fn stable_dio_write<P: StablePolicy + ?Sized>(
        &self,
        process: &Process,
        addr: UserAddr,
        len: usize,
        sector: Sector,
        policy: &P,
        fault: FaultChoice,
    ) -> Result<DioDone, HostError> {
        self.submit_stable_dio_write(process, addr, len, sector, policy, fault)?
            .wait(self)
    }
}

/// The checksums the filesystem hands the device with the bio.
fn checksums_for_device(memory: &Memory, bio: &Bio<OwnedBvecs>) -> Vec<u64> {
    crate::device::bio_checksums(memory, bio)
}

/// Releases a completed write and tells its submitter.
fn finish(deferred: &Deferred, completed: CompletedBio<OwnedBvecs>, set: WaiterSet<BioStatus>) {
    let status = completed.status();
    let released = completed.release(&Tracker::new(&*deferred.memory), false);
    deferred.record(released.result);
    set.set(status);
}

/// [`StableMode::Verify`] at completion: checksum the still-pinned pages
/// again, write each run of changed pieces again from bounce copies, then
/// release the user's pages; the submitter is told once the reissues are
/// done too.
fn verify_and_reissue(
    deferred: &Arc<Deferred>,
    device: &Weak<Device>,
    stats: &Arc<StableStats>,
    completed: CompletedBio<OwnedBvecs>,
    checksums: &[u64],
    set: WaiterSet<BioStatus>,
) {
    let status = completed.status();
    let memory = &*deferred.memory;
    let io = HostStableIo::new(memory);
    let tracker = Tracker::new(memory);
    let mut changed: Vec<Mismatch> = Vec::new();
    if status.is_ok() {
        let bio = completed.bio();
        stats.count_verified(bio.all_pages().count());
        if let Err(error) = verify_pages(&io, bio, checksums, |m| changed.push(m)) {
            deferred.record_stable(error);
        }
    }
    // Runs of consecutive changed pieces, each one reissue.
    let mut reissues: Vec<Bio<OwnedBvecs>> = Vec::new();
    let base = completed.bio().sector().0;
    let mut last: Option<usize> = None;
    for mismatch in &changed {
        let contiguous = last.is_some_and(|index| index + 1 == mismatch.index);
        let full = reissues.last().is_none_or(|bio| bio.is_full());
        if !contiguous || full {
            let sector = base + mismatch.byte_offset / u64::try_from(SECTOR_SIZE).unwrap_or(512);
            reissues.push(Bio::new(
                OwnedBvecs::with_capacity(BIO_MAX_VECS),
                BioOp::Write,
                Sector(sector),
                BioLimits::default(),
            ));
        }
        last = Some(mismatch.index);
        if let Some(bio) = reissues.last_mut() {
            match bounce_piece(
                &tracker,
                &io,
                bio,
                mismatch.page,
                mismatch.offset,
                mismatch.len,
            ) {
                Ok(_) => stats.count_copied(1),
                Err(error) => deferred.record_stable(error),
            }
        }
    }
    // The copies are made: the user's pages can go.
    let released = completed.release(&tracker, false);
    deferred.record(released.result);
    let Some(device) = device.upgrade().filter(|_| !reissues.is_empty()) else {
        set.set(status);
        return;
    };
    let outstanding = Arc::new(Mutex::new(Outstanding {
        left: reissues.len(),
        status,
        set: Some(set),
    }));
    for bio in reissues {
        stats.count_reissue(bio.all_pages().count());
        let sums = checksums_for_device(memory, &bio);
        let (each, each_deferred) = (outstanding.clone(), deferred.clone());
        let end_io: EndIo = Box::new(move |completed| {
            let status = completed.status();
            let released = completed.release(&Tracker::new(&*each_deferred.memory), false);
            each_deferred.record(released.result);
            crate::memory::lock(&each).done(status);
        });
        match SubmittedBio::submit(bio) {
            Ok(submitted) => device.submit(submitted, Some(sums), end_io),
            Err((bio, error)) => {
                let _ = release_pages(&tracker, &bio, false);
                deferred.record_stable(error);
                crate::memory::lock(&outstanding).done(BioStatus::IoError);
            }
        }
    }
}

/// The reissues of one verified write still in flight.
struct Outstanding {
    left: usize,
    status: BioStatus,
    set: Option<WaiterSet<BioStatus>>,
}

impl Outstanding {
    /// One reissue ended with `status`; the last one tells the submitter.
    fn done(&mut self, status: BioStatus) {
        self.left = self.left.saturating_sub(1);
        if self.status.is_ok() && status.is_err() {
            self.status = status;
        }
        if self.left == 0 {
            if let Some(set) = self.set.take() {
                set.set(self.status);
            }
        }
    }
}

#[cfg(test)]
mod tests;
