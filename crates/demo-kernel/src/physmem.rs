//! Byte access to the frames of the managed region, and the DMA buffers a
//! request's segments become.
//!
//! The kernel runs without paging: a frame's physical address is where the
//! CPU reads it (identity mapping) and where the device DMAs. The whole
//! managed region is one [`FrameRun`] owned by [`PhysMemory`], and every
//! access borrows it through a `RefCell`: the CPU's reads and writes of page
//! contents (the kernel filling a page, `copy_to_user`, checks) and the
//! device's. A request's segments are carved out of the region's one
//! `&mut [u8]` with `split_at_mut`, after checking that each lies in the
//! region and, when the device writes memory, that no two overlap. So the
//! buffers handed to the driver are ordinary exclusive (or shared) borrows
//! that last exactly as long as the request: no `unsafe` here; the only
//! `unsafe` behind it is `FrameRun`'s own (see `mem.rs`).

use core::cell::RefCell;
use core::fmt;
use core::ops::Range;

use crate::mem::{FrameRun, PhysRange};

/// Most segments one request carries: the virtqueue's size bounds it anyway.
pub const MAX_DMA_SEGMENTS: usize = 64;

/// A run of bytes of physical memory: `len` bytes from address `addr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhysExtent {
    /// Physical address of the first byte.
    pub addr: usize,
    /// Bytes in the run.
    pub len: usize,
}

impl PhysExtent {
    /// The run `[addr, addr + len)`.
    pub const fn new(addr: usize, len: usize) -> Self {
        Self { addr, len }
    }
}

impl fmt::Display for PhysExtent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, +{:#x})", self.addr, self.len)
    }
}

/// Why memory of the managed region could not be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The run is not inside the managed region.
    OutsideRegion(PhysExtent),
    /// Two segments the device would write overlap: (first index, second index).
    Overlap(usize, usize),
    /// More segments than one request carries: (count, limit).
    TooManySegments(usize, usize),
    /// The region is lent out (to the device, or to another access).
    Busy,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutsideRegion(extent) => {
                write!(f, "{extent} is outside the managed region")
            }
            Self::Overlap(first, second) => {
                write!(
                    f,
                    "segments {first} and {second} overlap and the device writes both"
                )
            }
            Self::TooManySegments(count, limit) => {
                write!(f, "{count} segments, at most {limit} per request")
            }
            Self::Busy => write!(f, "the managed region is already lent out"),
        }
    }
}

/// The managed region's memory: the only way to its bytes.
pub struct PhysMemory {
    region: PhysRange,
    frames: RefCell<FrameRun>,
}

impl PhysMemory {
    /// Takes ownership of `frames`: from now on their bytes are reached only
    /// through this object.
    pub fn new(frames: FrameRun) -> Self {
        let start = frames.phys_addr();
        let region = PhysRange {
            start,
            end: start + frames.bytes().len(),
        };
        Self {
            region,
            frames: RefCell::new(frames),
        }
    }

    /// The physical range of the region.
    pub fn region(&self) -> PhysRange {
        self.region
    }

    /// Offsets of `extent` within the region's bytes.
    fn offsets(&self, extent: PhysExtent) -> Result<Range<usize>, AccessError> {
        if !self.region.contains_range(extent.addr, extent.len) {
            return Err(AccessError::OutsideRegion(extent));
        }
        let start = extent.addr - self.region.start;
        Ok(start..start + extent.len)
    }

    /// Runs `f` on the bytes of `extent`.
    ///
    /// # Errors
    ///
    /// [`AccessError::OutsideRegion`], or [`AccessError::Busy`] while the
    /// device may write the region.
    pub fn with_bytes<R>(
        &self,
        extent: PhysExtent,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, AccessError> {
        let range = self.offsets(extent)?;
        let frames = self.frames.try_borrow().map_err(|_| AccessError::Busy)?;
        let bytes = frames
            .bytes()
            .get(range)
            .ok_or(AccessError::OutsideRegion(extent))?;
        Ok(f(bytes))
    }

    /// Runs `f` on the bytes of `extent`, writable.
    ///
    /// # Errors
    ///
    /// [`AccessError::OutsideRegion`], or [`AccessError::Busy`] while the
    /// region is lent out.
    pub fn with_bytes_mut<R>(
        &self,
        extent: PhysExtent,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R, AccessError> {
        let range = self.offsets(extent)?;
        let mut frames = self
            .frames
            .try_borrow_mut()
            .map_err(|_| AccessError::Busy)?;
        let bytes = frames
            .bytes_mut()
            .get_mut(range)
            .ok_or(AccessError::OutsideRegion(extent))?;
        Ok(f(bytes))
    }

    /// Copies `from` to the run of the same length at physical address `to`
    /// (the runs may overlap).
    ///
    /// # Errors
    ///
    /// As [`with_bytes_mut`](Self::with_bytes_mut), for either run.
    pub fn copy(&self, from: PhysExtent, to: usize) -> Result<(), AccessError> {
        let source = self.offsets(from)?;
        let target = self.offsets(PhysExtent::new(to, from.len))?;
        let mut frames = self
            .frames
            .try_borrow_mut()
            .map_err(|_| AccessError::Busy)?;
        frames.bytes_mut().copy_within(source, target.start);
        Ok(())
    }

    /// Lends the segments of a request the device writes into (a read from
    /// the disk) to `f`, as exclusive buffers in the order given.
    ///
    /// # Errors
    ///
    /// [`AccessError::TooManySegments`], [`AccessError::OutsideRegion`],
    /// [`AccessError::Overlap`] (two buffers the device writes must not
    /// alias), or [`AccessError::Busy`]; `f` does not run then.
    pub fn lend_for_device_write<R>(
        &self,
        segments: &[PhysExtent],
        f: impl FnOnce(&mut [&mut [u8]]) -> R,
    ) -> Result<R, AccessError> {
        let count = segments.len();
        if count > MAX_DMA_SEGMENTS {
            return Err(AccessError::TooManySegments(count, MAX_DMA_SEGMENTS));
        }
        let mut ranges: [Range<usize>; MAX_DMA_SEGMENTS] = core::array::from_fn(|_| 0..0);
        for (range, &segment) in ranges.iter_mut().zip(segments) {
            *range = self.offsets(segment)?;
        }
        let ranges = &ranges[..count];
        // Carve in address order; `order` maps that order back to the caller's.
        let mut order: [usize; MAX_DMA_SEGMENTS] = core::array::from_fn(|index| index);
        let order = &mut order[..count];
        order.sort_unstable_by_key(|&index| ranges[index].start);
        for pair in order.windows(2) {
            if ranges[pair[0]].end > ranges[pair[1]].start {
                let (first, second) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
                return Err(AccessError::Overlap(first, second));
            }
        }
        let mut frames = self
            .frames
            .try_borrow_mut()
            .map_err(|_| AccessError::Busy)?;
        let mut buffers: [&mut [u8]; MAX_DMA_SEGMENTS] =
            core::array::from_fn(|_| <&mut [u8]>::default());
        let mut rest: &mut [u8] = frames.bytes_mut();
        let mut rest_start = 0usize;
        for &index in order.iter() {
            let range = &ranges[index];
            // Sorted and disjoint: each range starts at or after `rest_start`
            // and lies in the region, so neither split fails.
            let outside = AccessError::OutsideRegion(segments[index]);
            let (_, tail) = core::mem::take(&mut rest)
                .split_at_mut_checked(range.start - rest_start)
                .ok_or(outside)?;
            let (buffer, tail) = tail.split_at_mut_checked(range.len()).ok_or(outside)?;
            buffers[index] = buffer;
            rest = tail;
            rest_start = range.end;
        }
        Ok(f(&mut buffers[..count]))
    }

    /// Lends the segments of a request the device reads (a write to the
    /// disk) to `f`, as shared buffers in the order given; they may overlap.
    ///
    /// # Errors
    ///
    /// [`AccessError::TooManySegments`], [`AccessError::OutsideRegion`], or
    /// [`AccessError::Busy`] while the device may write the region; `f`
    /// does not run then.
    pub fn lend_for_device_read<R>(
        &self,
        segments: &[PhysExtent],
        f: impl FnOnce(&[&[u8]]) -> R,
    ) -> Result<R, AccessError> {
        let count = segments.len();
        if count > MAX_DMA_SEGMENTS {
            return Err(AccessError::TooManySegments(count, MAX_DMA_SEGMENTS));
        }
        let frames = self.frames.try_borrow().map_err(|_| AccessError::Busy)?;
        let bytes = frames.bytes();
        let mut buffers: [&[u8]; MAX_DMA_SEGMENTS] = [&[]; MAX_DMA_SEGMENTS];
        for (buffer, &segment) in buffers.iter_mut().zip(segments) {
            *buffer = bytes
                .get(self.offsets(segment)?)
                .ok_or(AccessError::OutsideRegion(segment))?;
        }
        Ok(f(&buffers[..count]))
    }
}
