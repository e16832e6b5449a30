//! The README's performance targets, and whether this run meets them.

use gupio::bio::BioVec;

use crate::common::THP_ORDER;
use crate::linux;
use crate::sampling::Report;
use crate::scenarios::PBR_SIZES;
use crate::table::fmt_count;

/// The README's performance targets: pin + build + release within this of the floor.
const PBR_TARGET: f64 = 2.0;
/// The README's performance targets: encode + decode within this of a plain word.
const ENCODE_TARGET: f64 = 1.05;

/// What the README's performance targets ask, and whether this run meets it.
pub(crate) fn verdicts(report: &Report) -> Vec<(String, bool, String)> {
    let mut verdicts = Vec::new();
    let bvec = size_of::<BioVec>();
    verdicts.push((
        "BioVec is 16 bytes on 64-bit".to_owned(),
        cfg!(target_pointer_width = "32") || bvec == 16,
        format!("{bvec} bytes"),
    ));
    for (id, what) in [
        ("chain", "feeding dependent work"),
        ("sum", "in a loop the plain word vectorizes"),
    ] {
        if let Some(ratio) = report
            .row(&format!("encode.tagged.{id}"))
            .and_then(|row| row.ratio)
        {
            verdicts.push((
                format!("encode + decode within {ENCODE_TARGET}x of a plain word, {what}"),
                ratio <= ENCODE_TARGET,
                format!("{ratio:.2}x"),
            ));
        }
    }
    for pages in PBR_SIZES {
        if let Some(ratio) = report
            .row(&format!("pbr.small.{pages}"))
            .and_then(|row| row.ratio)
        {
            verdicts.push((
                format!(
                    "pin + build + release, {pages} small pages, within {PBR_TARGET}x of the floor"
                ),
                ratio <= PBR_TARGET,
                format!("{ratio:.2}x"),
            ));
        }
    }
    let folio_pages = f64::from(1u32 << THP_ORDER);
    for (pin_id, release_id, path) in [
        (
            "gup.thp.n512.get",
            "gup.thp.n512.put",
            "pin_user_pages of 512 pages per call, unpin_pages",
        ),
        (
            "pbr.thp.65536",
            "pbr.thp.65536",
            "DIO write (add_user_range, release_pages)",
        ),
    ] {
        let pin = report.row(pin_id).and_then(|row| row.atomics.pin);
        let release = report.row(release_id).and_then(|row| row.atomics.release);
        if let (Some(pin), Some(release)) = (pin, release) {
            let (pin, release) = (pin * folio_pages, release * folio_pages);
            verdicts.push((
                format!("2 MiB folio, {path}: one atomic per folio run at pin and at release"),
                pin <= 1.0 && release <= 1.0,
                format!(
                    "{} at pin, {} at release, per 2 MiB folio",
                    fmt_count(pin),
                    fmt_count(release)
                ),
            ));
        }
    }
    thp_time_verdicts(report, &mut verdicts);
    verdicts.extend(linux::verdicts(report));
    verdicts
}

/// the README's absolute per-page targets for 2 MiB folios.
fn thp_time_verdicts(report: &Report, verdicts: &mut Vec<(String, bool, String)>) {
    for pages in PBR_SIZES {
        if let Some(row) = report.row(&format!("pbr.thp.{pages}")) {
            let ns = row.stats.median;
            verdicts.push((
                format!("pin + build + release, 2 MiB folios, {pages} pages: at most 0.5 ns/page"),
                ns <= 0.5,
                format!("{ns:.3} ns/page"),
            ));
        }
    }
    if let Some(row) = report.row("gup.thp.n512.get") {
        let ns = row.stats.median;
        verdicts.push((
            "gup_test shape, 2 MiB folios, 512 pages per call: pin at most 0.05 ns/page".to_owned(),
            ns <= 0.05,
            format!("{ns:.3} ns/page"),
        ));
    }
}
