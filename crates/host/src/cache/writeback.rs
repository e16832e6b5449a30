//! Writeback of the page cache: gupio's engine through the cache's
//! [`WritebackIo`], or the untracked path that never asks about pins.

use std::fmt;
use std::thread;
use std::time::Duration;

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, Sector};
use gupio::embed::{MemoryMap, PageOps, WritebackIo};
use gupio::pfn::{Origin, Pfn};
use gupio::pin::{FolioRef, PageFlags, PageRange, Tracker};
use gupio::release::{release_pages, SubmittedBio};
use gupio::sync::atomic::{fence, Ordering};
use gupio::writeback::{
    ByReason, PinnedAction, Writeback, WritebackCounts, WritebackError, WritebackReason,
    WritebackSummary,
};

use super::{File, PageCache};
use crate::data::WORDS_PER_PAGE;
use crate::device::{bio_checksums, OwnedBvecs, Waiter};
use crate::IoError;

/// How many times `wait_until_unpinned` looks before it gives up.
const WAIT_POLLS: usize = 2000;
/// The pause between two looks.
const WAIT_POLL: Duration = Duration::from_micros(50);

/// How writeback treats folios a device may be writing into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritebackMode {
    /// What the kernel did before pin tracking: write each dirty folio in
    /// place and mark it clean, never asking whether it may be pinned.
    /// The harness's own code path ([`PageCache::writeback`]), not gupio's.
    Untracked,
    /// gupio's writeback engine with this policy for maybe-pinned folios.
    Tracked(PinnedAction),
    /// gupio's writeback engine run for this reason with the default
    /// policy, [`ByReason::DEFAULT`](gupio::writeback::ByReason::DEFAULT):
    /// pinned folios skipped in background writeback, bounced for
    /// integrity.
    ByReason(WritebackReason),
}

/// The page cache's [`WritebackIo`] for one file: write-protection through
/// the file's reverse map, synchronous writes in place or through a bounce
/// copy, and a bounded wait for an unpin. [`PageCache::writeback`] builds
/// one per pass.
pub struct FileIo<'a> {
    cache: &'a PageCache,
    file: &'a File,
}

impl PageCache {
    /// The [`WritebackIo`] of `file`, for driving gupio's engine (or the
    /// hooks) directly.
    ///
    /// ```
    /// use gupio::writeback::{PinnedAction, Writeback, WritebackStats};
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(1, &[]).unwrap();
    /// machine.cache().write(&file, 0, 0, &[1]).unwrap();
    /// let (io, stats) = (machine.cache().io(&file), WritebackStats::new());
    /// let engine = Writeback::new(&**machine.memory(), &io, &stats);
    /// let page = file.cached_page(0).unwrap();
    /// assert!(engine.writeback_folio(page, &PinnedAction::Skip).is_ok());
    /// ```
    pub fn io<'a>(&'a self, file: &'a File) -> FileIo<'a> {
        FileIo { cache: self, file }
    }

    /// Writes back every dirty folio of `file`, in index order.
    ///
    /// [`WritebackMode::Tracked`] runs gupio's [`Writeback`] engine, which
    /// asks `maybe_dma_pinned` before it cleans a folio and applies the
    /// policy if it may be pinned. [`WritebackMode::Untracked`] runs the
    /// harness's model of writeback before pin tracking: lock, take the
    /// dirty bit, write-protect, write in place, clean, whatever a device
    /// is doing to the folio.
    ///
    /// ```
    /// # use gupio_host::{Machine, MachineConfig, WritebackMode};
    /// # let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(2, &[]).unwrap();
    /// machine.cache().write(&file, 0, 0, &[1]).unwrap();
    /// let summary = machine.cache().writeback(&file, WritebackMode::Untracked);
    /// assert_eq!((summary.counts.examined, summary.counts.written_in_place), (1, 1));
    /// ```
    pub fn writeback(&self, file: &File, mode: WritebackMode) -> WritebackSummary<IoError> {
        let io = self.io(file);
        let pages: Vec<Pfn> = file
            .cached_pages()
            .into_iter()
            .map(|(_, pfn)| pfn)
            .collect();
        match mode {
            WritebackMode::Tracked(policy) => {
                Writeback::new(&*self.memory, &io, &self.writeback_stats)
                    .writeback_folios(&pages, &policy)
            }
            WritebackMode::ByReason(reason) => {
                Writeback::new(&*self.memory, &io, &self.writeback_stats)
                    .with_reason(reason)
                    .writeback_folios(&pages, &ByReason::DEFAULT)
            }
            WritebackMode::Untracked => self.untracked_writeback(&io, &pages),
        }
    }

    /// Writeback as the kernel did it before pin tracking: never asks
    /// whether a device may hold a pin.
    fn untracked_writeback(&self, io: &FileIo<'_>, pages: &[Pfn]) -> WritebackSummary<IoError> {
        let mut summary = WritebackSummary {
            counts: WritebackCounts::default(),
            first_error: None,
        };
        let mut last_head = None;
        for &page in pages {
            let Ok(folio) = self.memory.folio(page) else {
                summary.counts.lookup_errors += 1;
                summary
                    .first_error
                    .get_or_insert(WritebackError::NotInMemoryMap { pfn: page });
                continue;
            };
            if last_head == Some(folio.head()) {
                continue;
            }
            last_head = Some(folio.head());
            summary.counts.examined += 1;
            match self.untracked_writeback_folio(io, folio) {
                Ok(true) => summary.counts.written_in_place += 1,
                Ok(false) => summary.counts.clean += 1,
                Err(error) => {
                    summary.counts.write_errors += 1;
                    summary
                        .first_error
                        .get_or_insert(WritebackError::WriteInPlace {
                            pfn: folio.head(),
                            error,
                        });
                }
            }
        }
        summary
    }

    /// One folio, untracked: returns whether it was dirty and written.
    fn untracked_writeback_folio(
        &self,
        io: &FileIo<'_>,
        folio: FolioRef<'_>,
    ) -> Result<bool, IoError> {
        let counters = folio.counters();
        self.memory.lock_folio(folio);
        if !counters
            .clear_flags(PageFlags::DIRTY)
            .contains(PageFlags::DIRTY)
        {
            self.memory.unlock_folio(folio);
            return Ok(false);
        }
        counters.set_flags(PageFlags::WRITEBACK);
        io.write_protect(folio);
        // SeqCst: as the tracked engine, so a CPU store or fault after the
        // protection sees it; the point of this path is the question it
        // does not ask next (maybe_dma_pinned).
        fence(Ordering::SeqCst);
        let result = io.write_in_place(folio);
        if result.is_err() {
            counters.set_flags(PageFlags::DIRTY);
        }
        counters.clear_flags(PageFlags::WRITEBACK);
        self.memory.unlock_folio(folio);
        // Relaxed: a statistic; it orders nothing.
        self.untracked_writes.fetch_add(1, Ordering::Relaxed);
        result.map(|()| true)
    }

    /// Writes `folio` of `file` to its place on disk through a bio, from
    /// the folio itself or from a bounce copy, and waits for it.
    fn write_folio(&self, file: &File, folio: FolioRef<'_>, bounce: bool) -> Result<(), IoError> {
        let head = folio.head();
        let index = file
            .index_of_head(head)
            .ok_or(IoError::NotInFile { pfn: head })?;
        let order = folio.order().get();
        let pages = folio.nr_pages();
        let tracker = self.tracker();
        // The pages the device reads, each holding a reference the
        // completion puts: a reference taken on the folio for the I/O, or
        // the bounce copy's allocation reference (the put frees it).
        let source = if bounce {
            let copy = self
                .memory
                .alloc_folio(order, false)
                .map_err(|_| IoError::OutOfMemory { order })?;
            for offset in 0..pages {
                let from = self.memory.frame(Pfn::new_truncate(head.get() + offset));
                let to = self.memory.frame(Pfn::new_truncate(copy.get() + offset));
                if let (Some(from), Some(to)) = (from, to) {
                    for word in 0..WORDS_PER_PAGE {
                        to.store(word, from.load(word));
                    }
                }
            }
            // A referenced bvec holds one reference per page: trade the
            // allocation's single reference for one per page.
            let range = PageRange::new(copy, pages);
            let traded = tracker
                .get_range(range)
                .and_then(|()| tracker.put_page(copy));
            if traded.is_err() {
                let _ = tracker.put_page(copy);
                return Err(IoError::OutOfMemory { order });
            }
            copy
        } else {
            tracker
                .get_range(PageRange::new(head, pages))
                .map_err(|_| IoError::NotInFile { pfn: head })?;
            head
        };
        let mut bio = Bio::new(
            OwnedBvecs::with_capacity(1),
            BioOp::Write,
            Sector(file.sector(index)),
            BioLimits::default(),
        );
        let bytes = u32::try_from(pages * crate::data::PAGE_SIZE).unwrap_or(u32::MAX);
        let built = gupio::bio::Folio::new(source, folio.order())
            .map_err(|error| IoError::Folio { error })
            .and_then(|run| {
                bio.add_folio(run, bytes, 0, Origin::Referenced)
                    .map_err(|refused| IoError::Bio {
                        error: refused.error(),
                    })
            });
        if let Err(error) = built {
            // The bio holds nothing: drop the I/O's references ourselves.
            let _ = tracker.put_range(PageRange::new(source, pages));
            return Err(error);
        }
        let checksums = bio_checksums(&self.memory, &bio);
        let submitted = match SubmittedBio::submit(bio) {
            Ok(submitted) => submitted,
            Err((bio, error)) => {
                let _ = release_pages(&tracker, &bio, false);
                return Err(IoError::Bio { error });
            }
        };
        let waiter = Waiter::new();
        let done = waiter.setter();
        let memory = self.memory.clone();
        self.device.submit(
            submitted,
            Some(checksums),
            Box::new(move |bio| {
                let status = bio.status();
                // A write: the device read the pages, nothing to dirty.
                let released = bio.release(&Tracker::new(&*memory), false);
                done.set(match released.result {
                    Ok(_) => status,
                    Err(_) => BioStatus::IoError,
                });
            }),
        );
        let status = waiter.wait(&self.device).map_err(|_| IoError::DeviceGone)?;
        if !status.is_ok() {
            return Err(IoError::Device { status });
        }
        let counter = if bounce {
            &self.pages_bounced
        } else {
            &self.pages_written_in_place
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(pages, Ordering::Relaxed);
        Ok(())
    }
}

impl WritebackIo for FileIo<'_> {
    type Error = IoError;

    fn write_protect(&self, folio: FolioRef<'_>) {
        if let Some(first) = self.file.index_of_head(folio.head()) {
            self.file.write_protect(first, folio.nr_pages());
        }
    }

    fn write_in_place(&self, folio: FolioRef<'_>) -> Result<(), IoError> {
        self.cache.write_folio(self.file, folio, false)
    }

    fn write_bounced(&self, folio: FolioRef<'_>) -> Result<(), IoError> {
        self.cache.write_folio(self.file, folio, true)
    }

    fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool {
        for _ in 0..WAIT_POLLS {
            if !folio.maybe_dma_pinned() {
                return true;
            }
            if self.cache.device.is_synchronous() {
                // Nobody else runs the device: make progress ourselves.
                if !self.cache.device.process_one() {
                    return false;
                }
            } else {
                thread::sleep(WAIT_POLL);
            }
        }
        !folio.maybe_dma_pinned()
    }
}

impl fmt::Debug for FileIo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileIo")
            .field("file", &self.file.id)
            .finish_non_exhaustive()
    }
}
