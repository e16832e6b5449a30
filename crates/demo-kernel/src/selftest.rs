//! Phase 1: a self test of the hardware side (virtio-blk DMA into owned frames).
//!
//! Every buffer lives in frames of the managed free RAM, at physical addresses
//! the report prints, and the device reads and writes them in place:
//! 1. a scattered read: 8 separate frames, in descending address order, as
//!    the 8 segments of one request;
//! 2. a large read: 16 contiguous, 64 KiB-aligned frames as one segment;
//! 3. a sub-page read: two segments that start and end inside their frames;
//! 4. a write of two separate frames (one request, two segments) to
//!    [`SELFTEST_WRITTEN`], a flush, and a read-back that includes one
//!    untouched sector on either side;
//! 5. malformed requests, which the driver must refuse before the device
//!    sees them.
//!
//! The data read must match the image xtask created ([`pattern`]), and what
//! the kernel writes is checked again on the image by xtask after QEMU exits.

use core::fmt;
use core::time::Duration;

use crate::mem::{FrameAllocator, MemError, PAGE_SIZE};
use crate::pattern::{self, IMAGE_SECTORS, SECTOR_SIZE, SELFTEST_WRITTEN};
use crate::time::Clock;
use crate::virtio::{self, BlockDevice, BlockError, OpenError, Sector};

/// Sectors per page.
const SECTORS_PER_PAGE: u64 = (PAGE_SIZE / SECTOR_SIZE) as u64;
/// Pages the write step writes: [`SELFTEST_WRITTEN`] must be two pages.
const WRITTEN_PAGES: usize = 2;
const _: () = assert!(
    SELFTEST_WRITTEN.end - SELFTEST_WRITTEN.start == WRITTEN_PAGES as u64 * SECTORS_PER_PAGE
);
// The read-back reads one sector on either side of the written ones, which
// nothing else writes (it checks them against the final image).
const _: () = assert!(SELFTEST_WRITTEN.start >= 1 && SELFTEST_WRITTEN.end < IMAGE_SECTORS);
const _: () = assert!(
    !pattern::is_written(SELFTEST_WRITTEN.start - 1) && !pattern::is_written(SELFTEST_WRITTEN.end)
);

/// A check of the self test that did not hold.
#[derive(Clone, Copy, Debug)]
pub enum CheckError {
    /// Frames for a buffer could not be allocated.
    Memory(MemError),
    /// The block device could not be opened.
    Open(OpenError),
    /// The device's capacity differs from the image's: (found, expected) sectors.
    Capacity(u64, u64),
    /// The device is read-only, so the write checks cannot run.
    ReadOnly,
    /// A request of this step failed.
    Block(&'static str, BlockError),
    /// A byte differs from the image pattern.
    Mismatch(Mismatch),
    /// The device wrote outside the segments of this step, at this address.
    StrayWrite(&'static str, usize),
    /// A malformed request of this step was accepted.
    NotRefused(&'static str),
    /// A malformed request of this step was refused for another reason: (step, expected, found).
    WrongRefusal(&'static str, BlockError, BlockError),
}

/// Where data read from the device differs from what the image holds.
#[derive(Clone, Copy, Debug)]
pub struct Mismatch {
    /// The step that read the data.
    pub step: &'static str,
    /// Sector of the image.
    pub sector: u64,
    /// Byte within the sector.
    pub offset: usize,
    /// The byte the image holds there.
    pub expected: u8,
    /// The byte in memory.
    pub found: u8,
    /// Physical address of the byte in memory.
    pub address: usize,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(error) => write!(f, "frame allocation: {error}"),
            Self::Open(error) => write!(f, "virtio-blk: {error}"),
            Self::Capacity(found, expected) => {
                write!(f, "disk has {found} sectors, the image {expected}")
            }
            Self::ReadOnly => write!(f, "disk is read-only"),
            Self::Block(step, error) => write!(f, "{step}: {error}"),
            Self::Mismatch(m) => write!(
                f,
                "{}: sector {} byte {} at {:#x}: expected {:#04x}, found {:#04x}",
                m.step, m.sector, m.offset, m.address, m.expected, m.found
            ),
            Self::StrayWrite(step, address) => {
                write!(
                    f,
                    "{step}: the device wrote outside the segments, at {address:#x}"
                )
            }
            Self::NotRefused(step) => write!(f, "{step}: malformed request was accepted"),
            Self::WrongRefusal(step, expected, found) => {
                write!(
                    f,
                    "{step}: refused with \"{found}\", expected \"{expected}\""
                )
            }
        }
    }
}

impl From<MemError> for CheckError {
    fn from(error: MemError) -> Self {
        Self::Memory(error)
    }
}

/// What the self test did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Requests that reached the device (flushes included).
    pub requests: usize,
    /// Data segments those requests carried.
    pub segments: usize,
    /// Bytes the device wrote into memory.
    pub bytes_read: usize,
    /// Bytes the device read from memory.
    pub bytes_written: usize,
    /// Bytes compared against the image pattern.
    pub bytes_checked: usize,
    /// Malformed requests refused before reaching the device.
    pub refused: usize,
    /// Wall time of the test (mtime).
    pub elapsed: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} segments, {} bytes DMA'd in, {} out, {} bytes checked, \
             {} malformed requests refused, {} ms",
            self.requests,
            self.segments,
            self.bytes_read,
            self.bytes_written,
            self.bytes_checked,
            self.refused,
            self.elapsed.as_millis()
        )
    }
}

/// Compares `segments`, taken as one run of bytes from sector `first`,
/// against `expected(sector, offset)`.
fn verify(
    step: &'static str,
    first: u64,
    segments: &[&[u8]],
    expected: fn(u64, usize) -> u8,
) -> Result<usize, CheckError> {
    let mut position = 0usize;
    for segment in segments {
        for (index, &found) in segment.iter().enumerate() {
            let sector = first + (position / SECTOR_SIZE) as u64;
            let offset = position % SECTOR_SIZE;
            let want = expected(sector, offset);
            if found != want {
                return Err(CheckError::Mismatch(Mismatch {
                    step,
                    sector,
                    offset,
                    expected: want,
                    found,
                    address: segment.as_ptr() as usize + index,
                }));
            }
            position += 1;
        }
    }
    Ok(position)
}

struct SelfTest<'a> {
    disk: BlockDevice,
    frames: &'a mut FrameAllocator,
    summary: Summary,
}

impl SelfTest<'_> {
    fn read(
        &mut self,
        step: &'static str,
        first: u64,
        segments: &mut [&mut [u8]],
    ) -> Result<(), CheckError> {
        self.disk
            .read(Sector(first), segments)
            .map_err(|error| CheckError::Block(step, error))?;
        self.summary.requests += 1;
        self.summary.segments += segments.len();
        self.summary.bytes_read += segments.iter().map(|s| s.len()).sum::<usize>();
        Ok(())
    }

    fn write(
        &mut self,
        step: &'static str,
        first: u64,
        segments: &[&[u8]],
    ) -> Result<(), CheckError> {
        self.disk
            .write(Sector(first), segments)
            .map_err(|error| CheckError::Block(step, error))?;
        self.summary.requests += 1;
        self.summary.segments += segments.len();
        self.summary.bytes_written += segments.iter().map(|s| s.len()).sum::<usize>();
        Ok(())
    }

    fn verify(
        &mut self,
        step: &'static str,
        first: u64,
        segments: &[&[u8]],
        expected: fn(u64, usize) -> u8,
    ) -> Result<(), CheckError> {
        self.summary.bytes_checked += verify(step, first, segments, expected)?;
        Ok(())
    }

    /// Eight separate frames (every other page of a 16-page run), in
    /// descending address order, filled by one 8-segment request.
    fn scattered_read(&mut self) -> Result<(), CheckError> {
        const STEP: &str = "scattered read";
        const SEGMENTS: usize = 8;
        let mut run = self.frames.alloc(2 * SEGMENTS, 1)?;
        let base_pfn = run.first_pfn();
        let mut pages = run.bytes_mut().chunks_mut(PAGE_SIZE).step_by(2).rev();
        let mut segments: [&mut [u8]; SEGMENTS] =
            core::array::from_fn(|_| pages.next().unwrap_or_default());
        self.read(STEP, 0, &mut segments)?;
        let segments = segments.each_ref().map(|s| &**s);
        self.verify(STEP, 0, &segments, pattern::image_byte)?;
        Self::expect_untouched(STEP, run.bytes().chunks(PAGE_SIZE).skip(1).step_by(2))?;
        println!(
            "  {STEP}: sectors 0..{} into pfns {:#x}, {:#x}, ... {:#x} (8 segments, descending): ok",
            SEGMENTS as u64 * SECTORS_PER_PAGE,
            base_pfn + 2 * (SEGMENTS - 1),
            base_pfn + 2 * (SEGMENTS - 2),
            base_pfn
        );
        Ok(())
    }

    /// Checks that the device wrote nothing into `regions` (allocated zeroed).
    fn expect_untouched<'r>(
        step: &'static str,
        regions: impl Iterator<Item = &'r [u8]>,
    ) -> Result<(), CheckError> {
        for region in regions {
            if let Some(index) = region.iter().position(|&byte| byte != 0) {
                return Err(CheckError::StrayWrite(
                    step,
                    region.as_ptr() as usize + index,
                ));
            }
        }
        Ok(())
    }

    /// Sixteen contiguous frames, 64 KiB aligned (a large folio), as one segment.
    fn large_read(&mut self) -> Result<(), CheckError> {
        const STEP: &str = "large read";
        const PAGES: usize = 16;
        const FIRST: u64 = 128;
        let mut run = self.frames.alloc(PAGES, PAGES)?;
        self.read(STEP, FIRST, &mut [run.bytes_mut()])?;
        self.verify(STEP, FIRST, &[run.bytes()], pattern::image_byte)?;
        println!(
            "  {STEP}: sectors {FIRST}..{} into one {}-page, 64 KiB-aligned segment at {:#x} (pfn {:#x}): ok",
            FIRST + PAGES as u64 * SECTORS_PER_PAGE,
            run.pages(),
            run.phys_addr(),
            run.first_pfn()
        );
        Ok(())
    }

    /// Two segments that start and end inside their frames (a `bio_vec`'s offset and length).
    fn sub_page_read(&mut self) -> Result<(), CheckError> {
        const STEP: &str = "sub-page read";
        const FIRST: u64 = 300;
        let mut a = self.frames.alloc(1, 1)?;
        let mut b = self.frames.alloc(1, 1)?;
        let (a_pfn, b_pfn) = (a.first_pfn(), b.first_pfn());
        let first = &mut a.bytes_mut()[1024..2560];
        let second = &mut b.bytes_mut()[512..4096];
        let mut segments = [first, second];
        self.read(STEP, FIRST, &mut segments)?;
        let segments = segments.each_ref().map(|s| &**s);
        self.verify(STEP, FIRST, &segments, pattern::image_byte)?;
        let sectors = segments.iter().map(|s| s.len()).sum::<usize>() / SECTOR_SIZE;
        let untouched = [&a.bytes()[..1024], &a.bytes()[2560..], &b.bytes()[..512]];
        Self::expect_untouched(STEP, untouched.into_iter())?;
        println!(
            "  {STEP}: sectors {FIRST}..{} into pfn {a_pfn:#x} [1024, 2560) + pfn {b_pfn:#x} [512, 4096): ok",
            FIRST + sectors as u64
        );
        Ok(())
    }

    /// Two separate frames written by one request (higher address first),
    /// flushed, then read back with one untouched sector on either side.
    fn write_and_read_back(&mut self) -> Result<(), CheckError> {
        const STEP: &str = "write";
        const BACK: &str = "read-back";
        const FIRST: u64 = SELFTEST_WRITTEN.start;
        // The read-back covers the written sectors and one on either side.
        const BACK_FIRST: u64 = FIRST - 1;
        const BACK_LEN: usize = WRITTEN_PAGES * PAGE_SIZE + 2 * SECTOR_SIZE;
        let mut low = self.frames.alloc(1, 1)?;
        let mut high = self.frames.alloc(1, 1)?;
        for (page, run) in [&mut high, &mut low].into_iter().enumerate() {
            let page_first = FIRST + page as u64 * SECTORS_PER_PAGE;
            for (index, byte) in run.bytes_mut().iter_mut().enumerate() {
                let sector = page_first + (index / SECTOR_SIZE) as u64;
                *byte = pattern::written_byte(sector, index % SECTOR_SIZE);
            }
        }
        let segments = [high.bytes(), low.bytes()];
        self.write(STEP, FIRST, &segments)?;
        self.disk
            .flush()
            .map_err(|error| CheckError::Block("flush", error))?;
        self.summary.requests += 1;

        let mut back = self.frames.alloc(BACK_LEN.div_ceil(PAGE_SIZE), 1)?;
        self.read(BACK, BACK_FIRST, &mut [&mut back.bytes_mut()[..BACK_LEN]])?;
        self.verify(
            BACK,
            BACK_FIRST,
            &[&back.bytes()[..BACK_LEN]],
            pattern::expected_final_byte,
        )?;
        println!(
            "  {STEP}: sectors {FIRST}..{} from pfns {:#x}, {:#x}, flushed, read back with sectors {BACK_FIRST} and {} around it: ok",
            SELFTEST_WRITTEN.end,
            high.first_pfn(),
            low.first_pfn(),
            SELFTEST_WRITTEN.end
        );
        Ok(())
    }

    /// Checks that `result` is the refusal `expected`.
    fn expect_refusal(
        &mut self,
        step: &'static str,
        result: Result<(), BlockError>,
        expected: BlockError,
    ) -> Result<(), CheckError> {
        match result {
            Ok(()) => Err(CheckError::NotRefused(step)),
            Err(found) if found == expected => {
                self.summary.refused += 1;
                Ok(())
            }
            Err(found) => Err(CheckError::WrongRefusal(step, expected, found)),
        }
    }

    /// Malformed requests: refused by the driver, the device never sees them.
    fn malformed_requests(&mut self) -> Result<(), CheckError> {
        let mut run = self.frames.alloc(16, 1)?;
        let capacity = self.disk.info().capacity;
        let max_segments = self.disk.info().max_segments;

        let result = self
            .disk
            .read(Sector(capacity - 1), &mut [&mut run.bytes_mut()[..1024]]);
        self.expect_refusal(
            "read past the end",
            result,
            BlockError::OutOfRange(capacity - 1, 2, capacity),
        )?;

        let result = self
            .disk
            .read(Sector(u64::MAX), &mut [&mut run.bytes_mut()[..512]]);
        self.expect_refusal(
            "sector number overflow",
            result,
            BlockError::OutOfRange(u64::MAX, 1, capacity),
        )?;

        let result = self
            .disk
            .read(Sector(0), &mut [&mut run.bytes_mut()[..100]]);
        self.expect_refusal("partial sector", result, BlockError::PartialSector(100))?;

        let result = self.disk.read(Sector(0), &mut []);
        self.expect_refusal("no segments", result, BlockError::NoSegments)?;

        let (head, tail) = run.bytes_mut().split_at_mut(512);
        let result = self.disk.read(Sector(0), &mut [head, &mut tail[..0]]);
        self.expect_refusal("empty segment", result, BlockError::EmptySegment(1))?;

        let mut chunks = run.bytes_mut().chunks_mut(SECTOR_SIZE);
        let mut segments: [&mut [u8]; 64] =
            core::array::from_fn(|_| chunks.next().unwrap_or_default());
        let too_many = max_segments + 1;
        let result = match segments.get_mut(..too_many) {
            Some(segments) => self.disk.read(Sector(0), segments),
            // The device allows more segments than this test can build.
            None => Err(BlockError::TooManySegments(too_many, max_segments)),
        };
        self.expect_refusal(
            "too many segments",
            result,
            BlockError::TooManySegments(too_many, max_segments),
        )?;

        println!(
            "  malformed requests: {} refused before reaching the device: ok",
            self.summary.refused
        );
        Ok(())
    }
}

/// Runs the phase-1 self test on the first block device.
///
/// # Errors
///
/// The first [`CheckError`]; the test stops there.
pub fn run(frames: &mut FrameAllocator, clock: Clock) -> Result<Summary, CheckError> {
    let started = clock.now();
    print!("virtio-mmio slots:");
    for (slot, state) in virtio::scan().iter().enumerate() {
        let address = virtio::MMIO_BASE + slot * virtio::MMIO_SLOT_STRIDE;
        print!("\n  slot {slot} at {address:#x}: {state}");
    }
    println!();
    let disk = BlockDevice::open_first(clock).map_err(CheckError::Open)?;
    let info = disk.info();
    println!(
        "virtio-blk in slot {} ({:?} transport): {} sectors ({} KiB), {}, at most {} segments of {} bytes, flush {}",
        info.slot,
        info.version,
        info.capacity,
        info.capacity * SECTOR_SIZE as u64 / 1024,
        if info.read_only { "read-only" } else { "read-write" },
        info.max_segments,
        info.max_segment_len,
        if info.has_flush { "yes" } else { "no" }
    );
    if info.capacity != IMAGE_SECTORS {
        return Err(CheckError::Capacity(info.capacity, IMAGE_SECTORS));
    }
    if info.read_only {
        return Err(CheckError::ReadOnly);
    }
    let mut test = SelfTest {
        disk,
        frames,
        summary: Summary::default(),
    };
    test.scattered_read()?;
    test.large_read()?;
    test.sub_page_read()?;
    test.write_and_read_back()?;
    test.malformed_requests()?;
    test.summary.elapsed = clock.since(started);
    Ok(test.summary)
}
