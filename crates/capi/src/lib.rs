//! gupio's C ABI: page-origin tracking for a kernel written in C.
//!
//! A C kernel links the static library this crate builds and includes the
//! header generated from it (`include/gupio.h`). Every entry point is an
//! `extern "C"` function named `gupio_*` that checks its arguments (null
//! pointers included), returns a negative errno-style code on failure and
//! writes the cause, a `gupio_error`, through its optional last argument.
//! No entry point panics on bad input and no panic unwinds across the ABI.
//!
//! The kernel describes its machine with two callback tables:
//! `gupio_page_ops` (frame number to counters, the zero page, freeing a
//! folio, the warn hook, pin accounting, optional lock and dirty hooks),
//! from which `gupio_tracker_init` builds a tracker, and
//! `gupio_address_space` (translate by runs, fault-in, the mapping kind)
//! for `pin_user_pages`. The objects a C caller must not copy
//! (`gupio_tracker`, `gupio_bio`, `gupio_completion`,
//! `gupio_chain_link`, `gupio_deferred_list`, and the
//! `gupio_page_counters` a `struct page` embeds) are opaque arrays of
//! 64-bit words whose size and alignment the header states, so the kernel
//! places them wherever it likes, statically or inside its own structures;
//! gupio never allocates.
//!
//! The `unsafe` of the whole workspace's C boundary is confined here: raw
//! pointers from C become references only after the checks in `cell`,
//! and the rest is gupio's safe API.
#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]
// The C names (`gupio_bio`, `GUPIO_ERR_NULL_POINTER`) are the ABI: the
// header is generated from them and C code spells them so.
#![allow(non_camel_case_types)]

mod bio;
mod cell;
mod completion;
mod error;
mod ops;
mod pages;
#[cfg(all(feature = "panic-handler", not(test)))]
mod panic;
mod space;

pub use bio::*;
pub use completion::*;
pub use error::*;
pub use ops::*;
pub use pages::*;
pub use space::*;

/// The version of the C ABI this library implements: a header and a library
/// whose versions differ must not be mixed.
pub const GUPIO_ABI_VERSION: u32 = 1;

/// The ABI version of the linked library (`GUPIO_ABI_VERSION` when it
/// matches the header).
#[no_mangle]
pub extern "C" fn gupio_abi_version() -> u32 {
    GUPIO_ABI_VERSION
}

extern "C" {
    /// The kernel's panic hook, called only by a static library built with
    /// the `panic-handler` feature, and only for a bug in gupio (no call
    /// panics on bad input): print `file`:`line` (`file` is `file_len`
    /// bytes, not NUL-terminated) and stop the machine. Never returns. A
    /// kernel that links the library without the feature need not define it.
    pub fn gupio_panic(file: *const u8, file_len: usize, line: u32) -> !;
}

#[cfg(test)]
mod tests;
