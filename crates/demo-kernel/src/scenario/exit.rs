//! Step 6: a process exits while a bio holding its pinned pages is in
//! flight.

use gupio::bio::{BioOp, BioVec};
use gupio::pfn::Pfn;
use gupio::pin::{GupFlags, MemoryMap, UserAddr, GUP_PIN_COUNTING_BIAS};
use gupio::release::{add_user_range, set_pages_dirty, Completion};

use crate::mem::PAGE_SIZE;
use crate::pagemap::MapError;
use crate::pattern::{self};
use crate::userspace::UserSpace;

use super::error::{gupio_error, ScenarioError};
use super::layout::{sectors, BIO_VECS, EXIT_FIRST, EXIT_LEN, EXIT_PAGES};
use super::Scenario;

impl<'m> Scenario<'m, '_> {
    /// Step 6: a process exits while a bio holding its pinned pages is
    /// submitted and not yet run by the device.
    pub(super) fn exit_in_flight(&mut self) -> Result<(), ScenarioError> {
        const STEP: &str = "exit with a bio in flight";
        let process = UserSpace::new(self.map);
        if let Err(error) = self.map_exit_buffer(STEP, &process) {
            let _ = process.exit(&self.tracker);
            return Err(error);
        }
        let completion = Completion::new();
        if let Err(error) = completion.start() {
            let _ = process.exit(&self.tracker);
            return Err(gupio_error(STEP)(error));
        }
        let mut table = [BioVec::NONE; BIO_VECS];
        let mut bio = self.bio(&mut table, BioOp::Read, EXIT_FIRST);
        let added = add_user_range(
            &self.tracker,
            &process,
            &mut bio,
            UserAddr::new(UserSpace::page_addr(0)),
            EXIT_LEN,
            GupFlags::WRITE,
        );
        let added = match added {
            Ok(added) if added == EXIT_LEN => added,
            outcome => {
                let _ = gupio::release::release_pages(&self.tracker, &bio, false);
                let _ = process.exit(&self.tracker);
                return Err(match outcome {
                    Err(error) => gupio_error(STEP)(error),
                    Ok(added) => ScenarioError::Count(STEP, "bytes added", added, EXIT_LEN),
                });
            }
        };
        let mut pages = [Pfn::ZERO; EXIT_PAGES];
        for (slot, page) in pages.iter_mut().zip(bio.all_pages()) {
            *slot = page.decode().map_or(Pfn::ZERO, |(pfn, _)| pfn);
        }
        if let Err(error) = set_pages_dirty(&self.tracker, &bio) {
            let _ = gupio::release::release_pages(&self.tracker, &bio, false);
            let _ = process.exit(&self.tracker);
            return Err(gupio_error(STEP)(error));
        }
        let submitted = match self.submit(STEP, bio) {
            Ok(submitted) => submitted,
            Err(error) => {
                let _ = process.exit(&self.tracker);
                return Err(error);
            }
        };

        // The process exits with the bio submitted, not yet run.
        let freed = self.map.allocator_stats().folios_freed;
        let exited = process.exit(&self.tracker).map_err(Self::user(STEP));
        let held = self.held_by_pins_alone(STEP, &pages);
        let kept = self.map.allocator_stats().folios_freed == freed;
        let checked = self.check_in_flight(STEP, submitted.bio());

        // The device runs the bio into the pages; the data is checked
        // before the release, the release frees them.
        let status = self.run_on_device(STEP, submitted.bio());
        let (completed, ended) = self.complete(STEP, &completion, submitted, status);
        let landed = if status.is_ok() {
            pages
                .iter()
                .enumerate()
                .try_fold(0, |total, (index, &pfn)| {
                    let first = EXIT_FIRST + sectors(index * PAGE_SIZE);
                    Ok(total
                        + self.verify_kernel(
                            STEP,
                            pfn,
                            PAGE_SIZE,
                            first,
                            pattern::expected_final_byte,
                        )?)
                })
        } else {
            Ok(0)
        };
        let stats = self.released(STEP, completed.release(&self.tracker, true))?;
        let unmapped = exited?;
        held?;
        checked?;
        if !kept {
            return Err(ScenarioError::Check(
                STEP,
                "a pinned page was freed at exit",
            ));
        }
        let status = ended?;
        if status.is_err() {
            return Err(ScenarioError::Io(STEP, status));
        }
        self.summary.bytes_checked += landed?;
        if stats.unpinned != EXIT_PAGES {
            return Err(ScenarioError::Count(
                STEP,
                "pages unpinned",
                stats.unpinned,
                EXIT_PAGES,
            ));
        }
        let freed_by_release = self.map.allocator_stats().folios_freed - freed;
        if freed_by_release != EXIT_PAGES {
            return Err(ScenarioError::Count(
                STEP,
                "folios freed by the release",
                freed_by_release,
                EXIT_PAGES,
            ));
        }
        println!(
            "  {STEP}: {added} bytes from sector {EXIT_FIRST} pinned into a submitted read bio; the \
             process exited ({unmapped} mappings removed) before the device ran it: no page freed, \
             each held by its pin alone; the device read into them (data ok), the release unpinned \
             {} and freed them",
            stats.unpinned
        );
        Ok(())
    }

    /// Maps the exit step's buffer into `process`: two fresh pages, then a
    /// demand-zero one.
    fn map_exit_buffer(
        &self,
        step: &'static str,
        process: &UserSpace<'m>,
    ) -> Result<(), ScenarioError> {
        for page in 0..EXIT_PAGES - 1 {
            let pfn = self.alloc(step, 0)?;
            let mapped = process.map_page(&self.tracker, UserSpace::page_addr(page), pfn, true);
            // The mapping's reference, if any, is now the only one.
            self.tracker.put_page(pfn).map_err(gupio_error(step))?;
            mapped.map_err(Self::user(step))?;
        }
        process
            .map_demand_zero(UserSpace::page_addr(EXIT_PAGES - 1))
            .map_err(Self::user(step))
    }

    /// Checks that each of `pages` is still allocated and held by exactly
    /// one pin and nothing else.
    fn held_by_pins_alone(&self, step: &'static str, pages: &[Pfn]) -> Result<(), ScenarioError> {
        for &pfn in pages {
            let counters = self
                .map
                .counters(pfn)
                .ok_or(ScenarioError::Map(step, MapError::NotManaged(pfn)))?;
            if counters.refcount() != GUP_PIN_COUNTING_BIAS {
                let snapshot = self
                    .map
                    .snapshot(pfn)
                    .ok_or(ScenarioError::Map(step, MapError::NotManaged(pfn)))?;
                return Err(ScenarioError::Counters(step, snapshot));
            }
        }
        Ok(())
    }
}
