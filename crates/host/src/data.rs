//! Page data: sizes, the checksum the filesystem and the device compute, the
//! patterns that fill disks and pages, and a small deterministic PRNG.

use gupio::sync::atomic::{AtomicU64, Ordering};

/// Bytes in a page (the harness uses 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;
/// 64-bit words in a page: a page's data is `[AtomicU64; WORDS_PER_PAGE]`.
pub const WORDS_PER_PAGE: usize = PAGE_SIZE / 8;
/// Bytes in a sector.
pub const SECTOR_SIZE: usize = 512;
/// 64-bit words in a sector.
pub const WORDS_PER_SECTOR: usize = SECTOR_SIZE / 8;
/// Sectors in a page.
pub const SECTORS_PER_PAGE: u64 = 8;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes` (offset basis `0xcbf29ce484222325`, prime
/// `0x100000001b3`: xor each byte in, then multiply).
pub fn fnv1a_bytes(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(FNV_OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// FNV-1a over the little-endian bytes of `words`: the checksum a
/// filesystem computes over a page it submits for writing, and the device
/// recomputes over what it wrote.
pub fn fnv1a(words: impl IntoIterator<Item = u64>) -> u64 {
    fnv1a_bytes(words.into_iter().flat_map(u64::to_le_bytes))
}

/// FNV-1a over atomic words, each loaded once (`Relaxed`).
pub fn fnv1a_atomic(words: &[AtomicU64]) -> u64 {
    // Relaxed: data words; the I/O's own synchronisation orders them.
    fnv1a(words.iter().map(|word| word.load(Ordering::Relaxed)))
}

/// The SplitMix64 finaliser: a bijective mix of a 64-bit value.
pub const fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// workload on every run and every machine.
#[derive(Clone, Debug)]
pub struct Prng {
    state: u64,
}

impl Prng {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state.wrapping_sub(0x9e37_79b9_7f4a_7c15))
    }

    /// A value in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap_or(u64::MAX);
        if bound == 0 {
            return 0;
        }
        // The bias of a plain modulo is far below what a workload notices.
        usize::try_from(self.next_u64() % bound).unwrap_or(0)
    }

    /// `true` with probability `1 / n` (never for `n == 0`).
    pub fn one_in(&mut self, n: usize) -> bool {
        n != 0 && self.below(n) == 0
    }
}

/// The word a fresh disk holds at word address `word`: distinct for every
/// word, so data that lands in the wrong place never matches by accident.
pub const fn disk_pattern(word: u64) -> u64 {
    mix(word ^ 0xd15c_0000_0000_0000)
}

#[cfg(test)]
mod tests;
