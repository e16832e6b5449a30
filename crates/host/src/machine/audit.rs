//! The audit: every counter against what its owners account for, pins
//! balanced, no leak, no warning, no error.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use gupio::embed::MemoryMap;
use gupio::pfn::Pfn;
use gupio::pin::PageFlags;
use gupio::release::{AnyWarning, ReleaseError};

use super::Machine;
use crate::memory::{lock, AllocatedFolio, BadFree};
use crate::space::SpaceInner;
use crate::HostError;

/// An allocated folio whose counters are not what its owners account for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffBaseline {
    /// The folio's head.
    pub head: Pfn,
    /// Its reference count.
    pub refcount: u32,
    /// The references its owners hold (page cache, PTEs).
    pub expected: u32,
    /// Its pin count.
    pub pincount: u32,
    /// Its flags.
    pub flags: PageFlags,
}

impl fmt::Display for OffBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "folio {:#x}: refcount {} (owners hold {}), pincount {}, flags {:?}",
            self.head, self.refcount, self.expected, self.pincount, self.flags
        )
    }
}

/// Everything the machine checks at the end of a test or run: pins
/// balanced, every counter at baseline, no leak, no refused free, no
/// warning, no release or completion error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Pins acquired, in pages.
    pub pins_acquired: usize,
    /// Pins released, in pages.
    pub pins_released: usize,
    /// Warnings gupio reported.
    pub warnings: Vec<AnyWarning>,
    /// Frees the allocator refused (double frees among them).
    pub bad_frees: Vec<BadFree>,
    /// Owned folios whose counters are off.
    pub off_baseline: Vec<OffBaseline>,
    /// Allocated folios nobody owns.
    pub leaks: Vec<AllocatedFolio>,
    /// Errors from releasing completed bios.
    pub release_errors: Vec<ReleaseError>,
    /// Errors the completion path returned to the device.
    pub completion_errors: Vec<ReleaseError>,
    /// Errors completing stable direct-I/O writes (a mapping not restored,
    /// a verification or reissue that failed).
    pub stable_errors: Vec<HostError>,
}

impl Audit {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.pins_acquired == self.pins_released
            && self.warnings.is_empty()
            && self.bad_frees.is_empty()
            && self.off_baseline.is_empty()
            && self.leaks.is_empty()
            && self.release_errors.is_empty()
            && self.completion_errors.is_empty()
            && self.stable_errors.is_empty()
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pins acquired {}, released {}",
            self.pins_acquired, self.pins_released
        )?;
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        for bad in &self.bad_frees {
            writeln!(f, "refused free: {bad}")?;
        }
        for off in &self.off_baseline {
            writeln!(f, "off baseline: {off}")?;
        }
        for leak in &self.leaks {
            writeln!(
                f,
                "leak: folio {:#x} of order {} (refcount {})",
                leak.head, leak.order, leak.refcount
            )?;
        }
        for error in &self.release_errors {
            writeln!(f, "release error: {error}")?;
        }
        for error in &self.completion_errors {
            writeln!(f, "completion error: {error}")?;
        }
        for error in &self.stable_errors {
            writeln!(f, "stable write error: {error}")?;
        }
        Ok(())
    }
}

impl Machine {
    /// References each owner holds per folio head: the page cache one per
    /// cached folio, each PTE one per page it maps.
    fn owned_references(&self) -> HashMap<Pfn, u32> {
        let mut owners: HashMap<Pfn, u32> = HashMap::new();
        for file in self.cache.files() {
            for head in file.cached_heads() {
                *owners.entry(head).or_default() += 1;
            }
        }
        let spaces: Vec<Arc<SpaceInner>> = lock(&self.processes)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for space in spaces {
            for page in space.mapped_pages() {
                if let Ok(folio) = self.memory.folio(page) {
                    *owners.entry(folio.head()).or_default() += 1;
                }
            }
        }
        owners
    }

    /// Checks the machine against its baseline (call it when quiet, after
    /// [`quiesce`](Self::quiesce)): every allocated folio is owned (page
    /// cache, PTEs) and holds exactly its owners' references, no pin, no
    /// lock or writeback bit; pins balance; nothing was warned, refused or
    /// failed to release.
    ///
    /// ```
    /// # use gupio_host::{Machine, MachineConfig};
    /// let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let page = machine.memory().alloc_folio(0, true).unwrap();
    /// machine.tracker().pin_page(page).unwrap();
    /// let audit = machine.audit();
    /// assert_eq!(audit.pins_acquired, 1);
    /// assert_eq!(audit.leaks.len(), 1, "nobody owns it");
    /// assert!(!audit.is_clean());
    /// ```
    pub fn audit(&self) -> Audit {
        let owners = self.owned_references();
        let mut audit = Audit {
            pins_acquired: self.memory.pin_stats().acquired(),
            pins_released: self.memory.pin_stats().released(),
            warnings: self.memory.warnings(),
            bad_frees: self.memory.bad_frees(),
            release_errors: lock(&self.deferred.errors).clone(),
            completion_errors: self.device.completion_errors(),
            stable_errors: lock(&self.deferred.stable_errors).clone(),
            ..Audit::default()
        };
        for folio in self.memory.allocated_folios() {
            let Some(&expected) = owners.get(&folio.head) else {
                audit.leaks.push(folio);
                continue;
            };
            let flags = self
                .memory
                .counters(folio.head)
                .map_or(PageFlags::empty(), |c| c.flags());
            let busy = flags.intersects(PageFlags::LOCKED | PageFlags::WRITEBACK);
            if folio.refcount != expected || folio.pincount != 0 || busy {
                audit.off_baseline.push(OffBaseline {
                    head: folio.head,
                    refcount: folio.refcount,
                    expected,
                    pincount: folio.pincount,
                    flags,
                });
            }
        }
        audit
    }

    /// The allocated folios nobody owns (see [`audit`](Self::audit)).
    pub fn leak_check(&self) -> Vec<AllocatedFolio> {
        self.audit().leaks
    }

    /// Drops the page cache (its references on every cached folio), waits
    /// for all I/O, and audits: with every process gone, nothing may stay
    /// allocated. Returns the audit and how many folios were still dirty.
    pub fn evict_and_audit(&self) -> (Audit, usize) {
        self.quiesce();
        let dirty = self.cache.evict_all();
        self.quiesce();
        (self.audit(), dirty)
    }
}

#[cfg(test)]
mod tests;
