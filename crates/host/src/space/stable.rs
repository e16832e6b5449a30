//! The address-space side of write-protected direct-I/O writes: PTEs made
//! read-only for the length of the I/O, and the write fault that waits for
//! its completion (or copies the page on write).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, Weak};

use gupio::pfn::Pfn;
use gupio::pin::{FaultKind, ProtectError, UserAddr};
use gupio::release::{FaultChoice, FaultResolution, ProtectWindow, StableStats};

use super::{SpaceInner, Vma};
use crate::data::PAGE_SIZE;
use crate::device::Device;
use crate::memory::lock;

/// One write-protected direct-I/O write, as its pages' faults see it.
pub(crate) struct HostWindow {
    first_vpn: usize,
    pages: usize,
    gate: ProtectWindow,
    choice: FaultChoice,
    stats: Arc<StableStats>,
    device: Weak<Device>,
    closed: Mutex<()>,
    wake: Condvar,
}

impl HostWindow {
    /// A closed window over the pages of `len` bytes at `addr`.
    pub(crate) fn new(
        addr: UserAddr,
        len: usize,
        choice: FaultChoice,
        stats: Arc<StableStats>,
        device: Weak<Device>,
    ) -> Self {
        let (first_vpn, pages) = page_span(addr, len).unwrap_or((0, 0));
        Self {
            first_vpn,
            pages,
            gate: ProtectWindow::new(),
            choice,
            stats,
            device,
            closed: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// The core's window state.
    pub(crate) fn gate(&self) -> &ProtectWindow {
        &self.gate
    }

    fn covers(&self, vpn: usize) -> bool {
        vpn >= self.first_vpn && vpn - self.first_vpn < self.pages
    }

    /// Closes the window and wakes every writer waiting on it.
    pub(crate) fn close_and_wake(&self) -> bool {
        let guard = lock(&self.closed);
        let closed = self.gate.close::<()>().is_ok();
        drop(guard);
        self.wake.notify_all();
        closed
    }

    /// Blocks until the window closes. On a synchronous device the waiter
    /// runs the device queue itself (nobody else would).
    fn wait_closed(&self) {
        if let Some(device) = self.device.upgrade().filter(|d| d.is_synchronous()) {
            while self.gate.is_open() {
                if !device.process_one() {
                    return;
                }
            }
            return;
        }
        let mut guard = lock(&self.closed);
        while self.gate.is_open() {
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// A page write-protected by stable writes.
#[derive(Clone, Copy, Debug)]
struct Protected {
    /// Nested protections.
    count: usize,
    /// The page the PTE mapped when first protected.
    pfn: Pfn,
    /// Whether to make the PTE writable again when the last one goes.
    restore: bool,
}

/// A process's stable-write state.
#[derive(Default)]
pub(crate) struct SpaceStable {
    protected: BTreeMap<usize, Protected>,
    windows: Vec<Arc<HostWindow>>,
}

/// The first page and the page count of `len` bytes at `addr`.
fn page_span(addr: UserAddr, len: usize) -> Option<(usize, usize)> {
    if len == 0 {
        return None;
    }
    let last = addr.get().checked_add(len - 1)?;
    let first = addr.get() / PAGE_SIZE;
    Some((first, last / PAGE_SIZE - first + 1))
}

impl SpaceInner {
    /// Makes the PTEs of the range read-only; all present, or nothing changes.
    pub(super) fn write_protect_range(
        &self,
        vmas: &[Vma],
        addr: UserAddr,
        len: usize,
    ) -> Result<(), ProtectError> {
        let (first, pages) = page_span(addr, len).ok_or(ProtectError::BadRange { addr, len })?;
        let mut ptes = lock(&self.ptes);
        let mut stable = lock(&self.stable);
        for vpn in first..first + pages {
            if !vmas.iter().any(|vma| vma.contains(vpn)) || !ptes.contains_key(&vpn) {
                return Err(ProtectError::Fault {
                    addr: UserAddr::new(vpn * PAGE_SIZE),
                    kind: FaultKind::Unmapped,
                });
            }
        }
        for vpn in first..first + pages {
            // Only an anonymous page is made writable again by the restore:
            // a shared file page must take its dirtying fault.
            let anonymous = vmas
                .iter()
                .find(|vma| vma.contains(vpn))
                .is_some_and(|vma| vma.kind == super::MapKind::Anonymous);
            let Some(pte) = ptes.get_mut(&vpn) else {
                continue;
            };
            let entry = stable.protected.entry(vpn).or_insert(Protected {
                count: 0,
                pfn: pte.pfn,
                restore: pte.writable && anonymous,
            });
            entry.count += 1;
            pte.writable = false;
        }
        Ok(())
    }

    /// Undoes one protection of the range. Takes only the page-table lock
    /// (not the mmap lock), so a completion can call it while a writer
    /// waiting on the window holds the mmap lock for reading and a
    /// `munmap` waits for it for writing.
    pub(crate) fn restore_write_range(
        &self,
        addr: UserAddr,
        len: usize,
    ) -> Result<(), ProtectError> {
        let (first, pages) = page_span(addr, len).ok_or(ProtectError::BadRange { addr, len })?;
        let mut ptes = lock(&self.ptes);
        let mut stable = lock(&self.stable);
        if let Some(vpn) = (first..first + pages).find(|vpn| !stable.protected.contains_key(vpn)) {
            return Err(ProtectError::Fault {
                addr: UserAddr::new(vpn * PAGE_SIZE),
                kind: FaultKind::AccessDenied,
            });
        }
        for vpn in first..first + pages {
            let Some(entry) = stable.protected.get_mut(&vpn) else {
                continue;
            };
            entry.count -= 1;
            if entry.count > 0 {
                continue;
            }
            let entry = *entry;
            stable.protected.remove(&vpn);
            if let Some(pte) = ptes.get_mut(&vpn) {
                // Copied on write meanwhile (a new page, already writable),
                // or unmapped and mapped again: not ours to change.
                if entry.restore && pte.pfn == entry.pfn {
                    pte.writable = true;
                }
            }
        }
        Ok(())
    }

    /// Registers `window` so faults on its pages find it (before it opens).
    pub(crate) fn register_window(&self, window: Arc<HostWindow>) {
        lock(&self.stable).windows.push(window);
    }

    /// Forgets `window` (after it closed).
    pub(crate) fn unregister_window(&self, window: &Arc<HostWindow>) {
        lock(&self.stable)
            .windows
            .retain(|other| !Arc::ptr_eq(other, window));
    }

    /// A write fault at `vpn`, which the mapping allows: if an open window
    /// protects the page, waits for it to close or copies the page on
    /// write, as it chose, and says so; `None` lets the ordinary fault run.
    /// Only a private anonymous page may be copied (`copy_allowed`): a
    /// shared file page must stay the one page every mapping sees, and a
    /// zero-page entry has its own fault; those wait instead.
    pub(super) fn stable_fault(
        &self,
        vpn: usize,
        copy_allowed: bool,
    ) -> Option<Result<(), FaultKind>> {
        let window = lock(&self.stable)
            .windows
            .iter()
            .find(|window| window.covers(vpn) && window.gate.is_open())
            .cloned()?;
        let choice = if copy_allowed {
            window.choice
        } else {
            FaultChoice::Wait
        };
        let resolution = window.gate.on_write_fault(choice);
        window.stats.count_fault(resolution);
        match resolution {
            FaultResolution::NotProtected => None,
            FaultResolution::Wait => {
                window.wait_closed();
                Some(Ok(()))
            }
            FaultResolution::CopyOnWrite => {
                let pte = self.pte(vpn)?;
                let result = self.break_cow(vpn, pte);
                if result.is_ok() {
                    window.stats.count_copied(1);
                }
                Some(result)
            }
        }
    }
}
