//! `gupio-demo`: direct-I/O reads racing writeback, without and with gupio.
//!
//! Runs the same seeded workload twice on the simulated machine of
//! gupio-host, prints a table of what each run did and found, and exits
//! non-zero if the tracked run shows any corruption or imbalance or deferred
//! a read completion because writeback cleaned a page under the DMA, or if
//! the untracked run fails to show the corruption. `cargo xtask demo` runs it
//! in release mode; `--help` lists the options.

use std::process::ExitCode;

use gupio_host::demo::{self, Command, RunKind};

fn main() -> ExitCode {
    const USAGE_ERROR: u8 = 2;
    let config = match demo::parse_args(std::env::args().skip(1)) {
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
    for kind in [RunKind::Untracked, RunKind::Tracked(config.policy)] {
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
