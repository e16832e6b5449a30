//! Physical memory: the kernel image's extent, RAM from the device tree, and
//! the frames of free RAM the kernel manages.
//!
//! The kernel runs in machine mode without paging, so every address is
//! physical and a pointer's value is the address a device sees (identity
//! mapping). Free RAM is everything from the end of the image
//! (`__free_ram_start` in `linker.ld`) to the end of RAM, less the device tree
//! blob and any reservation; [`FrameAllocator`] hands it out as owned,
//! page-aligned [`FrameRun`]s for buffers the device reads and writes.

use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::fdt::{DeviceTree, DtRange, FdtError};

/// Bytes in a page (a frame): the unit of [`FrameAllocator`].
pub const PAGE_SIZE: usize = 4096;

// The identity mapping stores 64-bit physical addresses in pointers.
const _: () = assert!(usize::BITS == 64);

extern "C" {
    // Symbols from linker.ld; only their addresses mean anything.
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __free_ram_start: u8;
    static __stack_guard: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
}

/// A half-open range of physical addresses `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl PhysRange {
    /// Bytes in the range.
    pub const fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether `address` lies in the range.
    pub const fn contains(&self, address: usize) -> bool {
        self.start <= address && address < self.end
    }

    /// Whether `[start, start + len)` lies entirely in the range.
    pub const fn contains_range(&self, start: usize, len: usize) -> bool {
        match start.checked_add(len) {
            Some(end) => self.start <= start && end <= self.end,
            None => false,
        }
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    fn from_dt(range: DtRange) -> Result<Self, MemError> {
        let start =
            usize::try_from(range.base).map_err(|_| MemError::AddressTooLarge(range.base))?;
        let size =
            usize::try_from(range.size).map_err(|_| MemError::AddressTooLarge(range.size))?;
        let end = start
            .checked_add(size)
            .ok_or(MemError::AddressTooLarge(range.base))?;
        Ok(Self { start, end })
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#x}, {:#x}) {} KiB",
            self.start,
            self.end,
            self.len() / 1024
        )
    }
}

/// Why memory could not be set up or allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// The device tree could not be read.
    DeviceTree(FdtError),
    /// A device tree address or size does not fit a pointer.
    AddressTooLarge(u64),
    /// No `/memory` range holds the whole kernel image; carries the image's start.
    KernelOutsideRam(usize),
    /// A reserved range overlaps the start of free RAM; carries the range's start.
    ReservedOverlapsFree(usize),
    /// Less than one page of free RAM is left; carries the bytes left.
    NoFreeRam(usize),
    /// A request for zero frames.
    ZeroFrames,
    /// An alignment (in pages) that is not a power of two.
    BadAlignment(usize),
    /// Not enough free frames: (pages requested, pages left).
    OutOfFrames(usize, usize),
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::DeviceTree(error) => write!(f, "device tree: {error}"),
            Self::AddressTooLarge(value) => write!(f, "address {value:#x} does not fit a pointer"),
            Self::KernelOutsideRam(start) => write!(f, "kernel at {start:#x} is outside RAM"),
            Self::ReservedOverlapsFree(start) => {
                write!(
                    f,
                    "reserved range at {start:#x} overlaps the kernel's free RAM"
                )
            }
            Self::NoFreeRam(bytes) => write!(f, "only {bytes} bytes of free RAM"),
            Self::ZeroFrames => write!(f, "request for zero frames"),
            Self::BadAlignment(pages) => {
                write!(f, "alignment of {pages} pages is not a power of two")
            }
            Self::OutOfFrames(requested, left) => {
                write!(f, "{requested} frames requested, {left} left")
            }
        }
    }
}

impl From<FdtError> for MemError {
    fn from(error: FdtError) -> Self {
        Self::DeviceTree(error)
    }
}

/// The machine's memory as the kernel found it at boot.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayout {
    /// The RAM range that holds the kernel.
    pub ram: PhysRange,
    /// The kernel image, `.text` through boot and trap stacks.
    pub kernel: PhysRange,
    /// The device tree blob QEMU placed in RAM.
    pub device_tree: PhysRange,
    /// Free RAM: page-aligned, for [`FrameAllocator`].
    pub free: PhysRange,
    /// Ticks per second of the `mtime` counter.
    pub timebase_hz: u64,
}

/// The RAM range devices can reach, set once by [`MemoryLayout::discover`].
///
/// Single hart: Relaxed suffices, nothing else is published with it.
static RAM_START: AtomicUsize = AtomicUsize::new(0);
/// One past RAM's last byte; 0 until [`MemoryLayout::discover`] ran.
static RAM_END: AtomicUsize = AtomicUsize::new(0);

fn symbol_address(symbol: *const u8) -> usize {
    symbol as usize
}

/// The kernel image's extent, from `linker.ld`'s symbols.
pub fn kernel_image() -> PhysRange {
    PhysRange {
        start: symbol_address(&raw const __kernel_start),
        end: symbol_address(&raw const __kernel_end),
    }
}

/// The page below the boot stack that a locked PMP entry makes inaccessible.
pub fn boot_stack_guard() -> PhysRange {
    PhysRange {
        start: symbol_address(&raw const __stack_guard),
        end: symbol_address(&raw const __stack_bottom),
    }
}

/// The boot stack (hart 0), guard page excluded.
pub fn boot_stack() -> PhysRange {
    PhysRange {
        start: symbol_address(&raw const __stack_bottom),
        end: symbol_address(&raw const __stack_top),
    }
}

/// Whether a device can DMA to `[address, address + len)`: it lies in RAM.
///
/// False for everything until [`MemoryLayout::discover`] has run.
pub fn is_dma_capable(address: usize, len: usize) -> bool {
    let ram = PhysRange {
        start: RAM_START.load(Ordering::Relaxed),
        end: RAM_END.load(Ordering::Relaxed),
    };
    ram.contains_range(address, len)
}

const fn align_down(address: usize) -> usize {
    address & !(PAGE_SIZE - 1)
}

impl MemoryLayout {
    /// Reads RAM and the timer rate from the device tree and finds free RAM.
    ///
    /// Also records RAM's extent for [`is_dma_capable`].
    ///
    /// # Errors
    ///
    /// A [`MemError`] if the device tree cannot be read, no memory range holds
    /// the kernel, or no free page is left.
    pub fn discover(
        device_tree: &DeviceTree<'_>,
        device_tree_address: usize,
    ) -> Result<Self, MemError> {
        let facts = device_tree.facts()?;
        let kernel = kernel_image();
        let mut ram = None;
        for &range in facts.memory() {
            let range = PhysRange::from_dt(range)?;
            if range.contains_range(kernel.start, kernel.len()) {
                ram = Some(range);
            }
        }
        let ram = ram.ok_or(MemError::KernelOutsideRam(kernel.start))?;
        let blob = PhysRange {
            start: device_tree_address,
            end: device_tree_address
                .checked_add(device_tree.total_size())
                .ok_or(MemError::AddressTooLarge(device_tree_address as u64))?,
        };
        let free_start = symbol_address(&raw const __free_ram_start);
        let mut free = PhysRange {
            start: free_start,
            end: ram.end,
        };
        let (reservations, count) = device_tree.reservations()?;
        let mut obstacles = [blob; 1 + crate::fdt::MAX_RESERVATIONS];
        for (slot, &range) in obstacles[1..].iter_mut().zip(&reservations[..count]) {
            *slot = PhysRange::from_dt(range)?;
        }
        // Free RAM ends at the first obstacle above its start.
        for obstacle in &obstacles[..=count] {
            if !obstacle.overlaps(&free) {
                continue;
            }
            if obstacle.start <= free.start {
                return Err(MemError::ReservedOverlapsFree(obstacle.start));
            }
            free.end = obstacle.start;
        }
        free.end = align_down(free.end);
        if free.len() < PAGE_SIZE {
            return Err(MemError::NoFreeRam(free.len()));
        }
        RAM_START.store(ram.start, Ordering::Relaxed);
        RAM_END.store(ram.end, Ordering::Relaxed);
        Ok(Self {
            ram,
            kernel,
            device_tree: blob,
            free,
            timebase_hz: facts.timebase_hz,
        })
    }
}

/// Page-aligned frames of free RAM, owned: nothing else reads or writes them.
///
/// The memory is zeroed when allocated. Dropping a run does not return its
/// frames (the allocator only bumps); the kernel allocates a fixed working set.
#[derive(Debug)]
pub struct FrameRun {
    start: usize,
    pages: usize,
}

impl FrameRun {
    /// Physical (= virtual) address of the first byte.
    pub fn phys_addr(&self) -> usize {
        self.start
    }

    /// Frame number of the first page (`phys_addr / PAGE_SIZE`).
    pub fn first_pfn(&self) -> usize {
        self.start / PAGE_SIZE
    }

    /// Pages in the run.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The run's memory.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the allocator handed these initialised (zeroed), identity-
        // mapped frames to this run alone (see `FrameAllocator::new`), and
        // `&self` rules out a concurrent `bytes_mut`.
        unsafe { core::slice::from_raw_parts(self.start as *const u8, self.pages * PAGE_SIZE) }
    }

    /// The run's memory, writable: also what the block driver lends to the device.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.start as *mut u8, self.pages * PAGE_SIZE) }
    }
}

/// Hands out frames of the managed free-RAM region, lowest first.
#[derive(Debug)]
pub struct FrameAllocator {
    managed: PhysRange,
    next: usize,
}

impl FrameAllocator {
    /// An allocator over `managed`, which must be page-aligned.
    ///
    /// # Safety
    ///
    /// `managed` is RAM that nothing else uses (not the image, a stack, the
    /// device tree or DMA rings) for the rest of the kernel's life, identity
    /// mapped, and no other allocator covers any of it.
    pub unsafe fn new(managed: PhysRange) -> Self {
        debug_assert!(
            managed.start.is_multiple_of(PAGE_SIZE) && managed.end.is_multiple_of(PAGE_SIZE)
        );
        Self {
            managed,
            next: managed.start,
        }
    }

    /// The whole region this allocator manages, allocated or not.
    pub fn managed(&self) -> PhysRange {
        self.managed
    }

    /// Frames not yet handed out.
    pub fn free_pages(&self) -> usize {
        (self.managed.end - self.next) / PAGE_SIZE
    }

    /// `pages` contiguous frames, the first aligned to `align_pages` pages
    /// (a power of two; 1 for none), zeroed.
    ///
    /// # Errors
    ///
    /// [`MemError::ZeroFrames`], [`MemError::BadAlignment`], or
    /// [`MemError::OutOfFrames`] if the rest of the region cannot hold the run.
    pub fn alloc(&mut self, pages: usize, align_pages: usize) -> Result<FrameRun, MemError> {
        if pages == 0 {
            return Err(MemError::ZeroFrames);
        }
        if !align_pages.is_power_of_two() {
            return Err(MemError::BadAlignment(align_pages));
        }
        let out_of_frames = MemError::OutOfFrames(pages, self.free_pages());
        let align = align_pages.checked_mul(PAGE_SIZE).ok_or(out_of_frames)?;
        let start = self
            .next
            .checked_next_multiple_of(align)
            .ok_or(out_of_frames)?;
        let len = pages.checked_mul(PAGE_SIZE).ok_or(out_of_frames)?;
        let end = start.checked_add(len).ok_or(out_of_frames)?;
        if end > self.managed.end {
            return Err(out_of_frames);
        }
        self.next = end;
        // SAFETY: [start, end) lies in the managed region, which the caller of
        // `new` gave to this allocator alone, and `next` has just moved past it,
        // so no other run covers it.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, len) };
        Ok(FrameRun { start, pages })
    }
}
