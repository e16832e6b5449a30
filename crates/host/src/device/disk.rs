//! The in-memory disk.

use std::fmt;

use gupio::sync::atomic::{AtomicU64, Ordering};

use crate::data::{disk_pattern, WORDS_PER_SECTOR};
use crate::HostError;

/// The in-memory disk: 64-bit words, each atomic, so the device threads
/// and the checks read and write it concurrently without locks.
pub struct Disk {
    pub(super) words: Box<[AtomicU64]>,
}

impl Disk {
    /// A disk of `sectors` sectors, each word holding a distinct pattern
    /// ([`disk_pattern`] of its word address).
    pub fn new(sectors: u64) -> Self {
        let words = usize::try_from(sectors)
            .unwrap_or(0)
            .saturating_mul(WORDS_PER_SECTOR);
        let words = (0..words)
            .map(|word| AtomicU64::new(disk_pattern(u64::try_from(word).unwrap_or(u64::MAX))))
            .collect();
        Self { words }
    }

    /// The disk's size in sectors.
    pub fn sectors(&self) -> u64 {
        u64::try_from(self.words.len() / WORDS_PER_SECTOR).unwrap_or(u64::MAX)
    }

    /// The words `count` words long from the start of `sector`.
    fn range(&self, sector: u64, count: usize) -> Result<&[AtomicU64], HostError> {
        let past = || HostError::PastEndOfDisk {
            sector,
            sectors: u64::try_from(count.div_ceil(WORDS_PER_SECTOR)).unwrap_or(u64::MAX),
        };
        let start = usize::try_from(sector)
            .ok()
            .and_then(|s| s.checked_mul(WORDS_PER_SECTOR))
            .ok_or_else(past)?;
        let end = start.checked_add(count).ok_or_else(past)?;
        self.words.get(start..end).ok_or_else(past)
    }

    /// Reads `count` words from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    pub fn read_words(&self, sector: u64, count: usize) -> Result<Vec<u64>, HostError> {
        // Relaxed: data; the I/O's completion orders it for whoever waits.
        Ok(self
            .range(sector, count)?
            .iter()
            .map(|word| word.load(Ordering::Relaxed))
            .collect())
    }

    /// Writes `words` from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    pub fn write_words(&self, sector: u64, words: &[u64]) -> Result<(), HostError> {
        for (slot, &word) in self.range(sector, words.len())?.iter().zip(words) {
            // Relaxed: data; the I/O's completion orders it.
            slot.store(word, Ordering::Relaxed);
        }
        Ok(())
    }

    /// FNV-1a over `count` words from the start of `sector`.
    ///
    /// # Errors
    /// [`HostError::PastEndOfDisk`] if the range runs past the disk.
    pub fn checksum(&self, sector: u64, count: usize) -> Result<u64, HostError> {
        Ok(crate::data::fnv1a_atomic(self.range(sector, count)?))
    }
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disk")
            .field("sectors", &self.sectors())
            .finish()
    }
}

#[cfg(test)]
mod tests;
