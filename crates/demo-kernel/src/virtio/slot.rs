//! The virtio-mmio slots of QEMU `virt`: discovery, and exclusive
//! ownership of each slot's registers.

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};

use virtio_drivers::transport::mmio::{MmioError, MmioTransport, MmioVersion, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, DeviceTypeError, Transport};

/// Physical address of virtio-mmio slot 0 on QEMU `virt`.
pub const MMIO_BASE: usize = 0x1000_1000;
/// Distance between consecutive virtio-mmio slots.
pub const MMIO_SLOT_STRIDE: usize = 0x1000;
/// virtio-mmio slots on QEMU `virt` (IRQs 1..=8 on the PLIC, unused here).
pub const MMIO_SLOTS: usize = 8;
/// Bytes of one slot's register block and config space.
const MMIO_SLOT_SIZE: usize = 0x200;

/// Bit i set: slot i's registers belong to a live transport.
///
/// Single hart: Relaxed suffices; the bit only guards against a second transport.
static CLAIMED_SLOTS: AtomicU8 = AtomicU8::new(0);

/// Exclusive right to one slot's registers; released on drop.
#[derive(Debug)]
pub(super) struct SlotClaim(usize);

impl SlotClaim {
    pub(super) fn take(slot: usize) -> Option<Self> {
        let bit = 1u8 << slot;
        let previous = CLAIMED_SLOTS.fetch_or(bit, Ordering::Relaxed);
        (previous & bit == 0).then_some(Self(slot))
    }

    /// A transport on the claimed slot; the claim must outlive it.
    pub(super) fn transport(&self) -> Result<MmioTransport<'static>, MmioError> {
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
