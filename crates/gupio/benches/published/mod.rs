//! Linux's published gup_test figures, printed beside this run's.

use std::fmt::Write as _;

use crate::sampling::Report;
use crate::table::fmt_ns;

/// Linux's published gup_test figures (Li Zhe's v6.15 and Joao Martins' v5.12 patch series), from
/// other hardware: (id of our comparable row, source, setup, ns per page).
pub(crate) const LINUX: &[(&str, &str, &str, f64)] = &[
    (
        "gup.small.n512.get",
        "Li Zhe, v6.15 (June 2025)",
        "8 GiB 4 KiB pages, gup_test -LT -m 8192 -n 512, get",
        62.0,
    ),
    (
        "gup.small.n512.put",
        "Li Zhe, v6.15 (June 2025)",
        "same, put",
        15.0,
    ),
    (
        "gup.thp.n512.put",
        "Joao Martins, v5.12 (Feb 2021), before batching",
        "16 GiB THP, gup_test -t -m 16384 -r 10 -a -S -n 512 -w, put",
        20.9,
    ),
    (
        "gup.thp.n512.put",
        "Joao Martins, v5.12 (Feb 2021), folio batching",
        "same, put",
        5.5,
    ),
];

pub(crate) fn linux_table(report: &Report) -> String {
    let mut out = String::from(
        "Linux's published gup_test figures (Li Zhe v6.15, Joao Martins v5.12), OTHER HARDWARE, beside ours:\n",
    );
    for &(id, source, setup, ns) in LINUX {
        let ours = report
            .row(id)
            .map_or("-".into(), |row| fmt_ns(row.stats.median));
        let _ = writeln!(
            out,
            "  {source}: {setup}: {ns:.1} ns/page  (gupio {id}: {ours} ns/page)"
        );
    }
    out
}
