//! `BioLimits`: the page geometry and the device limits a bio is built under.

use gupio_pfn::PageGeometry;

use crate::error::{BioError, Limit};
use crate::sector::SECTOR_SIZE;

/// The most bvecs one bio holds (Linux's `BIO_MAX_VECS`).
pub const BIO_MAX_VECS: usize = 256;

/// The page geometry and device limits a [`Bio`](crate::Bio) is built
/// under; chosen once by the embedder and checked when set.
///
/// | limit | default | valid values | checked |
/// |---|---|---|---|
/// | [`max_vecs`](Self::max_vecs) | 256 | 1 to [`BIO_MAX_VECS`] | on each add |
/// | [`max_segment_size`](Self::max_segment_size) | `u32::MAX` | at least one page | on each add |
/// | [`dma_alignment`](Self::dma_alignment) | 511 | a power of two minus one, below one page | offset and length of each add |
/// | [`logical_block_size`](Self::logical_block_size) | 512 | a power of two from 512 to one page | [`Bio::validate`](crate::Bio::validate) and splits |
///
/// The alignment split follows Linux: each fragment's memory address and
/// length must meet the DMA alignment (default 511, Linux's default
/// `dma_alignment`), while only the bio as a whole, and each split point,
/// must be a whole number of logical blocks, since one block may straddle
/// fragments.
///
/// ```
/// use gupio_bio::{BioLimits, PageGeometry};
/// let limits = BioLimits::new(PageGeometry::SIXTEEN_KIB)
///     .with_max_vecs(64)?
///     .with_max_segment_size(64 * 1024)?
///     .with_logical_block_size(4096)?;
/// assert_eq!(limits.block_sectors(), 8);
/// # Ok::<(), gupio_bio::BioError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BioLimits {
    geometry: PageGeometry,
    max_vecs: usize,
    max_segment_size: u32,
    logical_block_size: u32,
    dma_alignment: u32,
}

impl BioLimits {
    /// The default limits for pages of `geometry`: 256 vecs, segments up to
    /// `u32::MAX` bytes, 512-byte logical blocks, 512-byte DMA alignment.
    ///
    /// ```
    /// use gupio_bio::{BioLimits, PageGeometry};
    /// let limits = BioLimits::new(PageGeometry::FOUR_KIB);
    /// assert_eq!((limits.max_vecs(), limits.logical_block_size()), (256, 512));
    /// ```
    #[inline]
    pub const fn new(geometry: PageGeometry) -> Self {
        Self {
            geometry,
            max_vecs: BIO_MAX_VECS,
            max_segment_size: u32::MAX,
            logical_block_size: SECTOR_SIZE,
            dma_alignment: SECTOR_SIZE - 1,
        }
    }

    /// The same limits with at most `max_vecs` bvecs per bio.
    ///
    /// # Errors
    /// [`BioError::InvalidLimit`] unless `1 <= max_vecs <= 256`.
    #[inline]
    pub const fn with_max_vecs(self, max_vecs: usize) -> Result<Self, BioError> {
        if max_vecs == 0 || max_vecs > BIO_MAX_VECS {
            return Err(BioError::InvalidLimit {
                limit: Limit::MaxVecs,
                value: max_vecs as u64,
            });
        }
        Ok(Self { max_vecs, ..self })
    }

    /// The same limits with bvecs of at most `bytes` bytes (merging stops
    /// there; a single larger fragment is refused).
    ///
    /// # Errors
    /// [`BioError::InvalidLimit`] if `bytes` is below the page size.
    #[inline]
    pub const fn with_max_segment_size(self, bytes: u32) -> Result<Self, BioError> {
        if bytes < self.geometry.size_u32() {
            return Err(BioError::InvalidLimit {
                limit: Limit::MaxSegmentSize,
                value: bytes as u64,
            });
        }
        Ok(Self {
            max_segment_size: bytes,
            ..self
        })
    }

    /// The same limits with the device's logical block size.
    ///
    /// # Errors
    /// [`BioError::InvalidLimit`] unless `bytes` is a power of two from 512
    /// to the page size.
    #[inline]
    pub const fn with_logical_block_size(self, bytes: u32) -> Result<Self, BioError> {
        if !bytes.is_power_of_two() || bytes < SECTOR_SIZE || bytes > self.geometry.size_u32() {
            return Err(BioError::InvalidLimit {
                limit: Limit::LogicalBlockSize,
                value: bytes as u64,
            });
        }
        Ok(Self {
            logical_block_size: bytes,
            ..self
        })
    }

    /// The same limits with DMA alignment mask `mask`: each fragment's
    /// offset and length must have none of its bits set (0 allows any byte
    /// address, 3 asks for 4-byte alignment).
    ///
    /// # Errors
    /// [`BioError::InvalidLimit`] unless `mask + 1` is a power of two no
    /// larger than the page size.
    #[inline]
    pub const fn with_dma_alignment(self, mask: u32) -> Result<Self, BioError> {
        let invalid = BioError::InvalidLimit {
            limit: Limit::DmaAlignment,
            value: mask as u64,
        };
        match mask.checked_add(1) {
            Some(unit) if unit.is_power_of_two() && unit <= self.geometry.size_u32() => Ok(Self {
                dma_alignment: mask,
                ..self
            }),
            _ => Err(invalid),
        }
    }

    /// The page geometry.
    #[inline]
    pub const fn geometry(&self) -> PageGeometry {
        self.geometry
    }

    /// The most bvecs a bio may hold.
    #[inline]
    pub const fn max_vecs(&self) -> usize {
        self.max_vecs
    }

    /// The longest bvec, in bytes.
    #[inline]
    pub const fn max_segment_size(&self) -> u32 {
        self.max_segment_size
    }

    /// The device's logical block size, in bytes.
    #[inline]
    pub const fn logical_block_size(&self) -> u32 {
        self.logical_block_size
    }

    /// The logical block size in 512-byte sectors.
    #[inline]
    pub const fn block_sectors(&self) -> u32 {
        self.logical_block_size / SECTOR_SIZE
    }

    /// The DMA alignment mask.
    #[inline]
    pub const fn dma_alignment(&self) -> u32 {
        self.dma_alignment
    }
}

impl Default for BioLimits {
    /// The default limits with 4 KiB pages.
    fn default() -> Self {
        Self::new(PageGeometry::FOUR_KIB)
    }
}

#[cfg(test)]
mod tests;
