//! The report as a table of text.

use std::fmt::Write as _;

use crate::sampling::{Atomics, Report};

pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2}")
    } else if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

pub(crate) fn fmt_count(count: f64) -> String {
    if count == count.trunc() {
        format!("{count:.0}")
    } else if count >= 0.1 {
        format!("{count:.3}")
    } else {
        format!("{count:.4}")
    }
}

fn fmt_atomics(atomics: Atomics) -> String {
    match (atomics.pin, atomics.release) {
        (None, None) => "-".into(),
        (pin, release) => format!(
            "{} / {}",
            pin.map_or("-".into(), fmt_count),
            release.map_or("-".into(), fmt_count)
        ),
    }
}

pub(crate) fn table(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .rows
        .iter()
        .map(|row| row.scenario.len())
        .max()
        .unwrap_or(0)
        .max("scenario".len());
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>15}  {:>8}  {:>15}",
        "scenario", "ns/page", "min-max", "x floor", "atomics/page"
    );
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>15}  {:>8}  {:>15}",
        "", "(median)", "", "", "(pin / release)"
    );
    let mut group = "";
    for row in &report.rows {
        if row.group != group {
            group = row.group;
            let _ = writeln!(out, "-- {group}");
        }
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>15}  {:>8}  {:>15}",
            row.scenario,
            fmt_ns(row.stats.median),
            format!("{}-{}", fmt_ns(row.stats.min), fmt_ns(row.stats.max)),
            row.ratio.map_or("-".into(), |ratio| format!("{ratio:.2}x")),
            fmt_atomics(row.atomics),
        );
    }
    out
}
