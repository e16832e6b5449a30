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

use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::{
    build_bios, dio_write, gup_pin, gup_unpin, plain_words, query_all, release_all, tagged_words,
    BenchMap, Cpu, DioMemory, Floor, Layout, Table, Use, UserBuffer, BIO_PAGES, THP_ORDER,
};
use gupio::bio::BioVec;
use gupio::pfn::{Origin, Pfn, TaggedPfn};
use gupio::pin::{PageRange, Tracker};
use gupio::release::Completion;
use gupio::sync::atomic::{AtomicUsize, Ordering};

/// Samples per scenario unless `--samples` says otherwise.
const DEFAULT_SAMPLES: usize = 51;
/// How long one sample of a closure scenario runs (it repeats the closure).
const SAMPLE_TIME: Duration = Duration::from_millis(4);
/// How long each closure scenario runs before it is sampled.
const WARM_UP: Duration = Duration::from_millis(60);
/// Pages of the gup_test-shaped runs: 128 MiB, gup_test's default `-m 128`.
const GUP_PAGES: usize = 32768;
/// Pages of the query runs.
const BIG: usize = 65536;
/// Pages of the release-scaling runs: 64 bios whose counters and tables
/// (512 KiB) fit one core's L2, so two threads gain no cache over one and
/// the ratio shows contention, not capacity.
const SCALING_PAGES: usize = 16384;
/// The page counts of the pin + build + release runs.
const PBR_SIZES: [usize; 3] = [256, 4096, 65536];
/// The README's performance targets: pin + build + release within this of the floor.
const PBR_TARGET: f64 = 2.0;
/// The README's performance targets: encode + decode within this of a plain word.
const ENCODE_TARGET: f64 = 1.05;

/// ns per page over the samples of one scenario.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Atomic read-modify-writes per page, at pin and at release.
#[derive(Clone, Copy, Debug, Default)]
struct Atomics {
    pin: Option<f64>,
    release: Option<f64>,
}

/// One line of the report.
#[derive(Clone, Debug)]
struct Row {
    id: String,
    group: &'static str,
    scenario: String,
    pages: usize,
    stats: Stats,
    /// The row this one is a ratio to, if any.
    floor: Option<String>,
    ratio: Option<f64>,
    atomics: Atomics,
    note: String,
}

/// A scenario of a closure group: a name, the closure (returns pages
/// moved), and its samples.
struct Member<'a> {
    id: String,
    scenario: String,
    run: Box<dyn FnMut() -> usize + 'a>,
    pages: usize,
    iterations: u32,
    samples: Vec<f64>,
}

impl<'a> Member<'a> {
    fn new(
        id: impl Into<String>,
        scenario: impl Into<String>,
        run: impl FnMut() -> usize + 'a,
    ) -> Self {
        Self {
            id: id.into(),
            scenario: scenario.into(),
            run: Box::new(run),
            pages: 0,
            iterations: 1,
            samples: Vec::new(),
        }
    }

    /// Runs the closure for [`WARM_UP`] and sets the iterations per sample.
    fn warm_up(&mut self) {
        let started = Instant::now();
        let mut calls = 0u32;
        while calls == 0 || started.elapsed() < WARM_UP {
            self.pages = (self.run)();
            calls += 1;
        }
        let per_call = started.elapsed() / calls;
        let iterations = SAMPLE_TIME.as_nanos() / per_call.as_nanos().max(1);
        self.iterations = u32::try_from(iterations.clamp(1, 1 << 20)).unwrap_or(1);
    }

    fn sample(&mut self) {
        let started = Instant::now();
        let mut pages = 0usize;
        for _ in 0..self.iterations {
            pages += black_box((self.run)());
        }
        let elapsed = started.elapsed();
        self.samples.push(ns_per_page(elapsed, pages));
    }
}

fn ns_per_page(elapsed: Duration, pages: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / pages.max(1) as f64
}

/// The report being built.
struct Report {
    samples: usize,
    rows: Vec<Row>,
    atomics: Vec<(String, Atomics)>,
    atomics_source: Option<PathBuf>,
    /// Rows or groups not measured, and why.
    skipped: Vec<(String, String)>,
}

impl Report {
    fn atomics_of(&self, id: &str) -> Atomics {
        self.atomics
            .iter()
            .find(|(known, _)| known == id)
            .map(|&(_, atomics)| atomics)
            .unwrap_or_default()
    }

    /// Samples `members` round-robin and adds a row for each; the first
    /// member is the floor of the others when `first_is_floor`.
    fn group(&mut self, group: &'static str, mut members: Vec<Member<'_>>, first_is_floor: bool) {
        for member in &mut members {
            member.warm_up();
        }
        for _ in 0..self.samples {
            for member in &mut members {
                member.sample();
            }
        }
        let floor = first_is_floor.then(|| (members[0].id.clone(), Stats::of(&members[0].samples)));
        for (index, member) in members.iter().enumerate() {
            let stats = Stats::of(&member.samples);
            let (floor_id, ratio) = match &floor {
                Some((id, floor)) if index > 0 => {
                    (Some(id.clone()), Some(stats.median / floor.median))
                }
                _ => (None, None),
            };
            self.push(Row {
                id: member.id.clone(),
                group,
                scenario: member.scenario.clone(),
                pages: member.pages,
                stats,
                floor: floor_id,
                ratio,
                atomics: Atomics::default(),
                note: String::new(),
            });
        }
    }

    /// Adds a row, filling its atomics from the counted run.
    fn push(&mut self, mut row: Row) {
        let counted = self.atomics_of(&row.id);
        if counted.pin.is_some() || counted.release.is_some() {
            row.atomics = counted;
        }
        self.rows.push(row);
    }

    fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.id == id)
    }

    /// Records that `what` (a row id or a group) was not measured, and why.
    fn skip(&mut self, what: &str, why: String) {
        println!("skipped {what}: {why}");
        self.skipped.push((what.to_owned(), why));
    }

    fn note(&mut self, id: &str, note: &str) {
        if let Some(row) = self.rows.iter_mut().find(|row| row.id == id) {
            row.note = note.to_owned();
        }
    }
}

fn encoding(report: &mut Report) {
    const WORDS: usize = 4096;
    let first = 0x12_3456;
    for (how, id, what) in [
        (Use::Chain, "chain", "each word feeds dependent work"),
        (Use::Sum, "sum", "words summed: the plain loop vectorizes"),
    ] {
        let mut plain = vec![0usize; WORDS];
        let mut tagged = vec![TaggedPfn::NONE; WORDS];
        let mut call = 0usize;
        report.group(
            "encoding",
            vec![
                Member::new(
                    format!("encode.floor.{id}"),
                    format!("floor: store + load a usize ({id})"),
                    move || plain_words(&mut plain, first, how),
                ),
                Member::new(
                    format!("encode.tagged.{id}"),
                    format!("encode + decode the tagged word ({id})"),
                    move || {
                        // A different origin on each call, unknown to the compiler.
                        call += 1;
                        tagged_words(&mut tagged, first, black_box(Origin::ALL[call % 3]), how)
                    },
                ),
            ],
            true,
        );
        report.note(
            &format!("encode.floor.{id}"),
            &format!("per word: 4096 words stored, then loaded; {what}"),
        );
        report.note(
            &format!("encode.tagged.{id}"),
            &format!("per word: TaggedPfn::new stored, then loaded and decode()d; {what}"),
        );
    }
}

fn pin_build_release(report: &mut Report, pages: usize) {
    let mut floor = Floor::new(pages);
    let floor_buffer = UserBuffer::new(Pfn::new(0), pages, Layout::Descending);

    let small_map = DioMemory::SmallPages.map(pages);
    let small_cpu = Cpu::new(&small_map);
    let small = Tracker::new(&small_cpu);
    let small_buffer = DioMemory::SmallPages.buffer(&small_map, pages);
    let mut small_table = Table::new();
    let small_completion = Completion::new();

    let thp_map = DioMemory::Folios2M.map(pages);
    let thp_cpu = Cpu::new(&thp_map);
    let thp = Tracker::new(&thp_cpu);
    let thp_buffer = DioMemory::Folios2M.buffer(&thp_map, pages);
    let mut thp_table = Table::new();
    let thp_completion = Completion::new();

    let group = "pin + build + release";
    report.group(
        group,
        vec![
            Member::new(
                format!("pbr.floor.{pages}"),
                format!("floor: 2 atomics + 16 B bvec, {pages} pages"),
                move || floor.pin_build_release(&floor_buffer),
            ),
            Member::new(
                format!("pbr.small.{pages}"),
                format!("gupio DIO write, 4 KiB pages, {pages} pages"),
                || {
                    dio_write(
                        &small,
                        &small_buffer,
                        &mut small_table,
                        &small_completion,
                        |_| {},
                    )
                },
            ),
            Member::new(
                format!("pbr.thp.{pages}"),
                format!("gupio DIO write, 2 MiB folios, {pages} pages"),
                || dio_write(&thp, &thp_buffer, &mut thp_table, &thp_completion, |_| {}),
            ),
        ],
        true,
    );
    small_map.assert_baseline();
    thp_map.assert_baseline();
    assert_eq!(
        (small_cpu.pins_in_flight(), thp_cpu.pins_in_flight()),
        (0, 0)
    );
    report.note(
        &format!("pbr.floor.{pages}"),
        "per page: fetch_add + 16-byte descriptor write, read back + fetch_sub; 256 per batch",
    );
    report.note(
        &format!("pbr.small.{pages}"),
        "add_user_range (pin_user_pages) into bios of 256 one-page bvecs, submit, Completion, release",
    );
    report.note(
        &format!("pbr.thp.{pages}"),
        "same over 2 MiB folios: pages merge into multi-page bvecs; ratio is to the small-page floor",
    );
}

fn queries(report: &mut Report) {
    let floor = Floor::new(BIG);
    floor.pin_every_other();

    let small_map = BenchMap::new(BIG, 0);
    let thp_map = BenchMap::new(BIG, THP_ORDER);
    let small_cpu = Cpu::new(&small_map);
    let thp_cpu = Cpu::new(&thp_map);
    let every_other = |map: &BenchMap, step: usize| {
        (0..map.len())
            .step_by(step)
            .map(|index| PageRange::single(Pfn::new(map.first().get() + index)))
            .collect::<Vec<_>>()
    };
    let small_pinned = every_other(&small_map, 2);
    let thp_pinned = every_other(&thp_map, 2 << THP_ORDER);
    for &range in &small_pinned {
        Tracker::new(&small_cpu).pin_range(range).expect("pin");
    }
    for &range in &thp_pinned {
        Tracker::new(&thp_cpu).pin_range(range).expect("pin");
    }
    report.group(
        "maybe_dma_pinned",
        vec![
            Member::new("query.floor", "floor: one Acquire load + compare", || {
                floor.query()
            }),
            Member::new("query.small", "maybe_dma_pinned, 4 KiB pages", || {
                query_all(&small_map)
            }),
            Member::new("query.thp", "maybe_dma_pinned, 2 MiB folios", || {
                query_all(&thp_map)
            }),
        ],
        true,
    );
    for &range in &small_pinned {
        Tracker::new(&small_cpu).unpin_range(range).expect("unpin");
    }
    for &range in &thp_pinned {
        Tracker::new(&thp_cpu).unpin_range(range).expect("unpin");
    }
    small_map.assert_baseline();
    thp_map.assert_baseline();
    report.note("query.floor", "65536 pages, every other one pinned");
    report.note(
        "query.small",
        "65536 pages, every other one pinned; folio lookup through the MemoryMap",
    );
    report.note(
        "query.thp",
        "65536 pages in 128 folios, every other folio pinned; tails look up their head",
    );
}

/// One release-scaling sample on `threads` threads: each pins and builds
/// the bios of its share of `buffer` (untimed), then all release at once.
/// Returns the wall-clock ns per page of the releases.
fn release_sample(
    map: &BenchMap,
    buffer: &UserBuffer,
    tables: &mut [Table],
    threads: usize,
) -> f64 {
    // A spinning start line: a sleeping barrier wakes its waiters tens of
    // microseconds apart, a skew as long as a share's release.
    let arrived = AtomicUsize::new(0);
    let share = buffer.len() / common::PAGE_SIZE / threads;
    let spans: Vec<(Instant, Instant, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = tables
            .chunks_mut(share / BIO_PAGES)
            .enumerate()
            .map(|(index, tables)| {
                let arrived = &arrived;
                let part = buffer.sub(index * share, share);
                scope.spawn(move || {
                    let cpu = Cpu::new(map);
                    let tracker = Tracker::new(&cpu);
                    let bios = build_bios(&tracker, &part, tables);
                    // AcqRel/Acquire: only a start line; nothing is published.
                    arrived.fetch_add(1, Ordering::AcqRel);
                    while arrived.load(Ordering::Acquire) < threads {
                        std::hint::spin_loop();
                    }
                    let started = Instant::now();
                    let pages = release_all(&tracker, &bios);
                    let ended = Instant::now();
                    assert_eq!(cpu.pins_in_flight(), 0);
                    (started, ended, pages)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("release thread"))
            .collect()
    });
    map.assert_baseline();
    let started = spans.iter().map(|span| span.0).min().expect("a thread");
    let ended = spans.iter().map(|span| span.1).max().expect("a thread");
    let pages = spans.iter().map(|span| span.2).sum();
    ns_per_page(ended - started, pages)
}

fn release_scaling(report: &mut Report) {
    let map = BenchMap::new(SCALING_PAGES, 0);
    let buffer = UserBuffer::new(map.first(), SCALING_PAGES, Layout::Descending);
    let mut tables = vec![Table::new(); SCALING_PAGES / BIO_PAGES];
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..3 {
        release_sample(&map, &buffer, &mut tables, 1);
        release_sample(&map, &buffer, &mut tables, 2);
    }
    for _ in 0..report.samples {
        one.push(release_sample(&map, &buffer, &mut tables, 1));
        two.push(release_sample(&map, &buffer, &mut tables, 2));
    }
    let one = Stats::of(&one);
    let two = Stats::of(&two);
    let group = "release scaling";
    report.push(Row {
        id: "release.1t".into(),
        group,
        scenario: "release 64 bios, 1 thread".into(),
        pages: SCALING_PAGES,
        stats: one,
        floor: None,
        ratio: None,
        atomics: Atomics::default(),
        note: "16384 pinned 4 KiB pages in 64 bios of 256; release_pages only, wall clock".into(),
    });
    report.push(Row {
        id: "release.2t".into(),
        group,
        scenario: "release 64 bios, 2 threads (vs 1)".into(),
        pages: SCALING_PAGES,
        stats: two,
        floor: Some("release.1t".into()),
        ratio: Some(two.median / one.median),
        atomics: Atomics::default(),
        note: format!(
            "32 disjoint bios per thread; wall clock over both; speed-up {:.2}x of an ideal 2x \
             (fastest samples: {:.2}x); needs both cores idle",
            one.median / two.median,
            one.min / two.min
        ),
    });
}

fn gup_test(report: &mut Report, order: u32, per_call: usize) {
    let map = BenchMap::new(GUP_PAGES, order);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let buffer = UserBuffer::new(map.first(), GUP_PAGES, Layout::Ascending);
    let mut runs = Vec::with_capacity(GUP_PAGES);
    let mut get = Vec::new();
    let mut put = Vec::new();
    for round in 0..3 + report.samples {
        let started = Instant::now();
        let pinned = gup_pin(&tracker, &buffer, &mut runs, per_call);
        let pinned_at = Instant::now();
        let unpinned = gup_unpin(&tracker, &mut runs);
        let ended = Instant::now();
        if round >= 3 {
            get.push(ns_per_page(pinned_at - started, pinned));
            put.push(ns_per_page(ended - pinned_at, unpinned));
        }
    }
    map.assert_baseline();
    let kind = if order == 0 { "small" } else { "thp" };
    let memory = if order == 0 {
        "4 KiB pages"
    } else {
        "2 MiB folios"
    };
    let id = format!("gup.{kind}.n{per_call}");
    let group = "gup_test shape (128 MiB)";
    report.push(Row {
        id: format!("{id}.get"),
        group,
        scenario: format!("PIN_FAST-like get, {memory}, -n {per_call}"),
        pages: GUP_PAGES,
        stats: Stats::of(&get),
        floor: None,
        ratio: None,
        atomics: Atomics::default(),
        note: format!(
            "pin_user_pages(WRITE) over an identity page table, {per_call} pages per call"
        ),
    });
    report.push(Row {
        id: format!("{id}.put"),
        group,
        scenario: format!("PIN_FAST-like put, {memory}, -n {per_call}"),
        pages: GUP_PAGES,
        stats: Stats::of(&put),
        floor: None,
        ratio: None,
        atomics: Atomics::default(),
        note: "unpin_pages on the whole array, as gup_test's unpin_user_pages".into(),
    });
}

/// Linux's published gup_test figures (Li Zhe's v6.15 and Joao Martins' v5.12 patch series), from
/// other hardware: (id of our comparable row, source, setup, ns per page).
const LINUX: &[(&str, &str, &str, f64)] = &[
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

fn fmt_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2}")
    } else if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

fn fmt_count(count: f64) -> String {
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

fn table(report: &Report) -> String {
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

fn linux_table(report: &Report) -> String {
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

/// What the README's performance targets ask, and whether this run meets it.
fn verdicts(report: &Report) -> Vec<(String, bool, String)> {
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
