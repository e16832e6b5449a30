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
//! Zero copy: [`KernelHal::share`] returns a buffer's own address (identity
//! mapping, no IOMMU, coherent DMA on QEMU), so each descriptor points at the
//! caller's frame and the device reads or writes it in place; nothing is
//! bounced. Completion is polled (no interrupts), with a timeout.

use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use core::time::Duration;

use bitflags::bitflags;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, MmioVersion, VirtIOHeader};
use virtio_drivers::transport::{DeviceStatus, DeviceType, DeviceTypeError, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use crate::mem;
use crate::pattern::SECTOR_SIZE;
use crate::time::Clock;

/// Physical address of virtio-mmio slot 0 on QEMU `virt`.
pub const MMIO_BASE: usize = 0x1000_1000;
/// Distance between consecutive virtio-mmio slots.
pub const MMIO_SLOT_STRIDE: usize = 0x1000;
/// virtio-mmio slots on QEMU `virt` (IRQs 1..=8 on the PLIC, unused here).
pub const MMIO_SLOTS: usize = 8;
/// Bytes of one slot's register block and config space.
const MMIO_SLOT_SIZE: usize = 0x200;

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
// Hal: DMA memory for the virtqueue rings, identity sharing of data buffers.

/// Pages in the static pool the virtqueue rings come from (one `AtomicU32` bit each).
const DMA_POOL_PAGES: usize = 16;

#[repr(C, align(4096))]
struct DmaPage([u8; PAGE_SIZE]);

/// Physically contiguous pages for virtqueue rings, in `.bss`, outside the
/// frames [`mem::FrameAllocator`] manages.
struct DmaPool {
    pages: UnsafeCell<[DmaPage; DMA_POOL_PAGES]>,
    /// Bit i set: page i is allocated.
    in_use: AtomicU32,
}

// SAFETY: `pages` is only reached through `alloc`, which hands each page to
// one owner at a time (claimed by compare-exchange on `in_use`).
unsafe impl Sync for DmaPool {}

static DMA_POOL: DmaPool = DmaPool {
    pages: UnsafeCell::new([const { DmaPage([0; PAGE_SIZE]) }; DMA_POOL_PAGES]),
    in_use: AtomicU32::new(0),
};

fn run_mask(pages: usize) -> u32 {
    // pages <= DMA_POOL_PAGES < 32, checked by every caller.
    (1u32 << pages) - 1
}

impl DmaPool {
    fn base(&self) -> *mut u8 {
        self.pages.get().cast()
    }

    /// Claims `pages` contiguous free pages; returns the first's index.
    fn alloc(&self, pages: usize) -> Option<usize> {
        if pages == 0 || pages > DMA_POOL_PAGES {
            return None;
        }
        let mask = run_mask(pages);
        let mut current = self.in_use.load(Ordering::Relaxed);
        loop {
            let first = (0..=DMA_POOL_PAGES - pages).find(|&i| current & (mask << i) == 0)?;
            // Acquire pairs with the Release in `free`: the previous owner's
            // accesses to these pages happen before ours.
            match self.in_use.compare_exchange_weak(
                current,
                current | (mask << first),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(first),
                Err(now) => current = now,
            }
        }
    }

    /// Returns pages claimed by `alloc`; false (and no change) if they were not all claimed.
    fn free(&self, first: usize, pages: usize) -> bool {
        if pages == 0
            || first
                .checked_add(pages)
                .is_none_or(|end| end > DMA_POOL_PAGES)
        {
            return false;
        }
        let mask = run_mask(pages) << first;
        // Release pairs with the Acquire in `alloc` (see there).
        self.in_use
            .fetch_update(Ordering::Release, Ordering::Relaxed, |bits| {
                (bits & mask == mask).then_some(bits & !mask)
            })
            .is_ok()
    }
}

/// The kernel's [`Hal`]: machine mode, no paging, no IOMMU, coherent DMA.
pub struct KernelHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed, physically contiguous
// pages of DMA_POOL that no one else holds until `dma_dealloc`, with
// paddr == vaddr (identity mapping). `mmio_phys_to_virt` and `share` return
// the address itself, which is valid because there is no paging: the device
// accesses the caller's buffer in place and `unshare` has nothing to copy
// back. DMA on QEMU is cache-coherent, so no cache maintenance is needed.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(first) = DMA_POOL.alloc(pages) else {
            // paddr 0 tells virtio-drivers the allocation failed.
            return (0, NonNull::dangling());
        };
        // SAFETY: first + pages <= DMA_POOL_PAGES, so the range lies in the pool.
        let start = unsafe { DMA_POOL.base().add(first * PAGE_SIZE) };
        // SAFETY: `alloc` gave us these pages exclusively.
        unsafe { core::ptr::write_bytes(start, 0, pages * PAGE_SIZE) };
        let start = NonNull::new(start).expect("the DMA pool is not at address 0");
        (pointer_to_phys(start.as_ptr()), start)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let offset = (vaddr.as_ptr() as usize).wrapping_sub(DMA_POOL.base() as usize);
        if !offset.is_multiple_of(PAGE_SIZE) || !DMA_POOL.free(offset / PAGE_SIZE, pages) {
            return -1;
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        // Only the PCI transport calls this; MMIO is identity mapped anyway.
        NonNull::new(phys_to_pointer(paddr)).expect("MMIO region at physical address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        pointer_to_phys(buffer.cast::<u8>().as_ptr())
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The physical address of `pointer` (identity mapping).
fn pointer_to_phys(pointer: *const u8) -> PhysAddr {
    pointer as usize as PhysAddr
}

/// The pointer for physical address `paddr` (identity mapping).
fn phys_to_pointer(paddr: PhysAddr) -> *mut u8 {
    // Lossless: usize is 64 bits on this target (asserted in `mem`).
    #[allow(clippy::cast_possible_truncation)]
    let address = paddr as usize;
    address as *mut u8
}

// ---------------------------------------------------------------------------
// Slots: discovery and exclusive ownership of each slot's registers.

/// Bit i set: slot i's registers belong to a live transport.
///
/// Single hart: Relaxed suffices; the bit only guards against a second transport.
static CLAIMED_SLOTS: AtomicU8 = AtomicU8::new(0);

/// Exclusive right to one slot's registers; released on drop.
#[derive(Debug)]
struct SlotClaim(usize);

impl SlotClaim {
    fn take(slot: usize) -> Option<Self> {
        let bit = 1u8 << slot;
        let previous = CLAIMED_SLOTS.fetch_or(bit, Ordering::Relaxed);
        (previous & bit == 0).then_some(Self(slot))
    }

    /// A transport on the claimed slot; the claim must outlive it.
    fn transport(&self) -> Result<MmioTransport<'static>, MmioError> {
        let header = MMIO_BASE + self.0 * MMIO_SLOT_STRIDE;
        let header = NonNull::new(header as *mut VirtIOHeader).expect("slot address is not 0");
        // SAFETY: slots 0..MMIO_SLOTS of QEMU `virt` are virtio-mmio register
        // blocks of MMIO_SLOT_SIZE bytes, always mapped (no paging), and this
        // claim makes the returned transport their only user.
        unsafe { MmioTransport::new(header, MMIO_SLOT_SIZE) }
    }
}

impl Drop for SlotClaim {
    fn drop(&mut self) {
        CLAIMED_SLOTS.fetch_and(!(1u8 << self.0), Ordering::Relaxed);
    }
}

/// Why a slot's registers are not a usable virtio-mmio header (a `Copy`
/// mirror of virtio-drivers' `MmioError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The magic value is not "virt"; carries what was read.
    BadMagic(u32),
    /// A transport version other than 1 (legacy) or 2 (modern).
    UnsupportedVersion(u32),
    /// A device id virtio-drivers does not know (0 means an empty slot).
    UnknownDeviceId(u32),
    /// The register block is smaller than the header.
    RegionTooSmall,
}

impl From<MmioError> for TransportError {
    fn from(error: MmioError) -> Self {
        match error {
            MmioError::BadMagic(magic) => Self::BadMagic(magic),
            MmioError::UnsupportedVersion(version) => Self::UnsupportedVersion(version),
            MmioError::InvalidDeviceID(DeviceTypeError::InvalidDeviceType(id)) => {
                Self::UnknownDeviceId(id)
            }
            MmioError::MmioRegionTooSmall => Self::RegionTooSmall,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic(magic) => write!(f, "bad virtio-mmio magic {magic:#010x}"),
            Self::UnsupportedVersion(version) => {
                write!(f, "unsupported virtio-mmio version {version}")
            }
            Self::UnknownDeviceId(id) => write!(f, "unknown virtio device id {id}"),
            Self::RegionTooSmall => write!(f, "register block too small"),
        }
    }
}

/// What a virtio-mmio slot holds.
#[derive(Clone, Copy, Debug)]
pub enum SlotState {
    /// No device behind the slot (device id 0).
    Empty,
    /// A device of this type, on this transport version.
    Device(DeviceType, MmioVersion),
    /// The registers are not a usable virtio-mmio header.
    Invalid(TransportError),
    /// A driver already owns the slot.
    InUse,
}

impl fmt::Display for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty"),
            Self::Device(kind, version) => write!(f, "{kind:?} ({version:?} virtio-mmio)"),
            Self::Invalid(error) => write!(f, "{error}"),
            Self::InUse => write!(f, "in use"),
        }
    }
}

/// Reads what each virtio-mmio slot holds (without resetting any device).
pub fn scan() -> [SlotState; MMIO_SLOTS] {
    core::array::from_fn(|slot| match SlotClaim::take(slot) {
        None => SlotState::InUse,
        Some(claim) => match claim.transport() {
            Ok(transport) => SlotState::Device(transport.device_type(), transport.version()),
            Err(error) => match TransportError::from(error) {
                TransportError::UnknownDeviceId(0) => SlotState::Empty,
                error => SlotState::Invalid(error),
            },
        },
    })
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
