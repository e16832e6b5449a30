//! `cargo xtask ci`: exactly what CI runs once `ci/install.sh` has installed
//! the tools.

use crate::cli::{self, Args};
use crate::step::Failure;
use crate::step::Runner;
use crate::{demo, fuzz, mutants, qemu, test};

/// Usage line.
pub const USAGE: &str = "  ci
      what CI runs after ci/install.sh: test (nothing skipped), then demo,
      then demo --scenario dio-write, then mutants, then fuzz --seconds 30 on every target, then qemu";

/// Seconds of fuzzing per target in CI: enough to shake out shallow bugs
/// while the whole run stays well inside CI's 90 minutes on 2 cores.
const FUZZ_SECONDS: u64 = 30;

/// A CI stage: a name for the banner, and what it runs.
type Stage = (&'static str, fn(&mut Runner) -> Result<(), Failure>);

/// The stages of a CI run, in order: the host demo right after the tests,
/// then fuzzing, then the QEMU boot of the demo kernel.
const STAGES: &[Stage] = &[
    ("test: every check of `cargo xtask test`", test::run),
    (
        "demo: direct I/O racing writeback, without and with gupio",
        demo::ci,
    ),
    (
        "demo: direct-I/O writes from changing buffers, each stable mode",
        demo::ci_dio_write,
    ),
    (
        "mutants: every documented ordering and protocol step, dropped, is caught",
        every_mutant,
    ),
    ("fuzz: every target, briefly", fuzz_every_target),
    ("qemu: the demo kernel on qemu-system-riscv64", qemu::ci),
];

fn every_mutant(runner: &mut Runner) -> Result<(), Failure> {
    mutants::run(runner, None)
}

fn fuzz_every_target(runner: &mut Runner) -> Result<(), Failure> {
    let options = fuzz::Options {
        seconds: FUZZ_SECONDS,
        target: None,
    };
    fuzz::run(runner, &options)
}

/// Parses `ci`'s arguments (there are none) and runs every stage.
pub fn main(runner: &mut Runner, args: Args) -> Result<(), Failure> {
    cli::finish(args)?;
    runner.set_allow_skip(false);
    for (name, stage) in STAGES {
        println!("\n######## ci stage {name}");
        stage(runner)?;
    }
    Ok(())
}
