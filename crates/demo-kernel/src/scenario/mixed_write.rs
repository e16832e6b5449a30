//! Step 3: one write bio of mixed origins, a flush, and a refused second
//! completion.

use gupio::bio::{AddError, Bio, BioOp, BioStatus, BioVec, BvecSlice, Origin, Sector as BioSector};
use gupio::pfn::Pfn;
use gupio::pin::{GupFlags, UserAddr, Warning};
use gupio::release::{add_user_range, Completion, ReleaseError};

use crate::mem::PAGE_SIZE;
use crate::pattern::{self, SCENARIO_WRITTEN, SECTOR_SIZE};
use crate::userspace::UserSpace;

use super::error::{gupio_error, ScenarioError};
use super::layout::{
    bvec_u32, sectors, BIO_VECS, PAGE_LEN, WRITE_BORROWED, WRITE_LEN, WRITE_USER_LEN,
    WRITE_USER_OFFSET, WRITE_USER_PAGE,
};
use super::Scenario;

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

        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Write,
            BioSector(first),
            self.limits,
        );
        let built = (|| {
            // The device only reads the user pages: no WRITE pin.
            let added = add_user_range(
                &self.tracker,
                self.space,
                &mut bio,
                UserAddr::new(user_start),
                WRITE_USER_LEN,
                GupFlags::empty(),
            )
            .map_err(gupio_error(STEP))?;
            if added != WRITE_USER_LEN {
                return Err(ScenarioError::Count(
                    STEP,
                    "user bytes added",
                    added,
                    WRITE_USER_LEN,
                ));
            }
            self.add_referenced(STEP, &mut bio, cache, PAGE_LEN, 0)?;
            let added = bio
                .add_page(
                    borrowed,
                    const { bvec_u32(WRITE_BORROWED.end - WRITE_BORROWED.start) },
                    const { bvec_u32(WRITE_BORROWED.start) },
                    Origin::Borrowed,
                )
                .map_err(gupio_error::<AddError>(STEP))?;
            if added.duplicate().is_some() {
                return Err(ScenarioError::Check(STEP, "a borrowed page was duplicated"));
            }
            Ok(())
        })();
        self.build(&bio, built)?;
        let vecs = bio.vcnt();
        let submitted = self.submit(STEP, bio)?;
        let checked = self.check_in_flight(STEP, submitted.bio());
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        // A write: the device only read the pages; nothing to dirty.
        let released = completed.release(&self.tracker, false);
        let stats = self.released(STEP, released)?;
        checked?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if (stats.unpinned, stats.put, stats.borrowed) != (2, 1, 1) {
            return Err(ScenarioError::Check(
                STEP,
                "release did not unpin 2, put 1 and leave 1 borrowed page",
            ));
        }
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
            && self.map.last_warning() == Some(Warning::DoubleCompletion);
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
        let bio = Bio::new(
            BvecSlice::new(&mut table),
            BioOp::Flush,
            BioSector(0),
            self.limits,
        );
        let completion = Completion::new();
        completion.start().map_err(gupio_error(STEP))?;
        let submitted = self.submit(STEP, bio)?;
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        let stats = self.released(STEP, completed.release(&self.tracker, false))?;
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        if stats.pages() != 0 {
            return Err(ScenarioError::Check(STEP, "a flush released pages"));
        }
        Ok(())
    }
}
