//! The panic handler for a kernel that links gupio as its only Rust code.
//!
//! No entry point panics on bad input: a panic is a bug in gupio. It must
//! not unwind into C (the static library is built with `panic = "abort"`),
//! so it ends in the kernel's `gupio_panic` hook, which never returns.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = info
        .location()
        .map_or(("", 0), |location| (location.file(), location.line()));
    // SAFETY: the kernel provides `gupio_panic` with this signature (the
    // header declares it); `file` is valid for `file.len()` bytes for the
    // call.
    unsafe { crate::gupio_panic(file.as_ptr(), file.len(), line) }
}
