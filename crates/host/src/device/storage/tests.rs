use gupio::bio::{Bio, BioError, BioLimits, BioOp, Sector};
use gupio::pfn::{Origin, Pfn};

use super::*;

#[test]
fn storage_holds_as_many_bvecs_as_its_capacity_and_refuses_more() {
    assert_eq!(OwnedBvecs::with_capacity(16).capacity(), 16);
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(2),
        BioOp::Write,
        Sector(0),
        BioLimits::default(),
    );
    let _ = bio
        .add_page(Pfn::new(1), 4096, 0, Origin::Borrowed)
        .unwrap();
    let _ = bio
        .add_page(Pfn::new(9), 4096, 0, Origin::Borrowed)
        .unwrap();
    let full = bio
        .add_page(Pfn::new(20), 4096, 0, Origin::Borrowed)
        .unwrap_err();
    assert_eq!(full.error(), BioError::TooManyVecs { max_vecs: 2 });
    assert_eq!(bio.all_pages().count(), 2);
}
