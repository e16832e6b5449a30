//! Divan microbenchmarks of gupio's hot operations, one call at a time.
//!
//! `cargo bench -p gupio --bench micro` (`-- --help` for divan's options;
//! `cargo xtask bench` runs them with a short time limit). The `report`
//! bench has the per-page figures against the floor of the README's performance targets;
//! these time single operations, for quick comparisons while changing code.

mod common;

use common::{BenchMap, Cpu, Layout, Table, UserBuffer, BIO_PAGES, THP_ORDER};
use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use gupio::bio::{Bio, BioOp, BioStatus, Sector};
use gupio::pfn::{Origin, Pfn, TaggedPfn};
use gupio::pin::{maybe_dma_pinned, GupFlags, PageRange, Tracker};
use gupio::release::{add_user_range, release_pages, Completion, Ending};

fn main() {
    divan::main();
}

/// Encode a page and an origin into the tagged word and decode it again.
#[divan::bench]
fn tagged_word_round_trip() -> Option<(Pfn, Origin)> {
    TaggedPfn::new(black_box(Pfn::new(0x12_3456)), black_box(Origin::Pinned)).decode()
}

/// Pin and unpin one small page.
#[divan::bench]
fn pin_unpin_small_page(bencher: Bencher) {
    let map = BenchMap::new(1, 0);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let page = map.first();
    bencher.bench_local(|| {
        tracker.pin_page(black_box(page)).expect("pin");
        tracker.unpin_page(black_box(page)).expect("unpin");
    });
    map.assert_baseline();
}

/// Pin and unpin all 512 pages of a 2 MiB folio as one range: one folio
/// run each way.
#[divan::bench]
fn pin_unpin_2mib_folio_range(bencher: Bencher) {
    let map = BenchMap::new(1 << THP_ORDER, THP_ORDER);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let range = PageRange::new(map.first(), 1 << THP_ORDER);
    bencher
        .counter(ItemsCount::new(range.len()))
        .bench_local(|| {
            tracker.pin_range(black_box(range)).expect("pin");
            tracker.unpin_range(black_box(range)).expect("unpin");
        });
    map.assert_baseline();
}

/// `maybe_dma_pinned` on a small page and on a tail page of a 2 MiB folio.
#[divan::bench(args = [0, THP_ORDER])]
fn maybe_dma_pinned_query(bencher: Bencher, order: u32) {
    let map = BenchMap::new(1 << THP_ORDER, order);
    let tail = Pfn::new(map.first().get() + (1 << THP_ORDER) - 1);
    bencher.bench_local(|| maybe_dma_pinned(&map, black_box(tail)).expect("in the map"));
}

/// Pin a user buffer into one bio of 256 one-page bvecs, complete it and
/// release it: the report's DIO write, one bio at a time.
#[divan::bench]
fn dio_write_one_bio(bencher: Bencher) {
    let map = BenchMap::new(BIO_PAGES, 0);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let buffer = UserBuffer::new(map.first(), BIO_PAGES, Layout::Descending);
    let mut table = Table::new();
    let completion = Completion::new();
    bencher
        .counter(ItemsCount::new(BIO_PAGES))
        .bench_local(|| common::dio_write(&tracker, &buffer, &mut table, &completion, |_| {}));
    map.assert_baseline();
}

/// Release one bio of 256 pinned one-page bvecs (pinning and building it
/// is set-up, not timed).
#[divan::bench]
fn release_one_bio(bencher: Bencher) {
    let map = BenchMap::new(BIO_PAGES, 0);
    let cpu = Cpu::new(&map);
    let tracker = Tracker::new(&cpu);
    let buffer = UserBuffer::new(map.first(), BIO_PAGES, Layout::Descending);
    bencher
        .counter(ItemsCount::new(BIO_PAGES))
        .with_inputs(|| {
            let mut bio = Bio::new(Table::new(), BioOp::Write, Sector(0), common::limits());
            let added = add_user_range(
                &tracker,
                &buffer,
                &mut bio,
                buffer.start(),
                buffer.len(),
                GupFlags::empty(),
            );
            assert_eq!(added, Ok(buffer.len()));
            bio
        })
        .bench_local_refs(|bio| release_pages(&tracker, bio, false).expect("released"));
    map.assert_baseline();
}

/// A completion's start and its one report (the per-bio atomics).
#[divan::bench]
fn completion_start_and_complete(bencher: Bencher) {
    let map = BenchMap::new(1, 0);
    let cpu = Cpu::new(&map);
    let completion = Completion::new();
    bencher.bench_local(|| {
        completion.start().expect("idle");
        match completion
            .complete(black_box(BioStatus::Ok), &cpu)
            .expect("first completion")
        {
            Ending::Finished(status) => status,
            Ending::Pending => panic!("an unchained bio finishes at its own completion"),
        }
    });
}
