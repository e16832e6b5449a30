use gupio::bio::{Bio, BioLimits, BioOp, Sector};
use gupio::pfn::Origin;

use super::*;
use crate::data::fnv1a;

#[test]
fn bio_checksums_cover_each_page_piece_in_order() {
    let memory = Memory::new(4).unwrap();
    let zeroed = memory.alloc_folio(0, true).unwrap();
    let written = memory.alloc_folio(0, true).unwrap();
    let frame = memory.frame(written).unwrap();
    frame.store(64, 5);
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(2),
        BioOp::Write,
        Sector(0),
        BioLimits::default(),
    );
    let _ = bio.add_page(zeroed, 4096, 0, Origin::Borrowed).unwrap();
    // Bytes 512..1024 of the second page: words 64..128.
    let _ = bio.add_page(written, 512, 512, Origin::Borrowed).unwrap();
    let mut piece = vec![0; 64];
    piece[0] = 5;
    assert_eq!(
        bio_checksums(&memory, &bio),
        [fnv1a(vec![0; 512]), fnv1a(piece)]
    );
}
