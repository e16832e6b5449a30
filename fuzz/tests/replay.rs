//! Replays every committed seed through its target's checks, on stable.
//!
//! `seeds/<target>/` holds the inputs for the fuzz target `<target>`; this
//! test runs each file through [`gupio_fuzz::run_target`], so a regression
//! that a seed once caught fails `cargo test` without cargo fuzz or nightly.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The entries of `dir`, sorted so failures are reported in a stable order.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    entries.sort();
    entries
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_else(|| panic!("{} has no UTF-8 name", path.display()))
        .to_owned()
}

#[test]
fn every_committed_seed_passes_its_target() {
    let mut replayed = 0;
    let mut failures = Vec::new();
    for target_dir in sorted_entries(&fuzz_dir().join("seeds")) {
        assert!(
            target_dir.is_dir(),
            "{} is not a seeds directory (seeds/<target>/<seed>)",
            target_dir.display()
        );
        let target = file_stem(&target_dir);
        let seeds = sorted_entries(&target_dir);
        assert!(!seeds.is_empty(), "seeds/{target}/ holds no seed");
        for seed in seeds {
            let data = fs::read(&seed)
                .unwrap_or_else(|e| panic!("cannot read seed {}: {e}", seed.display()));
            match panic::catch_unwind(|| gupio_fuzz::run_target(&target, &data)) {
                Ok(true) => replayed += 1,
                Ok(false) => panic!("seeds/{target}/ names no fuzz target"),
                Err(_) => failures.push(seed.display().to_string()),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seeds that fail their target: {failures:#?}"
    );
    assert!(replayed > 0, "no seed was replayed");
    println!("replayed {replayed} seeds");
}

#[test]
fn every_fuzz_target_has_seeds() {
    for binary in sorted_entries(&fuzz_dir().join("fuzz_targets")) {
        let target = file_stem(&binary);
        let seeds = fuzz_dir().join("seeds").join(&target);
        assert!(
            seeds.is_dir(),
            "fuzz target {target} has no seeds directory {}",
            seeds.display()
        );
        assert!(
            gupio_fuzz::run_target(&target, &[]),
            "fuzz target {target} is missing from gupio_fuzz::run_target"
        );
    }
}
