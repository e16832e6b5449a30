//! A "user" address space: software page tables that gupio's
//! `pin_user_pages` walks through the [`AddressSpace`] trait.
//!
//! The kernel itself runs without paging, so there is no hardware page
//! table to walk; [`UserSpace`] is the part of a process's page tables that
//! GUP needs: an array of entries mapping user virtual pages from
//! [`USER_BASE`] to frames of the managed region. That is what makes the
//! user buffer realistic: consecutive user pages may sit at unrelated
//! frames (so one user range becomes several bvecs), a run of them may map
//! one large folio (one bvec, one counter update), an untouched anonymous
//! page may map the shared zero page read-only, and a page may not be
//! present until a fault brings it in. [`AddressSpace::fault_in`] does what
//! a page-fault handler does: a demand-zero page gets a fresh frame, and a
//! write to the zero page gets a private copy (copy on write).
//!
//! GUP asks for runs ([`AddressSpace::translate_run`]): [`UserSpace`]
//! answers one by finding the first entry once and scanning the entries
//! after it while they map the next frame with the same permissions, so
//! the user pages of a large folio come back in one answer instead of one
//! translation per page.
//!
//! Every present entry except the zero page's holds one reference on its
//! page, which [`UserSpace::unmap_all`] drops (`munmap`). The CPU reaches
//! user memory only through the entries ([`UserSpace::fill`],
//! [`UserSpace::verify`]: the kernel's `copy_to_user` and friends).

use core::cell::Cell;
use core::fmt;

use gupio::pfn::{PageGeometry, Pfn};
use gupio::pin::{
    AddressSpace, FaultKind, FolioOrder, MappedRun, Mapping, MappingFlags, MappingKind, MemoryMap,
    PinError, Tracker, UserAddr,
};

use crate::mem::PAGE_SIZE;
use crate::pagemap::{MapError, PageMap, GEOMETRY};

/// First user virtual address the page table maps.
pub const USER_BASE: usize = 0x4000_0000;
/// User pages the page table has entries for.
pub const USER_PAGES: usize = 32;

/// One page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pte {
    /// No mapping: an access faults for good (a hole in the address space).
    None,
    /// Anonymous memory not touched yet: a fault allocates a zeroed page.
    DemandZero,
    /// A present page: its frame, and whether the entry allows writes.
    Present {
        /// The mapped frame.
        pfn: Pfn,
        /// Whether the entry allows writes.
        writable: bool,
    },
}

/// Why user memory could not be set up or reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserError {
    /// The address is outside the page table or not page aligned; carries it.
    BadAddress(usize),
    /// The entry is already in use; carries the page's address.
    AlreadyMapped(usize),
    /// The page is not mapped present and writable (for a CPU store) or
    /// present (for a CPU load); carries the page's address.
    NotAccessible(usize),
    /// Taking or dropping the mapping's reference failed.
    Pin(PinError),
    /// The frame's bytes could not be reached.
    Map(MapError),
    /// A byte differs from what was expected: (user address, expected, found).
    Mismatch(usize, u8, u8),
    /// The native run walk answered differently from page-by-page
    /// translation: (user address, page limit).
    RunMismatch(usize, usize),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadAddress(addr) => write!(f, "user address {addr:#x} has no page-table entry"),
            Self::AlreadyMapped(addr) => write!(f, "user page {addr:#x} is already mapped"),
            Self::NotAccessible(addr) => write!(f, "user page {addr:#x} is not accessible"),
            Self::Pin(error) => write!(f, "{error}"),
            Self::Map(error) => write!(f, "{error}"),
            Self::Mismatch(addr, expected, found) => write!(
                f,
                "user byte at {addr:#x}: expected {expected:#04x}, found {found:#04x}"
            ),
            Self::RunMismatch(addr, max_pages) => write!(
                f,
                "translate_run({addr:#x}, {max_pages}) differs from page-by-page translation"
            ),
        }
    }
}

impl From<PinError> for UserError {
    fn from(error: PinError) -> Self {
        Self::Pin(error)
    }
}

impl From<MapError> for UserError {
    fn from(error: MapError) -> Self {
        Self::Map(error)
    }
}

/// Page faults [`UserSpace::fault_in`] resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Demand-zero pages given a fresh frame.
    pub demand_zero: usize,
    /// Zero-page mappings replaced by a private page for a write.
    pub copy_on_write: usize,
}

/// One process's user page table over the kernel's [`PageMap`].
///
/// The entries are `Cell`s: GUP faults pages in through `&self`, as Linux
/// does under the mmap lock; the kernel has one hart and one process.
pub struct UserSpace<'m> {
    map: &'m PageMap,
    entries: [Cell<Pte>; USER_PAGES],
    faults: Cell<FaultStats>,
    /// Run translations answered ([`AddressSpace::translate_run`] calls).
    run_walks: Cell<usize>,
}

impl<'m> UserSpace<'m> {
    /// An address space with every entry [`Pte::None`].
    pub fn new(map: &'m PageMap) -> Self {
        Self {
            map,
            entries: core::array::from_fn(|_| Cell::new(Pte::None)),
            faults: Cell::new(FaultStats::default()),
            run_walks: Cell::new(0),
        }
    }

    /// The user address of page `index`.
    pub const fn page_addr(index: usize) -> usize {
        USER_BASE + index * PAGE_SIZE
    }

    fn entry(&self, addr: usize) -> Option<&Cell<Pte>> {
        self.entries.get(Self::index(addr)?)
    }

    /// The index the entry for the page holding `addr` would have (`None`
    /// below [`USER_BASE`]; the caller checks it against the table's end).
    fn index(addr: usize) -> Option<usize> {
        Some(addr.checked_sub(USER_BASE)? / PAGE_SIZE)
    }

    /// The entry for the page holding `addr`.
    pub fn pte(&self, addr: usize) -> Pte {
        self.entry(addr).map_or(Pte::None, Cell::get)
    }

    /// The faults resolved so far.
    pub fn faults(&self) -> FaultStats {
        self.faults.get()
    }

    /// The run translations answered so far (one page-table walk each).
    pub fn run_walks(&self) -> usize {
        self.run_walks.get()
    }

    /// Checks the native run walk against the trait's page-by-page default
    /// (one [`AddressSpace::translate`] per page) from every entry, one
    /// address below the table and one past its end, for every page limit
    /// up to one more than the table holds. The one intended difference:
    /// a run starting at the zero page is that page alone. Returns the
    /// (address, limit) pairs compared.
    ///
    /// # Errors
    ///
    /// [`UserError::RunMismatch`] for the first pair that differs.
    pub fn check_runs(&self) -> Result<usize, UserError> {
        let reference = PerPage(self);
        let below = USER_BASE - PAGE_SIZE;
        let addrs = core::iter::once(below).chain((0..=USER_PAGES).map(Self::page_addr));
        let mut compared = 0;
        for addr in addrs {
            for max_pages in 1..=USER_PAGES + 1 {
                let at = UserAddr::new(addr);
                let expected = reference.translate_run(at, max_pages).map(|run| {
                    run.map(|run| {
                        if self.map.is_zero_page(run.pfn) {
                            MappedRun { pages: 1, ..run }
                        } else {
                            run
                        }
                    })
                });
                if self.translate_run(at, max_pages) != expected {
                    return Err(UserError::RunMismatch(addr, max_pages));
                }
                compared += 1;
            }
        }
        Ok(compared)
    }

    /// The unused, page-aligned entry for `addr`.
    fn free_entry(&self, addr: usize) -> Result<&Cell<Pte>, UserError> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(UserError::BadAddress(addr));
        }
        let entry = self.entry(addr).ok_or(UserError::BadAddress(addr))?;
        if entry.get() != Pte::None {
            return Err(UserError::AlreadyMapped(addr));
        }
        Ok(entry)
    }

    /// Maps `pfn` at user address `addr`; the entry takes a reference of
    /// its own on the page (the caller keeps its own).
    ///
    /// # Errors
    ///
    /// [`UserError::BadAddress`], [`UserError::AlreadyMapped`], or the
    /// tracker's refusal of the reference.
    pub fn map_page(
        &self,
        tracker: &Tracker<'_, PageMap>,
        addr: usize,
        pfn: Pfn,
        writable: bool,
    ) -> Result<(), UserError> {
        let entry = self.free_entry(addr)?;
        tracker.get_page(pfn)?;
        entry.set(Pte::Present { pfn, writable });
        Ok(())
    }

    /// Maps the shared zero page read-only at `addr` (no reference: the
    /// zero page is never freed).
    ///
    /// # Errors
    ///
    /// [`UserError::BadAddress`], [`UserError::AlreadyMapped`].
    pub fn map_zero_page(&self, addr: usize) -> Result<(), UserError> {
        self.free_entry(addr)?.set(Pte::Present {
            pfn: self.map.zero_page(),
            writable: false,
        });
        Ok(())
    }

    /// Reserves `addr` for anonymous memory that a fault will bring in.
    ///
    /// # Errors
    ///
    /// [`UserError::BadAddress`], [`UserError::AlreadyMapped`].
    pub fn map_demand_zero(&self, addr: usize) -> Result<(), UserError> {
        self.free_entry(addr)?.set(Pte::DemandZero);
        Ok(())
    }

    /// Unmaps every page (`munmap`), dropping each entry's reference.
    /// Returns the pages unmapped.
    ///
    /// # Errors
    ///
    /// The first reference the tracker refused to drop (the others are still
    /// dropped and every entry is cleared).
    pub fn unmap_all(&self, tracker: &Tracker<'_, PageMap>) -> Result<usize, UserError> {
        let mut unmapped = 0;
        let mut first_error = None;
        for entry in &self.entries {
            if let Pte::Present { pfn, .. } = entry.replace(Pte::None) {
                unmapped += 1;
                if pfn != self.map.zero_page() {
                    if let Err(error) = tracker.put_page(pfn) {
                        first_error.get_or_insert(UserError::Pin(error));
                    }
                }
            }
        }
        first_error.map_or(Ok(unmapped), Err)
    }

    /// Tears the address space down (the process exits): every page is
    /// unmapped as [`unmap_all`](Self::unmap_all) does. That drops the
    /// entries' references and nothing else: a page a bio still holds
    /// pinned keeps its pin's references and is freed by the last unpin,
    /// after the device is done with it. Returns the pages unmapped.
    ///
    /// # Errors
    ///
    /// As [`unmap_all`](Self::unmap_all).
    pub fn exit(self, tracker: &Tracker<'_, PageMap>) -> Result<usize, UserError> {
        self.unmap_all(tracker)
    }

    /// Makes every entry that maps `pfn` read-only (writeback's
    /// `folio_mkclean`; a later store faults). Returns the entries changed.
    pub fn write_protect(&self, pfn: Pfn) -> usize {
        let mut changed = 0;
        for entry in &self.entries {
            if let Pte::Present {
                pfn: mapped,
                writable: true,
            } = entry.get()
            {
                if mapped == pfn {
                    entry.set(Pte::Present {
                        pfn,
                        writable: false,
                    });
                    changed += 1;
                }
            }
        }
        changed
    }

    /// The frames mapped by present entries other than the zero page's: the
    /// pages whose counters the mappings own.
    pub fn mapped_frames(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.entries.iter().filter_map(|entry| match entry.get() {
            Pte::Present { pfn, .. } if pfn != self.map.zero_page() => Some(pfn),
            _ => None,
        })
    }

    /// Walks `[addr, addr + len)` page by page: `each(user address, frame
    /// piece)` for the part of each page in the range.
    fn walk(
        &self,
        addr: usize,
        len: usize,
        store: bool,
        mut each: impl FnMut(usize, Pfn, usize, usize) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let end = addr.checked_add(len).ok_or(UserError::BadAddress(addr))?;
        let mut at = addr;
        while at < end {
            let page = at - at % PAGE_SIZE;
            let offset = at - page;
            let piece = (PAGE_SIZE - offset).min(end - at);
            let pfn = match self.entry(at).map(Cell::get) {
                Some(Pte::Present { pfn, writable }) if writable || !store => pfn,
                Some(_) => return Err(UserError::NotAccessible(page)),
                None => return Err(UserError::BadAddress(at)),
            };
            each(at, pfn, offset, piece)?;
            at += piece;
        }
        Ok(())
    }

    /// Stores `byte_at(i)` at user address `addr + i` for every `i < len`
    /// (the kernel's `copy_to_user`; every page must be present and writable).
    ///
    /// # Errors
    ///
    /// [`UserError::NotAccessible`], [`UserError::BadAddress`], or a frame
    /// that cannot be reached.
    pub fn fill(
        &self,
        addr: usize,
        len: usize,
        byte_at: impl Fn(usize) -> u8,
    ) -> Result<(), UserError> {
        self.walk(addr, len, true, |at, pfn, offset, piece| {
            let extent = self.map.extent(pfn, offset, piece)?;
            self.map
                .memory()
                .with_bytes_mut(extent, |bytes| {
                    for (index, byte) in bytes.iter_mut().enumerate() {
                        *byte = byte_at(at - addr + index);
                    }
                })
                .map_err(|error| UserError::Map(error.into()))
        })
    }

    /// Checks that user address `addr + i` holds `byte_at(i)` for every
    /// `i < len` (through the page table, as the process would read it).
    /// Returns the bytes checked.
    ///
    /// # Errors
    ///
    /// [`UserError::Mismatch`] at the first differing byte, or an access error.
    pub fn verify(
        &self,
        addr: usize,
        len: usize,
        byte_at: impl Fn(usize) -> u8,
    ) -> Result<usize, UserError> {
        self.walk(addr, len, false, |at, pfn, offset, piece| {
            let extent = self.map.extent(pfn, offset, piece)?;
            let mismatch = self
                .map
                .memory()
                .with_bytes(extent, |bytes| {
                    bytes.iter().enumerate().find_map(|(index, &found)| {
                        let expected = byte_at(at - addr + index);
                        (found != expected).then_some((at + index, expected, found))
                    })
                })
                .map_err(|error| UserError::Map(error.into()))?;
            match mismatch {
                Some((addr, expected, found)) => Err(UserError::Mismatch(addr, expected, found)),
                None => Ok(()),
            }
        })?;
        Ok(len)
    }

    /// A fresh zeroed page for a fault, or why there is none.
    fn fault_page(&self) -> Result<Pfn, FaultKind> {
        self.map
            .alloc_folio(FolioOrder::SMALL)
            .map_err(|_| FaultKind::OutOfMemory)
    }
}

/// The flags of a present entry.
fn pte_flags(writable: bool) -> MappingFlags {
    if writable {
        MappingFlags::WRITABLE
    } else {
        MappingFlags::empty()
    }
}

impl AddressSpace for UserSpace<'_> {
    fn page_geometry(&self) -> PageGeometry {
        GEOMETRY
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        match self.pte(addr.get()) {
            Pte::None => Err(FaultKind::Unmapped),
            Pte::DemandZero => Ok(None),
            Pte::Present { pfn, writable } => Ok(Some(Mapping::new(pfn, pte_flags(writable)))),
        }
    }

    /// One walk: the first entry is found once, then the entries after it
    /// are scanned in place while each maps the next frame with the same
    /// permissions (at most `max_pages` in all, never past the table's
    /// end). The zero page stands alone: it is a special mapping, never the
    /// start of a run of frames.
    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        self.run_walks.set(self.run_walks.get() + 1);
        let entries = Self::index(addr.get())
            .and_then(|index| self.entries.get(index..))
            .ok_or(FaultKind::Unmapped)?;
        let (first, rest) = entries.split_first().ok_or(FaultKind::Unmapped)?;
        let (pfn, writable) = match first.get() {
            Pte::None => return Err(FaultKind::Unmapped),
            Pte::DemandZero => return Ok(None),
            Pte::Present { pfn, writable } => (pfn, writable),
        };
        let mut pages = 1;
        if !self.map.is_zero_page(pfn) {
            for entry in rest.iter().take(max_pages.saturating_sub(1)) {
                let next = pfn.checked_add(pages);
                match entry.get() {
                    Pte::Present {
                        pfn: mapped,
                        writable: same,
                    } if Some(mapped) == next && same == writable => pages += 1,
                    _ => break,
                }
            }
        }
        Ok(Some(MappedRun {
            pfn,
            pages,
            flags: pte_flags(writable),
        }))
    }

    /// Every mapping here is private anonymous memory except a page mapped
    /// read-only that is not the zero page (a write faults for good): the
    /// answer GUP refuses a write to before it faults anything in.
    fn mapping_kind(&self, addr: UserAddr) -> Result<MappingKind, FaultKind> {
        match self.pte(addr.get()) {
            Pte::None => Err(FaultKind::Unmapped),
            Pte::Present {
                pfn,
                writable: false,
            } if !self.map.is_zero_page(pfn) => Ok(MappingKind::ReadOnly),
            Pte::DemandZero | Pte::Present { .. } => Ok(MappingKind::Anonymous),
        }
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        let entry = self.entry(addr.get()).ok_or(FaultKind::Unmapped)?;
        let mut faults = self.faults.get();
        match entry.get() {
            Pte::None => return Err(FaultKind::Unmapped),
            Pte::DemandZero => {
                // The allocation's reference becomes the mapping's.
                let pfn = self.fault_page()?;
                entry.set(Pte::Present {
                    pfn,
                    writable: true,
                });
                faults.demand_zero += 1;
            }
            Pte::Present { pfn, .. } if write && self.map.is_zero_page(pfn) => {
                // Copy on write: a private copy of the zero page.
                let copy = self.fault_page()?;
                let copied = self
                    .map
                    .extent(pfn, 0, PAGE_SIZE)
                    .and_then(|from| {
                        let to = self.map.extent(copy, 0, PAGE_SIZE)?;
                        Ok(self.map.memory().copy(from, to.addr)?)
                    })
                    .is_ok();
                if !copied {
                    // Give the page back; a refusal is warned by the tracker.
                    let _ = Tracker::new(self.map).put_page(copy);
                    return Err(FaultKind::HardwareError);
                }
                entry.set(Pte::Present {
                    pfn: copy,
                    writable: true,
                });
                faults.copy_on_write += 1;
            }
            // A write to a read-only mapping of anything else.
            Pte::Present {
                writable: false, ..
            } if write => return Err(FaultKind::AccessDenied),
            // Present and usable: nothing to do.
            Pte::Present { .. } => {}
        }
        self.faults.set(faults);
        Ok(())
    }
}

/// A [`UserSpace`] answering runs with the trait's default, page by page:
/// the reference [`UserSpace::check_runs`] compares the native walk with.
struct PerPage<'a, 'm>(&'a UserSpace<'m>);

impl AddressSpace for PerPage<'_, '_> {
    fn page_geometry(&self) -> PageGeometry {
        self.0.page_geometry()
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        self.0.translate(addr)
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        self.0.fault_in(addr, write)
    }
}
