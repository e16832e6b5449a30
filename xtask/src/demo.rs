//! `cargo xtask demo`: the end-to-end demo on gupio-host's simulated
//! machine, built in release mode; every option is passed on to it.

use crate::cli::{self, Args};
use crate::cmd::Cmd;
use crate::step::Failure;
use crate::step::Runner;

/// Usage line.
pub const USAGE: &str = "  demo [OPTIONS]
      direct-I/O reads into a shared file mapping racing writeback on the
      simulated machine, without and with gupio's pin tracking (release
      build); prints the table, and fails if the tracked run shows corruption
      or imbalance or deferred a read completion (writeback cleaned a page
      under the DMA), or the untracked run shows no corruption. OPTIONS go to
      gupio-demo: --pages N --ios N --threads N --seed N
      --policy bounce|skip|wait --latency-us N --quiet (--help lists them).
      --scenario dio-write runs the other hazard instead: direct-I/O writes
      from buffers the writers keep changing, to a device that records a
      checksum per block, zero-copy and in each stable mode (bounce,
      write-protect, verify) at 4 KiB and 1 MiB, with throughput and CPU
      time relative to zero-copy; fails if a stable mode leaves a checksum
      mismatch on disk or zero-copy leaves none (--scenario dio-write --help
      lists its options)";

/// Runs the demo with the remaining arguments.
pub fn main(runner: &mut Runner, mut args: Args) -> Result<(), Failure> {
    run(runner, &cli::rest(&mut args)?)
}

/// The demo with its defaults, as a CI stage.
pub fn ci(runner: &mut Runner) -> Result<(), Failure> {
    run(runner, &[])
}

/// The dio-write scenario with its defaults, as a CI stage.
pub fn ci_dio_write(runner: &mut Runner) -> Result<(), Failure> {
    run(runner, &["--scenario".to_owned(), "dio-write".to_owned()])
}

fn run(runner: &mut Runner, args: &[String]) -> Result<(), Failure> {
    runner.step("demo: gupio-demo (release)", &[], |_| command(args).run())
}

/// `cargo run` of the demo binary, passing `args` on.
pub fn command(args: &[String]) -> Cmd {
    Cmd::cargo()
        .args([
            "run",
            "--release",
            "-p",
            "gupio-host",
            "--bin",
            "gupio-demo",
            "--",
        ])
        .args(args.iter().cloned())
}

#[cfg(test)]
mod tests;
