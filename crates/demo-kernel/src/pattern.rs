// Contents of the demo kernel's disk image, shared with `cargo xtask qemu`.
//
// This one file is compiled twice: as the kernel's `pattern` module, and
// inside xtask's `qemu` module through
// `include!("../../crates/demo-kernel/src/pattern.rs")`. xtask writes the
// image from `image_byte` and checks it afterwards against
// `expected_final_byte`; the kernel checks what it reads against the same
// functions, so the two sides cannot drift apart. Keep it to pure `core` code,
// without `use` items, inner attributes or `//!` docs (`include!` takes items
// only).

/// Bytes in one virtio-blk sector: the unit of every sector number here.
pub const SECTOR_SIZE: usize = 512;

/// Sectors in the disk image (1 MiB): the capacity the kernel must find.
pub const IMAGE_SECTORS: u64 = 2048;

/// Sectors the phase-1 self test overwrites with `written_byte` (8 KiB, two pages).
pub const SELFTEST_WRITTEN: core::ops::Range<u64> = 1024..1040;

/// Sectors the gupio scenario overwrites with `written_byte` (12 KiB: 6 KiB
/// of pinned user pages, a referenced 4 KiB kernel page and 2 KiB of a
/// borrowed kernel page, in one bio).
pub const SCENARIO_WRITTEN: core::ops::Range<u64> = 1536..1560;

/// Every run of sectors the kernel overwrites with `written_byte`.
///
/// Every other sector must still hold `image_byte` when QEMU has exited.
pub const WRITTEN_SECTORS: [core::ops::Range<u64>; 2] = [SELFTEST_WRITTEN, SCENARIO_WRITTEN];

/// Whether the kernel overwrites `sector` (it lies in one of `WRITTEN_SECTORS`).
pub const fn is_written(sector: u64) -> bool {
    let mut index = 0;
    while index < WRITTEN_SECTORS.len() {
        let range = &WRITTEN_SECTORS[index];
        if sector >= range.start && sector < range.end {
            return true;
        }
        index += 1;
    }
    false
}

/// One round of SplitMix64: a bijective 64-bit mixer (Steele et al., 2014).
const fn mix64(word: u64) -> u64 {
    let mut z = word.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_4476_D1CE_4E5B);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Byte `address % 8` of `word`, which covers the 8-byte group holding `address`.
const fn byte_of(word: u64, address: u64) -> u8 {
    (word >> (8 * (address % 8))).to_le_bytes()[0]
}

/// Byte address in the image of byte `offset` of sector `sector`.
const fn image_address(sector: u64, offset: usize) -> u64 {
    sector
        .wrapping_mul(SECTOR_SIZE as u64)
        .wrapping_add(offset as u64)
}

/// The byte xtask writes at `offset` (0..512) of `sector` when it creates the image.
pub const fn image_byte(sector: u64, offset: usize) -> u8 {
    let address = image_address(sector, offset);
    byte_of(mix64(address / 8), address)
}

/// The byte the kernel writes at `offset` of a sector in `WRITTEN_SECTORS`.
///
/// It differs from `image_byte` at every position (the XOR mask is odd, so
/// never zero), so a write that did not land is always visible.
pub const fn written_byte(sector: u64, offset: usize) -> u8 {
    let address = image_address(sector, offset);
    let mask = byte_of(mix64((address / 8) ^ 0x6775_7069_6f21_2121), address) | 1;
    image_byte(sector, offset) ^ mask
}

/// The byte that must be at `offset` of `sector` after a successful run.
pub const fn expected_final_byte(sector: u64, offset: usize) -> u8 {
    if is_written(sector) {
        written_byte(sector, offset)
    } else {
        image_byte(sector, offset)
    }
}
