//! The block layer between gupio's bios and the virtio-blk driver.
//!
//! [`queue_limits`] turns the device's limits (segments per request, bytes
//! per segment) into gupio's [`BioLimits`], so every bio the kernel builds
//! fits one virtio-blk request. [`execute`] runs a submitted bio as that
//! request: each segment of the bio (a bvec: page-frame number, offset,
//! length; several pages long for a run of a large folio) becomes the
//! physical run `pfn * PAGE_SIZE + offset .. + len`, which is also where the
//! CPU reaches it (identity mapping, no IOMMU), and [`PhysMemory`] lends
//! those bytes to the driver for the length of the request. Nothing is
//! copied: the device DMAs into, or out of, the pinned, referenced or
//! borrowed frames themselves. The origin in each bvec does not matter here;
//! it matters at release, which is gupio's job.
//!
//! [`PhysMemory`]: crate::physmem::PhysMemory

use core::fmt;

use gupio::bio::{Bio, BioError, BioLimits, BioOp, BvecStorage, BIO_MAX_VECS};
use gupio::pfn::Pfn;

use crate::pagemap::{PageMap, GEOMETRY};
use crate::physmem::{AccessError, PhysExtent, MAX_DMA_SEGMENTS};
use crate::virtio::{BlockDevice, BlockError, BlockInfo, Sector};

/// Why a bio could not be run as a request. The caller completes the bio
/// with an error status and releases its pages as usual.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Segment `index` has no page (the bvec sentinel).
    NoPage(usize),
    /// Segment `index` names a frame the kernel cannot lend to the device.
    NotLendable(usize, Pfn),
    /// More segments than one request carries; carries the limit.
    TooManySegments(usize),
    /// The operation has no virtio-blk request here.
    NotSupported(BioOp),
    /// The segments' memory could not be lent.
    Access(AccessError),
    /// The driver or the device failed the request.
    Block(BlockError),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoPage(index) => write!(f, "segment {index} has no page"),
            Self::NotLendable(index, pfn) => {
                write!(f, "segment {index}: pfn {pfn:#x} is not managed memory")
            }
            Self::TooManySegments(limit) => write!(f, "more than {limit} segments"),
            Self::NotSupported(op) => write!(f, "{op:?} is not supported"),
            Self::Access(error) => write!(f, "{error}"),
            Self::Block(error) => write!(f, "{error}"),
        }
    }
}

impl From<AccessError> for RequestError {
    fn from(error: AccessError) -> Self {
        Self::Access(error)
    }
}

impl From<BlockError> for RequestError {
    fn from(error: BlockError) -> Self {
        Self::Block(error)
    }
}

/// What a request moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Data segments (descriptors) of the request.
    pub segments: usize,
    /// Bytes the device wrote into memory (a read).
    pub bytes_in: usize,
    /// Bytes the device read from memory (a write).
    pub bytes_out: usize,
}

/// gupio limits for bios on `info`'s device: at most `max_vecs` bvecs (and
/// no more than one request carries), segments no longer than the device
/// takes, 4 KiB pages, 512-byte blocks.
///
/// # Errors
///
/// [`BioError::InvalidLimit`] if the device's segments are shorter than a
/// page (this block layer does not split pages).
pub fn queue_limits(info: &BlockInfo, max_vecs: usize) -> Result<BioLimits, BioError> {
    let max_vecs = max_vecs
        .min(info.max_segments)
        .min(MAX_DMA_SEGMENTS)
        .min(BIO_MAX_VECS);
    let max_segment = u32::try_from(info.max_segment_len).unwrap_or(u32::MAX);
    BioLimits::new(GEOMETRY)
        .with_max_vecs(max_vecs)?
        .with_max_segment_size(max_segment)
}

/// Runs the bytes `bio` has left as one virtio-blk request: the device
/// reads or writes its pages in place. Returns what moved.
///
/// # Errors
///
/// A [`RequestError`]; the device saw the request only for
/// [`RequestError::Block`] errors it reported itself.
pub fn execute<S: BvecStorage>(
    disk: &mut BlockDevice,
    map: &PageMap,
    bio: &Bio<S>,
) -> Result<RequestStats, RequestError> {
    let mut extents = [PhysExtent::default(); MAX_DMA_SEGMENTS];
    let mut count = 0;
    for (index, segment) in bio.segments().enumerate() {
        let slot = extents
            .get_mut(index)
            .ok_or(RequestError::TooManySegments(MAX_DMA_SEGMENTS))?;
        let pfn = segment.page().ok_or(RequestError::NoPage(index))?;
        // Offsets and lengths are u32 in a bvec; usize is 64 bits here.
        let (offset, len) = (segment.offset() as usize, segment.len() as usize);
        *slot = map
            .extent(pfn, offset, len)
            .map_err(|_| RequestError::NotLendable(index, pfn))?;
        count += 1;
    }
    let extents = &extents[..count];
    let sector = Sector(bio.sector().0);
    let bytes: usize = extents.iter().map(|extent| extent.len).sum();
    match bio.op() {
        BioOp::Read => {
            map.memory()
                .lend_for_device_write(extents, |buffers| disk.read(sector, buffers))??;
            Ok(RequestStats {
                segments: count,
                bytes_in: bytes,
                bytes_out: 0,
            })
        }
        BioOp::Write => {
            map.memory()
                .lend_for_device_read(extents, |buffers| disk.write(sector, buffers))??;
            Ok(RequestStats {
                segments: count,
                bytes_in: 0,
                bytes_out: bytes,
            })
        }
        BioOp::Flush => {
            disk.flush()?;
            Ok(RequestStats::default())
        }
        op => Err(RequestError::NotSupported(op)),
    }
}
