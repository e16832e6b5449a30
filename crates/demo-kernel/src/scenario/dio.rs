//! Step 1: the direct-I/O read into the user buffer, in bios chained to
//! one dio, with one release deferred to the worker.

use gupio::bio::{Bio, BioOp, BioStatus, BioVec, BvecSlice, Origin, Sector as BioSector};
use gupio::pin::{GupFlags, MemoryMap, PageFlags, UserAddr};
use gupio::release::{
    add_user_range, release_deferred, set_pages_dirty, CompletedBio, Completion, DeferredList,
    DioRead, Ending, ReleaseStats,
};

use crate::pattern::{self, SECTOR_SIZE};
use crate::userspace::{Pte, UserSpace};

use super::error::{gupio_error, ScenarioError};
use super::layout::{
    sectors, BUFFER_PAGES, DEFERRED_CAPACITY, DIO_FIRST, DIO_HEAD_SKIP, DIO_LEN, DIO_MAX_BIOS,
    DIO_MAX_VECS, DIO_TAIL_SKIP,
};
use super::summary::accumulate;
use super::Scenario;

impl Scenario<'_, '_> {
    /// Step 1: the direct-I/O read into the user buffer.
    pub(super) fn direct_io_read(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "direct-I/O read";
        let start = UserSpace::page_addr(0) + DIO_HEAD_SKIP;
        let mut tables = [[BioVec::NONE; DIO_MAX_VECS]; DIO_MAX_BIOS];
        let deferred: DeferredList<CompletedBio<BvecSlice<'_>>, DEFERRED_CAPACITY> =
            DeferredList::new();
        // The dio's own completion: each bio is chained to it, and its end_io
        // runs once, after the last bio.
        let dio = Completion::new();
        dio.start().map_err(gupio_error(STEP))?;
        let walks = self.space.run_walks();
        let submitted = self.direct_io_bios(&mut tables, &deferred, &dio, start);
        // The worker in process context: re-dirty, then release. It runs even
        // after a failure, so no bio stays pinned.
        let mut worker_error = None;
        let mut worker_stats = ReleaseStats::default();
        let drained =
            release_deferred(&deferred, &self.tracker, |released| match released.result {
                Ok(stats) => accumulate(&mut worker_stats, stats),
                Err(error) => {
                    worker_error.get_or_insert(error);
                }
            });
        self.summary.add_released(worker_stats);
        let walks = self.space.run_walks() - walks;
        let (bios, pages) = submitted?;
        if let Some(error) = worker_error {
            return Err(gupio_error(STEP)(error));
        }
        if drained != self.summary.deferred {
            return Err(ScenarioError::Count(
                STEP,
                "bios released by the worker",
                drained,
                self.summary.deferred,
            ));
        }
        // The submitter drops the dio's own part: end_io runs now, once.
        match dio.complete(BioStatus::Ok, self.map) {
            Ok(Ending::Finished(BioStatus::Ok)) => {}
            Ok(Ending::Finished(status)) => return Err(ScenarioError::Io(STEP, status)),
            Ok(Ending::Pending) => {
                return Err(ScenarioError::Check(STEP, "the dio did not finish"))
            }
            Err(error) => return Err(gupio_error(STEP)(error)),
        }

        // The data, read through the user page table as the process sees it.
        let user = Self::user(STEP);
        self.summary.bytes_checked += self
            .space
            .verify(start, DIO_LEN, |index| {
                pattern::image_byte(
                    DIO_FIRST + (index / SECTOR_SIZE) as u64,
                    index % SECTOR_SIZE,
                )
            })
            .map_err(user)?;
        // Outside the range the device wrote nothing.
        self.space
            .verify(UserSpace::page_addr(0), DIO_HEAD_SKIP, |_| 0)
            .map_err(Self::user(STEP))?;
        self.space
            .verify(start + DIO_LEN, DIO_TAIL_SKIP, |_| 0)
            .map_err(Self::user(STEP))?;
        // Every page the device wrote is dirty, the one writeback cleaned too.
        for page in 0..BUFFER_PAGES {
            let Pte::Present { pfn, .. } = self.space.pte(UserSpace::page_addr(page)) else {
                return Err(ScenarioError::Check(STEP, "a user page is not present"));
            };
            if !self.is_dirty(STEP, pfn)? {
                return Err(ScenarioError::Check(
                    STEP,
                    "a page the device wrote is not dirty",
                ));
            }
        }
        self.check_user_baseline(STEP)?;
        let faults = self.space.faults();
        println!(
            "  {STEP}: {DIO_LEN} bytes, sectors {DIO_FIRST}..{} into user {start:#x}: {pages} pages pinned \
             ({walks} run translations, {} demand-zero fault, {} copy-on-write of the zero page) in \
             {bios} bios of at most {DIO_MAX_VECS} bvecs ({} short adds), chained to one dio; {} release \
             deferred and re-dirtied by the worker; data ok, all pages dirty, counters at baseline",
            DIO_FIRST + sectors(DIO_LEN),
            faults.demand_zero,
            faults.copy_on_write,
            self.summary.short_adds,
            self.summary.deferred
        );
        // The faults changed the page table: the walk still agrees.
        self.check_runs(STEP)
    }

    /// The bios of the direct-I/O read; returns (bios, pages pinned).
    fn direct_io_bios<'t>(
        &mut self,
        tables: &'t mut [[BioVec; DIO_MAX_VECS]; DIO_MAX_BIOS],
        deferred: &DeferredList<CompletedBio<BvecSlice<'t>>, DEFERRED_CAPACITY>,
        dio: &Completion,
        start: usize,
    ) -> Result<(usize, usize), ScenarioError> {
        const STEP: &str = "direct-I/O read";
        let mut done = 0usize;
        let mut bios = 0usize;
        let mut pages = 0usize;
        for table in tables.iter_mut() {
            if done == DIO_LEN {
                break;
            }
            let sector = BioSector(DIO_FIRST + sectors(done));
            // The bio's completion, chained to the dio's, before any page is held.
            let completion = Completion::new();
            completion.start().map_err(gupio_error(STEP))?;
            let token = dio.chain().map_err(gupio_error(STEP))?;
            let mut bio = Bio::new(BvecSlice::new(table), BioOp::Read, sector, self.dio_limits);
            let in_flight = self.map.pins().in_flight();
            let added = add_user_range(
                &self.tracker,
                self.space,
                &mut bio,
                UserAddr::new(start + done),
                DIO_LEN - done,
                GupFlags::WRITE,
            )
            .map_err(gupio_error(STEP))?;
            if added < DIO_LEN - done {
                self.summary.short_adds += 1;
            }
            // Every pin the bio did not take was dropped: one pin per page per bvec.
            let bio_pins = bio
                .all_pages()
                .filter(|page| page.origin() == Some(Origin::Pinned))
                .count();
            let taken = self.map.pins().in_flight().wrapping_sub(in_flight);
            if taken != bio_pins {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(ScenarioError::Count(
                    STEP,
                    "pins held after add_user_range",
                    taken,
                    bio_pins,
                ));
            }
            pages += bio_pins;
            // Before submission: the device is about to write these pages.
            if let Err(error) = set_pages_dirty(&self.tracker, &bio) {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(gupio_error(STEP)(error));
            }
            let submitted = match self.submit(STEP, bio) {
                Ok(submitted) => submitted,
                Err(error) => {
                    // Report the child so the dio can still finish.
                    let _ = dio.child_complete(token, BioStatus::IoError, self.map);
                    return Err(error);
                }
            };
            let checked = self.check_in_flight(STEP, submitted.bio());
            if bios == 1 {
                // A writeback that ignores pins cleans a page the device is
                // writing: completion must notice.
                if let Some(pfn) = submitted.bio().all_pages().find_map(|page| page.page()) {
                    if let Ok(folio) = self.map.folio(pfn) {
                        folio.counters().clear_flags(PageFlags::DIRTY);
                    }
                }
            }
            let status = self.run_on_device(STEP, submitted.bio());
            let (completed, ended) = self.complete(STEP, &completion, submitted, status);
            let child = dio.child_complete(token, status, self.map);
            // Release now, or defer to the worker if a page was cleaned.
            match completed.complete_dio_read(&self.tracker, deferred) {
                Ok(DioRead::Released(released)) => {
                    self.released(STEP, released)?;
                }
                Ok(DioRead::Deferred) => self.summary.deferred += 1,
                Err(full) => {
                    let released = full.into_inner().release(&self.tracker, true);
                    self.released(STEP, released)?;
                }
            }
            checked?;
            let ended = ended?;
            match child {
                Ok(Ending::Pending) => {}
                Ok(Ending::Finished(_)) => {
                    return Err(ScenarioError::Check(
                        STEP,
                        "the dio finished before its own part was dropped",
                    ))
                }
                Err(error) => return Err(gupio_error(STEP)(error)),
            }
            if ended.is_err() {
                return Err(ScenarioError::Io(STEP, ended));
            }
            done += added;
            bios += 1;
        }
        if done != DIO_LEN {
            return Err(ScenarioError::Count(
                STEP,
                "bytes read (out of bio tables)",
                done,
                DIO_LEN,
            ));
        }
        if self.summary.deferred == 0 {
            return Err(ScenarioError::Check(
                STEP,
                "the release of the bio whose page was cleaned was not deferred",
            ));
        }
        Ok((bios, pages))
    }
}
