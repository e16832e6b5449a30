//! From a C pointer to an opaque object to a Rust reference: the checks
//! every entry point runs first.
//!
//! An opaque object is a C-sized array of 64-bit words holding a Rust value
//! behind a magic word. Its `_init` function writes both; every other call
//! checks the pointer (not null, aligned) and the magic before it forms a
//! reference, so a zeroed, uninitialised or released object is refused with
//! an error instead of being read as a Rust value.

use core::mem::{align_of, size_of};

use crate::error::{gupio_error, Fail};

/// A Rust value behind a magic word, laid out at the start of its opaque
/// C storage.
#[repr(C)]
pub(crate) struct Cell<T> {
    magic: u64,
    pub(crate) value: T,
}

/// What an opaque C type holds: its magic word and its Rust value.
pub(crate) trait Opaque: Sized {
    /// The Rust value inside.
    type Value;
    /// The magic word of an initialised object ("gupio" + a type letter).
    const MAGIC: u64;
    /// Checked at compile time: the value fits the C storage.
    const FITS: () = assert!(
        size_of::<Cell<Self::Value>>() <= size_of::<Self>()
            && align_of::<Cell<Self::Value>>() <= align_of::<Self>()
    );
}

/// Checks `ptr` for null and alignment.
pub(crate) fn check_ptr<T>(ptr: *const T) -> Result<(), Fail> {
    if ptr.is_null() {
        return Err(gupio_error::GUPIO_ERR_NULL_POINTER.into());
    }
    if !ptr.is_aligned() {
        return Err(gupio_error::GUPIO_ERR_MISALIGNED_POINTER.into());
    }
    Ok(())
}

/// Writes a fresh object into `ptr`, whatever it held.
///
/// # Safety
/// `ptr` is null or valid for writes of `O` (it need not be initialised).
/// If it held an initialised object, that object is overwritten without
/// being dropped: the caller must have released what it held.
pub(crate) unsafe fn init<O: Opaque>(ptr: *mut O, value: O::Value) -> Result<(), Fail> {
    let () = O::FITS;
    check_ptr(ptr)?;
    let cell = ptr.cast::<Cell<O::Value>>();
    // SAFETY: `ptr` is valid for writes of `O`, which is at least as large
    // and as aligned as the cell (`FITS`), and it is not null and aligned.
    unsafe {
        cell.write(Cell {
            magic: O::MAGIC,
            value,
        });
    }
    Ok(())
}

/// The value of an initialised object, shared.
///
/// # Safety
/// `ptr` is null or valid for reads of `O` for `'a`, and when it holds
/// `O::MAGIC` it was initialised by `init` and no `&mut` to it exists
/// during `'a`.
pub(crate) unsafe fn get<'a, O: Opaque>(ptr: *const O) -> Result<&'a O::Value, Fail> {
    let () = O::FITS;
    check_ptr(ptr)?;
    let cell = ptr.cast::<Cell<O::Value>>();
    // SAFETY: `ptr` is valid for reads of `O`, non-null and aligned; the
    // magic word is the cell's first field, a plain integer.
    let magic = unsafe { core::ptr::addr_of!((*cell).magic).read() };
    if magic != O::MAGIC {
        return Err(gupio_error::GUPIO_ERR_NOT_INITIALIZED.into());
    }
    // SAFETY: the magic says `init` wrote a `Cell<O::Value>` here, and the
    // caller guarantees no `&mut` to it for `'a`.
    Ok(unsafe { &(*cell).value })
}

/// The value of an initialised object, exclusive.
///
/// # Safety
/// As `get`, and no other reference to the object exists during `'a`.
pub(crate) unsafe fn get_mut<'a, O: Opaque>(ptr: *mut O) -> Result<&'a mut O::Value, Fail> {
    // SAFETY: forwarded: the caller's guarantees are `get`'s and more.
    unsafe { get::<O>(ptr)? };
    let cell = ptr.cast::<Cell<O::Value>>();
    // SAFETY: `get` checked the pointer and the magic; the caller guarantees
    // exclusive access for `'a`.
    Ok(unsafe { &mut (*cell).value })
}
