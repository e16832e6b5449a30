//! The scenarios the report times, each beside the floor it is held
//! against.

use std::hint::black_box;
use std::time::Instant;

use gupio::pfn::{Origin, Pfn, TaggedPfn};
use gupio::pin::{PageRange, Tracker};
use gupio::release::Completion;
use gupio::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{
    self, build_bios, dio_write, gup_pin, gup_unpin, plain_words, query_all, release_all,
    tagged_words, BenchMap, Cpu, DioMemory, Floor, Layout, Table, Use, UserBuffer, BIO_PAGES,
    THP_ORDER,
};
use crate::sampling::{ns_per_page, Atomics, Member, Report, Row, Stats};

/// Pages of the gup_test-shaped runs: 128 MiB, gup_test's default `-m 128`.
const GUP_PAGES: usize = 32768;
/// Pages of the query runs.
const BIG: usize = 65536;
/// Pages of the release-scaling runs: 64 bios whose counters and tables
/// (512 KiB) fit one core's L2, so two threads gain no cache over one and
/// the ratio shows contention, not capacity.
const SCALING_PAGES: usize = 16384;
/// The page counts of the pin + build + release runs.
pub(crate) const PBR_SIZES: [usize; 3] = [256, 4096, 65536];

pub(crate) fn encoding(report: &mut Report) {
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

pub(crate) fn pin_build_release(report: &mut Report, pages: usize) {
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

pub(crate) fn queries(report: &mut Report) {
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

pub(crate) fn release_scaling(report: &mut Report) {
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

pub(crate) fn gup_test(report: &mut Report, order: u32, per_call: usize) {
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
