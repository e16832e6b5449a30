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
mod tests;
