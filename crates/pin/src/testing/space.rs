//! A scripted address space: a page table of entries from [`BASE`] that
//! GUP walks, counting its faults.

use core::cell::{Cell, RefCell};

use gupio_pfn::{PageGeometry, Pfn};

use crate::{AddressSpace, FaultKind, Mapping, MappingFlags, MappingKind, UserAddr};

/// The page size of every test space.
pub const PAGE: usize = 4096;
/// The user address of entry 0 of every test space.
pub const BASE: usize = 0x10_0000;

/// The frame `raw`.
pub fn pfn(raw: usize) -> Pfn {
    Pfn::new(raw)
}

/// The user address of entry `index` of a test space.
pub fn user(index: usize) -> UserAddr {
    UserAddr::new(BASE + index * PAGE)
}

/// A writable mapping of frame `raw`.
pub fn rw(raw: usize) -> Mapping {
    Mapping::new(pfn(raw), MappingFlags::WRITABLE)
}

/// A read-only mapping of frame `raw`.
pub fn ro(raw: usize) -> Mapping {
    Mapping::new(pfn(raw), MappingFlags::empty())
}

/// One page-table entry of a [`TestSpace`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Entry {
    /// Mapped, as given.
    Present(Mapping),
    /// Not present; a fault maps the given entry.
    Absent(Mapping),
    /// No mapping at all.
    Unmapped,
    /// Mapped read-only in a read-only region: write faults are denied.
    ReadOnlyRegion(Mapping),
    /// Mapped read-only (the zero page, or a page shared copy-on-write);
    /// a write fault maps the second entry.
    CopyOnWrite(Mapping, Mapping),
    /// Not present; the fault handler claims success but maps nothing.
    BrokenFault,
    /// Not present; the fault fails with the given kind.
    FaultFails(FaultKind),
}

/// A page table of `entries` from user address `BASE`, 4 KiB pages.
pub struct TestSpace {
    /// The entries, from `BASE`.
    pub entries: RefCell<Vec<Entry>>,
    /// Calls of `fault_in`.
    pub faults: Cell<usize>,
    /// What `mapping_kind` answers for every entry (not `Unmapped`).
    pub kind: Cell<MappingKind>,
}

impl TestSpace {
    /// A space of `entries`, its mappings of unknown kind.
    pub fn new(entries: &[Entry]) -> Self {
        Self {
            entries: RefCell::new(entries.to_vec()),
            faults: Cell::new(0),
            kind: Cell::new(MappingKind::Unknown),
        }
    }

    /// The space, describing every mapping as `kind`.
    pub fn with_kind(self, kind: MappingKind) -> Self {
        self.kind.set(kind);
        self
    }

    fn index(addr: UserAddr) -> Option<usize> {
        let offset = addr.get().checked_sub(BASE)?;
        assert_eq!(offset % PAGE, 0, "tracker passes page-aligned addresses");
        Some(offset / PAGE)
    }
}

impl AddressSpace for TestSpace {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let entry = Self::index(addr).and_then(|i| self.entries.borrow().get(i).copied());
        match entry.unwrap_or(Entry::Unmapped) {
            Entry::Present(m) | Entry::ReadOnlyRegion(m) | Entry::CopyOnWrite(m, _) => Ok(Some(m)),
            Entry::Absent(_) | Entry::BrokenFault | Entry::FaultFails(_) => Ok(None),
            Entry::Unmapped => Err(FaultKind::Unmapped),
        }
    }

    fn mapping_kind(&self, addr: UserAddr) -> Result<MappingKind, FaultKind> {
        let entry = Self::index(addr).and_then(|i| self.entries.borrow().get(i).copied());
        match entry.unwrap_or(Entry::Unmapped) {
            Entry::Unmapped => Err(FaultKind::Unmapped),
            _ => Ok(self.kind.get()),
        }
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        self.faults.set(self.faults.get() + 1);
        let index = Self::index(addr).ok_or(FaultKind::Unmapped)?;
        let mut entries = self.entries.borrow_mut();
        let entry = entries.get_mut(index).ok_or(FaultKind::Unmapped)?;
        match *entry {
            Entry::Absent(m) => *entry = Entry::Present(m),
            Entry::CopyOnWrite(_, new) if write => *entry = Entry::Present(new),
            Entry::ReadOnlyRegion(_) if write => return Err(FaultKind::AccessDenied),
            Entry::FaultFails(kind) => return Err(kind),
            Entry::Unmapped => return Err(FaultKind::Unmapped),
            _ => {}
        }
        Ok(())
    }
}
