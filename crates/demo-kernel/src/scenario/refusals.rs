//! Step 5: refusals that must change nothing.

use gupio::bio::{BioOp, BioVec};
use gupio::pin::{FaultKind, GupFlags, PinError, UserAddr};
use gupio::release::{add_user_range, ReleaseError};

use crate::mem::PAGE_SIZE;
use crate::userspace::{Pte, UserSpace};

use super::error::{gupio_error, ScenarioError};
use super::layout::{BIO_VECS, HOLE, READ_ONLY, ZERO_READ};
use super::Scenario;

impl Scenario<'_, '_> {
    /// Step 5: refusals that must change nothing.
    pub(super) fn refusals(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "refusals";
        let warnings = self.map.warnings();
        let pins = (self.map.pins().acquired(), self.map.pins().released());

        // Pinning a hole: a fault on the first page, nothing pinned or added.
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = self.bio(&mut table, BioOp::Read, 0);
        let hole = UserSpace::page_addr(HOLE);
        match add_user_range(
            &self.tracker,
            self.space,
            &mut bio,
            UserAddr::new(hole),
            PAGE_SIZE,
            GupFlags::WRITE,
        ) {
            Err(ReleaseError::Extract {
                error:
                    PinError::Fault {
                        kind: FaultKind::Unmapped,
                        ..
                    },
                ..
            }) => {}
            Ok(_) => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                return Err(ScenarioError::Check(STEP, "a hole was pinned"));
            }
            Err(error) => return Err(gupio_error(STEP)(error)),
        }
        if bio.vcnt() != 0 {
            return Err(ScenarioError::Check(STEP, "a failed add left a bvec"));
        }

        // A read pin of the zero page: one run of the zero page, never counted.
        let zero = self.map.zero_page();
        let mut runs = self
            .tracker
            .pin_user_pages(
                self.space,
                UserAddr::new(UserSpace::page_addr(ZERO_READ)),
                1,
                GupFlags::empty(),
            )
            .map_err(gupio_error(STEP))?;
        let run = match runs.next() {
            Some(Ok(run)) => run,
            Some(Err(error)) => return Err(gupio_error(STEP)(error)),
            None => {
                return Err(ScenarioError::Check(
                    STEP,
                    "a read pin of one page yielded no run",
                ))
            }
        };
        // One page was asked for: the walk must end with this run. Anything
        // more is given back (a refusal is warned by gupio).
        let more = match runs.next() {
            Some(Ok(extra)) => {
                let _ = self.tracker.release_held(extra, false);
                true
            }
            Some(Err(_)) => true,
            None => false,
        };
        let returned = !more && run.first() == zero && run.pages() == 1;
        // Held: the zero page's counters have not moved.
        let held = self.expect_counters(STEP, zero, 1);
        let released = self.tracker.release_held(run, false);
        if !returned {
            return Err(ScenarioError::Check(
                STEP,
                "a read pin of a zero-page mapping did not return the zero page alone",
            ));
        }
        held?;
        released.map_err(gupio_error(STEP))?;
        self.expect_counters(STEP, zero, 1)?;

        // A long-term write pin of a read-only mapping: refused from the
        // mapping's kind before any fault, the entry and counts untouched.
        let read_only = self.alloc(STEP, 0)?;
        let read_only_addr = UserSpace::page_addr(READ_ONLY);
        self.space
            .map_page(&self.tracker, read_only_addr, read_only, false)
            .map_err(Self::user(STEP))?;
        self.tracker
            .put_page(read_only)
            .map_err(gupio_error(STEP))?;
        let faults = self.space.faults();
        let refused = self
            .tracker
            .pin_user_pages(
                self.space,
                UserAddr::new(read_only_addr),
                1,
                GupFlags::WRITE | GupFlags::LONGTERM,
            )
            .map_err(gupio_error(STEP))?
            .next();
        match refused {
            Some(Err(PinError::Fault {
                kind: FaultKind::AccessDenied,
                ..
            })) => {}
            Some(Ok(run)) => {
                let _ = self.tracker.release_held(run, false);
                return Err(ScenarioError::Check(
                    STEP,
                    "a read-only mapping was pinned for writing",
                ));
            }
            Some(Err(error)) => return Err(gupio_error(STEP)(error)),
            None => return Err(ScenarioError::Check(STEP, "a refused pin yielded nothing")),
        }
        let entry = Pte::Present {
            pfn: read_only,
            writable: false,
        };
        if self.space.faults() != faults || self.space.pte(read_only_addr) != entry {
            return Err(ScenarioError::Check(
                STEP,
                "a refused write pin faulted or changed the entry",
            ));
        }
        self.expect_counters(STEP, read_only, 1)?;

        if self.map.warnings() != warnings
            || (self.map.pins().acquired(), self.map.pins().released()) != pins
        {
            return Err(ScenarioError::Check(
                STEP,
                "a refusal warned or changed the pin accounting",
            ));
        }
        println!(
            "  {STEP}: pinning the hole at {hole:#x} faults and pins nothing; a read pin of the zero \
             page (pfn {zero:#x}) returns it without touching its counters; a long-term write pin \
             of the read-only page at {read_only_addr:#x} is refused before any fault"
        );
        Ok(())
    }
}
