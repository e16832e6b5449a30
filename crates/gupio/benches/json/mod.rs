//! `report.json`, written with serde: the report's rows, the verdicts on
//! the README's targets, what was skipped, and Linux's published figures.

use std::time::Duration;

use gupio::bio::BioVec;
use serde::Serialize;

use crate::linux;
use crate::published::LINUX;
use crate::sampling::Report;
use crate::targets::verdicts;

/// `report.json`: the report as data. Its shape (`schema`
/// `gupio-bench/1`) is what readers of the file rely on; serde writes it.
#[derive(Serialize)]
struct Json<'a> {
    schema: &'static str,
    date: &'a str,
    cores: usize,
    kernel: Option<String>,
    arch: String,
    bytes_per_bvec: usize,
    samples: usize,
    unit: &'static str,
    atomics_source: Option<String>,
    seconds: f64,
    rows: Vec<JsonRow<'a>>,
    targets: Vec<JsonTarget>,
    skipped: Vec<JsonSkipped<'a>>,
    linux_reference: Vec<JsonLinux>,
}

/// A row: ns per page and atomics per page, to four decimals.
#[derive(Serialize)]
struct JsonRow<'a> {
    id: &'a str,
    group: &'a str,
    scenario: &'a str,
    pages: usize,
    ns_per_page: JsonStats,
    floor: Option<&'a str>,
    ratio_to_floor: Option<f64>,
    atomics_per_page: JsonAtomics,
    note: &'a str,
}

#[derive(Serialize)]
struct JsonStats {
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct JsonAtomics {
    pin: Option<f64>,
    release: Option<f64>,
}

#[derive(Serialize)]
struct JsonTarget {
    target: String,
    met: bool,
    measured: String,
}

#[derive(Serialize)]
struct JsonSkipped<'a> {
    what: &'a str,
    why: &'a str,
}

#[derive(Serialize)]
struct JsonLinux {
    hardware: &'static str,
    source: &'static str,
    setup: &'static str,
    ns_per_page: Option<f64>,
    compare_with: &'static str,
}

/// `value` rounded to `decimals` places, or `None` (JSON `null`) if it is
/// not finite.
fn rounded(value: Option<f64>, decimals: i32) -> Option<f64> {
    let scale = 10f64.powi(decimals);
    value
        .filter(|value| value.is_finite())
        .map(|value| (value * scale).round() / scale)
}

/// The report as the text of `report.json`.
pub fn report(report: &Report, date: &str, cores: usize, total: Duration) -> String {
    let four = |value: Option<f64>| rounded(value, 4);
    let document = Json {
        schema: "gupio-bench/1",
        date,
        cores,
        kernel: linux::kernel_release(),
        arch: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        bytes_per_bvec: size_of::<BioVec>(),
        samples: report.samples,
        unit: "ns per 4 KiB page",
        atomics_source: report
            .atomics_source
            .as_ref()
            .map(|path| path.display().to_string()),
        seconds: rounded(Some(total.as_secs_f64()), 1).unwrap_or(0.0),
        rows: report
            .rows
            .iter()
            .map(|row| JsonRow {
                id: &row.id,
                group: row.group,
                scenario: &row.scenario,
                pages: row.pages,
                ns_per_page: JsonStats {
                    median: four(Some(row.stats.median)),
                    min: four(Some(row.stats.min)),
                    max: four(Some(row.stats.max)),
                },
                floor: row.floor.as_deref(),
                ratio_to_floor: four(row.ratio),
                atomics_per_page: JsonAtomics {
                    pin: four(row.atomics.pin),
                    release: four(row.atomics.release),
                },
                note: &row.note,
            })
            .collect(),
        targets: verdicts(report)
            .into_iter()
            .map(|(target, met, measured)| JsonTarget {
                target,
                met,
                measured,
            })
            .collect(),
        skipped: report
            .skipped
            .iter()
            .map(|(what, why)| JsonSkipped { what, why })
            .collect(),
        linux_reference: LINUX
            .iter()
            .map(|&(id, source, setup, ns)| JsonLinux {
                hardware: "other",
                source,
                setup,
                ns_per_page: rounded(Some(ns), 1),
                compare_with: id,
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&document).expect("the report serializes");
    text.push('\n');
    text
}
