//! Where each step of the scenario works: the pages of the user buffer,
//! the disk sectors each bio covers, and the bios' sizes; checked
//! against one another at compile time.

use core::ops::Range;

use crate::mem::PAGE_SIZE;
use crate::pattern::{self, SCENARIO_WRITTEN, SECTOR_SIZE};
use crate::userspace::USER_PAGES;

/// Frames in a 2 MiB run: the managed region is aligned to it.
pub(super) const REGION_ALIGN_PAGES: usize = 512;
/// Bvecs per bio for the direct-I/O read: small, so the buffer takes
/// several bios and `add_user_range` comes back short.
pub(super) const DIO_MAX_VECS: usize = 3;
/// Bio tables the direct-I/O read may use.
pub(super) const DIO_MAX_BIOS: usize = 8;
/// Bios the deferred-release list holds.
pub(super) const DEFERRED_CAPACITY: usize = 4;
/// Bvecs per bio elsewhere.
pub(super) const BIO_VECS: usize = 16;

/// User pages 0..4: four small pages, mapped at descending frames.
pub(super) const SCATTERED: Range<usize> = 0..4;
/// User pages 4..20: one order-4 folio.
pub(super) const FOLIO_PAGES: Range<usize> = 4..20;
/// The large folio's order.
pub(super) const FOLIO_ORDER: u32 = 4;
/// User page 20: the zero page, read-only (an anonymous page never written).
pub(super) const ZERO_MAPPED: usize = 20;
/// User page 21: demand-zero anonymous memory, not present.
pub(super) const DEMAND_ZERO: usize = 21;
/// User pages 22..24: two more small pages.
pub(super) const TAIL_PAGES: Range<usize> = 22..24;
/// User pages in the buffer.
pub(super) const BUFFER_PAGES: usize = 24;
/// User page 24: a hole; pinning it must fault.
pub(super) const HOLE: usize = 24;
/// User page 25: another read-only zero-page mapping, for a read pin.
pub(super) const ZERO_READ: usize = 25;

const _: () = assert!(FOLIO_PAGES.end - FOLIO_PAGES.start == 1 << FOLIO_ORDER);
/// User page 26: a page mapped read-only (not the zero page), which no
/// write pin may reach.
pub(super) const READ_ONLY: usize = 26;

const _: () = assert!(READ_ONLY < USER_PAGES);

/// Where the direct-I/O read starts in the user buffer, and what it leaves
/// out at the end: both inside a page.
pub(super) const DIO_HEAD_SKIP: usize = 1536;
pub(super) const DIO_TAIL_SKIP: usize = 512;
/// Bytes of the direct-I/O read (94 KiB).
pub(super) const DIO_LEN: usize = BUFFER_PAGES * PAGE_SIZE - DIO_HEAD_SKIP - DIO_TAIL_SKIP;
/// First disk sector of the direct-I/O read.
pub(super) const DIO_FIRST: u64 = 64;

/// The mixed read: a page-cache page, 6 KiB of user pages 8 and 9 (inside
/// the folio) from byte 1024, 2 KiB of a borrowed buffer from byte 1024.
pub(super) const MIXED_READ_FIRST: u64 = 512;
pub(super) const MIXED_USER_PAGE: usize = 8;
pub(super) const MIXED_USER_OFFSET: usize = 1024;
pub(super) const MIXED_USER_LEN: usize = 6144;
pub(super) const MIXED_BORROWED: Range<usize> = 1024..3072;

/// The mixed write: 6 KiB of user pages 1 and 2 from byte 2048, a whole
/// page-cache page, the first 2 KiB of the borrowed buffer.
pub(super) const WRITE_USER_PAGE: usize = 1;
pub(super) const WRITE_USER_OFFSET: usize = 2048;
pub(super) const WRITE_USER_LEN: usize = 6144;
pub(super) const WRITE_BORROWED: Range<usize> = 0..2048;
pub(super) const WRITE_LEN: usize =
    WRITE_USER_LEN + PAGE_SIZE + (WRITE_BORROWED.end - WRITE_BORROWED.start);

/// The read-back: the written sectors and one on either side, into an
/// order-3 kernel folio.
pub(super) const BACK_ORDER: u32 = 3;
pub(super) const BACK_FIRST: u64 = SCENARIO_WRITTEN.start - 1;
pub(super) const BACK_LEN: usize = sector_bytes(SCENARIO_WRITTEN.end - SCENARIO_WRITTEN.start + 2);

/// The exit step: three user pages of a second process, read from sector
/// [`EXIT_FIRST`] (clear of every other step's sectors).
pub(super) const EXIT_PAGES: usize = 3;
pub(super) const EXIT_FIRST: u64 = 768;
pub(super) const EXIT_LEN: usize = EXIT_PAGES * PAGE_SIZE;

/// Whole sectors in `bytes`.
pub(super) const fn sectors(bytes: usize) -> u64 {
    (bytes / SECTOR_SIZE) as u64
}

/// Bytes in `count` sectors; only for the small constants of this file
/// (checked at compile time).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
const fn sector_bytes(count: u64) -> usize {
    assert!(count <= (u32::MAX as u64) / SECTOR_SIZE as u64);
    count as usize * SECTOR_SIZE
}

/// `bytes` as a bvec length or offset; only for the constants of this file
/// (checked at compile time).
#[allow(clippy::cast_possible_truncation)] // checked by the assert
pub(super) const fn bvec_u32(bytes: usize) -> u32 {
    assert!(bytes <= u32::MAX as usize);
    bytes as u32
}

/// A page, as a bvec length.
pub(super) const PAGE_LEN: u32 = bvec_u32(PAGE_SIZE);

/// Whether `[first, first + count)` overlaps a range the kernel writes.
const fn touches_written(first: u64, count: u64) -> bool {
    let mut sector = first;
    while sector < first + count {
        if pattern::is_written(sector) {
            return true;
        }
        sector += 1;
    }
    false
}

// The writes cover exactly SCENARIO_WRITTEN; the reads compared against the
// image as created never touch a written sector; the read-back fits its folio.
const _: () = assert!(sectors(WRITE_LEN) == SCENARIO_WRITTEN.end - SCENARIO_WRITTEN.start);
const _: () = assert!(!touches_written(DIO_FIRST, sectors(DIO_LEN)));
const _: () = assert!(!touches_written(
    MIXED_READ_FIRST,
    sectors(PAGE_SIZE + MIXED_USER_LEN + (MIXED_BORROWED.end - MIXED_BORROWED.start))
));
const _: () = assert!(BACK_LEN <= (PAGE_SIZE << BACK_ORDER));
const _: () =
    assert!(MIXED_USER_PAGE >= FOLIO_PAGES.start && MIXED_USER_PAGE + 2 <= FOLIO_PAGES.end);
const _: () = assert!(WRITE_USER_PAGE + 2 <= SCATTERED.end);
