//! Where things are in the repository: its root, the target directory, and
//! paths as printed.

use std::path::{Path, PathBuf};

/// The repository root (the parent of `xtask/`).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one directory below the repository root")
}

/// The cargo target directory of ordinary builds: `$CARGO_TARGET_DIR`
/// (relative to the root) if set, else `target/`. Builds with other
/// `RUSTFLAGS` (loom) or another toolchain (miri) go in subdirectories of it
/// so they never invalidate the ordinary build.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// `path` relative to the root when it is inside it, for printing.
pub fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
