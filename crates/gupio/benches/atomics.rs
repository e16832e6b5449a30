//! Deterministic counts for the report: atomic read-modify-writes of page
//! reference and pin counts per 4 KiB page, at pin and at release, for
//! every scenario of the `report` bench that changes counts.
//!
//! Needs the `rmw-stats` feature (gupio-pin's global counter):
//! `cargo bench -p gupio --features rmw-stats --bench atomics`, which
//! `cargo xtask bench` runs before the report. Writes
//! `target/gupio-bench/atomics.tsv` (id, pin, release per page) for the
//! report to read. Built without the feature it says so and counts nothing.
//! The scenarios are the report's own functions, run once each on one
//! thread, so the counts do not depend on timing.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use common::{
    build_bios, dio_write, gup_pin, gup_unpin, release_all, BenchMap, Cpu, Layout, Phase, Table,
    UserBuffer, BIO_PAGES, THP_ORDER,
};
use gupio::pin::Tracker;
use gupio::release::Completion;

/// The counter: gupio-pin's with the feature, none without.
fn take() -> Option<usize> {
    #[cfg(feature = "rmw-stats")]
    return Some(gupio::pin::rmw_stats::take());
    #[cfg(not(feature = "rmw-stats"))]
    None
}

/// Read-modify-writes counted at pin and at release, and the pages moved.
#[derive(Default)]
struct Count {
    pin: usize,
    release: usize,
    pages: usize,
}

impl Count {
    fn per_page(&self) -> (f64, f64) {
        let pages = self.pages.max(1) as f64;
        (self.pin as f64 / pages, self.release as f64 / pages)
    }
}

fn dio(pages: usize, order: u32) -> Count {
    let folio_pages = 1usize << order;
    let map = BenchMap::new(pages.div_ceil(folio_pages) * folio_pages, order);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let layout = if order == 0 {
        Layout::Descending
    } else {
        Layout::Ascending
    };
    let buffer = UserBuffer::new(map.first(), pages, layout);
    let mut table = Table::new();
    let completion = Completion::new();
    let mut count = Count::default();
    take();
    count.pages = dio_write(&tracker, &buffer, &mut table, &completion, |phase| {
        let counted = take().unwrap_or(0);
        match phase {
            Phase::Pinned => count.pin += counted,
            Phase::Released => count.release += counted,
        }
    });
    map.assert_baseline();
    count
}

fn release(pages: usize) -> Count {
    let map = BenchMap::new(pages, 0);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let buffer = UserBuffer::new(map.first(), pages, Layout::Descending);
    let mut tables = vec![Table::new(); pages / BIO_PAGES];
    let bios = build_bios(&tracker, &buffer, &mut tables);
    let pin = take().unwrap_or(0);
    let moved = release_all(&tracker, &bios);
    let release = take().unwrap_or(0);
    drop(bios);
    map.assert_baseline();
    Count {
        pin,
        release,
        pages: moved,
    }
}

fn gup(pages: usize, order: u32, per_call: usize) -> Count {
    let map = BenchMap::new(pages, order);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let buffer = UserBuffer::new(map.first(), pages, Layout::Ascending);
    let mut runs = Vec::new();
    take();
    let moved = gup_pin(&tracker, &buffer, &mut runs, per_call);
    let pin = take().unwrap_or(0);
    gup_unpin(&tracker, &mut runs);
    let release = take().unwrap_or(0);
    map.assert_baseline();
    Count {
        pin,
        release,
        pages: moved,
    }
}

fn query(pages: usize, order: u32) -> Count {
    let map = BenchMap::new(pages, order);
    take();
    let moved = common::query_all(&map);
    Count {
        pin: take().unwrap_or(0),
        release: 0,
        pages: moved,
    }
}

/// `target/gupio-bench`: the bench binary is `<target>/release/deps/atomics-*`.
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

fn main() {
    if take().is_none() {
        println!(
            "atomics: built without the `rmw-stats` feature, nothing to count \
             (cargo bench -p gupio --features rmw-stats --bench atomics)"
        );
        return;
    }
    // (id, pin per page, release per page); None where a phase is not run.
    let mut rows: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    for pages in [256, 4096, 65536] {
        for (kind, order) in [("small", 0), ("thp", THP_ORDER)] {
            let (pin, release) = dio(pages, order).per_page();
            rows.push((format!("pbr.{kind}.{pages}"), Some(pin), Some(release)));
        }
    }
    for (kind, order) in [("small", 0), ("thp", THP_ORDER)] {
        let (pin, _) = query(65536, order).per_page();
        rows.push((format!("query.{kind}"), Some(pin), None));
    }
    let (_, release) = release(16384).per_page();
    // Two threads release the same bios in two halves: the same count.
    rows.push(("release.1t".into(), None, Some(release)));
    rows.push(("release.2t".into(), None, Some(release)));
    for (kind, order) in [("small", 0), ("thp", THP_ORDER)] {
        for per_call in [1, 512] {
            let (pin, release) = gup(32768, order, per_call).per_page();
            rows.push((format!("gup.{kind}.n{per_call}.get"), Some(pin), None));
            rows.push((format!("gup.{kind}.n{per_call}.put"), None, Some(release)));
        }
    }

    // Tab-separated for the report bench to read back (see its
    // `read_atomics`): three columns need no serializer.
    let field = |value: Option<f64>| value.map_or("-".to_owned(), |v| v.to_string());
    let mut tsv = String::from("# id\tpin\trelease: atomic RMWs of page counts per 4 KiB page\n");
    println!(
        "{:<22} {:>12} {:>12}",
        "scenario", "pin/page", "release/page"
    );
    for (id, pin, release) in &rows {
        let (pin, release) = (field(*pin), field(*release));
        println!("{id:<22} {pin:>12} {release:>12}");
        let _ = writeln!(tsv, "{id}\t{pin}\t{release}");
    }
    let dir = output_dir();
    let path = dir.join("atomics.tsv");
    match fs::create_dir_all(&dir).and_then(|()| fs::write(&path, tsv)) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(error) => {
            eprintln!("cannot write {}: {error}", path.display());
            std::process::exit(1);
        }
    }
}
