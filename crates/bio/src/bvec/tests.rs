use super::*;

const G4: PageGeometry = PageGeometry::FOUR_KIB;

#[test]
fn none_bvec_has_no_page_no_bytes_and_no_pieces() {
    let none = BioVec::NONE;
    assert!(none.is_none() && none.is_empty());
    assert_eq!(
        (none.page(), none.origin(), none.decode()),
        (None, None, None)
    );
    assert_eq!(none.first_page(G4), None);
    assert_eq!(none.last_page(G4), None);
    assert_eq!(none.page_count(G4), 0);
    assert_eq!(none.pages(G4).count(), 0);
    assert_eq!(none.end(G4), None);
    assert_eq!(BioVec::default(), BioVec::NONE);
    assert_eq!(format!("{none:?}"), "BioVec::NONE");
}

#[test]
fn from_tagged_sentinel_drops_length_and_offset() {
    let bv = BioVec::from_tagged(TaggedPfn::NONE, 4096, 12);
    assert_eq!((bv.len(), bv.offset()), (0, 0));
}

#[test]
fn three_page_bvec_yields_three_clipped_pieces_with_origin() {
    let bv = BioVec::new(Pfn::new(40), Origin::Pinned, 3 * 4096 - 100, 50);
    let pieces: Vec<BioVec> = bv.pages(G4).collect();
    assert_eq!(
        pieces,
        [
            BioVec::new(Pfn::new(40), Origin::Pinned, 4046, 50),
            BioVec::new(Pfn::new(41), Origin::Pinned, 4096, 0),
            BioVec::new(Pfn::new(42), Origin::Pinned, 4046, 0),
        ]
    );
}

#[test]
fn unnormalised_offset_is_resolved_by_page_index() {
    let bv = BioVec::new(Pfn::new(10), Origin::Referenced, 100, 3 * 4096 + 7);
    assert_eq!(bv.first_page(G4), Some(Pfn::new(13)));
    let pieces: Vec<BioVec> = bv.pages(G4).collect();
    assert_eq!(
        pieces,
        [BioVec::new(Pfn::new(13), Origin::Referenced, 100, 7)]
    );
    assert_eq!(bv.end(G4), Some((Pfn::new(13), 107)));
}

#[test]
fn page_count_follows_the_geometry() {
    let bv = BioVec::new(Pfn::new(0), Origin::Borrowed, 64 * 1024, 0);
    assert_eq!(bv.page_count(PageGeometry::FOUR_KIB), 16);
    assert_eq!(bv.page_count(PageGeometry::SIXTEEN_KIB), 4);
    assert_eq!(bv.page_count(PageGeometry::SIXTY_FOUR_KIB), 1);
    let max = BioVec::new(Pfn::new(0), Origin::Borrowed, u32::MAX, u32::MAX);
    assert_eq!(max.page_count(G4), 1_048_577); // pages 0xfffff through 0x1fffff
}

#[test]
fn end_is_normalised_to_the_next_page_on_a_boundary() {
    let bv = BioVec::new(Pfn::new(9), Origin::Pinned, 4096 - 512, 512);
    assert_eq!(bv.end(G4), Some((Pfn::new(10), 0)));
    assert_eq!(bv.last_page(G4), Some(Pfn::new(9)));
}

#[test]
fn pieces_stop_at_the_end_of_the_encodable_range() {
    let bv = BioVec::new(Pfn::MAX, Origin::Pinned, 8192, 0);
    let pieces: Vec<BioVec> = bv.pages(G4).collect();
    assert_eq!(pieces, [BioVec::new(Pfn::MAX, Origin::Pinned, 4096, 0)]);
    assert_eq!(bv.last_page(G4), None);
}

#[test]
fn debug_shows_page_origin_len_offset() {
    let bv = BioVec::new(Pfn::new(0x2a), Origin::Borrowed, 8, 16);
    assert_eq!(
        format!("{bv:?}"),
        "BioVec { page: 0x2a, origin: Borrowed, len: 8, offset: 16 }"
    );
}

#[test]
fn accessors_read_back_the_descriptor() {
    let bv = BioVec::new(Pfn::new(7), Origin::Referenced, 512, 1024);
    assert_eq!(bv.tagged(), TaggedPfn::new(Pfn::new(7), Origin::Referenced));
    assert_eq!(
        (bv.page(), bv.origin()),
        (Some(Pfn::new(7)), Some(Origin::Referenced))
    );
    assert_eq!(bv.decode(), Some((Pfn::new(7), Origin::Referenced)));
    assert_eq!((bv.len(), bv.offset()), (512, 1024));
    assert!(!bv.is_none() && !bv.is_empty());
    assert_eq!(BioVec::NONE.tagged(), TaggedPfn::NONE);
    let word = TaggedPfn::new(Pfn::new(3), Origin::Borrowed);
    assert_eq!(
        BioVec::from_tagged(word, 8, 0),
        BioVec::new(Pfn::new(3), Origin::Borrowed, 8, 0)
    );
}

#[test]
fn first_and_last_page_and_the_count_follow_the_bytes() {
    // Bytes 8192..8292 of page 5: page 7 only.
    let bv = BioVec::new(Pfn::new(5), Origin::Pinned, 100, 8192);
    assert_eq!(
        (bv.first_page(G4), bv.last_page(G4)),
        (Some(Pfn::new(7)), Some(Pfn::new(7)))
    );
    // Bytes 4095..=8192: pages 5 + 0, 1 and 2.
    let bv = BioVec::new(Pfn::new(5), Origin::Pinned, 4098, 4095);
    assert_eq!(
        (bv.first_page(G4), bv.last_page(G4)),
        (Some(Pfn::new(5)), Some(Pfn::new(7)))
    );
    assert_eq!(bv.page_count(G4), 3);
    assert_eq!(
        BioVec::new(Pfn::new(5), Origin::Pinned, 4096, 0).page_count(G4),
        1
    );
    assert_eq!(
        BioVec::new(Pfn::new(5), Origin::Pinned, 4096, 1).page_count(G4),
        2
    );
    let empty = BioVec::new(Pfn::new(5), Origin::Pinned, 0, 0);
    assert_eq!(
        (
            empty.first_page(G4),
            empty.last_page(G4),
            empty.page_count(G4)
        ),
        (None, None, 0)
    );
}

#[test]
fn the_single_page_view_walks_every_page_touched() {
    let bv = BioVec::new(Pfn::new(2), Origin::Borrowed, 8192, 0);
    let pages: Vec<Option<Pfn>> = bv.pages(G4).map(|p| p.page()).collect();
    assert_eq!(pages, [Some(Pfn::new(2)), Some(Pfn::new(3))]);
    let bv = BioVec::new(Pfn::new(4), Origin::Pinned, 4096, 2048);
    let lens: Vec<u32> = bv.pages(G4).map(|p| p.len()).collect();
    assert_eq!(lens, [2048, 2048]);
}
