//! Error codes: a negative errno for the C caller's control flow, a
//! `gupio_error` naming the cause.

use core::ffi::c_char;

use gupio::bio::BioError;
use gupio::pfn::PfnError;
use gupio::pin::{FaultKind, PinError};
use gupio::release::ReleaseError;

/// `EPERM`, as Linux numbers it (a freestanding kernel has no `errno.h`).
pub const GUPIO_EPERM: i32 = 1;
/// `ENOENT`.
pub const GUPIO_ENOENT: i32 = 2;
/// `EIO`.
pub const GUPIO_EIO: i32 = 5;
/// `ENOMEM`.
pub const GUPIO_ENOMEM: i32 = 12;
/// `EFAULT`.
pub const GUPIO_EFAULT: i32 = 14;
/// `EBUSY`.
pub const GUPIO_EBUSY: i32 = 16;
/// `EINVAL`.
pub const GUPIO_EINVAL: i32 = 22;
/// `ENOSPC`.
pub const GUPIO_ENOSPC: i32 = 28;
/// `ERANGE`.
pub const GUPIO_ERANGE: i32 = 34;
/// `EOVERFLOW`.
pub const GUPIO_EOVERFLOW: i32 = 75;
/// `EALREADY`.
pub const GUPIO_EALREADY: i32 = 114;

/// Why a call failed. Every entry point returns a negative errno-style code
/// on failure (see `gupio_error_errno`) and, when its last argument
/// `cause` is not null, stores one of these there (`GUPIO_OK` on success).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_error {
    /// Success.
    GUPIO_OK = 0,
    /// A pointer argument was null (`-EINVAL`).
    GUPIO_ERR_NULL_POINTER = 1,
    /// A pointer argument was not aligned for its type (`-EINVAL`).
    GUPIO_ERR_MISALIGNED_POINTER = 2,
    /// An object was not set up by its `_init` function, or was released
    /// (`-EINVAL`).
    GUPIO_ERR_NOT_INITIALIZED = 3,
    /// The object is in the wrong state for the call: a bio added to after
    /// submission, completed before submission, released twice (`-EBUSY`).
    GUPIO_ERR_WRONG_STATE = 4,
    /// A value argument is out of its range: an origin, op, status, order,
    /// page shift, mapping kind or limit that names nothing (`-EINVAL`).
    GUPIO_ERR_INVALID_ARGUMENT = 5,
    /// A required callback of a table is null (`-EINVAL`).
    GUPIO_ERR_MISSING_CALLBACK = 6,
    /// A page-frame number overlaps the origin bits of the tagged word
    /// (`-ERANGE`).
    GUPIO_ERR_PFN_OUT_OF_RANGE = 7,
    /// The memory map has no counters for a frame (`-EFAULT`).
    GUPIO_ERR_NOT_IN_MEMORY_MAP = 8,
    /// A page's counters contradict each other: a tail whose head
    /// disagrees, a corrupt folio shape (`-EIO`).
    GUPIO_ERR_CORRUPT_COUNTERS = 9,
    /// A get or pin of a free folio (refcount 0); warned (`-ENOENT`).
    GUPIO_ERR_PAGE_FREE = 10,
    /// A folio to be prepared is still referenced (`-EBUSY`).
    GUPIO_ERR_PAGE_IN_USE = 11,
    /// The increment would pass the reference-count ceiling; nothing was
    /// changed (`-EOVERFLOW`).
    GUPIO_ERR_REFCOUNT_OVERFLOW = 12,
    /// An unpin of a folio holding fewer pins than released; warned,
    /// nothing changed (`-EINVAL`).
    GUPIO_ERR_NOT_PINNED = 13,
    /// A put of more references than the folio holds; warned (`-EINVAL`).
    GUPIO_ERR_NO_REFERENCE = 14,
    /// GUP flags with unknown bits or a forbidden combination (`-EINVAL`).
    GUPIO_ERR_GUP_FLAGS = 15,
    /// A user range that wraps the address space (`-EINVAL`).
    GUPIO_ERR_ADDRESS_OVERFLOW = 16,
    /// The address space could not map a user address: unmapped or access
    /// denied (`-EFAULT`), out of memory (`-ENOMEM`), a hardware error
    /// (`-EIO`), or still not mapped as asked after fault-in (`-EFAULT`).
    GUPIO_ERR_FAULT = 17,
    /// A write pin of the shared zero page (`-EFAULT`).
    GUPIO_ERR_WRITE_TO_ZERO_PAGE = 18,
    /// A long-term pin the mapping or the page refuses (`-EFAULT`).
    GUPIO_ERR_LONGTERM_REFUSED = 19,
    /// The bio layer refused a fragment or a bio: zero length, past its
    /// page, too large, misaligned, not a block multiple, the wrong op, an
    /// invalid limit (`-EINVAL`).
    GUPIO_ERR_BIO_REFUSED = 20,
    /// The bio's bvec table or vec limit is full (`-ENOSPC`).
    GUPIO_ERR_BIO_FULL = 21,
    /// A completion reported twice; warned, nothing released (`-EALREADY`).
    GUPIO_ERR_DOUBLE_COMPLETION = 22,
    /// A completion reported before it was started (`-EINVAL`).
    GUPIO_ERR_NOT_STARTED = 23,
    /// A completion started while in flight (`-EBUSY`).
    GUPIO_ERR_ALREADY_STARTED = 24,
    /// A chain to a completion that is not in flight, or that has too
    /// many children (`-EINVAL`).
    GUPIO_ERR_CHAIN_REFUSED = 25,
    /// The deferred-release list is full; the bio stays completed and the
    /// caller releases it from process context (`-ENOSPC`).
    GUPIO_ERR_DEFERRED_FULL = 26,
    /// A bio ended alone (`gupio_bio_end`) whose completion still waits for
    /// a chained child; the bio was completed with an I/O error (`-EBUSY`).
    GUPIO_ERR_UNFINISHED = 27,
}

use gupio_error::*;

/// Every cause, in numbering order (`ALL[n] as u32 == n`).
pub(crate) const ALL: [gupio_error; 28] = [
    GUPIO_OK,
    GUPIO_ERR_NULL_POINTER,
    GUPIO_ERR_MISALIGNED_POINTER,
    GUPIO_ERR_NOT_INITIALIZED,
    GUPIO_ERR_WRONG_STATE,
    GUPIO_ERR_INVALID_ARGUMENT,
    GUPIO_ERR_MISSING_CALLBACK,
    GUPIO_ERR_PFN_OUT_OF_RANGE,
    GUPIO_ERR_NOT_IN_MEMORY_MAP,
    GUPIO_ERR_CORRUPT_COUNTERS,
    GUPIO_ERR_PAGE_FREE,
    GUPIO_ERR_PAGE_IN_USE,
    GUPIO_ERR_REFCOUNT_OVERFLOW,
    GUPIO_ERR_NOT_PINNED,
    GUPIO_ERR_NO_REFERENCE,
    GUPIO_ERR_GUP_FLAGS,
    GUPIO_ERR_ADDRESS_OVERFLOW,
    GUPIO_ERR_FAULT,
    GUPIO_ERR_WRITE_TO_ZERO_PAGE,
    GUPIO_ERR_LONGTERM_REFUSED,
    GUPIO_ERR_BIO_REFUSED,
    GUPIO_ERR_BIO_FULL,
    GUPIO_ERR_DOUBLE_COMPLETION,
    GUPIO_ERR_NOT_STARTED,
    GUPIO_ERR_ALREADY_STARTED,
    GUPIO_ERR_CHAIN_REFUSED,
    GUPIO_ERR_DEFERRED_FULL,
    GUPIO_ERR_UNFINISHED,
];

impl gupio_error {
    /// The errno (positive) a failure of this cause returns, negated.
    pub(crate) const fn errno(self) -> i32 {
        match self {
            GUPIO_OK => 0,
            GUPIO_ERR_NULL_POINTER
            | GUPIO_ERR_MISALIGNED_POINTER
            | GUPIO_ERR_NOT_INITIALIZED
            | GUPIO_ERR_INVALID_ARGUMENT
            | GUPIO_ERR_MISSING_CALLBACK
            | GUPIO_ERR_NOT_PINNED
            | GUPIO_ERR_NO_REFERENCE
            | GUPIO_ERR_GUP_FLAGS
            | GUPIO_ERR_ADDRESS_OVERFLOW
            | GUPIO_ERR_BIO_REFUSED
            | GUPIO_ERR_NOT_STARTED
            | GUPIO_ERR_CHAIN_REFUSED => GUPIO_EINVAL,
            GUPIO_ERR_WRONG_STATE
            | GUPIO_ERR_PAGE_IN_USE
            | GUPIO_ERR_ALREADY_STARTED
            | GUPIO_ERR_UNFINISHED => GUPIO_EBUSY,
            GUPIO_ERR_PFN_OUT_OF_RANGE => GUPIO_ERANGE,
            GUPIO_ERR_NOT_IN_MEMORY_MAP
            | GUPIO_ERR_FAULT
            | GUPIO_ERR_WRITE_TO_ZERO_PAGE
            | GUPIO_ERR_LONGTERM_REFUSED => GUPIO_EFAULT,
            GUPIO_ERR_CORRUPT_COUNTERS => GUPIO_EIO,
            GUPIO_ERR_PAGE_FREE => GUPIO_ENOENT,
            GUPIO_ERR_REFCOUNT_OVERFLOW => GUPIO_EOVERFLOW,
            GUPIO_ERR_BIO_FULL | GUPIO_ERR_DEFERRED_FULL => GUPIO_ENOSPC,
            GUPIO_ERR_DOUBLE_COMPLETION => GUPIO_EALREADY,
        }
    }

    /// The cause's name as a NUL-terminated string.
    const fn name(self) -> &'static core::ffi::CStr {
        match self {
            GUPIO_OK => c"GUPIO_OK",
            GUPIO_ERR_NULL_POINTER => c"GUPIO_ERR_NULL_POINTER",
            GUPIO_ERR_MISALIGNED_POINTER => c"GUPIO_ERR_MISALIGNED_POINTER",
            GUPIO_ERR_NOT_INITIALIZED => c"GUPIO_ERR_NOT_INITIALIZED",
            GUPIO_ERR_WRONG_STATE => c"GUPIO_ERR_WRONG_STATE",
            GUPIO_ERR_INVALID_ARGUMENT => c"GUPIO_ERR_INVALID_ARGUMENT",
            GUPIO_ERR_MISSING_CALLBACK => c"GUPIO_ERR_MISSING_CALLBACK",
            GUPIO_ERR_PFN_OUT_OF_RANGE => c"GUPIO_ERR_PFN_OUT_OF_RANGE",
            GUPIO_ERR_NOT_IN_MEMORY_MAP => c"GUPIO_ERR_NOT_IN_MEMORY_MAP",
            GUPIO_ERR_CORRUPT_COUNTERS => c"GUPIO_ERR_CORRUPT_COUNTERS",
            GUPIO_ERR_PAGE_FREE => c"GUPIO_ERR_PAGE_FREE",
            GUPIO_ERR_PAGE_IN_USE => c"GUPIO_ERR_PAGE_IN_USE",
            GUPIO_ERR_REFCOUNT_OVERFLOW => c"GUPIO_ERR_REFCOUNT_OVERFLOW",
            GUPIO_ERR_NOT_PINNED => c"GUPIO_ERR_NOT_PINNED",
            GUPIO_ERR_NO_REFERENCE => c"GUPIO_ERR_NO_REFERENCE",
            GUPIO_ERR_GUP_FLAGS => c"GUPIO_ERR_GUP_FLAGS",
            GUPIO_ERR_ADDRESS_OVERFLOW => c"GUPIO_ERR_ADDRESS_OVERFLOW",
            GUPIO_ERR_FAULT => c"GUPIO_ERR_FAULT",
            GUPIO_ERR_WRITE_TO_ZERO_PAGE => c"GUPIO_ERR_WRITE_TO_ZERO_PAGE",
            GUPIO_ERR_LONGTERM_REFUSED => c"GUPIO_ERR_LONGTERM_REFUSED",
            GUPIO_ERR_BIO_REFUSED => c"GUPIO_ERR_BIO_REFUSED",
            GUPIO_ERR_BIO_FULL => c"GUPIO_ERR_BIO_FULL",
            GUPIO_ERR_DOUBLE_COMPLETION => c"GUPIO_ERR_DOUBLE_COMPLETION",
            GUPIO_ERR_NOT_STARTED => c"GUPIO_ERR_NOT_STARTED",
            GUPIO_ERR_ALREADY_STARTED => c"GUPIO_ERR_ALREADY_STARTED",
            GUPIO_ERR_CHAIN_REFUSED => c"GUPIO_ERR_CHAIN_REFUSED",
            GUPIO_ERR_DEFERRED_FULL => c"GUPIO_ERR_DEFERRED_FULL",
            GUPIO_ERR_UNFINISHED => c"GUPIO_ERR_UNFINISHED",
        }
    }

    fn from_raw(raw: u32) -> Option<Self> {
        ALL.get(usize::try_from(raw).ok()?).copied()
    }
}

/// A failure inside the C layer: the cause and its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) cause: gupio_error,
    pub(crate) errno: i32,
}

impl Fail {
    pub(crate) const fn new(cause: gupio_error) -> Self {
        Self {
            cause,
            errno: cause.errno(),
        }
    }
}

impl From<gupio_error> for Fail {
    fn from(cause: gupio_error) -> Self {
        Self::new(cause)
    }
}

impl From<PfnError> for Fail {
    fn from(error: PfnError) -> Self {
        match error {
            PfnError::PfnOutOfRange { .. } | PfnError::InvalidTag { .. } => {
                Self::new(GUPIO_ERR_PFN_OUT_OF_RANGE)
            }
            _ => Self::new(GUPIO_ERR_INVALID_ARGUMENT),
        }
    }
}

impl From<FaultKind> for Fail {
    fn from(kind: FaultKind) -> Self {
        let errno = match kind {
            FaultKind::OutOfMemory => GUPIO_ENOMEM,
            FaultKind::HardwareError => GUPIO_EIO,
            _ => GUPIO_EFAULT,
        };
        Self {
            cause: GUPIO_ERR_FAULT,
            errno,
        }
    }
}

impl From<PinError> for Fail {
    fn from(error: PinError) -> Self {
        Self::new(match error {
            PinError::NotInMemoryMap { .. } => GUPIO_ERR_NOT_IN_MEMORY_MAP,
            PinError::RangeOverflow { .. } => GUPIO_ERR_PFN_OUT_OF_RANGE,
            PinError::InvalidFolioShape { .. } => GUPIO_ERR_INVALID_ARGUMENT,
            PinError::RefcountOverflow { .. } => GUPIO_ERR_REFCOUNT_OVERFLOW,
            PinError::PageFree { .. } => GUPIO_ERR_PAGE_FREE,
            PinError::NotPinned { .. } => GUPIO_ERR_NOT_PINNED,
            PinError::NoReference { .. } => GUPIO_ERR_NO_REFERENCE,
            PinError::CorruptCounters { .. } => GUPIO_ERR_CORRUPT_COUNTERS,
            PinError::PageInUse { .. } => GUPIO_ERR_PAGE_IN_USE,
            PinError::UnknownGupFlags { .. }
            | PinError::InternalGupFlags { .. }
            | PinError::GetAndPin { .. }
            | PinError::NeitherGetNorPin { .. }
            | PinError::LongtermWithoutPin { .. } => GUPIO_ERR_GUP_FLAGS,
            PinError::AddressOverflow { .. } => GUPIO_ERR_ADDRESS_OVERFLOW,
            PinError::Fault { kind, .. } => return kind.into(),
            PinError::FaultNotResolved { .. } => GUPIO_ERR_FAULT,
            PinError::WriteToZeroPage { .. } => GUPIO_ERR_WRITE_TO_ZERO_PAGE,
            PinError::LongtermDirtyTracked { .. } | PinError::NotLongtermPinnable { .. } => {
                GUPIO_ERR_LONGTERM_REFUSED
            }
            // Pin accounts are not part of the C ABI; any error a newer core
            // adds is a refused argument until the ABI names it.
            _ => GUPIO_ERR_INVALID_ARGUMENT,
        })
    }
}

impl From<BioError> for Fail {
    fn from(error: BioError) -> Self {
        Self::new(match error {
            BioError::TooManyVecs { .. } => GUPIO_ERR_BIO_FULL,
            BioError::PfnOutOfRange { .. } => GUPIO_ERR_PFN_OUT_OF_RANGE,
            _ => GUPIO_ERR_BIO_REFUSED,
        })
    }
}

impl From<ReleaseError> for Fail {
    fn from(error: ReleaseError) -> Self {
        match error {
            ReleaseError::Pin { error, .. } | ReleaseError::Extract { error, .. } => error.into(),
            ReleaseError::Invalid { error } | ReleaseError::Build { error } => error.into(),
            ReleaseError::NoPage { .. } => Self::new(GUPIO_ERR_BIO_REFUSED),
            ReleaseError::DoubleCompletion => Self::new(GUPIO_ERR_DOUBLE_COMPLETION),
            ReleaseError::NotStarted => Self::new(GUPIO_ERR_NOT_STARTED),
            ReleaseError::Unfinished { .. } => Self::new(GUPIO_ERR_UNFINISHED),
            ReleaseError::AlreadyStarted => Self::new(GUPIO_ERR_ALREADY_STARTED),
            ReleaseError::ChainNotInFlight | ReleaseError::TooManyChildren { .. } => {
                Self::new(GUPIO_ERR_CHAIN_REFUSED)
            }
            ReleaseError::DeferredListFull { .. } => Self::new(GUPIO_ERR_DEFERRED_FULL),
            ReleaseError::CorruptStatus { .. } => Self::new(GUPIO_ERR_CORRUPT_COUNTERS),
            _ => Self::new(GUPIO_ERR_INVALID_ARGUMENT),
        }
    }
}

/// Turns a result into the C return value (the count, or the negative
/// errno) and stores its cause through `cause` when that is not null.
///
/// # Safety
/// `cause` is null or valid for a write of a `gupio_error`.
pub(crate) unsafe fn finish(result: Result<isize, Fail>, cause: *mut gupio_error) -> isize {
    let (ret, why) = match result {
        Ok(n) => (n, GUPIO_OK),
        Err(fail) => (-(fail.errno as isize), fail.cause),
    };
    if !cause.is_null() && cause.is_aligned() {
        // SAFETY: the caller passes null or a pointer valid for the write;
        // it is not null and aligned.
        unsafe { cause.write(why) };
    }
    ret
}

/// The negative errno a failure of `cause` returns (0 for `GUPIO_OK`;
/// `-GUPIO_EINVAL` for a value that names no cause).
#[no_mangle]
pub extern "C" fn gupio_error_errno(cause: u32) -> i32 {
    gupio_error::from_raw(cause).map_or(-GUPIO_EINVAL, |c| -c.errno())
}

/// The name of `cause` as a static NUL-terminated string (`"GUPIO_OK"`,
/// `"GUPIO_ERR_NOT_PINNED"`), or null for a value that names no cause.
#[no_mangle]
pub extern "C" fn gupio_error_name(cause: u32) -> *const c_char {
    gupio_error::from_raw(cause).map_or(core::ptr::null(), |c| c.name().as_ptr())
}
