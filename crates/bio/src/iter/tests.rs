use super::*;
use gupio_pfn::{Origin, Pfn};

const G4: PageGeometry = PageGeometry::FOUR_KIB;

fn bv(pfn: usize, len: u32, offset: u32) -> BioVec {
    BioVec::new(Pfn::new(pfn), Origin::Pinned, len, offset)
}

fn table() -> [BioVec; 4] {
    [
        bv(10, 1000, 100),
        BioVec::NONE,
        bv(20, 8192, 0),
        bv(30, 24, 4072),
    ]
}

#[test]
fn advance_crosses_bvec_boundaries_and_skips_empty_bvecs() {
    let t = table();
    let mut iter = BvecIter::over(&t, Sector(0)).unwrap();
    assert_eq!(iter.size(), 9216);
    iter.advance(&t, 1000).unwrap();
    // Exactly at the end of bvec 0: past the empty bvec 1, at bvec 2.
    assert_eq!((iter.idx(), iter.bvec_done()), (2, 0));
    iter.advance(&t, 1).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done()), (2, 1));
    iter.advance(&t, 8191 + 23).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (3, 23, 1));
    iter.advance(&t, 1).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (4, 0, 0));
    assert_eq!(iter.segment(&t, G4), None);
}

#[test]
fn advance_past_the_end_leaves_the_iterator_empty_at_the_end() {
    let t = table();
    let mut iter = BvecIter::over(&t, Sector(0)).unwrap();
    iter.advance(&t, 5).unwrap();
    assert_eq!(
        iter.advance(&t, 9212),
        Err(BioError::AdvancePastEnd {
            requested: 9212,
            remaining: 9211
        })
    );
    assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (4, 0, 0));
    // From the end the whole table can be rewound again.
    iter.rewind(&t, 9216).unwrap();
    assert_eq!(iter, BvecIter::over(&t, Sector(0)).unwrap());
}

#[test]
fn advance_by_zero_is_a_no_op_even_when_empty() {
    let t = table();
    let mut iter = BvecIter::new(Sector(0), 0);
    iter.advance(&t, 0).unwrap();
    assert_eq!(iter, BvecIter::new(Sector(0), 0));
}

#[test]
fn iterator_larger_than_its_table_stops_at_the_table_end() {
    let t = [bv(1, 512, 0)];
    let mut iter = BvecIter::new(Sector(0), 4096);
    assert_eq!(iter.pages(&t, G4).count(), 1);
    assert_eq!(
        iter.advance(&t, 1024),
        Err(BioError::AdvancePastEnd {
            requested: 1024,
            remaining: 512
        })
    );
    assert!(iter.is_empty());
}

#[test]
fn rewind_walks_back_over_whole_and_empty_bvecs() {
    let t = table();
    let start = BvecIter::over(&t, Sector(0)).unwrap();
    let mut iter = start;
    iter.advance(&t, 9000).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done()), (2, 8000));
    iter.rewind(&t, 8000).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done()), (2, 0));
    iter.rewind(&t, 1).unwrap();
    assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (0, 999, 8217));
    assert_eq!(
        iter.rewind(&t, 1000),
        Err(BioError::RewindPastStart {
            requested: 1000,
            available: 999
        })
    );
    assert_eq!((iter.idx(), iter.bvec_done(), iter.size()), (0, 999, 8217));
    iter.rewind(&t, 999).unwrap();
    assert_eq!(iter, start);
}

#[test]
fn advance_then_rewind_round_trips_at_every_byte_count() {
    let t = table();
    let start = BvecIter::over(&t, Sector(0)).unwrap();
    let step = if cfg!(miri) { 97 } else { 1 };
    for first in (0..=9216).step_by(step) {
        let mut iter = start;
        iter.advance(&t, first).unwrap();
        let mid = iter;
        for second in [0, 1, 23, 512, 9216 - first] {
            let mut back = mid;
            if second > 9216 - first {
                continue;
            }
            back.advance(&t, second).unwrap();
            back.rewind(&t, second).unwrap();
            assert_eq!(back, mid, "advance {first} then {second}");
        }
        iter.rewind(&t, first).unwrap();
        assert_eq!(iter, start, "advance {first}");
    }
}

#[test]
fn rewind_refuses_to_overflow_the_size() {
    let t = [bv(1, u32::MAX, 0), bv(2, 1, 0)];
    let mut iter = BvecIter::new(Sector(0), u32::MAX);
    iter.advance(&t, u32::MAX).unwrap();
    iter = BvecIter { size: 1, ..iter };
    assert_eq!(
        iter.rewind(&t, u32::MAX),
        Err(BioError::SizeOverflow {
            size: 1,
            len: u32::MAX
        })
    );
}

#[test]
fn over_refuses_tables_above_u32_max_bytes() {
    let t = [bv(1, u32::MAX, 0), bv(2, 1, 0)];
    assert_eq!(
        BvecIter::over(&t, Sector(0)),
        Err(BioError::SizeOverflow {
            size: u32::MAX,
            len: 1
        })
    );
}

#[test]
fn segments_are_normalised_and_capped_at_the_size() {
    let t = table();
    let mut iter = BvecIter::over(&t, Sector(0)).unwrap();
    iter.advance(&t, 1000 + 4100).unwrap();
    let segs: Vec<BioVec> = iter.segments(&t, G4).collect();
    assert_eq!(segs, [bv(21, 4092, 4), bv(30, 24, 4072)]);
    let front = BvecIter::new(Sector(0), 1500);
    let segs: Vec<BioVec> = front.segments(&t, G4).collect();
    assert_eq!(segs, [bv(10, 1000, 100), bv(20, 500, 0)]);
}

#[test]
fn pages_clip_to_page_boundaries_and_keep_the_origin() {
    let t = [
        BioVec::new(Pfn::new(7), Origin::Borrowed, 4096 * 2, 2048),
        BioVec::new(Pfn::new(3), Origin::Referenced, 100, 4000),
    ];
    let iter = BvecIter::over(&t, Sector(0)).unwrap();
    let pages: Vec<BioVec> = iter.pages(&t, G4).collect();
    assert_eq!(
        pages,
        [
            BioVec::new(Pfn::new(7), Origin::Borrowed, 2048, 2048),
            BioVec::new(Pfn::new(8), Origin::Borrowed, 4096, 0),
            BioVec::new(Pfn::new(9), Origin::Borrowed, 2048, 0),
            BioVec::new(Pfn::new(3), Origin::Referenced, 96, 4000),
            BioVec::new(Pfn::new(4), Origin::Referenced, 4, 0),
        ]
    );
}

#[test]
fn pages_follow_the_geometry() {
    let t = [bv(0, 64 * 1024, 0)];
    for (g, n) in [
        (PageGeometry::FOUR_KIB, 16),
        (PageGeometry::SIXTEEN_KIB, 4),
        (PageGeometry::SIXTY_FOUR_KIB, 1),
    ] {
        let iter = BvecIter::over(&t, Sector(0)).unwrap();
        let pages: Vec<BioVec> = iter.pages(&t, g).collect();
        assert_eq!(pages.len(), n);
        assert!(pages
            .iter()
            .all(|p| p.len() == g.size_u32() && p.offset() == 0));
    }
}

#[test]
fn exhausted_iterators_stay_exhausted() {
    let t = table();
    let mut pages = BvecIter::over(&t, Sector(0)).unwrap().pages(&t, G4);
    while pages.next().is_some() {}
    assert_eq!(pages.next(), None);
    let mut segs = BvecIter::over(&t, Sector(0)).unwrap().segments(&t, G4);
    assert_eq!(segs.by_ref().count(), 3);
    assert_eq!(segs.next(), None);
}

#[test]
fn a_new_iterator_stands_at_the_start_with_its_bytes() {
    let iter = BvecIter::new(Sector(4), 512);
    assert_eq!(
        (iter.sector(), iter.size(), iter.idx(), iter.bvec_done()),
        (Sector(4), 512, 0, 0)
    );
    assert!(!iter.is_empty());
    assert!(BvecIter::new(Sector(0), 0).is_empty());
}

#[test]
fn segments_and_pages_iterate_without_moving_the_iterator() {
    let t = [
        bv(4, 8192, 0),
        BioVec::new(Pfn::new(9), Origin::Borrowed, 512, 0),
    ];
    let iter = BvecIter::over(&t, Sector(0)).unwrap();
    let lens: Vec<u32> = iter.segments(&t, G4).map(|s| s.len()).collect();
    assert_eq!(lens, [8192, 512]);
    let pages: Vec<Option<Pfn>> = iter.pages(&t, G4).map(|p| p.page()).collect();
    assert_eq!(
        pages,
        [Some(Pfn::new(4)), Some(Pfn::new(5)), Some(Pfn::new(9))]
    );
    assert_eq!(iter, BvecIter::over(&t, Sector(0)).unwrap());
    let mut segments = iter.segments(&t[..1], G4);
    assert_eq!(segments.next().map(|s| s.len()), Some(8192));
    assert_eq!(segments.next(), None);
    assert_eq!(segments.next(), None);
}
