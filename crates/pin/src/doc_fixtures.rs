//! Stand-ins the documentation's examples share (not part of the API):
//! written once here instead of hidden in every example that needs one.

use gupio_pfn::{PageGeometry, Pfn};

use crate::{
    AddressSpace, FaultKind, FolioRef, Mapping, MappingFlags, MemoryMap, PageCounters, PageOps,
    UserAddr, Warning,
};

/// An address space of 4 KiB pages where user address `N * 4096` maps
/// frame `N`, writable; an address past the largest frame is unmapped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl AddressSpace for Identity {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let pfn = Pfn::try_new(addr.get() >> 12).map_err(|_| FaultKind::Unmapped)?;
        Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    }

    fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> {
        Ok(())
    }
}

/// A memory map with no pages, whose hooks do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMemory;

impl MemoryMap for NoMemory {
    fn counters(&self, _: Pfn) -> Option<&PageCounters> {
        None
    }

    fn is_zero_page(&self, _: Pfn) -> bool {
        false
    }
}

impl PageOps for NoMemory {
    fn free_folio(&self, _: FolioRef<'_>) {}

    fn warn(&self, _: Warning) {}

    fn pins_acquired(&self, _: usize) {}

    fn pins_released(&self, _: usize) {}
}
