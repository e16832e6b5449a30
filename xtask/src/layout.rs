//! Where things are in the repository, and what the steps discover there:
//! the `no_std` library crates and the loom models.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Crates under `crates/` that are not `no_std` libraries even if their
/// `lib.rs` mentions it: the std-only host harness and the bare-metal demo
/// kernel, which only builds for its own target.
const NOT_CORE_CRATES: &[&str] = &["host", "demo-kernel"];

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

/// A crate under `crates/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crate {
    /// Its package name (for `-p`).
    pub package: String,
    /// Its directory.
    pub dir: PathBuf,
}

/// A loom model: `crates/<dir>/tests/loom_<name>.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoomModel {
    /// The package the test belongs to.
    pub package: String,
    /// The integration test's name (for `--test`).
    pub test: String,
}

/// Every crate `crates/<dir>/` with a `Cargo.toml`, sorted by directory.
fn crates(root: &Path) -> Result<Vec<Crate>, String> {
    let mut crates = Vec::new();
    for dir in sorted_dir(&root.join("crates"))? {
        let manifest_path = dir.join("Cargo.toml");
        if !manifest_path.is_file() {
            continue;
        }
        let manifest = read(&manifest_path)?;
        let package = package_name(&manifest)
            .ok_or_else(|| format!("{} has no [package] name", manifest_path.display()))?;
        crates.push(Crate { package, dir });
    }
    Ok(crates)
}

/// The `no_std` library crates: those whose `src/lib.rs` has a `no_std`
/// crate attribute, minus [`NOT_CORE_CRATES`].
pub fn no_std_crates(root: &Path) -> Result<Vec<Crate>, String> {
    let mut found = Vec::new();
    for krate in crates(root)? {
        let excluded = krate
            .dir
            .file_name()
            .is_some_and(|name| NOT_CORE_CRATES.iter().any(|&n| name == n));
        let lib = krate.dir.join("src/lib.rs");
        if excluded || !lib.is_file() {
            continue;
        }
        if has_no_std_attribute(&read(&lib)?) {
            found.push(krate);
        }
    }
    if found.is_empty() {
        return Err(format!(
            "no no_std library crate found under {}",
            root.join("crates").display()
        ));
    }
    Ok(found)
}

/// Every `crates/*/tests/loom_*.rs`.
pub fn loom_models(root: &Path) -> Result<Vec<LoomModel>, String> {
    let mut models = Vec::new();
    for krate in crates(root)? {
        let tests = krate.dir.join("tests");
        if !tests.is_dir() {
            continue;
        }
        for file in sorted_dir(&tests)? {
            let is_model = file.extension().is_some_and(|ext| ext == "rs")
                && file
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .is_some_and(|stem| stem.starts_with("loom_"));
            if is_model {
                let test = file
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .unwrap_or_default()
                    .to_owned();
                models.push(LoomModel {
                    package: krate.package.clone(),
                    test,
                });
            }
        }
    }
    Ok(models)
}

/// Whether a crate root has an inner attribute naming `no_std` (plain or
/// under `cfg_attr`).
fn has_no_std_attribute(lib_rs: &str) -> bool {
    lib_rs.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("#![") && line.contains("no_std")
    })
}

/// The `name` of the `[package]` table of a manifest.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if !in_package {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "name" {
            let value = value.trim();
            let value = value.split('#').next().unwrap_or(value).trim();
            return value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_owned);
        }
    }
    None
}

/// The entries of `dir`, sorted; an absent directory has none.
fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("gupio-xtask-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }

        fn add_crate(&self, dir: &str, package: &str, lib_rs: &str) {
            self.write(
                &format!("crates/{dir}/Cargo.toml"),
                &format!("[package]\nname = \"{package}\"\n\n[dependencies]\nname = \"x\"\n"),
            );
            self.write(&format!("crates/{dir}/src/lib.rs"), lib_rs);
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn package_name_comes_from_the_package_table() {
        let manifest = "[workspace]\nname = \"no\"\n[package]\n# name = \"comment\"\n\
                        name = \"gupio-pfn\" # trailing\nversion = \"0.1.0\"\n";
        assert_eq!(package_name(manifest).as_deref(), Some("gupio-pfn"));
        assert_eq!(package_name("[workspace]\nmembers = []\n"), None);
    }

    #[test]
    fn no_std_discovery_skips_std_crates_and_the_host_and_demo_kernel() {
        let scratch = Scratch::new("no-std");
        scratch.add_crate(
            "pfn",
            "gupio-pfn",
            "//! x\n#![cfg_attr(not(test), no_std)]\n",
        );
        scratch.add_crate("sync", "gupio-sync", "#![no_std]\n");
        scratch.add_crate("host", "gupio-host", "#![no_std]\n");
        scratch.add_crate("demo-kernel", "gupio-demo-kernel", "#![no_std]\n");
        scratch.add_crate("tool", "gupio-tool", "//! Mentions no_std only in prose.\n");
        let packages: Vec<String> = no_std_crates(&scratch.0)
            .unwrap()
            .into_iter()
            .map(|c| c.package)
            .collect();
        assert_eq!(packages, ["gupio-pfn", "gupio-sync"]);
    }

    #[test]
    fn no_std_discovery_fails_when_nothing_is_found() {
        let scratch = Scratch::new("empty");
        assert!(no_std_crates(&scratch.0).is_err());
    }

    #[test]
    fn loom_models_are_found_by_file_name() {
        let scratch = Scratch::new("loom");
        scratch.add_crate("pin", "gupio-pin", "#![no_std]\n");
        scratch.write("crates/pin/tests/loom_unpin.rs", "");
        scratch.write("crates/pin/tests/loom_overflow.rs", "");
        scratch.write("crates/pin/tests/pin_api.rs", "");
        scratch.write("crates/pin/tests/loom_notes.txt", "");
        let models = loom_models(&scratch.0).unwrap();
        let names: Vec<(&str, &str)> = models
            .iter()
            .map(|m| (m.package.as_str(), m.test.as_str()))
            .collect();
        assert_eq!(
            names,
            [("gupio-pin", "loom_overflow"), ("gupio-pin", "loom_unpin")]
        );
    }

    #[test]
    fn this_repository_has_pfn_and_sync_as_no_std_crates() {
        let packages: Vec<String> = no_std_crates(root())
            .unwrap()
            .into_iter()
            .map(|c| c.package)
            .collect();
        assert!(packages.iter().any(|p| p == "gupio-pfn"), "{packages:?}");
        assert!(packages.iter().any(|p| p == "gupio-sync"), "{packages:?}");
    }
}
