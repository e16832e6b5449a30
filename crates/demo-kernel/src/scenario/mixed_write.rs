//! Step 3: one write bio of mixed origins, a flush, and a refused second
//! completion.

use gupio::bio::{BioOp, BioStatus, BioVec};
use gupio::pfn::Pfn;
use gupio::pin::GupFlags;
use gupio::release::{AnyWarning, ReleaseError, ReleaseWarning};

use crate::mem::PAGE_SIZE;
use crate::pattern::{self, SCENARIO_WRITTEN, SECTOR_SIZE};
use crate::userspace::UserSpace;

use super::error::ScenarioError;
use super::layout::{
    sectors, BIO_VECS, PAGE_LEN, WRITE_BORROWED, WRITE_LEN, WRITE_USER_LEN, WRITE_USER_OFFSET,
    WRITE_USER_PAGE,
};
use super::{started, Scenario};

impl Scenario<'_, '_> {
    /// Writes `written_byte` for `len` bytes from sector `first` into a kernel page.
    fn fill_kernel(
        &self,
        step: &'static str,
        pfn: Pfn,
        offset: usize,
        len: usize,
        first: u64,
    ) -> Result<(), ScenarioError> {
        let extent = self
            .map
            .extent(pfn, offset, len)
            .map_err(|error| ScenarioError::Map(step, error))?;
        self.map
            .memory()
            .with_bytes_mut(extent, |bytes| {
                for (index, byte) in bytes.iter_mut().enumerate() {
                    *byte = pattern::written_byte(
                        first + (index / SECTOR_SIZE) as u64,
                        index % SECTOR_SIZE,
                    );
                }
            })
            .map_err(|error| ScenarioError::Map(step, error.into()))
    }

    /// Step 3: one write bio with pinned user pages, a referenced page-cache
    /// page and a borrowed buffer; a flush; a refused double completion.
    pub(super) fn mixed_write(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "mixed-origin write";
        let pages = self.kernel_pages()?;
        let (cache, borrowed) = (pages.write_cache, pages.borrowed);
        let first = SCENARIO_WRITTEN.start;
        let user_start = UserSpace::page_addr(WRITE_USER_PAGE) + WRITE_USER_OFFSET;
        let borrowed_len = WRITE_BORROWED.end - WRITE_BORROWED.start;
        // The data: the process writes its buffer, the kernel its pages.
        self.space
            .fill(user_start, WRITE_USER_LEN, |index| {
                pattern::written_byte(first + (index / SECTOR_SIZE) as u64, index % SECTOR_SIZE)
            })
            .map_err(Self::user(STEP))?;
        let cache_first = first + sectors(WRITE_USER_LEN);
        self.fill_kernel(STEP, cache, 0, PAGE_SIZE, cache_first)?;
        let borrowed_first = cache_first + sectors(PAGE_SIZE);
        self.fill_kernel(
            STEP,
            borrowed,
            WRITE_BORROWED.start,
            borrowed_len,
            borrowed_first,
        )?;

        let completion = started(STEP)?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = self.bio(&mut table, BioOp::Write, first);
        let built = (|| {
            // The device only reads the user pages: no WRITE pin.
            self.add_user(
                STEP,
                &mut bio,
                user_start,
                WRITE_USER_LEN,
                GupFlags::empty(),
            )?;
            self.add_referenced(STEP, &mut bio, cache, PAGE_LEN, 0)?;
            self.add_borrowed(STEP, &mut bio, borrowed, WRITE_BORROWED)
        })();
        self.build(&bio, built)?;
        let vecs = bio.vcnt();
        let submitted = self.submit(STEP, bio)?;
        let checked = self.check_in_flight(STEP, submitted.bio());
        // A write: the device only read the pages; nothing to dirty.
        let stats = self.run_and_release(STEP, &completion, submitted, false, checked)?;
        Self::expect_mixed_release(STEP, stats)?;
        self.flush()?;

        // A driver bug reports the same completion again: refused and
        // warned, and nothing is released twice.
        let warnings = self.map.warnings();
        let pins = (self.map.pins().acquired(), self.map.pins().released());
        match completion.complete(BioStatus::Ok, self.map) {
            Err(ReleaseError::DoubleCompletion) => {}
            _ => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a second completion was not refused",
                ))
            }
        }
        let warned = self.map.warnings() - warnings == 1
            && self.map.last_warning()
                == Some(AnyWarning::Release(ReleaseWarning::DoubleCompletion));
        if !warned {
            return Err(ScenarioError::Check(
                STEP,
                "a second completion was not warned exactly once",
            ));
        }
        self.summary.expected_warnings += 1;
        if (self.map.pins().acquired(), self.map.pins().released()) != pins {
            return Err(ScenarioError::Check(
                STEP,
                "a refused completion changed the pin accounting",
            ));
        }
        self.expect_counters(STEP, cache, 1)?;
        self.expect_counters(STEP, borrowed, 1)?;
        self.check_user_baseline(STEP)?;
        println!(
            "  {STEP}: {WRITE_LEN} bytes to sectors {}..{} from {vecs} bvecs: 2 pinned user pages \
             (user {user_start:#x}, discontiguous), referenced page-cache pfn {cache:#x}, borrowed \
             pfn {borrowed:#x} [{}, {}); flushed; a second completion was refused and warned, \
             nothing released twice; counters at baseline",
            SCENARIO_WRITTEN.start, SCENARIO_WRITTEN.end, WRITE_BORROWED.start, WRITE_BORROWED.end
        );
        Ok(())
    }

    /// A flush bio: no pages, through the same submit and completion path.
    fn flush(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "flush";
        let mut table = [BioVec::NONE; 1];
        let bio = self.bio(&mut table, BioOp::Flush, 0);
        let completion = started(STEP)?;
        let submitted = self.submit(STEP, bio)?;
        let stats = self.run_and_release(STEP, &completion, submitted, false, Ok(()))?;
        if stats.pages() != 0 {
            return Err(ScenarioError::Check(STEP, "a flush released pages"));
        }
        Ok(())
    }
}
