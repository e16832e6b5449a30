//! The crate's error type, and the add error that hands a page back.

use core::fmt;

use crate::bvec::BioVec;
use crate::op::BioOp;

/// Which of a [`BioLimits`](crate::BioLimits) value's limits was set to an
/// unusable value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The most bvecs a bio may hold (1 to 256).
    MaxVecs,
    /// The largest single bvec, in bytes (at least one page).
    MaxSegmentSize,
    /// The device's logical block size (a power of two, 512 to one page).
    LogicalBlockSize,
    /// The DMA alignment mask (a power of two minus one, below one page).
    DmaAlignment,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxVecs => "max_vecs",
            Self::MaxSegmentSize => "max_segment_size",
            Self::LogicalBlockSize => "logical_block_size",
            Self::DmaAlignment => "dma_alignment",
        })
    }
}

/// Everything a caller can get wrong when building, moving or splitting a bio.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BioError {
    /// A fragment, discard range or data bio of zero bytes.
    ZeroLength,
    /// The descriptor names no page (the [`BioVec::NONE`] sentinel).
    NoPage,
    /// `offset + len` runs past the end of the page or folio being added.
    PastPageRun {
        /// The offset passed.
        offset: u32,
        /// The length passed.
        len: u32,
        /// Bytes in the page or folio.
        run_bytes: u64,
    },
    /// The fragment's page run leaves the encodable page-frame range.
    PfnOutOfRange {
        /// The first page-frame number of the run.
        pfn: usize,
        /// Pages in the run.
        pages: u64,
    },
    /// The operation does not allow this: pages on a flush or discard, a
    /// discard range on a read or write.
    OpMismatch {
        /// The bio's operation.
        op: BioOp,
    },
    /// The bio already holds `max_vecs` bvecs and the fragment cannot merge.
    TooManyVecs {
        /// The bio's vec limit.
        max_vecs: usize,
    },
    /// A new bvec would be longer than the max segment size.
    SegmentTooLarge {
        /// The fragment's length.
        len: u32,
        /// The limit.
        max_segment_size: u32,
    },
    /// The bio's size would exceed `u32::MAX` bytes.
    SizeOverflow {
        /// The bio's size before the add.
        size: u32,
        /// The bytes that did not fit.
        len: u32,
    },
    /// The fragment's offset or length is not aligned to the DMA alignment.
    Misaligned {
        /// The fragment's in-page offset.
        offset: u32,
        /// The fragment's length.
        len: u32,
        /// The DMA alignment mask.
        dma_alignment: u32,
    },
    /// A size that is not a multiple of the logical block size.
    NotBlockMultiple {
        /// The size in bytes.
        bytes: u32,
        /// The logical block size.
        logical_block_size: u32,
    },
    /// Advance by more bytes than the iterator has left (it is now empty).
    AdvancePastEnd {
        /// The bytes asked for.
        requested: u32,
        /// The bytes that were left.
        remaining: u32,
    },
    /// Rewind by more bytes than lie before the iterator (it is unchanged).
    RewindPastStart {
        /// The bytes asked for.
        requested: u32,
        /// The bytes before the iterator.
        available: u32,
    },
    /// A byte count that is not a whole number of 512-byte sectors.
    NotSectorMultiple {
        /// The byte count.
        bytes: u32,
    },
    /// The sector would leave the `u64` range.
    SectorOverflow {
        /// The sector before the move.
        sector: u64,
        /// The sectors by which it was to move.
        sectors: u32,
    },
    /// A split of zero sectors, or of all the bio's sectors or more.
    SplitOutOfRange {
        /// The sectors asked for.
        sectors: u32,
        /// The sectors the bio has left.
        bio_sectors: u32,
    },
    /// A split that is not a whole number of logical blocks.
    SplitUnaligned {
        /// The sectors asked for.
        sectors: u32,
        /// Sectors per logical block.
        block_sectors: u32,
    },
    /// A limit set to an unusable value.
    InvalidLimit {
        /// Which limit.
        limit: Limit,
        /// The rejected value.
        value: u64,
    },
}

impl fmt::Display for BioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ZeroLength => f.write_str("zero-length fragment, range or bio"),
            Self::NoPage => f.write_str("the bvec names no page"),
            Self::PastPageRun {
                offset,
                len,
                run_bytes,
            } => write!(
                f,
                "offset {offset} + length {len} runs past the {run_bytes}-byte page run"
            ),
            Self::PfnOutOfRange { pfn, pages } => write!(
                f,
                "{pages} pages from pfn {pfn:#x} leave the encodable pfn range"
            ),
            Self::OpMismatch { op } => write!(f, "not allowed on a {op:?} bio"),
            Self::TooManyVecs { max_vecs } => {
                write!(f, "bio full: it already holds max_vecs = {max_vecs} bvecs")
            }
            Self::SegmentTooLarge {
                len,
                max_segment_size,
            } => write!(
                f,
                "a {len}-byte segment exceeds max_segment_size = {max_segment_size}"
            ),
            Self::SizeOverflow { size, len } => {
                write!(f, "bio size {size} + {len} bytes would exceed u32::MAX")
            }
            Self::Misaligned {
                offset,
                len,
                dma_alignment,
            } => write!(
                f,
                "offset {offset} or length {len} violates dma_alignment mask {dma_alignment:#x}"
            ),
            Self::NotBlockMultiple {
                bytes,
                logical_block_size,
            } => write!(
                f,
                "{bytes} bytes is not a multiple of the {logical_block_size}-byte logical block"
            ),
            Self::AdvancePastEnd {
                requested,
                remaining,
            } => write!(
                f,
                "advance by {requested} bytes past the end ({remaining} left)"
            ),
            Self::RewindPastStart {
                requested,
                available,
            } => write!(
                f,
                "rewind by {requested} bytes past the start ({available} before)"
            ),
            Self::NotSectorMultiple { bytes } => {
                write!(f, "{bytes} bytes is not a whole number of 512-byte sectors")
            }
            Self::SectorOverflow { sector, sectors } => write!(
                f,
                "moving sector {sector} by {sectors} sectors leaves the u64 range"
            ),
            Self::SplitOutOfRange {
                sectors,
                bio_sectors,
            } => write!(
                f,
                "split of {sectors} sectors outside a {bio_sectors}-sector bio"
            ),
            Self::SplitUnaligned {
                sectors,
                block_sectors,
            } => write!(
                f,
                "split of {sectors} sectors is not a multiple of the {block_sectors}-sector block"
            ),
            Self::InvalidLimit { limit, value } => {
                write!(f, "{limit} = {value} is not a usable limit")
            }
        }
    }
}

/// A refused add: why, and the fragment exactly as the caller passed it.
///
/// The bio took nothing: the caller still owns the page reference (pin,
/// reference or loan) that [`rejected`](Self::rejected) describes, and must
/// release it or add it elsewhere.
#[must_use = "the rejected page reference is handed back: release it or add it elsewhere"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddError {
    error: BioError,
    rejected: BioVec,
}

impl AddError {
    pub(crate) const fn new(error: BioError, rejected: BioVec) -> Self {
        Self { error, rejected }
    }

    /// Why the add was refused.
    #[inline]
    pub const fn error(&self) -> BioError {
        self.error
    }

    /// The fragment as passed (for `add_folio`, the folio's head page).
    #[inline]
    pub const fn rejected(&self) -> BioVec {
        self.rejected
    }
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (refused {:?}; the caller keeps its reference)",
            self.error, self.rejected
        )
    }
}

impl core::error::Error for BioError {}

impl core::error::Error for AddError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        Some(&self.error)
    }
}
