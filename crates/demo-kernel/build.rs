//! Links the kernel with its own linker script.
//!
//! The script is passed by absolute path, so the link does not depend on the
//! directory cargo runs the linker in.

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rustc-link-arg-bins=-T{manifest_dir}/linker.ld");
}
