use super::*;

/// A tiny deterministic generator (splitmix64) for property-style tests.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[allow(clippy::cast_possible_truncation)] // deliberately keeps the low bits
    fn next_usize(&mut self) -> usize {
        self.next_u64() as usize
    }
}

const ROUNDS: usize = if cfg!(miri) { 200 } else { 100_000 };

/// Words from every class of bit pattern: edges around zero, around the tag
/// boundary, the top of the range, single bits, and each tag combination.
fn edge_words() -> impl Iterator<Item = usize> {
    let fixed = [
        0,
        1,
        2,
        Pfn::MAX.get() - 1,
        Pfn::MAX.get(),
        Pfn::MAX.get() + 1,
        BORROW_BIT - 1,
        BORROW_BIT,
        BORROW_BIT | 1,
        PIN_BIT - 1,
        PIN_BIT,
        PIN_BIT | 1,
        TAG_MASK,
        TAG_MASK | 1,
        usize::MAX - 1,
        usize::MAX,
        usize::MAX / 3,     // 0b0101...
        usize::MAX / 3 * 2, // 0b1010...
    ];
    let single_bits = (0..usize::BITS).map(|b| 1usize << b);
    let low_masks = (0..usize::BITS).map(|b| (1usize << b) - 1);
    let tagged = (0..4usize).flat_map(|tag| {
        [0, 1, Pfn::MAX.get()]
            .into_iter()
            .map(move |pfn| pfn | (tag << (usize::BITS - 2)))
    });
    fixed
        .into_iter()
        .chain(single_bits)
        .chain(low_masks)
        .chain(tagged)
}

#[test]
fn max_pfn_is_every_bit_below_the_tag() {
    assert_eq!(Pfn::MAX.get(), usize::MAX >> 2);
    assert_eq!(Pfn::MAX.get() & TAG_MASK, 0);
    assert_eq!(PIN_BIT.count_ones(), 1);
    assert_eq!(PIN_BIT.leading_zeros(), 0, "the pin bit is the highest bit");
    assert_eq!(BORROW_BIT.leading_zeros(), 1);
}

#[test]
fn try_new_accepts_exactly_the_pfns_below_the_tag() {
    for raw in edge_words() {
        let result = Pfn::try_new(raw);
        if raw <= Pfn::MAX.get() {
            assert_eq!(result, Ok(Pfn::new(raw)), "raw {raw:#x}");
        } else {
            assert_eq!(
                result,
                Err(PfnError::PfnOutOfRange { pfn: raw as u64 }),
                "raw {raw:#x}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "pfn overlaps the origin tag bits")]
fn new_panics_above_max() {
    let _ = Pfn::new(Pfn::MAX.get() + 1);
}

#[test]
fn new_truncate_drops_only_the_tag_bits() {
    for raw in edge_words() {
        assert_eq!(Pfn::new_truncate(raw).get(), raw & PFN_MASK);
    }
}

#[test]
fn every_origin_round_trips_at_the_edges() {
    for origin in Origin::ALL {
        for raw in [0, 1, 0x1234, Pfn::MAX.get() - 1, Pfn::MAX.get()] {
            let pfn = Pfn::new(raw);
            let word = TaggedPfn::new(pfn, origin);
            assert!(!word.is_none(), "{word:?} must not be the sentinel");
            assert_eq!(word.decode(), Some((pfn, origin)));
            assert_eq!(word.pfn(), Some(pfn));
            assert_eq!(word.origin(), Some(origin));
            assert_eq!(word.is_pinned(), origin == Origin::Pinned);
            assert_eq!(TaggedPfn::from_raw(word.to_raw()), Ok(word));
            assert_eq!(TaggedPfn::try_encode(raw, origin), Ok(word));
        }
    }
}

#[test]
fn tag_bits_match_the_proposal_layout() {
    let pfn = Pfn::new(0x42);
    assert_eq!(TaggedPfn::new(pfn, Origin::Referenced).to_raw(), 0x42);
    assert_eq!(TaggedPfn::new(pfn, Origin::Pinned).to_raw(), PIN_BIT | 0x42);
    assert_eq!(
        TaggedPfn::new(pfn, Origin::Borrowed).to_raw(),
        BORROW_BIT | 0x42
    );
}

#[test]
fn encoding_rejects_every_pfn_that_overlaps_the_tag() {
    for raw in edge_words() {
        for origin in Origin::ALL {
            let result = TaggedPfn::try_encode(raw, origin);
            if raw & TAG_MASK != 0 {
                assert_eq!(
                    result,
                    Err(PfnError::PfnOutOfRange { pfn: raw as u64 }),
                    "raw {raw:#x}"
                );
            } else {
                assert!(result.is_ok(), "raw {raw:#x}");
            }
        }
    }
}

#[test]
fn sentinel_is_recognised_before_masking() {
    let none = TaggedPfn::from_raw(usize::MAX).unwrap();
    assert_eq!(none, TaggedPfn::NONE);
    assert!(none.is_none());
    assert_eq!(none.decode(), None);
    assert_eq!(none.pfn(), None);
    assert_eq!(none.origin(), None);
    assert!(
        !none.is_pinned(),
        "the sentinel has the pin bit set but is no page"
    );
    assert_eq!(none.with_origin(Origin::Referenced), TaggedPfn::NONE);
    assert_eq!(none.nth_page(0), None);
    assert_eq!(TaggedPfn::default(), TaggedPfn::NONE);
    // The largest pinned and borrowed words are not the sentinel.
    assert_ne!(TaggedPfn::new(Pfn::MAX, Origin::Pinned), TaggedPfn::NONE);
    assert_ne!(TaggedPfn::new(Pfn::MAX, Origin::Borrowed), TaggedPfn::NONE);
}

#[test]
fn decoding_classifies_every_edge_word() {
    for word in edge_words() {
        check_decode(word);
    }
}

#[test]
fn decoding_random_words_never_panics_and_classifies_them() {
    let mut rng = SplitMix(0x1234_5678);
    for _ in 0..ROUNDS {
        check_decode(rng.next_usize());
    }
}

fn check_decode(word: usize) {
    match TaggedPfn::from_raw(word) {
        Ok(tagged) if word == usize::MAX => assert!(tagged.is_none()),
        Ok(tagged) => {
            let (pfn, origin) = tagged.decode().expect("a valid non-sentinel word decodes");
            assert_eq!(pfn.get(), word & PFN_MASK);
            assert_eq!(origin.tag_bits(), word & TAG_MASK);
            assert_eq!(TaggedPfn::new(pfn, origin).to_raw(), word);
        }
        Err(err) => {
            assert_eq!(err, PfnError::InvalidTag { word });
            assert_eq!(word & TAG_MASK, TAG_MASK);
            assert_ne!(word, usize::MAX);
        }
    }
}

#[test]
fn random_valid_values_round_trip() {
    let mut rng = SplitMix(99);
    for _ in 0..ROUNDS {
        let pfn = Pfn::new_truncate(rng.next_usize());
        let origin = Origin::ALL[rng.next_usize() % 3];
        let word = TaggedPfn::new(pfn, origin);
        assert_eq!(word.decode(), Some((pfn, origin)));
        assert_eq!(TaggedPfn::try_from(usize::from(word)), Ok(word));
        for other in Origin::ALL {
            assert_eq!(word.with_origin(other).decode(), Some((pfn, other)));
        }
    }
}

#[test]
fn nth_page_keeps_the_origin_and_stops_at_the_range_end() {
    for origin in Origin::ALL {
        let first = TaggedPfn::new(Pfn::new(100), origin);
        for i in 0..4 {
            assert_eq!(
                first.nth_page(i).unwrap().decode(),
                Some((Pfn::new(100 + i), origin))
            );
        }
        let last = TaggedPfn::new(Pfn::MAX, origin);
        assert_eq!(last.nth_page(0), Some(last));
        assert_eq!(last.nth_page(1), None);
        assert_eq!(first.nth_page(usize::MAX), None);
        assert_eq!(
            TaggedPfn::new(Pfn::new(Pfn::MAX.get() - 3), origin).nth_page(3),
            Some(last)
        );
    }
}

#[test]
fn pfn_arithmetic_is_checked() {
    assert_eq!(Pfn::new(5).checked_add(0), Some(Pfn::new(5)));
    assert_eq!(Pfn::MAX.checked_add(1), None);
    assert_eq!(Pfn::new(1).checked_add(usize::MAX), None);
    assert_eq!(Pfn::ZERO.checked_sub(1), None);
    assert_eq!(Pfn::MAX.checked_sub(Pfn::MAX.get()), Some(Pfn::ZERO));
}

#[test]
fn origin_tags_round_trip_and_reject_unknown_tags() {
    for origin in Origin::ALL {
        assert_eq!(Origin::from_tag(origin.tag()), Ok(origin));
        assert_eq!(
            origin.tag_bits() >> (usize::BITS - 2),
            usize::from(origin.tag())
        );
    }
    for tag in 3..=u8::MAX {
        assert_eq!(Origin::from_tag(tag), Err(PfnError::UnknownOrigin { tag }));
    }
    assert!(Origin::Pinned.needs_release() && Origin::Referenced.needs_release());
    assert!(!Origin::Borrowed.needs_release());
}

#[test]
fn geometries_are_4_16_and_64_kib_only() {
    let expected = [
        (12, PageGeometry::FOUR_KIB, 4096),
        (14, PageGeometry::SIXTEEN_KIB, 16384),
        (16, PageGeometry::SIXTY_FOUR_KIB, 65536),
    ];
    for (shift, geometry, size) in expected {
        assert_eq!(PageGeometry::try_from_shift(shift), Ok(geometry));
        assert_eq!(geometry.size(), size);
        assert_eq!(geometry.size_u32(), u32::try_from(size).unwrap());
        assert_eq!(geometry.offset_mask(), size as u64 - 1);
    }
    for shift in (0..64).filter(|s| ![12, 14, 16].contains(s)) {
        assert_eq!(
            PageGeometry::try_from_shift(shift),
            Err(PfnError::UnsupportedPageShift { shift })
        );
    }
}

#[test]
fn physical_addresses_round_trip_per_geometry() {
    let mut rng = SplitMix(7);
    for geometry in [
        PageGeometry::FOUR_KIB,
        PageGeometry::SIXTEEN_KIB,
        PageGeometry::SIXTY_FOUR_KIB,
    ] {
        for _ in 0..ROUNDS / 10 {
            // Stay within 52-bit physical addresses (36-bit on 32-bit targets).
            let bits = if usize::BITS == 64 { 52 } else { 36 };
            let addr = (rng.next_u64() & ((1u64 << bits) - 1)) & !geometry.offset_mask();
            let pfn = Pfn::from_phys_addr(addr, geometry).unwrap();
            assert_eq!(pfn.phys_addr(geometry), Ok(addr));
            let inside = addr | (rng.next_u64() & geometry.offset_mask());
            assert_eq!(Pfn::containing_phys_addr(inside, geometry), Ok(pfn));
            if inside != addr {
                assert_eq!(
                    Pfn::from_phys_addr(inside, geometry),
                    Err(PfnError::UnalignedAddress {
                        addr: inside,
                        page_size: geometry.size_u64()
                    })
                );
            }
        }
    }
}

#[test]
fn encodable_range_covers_the_required_physical_address_width() {
    let required = if usize::BITS == 64 { 52 } else { 36 };
    for geometry in [
        PageGeometry::FOUR_KIB,
        PageGeometry::SIXTEEN_KIB,
        PageGeometry::SIXTY_FOUR_KIB,
    ] {
        let top = (1u64 << required) - 1;
        assert!(geometry.max_phys_addr() >= top);
        let page = top & !geometry.offset_mask();
        assert!(Pfn::from_phys_addr(page, geometry).is_ok());
    }
}

#[test]
fn out_of_range_addresses_are_typed_errors() {
    let g = PageGeometry::FOUR_KIB;
    if usize::BITS == 64 {
        // 62-bit frame numbers shifted by 16 overflow a u64 address.
        assert_eq!(
            Pfn::MAX.phys_addr(PageGeometry::SIXTY_FOUR_KIB),
            Err(PfnError::AddressOverflow {
                pfn: Pfn::MAX.get(),
                page_shift: 16
            })
        );
        assert_eq!(g.max_phys_addr(), u64::MAX);
    } else {
        // 30-bit frame numbers: an address above 42 bits has no encodable frame.
        let addr = 1u64 << 42;
        assert_eq!(
            Pfn::from_phys_addr(addr, g),
            Err(PfnError::PfnOutOfRange { pfn: addr >> 12 })
        );
        assert_eq!(g.max_phys_addr(), (1u64 << 42) - 1);
    }
}

#[test]
fn errors_print_the_offending_value_in_hex() {
    let text = PfnError::InvalidTag { word: TAG_MASK }.to_string();
    assert!(text.contains(&format!("{TAG_MASK:#x}")), "{text}");
    let text = PfnError::PfnOutOfRange { pfn: 0xdead }.to_string();
    assert!(text.contains("0xdead"), "{text}");
    let text = PfnError::UnalignedAddress {
        addr: 0x1001,
        page_size: 0x1000,
    }
    .to_string();
    assert!(text.contains("0x1001") && text.contains("0x1000"), "{text}");
}

#[test]
fn debug_output_names_page_and_origin() {
    let text = format!("{:?}", TaggedPfn::new(Pfn::new(0xabc), Origin::Pinned));
    assert_eq!(text, "TaggedPfn(0xabc, Pinned)");
    assert_eq!(format!("{:?}", TaggedPfn::NONE), "TaggedPfn::NONE");
}

#[test]
fn origin_tags_and_predicates_are_the_proposal_s() {
    let tags: Vec<u8> = Origin::ALL.iter().map(|o| o.tag()).collect();
    assert_eq!(tags, [0b00, 0b01, 0b10]);
    assert_eq!(Origin::Pinned.tag_bits(), PIN_BIT);
    assert_eq!(Origin::Borrowed.tag_bits(), BORROW_BIT);
    assert_eq!(Origin::Referenced.tag_bits(), 0);
    let pinned: Vec<bool> = Origin::ALL.iter().map(|o| o.is_pinned()).collect();
    assert_eq!(pinned, [false, false, true]);
}

#[test]
fn with_origin_keeps_the_page_and_changes_only_the_tag() {
    for from in Origin::ALL {
        for to in Origin::ALL {
            let word = TaggedPfn::new(Pfn::new(4), from).with_origin(to);
            assert_eq!(word.decode(), Some((Pfn::new(4), to)));
            assert_eq!(word, TaggedPfn::new(Pfn::new(4), to));
        }
    }
    assert_eq!(TaggedPfn::NONE.to_raw(), usize::MAX);
    assert_eq!(Pfn::new(9).get(), 9);
    assert_eq!(usize::from(Pfn::new(9)), 9);
}

#[test]
fn geometry_shifts_and_sizes_agree() {
    for geometry in [
        PageGeometry::FOUR_KIB,
        PageGeometry::SIXTEEN_KIB,
        PageGeometry::SIXTY_FOUR_KIB,
    ] {
        let size = 1u64 << geometry.shift();
        assert_eq!(geometry.size_u64(), size);
        assert_eq!(u64::from(geometry.size_u32()), size);
        assert_eq!(geometry.size() as u64, size);
    }
    assert_eq!(PageGeometry::FOUR_KIB.shift(), 12);
    assert_eq!(PageGeometry::SIXTY_FOUR_KIB.offset_mask(), 0xffff);
    assert_eq!(
        Pfn::new(0x10).phys_addr(PageGeometry::SIXTY_FOUR_KIB),
        Ok(0x10_0000)
    );
}
