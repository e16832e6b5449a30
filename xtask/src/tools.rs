//! The tools steps need, how to tell whether each is installed, and what
//! installs it.

use std::fs;
use std::path::Path;

use crate::cmd::Cmd;

/// The nightly toolchain miri and the fuzzer's sanitizer run on, as written
/// in `ci/nightly-toolchain` (which `ci/install.sh` reads too).
const PINNED_NIGHTLY: &str = include_str!("../../ci/nightly-toolchain");

/// Environment variable that overrides [`PINNED_NIGHTLY`].
pub const NIGHTLY_OVERRIDE: &str = "GUPIO_NIGHTLY";

/// The pinned nightly toolchain's name.
pub fn pinned_nightly() -> &'static str {
    PINNED_NIGHTLY.trim()
}

/// The nightly toolchain to use: `$GUPIO_NIGHTLY`, or the pinned one.
pub fn nightly() -> String {
    match std::env::var(NIGHTLY_OVERRIDE) {
        Ok(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => pinned_nightly().to_owned(),
    }
}

/// The cbindgen release the header is generated with (`ci/install.sh`
/// installs this one; another release may format the header differently).
pub const CBINDGEN_VERSION: &str = "0.29.2";

/// Something a step needs installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    /// rustfmt on the pinned stable toolchain.
    Rustfmt,
    /// clippy on the pinned stable toolchain.
    Clippy,
    /// The standard library of the pinned stable toolchain for a target.
    StableTarget(&'static str),
    /// The nightly toolchain ([`nightly`]).
    Nightly,
    /// miri and rust-src on the nightly toolchain.
    Miri,
    /// The `cargo fuzz` subcommand.
    CargoFuzz,
    /// A program on `PATH`, and the Debian package that provides it.
    Program {
        /// The program's name.
        name: &'static str,
        /// The Debian package to install.
        package: &'static str,
    },
    /// cbindgen at the release the committed C header was generated with.
    Cbindgen,
    /// A program on `PATH` that has no `--version` that exits with 0
    /// (`mkfs.fat`, `fsck.fat`): found by looking for the file.
    Executable {
        /// The program's name.
        name: &'static str,
        /// The Debian package to install.
        package: &'static str,
    },
}

/// A tool that is not installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, in words.
    pub tool: String,
    /// The command that installs just this tool.
    pub install: String,
}

impl Tool {
    /// `Ok` if the tool is installed, else what is missing and how to get it.
    pub fn check(self) -> Result<(), Missing> {
        let nightly = nightly();
        let (installed, tool, install) = match self {
            Self::Rustfmt => (
                Cmd::cargo().args(["fmt", "--version"]).probe().is_some(),
                "rustfmt".to_owned(),
                "rustup component add rustfmt".to_owned(),
            ),
            Self::Clippy => (
                Cmd::cargo().args(["clippy", "--version"]).probe().is_some(),
                "clippy".to_owned(),
                "rustup component add clippy".to_owned(),
            ),
            Self::StableTarget(target) => (
                has_target_std(target),
                format!("the standard library for {target}"),
                format!("rustup target add {target}"),
            ),
            Self::Nightly => (
                Cmd::new("rustc")
                    .arg(format!("+{nightly}"))
                    .arg("--version")
                    .probe()
                    .is_some(),
                format!("the nightly toolchain {nightly}"),
                format!(
                    "rustup toolchain install {nightly} --profile minimal --component miri,rust-src"
                ),
            ),
            Self::Miri => (
                has_miri(&nightly),
                format!("miri or rust-src on {nightly}"),
                format!("rustup component add --toolchain {nightly} miri rust-src"),
            ),
            Self::CargoFuzz => (
                Cmd::cargo().args(["fuzz", "--version"]).probe().is_some(),
                "cargo-fuzz".to_owned(),
                "cargo install cargo-fuzz --locked".to_owned(),
            ),
            Self::Cbindgen => (
                Cmd::new("cbindgen")
                    .arg("--version")
                    .probe()
                    .is_some_and(|v| v.split_whitespace().nth(1) == Some(CBINDGEN_VERSION)),
                format!("cbindgen {}", CBINDGEN_VERSION),
                format!(
                    "cargo install cbindgen --version {} --locked",
                    CBINDGEN_VERSION
                ),
            ),
            Self::Program { name, package } => (
                Cmd::new(name).arg("--version").probe().is_some(),
                name.to_owned(),
                format!("apt-get install -y {package}"),
            ),
            Self::Executable { name, package } => (
                on_path(name),
                name.to_owned(),
                format!("apt-get install -y {package}"),
            ),
        };
        if installed {
            Ok(())
        } else {
            Err(Missing { tool, install })
        }
    }
}

/// Whether the active (pinned) toolchain has `core` built for `target`.
fn has_target_std(target: &str) -> bool {
    let Some(libdir) = Cmd::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .probe()
    else {
        return false;
    };
    contains_file_starting_with(Path::new(libdir.trim()), "libcore-")
}

/// Whether `nightly` has miri and the standard library sources it builds.
fn has_miri(nightly: &str) -> bool {
    let toolchain = format!("+{nightly}");
    let miri = Cmd::cargo()
        .args([toolchain.as_str(), "miri", "--version"])
        .probe()
        .is_some();
    let sysroot = Cmd::new("rustc")
        .args([toolchain.as_str(), "--print", "sysroot"])
        .probe();
    miri && sysroot.is_some_and(|sysroot| {
        Path::new(sysroot.trim())
            .join("lib/rustlib/src/rust/library/core")
            .is_dir()
    })
}

fn contains_file_starting_with(dir: &Path, prefix: &str) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
    })
}

/// Whether a file `name` is in a directory of `PATH` (three lines: the
/// `which` crate would add its own dependencies for them).
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

#[cfg(test)]
mod tests;
