//! Step 7: the user buffer unmapped, the kernel pages put, and one put
//! too many refused.

use gupio::pin::{PinError, Warning};
use gupio::release::AnyWarning;

use super::error::{gupio_error, ScenarioError};
use super::Scenario;

impl Scenario<'_, '_> {
    /// Step 7: unmap the user buffer, drop the kernel pages, and try one put too many.
    pub(super) fn teardown(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "teardown";
        let unmapped = self
            .space
            .unmap_all(&self.tracker)
            .map_err(Self::user(STEP))?;
        let Some(pages) = self.kernel.take() else {
            return Err(ScenarioError::Check(STEP, "kernel pages missing"));
        };
        for pfn in [pages.read_cache, pages.write_cache, pages.borrowed] {
            self.tracker.put_page(pfn).map_err(gupio_error(STEP))?;
        }
        // One put too many, on a page already freed: refused and warned; the
        // allocator never sees a second free.
        let warnings = self.map.warnings();
        let bad_frees = self.map.allocator_stats().bad_frees;
        match self.tracker.put_page(pages.read_cache) {
            Err(PinError::NoReference { .. }) => {}
            _ => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a put of a freed page was not refused",
                ))
            }
        }
        let warned = self.map.warnings() - warnings == 1
            && matches!(
                self.map.last_warning(),
                Some(AnyWarning::Pin(Warning::PutWithoutReference { .. }))
            );
        if !warned {
            return Err(ScenarioError::Check(
                STEP,
                "a put of a freed page was not warned exactly once",
            ));
        }
        self.summary.expected_warnings += 1;
        if self.map.allocator_stats().bad_frees != bad_frees {
            return Err(ScenarioError::Check(
                STEP,
                "a refused put reached the allocator",
            ));
        }
        println!(
            "  {STEP}: {unmapped} user mappings removed and 3 kernel pages put: every folio freed; \
             a second put of pfn {:#x} was refused and warned, no double free",
            pages.read_cache
        );
        Ok(())
    }
}
