//! gupio's build, test, fuzz and CI entry point: `cargo xtask <subcommand>`.
//!
//! Std-only, with a few small host crates for what is not gupio's own
//! business: `lexopt` reads the command line, `duct` runs the commands,
//! `serde_json` reads cargo's JSON, `object` and `rustc-demangle` read
//! the demo kernel's ELF. Every subcommand is a sequence of named steps. A step checks that the tools
//! it needs are installed, prints each command before it runs it, and is
//! timed; the first failing step stops the run and is named. A step whose tool
//! is missing fails with the command that installs it, or, under
//! `--allow-skip`, is reported loudly as skipped. Every run ends with a table
//! of its steps and a one-line count.

mod bench;
mod capi;
mod ci;
mod cli;
mod cmd;
mod demo;
mod fuzz;
mod layout;
mod mutants;
mod qemu;
mod step;
mod test;
mod tools;
mod workspace;

use std::process::ExitCode;

use cli::Args;
use lexopt::prelude::*;
use step::{Failure, Runner};

/// One `cargo xtask` subcommand.
struct Subcommand {
    /// The name typed after `cargo xtask`.
    name: &'static str,
    /// Its arguments and what it does, for the usage text.
    usage: &'static str,
    /// Parses the remaining arguments and runs the steps.
    run: fn(&mut Runner, Args) -> Result<(), Failure>,
}

impl Subcommand {
    const fn new(
        name: &'static str,
        usage: &'static str,
        run: fn(&mut Runner, Args) -> Result<(), Failure>,
    ) -> Self {
        Self { name, usage, run }
    }
}

/// Every subcommand, in the order the usage text lists them. Adding one is
/// one line here (and its module).
const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand::new("test", test::USAGE, test::main),
    Subcommand::new("demo", demo::USAGE, demo::main),
    Subcommand::new("fuzz", fuzz::USAGE, fuzz::main),
    Subcommand::new("qemu", qemu::USAGE, qemu::main),
    Subcommand::new("bench", bench::USAGE, bench::main),
    Subcommand::new("mutants", mutants::USAGE, mutants::main),
    Subcommand::new("ci", ci::USAGE, ci::main),
];

fn usage() -> String {
    let mut text = String::from("usage: cargo xtask <subcommand> [options]\n\nsubcommands:\n");
    for subcommand in SUBCOMMANDS {
        text.push_str(subcommand.usage);
        text.push('\n');
    }
    text.push_str("  help\n      print this text\n");
    text.push_str(&format!(
        "\nenvironment:\n  {}  nightly toolchain for miri and fuzzing (default: {})\n  \
         LOOM_MAX_PREEMPTIONS, MIRIFLAGS  passed on to loom and miri when set\n",
        tools::NIGHTLY_OVERRIDE,
        tools::pinned_nightly(),
    ));
    text
}

fn main() -> ExitCode {
    const USAGE_ERROR: u8 = 2;

    let mut args = cli::from_env();
    let name = match args.next() {
        Ok(Some(Value(name))) => name.to_string_lossy().into_owned(),
        Ok(Some(Long("help") | Short('h'))) => "help".to_owned(),
        Ok(None) => {
            eprint!("{}", usage());
            return ExitCode::from(USAGE_ERROR);
        }
        Ok(Some(arg)) => {
            let message = arg.unexpected();
            eprintln!(
                "error: {message} (the subcommand comes first)\n\n{}",
                usage()
            );
            return ExitCode::from(USAGE_ERROR);
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{}", usage());
            return ExitCode::from(USAGE_ERROR);
        }
    };
    if name == "help" {
        print!("{}", usage());
        return ExitCode::from(USAGE_ERROR);
    }
    let Some(subcommand) = SUBCOMMANDS.iter().find(|s| s.name == name) else {
        eprintln!("error: unknown subcommand `{name}`\n\n{}", usage());
        return ExitCode::from(USAGE_ERROR);
    };

    let mut runner = Runner::new();
    let result = (subcommand.run)(&mut runner, args);
    if let Err(Failure::Usage(message)) = &result {
        eprintln!("error: {message}\n\n{}", usage());
        return ExitCode::from(USAGE_ERROR);
    }
    runner.print_summary(&format!("cargo xtask {name}"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
