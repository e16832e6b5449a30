//! Step 2: one read bio with a referenced, a pinned and a borrowed page.

use gupio::bio::{BioOp, BioVec, Origin};
use gupio::pin::{GupFlags, MemoryMap};

use crate::mem::PAGE_SIZE;
use crate::pattern::{self, SECTOR_SIZE};
use crate::userspace::UserSpace;

use super::error::ScenarioError;
use super::layout::{
    sectors, BIO_VECS, MIXED_BORROWED, MIXED_READ_FIRST, MIXED_USER_LEN, MIXED_USER_OFFSET,
    MIXED_USER_PAGE, PAGE_LEN,
};
use super::{started, verify_bytes, Scenario};

impl Scenario<'_, '_> {
    /// Step 2: one read bio with a referenced, pinned and borrowed page.
    pub(super) fn mixed_read(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "mixed-origin read";
        let pages = self.kernel_pages()?;
        let (cache, borrowed) = (pages.read_cache, pages.borrowed);
        let user_start = UserSpace::page_addr(MIXED_USER_PAGE) + MIXED_USER_OFFSET;
        let borrowed_len = MIXED_BORROWED.end - MIXED_BORROWED.start;
        let completion = started(STEP)?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = self.bio(&mut table, BioOp::Read, MIXED_READ_FIRST);
        let built = (|| {
            self.add_referenced(STEP, &mut bio, cache, PAGE_LEN, 0)?;
            self.add_user(STEP, &mut bio, user_start, MIXED_USER_LEN, GupFlags::WRITE)?;
            self.add_borrowed(STEP, &mut bio, borrowed, MIXED_BORROWED)
        })();
        self.build(&bio, built)?;
        let origins = bio.origins();
        if !(origins.has(Origin::Pinned)
            && origins.has(Origin::Referenced)
            && origins.has(Origin::Borrowed))
        {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            return Err(ScenarioError::Check(STEP, "the bio lacks an origin"));
        }
        let vecs = bio.vcnt();
        let submitted = self.submit(STEP, bio)?;
        let checked = self.check_in_flight(STEP, submitted.bio()).and_then(|()| {
            // In flight: the bio holds a reference on the page-cache page,
            // none on the borrowed buffer.
            let cache_refs = self.map.counters(cache).map_or(0, |c| c.refcount());
            let borrowed_refs = self.map.counters(borrowed).map_or(0, |c| c.refcount());
            if (cache_refs, borrowed_refs) != (2, 1) {
                return Err(ScenarioError::Check(
                    STEP,
                    "in flight, the referenced page must hold 2 references and the borrowed 1",
                ));
            }
            Ok(())
        });
        // A read: the device wrote the pages, so dirty them as they go.
        let stats = self.run_and_release(STEP, &completion, submitted, true, checked)?;
        Self::expect_mixed_release(STEP, stats)?;

        // The data: page-cache page, user pages, borrowed buffer, in disk order.
        self.summary.bytes_checked += self.verify_kernel(
            STEP,
            cache,
            PAGE_SIZE,
            MIXED_READ_FIRST,
            pattern::image_byte,
        )?;
        let user_first = MIXED_READ_FIRST + sectors(PAGE_SIZE);
        self.summary.bytes_checked += self
            .space
            .verify(user_start, MIXED_USER_LEN, |index| {
                pattern::image_byte(
                    user_first + (index / SECTOR_SIZE) as u64,
                    index % SECTOR_SIZE,
                )
            })
            .map_err(Self::user(STEP))?;
        let borrowed_first = user_first + sectors(MIXED_USER_LEN);
        let map_error = |error| ScenarioError::Map(STEP, error);
        let borrowed_extent = self.map.extent(borrowed, 0, PAGE_SIZE).map_err(map_error)?;
        let checked = self
            .map
            .memory()
            .with_bytes(borrowed_extent, |bytes| {
                let checked = verify_bytes(
                    STEP,
                    &bytes[MIXED_BORROWED],
                    borrowed_extent.addr + MIXED_BORROWED.start,
                    borrowed_first,
                    pattern::image_byte,
                )?;
                let untouched = bytes[..MIXED_BORROWED.start]
                    .iter()
                    .chain(&bytes[MIXED_BORROWED.end..])
                    .all(|&byte| byte == 0);
                if !untouched {
                    return Err(ScenarioError::Check(
                        STEP,
                        "the device wrote outside the borrowed segment",
                    ));
                }
                Ok(checked)
            })
            .map_err(|error| map_error(error.into()))??;
        self.summary.bytes_checked += checked;

        // Released by origin: the page-cache page is dirty and back to the
        // kernel's one reference; the borrowed buffer was never touched.
        self.expect_counters(STEP, cache, 1)?;
        self.expect_counters(STEP, borrowed, 1)?;
        if !self.is_dirty(STEP, cache)? || self.is_dirty(STEP, borrowed)? {
            return Err(ScenarioError::Check(
                STEP,
                "release must dirty the referenced page and leave the borrowed one alone",
            ));
        }
        self.check_user_baseline(STEP)?;
        println!(
            "  {STEP}: sectors {MIXED_READ_FIRST}..{} into {vecs} bvecs: referenced page-cache pfn {cache:#x}, \
             2 pinned pages of the folio (user {user_start:#x}), borrowed pfn {borrowed:#x} [{}, {}); \
             released: {} unpinned, {} put, {} borrowed; data ok, counters at baseline",
            borrowed_first + sectors(borrowed_len),
            MIXED_BORROWED.start,
            MIXED_BORROWED.end,
            stats.unpinned,
            stats.put,
            stats.borrowed
        );
        Ok(())
    }
}
