//! Target `pfn_encoding`: gupio-pfn's tagged word checked against a model.
//!
//! The input is a sequence of little-endian 64-bit words (a short tail is
//! zero-padded). Every word is checked in three views of a machine word: as
//! is (its low `usize::BITS` bits), its low 32 bits (the whole word of a
//! 32-bit kernel), and those 32 bits moved to the top of the `usize`, so that
//! the tag bits of a 32-bit word land on the tag bits of this one. Each word is
//! also a physical address for every page geometry, a page shift and an origin
//! tag (its low byte), and, with the word after it as a count, a base for
//! `nth_page`.
//!
//! The model derives the layout from `usize::BITS` alone (pin bit highest,
//! borrow bit next, the frame number below, all-ones the sentinel) and never
//! from the crate's constants, which it checks instead. Any disagreement
//! panics: that is the finding.

use gupio_pfn::{
    Origin, PageGeometry, Pfn, PfnError, TaggedPfn, BORROW_BIT, PFN_MASK, PIN_BIT, TAG_MASK,
};

/// The model's pin bit: the highest bit of the word.
const MODEL_PIN: usize = 1 << (usize::BITS - 1);
/// The model's borrow bit: the one below the pin bit.
const MODEL_BORROW: usize = 1 << (usize::BITS - 2);
/// Both tag bits.
const MODEL_TAGS: usize = MODEL_PIN | MODEL_BORROW;
/// The largest frame number the model can encode.
const MODEL_PFN_MAX: usize = !MODEL_TAGS;

/// Every page geometry gupio supports.
const GEOMETRIES: [PageGeometry; 3] = [
    PageGeometry::FOUR_KIB,
    PageGeometry::SIXTEEN_KIB,
    PageGeometry::SIXTY_FOUR_KIB,
];

/// Checks every word of `data`; panics on any disagreement with the model.
///
/// ```
/// // The sentinel, then a pinned frame 5 and a count of 2 for `nth_page`.
/// let mut input = Vec::new();
/// for word in [u64::MAX, (1 << 63) | 5, 2] {
///     input.extend_from_slice(&word.to_le_bytes());
/// }
/// gupio_fuzz::pfn_encoding::run(&input);
/// ```
pub fn run(data: &[u8]) {
    check_layout_constants();
    let mut words = data.chunks(8).map(word_from_le).peekable();
    while let Some(word) = words.next() {
        let next = words.peek().copied().unwrap_or(0);
        for raw in machine_word_views(word) {
            check_decode(raw);
            check_encode(raw);
            check_nth_page(raw, next);
        }
        for geometry in GEOMETRIES {
            check_phys_addr(word, geometry);
        }
        check_small_values(word);
    }
}

/// A little-endian word from up to 8 bytes, zero-padded.
fn word_from_le(chunk: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    bytes[..chunk.len()].copy_from_slice(chunk);
    u64::from_le_bytes(bytes)
}

/// The low `usize::BITS` bits of `word`.
fn low_usize(word: u64) -> usize {
    let mask = widen(usize::MAX);
    usize::try_from(word & mask).expect("masked to the width of usize")
}

/// A `usize` as a `u64` (lossless on every target gupio supports).
fn widen(value: usize) -> u64 {
    u64::try_from(value).expect("usize is at most 64 bits wide")
}

/// The machine words `word` stands for: itself, its low 32 bits, and those 32
/// bits at the top of the `usize`.
fn machine_word_views(word: u64) -> [usize; 3] {
    let low32 =
        usize::try_from(word & u64::from(u32::MAX)).expect("usize is at least 32 bits wide");
    [low_usize(word), low32, low32 << (usize::BITS - 32)]
}

/// The model's tag bits for `origin`.
fn model_tag_bits(origin: Origin) -> usize {
    match origin {
        Origin::Referenced => 0,
        Origin::Borrowed => MODEL_BORROW,
        Origin::Pinned => MODEL_PIN,
    }
}

/// Formats an error the way a log line would, and checks it says something.
fn check_renders(error: PfnError) {
    let text = error.to_string();
    assert!(!text.is_empty(), "{error:?} renders as an empty string");
}

/// The crate's layout constants agree with the model.
fn check_layout_constants() {
    assert_eq!(PIN_BIT, MODEL_PIN, "the pin bit is the highest bit");
    assert_eq!(BORROW_BIT, MODEL_BORROW, "the borrow bit is the next one");
    assert_eq!(TAG_MASK, MODEL_TAGS);
    assert_eq!(PFN_MASK, MODEL_PFN_MAX);
    assert_eq!(Pfn::MAX.get(), MODEL_PFN_MAX);
    assert_eq!(TaggedPfn::NONE.to_raw(), usize::MAX);
    for origin in Origin::ALL {
        assert_eq!(origin.tag_bits(), model_tag_bits(origin), "{origin:?}");
    }
    for geometry in GEOMETRIES {
        let shift = geometry.shift();
        let max_frame = widen(MODEL_PFN_MAX);
        let model_max = if max_frame > u64::MAX >> shift {
            u64::MAX
        } else {
            ((max_frame + 1) << shift) - 1
        };
        assert_eq!(geometry.max_phys_addr(), model_max, "shift {shift}");
    }
}

/// Decoding an arbitrary word: the sentinel, a typed error exactly for the
/// invalid tag, otherwise a value that decodes and re-encodes to the word.
fn check_decode(raw: usize) {
    let decoded = TaggedPfn::from_raw(raw);
    assert_eq!(TaggedPfn::try_from(raw), decoded, "word {raw:#x}");

    if raw == usize::MAX {
        let none = decoded.expect("the all-ones word is the sentinel");
        assert_eq!(none, TaggedPfn::NONE);
        assert!(none.is_none());
        assert_eq!(none.decode(), None);
        assert_eq!(none.pfn(), None);
        assert_eq!(none.origin(), None);
        assert!(!none.is_pinned(), "the sentinel is not a pinned page");
        for origin in Origin::ALL {
            assert_eq!(none.with_origin(origin), TaggedPfn::NONE);
        }
        return;
    }

    let tag = raw & MODEL_TAGS;
    if tag == MODEL_TAGS {
        assert_eq!(decoded, Err(PfnError::InvalidTag { word: raw }));
        check_renders(PfnError::InvalidTag { word: raw });
        return;
    }

    let word = decoded.unwrap_or_else(|e| panic!("valid word {raw:#x} rejected: {e}"));
    let pfn = Pfn::try_new(raw & MODEL_PFN_MAX).expect("the bits below the tag are a pfn");
    let origin = match tag {
        MODEL_PIN => Origin::Pinned,
        MODEL_BORROW => Origin::Borrowed,
        0 => Origin::Referenced,
        _ => unreachable!("both tag bits set was handled above"),
    };
    assert_eq!(word.to_raw(), raw);
    assert_eq!(usize::from(word), raw);
    assert!(!word.is_none(), "word {raw:#x}");
    assert_eq!(word.decode(), Some((pfn, origin)), "word {raw:#x}");
    assert_eq!(word.pfn(), Some(pfn));
    assert_eq!(word.origin(), Some(origin));
    assert_eq!(word.is_pinned(), origin == Origin::Pinned, "word {raw:#x}");
    assert_eq!(TaggedPfn::new(pfn, origin), word, "round trip of {raw:#x}");
    assert_eq!(TaggedPfn::from_raw(word.to_raw()), Ok(word));
    for other in Origin::ALL {
        let moved = word.with_origin(other);
        assert_eq!(moved.to_raw(), pfn.get() | model_tag_bits(other));
        assert_eq!(moved.decode(), Some((pfn, other)));
    }
    assert!(!format!("{word:?}").is_empty());
}

/// Encoding a raw frame number: rejected exactly when it overlaps the tag
/// bits, with the number in the error; otherwise it decodes back exactly.
fn check_encode(raw: usize) {
    let expected_pfn = if raw & MODEL_TAGS == 0 {
        Ok(raw)
    } else {
        Err(PfnError::PfnOutOfRange { pfn: widen(raw) })
    };
    assert_eq!(
        Pfn::try_new(raw).map(Pfn::get),
        expected_pfn,
        "pfn {raw:#x}"
    );
    assert_eq!(Pfn::try_from(raw), Pfn::try_new(raw));
    assert_eq!(Pfn::new_truncate(raw).get(), raw & MODEL_PFN_MAX);
    if let Err(error) = expected_pfn {
        check_renders(error);
    }

    for origin in Origin::ALL {
        let encoded = TaggedPfn::try_encode(raw, origin);
        let expected_word = expected_pfn.map(|pfn| pfn | model_tag_bits(origin));
        assert_eq!(
            encoded.map(TaggedPfn::to_raw),
            expected_word,
            "encoding pfn {raw:#x} as {origin:?}"
        );
        if let Ok(word) = encoded {
            assert_eq!(word.decode(), Some((Pfn::new(raw), origin)));
            assert_eq!(TaggedPfn::from_raw(word.to_raw()), Ok(word));
            assert!(!word.is_none(), "an encoded page is never the sentinel");
        }
    }
}

/// `nth_page` (and `Pfn::checked_add`/`checked_sub`) from the word `raw`
/// (or, if it is not a valid word, its frame number as a pinned page) by
/// `next` pages and by small counts: the origin is kept, and `None` comes
/// exactly when the frame number leaves the encodable range.
fn check_nth_page(raw: usize, next: u64) {
    let base = TaggedPfn::from_raw(raw)
        .unwrap_or_else(|_| TaggedPfn::new(Pfn::new_truncate(raw), Origin::Pinned));
    for count in [low_usize(next), low_usize(next & 0xffff), 1, 0] {
        let stepped = base.nth_page(count);
        let Some((pfn, origin)) = base.decode() else {
            assert_eq!(stepped, None, "nth_page({count:#x}) of the sentinel");
            continue;
        };
        let model_pfn = pfn
            .get()
            .checked_add(count)
            .filter(|sum| sum & MODEL_TAGS == 0);
        assert_eq!(
            stepped.map(TaggedPfn::to_raw),
            model_pfn.map(|sum| sum | model_tag_bits(origin)),
            "nth_page({count:#x}) of {base:?}"
        );
        if let Some(word) = stepped {
            assert_eq!(word.origin(), Some(origin), "nth_page keeps the origin");
        }
        assert_eq!(pfn.checked_add(count).map(Pfn::get), model_pfn);
        assert_eq!(
            pfn.checked_sub(count).map(Pfn::get),
            pfn.get().checked_sub(count)
        );
    }
}

/// Physical addresses and frame numbers round-trip for `geometry`: `addr` is
/// rejected when misaligned or when its frame is not encodable, and a frame
/// number's address is refused exactly when it does not fit a `u64`.
fn check_phys_addr(addr: u64, geometry: PageGeometry) {
    let shift = geometry.shift();
    let page_size = 1u64 << shift;
    let offset_mask = page_size - 1;
    assert_eq!(geometry.size_u64(), page_size);
    assert_eq!(u64::from(geometry.size_u32()), page_size);
    assert_eq!(widen(geometry.size()), page_size);
    assert_eq!(geometry.offset_mask(), offset_mask);

    let frame = addr >> shift;
    let expected_containing = if frame <= widen(MODEL_PFN_MAX) {
        Ok(frame)
    } else {
        Err(PfnError::PfnOutOfRange { pfn: frame })
    };
    let containing = Pfn::containing_phys_addr(addr, geometry);
    assert_eq!(
        containing.map(|pfn| widen(pfn.get())),
        expected_containing,
        "page of {addr:#x} with shift {shift}"
    );
    let expected_exact = if addr & offset_mask != 0 {
        Err(PfnError::UnalignedAddress { addr, page_size })
    } else {
        expected_containing
    };
    let exact = Pfn::from_phys_addr(addr, geometry);
    assert_eq!(
        exact.map(|pfn| widen(pfn.get())),
        expected_exact,
        "aligned address {addr:#x} with shift {shift}"
    );
    if let Err(error) = exact {
        check_renders(error);
    }
    if let Ok(pfn) = containing {
        let page_start = addr & !offset_mask;
        assert_eq!(pfn.phys_addr(geometry), Ok(page_start));
        assert_eq!(Pfn::from_phys_addr(page_start, geometry), Ok(pfn));
    }

    // From the frame-number side: the word's low bits as a frame number.
    let pfn = Pfn::new_truncate(low_usize(addr));
    let expected_addr = if widen(pfn.get()) > u64::MAX >> shift {
        Err(PfnError::AddressOverflow {
            pfn: pfn.get(),
            page_shift: shift,
        })
    } else {
        Ok(widen(pfn.get()) << shift)
    };
    assert_eq!(pfn.phys_addr(geometry), expected_addr, "address of {pfn:?}");
    match expected_addr {
        Ok(start) => assert_eq!(Pfn::from_phys_addr(start, geometry), Ok(pfn)),
        Err(error) => check_renders(error),
    }
}

/// The word's low byte as a page shift and as an origin tag.
fn check_small_values(word: u64) {
    let byte = word.to_le_bytes()[0];
    let shift = u32::from(byte);
    let geometry = PageGeometry::try_from_shift(shift);
    match shift {
        12 | 14 | 16 => assert_eq!(geometry.map(PageGeometry::shift), Ok(shift)),
        _ => assert_eq!(geometry, Err(PfnError::UnsupportedPageShift { shift })),
    }
    let origin = Origin::from_tag(byte);
    match byte {
        0..=2 => {
            let origin = origin.expect("tags 0, 1 and 2 name origins");
            assert_eq!(origin.tag(), byte);
            assert_eq!(origin.tag_bits(), model_tag_bits(origin));
        }
        _ => assert_eq!(origin, Err(PfnError::UnknownOrigin { tag: byte })),
    }
    if let Err(error) = origin {
        check_renders(error);
    }
}
