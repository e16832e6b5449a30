//! Page counters, folios, and pin/unpin/get/put of pages and ranges.

use gupio::pfn::Pfn;
use gupio::pin::{FolioOrder, FolioShape, GupFlags, MemoryMap, PageCounters, PageFlags, PageRange};

use crate::cell;
use crate::error::{finish, gupio_error, Fail};
use crate::ops::{gupio_page_counters, gupio_tracker, kernel_of, Kernel};
use crate::space::{gupio_address_space, Space};

/// `gupio_counters_flags`: the folio's contents differ from the backing
/// store.
pub const GUPIO_PAGE_DIRTY: u32 = 1;
/// `gupio_counters_flags`: the folio lock is held.
pub const GUPIO_PAGE_LOCKED: u32 = 2;
/// `gupio_counters_flags`: writeback of the folio is in flight.
pub const GUPIO_PAGE_WRITEBACK: u32 = 4;
/// `gupio_counters_flags`: the contents are valid.
pub const GUPIO_PAGE_UPTODATE: u32 = 8;
/// The largest folio order.
pub const GUPIO_MAX_ORDER: u32 = 24;
const _: () = assert!(FolioOrder::MAX.get() == GUPIO_MAX_ORDER);

/// GUP flag: the caller will write to the pages (a device reads into them).
pub const GUPIO_GUP_WRITE: u32 = 1;
/// GUP flag: the pin is long term (`FOLL_LONGTERM`).
pub const GUPIO_GUP_LONGTERM: u32 = 4;

// The C values are gupio's bits (literals, so the header generator can
// read them).
const _: () = assert!(
    GUPIO_PAGE_DIRTY == PageFlags::DIRTY.bits()
        && GUPIO_PAGE_LOCKED == PageFlags::LOCKED.bits()
        && GUPIO_PAGE_WRITEBACK == PageFlags::WRITEBACK.bits()
        && GUPIO_PAGE_UPTODATE == PageFlags::UPTODATE.bits()
        && GUPIO_GUP_WRITE == GupFlags::WRITE.bits()
        && GUPIO_GUP_LONGTERM == GupFlags::LONGTERM.bits()
);

/// The counters behind a C pointer.
///
/// # Safety
/// `counters` is null or points to a `gupio_page_counters` valid for `'a`.
unsafe fn counters<'a>(counters: *const gupio_page_counters) -> Result<&'a PageCounters, Fail> {
    cell::check_ptr(counters)?;
    // SAFETY: non-null, aligned, valid per the contract; the C type has the
    // size and at least the alignment of `PageCounters`, whose fields are
    // atomics that accept any bytes.
    Ok(unsafe { &*counters.cast::<PageCounters>() })
}

pub(crate) fn to_pfn(raw: usize) -> Result<Pfn, Fail> {
    Ok(Pfn::try_new(raw)?)
}

fn to_order(raw: u32) -> Result<FolioOrder, Fail> {
    FolioOrder::try_new(raw).map_err(|_| gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into())
}

/// Sets up the counters of one page as the page allocator hands it out:
/// `refcount` references, page `index` of a folio of `order` (index 0 is
/// the head, which holds the folio's counts; a tail's refcount must be 0).
/// Not atomic against other users of the page: the page is the caller's.
///
/// Returns 0, or a negative errno (`GUPIO_ERR_NULL_POINTER`,
/// `GUPIO_ERR_MISALIGNED_POINTER`, `GUPIO_ERR_INVALID_ARGUMENT` for an
/// order above `GUPIO_MAX_ORDER`, an index outside the folio, or a tail
/// with references).
///
/// # Safety
/// `counters` is null or points to a `gupio_page_counters`; `cause` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_counters_init(
    page: *mut gupio_page_counters,
    refcount: u32,
    order: u32,
    index: u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let c = unsafe { counters(page) }?;
        let shape = FolioShape::new(to_order(order)?, index)
            .map_err(|_| Fail::new(gupio_error::GUPIO_ERR_INVALID_ARGUMENT))?;
        if index != 0 && refcount != 0 {
            return Err(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into());
        }
        c.init(refcount, shape);
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Reads one of a page's counters.
///
/// # Safety
/// As `counters`; `cause` is null or writable.
unsafe fn read(
    page: *const gupio_page_counters,
    cause: *mut gupio_error,
    f: impl FnOnce(&PageCounters) -> u32,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { counters(page) }.map(|c| isize::try_from(f(c)).unwrap_or(isize::MAX));
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// The reference count of the page's counters (meaningful on a folio's
/// head; a small page's pins count 1024 each), or a negative errno.
///
/// # Safety
/// `page` is null or points to a `gupio_page_counters`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_counters_refcount(
    page: *const gupio_page_counters,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { read(page, cause, PageCounters::refcount) }
}

/// The exact pin count of a large folio's head (0 on small pages), or a
/// negative errno.
///
/// # Safety
/// As `gupio_counters_refcount`.
#[no_mangle]
pub unsafe extern "C" fn gupio_counters_pincount(
    page: *const gupio_page_counters,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { read(page, cause, PageCounters::pincount) }
}

/// The page's `GUPIO_PAGE_*` flags (on a folio's head), or a negative
/// errno.
///
/// # Safety
/// As `gupio_counters_refcount`.
#[no_mangle]
pub unsafe extern "C" fn gupio_counters_flags(
    page: *const gupio_page_counters,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { read(page, cause, |c| c.flags().bits()) }
}

/// Sets (`set` true) or clears `GUPIO_PAGE_*` flags atomically; returns the
/// flags before, or a negative errno (`GUPIO_ERR_INVALID_ARGUMENT` for
/// unknown bits).
///
/// # Safety
/// As `gupio_counters_refcount`.
#[no_mangle]
pub unsafe extern "C" fn gupio_counters_update_flags(
    page: *const gupio_page_counters,
    flags: u32,
    set: bool,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let c = unsafe { counters(page) }?;
        let flags = PageFlags::from_bits(flags)
            .ok_or(Fail::new(gupio_error::GUPIO_ERR_INVALID_ARGUMENT))?;
        let before = if set {
            c.set_flags(flags)
        } else {
            c.clear_flags(flags)
        };
        Ok(isize::try_from(before.bits()).unwrap_or(isize::MAX))
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Sets up a folio of `1 << order` pages at `head` through the tracker's
/// `counters` callback: the head with one reference (the allocation's),
/// each tail with its index. Refuses, changing nothing, a folio running
/// past the memory map or over a page still referenced.
///
/// Returns 0, or a negative errno (`GUPIO_ERR_NOT_IN_MEMORY_MAP`,
/// `GUPIO_ERR_PAGE_IN_USE`, `GUPIO_ERR_INVALID_ARGUMENT` for an order or an
/// unaligned head, `GUPIO_ERR_PFN_OUT_OF_RANGE`, and the pointer errors).
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; the folio's pages are
/// the caller's (free, not used by another thread); `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_folio_prepare(
    tracker: *const gupio_tracker,
    head: usize,
    order: u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        let order = to_order(order)?;
        let head = to_pfn(head)?;
        let count = order.nr_pages();
        if head.get() % count != 0 {
            return Err(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into());
        }
        let range = PageRange::try_new(head, count)?;
        let page = |offset: usize| {
            let pfn = Pfn::new_truncate(head.get() + offset);
            kernel
                .counters(pfn)
                .ok_or(Fail::from(gupio::pin::PinError::NotInMemoryMap { pfn }))
        };
        // The whole folio must be in the map before anything is looked at.
        for offset in 0..range.len() {
            page(offset)?;
        }
        for offset in 0..range.len() {
            let pfn = Pfn::new_truncate(head.get() + offset);
            if let Ok(folio) = kernel.folio(pfn) {
                if folio.counters().refcount() != 0 {
                    return Err(gupio_error::GUPIO_ERR_PAGE_IN_USE.into());
                }
            }
        }
        for offset in 1..range.len() {
            let index = u32::try_from(offset)
                .map_err(|_| Fail::new(gupio_error::GUPIO_ERR_INVALID_ARGUMENT))?;
            let shape = FolioShape::new(order, index)?;
            page(offset)?.init(0, shape);
        }
        page(0)?.init(1, FolioShape::head(order));
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// One page or a range of pages, with one of the tracker's operations.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
unsafe fn on_range(
    tracker: *const gupio_tracker,
    first: usize,
    count: usize,
    cause: *mut gupio_error,
    f: impl FnOnce(&Kernel, PageRange) -> Result<(), gupio::pin::PinError>,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        let range = PageRange::try_new(to_pfn(first)?, count)?;
        f(kernel, range)?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Pins `count` pages from `first` (a small page gains 1024 references
/// per pin, a large folio one reference and one exact pin per page);
/// pinning the zero page changes nothing.
///
/// Returns 0, or a negative errno naming the cause (nothing is changed on
/// failure): `GUPIO_ERR_NOT_IN_MEMORY_MAP`, `GUPIO_ERR_PFN_OUT_OF_RANGE`,
/// `GUPIO_ERR_CORRUPT_COUNTERS`, the count errors
/// (`GUPIO_ERR_REFCOUNT_OVERFLOW`, `GUPIO_ERR_PAGE_FREE`,
/// `GUPIO_ERR_NOT_PINNED`, `GUPIO_ERR_NO_REFERENCE`; the last three also
/// warned) and the pointer errors. Pages of one folio cost one atomic
/// update. May run in interrupt context.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_pin_range(
    tracker: *const gupio_tracker,
    first: usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_range(tracker, first, count, cause, |k, r| {
            k.tracker().pin_range(r)
        })
    }
}

/// Unpins `count` pages from `first`; the last reference frees the folio.
///
/// Returns 0, or a negative errno naming the cause (nothing is changed on
/// failure): `GUPIO_ERR_NOT_IN_MEMORY_MAP`, `GUPIO_ERR_PFN_OUT_OF_RANGE`,
/// `GUPIO_ERR_CORRUPT_COUNTERS`, the count errors
/// (`GUPIO_ERR_REFCOUNT_OVERFLOW`, `GUPIO_ERR_PAGE_FREE`,
/// `GUPIO_ERR_NOT_PINNED`, `GUPIO_ERR_NO_REFERENCE`; the last three also
/// warned) and the pointer errors. Pages of one folio cost one atomic
/// update. May run in interrupt context.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_unpin_range(
    tracker: *const gupio_tracker,
    first: usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_range(tracker, first, count, cause, |k, r| {
            k.tracker().unpin_range(r)
        })
    }
}

/// Takes a reference on each of `count` pages from `first`.
///
/// Returns 0, or a negative errno naming the cause (nothing is changed on
/// failure): `GUPIO_ERR_NOT_IN_MEMORY_MAP`, `GUPIO_ERR_PFN_OUT_OF_RANGE`,
/// `GUPIO_ERR_CORRUPT_COUNTERS`, the count errors
/// (`GUPIO_ERR_REFCOUNT_OVERFLOW`, `GUPIO_ERR_PAGE_FREE`,
/// `GUPIO_ERR_NOT_PINNED`, `GUPIO_ERR_NO_REFERENCE`; the last three also
/// warned) and the pointer errors. Pages of one folio cost one atomic
/// update. May run in interrupt context.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_get_range(
    tracker: *const gupio_tracker,
    first: usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_range(tracker, first, count, cause, |k, r| {
            k.tracker().get_range(r)
        })
    }
}

/// Drops a reference on each of `count` pages from `first`; the last
/// reference frees the folio.
///
/// Returns 0, or a negative errno naming the cause (nothing is changed on
/// failure): `GUPIO_ERR_NOT_IN_MEMORY_MAP`, `GUPIO_ERR_PFN_OUT_OF_RANGE`,
/// `GUPIO_ERR_CORRUPT_COUNTERS`, the count errors
/// (`GUPIO_ERR_REFCOUNT_OVERFLOW`, `GUPIO_ERR_PAGE_FREE`,
/// `GUPIO_ERR_NOT_PINNED`, `GUPIO_ERR_NO_REFERENCE`; the last three also
/// warned) and the pointer errors. Pages of one folio cost one atomic
/// update. May run in interrupt context.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_put_range(
    tracker: *const gupio_tracker,
    first: usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_range(tracker, first, count, cause, |k, r| {
            k.tracker().put_range(r)
        })
    }
}

/// The page-frame numbers of a C array, checked.
///
/// # Safety
/// `pfns` is null or valid for reads of `count` words for `'a`.
unsafe fn pfn_array<'a>(pfns: *const usize, count: usize) -> Result<&'a [Pfn], Fail> {
    if count == 0 {
        return Ok(&[]);
    }
    cell::check_ptr(pfns)?;
    // SAFETY: valid for `count` reads per the contract, non-null, aligned.
    let raw = unsafe { core::slice::from_raw_parts(pfns, count) };
    for &p in raw {
        to_pfn(p)?;
    }
    // SAFETY: `Pfn` is `repr(transparent)` over `usize`, and every word was
    // just checked to be a valid `Pfn`.
    Ok(unsafe { core::slice::from_raw_parts(pfns.cast::<Pfn>(), count) })
}

/// One of the tracker's array operations on a C array.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `pfns` is null or
/// valid for `count` reads; `cause` is null or writable.
unsafe fn on_array(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    cause: *mut gupio_error,
    f: impl FnOnce(&Kernel, &[Pfn]) -> Result<(), gupio::pin::PinError>,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let pfns = unsafe { pfn_array(pfns, count) }?;
        f(kernel, pfns)?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Pins each page of an array.
///
/// `pfns` holds `count` page-frame numbers (null when `count` is 0);
/// consecutive pages of one folio cost one atomic update. Returns 0, or a
/// negative errno as for the range calls; a grab that fails part-way
/// undoes what it took.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `pfns` is null or
/// valid for `count` reads; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_pin_pages(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { on_array(tracker, pfns, count, cause, |k, p| k.tracker().pin_pages(p)) }
}

/// Unpins each page of an array, batched by folio (Linux's
/// `unpin_user_pages`).
///
/// `pfns` holds `count` page-frame numbers (null when `count` is 0);
/// consecutive pages of one folio cost one atomic update. Returns 0, or a
/// negative errno as for the range calls; a grab that fails part-way
/// undoes what it took.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `pfns` is null or
/// valid for `count` reads; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_unpin_pages(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_array(tracker, pfns, count, cause, |k, p| {
            k.tracker().unpin_pages(p)
        })
    }
}

/// Takes a reference on each page of an array.
///
/// `pfns` holds `count` page-frame numbers (null when `count` is 0);
/// consecutive pages of one folio cost one atomic update. Returns 0, or a
/// negative errno as for the range calls; a grab that fails part-way
/// undoes what it took.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `pfns` is null or
/// valid for `count` reads; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_get_pages(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { on_array(tracker, pfns, count, cause, |k, p| k.tracker().get_pages(p)) }
}

/// Drops a reference on each page of an array, batched by folio.
///
/// `pfns` holds `count` page-frame numbers (null when `count` is 0);
/// consecutive pages of one folio cost one atomic update. Returns 0, or a
/// negative errno as for the range calls; a grab that fails part-way
/// undoes what it took.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `pfns` is null or
/// valid for `count` reads; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_put_pages(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe { on_array(tracker, pfns, count, cause, |k, p| k.tracker().put_pages(p)) }
}

/// Unpins each page of an array, first locking and dirtying each folio not
/// yet dirty when `make_dirty` (Linux's `unpin_user_pages_dirty_lock`).
/// Process context only (it may take folio locks). Returns 0 or a negative
/// errno as `gupio_unpin_pages`.
///
/// # Safety
/// As `gupio_unpin_pages`.
#[no_mangle]
pub unsafe extern "C" fn gupio_unpin_pages_dirty_lock(
    tracker: *const gupio_tracker,
    pfns: *const usize,
    count: usize,
    make_dirty: bool,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    unsafe {
        on_array(tracker, pfns, count, cause, |k, p| {
            k.tracker().unpin_pages_dirty_lock(p, make_dirty)
        })
    }
}

/// Whether a device may hold the page at `pfn` pinned: 1 (maybe; small
/// pages allow false positives), 0 (certainly not), or a negative errno.
/// Lock-free; may run in interrupt context.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_maybe_dma_pinned(
    tracker: *const gupio_tracker,
    pfn: usize,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        Ok(isize::from(
            kernel.tracker().maybe_dma_pinned(to_pfn(pfn)?)?,
        ))
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Pins (`pin` true) or references the user pages into `pages`.
///
/// # Safety
/// As `gupio_pin_user_pages`.
unsafe fn user_pages(
    tracker: *const gupio_tracker,
    space: *const gupio_address_space,
    start: usize,
    nr_pages: usize,
    flags: u32,
    pages: *mut usize,
    pin: bool,
) -> Result<isize, Fail> {
    // SAFETY: forwarded.
    let kernel = unsafe { kernel_of(tracker) }?;
    // SAFETY: forwarded.
    let space = unsafe { Space::from_c(space) }?;
    let flags =
        GupFlags::from_bits(flags).ok_or(Fail::from(gupio::pin::PinError::UnknownGupFlags {
            bits: flags,
        }))?;
    let out: &mut [usize] = if nr_pages == 0 {
        &mut []
    } else {
        cell::check_ptr(pages)?;
        // SAFETY: valid for `nr_pages` writes per the contract, non-null
        // and aligned; nothing else refers to it during the call.
        unsafe { core::slice::from_raw_parts_mut(pages, nr_pages) }
    };
    let tracker = kernel.tracker();
    let start = gupio::pin::UserAddr::new(start);
    let runs = if pin {
        tracker.pin_user_pages(&space, start, nr_pages, flags)?
    } else {
        tracker.get_user_pages(&space, start, nr_pages, flags)?
    };
    let mut done = 0usize;
    for run in runs {
        let run = match run {
            Ok(run) => run,
            Err(error) if done == 0 => return Err(error.into()),
            // Partial success: the pages so far are the caller's.
            Err(_) => break,
        };
        // The caller now owns the pins: it releases them by pfn.
        let (range, _) = run.into_raw();
        for (slot, offset) in out.iter_mut().skip(done).zip(0..range.len()) {
            *slot = range.first().get() + offset;
        }
        done += range.len();
    }
    Ok(isize::try_from(done).unwrap_or(isize::MAX))
}

/// Pins `nr_pages` user pages from `start` through `space` (Linux's
/// `pin_user_pages`) and writes their page-frame numbers into `pages`.
/// `flags`: `GUPIO_GUP_WRITE`, `GUPIO_GUP_LONGTERM`. The caller releases
/// them with `gupio_unpin_pages` (or a bio releases them by origin).
///
/// Returns the number pinned (fewer than asked when a later page failed:
/// the caller meets that failure on its next call), or a negative errno
/// when the first page fails or an argument is refused:
/// `GUPIO_ERR_GUP_FLAGS`, `GUPIO_ERR_ADDRESS_OVERFLOW`, `GUPIO_ERR_FAULT`,
/// `GUPIO_ERR_WRITE_TO_ZERO_PAGE`, `GUPIO_ERR_LONGTERM_REFUSED`, the count
/// and memory-map errors, the pointer errors, `GUPIO_ERR_MISSING_CALLBACK`
/// and `GUPIO_ERR_INVALID_ARGUMENT` for a bad address-space table.
/// Process context: the address space's callbacks may fault pages in.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker`; `space` is null or
/// points to an address space whose callbacks are safe to call during the
/// call; `pages` is null or valid for `nr_pages` writes; `cause` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_pin_user_pages(
    tracker: *const gupio_tracker,
    space: *const gupio_address_space,
    start: usize,
    nr_pages: usize,
    flags: u32,
    pages: *mut usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { user_pages(tracker, space, start, nr_pages, flags, pages, true) };
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// As `gupio_pin_user_pages`, taking plain references (Linux's
/// `get_user_pages`): the caller releases them with `gupio_put_pages`.
/// `GUPIO_GUP_LONGTERM` is refused (`GUPIO_ERR_GUP_FLAGS`).
///
/// # Safety
/// As `gupio_pin_user_pages`.
#[no_mangle]
pub unsafe extern "C" fn gupio_get_user_pages(
    tracker: *const gupio_tracker,
    space: *const gupio_address_space,
    start: usize,
    nr_pages: usize,
    flags: u32,
    pages: *mut usize,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { user_pages(tracker, space, start, nr_pages, flags, pages, false) };
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}
