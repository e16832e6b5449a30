//! Step 4: the written sectors read back into a referenced kernel folio.

use gupio::bio::{AddError, BioOp, BioVec, Folio, Origin};
use gupio::pfn::Pfn;
use gupio::pin::{FolioOrder, PageRange};

use crate::mem::PAGE_SIZE;
use crate::pattern::{self};

use super::error::{gupio_error, ScenarioError};
use super::layout::{bvec_u32, sectors, BACK_FIRST, BACK_LEN, BACK_ORDER, BIO_VECS};
use super::{started, Scenario};

impl Scenario<'_, '_> {
    /// Step 4: the written sectors, read back into a referenced kernel folio.
    pub(super) fn read_back(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "read-back";
        let folio = self.alloc(STEP, BACK_ORDER)?;
        let result = self.read_back_into(folio);
        // The kernel's own reference: the folio is freed.
        let put = self.tracker.put_page(folio).map_err(gupio_error(STEP));
        result?;
        put
    }

    fn read_back_into(&mut self, folio: Pfn) -> Result<(), ScenarioError> {
        const STEP: &str = "read-back";
        let touched = BACK_LEN.div_ceil(PAGE_SIZE);
        let bio_folio = FolioOrder::try_new(BACK_ORDER)
            .and_then(|order| Folio::new(folio, order))
            .map_err(gupio_error(STEP))?;
        let completion = started(STEP)?;
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = self.bio(&mut table, BioOp::Read, BACK_FIRST);
        // One reference per page the bio covers: what it releases.
        let range = PageRange::new(folio, touched);
        self.tracker.get_range(range).map_err(gupio_error(STEP))?;
        if let Err(error) = bio.add_folio(
            bio_folio,
            const { bvec_u32(BACK_LEN) },
            0,
            Origin::Referenced,
        ) {
            let _ = self.tracker.put_range(range);
            return Err(gupio_error::<AddError>(STEP)(error));
        }
        let submitted = self.submit(STEP, bio)?;
        let stats = self.run_and_release(STEP, &completion, submitted, false, Ok(()))?;
        if stats.put != touched {
            return Err(ScenarioError::Count(STEP, "pages put", stats.put, touched));
        }
        self.summary.bytes_checked += self.verify_kernel(
            STEP,
            folio,
            BACK_LEN,
            BACK_FIRST,
            pattern::expected_final_byte,
        )?;
        self.expect_counters(STEP, folio, 1)?;
        println!(
            "  {STEP}: sectors {BACK_FIRST}..{} into a referenced order-{BACK_ORDER} folio at pfn {folio:#x} \
             ({touched} pages, one bvec, {} puts at release): the write landed, its neighbours are untouched",
            BACK_FIRST + sectors(BACK_LEN),
            stats.put
        );
        Ok(())
    }
}
