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
