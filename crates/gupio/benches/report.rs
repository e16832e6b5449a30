//! The performance report of the README's performance targets: every scenario timed in
//! this process against a physical floor timed in the same process, printed
//! as a table and written as JSON to `target/gupio-bench/report.json`.
//!
//! Run it with `cargo xtask bench`, which first runs the `atomics` bench
//! (built with the `rmw-stats` feature) for the deterministic
//! atomics-per-page column; this report reads them from
//! `target/gupio-bench/atomics.tsv`. Timing is never done with the counter
//! compiled in: it adds an atomic per counted one.
//!
//! Method: each scenario is a function returning the 4 KiB pages it moved.
//! A group of scenarios (a floor and what is compared with it) is warmed up,
//! each member calibrated to samples of a few milliseconds, then sampled
//! round-robin, so that a slow phase of a shared machine hits every member
//! alike. Figures are ns per 4 KiB page: median, min and max over the
//! samples; ratios are median over median. The `linux` group times the
//! host kernel's own pin path (io_uring buffer registration) beside gupio's,
//! after checking what it measures (see `linux/mod.rs`). Options after `--`:
//! `--samples N` (default 51), `--only GROUP` (repeatable: encoding, pbr,
//! linux, query, scaling, gup; such a partial run writes `report-only.json`).

mod common;
mod json;
mod linux;
mod published;
mod sampling;
mod scenarios;
mod table;
mod targets;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use common::THP_ORDER;
use gupio::bio::BioVec;
use published::linux_table;
use sampling::{Atomics, Report};
use scenarios::{encoding, gup_test, pin_build_release, queries, release_scaling, PBR_SIZES};
use table::table;
use targets::verdicts;

/// Samples per scenario unless `--samples` says otherwise.
const DEFAULT_SAMPLES: usize = 51;

/// The `atomics` bench's counts. Tab-separated by hand, not JSON: three
/// columns handed from one bench binary to the next in the same run, which
/// a `split('\t')` reads back and a person can `cat`.
fn read_atomics(dir: &Path) -> (Vec<(String, Atomics)>, Option<PathBuf>) {
    let path = dir.join("atomics.tsv");
    let Ok(text) = fs::read_to_string(&path) else {
        return (Vec::new(), None);
    };
    let parse = |field: Option<&str>| field.and_then(|f| f.parse::<f64>().ok());
    let rows = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let id = fields.next()?.to_owned();
            let pin = parse(fields.next());
            let release = parse(fields.next());
            Some((id, Atomics { pin, release }))
        })
        .collect();
    (rows, Some(path))
}

/// `target/gupio-bench`: the bench binary is `<target>/release/deps/report-*`.
fn output_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then_some(())?;
        Some(deps.parent()?.parent()?.to_path_buf())
    });
    from_exe
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("gupio-bench")
}

/// Today (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let mut stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    stamp.truncate("YYYY-MM-DD".len());
    stamp
}

/// The command line: `--samples N`, `--only GROUP` (repeatable).
struct Options {
    samples: usize,
    only: Vec<String>,
}

impl Options {
    fn parse() -> Self {
        let usage = |message: &str| -> ! {
            eprintln!(
                "report: {message}\nusage: report [--samples N] [--only {}]...",
                GROUPS.join("|")
            );
            std::process::exit(2);
        };
        Self::parse_from(lexopt::Parser::from_env()).unwrap_or_else(|message| usage(&message))
    }

    fn parse_from(mut args: lexopt::Parser) -> Result<Self, String> {
        use lexopt::prelude::*;
        let mut options = Self {
            samples: DEFAULT_SAMPLES,
            only: Vec::new(),
        };
        while let Some(arg) = args.next().map_err(|e| e.to_string())? {
            match arg {
                // cargo bench passes --bench to every bench binary.
                Long("bench") => {}
                Long("samples") => {
                    options.samples = args
                        .value()
                        .ok()
                        .and_then(|value| value.parse::<usize>().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--samples needs a whole number above zero")?;
                }
                Long("only") => match args.value().map(|value| value.string()) {
                    Ok(Ok(group)) if GROUPS.contains(&group.as_str()) => options.only.push(group),
                    _ => return Err("--only needs a group".to_owned()),
                },
                _ => return Err(arg.unexpected().to_string()),
            }
        }
        Ok(options)
    }

    fn runs(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|only| only == group)
    }
}

/// The groups `--only` selects.
const GROUPS: [&str; 6] = ["encoding", "pbr", "linux", "query", "scaling", "gup"];

fn main() {
    let started = Instant::now();
    let options = Options::parse();
    let samples = options.samples;
    let dir = output_dir();
    let (atomics, atomics_source) = read_atomics(&dir);
    let mut report = Report {
        samples,
        rows: Vec::new(),
        atomics,
        atomics_source,
        skipped: Vec::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let date = today();
    println!(
        "gupio bench report: {date}, {cores} cores, {samples} samples per scenario, \
         {} bytes per bvec",
        size_of::<BioVec>()
    );

    if options.runs("encoding") {
        encoding(&mut report);
    }
    if options.runs("pbr") {
        for pages in PBR_SIZES {
            pin_build_release(&mut report, pages);
        }
    }
    if options.runs("linux") {
        linux::host_pin_path(&mut report);
    }
    if options.runs("query") {
        queries(&mut report);
    }
    // Floors have no gupio atomics: fill in what they do by construction.
    for row in &mut report.rows {
        if row.id.starts_with("pbr.floor.") {
            row.atomics = Atomics {
                pin: Some(1.0),
                release: Some(1.0),
            };
        } else if row.id == "query.floor" {
            row.atomics = Atomics {
                pin: Some(0.0),
                release: None,
            };
        }
    }
    if options.runs("scaling") {
        release_scaling(&mut report);
    }
    if options.runs("gup") {
        for (order, per_call) in [(0, 1), (0, 512), (THP_ORDER, 1), (THP_ORDER, 512)] {
            gup_test(&mut report, order, per_call);
        }
    }

    let total = started.elapsed();
    println!();
    print!("{}", table(&report));
    if let Some(row) = report.row("release.2t") {
        println!("release scaling: {}", row.note);
    }
    for (what, why) in &report.skipped {
        println!("skipped {what}: {why}");
    }
    println!();
    print!("{}", linux_table(&report));
    println!();
    println!("performance targets (README, Performance):");
    for (target, met, measured) in verdicts(&report) {
        println!(
            "  [{}] {target}: {measured}",
            if met { "met" } else { "MISSED" }
        );
    }
    match &report.atomics_source {
        Some(path) => println!("\natomics/page from {}", path.display()),
        None => println!(
            "\natomics/page: not counted; `cargo xtask bench` (or `cargo bench -p gupio \
             --features rmw-stats --bench atomics` first) counts them"
        ),
    }
    // A partial run (`--only`) must not replace the full report.
    let path = dir.join(if options.only.is_empty() {
        "report.json"
    } else {
        "report-only.json"
    });
    let written = fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&path, json::report(&report, &date, cores, total)));
    match written {
        Ok(()) => println!("wrote {} ({:.1} s)", path.display(), total.as_secs_f64()),
        Err(error) => {
            eprintln!("cannot write {}: {error}", path.display());
            std::process::exit(1);
        }
    }
}
