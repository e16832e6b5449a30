use super::*;

#[test]
fn fnv1a_matches_the_published_test_vectors() {
    // FNV-1a 64-bit of these strings, from the FNV authors' published
    // test suite (not computed by this code).
    let vectors: [(&[u8], u64); 7] = [
        (b"", 0xcbf2_9ce4_8422_2325),
        (b"a", 0xaf63_dc4c_8601_ec8c),
        (b"fo", 0x0898_5907_b541_d342),
        (b"foo", 0xdcb2_7518_fed9_d577),
        (b"foob", 0xdd12_0e79_0c25_12af),
        (b"fooba", 0xcac1_65af_a2fe_f40a),
        (b"foobar", 0x8594_4171_f739_67e8),
    ];
    for (input, hash) in vectors {
        assert_eq!(fnv1a_bytes(input.iter().copied()), hash, "{input:?}");
    }
}

#[test]
fn fnv1a_of_words_hashes_their_little_endian_bytes_in_order() {
    assert_eq!(fnv1a([]), 0xcbf2_9ce4_8422_2325, "the offset basis");
    let words = [
        u64::from_le_bytes(*b"abcdefgh"),
        u64::from_le_bytes(*b"ijklmnop"),
    ];
    assert_eq!(fnv1a(words), fnv1a_bytes(*b"abcdefghijklmnop"));
}

#[test]
fn a_single_changed_word_changes_the_checksum() {
    let page: Vec<u64> = (0..512).map(disk_pattern).collect();
    let base = fnv1a(page.iter().copied());
    for index in [0, 255, 511] {
        let mut torn = page.clone();
        torn[index] ^= 1;
        assert_ne!(fnv1a(torn), base);
    }
}

#[test]
fn prng_is_deterministic_and_spreads() {
    let mut a = Prng::new(9);
    let mut b = Prng::new(9);
    let mut seen = [false; 8];
    for _ in 0..200 {
        let x = a.below(8);
        assert_eq!(x, b.below(8));
        seen[x] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn page_and_sector_sizes_agree_with_each_other_and_with_gupio() {
    assert_eq!(PAGE_SIZE, gupio::pfn::PageGeometry::FOUR_KIB.size());
    assert_eq!(u32::try_from(SECTOR_SIZE).unwrap(), gupio::bio::SECTOR_SIZE);
    assert_eq!(WORDS_PER_PAGE * 8, PAGE_SIZE);
    assert_eq!(WORDS_PER_SECTOR * 8, SECTOR_SIZE);
    assert_eq!(
        usize::try_from(SECTORS_PER_PAGE).unwrap() * SECTOR_SIZE,
        PAGE_SIZE
    );
    assert_eq!(
        WORDS_PER_SECTOR * usize::try_from(SECTORS_PER_PAGE).unwrap(),
        WORDS_PER_PAGE
    );
}

#[test]
fn fnv1a_depends_on_word_order_and_reads_atomic_words_alike() {
    assert_ne!(fnv1a([1, 2]), fnv1a([2, 1]));
    let words = [AtomicU64::new(1), AtomicU64::new(2)];
    assert_eq!(fnv1a_atomic(&words), fnv1a([1, 2]));
    assert_eq!(fnv1a_atomic(&[]), fnv1a([]));
}

#[test]
fn mix_and_the_disk_pattern_are_deterministic_and_distinct() {
    assert_eq!(mix(7), mix(7));
    assert_ne!(mix(1), mix(2));
    let pattern: Vec<u64> = (0..1024).map(disk_pattern).collect();
    let mut distinct = pattern.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), pattern.len(), "no two words alike");
    assert_eq!(pattern, (0..1024).map(disk_pattern).collect::<Vec<_>>());
}

#[test]
fn prng_draws_stay_in_bounds_and_zero_bounds_are_handled() {
    let (mut a, mut b) = (Prng::new(42), Prng::new(42));
    let first = a.next_u64();
    assert_eq!(first, b.next_u64(), "the same seed, the same stream");
    assert_ne!(first, a.next_u64(), "successive draws differ");
    assert_ne!(Prng::new(0).next_u64(), Prng::new(1).next_u64());
    let mut rng = Prng::new(3);
    assert!((0..100).all(|_| rng.below(6) < 6));
    assert_eq!(rng.below(0), 0);
    assert!((0..10).all(|_| rng.one_in(1)), "1 in 1 is certain");
    assert!((0..10).all(|_| !rng.one_in(0)), "1 in 0 never happens");
}
