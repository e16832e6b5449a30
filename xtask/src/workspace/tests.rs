use super::*;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gupio-xtask-{name}-{}", std::process::id()));
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
            &format!("[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
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
