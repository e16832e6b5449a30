//! Completion objects: a bio's status, chained bios, `end_io` exactly once.

use core::cell::UnsafeCell;

use gupio::release::{ChildToken, Completion, Ending};
use gupio::sync::atomic::{AtomicBool, Ordering};

use crate::bio::{gupio_bio, slot, to_status, wrong_state, Slot};
use crate::cell::{self, Opaque};
use crate::error::{finish, gupio_error, Fail};
use crate::ops::{gupio_tracker, kernel_of};

/// Words in a `gupio_completion`.
pub const GUPIO_COMPLETION_WORDS: usize = 4;

/// Counts a bio's outstanding parts (its own I/O and each chained child),
/// keeps the first error, and tells exactly one reporter that the bio
/// finished. Opaque; set up by `gupio_completion_init`. Lock-free: every
/// call but init may run in interrupt context, from any CPU.
#[repr(C, align(8))]
pub struct gupio_completion {
    opaque: [u64; GUPIO_COMPLETION_WORDS],
}

impl Opaque for gupio_completion {
    type Value = Completion;
    const MAGIC: u64 = 0x6775_7069_6f5f_434f; // "gupio_CO"
}

/// Sets up an idle completion. Returns 0 or a negative errno (pointer
/// errors).
///
/// # Safety
/// `completion` is null or valid for writes of a `gupio_completion` and not
/// in use; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_completion_init(
    completion: *mut gupio_completion,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { cell::init(completion, Completion::new()) }.map(|()| 0);
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Starts the completion before its bio is submitted (again, once a
/// previous round finished). Returns 0, or a negative errno:
/// `GUPIO_ERR_ALREADY_STARTED`, `GUPIO_ERR_NOT_INITIALIZED`, pointer errors.
///
/// # Safety
/// `completion` is null or points to a `gupio_completion`; `cause` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_completion_start(
    completion: *const gupio_completion,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let c = unsafe { cell::get::<gupio_completion>(completion) }?;
        c.start()?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Stores a finished completion's `gupio_status` through `out`.
///
/// # Safety
/// `out` is null or writable.
unsafe fn ending(ending: Ending, out: *mut u32) -> Result<isize, Fail> {
    match ending {
        Ending::Pending => Ok(0),
        Ending::Finished(status) => {
            if !out.is_null() {
                cell::check_ptr(out)?;
                // SAFETY: non-null, aligned, writable per contract.
                unsafe { out.write(u32::from(status.to_raw())) };
            }
            Ok(1)
        }
    }
}

/// Reports the bio's own I/O done with `status` (a `gupio_status`; the
/// first error wins). Returns 1 when this report finished the bio (every
/// chained child reported too): the caller runs `end_io` (complete and
/// release the bio), and `*final_status` (may be null) gets the status;
/// 0 while parts are outstanding. A second report is warned through the
/// tracker and refused (`GUPIO_ERR_DOUBLE_COMPLETION`), releasing nothing.
/// Other errors: `GUPIO_ERR_NOT_STARTED`, `GUPIO_ERR_INVALID_ARGUMENT`
/// (status), pointer errors.
///
/// # Safety
/// `completion` is null or points to a `gupio_completion`; `tracker` is
/// null or points to a `gupio_tracker`; `final_status` and `cause` are null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_completion_complete(
    completion: *const gupio_completion,
    tracker: *const gupio_tracker,
    status: u32,
    final_status: *mut u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let c = unsafe { cell::get::<gupio_completion>(completion) }?;
        let ending = c.complete(to_status(status)?, kernel)?;
        // SAFETY: forwarded.
        unsafe { self::ending(ending, final_status) }
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Ends a lone bio (one with no chained children) from the device's
/// interrupt, in one call: reports `status` (a `gupio_status`) to the bio's
/// `completion` and completes the bio with the status the completion
/// finished with, the rule `gupio_completion_complete` and
/// `gupio_bio_complete` otherwise spell out by hand. The bio is completed
/// whatever the completion says, so it can always be released next
/// (`gupio_bio_release`, `gupio_bio_complete_dio_read`), and
/// `*final_status` (may be null) gets the status it was completed with.
///
/// Returns 0 when the completion finished: the bio carries the first error
/// reported, or `GUPIO_STATUS_IO_ERROR` if the completion's status word was
/// corrupt (warned). Otherwise the bio is completed with
/// `GUPIO_STATUS_IO_ERROR` and a negative errno says why:
/// `GUPIO_ERR_NOT_STARTED` (the completion was never started),
/// `GUPIO_ERR_DOUBLE_COMPLETION` (already reported; warned),
/// `GUPIO_ERR_UNFINISHED` (a child is still chained: this was no lone bio;
/// the child's report finishes the completion later, and must not end the
/// bio again). The argument errors leave the bio and the completion as
/// they were: `GUPIO_ERR_INVALID_ARGUMENT` (status), `GUPIO_ERR_WRONG_STATE`
/// (the bio is not submitted), the pointer errors.
///
/// # Safety
/// `bio` as `gupio_bio_submit`; `completion` is null or points to a
/// `gupio_completion`; `tracker` is null or points to a `gupio_tracker`;
/// `final_status` and `cause` are null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_end(
    bio: *mut gupio_bio,
    completion: *const gupio_completion,
    tracker: *const gupio_tracker,
    status: u32,
    final_status: *mut u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        let status = to_status(status)?;
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let c = unsafe { cell::get::<gupio_completion>(completion) }?;
        if !final_status.is_null() {
            cell::check_ptr(final_status)?;
        }
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        // Checked before the take, so a bio in another state stays as it is.
        if !matches!(slot, Slot::Submitted(_)) {
            return Err(wrong_state());
        }
        let Slot::Submitted(submitted) = core::mem::replace(slot, Slot::Released) else {
            return Err(wrong_state());
        };
        let ended = submitted.end(c, status, kernel);
        let completed_with = ended.bio.status();
        *slot = Slot::Completed(ended.bio);
        if !final_status.is_null() {
            // SAFETY: non-null, aligned and writable, checked above.
            unsafe { final_status.write(u32::from(completed_with.to_raw())) };
        }
        ended.result.map(|_| 0).map_err(Fail::from)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// A chained child's link to its parent's completion.
pub(crate) struct Link {
    parent: *const gupio_completion,
    /// True while the token is held: the one reporter that swaps it to
    /// false takes the token.
    armed: AtomicBool,
    token: UnsafeCell<Option<ChildToken>>,
}

/// Words in a `gupio_chain_link`.
pub const GUPIO_CHAIN_LINK_WORDS: usize = 4;

/// A chained child bio's claim on its parent's completion (Linux's
/// `bio_chain`): the parent finishes only after every child reported
/// through its link. Opaque; set up by `gupio_completion_chain`, used up
/// by `gupio_chain_complete`.
#[repr(C, align(8))]
pub struct gupio_chain_link {
    opaque: [u64; GUPIO_CHAIN_LINK_WORDS],
}

impl Opaque for gupio_chain_link {
    type Value = Link;
    const MAGIC: u64 = 0x6775_7069_6f5f_434c; // "gupio_CL"
}

/// Chains a child to the in-flight `parent`: the parent now waits for one
/// more report, made through `link` with `gupio_chain_complete`. Returns
/// 0, or a negative errno: `GUPIO_ERR_CHAIN_REFUSED` (parent not in flight,
/// or too many children), pointer errors.
///
/// # Safety
/// `parent` is null or points to a `gupio_completion` that stays valid
/// until the link reports; `link` is null or valid for writes of a
/// `gupio_chain_link` and not in use; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_completion_chain(
    parent: *const gupio_completion,
    link: *mut gupio_chain_link,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        cell::check_ptr(link)?;
        // SAFETY: forwarded.
        let c = unsafe { cell::get::<gupio_completion>(parent) }?;
        let token = c.chain()?;
        let value = Link {
            parent,
            armed: AtomicBool::new(true),
            token: UnsafeCell::new(Some(token)),
        };
        // SAFETY: `link` is writable per the contract. On failure (it
        // cannot: the pointer was checked) the token would be dropped and
        // the parent would never finish, which `check_ptr` above rules out.
        unsafe { cell::init(link, value) }?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Reports a chained child's I/O done with `status` to its parent. Returns
/// 1 when this report finished the parent (run the parent's `end_io`;
/// `*final_status`, may be null, gets its status), 0 while parts are
/// outstanding. A second report through the same link is warned and
/// refused (`GUPIO_ERR_DOUBLE_COMPLETION`). Other errors:
/// `GUPIO_ERR_INVALID_ARGUMENT` (status), pointer errors.
///
/// # Safety
/// `link` is null or points to a `gupio_chain_link` set up by
/// `gupio_completion_chain` whose parent is still valid; `tracker` is
/// null or points to a `gupio_tracker`; `final_status` and `cause` are
/// null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_chain_complete(
    link: *const gupio_chain_link,
    tracker: *const gupio_tracker,
    status: u32,
    final_status: *mut u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded; a link is only shared.
        let link = unsafe { cell::get::<gupio_chain_link>(link) }?;
        let status = to_status(status)?;
        // SAFETY: the parent stays valid until the link reports.
        let parent = unsafe { cell::get::<gupio_completion>(link.parent) }?;
        // AcqRel: exactly one reporter swaps the flag off and takes the
        // token; a losing reporter is refused without touching it.
        if !link.armed.swap(false, Ordering::AcqRel) {
            gupio::embed::Warn::warn(kernel, gupio::release::ReleaseWarning::DoubleCompletion);
            return Err(gupio_error::GUPIO_ERR_DOUBLE_COMPLETION.into());
        }
        // SAFETY: the swap above gave this caller exclusive use of the token.
        let token = unsafe { (*link.token.get()).take() };
        let Some(token) = token else {
            return Err(gupio_error::GUPIO_ERR_DOUBLE_COMPLETION.into());
        };
        let ending = parent.child_complete(token, status, kernel)?;
        // SAFETY: forwarded.
        unsafe { self::ending(ending, final_status) }
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}
