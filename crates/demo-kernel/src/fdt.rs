//! The facts the kernel takes from the flattened device tree, read with the
//! no_std `fdt` crate.
//!
//! QEMU hands the boot hart a device tree blob (`a1` at reset). The kernel
//! needs four facts from it: where RAM is (every `/memory@*` node's `reg`,
//! in the root's `#address-cells`/`#size-cells`), the timebase frequency
//! (`/cpus/timebase-frequency`), the kernel command line
//! (`/chosen/bootargs`), and which ranges are reserved (the blob itself and
//! the memory reservation block). This module turns the crate's view of the
//! blob into those facts and names what is missing in an [`FdtError`]. The
//! crate checks the header and the bounds of the blob; it panics (and the
//! kernel reports the panic and fails) on a structure block that is
//! malformed inside those bounds, which QEMU never produces.

use core::fmt;

/// Most `/memory` ranges [`DeviceTreeFacts`] records.
pub const MAX_MEMORY_RANGES: usize = 8;
/// Most memory reservations [`DeviceTree::reservations`] reports.
pub const MAX_RESERVATIONS: usize = 8;

/// Why the device tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// The boot hart got no device tree (`a1` was 0).
    Missing,
    /// The blob does not start with the FDT magic.
    BadMagic,
    /// The blob's header is shorter than the header, or its `totalsize`
    /// smaller than what it describes.
    Truncated,
    /// More `/memory` ranges or reservations than the kernel records.
    TooManyRanges,
    /// A `/memory` node's `reg` in more than two cells per address or size.
    UnsupportedCells,
    /// No `/memory` node with a non-empty `reg`.
    NoMemory,
    /// No `/cpus/timebase-frequency` (of 4 or 8 bytes), or a zero one.
    NoTimebase,
    /// `/chosen/bootargs` is not UTF-8 text.
    BadBootargs,
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Missing => write!(f, "no device tree was passed in a1"),
            Self::BadMagic => write!(f, "bad device tree magic"),
            Self::Truncated => write!(f, "device tree header truncated"),
            Self::TooManyRanges => write!(f, "more than {MAX_MEMORY_RANGES} ranges"),
            Self::UnsupportedCells => write!(f, "memory `reg` cells wider than 64 bits"),
            Self::NoMemory => write!(f, "device tree describes no memory"),
            Self::NoTimebase => write!(f, "device tree has no /cpus/timebase-frequency"),
            Self::BadBootargs => write!(f, "/chosen/bootargs is not UTF-8"),
        }
    }
}

impl From<fdt::FdtError> for FdtError {
    fn from(error: fdt::FdtError) -> Self {
        match error {
            fdt::FdtError::BadMagic => Self::BadMagic,
            fdt::FdtError::BadPtr => Self::Missing,
            fdt::FdtError::BufferTooSmall => Self::Truncated,
        }
    }
}

/// A physical range `[base, base + size)` as the device tree states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl DtRange {
    const EMPTY: Self = Self { base: 0, size: 0 };
}

/// The facts the kernel takes from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct DeviceTreeFacts<'a> {
    memory: [DtRange; MAX_MEMORY_RANGES],
    memory_count: usize,
    /// Ticks per second of the `mtime` counter.
    pub timebase_hz: u64,
    bootargs: &'a str,
}

impl<'a> DeviceTreeFacts<'a> {
    /// The `/memory` ranges, in blob order.
    pub fn memory(&self) -> &[DtRange] {
        &self.memory[..self.memory_count]
    }

    /// The kernel command line (`/chosen/bootargs`), empty if there is none.
    pub fn bootargs(&self) -> &'a [u8] {
        self.bootargs.as_bytes()
    }
}

/// A device tree blob in memory, its header checked.
pub struct DeviceTree<'a> {
    tree: fdt::Fdt<'a>,
}

/// A pointer-sized value of the device tree as the 64-bit number it states.
fn to_u64(value: usize) -> u64 {
    // usize is 64 bits on this kernel (see `mem.rs`).
    value as u64
}

impl<'a> DeviceTree<'a> {
    /// Checks the header of the blob at physical address `address`.
    ///
    /// # Errors
    ///
    /// [`FdtError::Missing`] for address 0, otherwise any header defect.
    ///
    /// # Safety
    ///
    /// If `address` is not 0, it must point to readable memory holding a
    /// device tree blob (at least its header, then `totalsize` bytes), which
    /// nothing writes for `'a`. Identity mapping: the address is the pointer.
    pub unsafe fn from_address(address: usize) -> Result<Self, FdtError> {
        if address == 0 {
            return Err(FdtError::Missing);
        }
        // SAFETY: the caller guarantees a readable blob of `totalsize` bytes
        // at `address` that nothing writes for 'a; the crate reads the header
        // first and then only within `totalsize`.
        let tree = unsafe { fdt::Fdt::from_ptr(address as *const u8) }?;
        Ok(Self { tree })
    }

    /// Bytes the blob occupies (its `totalsize`), counted from its address.
    pub fn total_size(&self) -> usize {
        self.tree.total_size()
    }

    /// The memory reservation block's entries (QEMU `virt` has none).
    ///
    /// # Errors
    ///
    /// [`FdtError::TooManyRanges`] past [`MAX_RESERVATIONS`] entries.
    pub fn reservations(&self) -> Result<([DtRange; MAX_RESERVATIONS], usize), FdtError> {
        let mut ranges = [DtRange::EMPTY; MAX_RESERVATIONS];
        let mut count = 0;
        for reservation in self.tree.memory_reservations() {
            *ranges.get_mut(count).ok_or(FdtError::TooManyRanges)? = DtRange {
                base: to_u64(reservation.address().addr()),
                size: to_u64(reservation.size()),
            };
            count += 1;
        }
        Ok((ranges, count))
    }

    /// RAM ranges, the timebase and the command line.
    ///
    /// # Errors
    ///
    /// [`FdtError::NoMemory`], [`FdtError::NoTimebase`] or
    /// [`FdtError::BadBootargs`] if a fact is missing or unreadable,
    /// [`FdtError::TooManyRanges`] or [`FdtError::UnsupportedCells`] if the
    /// memory nodes do not fit the kernel's record.
    pub fn facts(&self) -> Result<DeviceTreeFacts<'a>, FdtError> {
        let mut facts = DeviceTreeFacts {
            memory: [DtRange::EMPTY; MAX_MEMORY_RANGES],
            memory_count: 0,
            timebase_hz: 0,
            bootargs: "",
        };
        for node in self.tree.find_all_nodes("/memory") {
            let Some(reg) = node.property("reg") else {
                continue;
            };
            if reg.value.is_empty() {
                continue;
            }
            let regions = node.reg().ok_or(FdtError::UnsupportedCells)?;
            for region in regions {
                let size = region.size.map_or(0, to_u64);
                if size == 0 {
                    continue;
                }
                let slot = facts
                    .memory
                    .get_mut(facts.memory_count)
                    .ok_or(FdtError::TooManyRanges)?;
                *slot = DtRange {
                    base: to_u64(region.starting_address.addr()),
                    size,
                };
                facts.memory_count += 1;
            }
        }
        if facts.memory_count == 0 {
            return Err(FdtError::NoMemory);
        }
        // The devicetree specification puts the property on `/cpus` (shared
        // by all harts) or on each `cpu` node; QEMU `virt` uses `/cpus`.
        let cpus = self.tree.find_node("/cpus").ok_or(FdtError::NoTimebase)?;
        facts.timebase_hz = cpus
            .property("timebase-frequency")
            .or_else(|| {
                cpus.children()
                    .find_map(|cpu| cpu.property("timebase-frequency"))
            })
            .and_then(|property| property.as_usize())
            .map(to_u64)
            .filter(|&hz| hz != 0)
            .ok_or(FdtError::NoTimebase)?;
        if let Some(bootargs) = self
            .tree
            .find_node("/chosen")
            .and_then(|chosen| chosen.property("bootargs"))
        {
            facts.bootargs = bootargs.as_str().ok_or(FdtError::BadBootargs)?;
        }
        Ok(facts)
    }
}
