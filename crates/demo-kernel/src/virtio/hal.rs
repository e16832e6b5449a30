//! The `Hal` virtio-drivers asks of the kernel: DMA memory for the
//! virtqueue rings from a static pool, and identity sharing of data
//! buffers (machine mode, no paging, no IOMMU, coherent DMA).

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages in the static pool the virtqueue rings come from (one `AtomicU32` bit each).
const DMA_POOL_PAGES: usize = 16;

#[repr(C, align(4096))]
struct DmaPage([u8; PAGE_SIZE]);

/// Physically contiguous pages for virtqueue rings, in `.bss`, outside the
/// frames [`FrameAllocator`](crate::mem::FrameAllocator) manages.
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
