//! A process: its mappings, faults from CPU accesses, fork and exit, and
//! the guard `pin_user_pages` walks it under.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};

use gupio::embed::AddressSpace;
use gupio::pfn::{PageGeometry, Pfn};
use gupio::pin::{FaultKind, MappedRun, Mapping, MappingKind, PageRange, ProtectError, UserAddr};

use super::stable::SpaceStable;
use super::{MapKind, Pte, Registry, SpaceInner, Vma, CPU_FAULT_RETRIES, FIRST_VPN};
use crate::cache::{File, PageCache};
use crate::data::{PAGE_SIZE, WORDS_PER_PAGE};
use crate::memory::lock;
use crate::{HostError, Memory};

/// A process: an address space of mappings over the simulated machine's
/// memory and page cache, with its page table.
///
/// Every present PTE holds one reference on its page (except on the zero
/// page); unmapping drops them. A write fault on a shared file page locks
/// the folio (so it waits for writeback, which holds the lock while it
/// writes), marks it dirty and makes the PTE writable; writeback's
/// write-protection makes it read-only again, so the next CPU store faults.
///
/// ```
/// use gupio_host::{Machine, MachineConfig};
/// let machine = Machine::new(MachineConfig::small()).unwrap();
/// let process = machine.spawn_process();
/// let addr = process.mmap_zero_page(2).unwrap();
/// assert_eq!(process.load(addr, 2).unwrap(), [0, 0]); // the zero page, read-only
/// process.store(addr, &[7]).unwrap();                  // copy-on-write
/// assert_eq!(process.load(addr, 1).unwrap(), [7]);
/// process.munmap(addr).unwrap();
/// assert!(machine.audit().is_clean());
/// ```
///
/// # Exit with pins outstanding
///
/// A process exits when it is dropped (or [`exit`](Self::exit)s): every
/// mapping is unmapped and the references its PTEs held are dropped, and
/// nothing else. A page that something else still holds pinned (a bio a
/// device is still writing into, a table of registered buffers holding
/// long-term [`HeldRun`](gupio::pin::HeldRun)s) keeps the references its
/// pins are, so it stays allocated, with its contents, until the last
/// unpin frees it. Exit neither waits for that I/O nor releases pins it
/// does not hold: the holder releases them as it would have (the bio's
/// completion, the table's unregistration), and the
/// [`PinAccount`](gupio::pin::PinAccount) its runs are charged to lives in
/// the holder, not in the process, so the charge stays until that release
/// and drops to zero with it. Until then [`Machine::audit`](crate::Machine::audit)
/// reports those pages as leaks (allocated, mapped by nobody): audit when
/// quiet.
pub struct Process {
    inner: Arc<SpaceInner>,
}

/// `pin_user_pages`' view of a [`Process`]: holds the mmap lock for
/// reading, so mappings (and the page references their PTEs hold) cannot
/// go away during GUP, and implements gupio's [`AddressSpace`].
///
/// Each translation and fault takes the page-table lock for itself only: a
/// write fault on a shared file page must wait for the folio lock, which
/// writeback holds while it write-protects the folio (taking the
/// page-table lock), so the fault may not hold the page-table lock then.
pub struct GupGuard<'a> {
    space: &'a SpaceInner,
    vmas: RwLockReadGuard<'a, Vec<Vma>>,
}

impl Process {
    /// An empty process, registered in `registry`.
    pub(crate) fn new(memory: Arc<Memory>, cache: Arc<PageCache>, registry: Registry) -> Self {
        let process = Self {
            inner: Arc::new(SpaceInner {
                memory,
                cache,
                registry: registry.clone(),
                vmas: RwLock::new(Vec::new()),
                ptes: Mutex::new(BTreeMap::new()),
                next_vpn: Mutex::new(FIRST_VPN),
                stable: Mutex::new(SpaceStable::default()),
            }),
        };
        let mut processes = lock(&registry);
        processes.retain(|space| space.strong_count() > 0);
        processes.push(process.weak());
        drop(processes);
        process
    }

    /// Forks the process: the child gets the same mappings at the same
    /// addresses, following gupio's rule for pinned pages
    /// ([`gupio::pin::fork_action`]):
    ///
    /// - a present anonymous page that may be pinned stays mapped (and
    ///   writable) in the parent; the child gets a copy of it, now (for a
    ///   large folio, a small copy of each page);
    /// - every other present anonymous page is shared copy-on-write: both
    ///   entries read-only, the child's with a reference of its own, and
    ///   the first write in either process copies it (or reuses it, once
    ///   the other let go);
    /// - zero-page entries are copied as they are; file mappings are shared
    ///   through the page cache and faulted in afresh by the child.
    ///
    /// The parent's mmap lock is held for writing throughout, so no GUP
    /// runs on the parent while its entries are decided and changed.
    ///
    /// # Errors
    /// [`HostError::OutOfMemory`] if a copy cannot be allocated (the child
    /// is dropped: every page it had mapped is given back).
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let parent = machine.spawn_process();
    /// let addr = parent.mmap_anonymous(1).unwrap();
    /// parent.store(addr, &[1]).unwrap();
    /// let child = parent.fork().unwrap();
    /// assert_eq!(child.pte(addr), parent.pte(addr), "shared, read-only");
    /// child.store(addr, &[2]).unwrap(); // copy-on-write
    /// assert_eq!((parent.load(addr, 1).unwrap(), child.load(addr, 1).unwrap()), (vec![1], vec![2]));
    /// drop(child);
    /// assert!(machine.audit().is_clean());
    /// ```
    pub fn fork(&self) -> Result<Process, HostError> {
        let parent = &self.inner;
        let vmas = parent
            .vmas
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let child = Process::new(
            parent.memory.clone(),
            parent.cache.clone(),
            parent.registry.clone(),
        );
        *lock(&child.inner.next_vpn) = *lock(&parent.next_vpn);
        {
            let mut child_vmas = child
                .inner
                .vmas
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for vma in vmas.iter() {
                child_vmas.push(*vma);
                if let Some((id, first_index)) = vma.kind.file() {
                    if let Some(file) = parent.cache.file(id) {
                        file.add_mapper(child.weak(), vma.first_vpn, first_index, vma.pages);
                    }
                }
            }
        }
        for vma in vmas.iter() {
            if matches!(vma.kind, MapKind::Anonymous | MapKind::ZeroPage) {
                parent.fork_anonymous(vma, &child.inner)?;
            }
        }
        Ok(child)
    }

    /// Maps one zeroed anonymous folio of `2^order` pages, present and
    /// writable (a transparent huge page, as it were); returns its address.
    /// Each entry holds a reference on the folio.
    ///
    /// # Errors
    /// [`HostError::OutOfMemory`] if no such folio is free,
    /// [`HostError::BadMapping`] if no address space is left.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_anonymous_folio(2).unwrap();
    /// let (head, writable) = process.pte(addr).unwrap();
    /// assert!(writable);
    /// assert_eq!(machine.memory().frame(head).unwrap().counters().refcount(), 4);
    /// ```
    pub fn mmap_anonymous_folio(&self, order: u32) -> Result<UserAddr, HostError> {
        let head = self.inner.memory.alloc_folio(order, true)?;
        let pages = 1usize << order;
        let addr = match self.map(pages, MapKind::Anonymous) {
            Ok(addr) => addr,
            Err(error) => {
                self.inner.put(head);
                return Err(error);
            }
        };
        // The allocation's reference is the first entry's; one more each.
        if pages > 1 {
            self.inner
                .tracker()
                .get_range(PageRange::new(Pfn::new(head.get() + 1), pages - 1))?;
        }
        let first_vpn = addr.get() / PAGE_SIZE;
        let mut ptes = lock(&self.inner.ptes);
        for index in 0..pages {
            ptes.insert(
                first_vpn + index,
                Pte {
                    pfn: Pfn::new(head.get() + index),
                    writable: true,
                },
            );
        }
        Ok(addr)
    }

    /// Exits the process: the same as dropping it (see [Exit with pins
    /// outstanding](Self#exit-with-pins-outstanding)).
    ///
    /// ```
    /// use gupio::prelude::*;
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_anonymous(1).unwrap();
    /// let tracker = machine.tracker();
    /// let run = tracker
    ///     .pin_user_pages(&process.gup(), addr, 1, GupFlags::WRITE)
    ///     .unwrap()
    ///     .next()
    ///     .unwrap()
    ///     .unwrap();
    /// process.exit();
    /// assert_eq!(machine.memory().allocated_folios().len(), 1, "the pin holds it");
    /// tracker.release_held(run, true).unwrap();
    /// assert!(machine.memory().allocated_folios().is_empty());
    /// ```
    pub fn exit(self) {
        drop(self);
    }

    /// The address space, for a completion that must restore its PTEs.
    pub(crate) fn space(&self) -> Arc<SpaceInner> {
        self.inner.clone()
    }

    pub(crate) fn weak(&self) -> Weak<SpaceInner> {
        Arc::downgrade(&self.inner)
    }

    fn vmas_read(&self) -> RwLockReadGuard<'_, Vec<Vma>> {
        self.inner
            .vmas
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn map(&self, pages: usize, kind: MapKind) -> Result<UserAddr, HostError> {
        if pages == 0 {
            return Err(HostError::BadMapping { pages });
        }
        let file = kind.file();
        if let Some((id, first_index)) = file {
            let file = self.inner.cache.file(id).ok_or(HostError::PastEndOfFile {
                file: id,
                index: first_index,
            })?;
            let end = first_index.saturating_add(pages);
            if end > file.pages() {
                return Err(HostError::PastEndOfFile {
                    file: id,
                    index: end - 1,
                });
            }
        }
        let mut vmas = self
            .inner
            .vmas
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let first_vpn = {
            let mut next = lock(&self.inner.next_vpn);
            let first = *next;
            // One unmapped guard page after each mapping.
            let after = first
                .checked_add(pages)
                .and_then(|end| end.checked_add(1))
                .filter(|&end| end.checked_mul(PAGE_SIZE).is_some())
                .ok_or(HostError::BadMapping { pages })?;
            *next = after;
            first
        };
        let vma = Vma {
            first_vpn,
            pages,
            kind,
        };
        if let Some((id, first_index)) = file {
            if let Some(file) = self.inner.cache.file(id) {
                file.add_mapper(self.weak(), first_vpn, first_index, pages);
            }
        }
        vmas.push(vma);
        Ok(UserAddr::new(first_vpn * PAGE_SIZE))
    }

    /// Maps `pages` of private anonymous memory; returns its address.
    ///
    /// # Errors
    /// [`HostError::BadMapping`] for zero pages or no address space left.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_anonymous(1).unwrap();
    /// process.store(addr, &[1, 2, 3]).unwrap();
    /// assert_eq!(process.load(addr, 3).unwrap(), [1, 2, 3]);
    /// ```
    pub fn mmap_anonymous(&self, pages: usize) -> Result<UserAddr, HostError> {
        self.map(pages, MapKind::Anonymous)
    }

    /// Maps `pages` of anonymous memory backed by the zero page until
    /// written (copy-on-write).
    ///
    /// # Errors
    /// [`HostError::BadMapping`] for zero pages or no address space left.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_zero_page(1).unwrap();
    /// assert_eq!(process.load(addr, 1).unwrap(), [0]);
    /// assert_eq!(process.pte(addr).unwrap().0, machine.memory().zero_page());
    /// ```
    pub fn mmap_zero_page(&self, pages: usize) -> Result<UserAddr, HostError> {
        self.map(pages, MapKind::ZeroPage)
    }

    /// Maps `pages` of `file` from page `first_index`: shared and writable
    /// (dirty-tracked), or read-only.
    ///
    /// # Errors
    /// [`HostError::PastEndOfFile`] if the range runs past the file,
    /// [`HostError::BadMapping`] for zero pages.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(4, &[]).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_file(&file, 0, 4, true).unwrap();
    /// process.store(addr, &[9]).unwrap(); // a write fault dirties the page
    /// assert!(machine.cache().is_dirty(&file, 0).unwrap());
    /// ```
    pub fn mmap_file(
        &self,
        file: &File,
        first_index: usize,
        pages: usize,
        writable: bool,
    ) -> Result<UserAddr, HostError> {
        let kind = if writable {
            MapKind::SharedFile {
                file: file.id(),
                first_index,
            }
        } else {
            MapKind::ReadOnlyFile {
                file: file.id(),
                first_index,
            }
        };
        self.map(pages, kind)
    }

    /// Removes the mapping that starts at `addr`, dropping every page
    /// reference its PTEs held (anonymous pages are freed unless something
    /// else, a pin for one, still holds them).
    ///
    /// # Errors
    /// [`HostError::NotMapped`] if no mapping starts at `addr`.
    pub fn munmap(&self, addr: UserAddr) -> Result<(), HostError> {
        let vma = {
            let mut vmas = self
                .inner
                .vmas
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let position = vmas
                .iter()
                .position(|vma| vma.first_vpn * PAGE_SIZE == addr.get())
                .ok_or(HostError::NotMapped { addr })?;
            vmas.remove(position)
        };
        if let Some((id, _)) = vma.kind.file() {
            if let Some(file) = self.inner.cache.file(id) {
                file.remove_mapper(&*self.inner, vma.first_vpn);
            }
        }
        self.inner.unmap(&vma);
        Ok(())
    }

    /// The guard `pin_user_pages` runs under (the mmap lock, read).
    ///
    /// ```
    /// use gupio::prelude::*;
    /// use gupio::pin::UserAddr;
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_anonymous(2).unwrap();
    /// let tracker = machine.tracker();
    /// let guard = process.gup();
    /// let runs: Vec<_> = tracker
    ///     .pin_user_pages(&guard, addr, 2, GupFlags::WRITE)
    ///     .unwrap()
    ///     .collect::<Result<_, _>>()
    ///     .unwrap();
    /// drop(guard);
    /// assert_eq!(runs.iter().map(|run| run.pages()).sum::<usize>(), 2);
    /// for run in runs {
    ///     tracker.release_held(run, false).unwrap();
    /// }
    /// ```
    pub fn gup(&self) -> GupGuard<'_> {
        GupGuard {
            space: &self.inner,
            vmas: self.vmas_read(),
        }
    }

    /// The PTE mapping `addr`'s page, if present: its page and whether it
    /// is writable.
    pub fn pte(&self, addr: UserAddr) -> Option<(Pfn, bool)> {
        self.inner
            .pte(addr.get() / PAGE_SIZE)
            .map(|pte| (pte.pfn, pte.writable))
    }

    /// CPU loads of `count` words from `addr` (8-byte aligned), faulting
    /// pages in for reading as needed.
    ///
    /// # Errors
    /// [`HostError::Fault`] if a page cannot be mapped.
    pub fn load(&self, addr: UserAddr, count: usize) -> Result<Vec<u64>, HostError> {
        let mut out = Vec::with_capacity(count);
        self.access(addr, count, false, |frame, first, words| {
            out.extend((first..first + words).map(|i| frame.load(i)));
        })?;
        Ok(out)
    }

    /// CPU stores of `words` from `addr` (8-byte aligned), faulting pages
    /// in for writing as needed (a shared file page is dirtied by its write
    /// fault). Each page's stores happen under the page-table lock, so
    /// writeback's write-protection never lands in the middle of them.
    ///
    /// # Errors
    /// [`HostError::Fault`] if a page cannot be mapped writable.
    ///
    /// ```
    /// # let machine = gupio_host::Machine::new(gupio_host::MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(1, &[]).unwrap();
    /// let process = machine.spawn_process();
    /// let addr = process.mmap_file(&file, 0, 1, false).unwrap();
    /// assert!(process.store(addr, &[1]).is_err(), "read-only mapping");
    /// ```
    pub fn store(&self, addr: UserAddr, words: &[u64]) -> Result<(), HostError> {
        let mut rest = words;
        self.access(addr, words.len(), true, |frame, first, count| {
            let (now, later) = rest.split_at(count.min(rest.len()));
            for (offset, &word) in now.iter().enumerate() {
                frame.store(first + offset, word);
            }
            rest = later;
        })
    }

    /// Runs `each(frame, first_word, words)` for each page of the access,
    /// under the page-table lock, with the PTE present (and writable for
    /// a write).
    fn access(
        &self,
        addr: UserAddr,
        count: usize,
        write: bool,
        mut each: impl FnMut(&crate::memory::Frame, usize, usize),
    ) -> Result<(), HostError> {
        if addr.get() % 8 != 0 {
            return Err(HostError::Fault {
                addr,
                kind: FaultKind::AccessDenied,
            });
        }
        let vmas = self.vmas_read();
        let mut word = addr.get() / 8;
        let mut left = count;
        while left > 0 {
            let vpn = word / WORDS_PER_PAGE;
            let first = word % WORDS_PER_PAGE;
            let words = (WORDS_PER_PAGE - first).min(left);
            let page_addr = UserAddr::new(vpn * PAGE_SIZE);
            let mut done = false;
            for _ in 0..CPU_FAULT_RETRIES {
                {
                    let ptes = lock(&self.inner.ptes);
                    if let Some(pte) = ptes.get(&vpn) {
                        if pte.writable || !write {
                            if let Some(frame) = self.inner.memory.frame(pte.pfn) {
                                each(frame, first, words);
                                done = true;
                                break;
                            }
                        }
                    }
                }
                self.inner
                    .fault(&vmas, page_addr, write)
                    .map_err(|kind| HostError::Fault {
                        addr: page_addr,
                        kind,
                    })?;
            }
            if !done {
                return Err(HostError::Fault {
                    addr: page_addr,
                    kind: FaultKind::HardwareError,
                });
            }
            word += words;
            left -= words;
        }
        Ok(())
    }
}

impl Drop for Process {
    /// Unmaps everything (the process exits); pinned pages stay allocated
    /// until their holders unpin them.
    fn drop(&mut self) {
        let vmas = std::mem::take(
            &mut *self
                .inner
                .vmas
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for vma in &vmas {
            if let Some((id, _)) = vma.kind.file() {
                if let Some(file) = self.inner.cache.file(id) {
                    file.remove_mapper(&*self.inner, vma.first_vpn);
                }
            }
            self.inner.unmap(vma);
        }
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("mappings", &self.vmas_read().len())
            .field("ptes", &lock(&self.inner.ptes).len())
            .finish()
    }
}

impl AddressSpace for GupGuard<'_> {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        self.space.translate(&self.vmas, addr)
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        self.space.fault(&self.vmas, addr, write)
    }

    fn mapping_kind(&self, addr: UserAddr) -> Result<MappingKind, FaultKind> {
        SpaceInner::mapping_kind(&self.vmas, addr)
    }

    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        self.space.translate_run(&self.vmas, addr, max_pages)
    }

    fn write_protect(&self, addr: UserAddr, len: usize) -> Result<(), ProtectError> {
        self.space.write_protect_range(&self.vmas, addr, len)
    }

    fn restore_write(&self, addr: UserAddr, len: usize) -> Result<(), ProtectError> {
        self.space.restore_write_range(addr, len)
    }
}

impl fmt::Debug for GupGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GupGuard")
            .field("mappings", &self.vmas.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
