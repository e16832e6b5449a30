//! The kernel's memory map and page hooks as a callback table, and the
//! tracker built from it.

use core::ffi::c_void;

use gupio::pfn::Pfn;
use gupio::pin::{FolioRef, MemoryMap, PageCounters, PageOps, Tracker, Warning};
use gupio::release::{AnyWarning, ReleaseWarning, Warn};

use crate::cell::{self, Opaque};
use crate::error::{finish, gupio_error, Fail};

/// The counters gupio keeps for one page: embed one in each `struct page`
/// (or in an array beside the page array). Opaque: only the `gupio_counters_*`
/// functions read or change it. Zero-filled memory is a free small page;
/// `gupio_counters_init` or `gupio_folio_prepare` set one up when the
/// page allocator hands the page out. 16 bytes, aligned to 8, on every
/// target.
#[repr(C, align(8))]
pub struct gupio_page_counters {
    opaque: [u64; 2],
}

// The C storage holds the Rust counters exactly: a `struct page` embeds it.
const _: () = assert!(
    core::mem::size_of::<PageCounters>() == core::mem::size_of::<gupio_page_counters>()
        && core::mem::align_of::<PageCounters>() <= core::mem::align_of::<gupio_page_counters>()
);

/// Size in bytes of `gupio_page_counters`.
pub const GUPIO_PAGE_COUNTERS_SIZE: usize = 16;
/// Alignment in bytes of `gupio_page_counters` (and of every opaque type).
pub const GUPIO_OPAQUE_ALIGN: usize = 8;

const _: () = assert!(
    core::mem::size_of::<gupio_page_counters>() == GUPIO_PAGE_COUNTERS_SIZE
        && core::mem::align_of::<gupio_page_counters>() == GUPIO_OPAQUE_ALIGN
);

/// What went wrong, in a `gupio_warning`. Kinds 1 to 7, 12 and 13 are the
/// pin tracker's warnings, 8 to 10 the release path's; one `warn` hook
/// receives both. 11 stands for a warning newer than this header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_warning_kind {
    /// An unpin of a folio without enough pins (`pfn`; `a` pages, `b`
    /// refcount, `c` pincount). Nothing was changed.
    GUPIO_WARN_UNPIN_WITHOUT_PIN = 1,
    /// A put of more references than held (`pfn`; `a` refcount, `b`
    /// dropping). Nothing was changed.
    GUPIO_WARN_PUT_WITHOUT_REFERENCE = 2,
    /// A get or pin of a free folio (`pfn`).
    GUPIO_WARN_GRAB_OF_FREE_PAGE = 3,
    /// A folio's refcount below its pincount (`pfn`; `a` refcount, `b`
    /// pincount).
    GUPIO_WARN_REFCOUNT_BELOW_PINCOUNT = 4,
    /// A folio lost its last reference with pins left, and was leaked
    /// rather than freed (`pfn`; `a` pincount).
    GUPIO_WARN_FREED_WHILE_PINNED = 5,
    /// Pages taken were dropped without a release, and leaked (`pfn`; `a`
    /// pages).
    GUPIO_WARN_PAGES_LEAKED = 6,
    /// A folio shape contradicting its head (`pfn`).
    GUPIO_WARN_CORRUPT_FOLIO = 7,
    /// A bvec without a page in a bio holding pages (`a` index; release
    /// path).
    GUPIO_WARN_BVEC_WITHOUT_PAGE = 8,
    /// A bio completed twice (release path).
    GUPIO_WARN_DOUBLE_COMPLETION = 9,
    /// A corrupt completion status word (`a` raw value; release path).
    GUPIO_WARN_CORRUPT_COMPLETION_STATUS = 10,
    /// A broken invariant this header has no kind for (a later gupio's).
    GUPIO_WARN_OTHER = 11,
    /// A pin added to a folio that holds none (`pfn`; `a` refcount, `b`
    /// pincount). Nothing was changed.
    GUPIO_WARN_ADD_PIN_WITHOUT_PIN = 12,
    /// A pin account asked to give back more than it holds (`a` charged,
    /// `b` requested, in 4 KiB units). Nothing was changed.
    GUPIO_WARN_ACCOUNT_UNDERFLOW = 13,
}

/// A broken invariant gupio reports through the `warn` hook (Linux's
/// `WARN_ON_ONCE`): a bug in the caller or the kernel. The call that found
/// it also fails. Fields other than `kind` mean what the kind says; unused
/// ones are 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gupio_warning {
    /// What went wrong.
    pub kind: gupio_warning_kind,
    /// The folio or page concerned, or 0.
    pub pfn: usize,
    /// First detail.
    pub a: u64,
    /// Second detail.
    pub b: u64,
    /// Third detail.
    pub c: u64,
}

impl From<Warning> for gupio_warning {
    fn from(warning: Warning) -> Self {
        use gupio_warning_kind::*;
        let w = |kind, pfn: Pfn, a, b, c| Self {
            kind,
            pfn: pfn.get(),
            a,
            b,
            c,
        };
        let zero = Pfn::ZERO;
        match warning {
            Warning::UnpinWithoutPin {
                pfn,
                pages,
                refcount,
                pincount,
            } => w(
                GUPIO_WARN_UNPIN_WITHOUT_PIN,
                pfn,
                pages,
                refcount.into(),
                pincount.into(),
            ),
            Warning::PutWithoutReference {
                pfn,
                refcount,
                dropping,
            } => w(
                GUPIO_WARN_PUT_WITHOUT_REFERENCE,
                pfn,
                refcount.into(),
                dropping,
                0,
            ),
            Warning::GrabOfFreePage { pfn } => w(GUPIO_WARN_GRAB_OF_FREE_PAGE, pfn, 0, 0, 0),
            Warning::RefcountBelowPincount {
                pfn,
                refcount,
                pincount,
            } => w(
                GUPIO_WARN_REFCOUNT_BELOW_PINCOUNT,
                pfn,
                refcount.into(),
                pincount.into(),
                0,
            ),
            Warning::FreedWhilePinned { pfn, pincount } => {
                w(GUPIO_WARN_FREED_WHILE_PINNED, pfn, pincount.into(), 0, 0)
            }
            Warning::HeldRunDropped { pfn, pages, .. } => {
                w(GUPIO_WARN_PAGES_LEAKED, pfn, pages, 0, 0)
            }
            Warning::CorruptFolio { pfn } => w(GUPIO_WARN_CORRUPT_FOLIO, pfn, 0, 0, 0),
            Warning::AddPinWithoutPin {
                pfn,
                refcount,
                pincount,
            } => w(
                GUPIO_WARN_ADD_PIN_WITHOUT_PIN,
                pfn,
                refcount.into(),
                pincount.into(),
                0,
            ),
            Warning::AccountUnderflow { charged, request } => {
                w(GUPIO_WARN_ACCOUNT_UNDERFLOW, zero, charged, request, 0)
            }
            _ => w(GUPIO_WARN_OTHER, zero, 0, 0, 0),
        }
    }
}

impl From<ReleaseWarning> for gupio_warning {
    fn from(warning: ReleaseWarning) -> Self {
        use gupio_warning_kind::*;
        let w = |kind, a| Self {
            kind,
            pfn: 0,
            a,
            b: 0,
            c: 0,
        };
        match warning {
            ReleaseWarning::BvecWithoutPage { index } => {
                w(GUPIO_WARN_BVEC_WITHOUT_PAGE, index.into())
            }
            ReleaseWarning::DoubleCompletion => w(GUPIO_WARN_DOUBLE_COMPLETION, 0),
            ReleaseWarning::CorruptCompletionStatus { raw } => {
                w(GUPIO_WARN_CORRUPT_COMPLETION_STATUS, raw.into())
            }
            _ => w(GUPIO_WARN_OTHER, 0),
        }
    }
}

impl From<AnyWarning> for gupio_warning {
    fn from(warning: AnyWarning) -> Self {
        match warning {
            AnyWarning::Pin(warning) => warning.into(),
            AnyWarning::Release(warning) => warning.into(),
            _ => Self {
                kind: gupio_warning_kind::GUPIO_WARN_OTHER,
                pfn: 0,
                a: 0,
                b: 0,
                c: 0,
            },
        }
    }
}

/// The kernel's memory map and page hooks, filled in by the kernel and
/// copied by `gupio_tracker_init`. Every callback gets the table's `ctx`
/// first. Required: `counters`, `free_folio`, `warn`. The lock hooks are
/// all three or none (none: gupio spins on the lock bit in the counters);
/// a null `mark_folio_dirty` sets the dirty bit in the counters.
///
/// Every hook but the lock hooks and `mark_folio_dirty` may be called from
/// interrupt context (a completion) and must not sleep; those three run
/// only for the calls that dirty pages (`mark_dirty` releases, the
/// `*_dirty_lock` calls, `gupio_bio_set_pages_dirty`,
/// `gupio_deferred_drain`), which belong in
/// process context.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct gupio_page_ops {
    /// The counters of the page at `pfn` (inside its `struct page`), or
    /// null if the memory map has no such page. Must stay valid while the
    /// tracker is used.
    pub counters:
        Option<unsafe extern "C" fn(ctx: *mut c_void, pfn: usize) -> *mut gupio_page_counters>,
    /// Whether `pfn` is a page of a shared zero folio (pinning it changes
    /// nothing). Null: there is no zero page.
    pub is_zero_page: Option<unsafe extern "C" fn(ctx: *mut c_void, pfn: usize) -> bool>,
    /// Whether `pfn` may be pinned long term. Null: every page may.
    pub is_longterm_pinnable: Option<unsafe extern "C" fn(ctx: *mut c_void, pfn: usize) -> bool>,
    /// Frees the folio of `1 << order` pages at `head`: its last reference
    /// dropped. Called exactly once per drop to zero.
    pub free_folio: Option<unsafe extern "C" fn(ctx: *mut c_void, head: usize, order: u32)>,
    /// Reports a broken invariant; the call that found it also fails.
    pub warn: Option<unsafe extern "C" fn(ctx: *mut c_void, warning: *const gupio_warning)>,
    /// Counts `pages` pins taken (`nr_foll_pin_acquired`). Null: not counted.
    pub pins_acquired: Option<unsafe extern "C" fn(ctx: *mut c_void, pages: usize)>,
    /// Counts `pages` pins released. Null: not counted.
    pub pins_released: Option<unsafe extern "C" fn(ctx: *mut c_void, pages: usize)>,
    /// Locks the folio at `head` (may sleep).
    pub lock_folio: Option<unsafe extern "C" fn(ctx: *mut c_void, head: usize, order: u32)>,
    /// Locks the folio at `head` if nobody holds it; true if now held.
    pub try_lock_folio:
        Option<unsafe extern "C" fn(ctx: *mut c_void, head: usize, order: u32) -> bool>,
    /// Unlocks the folio at `head`.
    pub unlock_folio: Option<unsafe extern "C" fn(ctx: *mut c_void, head: usize, order: u32)>,
    /// Marks the locked folio at `head` dirty (and tells its filesystem).
    pub mark_folio_dirty: Option<unsafe extern "C" fn(ctx: *mut c_void, head: usize, order: u32)>,
    /// Passed to every callback.
    pub ctx: *mut c_void,
}

/// A validated copy of the kernel's table: what implements gupio's
/// `MemoryMap` and `PageOps`.
pub(crate) struct Kernel {
    ops: gupio_page_ops,
    counters: unsafe extern "C" fn(*mut c_void, usize) -> *mut gupio_page_counters,
    free_folio: unsafe extern "C" fn(*mut c_void, usize, u32),
    warn: unsafe extern "C" fn(*mut c_void, *const gupio_warning),
}

impl Kernel {
    fn new(ops: gupio_page_ops) -> Result<Self, Fail> {
        let missing = Fail::new(gupio_error::GUPIO_ERR_MISSING_CALLBACK);
        let locks = [
            ops.lock_folio.is_some(),
            ops.try_lock_folio.is_some(),
            ops.unlock_folio.is_some(),
        ];
        if locks.contains(&true) && locks.contains(&false) {
            return Err(missing);
        }
        Ok(Self {
            counters: ops.counters.ok_or(missing)?,
            free_folio: ops.free_folio.ok_or(missing)?,
            warn: ops.warn.ok_or(missing)?,
            ops,
        })
    }

    /// The tracker over this table.
    pub(crate) fn tracker(&self) -> Tracker<'_, Self> {
        Tracker::new(self)
    }
}

impl MemoryMap for Kernel {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        // SAFETY: the kernel's callback, called with its own context, as
        // `gupio_tracker_init`'s contract allows.
        let ptr = unsafe { (self.counters)(self.ops.ctx, pfn.get()) };
        if ptr.is_null() || !ptr.is_aligned() {
            return None;
        }
        // SAFETY: the callback returns the counters of a `struct page` that
        // stays valid while the tracker is used (`gupio_tracker_init`'s
        // contract); `gupio_page_counters` has the size of `PageCounters`
        // and at least its alignment, and any bytes are valid atomics.
        Some(unsafe { &*ptr.cast::<PageCounters>() })
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        match self.ops.is_zero_page {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, pfn.get()) },
            None => false,
        }
    }

    fn is_longterm_pinnable(&self, pfn: Pfn) -> bool {
        match self.ops.is_longterm_pinnable {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, pfn.get()) },
            None => true,
        }
    }
}

impl Kernel {
    /// The kernel's one `warn` callback, for the tracker's warnings and the
    /// release path's alike.
    fn report(&self, warning: AnyWarning) {
        let warning = gupio_warning::from(warning);
        // SAFETY: the kernel's callback with its own context; the warning
        // lives for the call.
        unsafe { (self.warn)(self.ops.ctx, &warning) }
    }
}

impl Warn for Kernel {
    fn warn(&self, warning: ReleaseWarning) {
        self.report(warning.into());
    }
}

impl PageOps for Kernel {
    fn free_folio(&self, folio: FolioRef<'_>) {
        // SAFETY: the kernel's callback with its own context.
        unsafe { (self.free_folio)(self.ops.ctx, folio.head().get(), folio.order().get()) }
    }

    fn warn(&self, warning: Warning) {
        self.report(warning.into());
    }

    fn pins_acquired(&self, pages: usize) {
        if let Some(f) = self.ops.pins_acquired {
            // SAFETY: the kernel's callback with its own context.
            unsafe { f(self.ops.ctx, pages) }
        }
    }

    fn pins_released(&self, pages: usize) {
        if let Some(f) = self.ops.pins_released {
            // SAFETY: the kernel's callback with its own context.
            unsafe { f(self.ops.ctx, pages) }
        }
    }

    fn lock_folio(&self, folio: FolioRef<'_>) {
        match self.ops.lock_folio {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, folio.head().get(), folio.order().get()) },
            None => {
                while !folio.counters().try_lock() {
                    core::hint::spin_loop();
                }
            }
        }
    }

    fn try_lock_folio(&self, folio: FolioRef<'_>) -> bool {
        match self.ops.try_lock_folio {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, folio.head().get(), folio.order().get()) },
            None => folio.counters().try_lock(),
        }
    }

    fn unlock_folio(&self, folio: FolioRef<'_>) {
        match self.ops.unlock_folio {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, folio.head().get(), folio.order().get()) },
            None => folio.counters().unlock(),
        }
    }

    fn mark_folio_dirty(&self, folio: FolioRef<'_>) {
        match self.ops.mark_folio_dirty {
            // SAFETY: the kernel's callback with its own context.
            Some(f) => unsafe { f(self.ops.ctx, folio.head().get(), folio.order().get()) },
            None => {
                folio.counters().set_flags(gupio::pin::PageFlags::DIRTY);
            }
        }
    }
}

/// Words in a `gupio_tracker`.
pub const GUPIO_TRACKER_WORDS: usize = 16;

/// A pin tracker over the kernel's `gupio_page_ops`: takes and drops
/// references and pins with Linux's semantics. Opaque; set up by
/// `gupio_tracker_init`. Shared freely between threads and interrupt
/// handlers once set up (it holds only the table).
#[repr(C, align(8))]
pub struct gupio_tracker {
    opaque: [u64; GUPIO_TRACKER_WORDS],
}

impl Opaque for gupio_tracker {
    type Value = Kernel;
    const MAGIC: u64 = 0x6775_7069_6f5f_5452; // "gupio_TR"
}

/// Sets up `tracker` over a copy of `ops`.
///
/// Returns 0, or a negative errno: `GUPIO_ERR_NULL_POINTER`,
/// `GUPIO_ERR_MISALIGNED_POINTER`, `GUPIO_ERR_MISSING_CALLBACK` (a required
/// callback is null, or only some of the lock hooks are set).
///
/// # Safety
/// `tracker` is null or valid for writes of a `gupio_tracker` and not in
/// use by another call; `ops` is null or points to a table whose callbacks
/// are safe to call with its `ctx` from any thread, for as long as the
/// tracker is used, and whose `counters` returns null or a pointer to
/// counters that stay valid that long. `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_tracker_init(
    tracker: *mut gupio_tracker,
    ops: *const gupio_page_ops,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        cell::check_ptr(ops)?;
        // SAFETY: `ops` is non-null and aligned, and points to a table.
        let kernel = Kernel::new(unsafe { ops.read() })?;
        // SAFETY: `tracker` is null or writable, per the contract.
        unsafe { cell::init(tracker, kernel) }?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// The tracker behind `tracker`.
///
/// # Safety
/// `tracker` is null or points to a `gupio_tracker` (initialised or not).
pub(crate) unsafe fn kernel_of<'a>(tracker: *const gupio_tracker) -> Result<&'a Kernel, Fail> {
    // SAFETY: forwarded; a tracker is only ever shared once set up.
    unsafe { cell::get::<gupio_tracker>(tracker) }
}
