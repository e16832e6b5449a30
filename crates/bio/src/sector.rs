//! Sectors: the block layer's 512-byte unit, as an address and as a count.

use core::fmt;

/// log2 of [`SECTOR_SIZE`]: a byte count becomes sectors by `>> SECTOR_SHIFT`.
pub const SECTOR_SHIFT: u32 = 9;

/// The block layer's addressing unit, 512 bytes, whatever the device's
/// logical block size.
pub const SECTOR_SIZE: u32 = 1 << SECTOR_SHIFT;

/// A device address in 512-byte sectors (Linux's `bi_sector`).
///
/// An address, not a length: a number of sectors is a [`SectorCount`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Sector(pub u64);

impl Sector {
    /// The sector `count` sectors further on, or `None` past `u64::MAX`.
    #[inline]
    pub const fn checked_add(self, count: SectorCount) -> Option<Self> {
        match self.0.checked_add(count.0 as u64) {
            Some(sector) => Some(Self(sector)),
            None => None,
        }
    }

    /// The sector `count` sectors back, or `None` below sector 0.
    #[inline]
    pub const fn checked_sub(self, count: SectorCount) -> Option<Self> {
        match self.0.checked_sub(count.0 as u64) {
            Some(sector) => Some(Self(sector)),
            None => None,
        }
    }

    /// The byte address of the sector on the device, or `None` past `u64::MAX`.
    #[inline]
    pub const fn byte_address(self) -> Option<u64> {
        if self.0 > (u64::MAX >> SECTOR_SHIFT) {
            None
        } else {
            Some(self.0 << SECTOR_SHIFT)
        }
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sector {}", self.0)
    }
}

/// A number of 512-byte sectors: a length, as `bio_split` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SectorCount(pub u32);

impl SectorCount {
    /// The whole sectors in `bytes` (rounded down, like Linux's `bytes >> 9`).
    #[inline]
    pub const fn from_bytes(bytes: u32) -> Self {
        Self(bytes >> SECTOR_SHIFT)
    }

    /// The count in bytes, or `None` if it does not fit a `u32` (a bio's size field).
    #[inline]
    pub const fn bytes(self) -> Option<u32> {
        if self.0 > (u32::MAX >> SECTOR_SHIFT) {
            None
        } else {
            Some(self.0 << SECTOR_SHIFT)
        }
    }
}

impl fmt::Display for SectorCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sectors", self.0)
    }
}

#[cfg(test)]
mod tests;
