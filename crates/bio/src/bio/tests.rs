use crate::{
    Added, Bio, BioError, BioLimits, BioOp, BioStatus, BioVec, BvecIter, BvecSlice, BvecStorage,
    Folio, Limit, Origin, OriginSet, PageGeometry, Pfn, Sector, SectorCount, BIO_MAX_VECS,
};

const G4: PageGeometry = PageGeometry::FOUR_KIB;
type Table<const N: usize> = heapless::Vec<BioVec, N>;

fn bio<const N: usize>(table: &mut Table<N>, op: BioOp) -> Bio<&mut Table<N>> {
    Bio::new(table, op, Sector(0), BioLimits::default())
}

fn pfn(raw: usize) -> Pfn {
    Pfn::new(raw)
}

fn folio(head: usize, order: u32) -> Folio {
    Folio::new(pfn(head), gupio_pfn::FolioOrder::try_new(order).unwrap()).unwrap()
}

fn piece(raw: usize, origin: Origin, len: u32, offset: u32) -> BioVec {
    BioVec::new(Pfn::new(raw), origin, len, offset)
}

// ---- building and merging ------------------------------------------------

#[test]
fn first_add_makes_a_bvec_and_contiguous_same_origin_adds_merge() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Write);
    assert_eq!(
        b.add_page(pfn(5), 1024, 0, Origin::Referenced),
        Ok(Added::NewVec)
    );
    assert_eq!(
        b.add_page(pfn(5), 1024, 1024, Origin::Referenced),
        Ok(Added::MergedDuplicateRef { pfn: pfn(5) })
    );
    assert_eq!(b.bvecs(), &[piece(5, Origin::Referenced, 2048, 0)]);
    assert_eq!((b.size(), b.vcnt()), (2048, 1));
}

#[test]
fn merge_across_a_page_boundary_makes_a_multi_page_bvec() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(10), 2048, 2048, Origin::Pinned).unwrap();
    // Page 11 starts exactly where page 10 ends: no page is shared.
    assert_eq!(
        b.add_page(pfn(11), 4096, 0, Origin::Pinned),
        Ok(Added::Merged)
    );
    assert_eq!(
        b.add_page(pfn(12), 512, 0, Origin::Pinned),
        Ok(Added::Merged)
    );
    assert_eq!(
        b.bvecs(),
        &[piece(10, Origin::Pinned, 2048 + 4096 + 512, 2048)]
    );
    let pages: Vec<BioVec> = b.pages().collect();
    assert_eq!(
        pages,
        [
            piece(10, Origin::Pinned, 2048, 2048),
            piece(11, Origin::Pinned, 4096, 0),
            piece(12, Origin::Pinned, 512, 0),
        ]
    );
}

#[test]
fn merge_refuses_mixed_origins() {
    for first in Origin::ALL {
        for second in Origin::ALL {
            let mut t = Table::<4>::new();
            let mut b = bio(&mut t, BioOp::Read);
            let _ = b.add_page(pfn(1), 4096, 0, first).unwrap();
            let added = b.add_page(pfn(2), 4096, 0, second).unwrap();
            assert_eq!(added.merged(), first == second, "{first:?} then {second:?}");
            let origins: Vec<_> = b.bvecs().iter().map(BioVec::origin).collect();
            if first == second {
                assert_eq!(origins, [Some(first)]);
            } else {
                // Each bvec keeps its own origin: nothing silently inherited.
                assert_eq!(origins, [Some(first), Some(second)]);
            }
        }
    }
}

#[test]
fn merge_refuses_non_contiguous_frames() {
    let mut t = Table::<8>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(10), 4096, 0, Origin::Pinned).unwrap();
    // A gap of one page.
    assert_eq!(
        b.add_page(pfn(12), 4096, 0, Origin::Pinned),
        Ok(Added::NewVec)
    );
    // The page before.
    assert_eq!(
        b.add_page(pfn(11), 4096, 0, Origin::Pinned),
        Ok(Added::NewVec)
    );
    // The same page, with a gap inside it.
    assert_eq!(
        b.add_page(pfn(20), 512, 0, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert_eq!(
        b.add_page(pfn(20), 512, 1024, Origin::Pinned),
        Ok(Added::NewVec)
    );
    // Overlapping the last bvec's bytes.
    assert_eq!(
        b.add_page(pfn(20), 512, 1024, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert_eq!(b.vcnt(), 6);
}

#[test]
fn merge_stops_at_the_max_segment_size() {
    let limits = BioLimits::default().with_max_segment_size(8192).unwrap();
    let mut t = Table::<4>::new();
    let mut b = Bio::new(&mut t, BioOp::Write, Sector(0), limits);
    let _ = b.add_page(pfn(1), 4096, 0, Origin::Borrowed).unwrap();
    assert_eq!(
        b.add_page(pfn(2), 4096, 0, Origin::Borrowed),
        Ok(Added::Merged)
    );
    assert_eq!(
        b.add_page(pfn(3), 4096, 0, Origin::Borrowed),
        Ok(Added::NewVec)
    );
    assert_eq!(
        b.bvecs(),
        &[
            piece(1, Origin::Borrowed, 8192, 0),
            piece(3, Origin::Borrowed, 4096, 0)
        ]
    );
}

#[test]
fn segment_larger_than_the_limit_is_refused_with_both_values() {
    let limits = BioLimits::default().with_max_segment_size(8192).unwrap();
    let mut t = Table::<4>::new();
    let mut b = Bio::new(&mut t, BioOp::Write, Sector(0), limits);
    let folio = folio(16, 2);
    let err = b.add_folio(folio, 12288, 0, Origin::Pinned).unwrap_err();
    assert_eq!(
        err.error(),
        BioError::SegmentTooLarge {
            len: 12288,
            max_segment_size: 8192
        }
    );
    assert_eq!(err.rejected(), piece(16, Origin::Pinned, 12288, 0));
    assert_eq!(b.vcnt(), 0);
}

#[test]
fn duplicate_pin_is_reported_only_when_the_fragment_starts_inside_the_last_page() {
    let mut t = Table::<8>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(7), 512, 0, Origin::Pinned).unwrap();
    assert_eq!(
        b.add_page(pfn(7), 3584, 512, Origin::Pinned),
        Ok(Added::MergedDuplicatePin { pfn: pfn(7) })
    );
    // Ends on the page boundary: page 8 is new to the bio.
    assert_eq!(
        b.add_page(pfn(8), 1024, 0, Origin::Pinned),
        Ok(Added::Merged)
    );
    // A folio fragment starting mid-page 8: duplicate on page 8 only.
    let folio = folio(8, 3);
    assert_eq!(
        b.add_folio(folio, 8192, 1024, Origin::Pinned),
        Ok(Added::MergedDuplicatePin { pfn: pfn(8) })
    );
    // Borrowed pages hold nothing: a plain merge.
    let _ = b.add_page(pfn(30), 512, 0, Origin::Borrowed).unwrap();
    assert_eq!(
        b.add_page(pfn(30), 512, 512, Origin::Borrowed),
        Ok(Added::Merged)
    );
}

/// Simulates the caller's pin accounting: a pin per fragment, an unpin per
/// reported duplicate, and the release path's unpin per page per bvec.
#[test]
fn bio_holds_exactly_one_pin_per_page_per_bvec_once_duplicates_are_dropped() {
    let mut t = Table::<8>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let mut pins = std::collections::BTreeMap::<usize, i64>::new();
    let fragments = [
        (7, 512, 0),
        (7, 512, 512),
        (7, 3072, 1024),
        (8, 4096, 0),
        (9, 512, 0),
        (9, 512, 512),
        (9, 512, 2048), // not contiguous: a new bvec on the same page
    ];
    for (raw, len, offset) in fragments {
        *pins.entry(raw).or_default() += 1;
        let added = b.add_page(pfn(raw), len, offset, Origin::Pinned).unwrap();
        if let Some((page, origin)) = added.duplicate() {
            assert_eq!(origin, Origin::Pinned);
            *pins.entry(page.get()).or_default() -= 1;
        }
    }
    for page in b.all_pages() {
        *pins.entry(page.page().unwrap().get()).or_default() -= 1;
    }
    assert!(pins.values().all(|&n| n == 0), "unbalanced pins: {pins:?}");
}

#[test]
fn origin_summary_tracks_every_add() {
    let mut t = Table::<8>::new();
    let mut b = bio(&mut t, BioOp::Write);
    assert_eq!(b.origins(), OriginSet::empty());
    assert!(!b.needs_release());
    let _ = b.add_page(pfn(1), 512, 0, Origin::Borrowed).unwrap();
    assert_eq!(b.origins(), OriginSet::BORROWED);
    assert!(!b.needs_release());
    let _ = b.add_page(pfn(2), 512, 0, Origin::Referenced).unwrap();
    assert!(b.needs_release());
    let _ = b.add_page(pfn(3), 512, 0, Origin::Pinned).unwrap();
    assert_eq!(b.origins(), OriginSet::all());
    assert!(b.origins().has(Origin::Pinned));
    // A refused add changes nothing.
    let _ = b.add_page(pfn(4), 0, 0, Origin::Pinned).unwrap_err();
    assert_eq!(b.origins(), OriginSet::all());
}

// ---- limits and errors ----------------------------------------------------

#[test]
fn the_256_vec_limit_refuses_the_257th_bvec_but_still_merges() {
    let mut t = Table::<300>::new();
    let mut b = bio(&mut t, BioOp::Read);
    assert_eq!(b.max_vecs(), BIO_MAX_VECS);
    for i in 0..BIO_MAX_VECS {
        let _ = b.add_page(pfn(2 * i), 512, 0, Origin::Pinned).unwrap();
    }
    assert!(b.is_full());
    let err = b.add_page(pfn(1000), 512, 0, Origin::Pinned).unwrap_err();
    assert_eq!(err.error(), BioError::TooManyVecs { max_vecs: 256 });
    assert_eq!(err.rejected(), piece(1000, Origin::Pinned, 512, 0));
    // Still mergeable into the last bvec.
    let last = 2 * (BIO_MAX_VECS - 1);
    assert_eq!(
        b.add_page(pfn(last), 512, 512, Origin::Pinned),
        Ok(Added::MergedDuplicatePin { pfn: pfn(last) })
    );
    assert_eq!((b.vcnt(), b.size()), (256, 256 * 512 + 512));
}

#[test]
fn max_vecs_is_the_smaller_of_the_limit_and_the_storage() {
    let limits = BioLimits::default().with_max_vecs(3).unwrap();
    let mut t = Table::<8>::new();
    let b = Bio::new(&mut t, BioOp::Read, Sector(0), limits);
    assert_eq!(b.max_vecs(), 3);
    let mut backing = [BioVec::NONE; 2];
    let mut b = Bio::new(BvecSlice::new(&mut backing), BioOp::Read, Sector(0), limits);
    assert_eq!(b.max_vecs(), 2);
    let _ = b.add_page(pfn(1), 512, 0, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(3), 512, 0, Origin::Pinned).unwrap();
    assert_eq!(
        b.add_page(pfn(5), 512, 0, Origin::Pinned)
            .unwrap_err()
            .error(),
        BioError::TooManyVecs { max_vecs: 2 }
    );
}

#[test]
fn size_overflow_is_refused_below_u32_max() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Read);
    // A 4 GiB folio of 4 KiB pages.
    let folio = folio(1 << 20, 20);
    let big = u32::MAX - 511; // the largest 512-aligned length
    assert_eq!(
        b.add_folio(folio, big, 0, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert_eq!(b.size(), big);
    let err = b.add_page(pfn(7), 1024, 0, Origin::Pinned).unwrap_err();
    assert_eq!(
        err.error(),
        BioError::SizeOverflow {
            size: big,
            len: 1024
        }
    );
    assert_eq!(err.rejected(), piece(7, Origin::Pinned, 1024, 0));
    // 512 more bytes would reach u32::MAX + 1.
    let end = folio.head().get() + (big as usize >> 12);
    let err = b
        .add_page(pfn(end), 512, big & 4095, Origin::Pinned)
        .unwrap_err();
    assert_eq!(
        err.error(),
        BioError::SizeOverflow {
            size: big,
            len: 512
        }
    );
    assert_eq!(b.size(), big);
}

#[test]
fn zero_length_and_runs_past_the_page_or_folio_are_refused() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let err = b.add_page(pfn(1), 0, 512, Origin::Referenced).unwrap_err();
    assert_eq!(err.error(), BioError::ZeroLength);
    assert_eq!(err.rejected(), piece(1, Origin::Referenced, 0, 512));
    let err = b
        .add_page(pfn(1), 1024, 3584, Origin::Referenced)
        .unwrap_err();
    assert_eq!(
        err.error(),
        BioError::PastPageRun {
            offset: 3584,
            len: 1024,
            run_bytes: 4096
        }
    );
    let err = b
        .add_page(pfn(1), 512, u32::MAX - 100, Origin::Referenced)
        .unwrap_err();
    assert!(matches!(err.error(), BioError::PastPageRun { .. }));
    let folio = folio(4, 2);
    let err = b.add_folio(folio, 4096, 12800, Origin::Pinned).unwrap_err();
    assert_eq!(
        err.error(),
        BioError::PastPageRun {
            offset: 12800,
            len: 4096,
            run_bytes: 16384
        }
    );
    assert_eq!(err.rejected(), piece(4, Origin::Pinned, 4096, 12800));
    assert_eq!((b.vcnt(), b.size()), (0, 0));
}

#[test]
fn dma_alignment_is_checked_on_offset_and_length() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Read);
    for (len, offset) in [(100, 0), (512, 100), (513, 512)] {
        let err = b.add_page(pfn(1), len, offset, Origin::Pinned).unwrap_err();
        assert_eq!(
            err.error(),
            BioError::Misaligned {
                offset,
                len,
                dma_alignment: 511
            }
        );
    }
    // Relaxed to 4 bytes, as NVMe devices allow.
    let limits = BioLimits::default().with_dma_alignment(3).unwrap();
    let mut t = Table::<4>::new();
    let mut b = Bio::new(&mut t, BioOp::Read, Sector(0), limits);
    assert_eq!(
        b.add_page(pfn(1), 100, 4, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert!(b.add_page(pfn(1), 100, 106, Origin::Pinned).is_err());
}

#[test]
fn dma_alignment_applies_to_the_normalised_offset_of_a_folio() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let folio = folio(8, 3);
    // Byte 4096 + 512 of the folio: page 9, offset 512.
    assert_eq!(
        b.add_folio(folio, 1024, 4608, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert_eq!(b.bvecs(), &[piece(9, Origin::Pinned, 1024, 512)]);
}

#[test]
fn pages_on_flush_and_discard_bios_are_refused() {
    for op in [BioOp::Flush, BioOp::Discard] {
        let mut t = Table::<4>::new();
        let mut b = bio(&mut t, op);
        let err = b.add_page(pfn(1), 512, 0, Origin::Pinned).unwrap_err();
        assert_eq!(err.error(), BioError::OpMismatch { op });
        let err = b.add_bvec(BioVec::NONE).unwrap_err();
        assert_eq!(err.error(), BioError::OpMismatch { op });
        let err = b
            .add_folio(Folio::single(pfn(1)), 512, 0, Origin::Pinned)
            .unwrap_err();
        assert_eq!(err.error(), BioError::OpMismatch { op });
    }
}

#[test]
fn add_bvec_refuses_the_none_page_and_unencodable_runs_and_normalises() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Write);
    assert_eq!(
        b.add_bvec(BioVec::NONE).unwrap_err().error(),
        BioError::NoPage
    );
    let tail = BioVec::new(Pfn::MAX, Origin::Pinned, 8192, 0);
    let err = b.add_bvec(tail).unwrap_err();
    assert_eq!(
        err.error(),
        BioError::PfnOutOfRange {
            pfn: Pfn::MAX.get(),
            pages: 2
        }
    );
    assert_eq!(err.rejected(), tail);
    let far = BioVec::new(Pfn::new(Pfn::MAX.get() - 1), Origin::Pinned, 512, 2 * 4096);
    assert!(matches!(
        b.add_bvec(far).unwrap_err().error(),
        BioError::PfnOutOfRange { pages: 3, .. }
    ));
    assert_eq!(
        b.add_bvec(BioVec::new(pfn(3), Origin::Pinned, 0, 0))
            .unwrap_err()
            .error(),
        BioError::ZeroLength
    );
    let multi = BioVec::new(pfn(3), Origin::Pinned, 3 * 4096, 4096 + 1024);
    assert_eq!(b.add_bvec(multi), Ok(Added::NewVec));
    assert_eq!(b.bvecs(), &[piece(4, Origin::Pinned, 3 * 4096, 1024)]);
    assert_eq!(b.pages().count(), 4);
    assert_eq!(b.vcnt(), 1);
}

#[test]
fn every_refused_add_leaves_the_bio_unchanged() {
    let mut t = Table::<2>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(1), 512, 0, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(3), 512, 0, Origin::Pinned).unwrap();
    let before: Vec<BioVec> = b.bvecs().to_vec();
    let (size, origins, iter) = (b.size(), b.origins(), b.iter());
    let attempts = [
        b.add_page(pfn(5), 0, 0, Origin::Referenced),
        b.add_page(pfn(5), 512, 4000, Origin::Referenced),
        b.add_page(pfn(5), 500, 0, Origin::Referenced),
        b.add_page(pfn(5), 512, 0, Origin::Referenced),
        b.add_bvec(BioVec::NONE),
    ];
    assert!(attempts.iter().all(Result::is_err));
    assert_eq!(b.bvecs(), &before[..]);
    assert_eq!((b.size(), b.origins(), b.iter()), (size, origins, iter));
}

#[test]
fn add_error_displays_the_reason_and_the_rejected_fragment() {
    let mut t = Table::<1>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let err = b.add_page(pfn(0x2a), 0, 0, Origin::Pinned).unwrap_err();
    assert_eq!(
        err.to_string(),
        "zero-length fragment, range or bio (refused BioVec { page: 0x2a, origin: Pinned, \
         len: 0, offset: 0 }; the caller keeps its reference)"
    );
    let source = core::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(
        source.as_deref(),
        Some("zero-length fragment, range or bio")
    );
}

#[test]
fn every_error_variant_displays_its_values() {
    let all = [
        BioError::ZeroLength,
        BioError::NoPage,
        BioError::PastPageRun {
            offset: 1,
            len: 2,
            run_bytes: 3,
        },
        BioError::PfnOutOfRange {
            pfn: 0x10,
            pages: 2,
        },
        BioError::OpMismatch { op: BioOp::Flush },
        BioError::TooManyVecs { max_vecs: 256 },
        BioError::SegmentTooLarge {
            len: 9,
            max_segment_size: 8,
        },
        BioError::SizeOverflow { size: 7, len: 6 },
        BioError::Misaligned {
            offset: 5,
            len: 4,
            dma_alignment: 511,
        },
        BioError::NotBlockMultiple {
            bytes: 512,
            logical_block_size: 4096,
        },
        BioError::AdvancePastEnd {
            requested: 9,
            remaining: 8,
        },
        BioError::RewindPastStart {
            requested: 9,
            available: 8,
        },
        BioError::NotSectorMultiple { bytes: 100 },
        BioError::SectorOverflow {
            sector: 5,
            sectors: 6,
        },
        BioError::SplitOutOfRange {
            sectors: 0,
            bio_sectors: 8,
        },
        BioError::SplitUnaligned {
            sectors: 3,
            block_sectors: 8,
        },
        BioError::InvalidLimit {
            limit: Limit::MaxVecs,
            value: 0,
        },
    ];
    let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (err, text) in all.iter().zip(&texts) {
        assert!(!text.is_empty(), "{err:?}");
    }
    assert!(texts[2].contains("offset 1") && texts[2].contains("3-byte"));
    assert!(texts[16].contains("max_vecs = 0"));
    let unique: std::collections::BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), all.len());
}

// ---- advance, rewind, validate --------------------------------------------

fn three_vec_bio<const N: usize>(t: &mut Table<N>) -> Bio<&mut Table<N>> {
    let mut b = Bio::new(t, BioOp::Read, Sector(1000), BioLimits::default());
    let _ = b.add_page(pfn(10), 1024, 512, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(20), 4096, 0, Origin::Referenced).unwrap();
    let _ = b.add_page(pfn(21), 4096, 0, Origin::Referenced).unwrap();
    let _ = b.add_page(pfn(40), 2048, 0, Origin::Borrowed).unwrap();
    b
}

#[test]
fn advance_moves_the_sector_by_bytes_over_512() {
    let mut t = Table::<8>::new();
    let mut b = three_vec_bio(&mut t);
    assert_eq!(b.size(), 11264);
    b.advance(1536).unwrap();
    assert_eq!((b.sector(), b.size()), (Sector(1003), 9728));
    assert_eq!((b.iter().idx(), b.iter().bvec_done()), (1, 512));
    let first = b.pages().next().unwrap();
    assert_eq!(first, piece(20, Origin::Referenced, 3584, 512));
}

#[test]
fn advance_past_the_end_leaves_the_bio_empty_and_at_the_end() {
    let mut t = Table::<8>::new();
    let mut b = three_vec_bio(&mut t);
    assert_eq!(
        b.advance(11776),
        Err(BioError::AdvancePastEnd {
            requested: 11776,
            remaining: 11264
        })
    );
    assert_eq!((b.size(), b.sector()), (0, Sector(1000 + 22)));
    assert_eq!(b.pages().count(), 0);
    // The whole table is still there for the release path.
    assert_eq!(b.all_pages().count(), 4);
    b.rewind(11264).unwrap();
    assert_eq!((b.size(), b.sector()), (11264, Sector(1000)));
}

#[test]
fn advance_and_rewind_refuse_partial_sectors_and_sector_overflow() {
    let mut t = Table::<8>::new();
    let mut b = three_vec_bio(&mut t);
    let iter = b.iter();
    assert_eq!(
        b.advance(511),
        Err(BioError::NotSectorMultiple { bytes: 511 })
    );
    assert_eq!(b.rewind(1), Err(BioError::NotSectorMultiple { bytes: 1 }));
    assert_eq!(
        b.rewind(512),
        Err(BioError::RewindPastStart {
            requested: 512,
            available: 0
        })
    );
    assert_eq!(b.iter(), iter);
    b.set_sector(Sector(1));
    b.advance(1024).unwrap();
    assert_eq!(b.rewind(1024), Ok(()), "back to sector 1");
    b.advance(1024).unwrap();
    b.set_sector(Sector(0));
    assert_eq!(
        b.rewind(1024),
        Err(BioError::SectorOverflow {
            sector: 0,
            sectors: 2
        })
    );
    b.set_sector(Sector(u64::MAX));
    assert_eq!(
        b.advance(512),
        Err(BioError::SectorOverflow {
            sector: u64::MAX,
            sectors: 1
        })
    );
    assert_eq!(b.size(), 11264 - 1024);
}

#[test]
fn advance_and_rewind_round_trip_at_every_sector() {
    let mut t = Table::<8>::new();
    let mut b = three_vec_bio(&mut t);
    let start = b.iter();
    for first in (0..=11264).step_by(512) {
        b.advance(first).unwrap();
        let mid = b.iter();
        for second in (0..=11264 - first).step_by(1536) {
            b.advance(second).unwrap();
            b.rewind(second).unwrap();
            assert_eq!(b.iter(), mid);
        }
        b.rewind(first).unwrap();
        assert_eq!(b.iter(), start, "advance {first}");
    }
}

/// Found by the `bio_builder` fuzz target: an iterator at the end of the
/// table stood past the last bvec when a fragment merged into it.
#[test]
fn adds_after_advancing_to_the_end_extend_the_window() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Write);
    let _ = b.add_page(pfn(1), 1024, 0, Origin::Pinned).unwrap();
    b.advance(1024).unwrap();
    assert_eq!(b.pages().count(), 0);
    // Merges into the bvec the iterator has finished.
    assert_eq!(
        b.add_page(pfn(1), 512, 1024, Origin::Pinned),
        Ok(Added::MergedDuplicatePin { pfn: pfn(1) })
    );
    assert_eq!((b.iter().idx(), b.iter().bvec_done()), (0, 1024));
    assert_eq!(
        b.pages().collect::<Vec<_>>(),
        [piece(1, Origin::Pinned, 512, 1024)]
    );
    // A new bvec after the end.
    b.advance(512).unwrap();
    assert_eq!(
        b.add_page(pfn(9), 512, 0, Origin::Pinned),
        Ok(Added::NewVec)
    );
    assert_eq!(
        b.pages().collect::<Vec<_>>(),
        [piece(9, Origin::Pinned, 512, 0)]
    );
    // Past the end by error, then a merge: the same.
    assert!(b.advance(4096).is_err());
    let _ = b.add_page(pfn(9), 512, 512, Origin::Pinned).unwrap();
    assert_eq!(
        b.pages().collect::<Vec<_>>(),
        [piece(9, Origin::Pinned, 512, 512)]
    );
    assert_eq!(b.sector(), Sector(4));
    b.rewind(2048).unwrap();
    assert_eq!(b.iter(), BvecIter::over(b.bvecs(), Sector(0)).unwrap());
}

#[test]
fn validate_checks_emptiness_block_multiples_and_the_sector_range() {
    let limits = BioLimits::default().with_logical_block_size(4096).unwrap();
    let mut t = Table::<4>::new();
    let mut b = Bio::new(&mut t, BioOp::Write, Sector(u64::MAX - 8), limits);
    assert_eq!(b.validate(), Err(BioError::ZeroLength));
    let _ = b.add_page(pfn(1), 2048, 0, Origin::Pinned).unwrap();
    assert_eq!(
        b.validate(),
        Err(BioError::NotBlockMultiple {
            bytes: 2048,
            logical_block_size: 4096
        })
    );
    let _ = b.add_page(pfn(2), 4096, 0, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(1), 2048, 2048, Origin::Pinned).unwrap();
    assert_eq!(
        b.validate(),
        Err(BioError::SectorOverflow {
            sector: u64::MAX - 8,
            sectors: 16
        })
    );
    b.set_sector(Sector(u64::MAX - 16));
    assert_eq!(b.validate(), Ok(()));
    let mut t = Table::<1>::new();
    assert_eq!(bio(&mut t, BioOp::Flush).validate(), Ok(()));
}

#[test]
fn discard_bios_carry_a_size_and_no_pages() {
    let mut t = Table::<1>::new();
    let mut b = Bio::new(&mut t, BioOp::Discard, Sector(64), BioLimits::default());
    assert_eq!(b.validate(), Err(BioError::ZeroLength));
    b.set_discard_size(8192).unwrap();
    assert_eq!(b.validate(), Ok(()));
    assert_eq!(
        (
            b.pages().count(),
            b.all_pages().count(),
            b.segments().count()
        ),
        (0, 0, 0)
    );
    b.advance(1024).unwrap();
    assert_eq!((b.sector(), b.size()), (Sector(66), 7168));
    assert_eq!(
        b.rewind(1536),
        Err(BioError::RewindPastStart {
            requested: 1536,
            available: 1024
        })
    );
    {
        let mut front = b.split(SectorCount(4)).unwrap();
        assert_eq!((front.sector(), front.size()), (Sector(66), 2048));
        front.advance(512).unwrap();
        front.rewind(512).unwrap();
        assert_eq!(front.pages().count(), 0);
    }
    assert_eq!((b.sector(), b.size()), (Sector(70), 5120));
    b.rewind(3072).unwrap();
    assert_eq!((b.sector(), b.size()), (Sector(64), 8192));
    assert_eq!(
        b.advance(8704),
        Err(BioError::AdvancePastEnd {
            requested: 8704,
            remaining: 8192
        })
    );
    assert_eq!((b.sector(), b.size()), (Sector(80), 0));
    let mut t = Table::<1>::new();
    assert_eq!(
        bio(&mut t, BioOp::Write).set_discard_size(512),
        Err(BioError::OpMismatch { op: BioOp::Write })
    );
}

#[test]
fn status_op_and_storage_accessors() {
    let mut t = Table::<2>::new();
    let mut b = bio(&mut t, BioOp::Read);
    assert!(b.op().dirties_pages() && b.op().has_data());
    assert!(b.is_owner());
    assert_eq!(b.status(), BioStatus::Ok);
    b.set_status(BioStatus::IoError);
    assert_eq!(b.status(), BioStatus::IoError);
    assert_eq!(b.status().to_string(), "I/O error");
    assert_eq!(b.geometry(), G4);
    let _ = b.add_page(pfn(1), 512, 0, Origin::Pinned).unwrap();
    let storage = b.into_storage();
    assert_eq!(storage.as_slice(), &[piece(1, Origin::Pinned, 512, 0)]);
    // A new bio over used storage starts empty.
    let b = bio(&mut t, BioOp::Write);
    assert_eq!((b.vcnt(), b.size()), (0, 0));
}

// ---- split --------------------------------------------------------------

#[test]
fn split_refuses_zero_all_more_and_unaligned_sectors() {
    let mut t = Table::<8>::new();
    let b = three_vec_bio(&mut t); // 22 sectors
    let iter = b.iter();
    for sectors in [0, 22, 23, u32::MAX] {
        assert_eq!(
            b.split(SectorCount(sectors)).unwrap_err(),
            BioError::SplitOutOfRange {
                sectors,
                bio_sectors: 22
            }
        );
    }
    assert_eq!(b.iter(), iter);
    let limits = BioLimits::default().with_logical_block_size(2048).unwrap();
    let mut t = Table::<8>::new();
    let mut b = Bio::new(&mut t, BioOp::Write, Sector(0), limits);
    let _ = b.add_folio(folio(16, 2), 16384, 0, Origin::Pinned).unwrap();
    assert_eq!(
        b.split(SectorCount(6)).unwrap_err(),
        BioError::SplitUnaligned {
            sectors: 6,
            block_sectors: 4
        }
    );
    assert!(b.split(SectorCount(8)).is_ok());
    let mut t = Table::<1>::new();
    let flush = bio(&mut t, BioOp::Flush);
    assert!(matches!(
        flush.split(SectorCount(1)),
        Err(BioError::SplitOutOfRange { bio_sectors: 0, .. })
    ));
    let mut t = Table::<1>::new();
    let mut edge = Bio::new(
        &mut t,
        BioOp::Write,
        Sector(u64::MAX - 1),
        BioLimits::default(),
    );
    let _ = edge.add_page(pfn(1), 4096, 0, Origin::Pinned).unwrap();
    assert_eq!(
        edge.split(SectorCount(2)).unwrap_err(),
        BioError::SectorOverflow {
            sector: u64::MAX - 1,
            sectors: 2
        }
    );
}

#[test]
fn split_parts_together_cover_exactly_the_original_bytes() {
    let mut t = Table::<8>::new();
    let b = three_vec_bio(&mut t);
    let whole: Vec<BioVec> = b.pages().collect();
    for sectors in 1..22 {
        let mut t2 = Table::<8>::new();
        let b2 = three_vec_bio(&mut t2);
        let front = b2.split(SectorCount(sectors)).unwrap();
        assert_eq!(front.size(), sectors * 512);
        assert_eq!(front.sector(), Sector(1000));
        assert_eq!(b2.sector(), Sector(1000 + u64::from(sectors)));
        assert_eq!(front.size() + b2.size(), 11264);
        let mut joined: Vec<BioVec> = front.pages().collect();
        joined.extend(b2.pages());
        assert_eq!(canonical(&joined), canonical(&whole), "split at {sectors}");
        assert!(!front.is_owner());
    }
}

#[test]
fn split_parts_can_be_in_flight_together_and_split_again() {
    let mut t = Table::<8>::new();
    let b = three_vec_bio(&mut t);
    let mut first = b.split(SectorCount(8)).unwrap();
    let second = b.split(SectorCount(8)).unwrap();
    let inner = first.split(SectorCount(2)).unwrap();
    assert_eq!(
        (inner.sector(), first.sector(), second.sector(), b.sector()),
        (Sector(1000), Sector(1002), Sector(1008), Sector(1016))
    );
    assert_eq!(
        (inner.size(), first.size(), second.size(), b.size()),
        (1024, 3072, 4096, 3072)
    );
    let mut all: Vec<BioVec> = inner.pages().collect();
    all.extend(first.pages());
    all.extend(second.pages());
    all.extend(b.pages());
    assert_eq!(all.iter().map(|p| u64::from(p.len())).sum::<u64>(), 11264);
    // Segments of a split keep origins and stop at its end.
    let segs: Vec<BioVec> = second.segments().collect();
    assert_eq!(segs, [piece(20, Origin::Referenced, 4096, 3072)]);
}

#[test]
fn split_part_advance_and_rewind_stay_inside_it() {
    let mut t = Table::<8>::new();
    let b = three_vec_bio(&mut t);
    let mut part = b.split(SectorCount(10)).unwrap();
    assert_eq!(
        part.rewind(512),
        Err(BioError::RewindPastStart {
            requested: 512,
            available: 0
        })
    );
    part.advance(2048).unwrap();
    assert_eq!((part.sector(), part.size()), (Sector(1004), 3072));
    assert_eq!(
        part.advance(100),
        Err(BioError::NotSectorMultiple { bytes: 100 })
    );
    part.rewind(1024).unwrap();
    assert_eq!((part.sector(), part.size()), (Sector(1002), 4096));
    assert_eq!(
        part.advance(8192),
        Err(BioError::AdvancePastEnd {
            requested: 8192,
            remaining: 4096
        })
    );
    assert_eq!((part.sector(), part.size()), (Sector(1010), 0));
    part.rewind(5120).unwrap();
    assert_eq!((part.sector(), part.size()), (Sector(1000), 5120));
    part.set_status(BioStatus::Again);
    assert_eq!((part.status(), part.op()), (BioStatus::Again, BioOp::Read));
    assert_eq!(part.limits().geometry(), part.geometry());
    assert_eq!(part.iter().size(), 5120);
}

#[test]
fn owner_can_rewind_over_split_bytes_once_the_parts_are_gone() {
    let mut t = Table::<8>::new();
    let mut b = three_vec_bio(&mut t);
    let start = b.iter();
    {
        let _front = b.split(SectorCount(6)).unwrap();
    }
    b.rewind(3072).unwrap();
    assert_eq!(b.iter(), start);
}

// ---- property tests -----------------------------------------------------

/// splitmix64: a tiny deterministic generator for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
}

const ROUNDS: u64 = if cfg!(miri) { 12 } else { 600 };

/// Single-page pieces with contiguous neighbours in the same page and of
/// the same origin joined: a form in which two descriptions of the same
/// bytes compare equal however they were cut.
fn canonical(pieces: &[BioVec]) -> Vec<(usize, Origin, u32, u32)> {
    let mut out: Vec<(usize, Origin, u32, u32)> = Vec::new();
    for p in pieces {
        let (page, origin) = p.decode().unwrap();
        assert!(p.offset() + p.len() <= 4096, "piece crosses a page: {p:?}");
        assert!(!p.is_empty());
        match out.last_mut() {
            Some(last)
                if last.0 == page.get() && last.1 == origin && last.2 + last.3 == p.offset() =>
            {
                last.3 += p.len();
            }
            _ => out.push((page.get(), origin, p.offset(), p.len())),
        }
    }
    out
}

/// The single-page pieces of a fragment given as (first page, offset in
/// it, len).
fn fragment_pieces(first: usize, origin: Origin, offset: u32, len: u32) -> Vec<BioVec> {
    let mut out = Vec::new();
    let mut at = u64::from(offset);
    let end = at + u64::from(len);
    while at < end {
        let page = first + usize::try_from(at >> 12).unwrap();
        let off = u32::try_from(at & 4095).unwrap();
        let n = u32::try_from((4096 - u64::from(off)).min(end - at)).unwrap();
        out.push(piece(page, origin, n, off));
        at += u64::from(n);
    }
    out
}

/// Random fragments, often contiguous with the previous one so merges
/// happen; returns what was accepted as single-page pieces.
fn build_random<S: BvecStorage>(rng: &mut Rng, b: &mut Bio<S>, adds: usize) -> Vec<BioVec> {
    let mut accepted = Vec::new();
    let mut cursor = (100usize, 0u32);
    for _ in 0..adds {
        let origin = rng.pick(&Origin::ALL);
        let (page, offset) = match rng.below(4) {
            0 | 1 => cursor,
            2 => (cursor.0, u32::try_from(rng.below(8)).unwrap() * 512),
            _ => (
                100 + usize::try_from(rng.below(64)).unwrap(),
                u32::try_from(rng.below(8)).unwrap() * 512,
            ),
        };
        let len = u32::try_from(1 + rng.below(24)).unwrap() * 512;
        let (result, len) = if rng.below(3) == 0 {
            let order = u32::try_from(rng.below(3)).unwrap();
            let head = page & !((1 << order) - 1);
            let folio = folio(head, order);
            let off = u32::try_from(page - head).unwrap() * 4096 + offset;
            (b.add_folio(folio, len, off, origin), len)
        } else {
            let len = len.min(4096 - offset);
            (b.add_page(pfn(page), len, offset, origin), len)
        };
        match result {
            Ok(_) => {
                // What the caller passed, not what the bio stored.
                accepted.extend(fragment_pieces(page, origin, offset, len));
                let end = u64::from(offset) + u64::from(len);
                cursor = (
                    page + usize::try_from(end >> 12).unwrap(),
                    u32::try_from(end & 4095).unwrap(),
                );
            }
            Err(err) => {
                let e = err.error();
                assert!(
                    matches!(
                        e,
                        BioError::PastPageRun { .. } | BioError::TooManyVecs { .. }
                    ),
                    "unexpected refusal {err}"
                );
            }
        }
    }
    accepted
}

#[test]
fn property_iterating_a_bio_yields_exactly_the_bytes_and_origins_added() {
    let mut rng = Rng(0x5eed_0001);
    for round in 0..ROUNDS {
        let mut t = Table::<32>::new();
        let mut b = Bio::new(&mut t, BioOp::Read, Sector(0), BioLimits::default());
        let adds = usize::try_from(1 + rng.below(40)).unwrap();
        let accepted = build_random(&mut rng, &mut b, adds);
        let pages: Vec<BioVec> = b.pages().collect();
        assert_eq!(canonical(&pages), canonical(&accepted), "round {round}");
        let all: Vec<BioVec> = b.all_pages().collect();
        assert_eq!(all, pages);
        let total: u64 = accepted.iter().map(|p| u64::from(p.len())).sum();
        assert_eq!(u64::from(b.size()), total);
        // Segments cover the same bytes, one per bvec, offsets in-page.
        let segs: Vec<BioVec> = b.segments().collect();
        assert_eq!(segs.len(), b.vcnt());
        let seg_pieces: Vec<BioVec> = segs.iter().flat_map(|s| s.pages(G4)).collect();
        assert_eq!(seg_pieces, pages);
        // No two adjacent bvecs that should have merged.
        for pair in b.bvecs().windows(2) {
            let end = pair[0].end(G4).unwrap();
            let next = (pair[1].page().unwrap(), pair[1].offset());
            assert!(
                end != next || pair[0].origin() != pair[1].origin(),
                "unmerged neighbours {pair:?}"
            );
        }
        // The origin summary is exactly the union of the bvecs' origins.
        let union = b.bvecs().iter().fold(OriginSet::empty(), |set, bv| {
            set | OriginSet::of(bv.origin().unwrap())
        });
        assert_eq!(b.origins(), union);
    }
}

#[test]
fn property_random_advance_rewind_and_split_sequences_keep_every_byte() {
    let mut rng = Rng(0x5eed_0002);
    for round in 0..ROUNDS {
        let mut t = Table::<16>::new();
        let mut b = Bio::new(&mut t, BioOp::Write, Sector(4096), BioLimits::default());
        let _ = build_random(&mut rng, &mut b, 12);
        let whole = canonical(&b.pages().collect::<Vec<_>>());
        let size = b.size();
        let sectors = size / 512;
        // Advance then rewind by random sector multiples.
        let forward = u32::try_from(rng.below(u64::from(sectors) + 1)).unwrap() * 512;
        b.advance(forward).unwrap();
        assert_eq!(b.sector(), Sector(4096 + u64::from(forward / 512)));
        assert_eq!(b.size(), size - forward);
        b.rewind(forward).unwrap();
        assert_eq!(
            canonical(&b.pages().collect::<Vec<_>>()),
            whole,
            "round {round}"
        );
        // Split into random parts; together they cover the bio exactly.
        let mut joined = Vec::new();
        let mut parts = 0;
        loop {
            let left = b.size() / 512;
            if left < 2 {
                break;
            }
            let cut = 1 + u32::try_from(rng.below(u64::from(left - 1))).unwrap();
            let front = b.split(SectorCount(cut)).unwrap();
            assert_eq!(front.size(), cut * 512);
            joined.extend(front.pages());
            parts += 1;
        }
        joined.extend(b.pages());
        assert_eq!(canonical(&joined), whole, "round {round}, {parts} parts");
    }
}

// ---- accessors and small values ------------------------------------------

#[test]
fn added_names_the_page_whose_extra_reference_the_caller_drops() {
    let pin = Added::MergedDuplicatePin { pfn: pfn(3) };
    let reference = Added::MergedDuplicateRef { pfn: pfn(4) };
    assert_eq!(pin.duplicate(), Some((pfn(3), Origin::Pinned)));
    assert_eq!(reference.duplicate(), Some((pfn(4), Origin::Referenced)));
    assert_eq!(Added::NewVec.duplicate(), None);
    assert_eq!(Added::Merged.duplicate(), None);
    assert!(pin.merged() && reference.merged() && Added::Merged.merged());
    assert!(!Added::NewVec.merged());
}

#[test]
fn a_new_bio_reports_what_it_was_built_with() {
    let mut t = Table::<1000>::new();
    let limits = BioLimits::new(PageGeometry::SIXTEEN_KIB);
    let b = Bio::new(&mut t, BioOp::Flush, Sector(7), limits);
    assert_eq!(
        (b.op(), b.status(), b.sector()),
        (BioOp::Flush, BioStatus::Ok, Sector(7))
    );
    assert_eq!(
        (b.size(), b.vcnt(), b.iter()),
        (0, 0, BvecIter::new(Sector(7), 0))
    );
    assert_eq!((b.limits(), b.geometry().size()), (limits, 16384));
    assert_eq!(b.max_vecs(), BIO_MAX_VECS);
    assert_eq!(b.origins(), OriginSet::empty());
    assert!(b.is_owner() && !b.is_full() && !b.needs_release());
}

#[test]
fn status_and_sector_setters_are_read_back() {
    let mut t = Table::<1>::new();
    let mut b = bio(&mut t, BioOp::Read);
    b.set_status(BioStatus::Medium);
    b.set_sector(Sector(1000));
    assert_eq!((b.status(), b.sector()), (BioStatus::Medium, Sector(1000)));
    assert_eq!(b.iter().sector(), Sector(1000));
}

#[test]
fn fullness_and_release_need_follow_the_adds() {
    let mut t = Table::<1>::new();
    let mut b = bio(&mut t, BioOp::Write);
    let _ = b.add_page(pfn(1), 512, 0, Origin::Borrowed).unwrap();
    assert_eq!(b.size(), 512);
    assert!(b.is_full());
    assert!(!b.needs_release());
    assert_eq!(b.origins(), OriginSet::BORROWED);
    let mut t = Table::<2>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(1), 512, 0, Origin::Referenced).unwrap();
    assert_eq!(b.origins(), OriginSet::REFERENCED);
    assert!(b.needs_release() && !b.is_full());
}

#[test]
fn views_of_the_bytes_left_and_of_the_whole_table() {
    let mut t = Table::<2>::new();
    let mut b = bio(&mut t, BioOp::Read);
    let _ = b.add_page(pfn(1), 4096, 0, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(2), 4096, 0, Origin::Pinned).unwrap();
    let lens = |it: &mut dyn Iterator<Item = BioVec>| it.map(|bv| bv.len()).collect::<Vec<_>>();
    assert_eq!(lens(&mut b.segments()), [8192]);
    assert_eq!(lens(&mut b.pages()), [4096, 4096]);
    b.advance(8192).unwrap();
    assert_eq!(b.size(), 0);
    assert_eq!((b.segments().count(), b.pages().count()), (0, 0));
    // The release path's views do not move with the iterator.
    assert_eq!(b.bvecs(), &[piece(1, Origin::Pinned, 8192, 0)]);
    assert_eq!(lens(&mut b.all_pages()), [4096, 4096]);
    assert_eq!(b.into_storage().len(), 1);
}

#[test]
fn a_split_part_reports_its_window_and_never_owns() {
    let mut t = Table::<4>::new();
    let mut b = Bio::new(&mut t, BioOp::Read, Sector(5), BioLimits::default());
    let _ = b.add_page(pfn(1), 4096, 0, Origin::Pinned).unwrap();
    let _ = b.add_page(pfn(2), 4096, 0, Origin::Pinned).unwrap();
    let mut front = b.split(SectorCount(10)).unwrap();
    assert_eq!((front.op(), front.status()), (BioOp::Read, BioStatus::Ok));
    assert_eq!((front.sector(), front.size()), (Sector(5), 5120));
    assert_eq!((front.iter().idx(), front.iter().bvec_done()), (0, 0));
    assert_eq!(
        (front.limits(), front.geometry()),
        (BioLimits::default(), G4)
    );
    assert!(!front.is_owner());
    let segments: Vec<u32> = front.segments().map(|s| s.len()).collect();
    let pages: Vec<u32> = front.pages().map(|p| p.len()).collect();
    assert_eq!((segments, pages), (vec![5120], vec![4096, 1024]));
    front.set_status(BioStatus::Timeout);
    assert_eq!(front.status(), BioStatus::Timeout);
    // The owner's status is its own.
    assert_eq!(b.status(), BioStatus::Ok);
}

#[test]
fn a_refused_add_hands_back_the_fragment_as_passed() {
    let mut t = Table::<4>::new();
    let mut b = bio(&mut t, BioOp::Write);
    let err = b.add_page(pfn(9), 0, 0, Origin::Pinned).unwrap_err();
    assert_eq!(err.error(), BioError::ZeroLength);
    assert_eq!(err.rejected(), piece(9, Origin::Pinned, 0, 0));
    let err = b
        .add_page(pfn(1), 512, 4000, Origin::Referenced)
        .unwrap_err();
    assert_eq!(
        err.error(),
        BioError::PastPageRun {
            offset: 4000,
            len: 512,
            run_bytes: 4096
        }
    );
    assert_eq!(err.rejected(), piece(1, Origin::Referenced, 512, 4000));
    // A folio's refusal hands back its head page with the bytes as passed.
    let err = b
        .add_folio(folio(0x400, 2), 4096, 16384, Origin::Pinned)
        .unwrap_err();
    assert_eq!(err.rejected(), piece(0x400, Origin::Pinned, 4096, 16384));
}

#[test]
fn error_texts_name_the_limit_that_was_hit() {
    assert_eq!(
        BioError::TooManyVecs { max_vecs: 256 }.to_string(),
        "bio full: it already holds max_vecs = 256 bvecs"
    );
    assert_eq!(
        BioError::InvalidLimit {
            limit: Limit::DmaAlignment,
            value: 4
        }
        .to_string(),
        "dma_alignment = 4 is not a usable limit"
    );
}

#[test]
fn a_later_part_never_rewinds_into_the_bytes_of_an_earlier_one() {
    let mut t = Table::<8>::new();
    let b = three_vec_bio(&mut t);
    let first = b.split(SectorCount(2)).unwrap();
    let mut second = b.split(SectorCount(4)).unwrap();
    // The table holds the first part's 1024 bytes before the second part.
    assert_eq!(second.iter().bytes_before(b.bvecs()), 1024);
    let refused = Err(BioError::RewindPastStart {
        requested: 512,
        available: 0,
    });
    assert_eq!(second.rewind(512), refused);
    second.advance(1024).unwrap();
    assert_eq!(
        second.rewind(1536),
        Err(BioError::RewindPastStart {
            requested: 1536,
            available: 1024
        })
    );
    assert_eq!((second.sector(), second.size()), (Sector(1004), 1024));
    second.rewind(1024).unwrap();
    assert_eq!((second.sector(), second.size()), (Sector(1002), 2048));
    assert_eq!((first.sector(), first.size()), (Sector(1000), 1024));
}
