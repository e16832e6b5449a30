//! The checks behind gupio's fuzz targets, one module per target.
//!
//! Each module exposes `run(data: &[u8])`, which panics on a finding. The
//! libFuzzer binaries under `fuzz_targets/` only forward their input here, so
//! the same checks run on stable in `tests/replay.rs`, which feeds every
//! committed seed under `seeds/<target>/` through [`run_target`]. Adding a
//! target is a module below plus one arm in [`run_target`].

pub mod bio_builder;
pub mod pfn_encoding;
pub mod pin_release;

/// Runs the checks of the fuzz target `name` on `data`.
///
/// Returns `false`, without running anything, when no target has that name.
/// Panics when the checks find a bug: that is the finding.
///
/// ```
/// assert!(gupio_fuzz::run_target("pfn_encoding", &[0; 8]));
/// assert!(!gupio_fuzz::run_target("no_such_target", &[]));
/// ```
pub fn run_target(name: &str, data: &[u8]) -> bool {
    match name {
        "bio_builder" => bio_builder::run(data),
        "pfn_encoding" => pfn_encoding::run(data),
        "pin_release" => pin_release::run(data),
        _ => return false,
    }
    true
}

/// splitmix64: the modules' tests draw inputs beyond the committed seeds
/// from it.
#[cfg(test)]
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
