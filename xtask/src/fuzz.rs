//! `cargo xtask fuzz`: runs cargo fuzz on one target or on all, for a bounded
//! time each.
//!
//! The committed seeds (`fuzz/seeds/<target>/`) are read-only inputs; what
//! libFuzzer finds goes to `fuzz/corpus/<target>/` (gitignored), which is
//! passed first so that new entries land there. A crash fails the step and
//! names the artifact that reproduces it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use lexopt::prelude::*;

use crate::cli::{self, Args};
use crate::cmd::Cmd;
use crate::layout;
use crate::step::Failure;
use crate::step::Runner;
use crate::tools::{self, Tool};

/// Usage line.
pub const USAGE: &str = "  fuzz [--seconds N] [TARGET]
      cargo fuzz on TARGET, or on every target `cargo fuzz list` shows, for
      N seconds each (default 60); nightly with AddressSanitizer when the
      pinned nightly is installed, stable without a sanitizer otherwise";

/// Seconds per target when `--seconds` is not given.
const DEFAULT_SECONDS: u64 = 60;

/// What to fuzz and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Wall-clock budget per target.
    pub seconds: u64,
    /// One target, or every target when `None`.
    pub target: Option<String>,
}

/// How the fuzz targets are built.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Build {
    /// On the nightly toolchain with AddressSanitizer.
    NightlyAsan(String),
    /// On the pinned stable toolchain, coverage only (`-s none`).
    StableNoSanitizer,
}

impl Build {
    fn detect() -> Self {
        match Tool::Nightly.check() {
            Ok(()) => Self::NightlyAsan(tools::nightly()),
            Err(missing) => {
                println!(
                    "note: {} is not installed: fuzzing on stable without a sanitizer",
                    missing.tool
                );
                Self::StableNoSanitizer
            }
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::NightlyAsan(_) => "nightly, ASan",
            Self::StableNoSanitizer => "stable, no sanitizer",
        }
    }

    /// `cargo [+nightly] fuzz run --sanitizer ...` with debug assertions
    /// (and so overflow checks) on.
    fn cargo_fuzz_run(&self) -> Cmd {
        let cmd = match self {
            Self::NightlyAsan(nightly) => Cmd::cargo().arg(format!("+{nightly}")).args([
                "fuzz",
                "run",
                "--sanitizer",
                "address",
            ]),
            Self::StableNoSanitizer => Cmd::cargo().args(["fuzz", "run", "--sanitizer", "none"]),
        };
        cmd.arg("--debug-assertions")
    }
}

/// Parses `fuzz`'s arguments and runs it.
pub fn main(runner: &mut Runner, mut args: Args) -> Result<(), Failure> {
    let mut options = Options {
        seconds: DEFAULT_SECONDS,
        target: None,
    };
    while let Some(arg) = args.next()? {
        match arg {
            Long("seconds") => options.seconds = cli::count(&mut args, "--seconds")?,
            Value(target) if options.target.is_none() => options.target = Some(target.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    run(runner, &options)
}

/// Fuzzes the chosen targets, one step each.
pub fn run(runner: &mut Runner, options: &Options) -> Result<(), Failure> {
    let mut targets = Vec::new();
    runner.step("fuzz target list", &[Tool::CargoFuzz], |_| {
        targets = list_targets(options.target.as_deref())?;
        Ok(())
    })?;

    let build = Build::detect();
    for target in &targets {
        let name = format!("fuzz {target} ({}s, {})", options.seconds, build.describe());
        runner.step(&name, &[Tool::CargoFuzz], |_| {
            fuzz_target(&build, target, options.seconds)
        })?;
    }
    Ok(())
}

/// The targets `cargo fuzz list` shows, or just `only` if it is one of them.
fn list_targets(only: Option<&str>) -> Result<Vec<String>, String> {
    let listed = Cmd::cargo().args(["fuzz", "list"]).read()?;
    let all: Vec<String> = listed
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    if all.is_empty() {
        return Err("`cargo fuzz list` shows no target".to_owned());
    }
    match only {
        None => Ok(all),
        Some(wanted) if all.iter().any(|t| t == wanted) => Ok(vec![wanted.to_owned()]),
        Some(wanted) => Err(format!(
            "no fuzz target `{wanted}`; there are: {}",
            all.join(", ")
        )),
    }
}

/// Runs one target for `seconds`; on a crash, names the new artifacts.
fn fuzz_target(build: &Build, target: &str, seconds: u64) -> Result<(), String> {
    let fuzz_dir = layout::root().join("fuzz");
    let corpus = fuzz_dir.join("corpus").join(target);
    let seeds = fuzz_dir.join("seeds").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    fs::create_dir_all(&corpus).map_err(|e| format!("cannot create {}: {e}", corpus.display()))?;
    if !seeds.is_dir() {
        return Err(format!("{} is missing", layout::display(&seeds)));
    }

    let before = artifact_times(&artifacts);
    let result = build
        .cargo_fuzz_run()
        .args([
            target.to_owned(),
            layout::display(&corpus),
            layout::display(&seeds),
        ])
        .args(["--".to_owned(), format!("-max_total_time={seconds}")])
        .run();
    let Err(error) = result else {
        return Ok(());
    };
    // libFuzzer names an artifact after its contents' hash, so a crash found
    // before is rewritten in place: look for new or rewritten files.
    let found: Vec<String> = artifact_times(&artifacts)
        .into_iter()
        .filter(|(path, modified)| before.get(path).is_none_or(|old| modified > old))
        .map(|(path, _)| layout::display(&path))
        .collect();
    let Some(first) = found.first() else {
        return Err(error);
    };
    let reproduce = build.cargo_fuzz_run().args([target, first.as_str()]);
    Err(format!(
        "cargo fuzz found {} failing input(s): {}; reproduce with `{reproduce}`",
        found.len(),
        found.join(", ")
    ))
}

/// The files directly in `dir` with their modification times (none if it
/// does not exist).
fn artifact_times(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            let modified = metadata.modified().ok()?;
            metadata.is_file().then(|| (entry.path(), modified))
        })
        .collect()
}
