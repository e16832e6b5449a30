//! `gupio-demo`: direct-I/O reads racing writeback, without and with gupio.
//!
//! Runs the same seeded workload twice on the simulated machine of
//! gupio-host, prints a table of what each run did and found, and exits
//! non-zero if the tracked run shows any corruption or imbalance or deferred
//! a read completion because writeback cleaned a page under the DMA, or if
//! the untracked run fails to show the corruption. `cargo xtask demo` runs it
//! in release mode; `--help` lists the options.
//!
//! `--scenario dio-write` runs the other hazard instead: direct-I/O writes
//! from buffers the application keeps changing, in each stable mode
//! (`gupio_host::demo::dio_write`).

use std::ffi::OsString;
use std::process::ExitCode;

use gupio_host::demo::{self, dio_write, Command, RunKind, Scenario};

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    // Every argument is read twice: once for `--scenario`, then by the
    // scenario's own parser.
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match demo::scenario(args.clone()) {
        Ok(Scenario::DioRead) => dio_read(args),
        Ok(Scenario::DioWrite) => dio_write_main(args),
        Err(message) => {
            eprintln!("error: {message}\n\n{}", demo::USAGE);
            ExitCode::from(USAGE_ERROR)
        }
    }
}

fn dio_write_main(args: Vec<OsString>) -> ExitCode {
    let config = match dio_write::parse_args(args) {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{}", dio_write::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{}", dio_write::USAGE);
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let sizes: Vec<String> = config
        .sizes
        .iter()
        .map(|s| format!("{} KiB", s >> 10))
        .collect();
    let intro = format!(
        "Direct-I/O writes from buffers the application keeps changing ({} stores into each \
         page while a write is in flight), to a device that records the filesystem's \
         checksum of each block; {} writers, sizes {}, seed {}. Each mode runs the same \
         workload on a fresh machine; throughput and CPU time per MiB are relative to \
         zero-copy at the same size, in this run.",
        config.stores_per_page,
        config.writers,
        sizes.join(" and "),
        config.seed,
    );
    println!("{}\n", demo::wrap(&intro, 78));
    let reports = match dio_write::run(&config, |_| {}) {
        Ok(reports) => reports,
        Err(error) => {
            eprintln!("error: the dio-write scenario could not run: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", dio_write::table(&reports));
    println!();
    println!("{}", dio_write::EXPLANATION);
    let failures = dio_write::verdict(&reports);
    if failures.is_empty() {
        println!("\nresult: checksum mismatches on disk with zero-copy, none in any stable mode.");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}

fn dio_read(args: Vec<OsString>) -> ExitCode {
    let config = match demo::parse_args(args) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            println!("{}", demo::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{}", demo::USAGE);
            return ExitCode::from(USAGE_ERROR);
        }
    };
    println!("{}\n", demo::describe(&config));
    let mut reports = Vec::new();
    let tracked = if config.by_reason {
        RunKind::ByReason
    } else {
        RunKind::Tracked(config.policy)
    };
    for kind in [RunKind::Untracked, tracked] {
        match demo::run(&config, kind) {
            Ok(report) => reports.push(report),
            Err(error) => {
                eprintln!("error: the {} run could not start: {error}", kind.name());
                return ExitCode::FAILURE;
            }
        }
    }
    print!("{}", demo::table(&reports));
    let [untracked, tracked] = &reports[..] else {
        return ExitCode::FAILURE;
    };
    println!();
    for report in &reports {
        let line = format!(
            "{} run: {:.1} s; writeback passes that found dirty pages: {}; read \
             completions deferred because a page looked clean: {}; folios writeback \
             had cleaned under the DMA (found clean under the folio lock): {}.",
            report.name,
            report.elapsed.as_secs_f64(),
            report.writeback_passes,
            report.deferred_releases,
            report.cleaned_under_dma,
        );
        println!("{}", demo::wrap(&line, 78));
    }
    if config.by_reason {
        let line = format!(
            "writeback by reason: background passes skipped pinned folios {} times \
             (left dirty, no copy); {} data-integrity passes (every {}th pass during \
             the run) and the final ones bounced {} pages of pinned folios (a stable \
             copy written, the folio kept dirty).",
            tracked.folios_skipped,
            tracked.integrity_passes,
            demo::INTEGRITY_EVERY,
            tracked.pages_bounced,
        );
        println!("{}", demo::wrap(&line, 78));
    }
    println!();
    println!("{}", demo::EXPLANATION);
    let failures = demo::verdict(untracked, tracked);
    if failures.is_empty() {
        println!("\nresult: corruption without tracking, none with it.");
        ExitCode::SUCCESS
    } else {
        for failure in &failures {
            eprintln!("FAILED: {failure}");
        }
        for report in &reports {
            for finding in &report.findings {
                eprintln!("  {} run: {finding}", report.name);
            }
        }
        ExitCode::FAILURE
    }
}
