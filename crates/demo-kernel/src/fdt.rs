//! Just enough of a flattened-device-tree reader to learn RAM and the timer rate.
//!
//! QEMU hands the boot hart a device tree blob (`a1` at reset). The kernel
//! needs three facts from it: where RAM is (`/memory@*/reg`, in the root's
//! `#address-cells`/`#size-cells`), the timebase frequency
//! (`/cpus/timebase-frequency`), and which ranges are reserved (the blob itself
//! and the memory reservation block). Every read is bounds-checked: a
//! malformed blob yields an [`FdtError`], never a fault.

use core::fmt;

/// Magic number at the start of every device tree blob.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Oldest blob layout this reader understands (version 17 is current).
const FDT_MIN_VERSION: u32 = 16;
/// Size of the blob header this reader uses (fields up to `size_dt_struct`).
const HEADER_LEN: usize = 40;
/// Structure-block token: start of a node, followed by its name.
const FDT_BEGIN_NODE: u32 = 1;
/// Structure-block token: end of a node.
const FDT_END_NODE: u32 = 2;
/// Structure-block token: a property (length, name offset, value).
const FDT_PROP: u32 = 3;
/// Structure-block token: no operation.
const FDT_NOP: u32 = 4;
/// Structure-block token: end of the structure block.
const FDT_END: u32 = 9;
/// Most `/memory` ranges [`DeviceTreeFacts`] records.
pub const MAX_MEMORY_RANGES: usize = 8;
/// Most memory reservations [`DeviceTree::reservations`] reports.
pub const MAX_RESERVATIONS: usize = 8;
/// Longest `/chosen/bootargs` the kernel keeps (QEMU's `-append`).
pub const MAX_BOOTARGS: usize = 1024;

/// Why the device tree could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// The boot hart got no device tree (`a1` was 0).
    Missing,
    /// The blob does not start with the FDT magic; carries what was there.
    BadMagic(u32),
    /// The blob's layout version is older than this reader understands.
    UnsupportedVersion(u32),
    /// A header field, token or property runs past the end of its block; carries the offset.
    Truncated(usize),
    /// An unknown token in the structure block: (offset, token).
    UnknownToken(usize, u32),
    /// Nodes close more often than they open; carries the offset.
    Unbalanced(usize),
    /// A `#address-cells` or `#size-cells` value other than 1 or 2.
    UnsupportedCells(u32),
    /// A `reg` or `timebase-frequency` value of a length that fits no cell count.
    BadPropertyLength(usize),
    /// More `/memory` ranges or reservations than the reader records.
    TooManyRanges,
    /// No `/memory` node with a non-empty `reg`.
    NoMemory,
    /// No `/cpus/timebase-frequency`, or a zero one.
    NoTimebase,
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Missing => write!(f, "no device tree was passed in a1"),
            Self::BadMagic(found) => write!(f, "bad device tree magic {found:#010x}"),
            Self::UnsupportedVersion(v) => write!(f, "device tree version {v} is too old"),
            Self::Truncated(offset) => write!(f, "device tree truncated at offset {offset:#x}"),
            Self::UnknownToken(offset, token) => {
                write!(
                    f,
                    "unknown device tree token {token:#x} at offset {offset:#x}"
                )
            }
            Self::Unbalanced(offset) => write!(f, "unbalanced device tree nodes at {offset:#x}"),
            Self::UnsupportedCells(cells) => write!(f, "unsupported cell count {cells}"),
            Self::BadPropertyLength(len) => write!(f, "property of unexpected length {len}"),
            Self::TooManyRanges => write!(f, "more than {MAX_MEMORY_RANGES} ranges"),
            Self::NoMemory => write!(f, "device tree describes no memory"),
            Self::NoTimebase => write!(f, "device tree has no /cpus/timebase-frequency"),
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

/// The facts the kernel takes from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct DeviceTreeFacts {
    memory: [DtRange; MAX_MEMORY_RANGES],
    memory_count: usize,
    /// Ticks per second of the `mtime` counter.
    pub timebase_hz: u64,
    bootargs: [u8; MAX_BOOTARGS],
    bootargs_len: usize,
}

impl DeviceTreeFacts {
    /// The `/memory` ranges, in blob order.
    pub fn memory(&self) -> &[DtRange] {
        &self.memory[..self.memory_count]
    }

    /// The kernel command line (`/chosen/bootargs`, without its NUL), empty
    /// if there is none.
    pub fn bootargs(&self) -> &[u8] {
        &self.bootargs[..self.bootargs_len]
    }
}

/// A device tree blob in memory, its header checked.
pub struct DeviceTree<'a> {
    blob: &'a [u8],
    structure: &'a [u8],
    strings: &'a [u8],
    reservations_offset: usize,
}

fn be_u32(bytes: &[u8], offset: usize) -> Result<u32, FdtError> {
    let end = offset.checked_add(4).ok_or(FdtError::Truncated(offset))?;
    match bytes.get(offset..end) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(FdtError::Truncated(offset)),
    }
}

fn be_u64(bytes: &[u8], offset: usize) -> Result<u64, FdtError> {
    let high = be_u32(bytes, offset)?;
    let low = be_u32(
        bytes,
        offset.checked_add(4).ok_or(FdtError::Truncated(offset))?,
    )?;
    Ok((u64::from(high) << 32) | u64::from(low))
}

/// Reads a header field that is an offset or size in bytes.
fn header_usize(blob: &[u8], offset: usize) -> Result<usize, FdtError> {
    usize::try_from(be_u32(blob, offset)?).map_err(|_| FdtError::Truncated(offset))
}

/// The NUL-terminated string at `offset` of `bytes` (without the NUL).
fn c_str(bytes: &[u8], offset: usize) -> Result<&[u8], FdtError> {
    let tail = bytes.get(offset..).ok_or(FdtError::Truncated(offset))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or(FdtError::Truncated(offset))?;
    Ok(&tail[..len])
}

/// `offset` rounded up to the structure block's 4-byte alignment.
fn align4(offset: usize) -> Result<usize, FdtError> {
    offset
        .checked_add(3)
        .map(|o| o & !3)
        .ok_or(FdtError::Truncated(offset))
}

/// Reads a value of `cells` 32-bit big-endian cells (1 or 2).
fn read_cells(bytes: &[u8], offset: usize, cells: u32) -> Result<u64, FdtError> {
    match cells {
        1 => be_u32(bytes, offset).map(u64::from),
        2 => be_u64(bytes, offset),
        other => Err(FdtError::UnsupportedCells(other)),
    }
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
        // SAFETY: the caller guarantees a readable, unchanging header here.
        let header = unsafe { core::slice::from_raw_parts(address as *const u8, HEADER_LEN) };
        let magic = be_u32(header, 0)?;
        if magic != FDT_MAGIC {
            return Err(FdtError::BadMagic(magic));
        }
        let total_size = header_usize(header, 4)?;
        if total_size < HEADER_LEN {
            return Err(FdtError::Truncated(total_size));
        }
        // SAFETY: the caller guarantees `totalsize` readable, unchanging bytes.
        let blob = unsafe { core::slice::from_raw_parts(address as *const u8, total_size) };
        let version = be_u32(blob, 20)?;
        if version < FDT_MIN_VERSION {
            return Err(FdtError::UnsupportedVersion(version));
        }
        let block = |offset_field: usize, size_field: usize| -> Result<&'a [u8], FdtError> {
            let start = header_usize(blob, offset_field)?;
            let size = header_usize(blob, size_field)?;
            let end = start.checked_add(size).ok_or(FdtError::Truncated(start))?;
            blob.get(start..end).ok_or(FdtError::Truncated(start))
        };
        Ok(Self {
            blob,
            structure: block(8, 36)?,
            strings: block(12, 32)?,
            reservations_offset: header_usize(blob, 16)?,
        })
    }

    /// Bytes the blob occupies (its `totalsize`), counted from its address.
    pub fn total_size(&self) -> usize {
        self.blob.len()
    }

    /// The memory reservation block's entries (QEMU `virt` has none).
    ///
    /// # Errors
    ///
    /// [`FdtError::Truncated`] if the block runs off the blob,
    /// [`FdtError::TooManyRanges`] past [`MAX_RESERVATIONS`] entries.
    pub fn reservations(&self) -> Result<([DtRange; MAX_RESERVATIONS], usize), FdtError> {
        let mut ranges = [DtRange { base: 0, size: 0 }; MAX_RESERVATIONS];
        let mut count = 0;
        let mut offset = self.reservations_offset;
        loop {
            let base = be_u64(self.blob, offset)?;
            let size = be_u64(self.blob, offset + 8)?;
            if base == 0 && size == 0 {
                return Ok((ranges, count));
            }
            *ranges.get_mut(count).ok_or(FdtError::TooManyRanges)? = DtRange { base, size };
            count += 1;
            offset += 16;
        }
    }

    /// Walks the structure block once and collects RAM ranges and the timebase.
    ///
    /// # Errors
    ///
    /// Any structural defect of the blob, [`FdtError::NoMemory`] or
    /// [`FdtError::NoTimebase`] if a fact is missing.
    pub fn facts(&self) -> Result<DeviceTreeFacts, FdtError> {
        let mut facts = DeviceTreeFacts {
            memory: [DtRange { base: 0, size: 0 }; MAX_MEMORY_RANGES],
            memory_count: 0,
            timebase_hz: 0,
            bootargs: [0; MAX_BOOTARGS],
            bootargs_len: 0,
        };
        // Defaults from the devicetree specification (§2.3.5).
        let mut address_cells = 2;
        let mut size_cells = 1;
        let mut depth = 0usize;
        // Name of the current child of the root (depth 2), if inside one.
        let mut child: &[u8] = b"";
        let mut offset = 0;
        loop {
            let token = be_u32(self.structure, offset)?;
            let token_offset = offset;
            offset += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let name = c_str(self.structure, offset)?;
                    offset = align4(offset + name.len() + 1)?;
                    depth += 1;
                    if depth == 2 {
                        child = name;
                    }
                }
                FDT_END_NODE => {
                    depth = depth
                        .checked_sub(1)
                        .ok_or(FdtError::Unbalanced(token_offset))?;
                }
                FDT_PROP => {
                    let len = usize::try_from(be_u32(self.structure, offset)?)
                        .map_err(|_| FdtError::Truncated(offset))?;
                    let name_offset = usize::try_from(be_u32(self.structure, offset + 4)?)
                        .map_err(|_| FdtError::Truncated(offset))?;
                    let value_start = offset + 8;
                    let value_end = value_start
                        .checked_add(len)
                        .ok_or(FdtError::Truncated(value_start))?;
                    let value = self
                        .structure
                        .get(value_start..value_end)
                        .ok_or(FdtError::Truncated(value_start))?;
                    offset = align4(value_end)?;
                    let name = c_str(self.strings, name_offset)?;
                    // The root's properties precede its children (spec §5.4.1),
                    // so the cell counts are known before any `reg` is read.
                    match (depth, name) {
                        (1, b"#address-cells") => address_cells = be_u32(value, 0)?,
                        (1, b"#size-cells") => size_cells = be_u32(value, 0)?,
                        (2, b"reg") if is_memory_node(child) => {
                            record_memory(&mut facts, value, address_cells, size_cells)?;
                        }
                        (2, b"timebase-frequency") if child == b"cpus" => {
                            facts.timebase_hz = match value.len() {
                                4 => read_cells(value, 0, 1)?,
                                8 => read_cells(value, 0, 2)?,
                                other => return Err(FdtError::BadPropertyLength(other)),
                            };
                        }
                        (2, b"bootargs") if child == b"chosen" => {
                            let line = value.strip_suffix(b"\0").unwrap_or(value);
                            let slot = facts
                                .bootargs
                                .get_mut(..line.len())
                                .ok_or(FdtError::BadPropertyLength(value.len()))?;
                            slot.copy_from_slice(line);
                            facts.bootargs_len = line.len();
                        }
                        _ => {}
                    }
                }
                FDT_NOP => {}
                FDT_END => break,
                other => return Err(FdtError::UnknownToken(token_offset, other)),
            }
        }
        if facts.memory_count == 0 {
            return Err(FdtError::NoMemory);
        }
        if facts.timebase_hz == 0 {
            return Err(FdtError::NoTimebase);
        }
        Ok(facts)
    }
}

fn is_memory_node(name: &[u8]) -> bool {
    name == b"memory" || name.starts_with(b"memory@")
}

fn record_memory(
    facts: &mut DeviceTreeFacts,
    reg: &[u8],
    address_cells: u32,
    size_cells: u32,
) -> Result<(), FdtError> {
    let cell_bytes = |cells: u32| match cells {
        1 => Ok(4usize),
        2 => Ok(8usize),
        other => Err(FdtError::UnsupportedCells(other)),
    };
    let address_len = cell_bytes(address_cells)?;
    let entry_len = address_len + cell_bytes(size_cells)?;
    if !reg.len().is_multiple_of(entry_len) {
        return Err(FdtError::BadPropertyLength(reg.len()));
    }
    for entry in reg.chunks_exact(entry_len) {
        let base = read_cells(entry, 0, address_cells)?;
        let size = read_cells(entry, address_len, size_cells)?;
        if size == 0 {
            continue;
        }
        let slot = facts
            .memory
            .get_mut(facts.memory_count)
            .ok_or(FdtError::TooManyRanges)?;
        *slot = DtRange { base, size };
        facts.memory_count += 1;
    }
    Ok(())
}
