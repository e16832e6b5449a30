//! Process address spaces: mappings, page tables, faults, CPU access, and
//! the [`AddressSpace`](gupio::embed::AddressSpace) gupio's `pin_user_pages` walks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use gupio::embed::{MemoryMap, PageOps};
use gupio::pfn::Pfn;
use gupio::pin::{
    fork_action, FaultKind, ForkAction, MappedRun, Mapping, MappingFlags, MappingKind, Tracker,
    UserAddr,
};

use crate::cache::{File, FileId, MappingSpace, PageCache};
use crate::data::PAGE_SIZE;
use crate::memory::lock;
use crate::{HostError, Memory};

mod process;
mod stable;

pub use process::{GupGuard, Process};
pub(crate) use stable::HostWindow;
use stable::SpaceStable;

/// The first user page handed out (user address 0x10_0000).
const FIRST_VPN: usize = 0x100;

/// How many times a CPU access faults before it gives up (another thread
/// can undo a fault between the fault and the retry, never forever).
const CPU_FAULT_RETRIES: usize = 16;

/// What backs a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Private anonymous memory: any fault allocates a zeroed page.
    Anonymous,
    /// Private anonymous memory that maps the shared zero page on a read
    /// fault and copies it to a fresh page on a write fault.
    ZeroPage,
    /// A writable shared mapping of a file from page `first_index`: faults
    /// map the page-cache page; the mapping is dirty-tracked (a write fault
    /// dirties the page; long-term write pins are refused).
    SharedFile {
        /// The file.
        file: FileId,
        /// The file page mapped at the mapping's first page.
        first_index: usize,
    },
    /// A read-only mapping of a file from page `first_index`: write faults
    /// are denied.
    ReadOnlyFile {
        /// The file.
        file: FileId,
        /// The file page mapped at the mapping's first page.
        first_index: usize,
    },
}

impl MapKind {
    /// Whether writes through the mapping must be seen by writeback (a
    /// shared file mapping): gupio refuses long-term write pins of them.
    pub const fn is_dirty_tracked(self) -> bool {
        matches!(self, Self::SharedFile { .. })
    }

    /// What gupio's GUP is told about the mapping (before any fault).
    pub const fn gup_kind(self) -> MappingKind {
        match self {
            Self::Anonymous | Self::ZeroPage => MappingKind::Anonymous,
            Self::SharedFile { .. } => MappingKind::SharedFile {
                dirty_tracked: true,
            },
            Self::ReadOnlyFile { .. } => MappingKind::ReadOnly,
        }
    }

    fn file(self) -> Option<(FileId, usize)> {
        match self {
            Self::SharedFile { file, first_index } | Self::ReadOnlyFile { file, first_index } => {
                Some((file, first_index))
            }
            Self::Anonymous | Self::ZeroPage => None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Vma {
    first_vpn: usize,
    pages: usize,
    kind: MapKind,
}

impl Vma {
    fn contains(&self, vpn: usize) -> bool {
        vpn >= self.first_vpn && vpn - self.first_vpn < self.pages
    }
}

/// A page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pte {
    pub(crate) pfn: Pfn,
    pub(crate) writable: bool,
}

/// The machine's processes, for its audit (a fork registers its child).
pub(crate) type Registry = Arc<Mutex<Vec<Weak<SpaceInner>>>>;

pub(crate) struct SpaceInner {
    memory: Arc<Memory>,
    cache: Arc<PageCache>,
    registry: Registry,
    /// The mmap lock: mappings. GUP holds it for reading, munmap for writing.
    vmas: RwLock<Vec<Vma>>,
    /// The page-table lock: every PTE read and change takes it.
    ptes: Mutex<BTreeMap<usize, Pte>>,
    next_vpn: Mutex<usize>,
    /// Stable direct-I/O writes: write-protected pages and their windows.
    /// Taken after the page-table lock when both are held.
    stable: Mutex<SpaceStable>,
}

impl SpaceInner {
    fn tracker(&self) -> Tracker<'_, Memory> {
        Tracker::new(&self.memory)
    }

    fn pte(&self, vpn: usize) -> Option<Pte> {
        lock(&self.ptes).get(&vpn).copied()
    }

    /// Installs `pte` at `vpn` unless another fault got there first; a
    /// losing page reference is dropped.
    fn install(&self, vpn: usize, pte: Pte, referenced: bool) {
        let mut ptes = lock(&self.ptes);
        if ptes.contains_key(&vpn) {
            drop(ptes);
            if referenced {
                self.put(pte.pfn);
            }
            return;
        }
        ptes.insert(vpn, pte);
    }

    fn put(&self, pfn: Pfn) {
        // A reference this space took itself: a failure is a harness bug,
        // already reported through the warn hook.
        let _ = self.tracker().put_page(pfn);
    }

    fn file(&self, file: FileId) -> Result<Arc<File>, FaultKind> {
        self.cache.file(file).ok_or(FaultKind::Unmapped)
    }

    /// The kind of the mapping covering `addr`; touches no PTE.
    fn mapping_kind(vmas: &[Vma], addr: UserAddr) -> Result<MappingKind, FaultKind> {
        let vpn = addr.get() / PAGE_SIZE;
        vmas.iter()
            .find(|vma| vma.contains(vpn))
            .map(|vma| vma.kind.gup_kind())
            .ok_or(FaultKind::Unmapped)
    }

    fn translate(&self, vmas: &[Vma], addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let vpn = addr.get() / PAGE_SIZE;
        let vma = vmas
            .iter()
            .find(|vma| vma.contains(vpn))
            .ok_or(FaultKind::Unmapped)?;
        Ok(self.pte(vpn).map(|pte| {
            let mut flags = MappingFlags::empty();
            if pte.writable {
                flags |= MappingFlags::WRITABLE;
            }
            if vma.kind.is_dirty_tracked() {
                flags |= MappingFlags::DIRTY_TRACKED;
            }
            Mapping::new(pte.pfn, flags)
        }))
    }

    /// The run of present pages from `addr` mapping consecutive frames
    /// with the same flags, under one hold of the page-table lock.
    fn translate_run(
        &self,
        vmas: &[Vma],
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        let vpn = addr.get() / PAGE_SIZE;
        let vma = vmas
            .iter()
            .find(|vma| vma.contains(vpn))
            .ok_or(FaultKind::Unmapped)?;
        let flags = |pte: &Pte| {
            let mut flags = MappingFlags::empty();
            if pte.writable {
                flags |= MappingFlags::WRITABLE;
            }
            if vma.kind.is_dirty_tracked() {
                flags |= MappingFlags::DIRTY_TRACKED;
            }
            flags
        };
        let ptes = lock(&self.ptes);
        let Some(first) = ptes.get(&vpn) else {
            return Ok(None);
        };
        let mut pages = 1;
        while pages < max_pages && vma.contains(vpn + pages) {
            match ptes.get(&(vpn + pages)) {
                Some(pte)
                    if pte.writable == first.writable
                        && Some(pte.pfn) == first.pfn.checked_add(pages) =>
                {
                    pages += 1;
                }
                _ => break,
            }
        }
        Ok(Some(MappedRun {
            pfn: first.pfn,
            pages,
            flags: flags(first),
        }))
    }

    fn fault(&self, vmas: &[Vma], addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        let vpn = addr.get() / PAGE_SIZE;
        let vma = *vmas
            .iter()
            .find(|vma| vma.contains(vpn))
            .ok_or(FaultKind::Unmapped)?;
        // A write the mapping allows, on a page a stable write protects.
        if write && !matches!(vma.kind, MapKind::ReadOnlyFile { .. }) {
            let copy_allowed = vma.kind == MapKind::Anonymous;
            if let Some(result) = self.stable_fault(vpn, copy_allowed) {
                return result;
            }
        }
        let present = self.pte(vpn);
        match vma.kind {
            MapKind::Anonymous => {
                if let Some(pte) = present {
                    if write && !pte.writable {
                        return self.break_cow(vpn, pte);
                    }
                }
                if present.is_none() {
                    let page = self.alloc_zeroed()?;
                    self.install(
                        vpn,
                        Pte {
                            pfn: page,
                            writable: true,
                        },
                        true,
                    );
                }
                Ok(())
            }
            MapKind::ZeroPage => self.fault_zero_page(vpn, present, write),
            MapKind::ReadOnlyFile { file, first_index } => {
                if write {
                    return Err(FaultKind::AccessDenied);
                }
                if present.is_none() {
                    let index = first_index + (vpn - vma.first_vpn);
                    let page = self.file_page(file, index)?;
                    self.install(
                        vpn,
                        Pte {
                            pfn: page,
                            writable: false,
                        },
                        true,
                    );
                }
                Ok(())
            }
            MapKind::SharedFile { file, first_index } => {
                let index = first_index + (vpn - vma.first_vpn);
                self.fault_shared_file(vpn, file, index, present, write)
            }
        }
    }

    /// A write fault on an anonymous page mapped read-only because a fork
    /// shares it: a small page nobody else references is made writable in
    /// place, anything else is copied into a fresh small page.
    fn break_cow(&self, vpn: usize, old: Pte) -> Result<(), FaultKind> {
        let folio = self
            .memory
            .folio(old.pfn)
            .map_err(|_| FaultKind::HardwareError)?;
        if folio.nr_pages() == 1 && folio.counters().refcount() == 1 {
            // Ours alone (the other process unmapped it): reuse.
            if let Some(pte) = lock(&self.ptes).get_mut(&vpn) {
                if *pte == old {
                    pte.writable = true;
                }
            }
            return Ok(());
        }
        let copy = self.copy_page(old.pfn)?;
        let replaced = {
            let mut ptes = lock(&self.ptes);
            match ptes.get_mut(&vpn) {
                Some(pte) if *pte == old => {
                    *pte = Pte {
                        pfn: copy,
                        writable: true,
                    };
                    true
                }
                _ => false,
            }
        };
        // The entry's reference on the old page, or the unused copy.
        self.put(if replaced { old.pfn } else { copy });
        Ok(())
    }

    /// A fresh small page holding `from`'s words.
    fn copy_page(&self, from: Pfn) -> Result<Pfn, FaultKind> {
        let copy = self
            .memory
            .alloc_folio(0, false)
            .map_err(|_| FaultKind::OutOfMemory)?;
        let (Some(source), Some(target)) = (self.memory.frame(from), self.memory.frame(copy))
        else {
            self.put(copy);
            return Err(FaultKind::HardwareError);
        };
        for (index, word) in source.snapshot().into_iter().enumerate() {
            target.store(index, word);
        }
        Ok(copy)
    }

    fn alloc_zeroed(&self) -> Result<Pfn, FaultKind> {
        self.memory
            .alloc_folio(0, true)
            .map_err(|_| FaultKind::OutOfMemory)
    }

    fn file_page(&self, file: FileId, index: usize) -> Result<Pfn, FaultKind> {
        let file = self.file(file)?;
        self.cache
            .get_page(&file, index)
            .map_err(|error| match error {
                HostError::OutOfMemory { .. } => FaultKind::OutOfMemory,
                HostError::PastEndOfFile { .. } => FaultKind::Unmapped,
                _ => FaultKind::HardwareError,
            })
    }

    fn fault_zero_page(
        &self,
        vpn: usize,
        present: Option<Pte>,
        write: bool,
    ) -> Result<(), FaultKind> {
        let zero = self.memory.zero_page();
        match present {
            Some(pte) if pte.writable || !write => return Ok(()),
            // A page shared with a forked process.
            Some(pte) if pte.pfn != zero => return self.break_cow(vpn, pte),
            None if !write => {
                // The zero page holds no reference per mapping.
                self.install(
                    vpn,
                    Pte {
                        pfn: zero,
                        writable: false,
                    },
                    false,
                );
                return Ok(());
            }
            _ => {}
        }
        // Copy-on-write of the zero page: a fresh zeroed page.
        let page = self.alloc_zeroed()?;
        let mut ptes = lock(&self.ptes);
        match ptes.get(&vpn).copied() {
            Some(pte) if pte.pfn != zero => {
                // Another fault replaced it already.
                drop(ptes);
                self.put(page);
            }
            _ => {
                ptes.insert(
                    vpn,
                    Pte {
                        pfn: page,
                        writable: true,
                    },
                );
            }
        }
        Ok(())
    }

    fn fault_shared_file(
        &self,
        vpn: usize,
        file: FileId,
        index: usize,
        present: Option<Pte>,
        write: bool,
    ) -> Result<(), FaultKind> {
        if let Some(pte) = present {
            if pte.writable || !write {
                return Ok(());
            }
        }
        // A page reference for the PTE, unless it is present already.
        let (page, referenced) = match present {
            Some(pte) => (pte.pfn, false),
            None => (self.file_page(file, index)?, true),
        };
        if !write {
            // Write-notify: a clean mapped page stays read-only until a
            // write fault dirties it.
            self.install(
                vpn,
                Pte {
                    pfn: page,
                    writable: false,
                },
                referenced,
            );
            return Ok(());
        }
        // Linux's page_mkwrite: lock the folio (waiting for writeback, which
        // holds the lock), dirty it, make the PTE writable, unlock.
        let folio = self
            .memory
            .folio(page)
            .map_err(|_| FaultKind::HardwareError)?;
        self.memory.lock_folio(folio);
        self.memory.mark_folio_dirty(folio);
        let installed = {
            let mut ptes = lock(&self.ptes);
            match ptes.get_mut(&vpn) {
                // Present already (ours, or another fault's): it keeps its
                // own reference. Mappings cannot change under the mmap lock,
                // so it maps this page.
                Some(pte) => {
                    pte.writable |= pte.pfn == page;
                    false
                }
                None => {
                    ptes.insert(
                        vpn,
                        Pte {
                            pfn: page,
                            writable: true,
                        },
                    );
                    true
                }
            }
        };
        self.memory.unlock_folio(folio);
        if referenced && !installed {
            self.put(page);
        }
        Ok(())
    }

    /// Copies the present entries of the anonymous `vma` into `child`
    /// (see [`Process::fork`]); the caller holds the parent's mmap lock
    /// for writing.
    fn fork_anonymous(&self, vma: &Vma, child: &SpaceInner) -> Result<(), HostError> {
        let zero = self.memory.zero_page();
        let range = vma.first_vpn..vma.first_vpn + vma.pages;
        let mut ptes = lock(&self.ptes);
        for (&vpn, pte) in ptes.range_mut(range) {
            let child_pte = if pte.pfn == zero {
                *pte
            } else {
                match fork_action(&*self.memory, pte.pfn)? {
                    ForkAction::Share => {
                        self.tracker().get_page(pte.pfn)?;
                        pte.writable = false;
                        *pte
                    }
                    ForkAction::Copy => Pte {
                        pfn: self
                            .copy_page(pte.pfn)
                            .map_err(|_| HostError::OutOfMemory { order: 0 })?,
                        writable: true,
                    },
                }
            };
            lock(&child.ptes).insert(vpn, child_pte);
        }
        Ok(())
    }

    /// Every present PTE's page (for the audit), the zero page excluded.
    pub(crate) fn mapped_pages(&self) -> Vec<Pfn> {
        let zero = self.memory.zero_page();
        lock(&self.ptes)
            .values()
            .map(|pte| pte.pfn)
            .filter(|&pfn| pfn != zero)
            .collect()
    }

    fn unmap(&self, vma: &Vma) {
        let range = vma.first_vpn..vma.first_vpn + vma.pages;
        let removed: Vec<Pte> = {
            let mut ptes = lock(&self.ptes);
            let vpns: Vec<usize> = ptes.range(range).map(|(&vpn, _)| vpn).collect();
            vpns.iter().filter_map(|vpn| ptes.remove(vpn)).collect()
        };
        let zero = self.memory.zero_page();
        for pte in removed {
            if pte.pfn != zero {
                self.put(pte.pfn);
            }
        }
    }
}

/// Writeback's write-protection, through the page cache's reverse map.
impl MappingSpace for SpaceInner {
    fn write_protect(&self, vpns: std::ops::Range<usize>) {
        let mut ptes = lock(&self.ptes);
        for (_, pte) in ptes.range_mut(vpns) {
            pte.writable = false;
        }
    }
}

#[cfg(test)]
mod tests;
