//! `cargo xtask bench`: the performance report of the README's targets.
//!
//! Three steps, each a `cargo bench` of one bench target of `gupio`
//! (release build, the ordinary target directory):
//! 1. **atomics**: built with the `rmw-stats` feature, counts the atomic
//!    read-modify-writes per page of every scenario (deterministic) and
//!    writes `target/gupio-bench/atomics.tsv`. A build of its own, because
//!    the counter adds an atomic per counted one and must never be timed.
//! 2. **report**: times every scenario against its floor in one process,
//!    and, on Linux, the host kernel's own pin path (io_uring buffer
//!    registration, its backing and pin counts checked first) beside gupio's
//!    (the `linux` group; skipped with the reason where io_uring is not
//!    usable); prints the table with the counts and Linux's figures, and
//!    writes `target/gupio-bench/report.json`.
//! 3. **micro**: the divan microbenchmarks, each held to a short time
//!    (skipped with `--no-micro`).

use lexopt::prelude::*;
use serde::Deserialize;

use crate::cli::{self, Args};
use crate::cmd::Cmd;
use crate::layout;
use crate::step::Failure;
use crate::step::Runner;

/// Usage line.
pub const USAGE: &str = "  bench [--samples N] [--no-micro] [--instructions] [--only GROUP]...
      release-build benchmarks of the README's performance targets: counts atomics per page
      (rmw-stats build), times every scenario against its floor and the host
      kernel's io_uring buffer registration against gupio (Linux only), prints
      the table and writes target/gupio-bench/report.json (N samples per
      scenario, default 51), then runs the divan microbenchmarks unless
      --no-micro; --only times just the GROUPs (encoding, pbr, linux, query,
      scaling, gup) and writes report-only.json instead; --instructions counts
      instructions per page under callgrind instead of timing";

/// Seconds divan may spend on each microbenchmark.
const MICRO_MAX_SECONDS: &str = "0.5";

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Samples per report scenario, or the report's default.
    pub samples: Option<u64>,
    /// Whether to run the divan microbenchmarks.
    pub micro: bool,
    /// Count instructions per page under callgrind instead of timing.
    pub instructions: bool,
    /// The report's groups to time (`--only`, passed on); all when empty.
    pub only: Vec<String>,
}

/// Parses `bench`'s arguments and runs it.
pub fn main(runner: &mut Runner, args: Args) -> Result<(), Failure> {
    run(runner, &parse(args)?)
}

fn parse(mut args: Args) -> Result<Options, Failure> {
    let mut options = Options {
        samples: None,
        micro: true,
        instructions: false,
        only: Vec::new(),
    };
    while let Some(arg) = args.next()? {
        match arg {
            Long("samples") => options.samples = Some(cli::count(&mut args, "--samples")?),
            Long("no-micro") => options.micro = false,
            Long("instructions") => options.instructions = true,
            Long("only") => options.only.push(cli::string(&mut args)?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(options)
}

/// Runs the benchmark steps.
pub fn run(runner: &mut Runner, options: &Options) -> Result<(), Failure> {
    if options.instructions {
        return runner.step("bench instructions (callgrind)", &[], |log| {
            let table = instructions()?;
            println!("{table}");
            log.note("instructions per 4 KiB page, counted inside the scenario only");
            Ok(())
        });
    }
    runner.step("bench atomics (rmw-stats build)", &[], |_| atomics().run())?;
    runner.step("bench report", &[], |log| {
        report(options.samples, &options.only).run()?;
        // A partial run writes a file of its own, never the full report.
        let file = if options.only.is_empty() {
            "report.json"
        } else {
            "report-only.json"
        };
        let json = layout::target_dir().join("gupio-bench").join(file);
        log.note(&format!("wrote {}", layout::display(&json)));
        Ok(())
    })?;
    if options.micro {
        runner.step("bench micro (divan)", &[], |_| micro().run())?;
    } else {
        println!("\n!!! SKIPPED bench micro (divan): --no-micro");
    }
    Ok(())
}

/// The counting build: gupio-pin's global counter on.
fn atomics() -> Cmd {
    Cmd::cargo().args([
        "bench",
        "-p",
        "gupio",
        "--features",
        "rmw-stats",
        "--bench",
        "atomics",
    ])
}

/// The timed report, without the counter.
fn report(samples: Option<u64>, only: &[String]) -> Cmd {
    let mut cmd = Cmd::cargo().args(["bench", "-p", "gupio", "--bench", "report"]);
    if samples.is_none() && only.is_empty() {
        return cmd;
    }
    cmd = cmd.arg("--");
    if let Some(samples) = samples {
        cmd = cmd.arg("--samples").arg(samples.to_string());
    }
    for group in only {
        cmd = cmd.arg("--only").arg(group.as_str());
    }
    cmd
}

/// Pages and repetitions of each counted scenario: 80 Ki pages in all, in
/// bios of 256 pages (small) or 2 MiB folios.
const COUNT_PAGES: usize = 4096;
const COUNT_REPETITIONS: usize = 20;

/// Builds the `instructions` bench binary, runs each scenario under
/// callgrind with collection only inside the scenario function, and returns
/// the table of instructions per page.
fn instructions() -> Result<String, String> {
    if Cmd::new("valgrind").arg("--version").probe().is_none() {
        return Err("valgrind is not installed (Debian: `apt-get install -y valgrind`)".to_owned());
    }
    let built = Cmd::cargo()
        .args([
            "bench",
            "-p",
            "gupio",
            "--bench",
            "instructions",
            "--no-run",
            "--message-format=json",
        ])
        .read()?;
    let binary =
        instructions_binary(&built).ok_or("cargo did not report the instructions binary")?;
    let out = layout::target_dir().join("gupio-bench");
    let mut table = String::from("scenario (4 KiB pages)     instructions/page\n");
    for (scenario, what) in [
        ("floor", "floor"),
        ("small", "gupio, 4 KiB pages"),
        ("thp", "gupio, 2 MiB folios"),
    ] {
        let file = out.join(format!("callgrind.{scenario}.out"));
        let (ok, text) = Cmd::new("valgrind")
            .args([
                "--tool=callgrind",
                "--toggle-collect=*dio_write*",
                "--toggle-collect=*pin_build_release*",
            ])
            .arg(format!("--callgrind-out-file={}", layout::display(&file)))
            .arg(binary.as_str())
            .args([
                scenario,
                &COUNT_PAGES.to_string(),
                &COUNT_REPETITIONS.to_string(),
            ])
            .outcome()?;
        if !ok {
            return Err(format!("callgrind run of {scenario} failed:\n{text}"));
        }
        let collected = text
            .lines()
            .find_map(|line| line.split("Collected :").nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no instruction count in callgrind's output:\n{text}"))?;
        let pages = (COUNT_PAGES * COUNT_REPETITIONS) as f64;
        table.push_str(&format!("{what:<26} {:>10.1}\n", collected as f64 / pages));
    }
    Ok(table)
}

/// One line of cargo's `--message-format=json` (the fields read here).
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    target: Option<MessageTarget>,
    executable: Option<String>,
}

#[derive(Deserialize)]
struct MessageTarget {
    name: String,
}

/// The `instructions` bench binary among cargo's JSON messages.
fn instructions_binary(messages: &str) -> Option<String> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<CargoMessage>(line).ok())
        .filter(|message| message.reason == "compiler-artifact")
        .filter(|message| {
            message
                .target
                .as_ref()
                .is_some_and(|t| t.name == "instructions")
        })
        .find_map(|message| message.executable)
}

/// The divan microbenchmarks, each held to [`MICRO_MAX_SECONDS`].
fn micro() -> Cmd {
    Cmd::cargo().args([
        "bench",
        "-p",
        "gupio",
        "--bench",
        "micro",
        "--",
        "--max-time",
        MICRO_MAX_SECONDS,
    ])
}

#[cfg(test)]
mod tests;
