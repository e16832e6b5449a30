//! Divan microbenchmarks of gupio's hot operations, one call each.
//!
//! `cargo bench -p gupio --bench micro` (`-- --help` for divan's options).
//! The `report` bench has the per-page figures against the floor; these
//! show single operations for quick comparisons while changing code.

mod common;

fn main() {
    divan::main();
}
