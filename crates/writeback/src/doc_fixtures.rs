//! Stand-ins the documentation's examples share (not part of the API):
//! written once here instead of hidden in every example that needs one.

use gupio_pfn::Pfn;
use gupio_pin::{ArrayMemoryMap, FolioOrder, FolioRef, MemoryMap, PageFlags};

use crate::WritebackIo;

/// A disk whose writes always succeed and which never waits for an unpin.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disk;

impl WritebackIo for Disk {
    type Error = i32;

    fn write_protect(&self, _: FolioRef<'_>) {}

    fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> {
        Ok(())
    }

    fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> {
        Ok(())
    }

    fn wait_until_unpinned(&self, _: FolioRef<'_>) -> bool {
        false
    }
}

/// Allocates a folio of order `order` at frame `head` of `map` and marks it
/// dirty, as a write through the page cache leaves it.
///
/// # Panics
/// If the folio does not fit the map or its pages are in use (an example's
/// own mistake).
pub fn dirty<const N: usize>(map: &ArrayMemoryMap<N>, head: usize, order: u32) -> Pfn {
    let head = Pfn::new(head);
    let order = FolioOrder::try_new(order).expect("an example's folio order");
    map.prepare_folio(head, order).expect("an example's folio");
    if let Some(counters) = map.counters(head) {
        counters.set_flags(PageFlags::DIRTY);
    }
    head
}
