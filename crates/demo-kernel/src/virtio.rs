//! virtio-blk over virtio-mmio: the `Hal` for `virtio-drivers` and a polled,
//! zero-copy, scatter-gather block driver.
//!
//! From the `virtio-drivers` crate the kernel uses the MMIO transport (device
//! discovery, feature negotiation, status), the split virtqueue and its `Hal`
//! trait. It does not use the crate's `VirtIOBlk`: that driver takes one data
//! buffer per request, while a bio is a list of segments at unrelated
//! physical frames. [`BlockDevice`] builds each virtio-blk request itself (a
//! 16-byte header, one descriptor per caller segment, a status byte), so one
//! bio maps to one request, the way Linux's `virtio_blk` maps a request's
//! scatterlist.
//!
//! Zero copy: [`KernelHal`]'s [`share`](virtio_drivers::Hal::share)
//! returns a buffer's own address (identity mapping, no IOMMU, coherent DMA
//! on QEMU), so each descriptor points at the caller's frame and the device
//! reads or writes it in place; nothing is bounced. Completion is polled (no
//! interrupts), with a timeout. The `Hal` is in `virtio/hal.rs`, the slots'
//! discovery and ownership in `virtio/slot.rs`.

use core::fmt;
use core::time::Duration;

use bitflags::bitflags;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioTransport, MmioVersion};
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

use crate::mem;
use crate::pattern::SECTOR_SIZE;
use crate::time::Clock;

mod hal;
mod slot;

pub use slot::{scan, SlotState, TransportError, MMIO_BASE, MMIO_SLOTS, MMIO_SLOT_STRIDE};

use hal::KernelHal;
use slot::SlotClaim;

/// Descriptors in the request queue; a request uses 2 + one per segment.
const QUEUE_SIZE: usize = 64;
/// The only virtqueue of a virtio-blk device without multiqueue.
const REQUEST_QUEUE: u16 = 0;
/// How long a request may take before the device is declared dead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// virtio-blk request type: read (device writes the data buffers).
const VIRTIO_BLK_T_IN: u32 = 0;
/// virtio-blk request type: write (device reads the data buffers).
const VIRTIO_BLK_T_OUT: u32 = 1;
/// virtio-blk request type: flush the device's write cache.
const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request status: success.
const VIRTIO_BLK_S_OK: u8 = 0;
/// Placed in the status byte before submission; the device overwrites it.
const STATUS_NOT_WRITTEN: u8 = 0xff;

/// Config-space offset of `capacity` (le64, in 512-byte sectors).
const CONFIG_CAPACITY: usize = 0;
/// Config-space offset of `size_max` (le32, bytes per segment).
const CONFIG_SIZE_MAX: usize = 8;
/// Config-space offset of `seg_max` (le32, segments per request).
const CONFIG_SEG_MAX: usize = 12;

bitflags! {
    /// The virtio-blk feature bits this driver understands (virtio 1.2 §5.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct BlkFeatures: u64 {
        /// `size_max` bounds each segment.
        const SIZE_MAX = 1 << 1;
        /// `seg_max` bounds the segments of a request.
        const SEG_MAX = 1 << 2;
        /// The device is read-only.
        const RO = 1 << 5;
        /// The device has a write cache that `VIRTIO_BLK_T_FLUSH` flushes.
        const FLUSH = 1 << 9;
        /// Non-legacy device (must be accepted when offered).
        const VERSION_1 = 1 << 32;
    }
}

// ---------------------------------------------------------------------------
// The block device.

/// A 512-byte sector number on the block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sector(pub u64);

/// Why a block device could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// No slot holds a block device.
    NoBlockDevice,
    /// A slot number of `MMIO_SLOTS` or more.
    NoSuchSlot(usize),
    /// A driver already owns the slot.
    SlotInUse(usize),
    /// The slot's registers are not a usable virtio-mmio header: (slot, error).
    Transport(usize, TransportError),
    /// The slot holds another kind of device: (slot, its type).
    NotBlock(usize, DeviceType),
    /// The device did not accept the negotiated features; carries the slot.
    FeaturesRejected(usize),
    /// Setting up the device failed: (slot, virtio-drivers' error).
    Setup(usize, virtio_drivers::Error),
    /// The device offers segments of zero bytes or zero segments per request: (slot, what).
    BadLimits(usize, &'static str),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoBlockDevice => write!(f, "no virtio-mmio slot holds a block device"),
            Self::NoSuchSlot(slot) => write!(f, "no virtio-mmio slot {slot}"),
            Self::SlotInUse(slot) => write!(f, "slot {slot} is already in use"),
            Self::Transport(slot, error) => write!(f, "slot {slot}: {error}"),
            Self::NotBlock(slot, kind) => write!(f, "slot {slot} holds a {kind:?} device"),
            Self::FeaturesRejected(slot) => write!(f, "slot {slot} rejected the features"),
            Self::Setup(slot, error) => write!(f, "slot {slot}: setup failed: {error}"),
            Self::BadLimits(slot, what) => write!(f, "slot {slot}: unusable limit: {what}"),
        }
    }
}

/// Why a block request was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// A request with no data segment.
    NoSegments,
    /// Segment `index` is empty.
    EmptySegment(usize),
    /// More segments than one request can carry: (given, limit).
    TooManySegments(usize, usize),
    /// A segment longer than the device accepts: (index, length, limit).
    SegmentTooLong(usize, usize, usize),
    /// The segments' total length is not a multiple of 512; carries it.
    PartialSector(usize),
    /// Sectors past the end of the device: (first sector, sectors, capacity).
    OutOfRange(u64, u64, u64),
    /// Segment `index` (at the address given) is not RAM a device can reach: (index, address).
    NotDmaCapable(usize, usize),
    /// A write or flush to a read-only device.
    ReadOnly,
    /// virtio-drivers refused the request or the completion.
    Queue(virtio_drivers::Error),
    /// The device completed the request with this non-OK status (1 = I/O error, 2 = unsupported).
    Status(u8),
    /// The device did not write the status byte.
    NoStatus,
    /// The device wrote fewer bytes than a read needs: (bytes written, expected).
    ShortRead(u32, usize),
    /// No completion within the timeout; the device was reset and is unusable.
    Timeout,
    /// The device was reset after an earlier failure; reopen it.
    DeviceReset,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSegments => write!(f, "request without data segments"),
            Self::EmptySegment(index) => write!(f, "segment {index} is empty"),
            Self::TooManySegments(count, max) => write!(f, "{count} segments, limit {max}"),
            Self::SegmentTooLong(index, len, max) => {
                write!(f, "segment {index} is {len} bytes, limit {max}")
            }
            Self::PartialSector(bytes) => write!(f, "{bytes} bytes is not whole sectors"),
            Self::OutOfRange(first, count, capacity) => write!(
                f,
                "sectors {first}..{} are past the capacity of {capacity}",
                first.saturating_add(count)
            ),
            Self::NotDmaCapable(index, address) => {
                write!(f, "segment {index} at {address:#x} is outside RAM")
            }
            Self::ReadOnly => write!(f, "device is read-only"),
            Self::Queue(error) => write!(f, "virtqueue: {error}"),
            Self::Status(status) => write!(f, "device returned status {status}"),
            Self::NoStatus => write!(f, "device did not write a status"),
            Self::ShortRead(used, expected) => {
                write!(f, "device wrote {used} bytes, {expected} expected")
            }
            Self::Timeout => write!(f, "request timed out; device reset"),
            Self::DeviceReset => write!(f, "device was reset after an earlier failure"),
        }
    }
}

impl From<virtio_drivers::Error> for BlockError {
    fn from(error: virtio_drivers::Error) -> Self {
        Self::Queue(error)
    }
}

/// A block device's properties, for reports.
#[derive(Clone, Copy, Debug)]
pub struct BlockInfo {
    /// virtio-mmio slot.
    pub slot: usize,
    /// Transport version.
    pub version: MmioVersion,
    /// Capacity in 512-byte sectors.
    pub capacity: u64,
    /// Writes are refused.
    pub read_only: bool,
    /// Most data segments one request carries.
    pub max_segments: usize,
    /// Most bytes one segment carries.
    pub max_segment_len: usize,
    /// The device has a write cache to flush.
    pub has_flush: bool,
}

/// A virtio-blk device, driven by polling, one request at a time.
pub struct BlockDevice {
    transport: MmioTransport<'static>,
    queue: VirtQueue<KernelHal, QUEUE_SIZE>,
    info: BlockInfo,
    clock: Clock,
    /// Set once the device was reset after a failure: all requests refused.
    reset: bool,
    /// Declared last: released after the transport is gone.
    _claim: SlotClaim,
}

/// The 16-byte request header (`struct virtio_blk_req`'s first fields), little-endian.
fn request_header(kind: u32, sector: Sector) -> [u8; 16] {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    // Bytes 4..8: reserved, zero.
    header[8..].copy_from_slice(&sector.0.to_le_bytes());
    header
}

impl BlockDevice {
    /// Opens the block device in the lowest slot that holds one.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoBlockDevice`], or the first block device's open error.
    pub fn open_first(clock: Clock) -> Result<Self, OpenError> {
        for (slot, state) in scan().iter().enumerate() {
            if let SlotState::Device(DeviceType::Block, _) = state {
                return Self::open(slot, clock);
            }
        }
        Err(OpenError::NoBlockDevice)
    }

    /// Opens the block device that comes `index`-th (from 0) in slot
    /// order: QEMU gives the drives of its command line consecutive slots.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoBlockDevice`] if there are not that many, or that
    /// device's open error.
    pub fn open_nth(index: usize, clock: Clock) -> Result<Self, OpenError> {
        let slot = scan()
            .iter()
            .enumerate()
            .filter(|(_, state)| matches!(state, SlotState::Device(DeviceType::Block, _)))
            .nth(index)
            .map(|(slot, _)| slot)
            .ok_or(OpenError::NoBlockDevice)?;
        Self::open(slot, clock)
    }

    /// Resets and initialises the block device in `slot` (virtio 1.2 §3.1.1).
    ///
    /// # Errors
    ///
    /// An [`OpenError`] if the slot is invalid, taken, not a block device, or
    /// the device refuses the setup; a device that got as far as feature
    /// negotiation is left with its FAILED status bit set.
    pub fn open(slot: usize, clock: Clock) -> Result<Self, OpenError> {
        if slot >= MMIO_SLOTS {
            return Err(OpenError::NoSuchSlot(slot));
        }
        let claim = SlotClaim::take(slot).ok_or(OpenError::SlotInUse(slot))?;
        let mut transport = claim
            .transport()
            .map_err(|error| OpenError::Transport(slot, error.into()))?;
        let kind = transport.device_type();
        if kind != DeviceType::Block {
            return Err(OpenError::NotBlock(slot, kind));
        }
        let supported = BlkFeatures::SIZE_MAX
            | BlkFeatures::SEG_MAX
            | BlkFeatures::RO
            | BlkFeatures::FLUSH
            | BlkFeatures::VERSION_1;
        let features = transport.begin_init(supported);
        let setup = Self::configure(&mut transport, slot, features);
        let (max_segments, max_segment_len, capacity, queue) = match setup {
            Ok(setup) => setup,
            Err(error) => {
                let status = transport.get_status() | DeviceStatus::FAILED;
                transport.set_status(status);
                return Err(error);
            }
        };
        transport.finish_init();
        let info = BlockInfo {
            slot,
            version: transport.version(),
            capacity,
            read_only: features.contains(BlkFeatures::RO),
            max_segments,
            max_segment_len,
            has_flush: features.contains(BlkFeatures::FLUSH),
        };
        Ok(Self {
            transport,
            queue,
            info,
            clock,
            reset: false,
            _claim: claim,
        })
    }

    /// Checks the negotiation, reads the config and sets up the queue.
    fn configure(
        transport: &mut MmioTransport<'static>,
        slot: usize,
        features: BlkFeatures,
    ) -> Result<(usize, usize, u64, VirtQueue<KernelHal, QUEUE_SIZE>), OpenError> {
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            return Err(OpenError::FeaturesRejected(slot));
        }
        let setup = |error| OpenError::Setup(slot, error);
        let capacity = transport
            .read_consistent(|| {
                let low: u32 = transport.read_config_space(CONFIG_CAPACITY)?;
                let high: u32 = transport.read_config_space(CONFIG_CAPACITY + 4)?;
                Ok((u64::from(high) << 32) | u64::from(low))
            })
            .map_err(setup)?;
        // Header and status take two descriptors; no indirect descriptors.
        let mut max_segments = QUEUE_SIZE - 2;
        if features.contains(BlkFeatures::SEG_MAX) {
            let seg_max: u32 = transport.read_config_space(CONFIG_SEG_MAX).map_err(setup)?;
            max_segments = max_segments.min(usize::try_from(seg_max).unwrap_or(usize::MAX));
        }
        // A descriptor's length is a u32.
        let mut max_segment_len = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
        if features.contains(BlkFeatures::SIZE_MAX) {
            let size_max: u32 = transport
                .read_config_space(CONFIG_SIZE_MAX)
                .map_err(setup)?;
            max_segment_len = max_segment_len.min(usize::try_from(size_max).unwrap_or(usize::MAX));
        }
        if max_segments == 0 {
            return Err(OpenError::BadLimits(slot, "seg_max is 0"));
        }
        if max_segment_len == 0 {
            return Err(OpenError::BadLimits(slot, "size_max is 0"));
        }
        // Neither indirect descriptors nor event-index suppression are offered.
        let queue = VirtQueue::new(transport, REQUEST_QUEUE, false, false).map_err(setup)?;
        Ok((max_segments, max_segment_len, capacity, queue))
    }

    /// The device's properties.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// Checks a request before anything reaches the device; returns its data length.
    fn check<'s>(
        &self,
        first: Sector,
        segments: impl ExactSizeIterator<Item = &'s [u8]>,
        writes: bool,
    ) -> Result<usize, BlockError> {
        if self.reset {
            return Err(BlockError::DeviceReset);
        }
        if writes && self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        let count = segments.len();
        if count == 0 {
            return Err(BlockError::NoSegments);
        }
        if count > self.info.max_segments {
            return Err(BlockError::TooManySegments(count, self.info.max_segments));
        }
        let mut total = 0usize;
        for (index, segment) in segments.enumerate() {
            let len = segment.len();
            if len == 0 {
                return Err(BlockError::EmptySegment(index));
            }
            if len > self.info.max_segment_len {
                return Err(BlockError::SegmentTooLong(
                    index,
                    len,
                    self.info.max_segment_len,
                ));
            }
            let address = segment.as_ptr() as usize;
            if !mem::is_dma_capable(address, len) {
                return Err(BlockError::NotDmaCapable(index, address));
            }
            // Segments are disjoint memory, so their sum cannot overflow.
            total += len;
        }
        if !total.is_multiple_of(SECTOR_SIZE) {
            return Err(BlockError::PartialSector(total));
        }
        let sectors = (total / SECTOR_SIZE) as u64;
        let in_range = first
            .0
            .checked_add(sectors)
            .is_some_and(|end| end <= self.info.capacity);
        if !in_range {
            return Err(BlockError::OutOfRange(first.0, sectors, self.info.capacity));
        }
        Ok(total)
    }

    /// Reads consecutive sectors from `first` into `segments`, in order, in one
    /// request: the device writes straight into each segment's memory.
    ///
    /// # Errors
    ///
    /// A [`BlockError`] if the request is malformed (checked before the device
    /// sees it) or the device fails it. The segments' contents are unspecified
    /// after an error.
    pub fn read(&mut self, first: Sector, segments: &mut [&mut [u8]]) -> Result<(), BlockError> {
        let total = self.check(first, segments.iter().map(|s| &**s), false)?;
        let header = request_header(VIRTIO_BLK_T_IN, first);
        let mut status = [STATUS_NOT_WRITTEN];
        let mut outputs: [&mut [u8]; QUEUE_SIZE] = core::array::from_fn(|_| <&mut [u8]>::default());
        let count = segments.len();
        for (output, segment) in outputs.iter_mut().zip(segments.iter_mut()) {
            *output = segment;
        }
        outputs[count] = &mut status;
        let used = self.submit_and_wait(&[&header], &mut outputs[..=count])?;
        Self::check_status(status[0])?;
        // The device-writable buffers are the data and the status byte.
        if usize::try_from(used).map_or(true, |used| used < total + 1) {
            return Err(BlockError::ShortRead(used, total + 1));
        }
        Ok(())
    }

    /// Writes `segments`, in order, to consecutive sectors from `first` in one
    /// request: the device reads straight from each segment's memory.
    ///
    /// Completion means the device accepted the data; call [`Self::flush`]
    /// to get it past a write cache.
    ///
    /// # Errors
    ///
    /// A [`BlockError`] if the request is malformed (checked before the device
    /// sees it) or the device fails it.
    pub fn write(&mut self, first: Sector, segments: &[&[u8]]) -> Result<(), BlockError> {
        self.check(first, segments.iter().copied(), true)?;
        let header = request_header(VIRTIO_BLK_T_OUT, first);
        let mut status = [STATUS_NOT_WRITTEN];
        let mut inputs: [&[u8]; QUEUE_SIZE] = [&[]; QUEUE_SIZE];
        inputs[0] = &header;
        inputs[1..=segments.len()].copy_from_slice(segments);
        self.submit_and_wait(&inputs[..=segments.len()], &mut [&mut status])?;
        Self::check_status(status[0])
    }

    /// Flushes the device's write cache, if it has one.
    ///
    /// # Errors
    ///
    /// [`BlockError::ReadOnly`], or a device failure.
    pub fn flush(&mut self) -> Result<(), BlockError> {
        if self.reset {
            return Err(BlockError::DeviceReset);
        }
        if self.info.read_only {
            return Err(BlockError::ReadOnly);
        }
        if !self.info.has_flush {
            return Ok(());
        }
        let header = request_header(VIRTIO_BLK_T_FLUSH, Sector(0));
        let mut status = [STATUS_NOT_WRITTEN];
        self.submit_and_wait(&[&header], &mut [&mut status])?;
        Self::check_status(status[0])
    }

    fn check_status(status: u8) -> Result<(), BlockError> {
        match status {
            VIRTIO_BLK_S_OK => Ok(()),
            STATUS_NOT_WRITTEN => Err(BlockError::NoStatus),
            other => Err(BlockError::Status(other)),
        }
    }

    /// Puts one descriptor chain on the queue, notifies the device, polls for
    /// its completion and takes it back; returns the bytes the device wrote.
    ///
    /// The buffers are lent to the device from `add` until `pop_used` (or a
    /// reset) returns them; the borrows of `inputs` and `outputs` outlive both.
    fn submit_and_wait<'a>(
        &mut self,
        inputs: &'a [&'a [u8]],
        outputs: &'a mut [&'a mut [u8]],
    ) -> Result<u32, BlockError> {
        // SAFETY: this function does not return before the device has handed
        // the chain back (`pop_used`) or has been reset (which ends its use of
        // every buffer), and nothing touches the buffers in between.
        let token = unsafe { self.queue.add(inputs, &mut *outputs) }?;
        if self.queue.should_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
        let deadline = self.clock.deadline(REQUEST_TIMEOUT);
        while !self.queue.can_pop() {
            if self.clock.has_passed(deadline) {
                self.reset_device();
                return Err(BlockError::Timeout);
            }
            core::hint::spin_loop();
        }
        // SAFETY: the same buffers as passed to `add` for this token.
        match unsafe { self.queue.pop_used(token, inputs, outputs) } {
            Ok(used) => Ok(used),
            Err(error) => {
                // The device completed something else: it may still own the
                // buffers, so stop it before they go back to the caller.
                self.reset_device();
                Err(BlockError::Queue(error))
            }
        }
    }

    /// Resets the device, which stops its use of every buffer (virtio 1.2
    /// §2.4: a reset is complete when the status reads back 0).
    fn reset_device(&mut self) {
        self.transport.set_status(DeviceStatus::empty());
        while self.transport.get_status() != DeviceStatus::empty() {
            core::hint::spin_loop();
        }
        self.reset = true;
    }
}

impl Drop for BlockDevice {
    fn drop(&mut self) {
        // Stop the device before the queue's rings go back to the DMA pool.
        self.reset_device();
    }
}
