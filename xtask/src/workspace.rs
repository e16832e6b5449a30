//! What the steps discover in the workspace (through `cargo metadata`): the
//! `no_std` library crates and the loom models.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::cmd::Cmd;
use crate::layout;

/// Crates under `crates/` that are not `no_std` libraries even if their
/// `lib.rs` mentions it: the std-only host harness and the bare-metal demo
/// kernel, which only builds for its own target.
const NOT_CORE_CRATES: &[&str] = &["host", "demo-kernel"];

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

/// What `cargo metadata` says of the workspace (the fields xtask reads).
#[derive(Clone, Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

/// A workspace member.
#[derive(Clone, Debug, Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

/// A build target of a package (its library, a test, a bench...).
#[derive(Clone, Debug, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
    src_path: PathBuf,
}

impl Package {
    fn dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(&self.manifest_path)
    }

    fn targets_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Target> + 'a {
        self.targets
            .iter()
            .filter(move |target| target.kind.iter().any(|k| k == kind))
    }
}

/// The workspace members under `root/crates/`, sorted by directory, from
/// `cargo metadata --no-deps` (read once per run for the repository).
fn crates(root: &Path) -> Result<Vec<Package>, String> {
    static REPOSITORY: OnceLock<Result<Vec<Package>, String>> = OnceLock::new();
    if root == layout::root() {
        REPOSITORY.get_or_init(|| query_crates(root)).clone()
    } else {
        query_crates(root)
    }
}

fn query_crates(root: &Path) -> Result<Vec<Package>, String> {
    let manifest = root.join("Cargo.toml");
    let json = Cmd::cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest.to_string_lossy())
        .read()?;
    let metadata: Metadata = serde_json::from_str(&json)
        .map_err(|e| format!("cannot read `cargo metadata`'s output: {e}"))?;
    let crates_dir = root.join("crates");
    let mut packages: Vec<Package> = metadata
        .packages
        .into_iter()
        .filter(|package| package.dir().starts_with(&crates_dir))
        .collect();
    packages.sort_by(|a, b| a.dir().cmp(b.dir()));
    Ok(packages)
}

/// The `no_std` library crates: those whose library root has a `no_std`
/// crate attribute, minus [`NOT_CORE_CRATES`].
pub fn no_std_crates(root: &Path) -> Result<Vec<Crate>, String> {
    let mut found = Vec::new();
    for package in crates(root)? {
        let excluded = package
            .dir()
            .file_name()
            .is_some_and(|name| NOT_CORE_CRATES.iter().any(|&n| name == n));
        let Some(lib) = package.targets_of_kind("lib").next() else {
            continue;
        };
        if !excluded && has_no_std_attribute(&read(&lib.src_path)?) {
            found.push(Crate {
                package: package.name.clone(),
                dir: package.dir().to_path_buf(),
            });
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

/// Every integration test named `loom_*` of a crate under `crates/`.
pub fn loom_models(root: &Path) -> Result<Vec<LoomModel>, String> {
    let mut models = Vec::new();
    for package in crates(root)? {
        let mut tests: Vec<&Target> = package
            .targets_of_kind("test")
            .filter(|test| test.name.starts_with("loom_"))
            .collect();
        tests.sort_by(|a, b| a.name.cmp(&b.name));
        models.extend(tests.into_iter().map(|test| LoomModel {
            package: package.name.clone(),
            test: test.name.clone(),
        }));
    }
    Ok(models)
}

/// Whether a crate root has an inner attribute naming `no_std` (plain or
/// under `cfg_attr`). By hand: cargo does not record it, and a line scan
/// of the crate root's attributes is all it takes.
fn has_no_std_attribute(lib_rs: &str) -> bool {
    lib_rs.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("#![") && line.contains("no_std")
    })
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

        /// A workspace of the crates under `crates/`, without the demo
        /// kernel (as in the repository).
        fn workspace(name: &str) -> Self {
            let scratch = Self::new(name);
            scratch.write(
                "Cargo.toml",
                "[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\"]\n\
                 exclude = [\"crates/demo-kernel\"]\n",
            );
            scratch
        }

        fn add_crate(&self, dir: &str, package: &str, lib_rs: &str) {
            self.write(
                &format!("crates/{dir}/Cargo.toml"),
                &format!(
                    "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"
                ),
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
    fn no_std_discovery_skips_std_crates_and_the_host_and_demo_kernel() {
        let scratch = Scratch::workspace("no-std");
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
        let scratch = Scratch::workspace("empty");
        scratch.add_crate("tool", "gupio-tool", "//! std only.\n");
        assert!(no_std_crates(&scratch.0).is_err());
    }

    #[test]
    fn loom_models_are_found_by_file_name() {
        let scratch = Scratch::workspace("loom");
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
        let packages: Vec<String> = no_std_crates(layout::root())
            .unwrap()
            .into_iter()
            .map(|c| c.package)
            .collect();
        assert!(packages.iter().any(|p| p == "gupio-pfn"), "{packages:?}");
        assert!(packages.iter().any(|p| p == "gupio-sync"), "{packages:?}");
    }
}
