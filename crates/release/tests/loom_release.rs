//! Loom models of the release path on shared pages.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-release
//! --release --test loom_release` (and a separate target dir).
#![cfg(loom)]

use gupio_bio::{Bio, BioLimits, BioOp, BioVec, Sector};
use gupio_pfn::{Origin, Pfn};
use gupio_pin::testing::TestMachine;
use gupio_pin::{PageRange, Tracker};
use gupio_release::release_pages;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

/// Releases a one-bvec bio over `pfn` with `origin`, `len` bytes at `offset`.
fn release_one(m: &TestMachine<4>, pfn: Pfn, origin: Origin, offset: u32, mark_dirty: bool) {
    let mut table = heapless::Vec::<BioVec, 1>::new();
    let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    let _ = bio.add_page(pfn, 2048, offset, origin).unwrap();
    release_pages(&Tracker::new(m), &bio, mark_dirty).unwrap();
}

#[test]
fn two_bios_sharing_a_pinned_page_complete_at_once() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<4>::new(0));
        let page = m.prepare(0, 0);
        let t = Tracker::new(&*m);
        t.pin_page(page).unwrap();
        t.pin_page(page).unwrap();
        // The owner's reference goes away while both bios are in flight.
        t.put_page(page).unwrap();

        let threads: Vec<_> = [0, 2048]
            .into_iter()
            .map(|offset| {
                let m = Arc::clone(&m);
                thread::spawn(move || release_one(&m, page, Origin::Pinned, offset, true))
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(m.frees(0), 1, "freed exactly once, by the last release");
        assert_eq!(m.page(0).refcount(), 0);
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), m.stats.released());
    });
}

#[test]
fn large_folio_shared_by_two_bios_is_freed_once() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<4>::new(0));
        let head = m.prepare(0, 2);
        let t = Tracker::new(&*m);
        t.pin_range(PageRange::new(Pfn::new(1), 1)).unwrap();
        t.pin_range(PageRange::new(Pfn::new(3), 1)).unwrap();
        t.put_page(head).unwrap();

        let threads: Vec<_> = [1, 3]
            .into_iter()
            .map(|pfn| {
                let m = Arc::clone(&m);
                thread::spawn(move || release_one(&m, Pfn::new(pfn), Origin::Pinned, 0, false))
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert_eq!(m.frees(0), 1);
        assert_eq!(m.page(0).pincount(), 0);
        assert_eq!(m.warnings(), 0);
    });
}

/// Completion unpins (dirtying first) while writeback asks `query`
/// (`maybe_dma_pinned`) twice. No false negative: an answer of "not
/// pinned" given before the completion started to release is wrong, and
/// the `started` flag (set before the release, read after the answers)
/// tells those answers apart: if writeback's read of it comes before the
/// store, the query came before the unpin and must have seen the pin (were
/// the query's answer taken from the unpin, its Acquire would order the
/// store before the read). And no answer goes back to "pinned" once it
/// said no.
fn unpin_at_completion_racing_a_writeback_check(
    query: fn(&Tracker<'_, TestMachine<4>>, Pfn) -> bool,
) {
    loom::model(move || {
        let m = Arc::new(TestMachine::<4>::new(0));
        let page = m.prepare(0, 0);
        Tracker::new(&*m).pin_page(page).unwrap();
        let started = Arc::new(AtomicBool::new(false));

        let completion = {
            let m = Arc::clone(&m);
            let started = Arc::clone(&started);
            thread::spawn(move || {
                // Release: pairs with writeback's Acquire load below.
                started.store(true, Ordering::Release);
                release_one(&m, page, Origin::Pinned, 0, true);
            })
        };
        let t = Tracker::new(&*m);
        let first = query(&t, page);
        let second = query(&t, page);
        // Acquire: pairs with the Release store above.
        let release_started = started.load(Ordering::Acquire);
        // Joined before any check: a model that panics with a thread still
        // running aborts instead of failing.
        completion.join().unwrap();
        assert!(
            first || release_started,
            "reported unpinned while the pin was still held"
        );
        assert!(first || !second, "pinned again after reporting unpinned");
        assert!(!query(&t, page));
        assert_eq!(m.page(0).refcount(), 1);
        assert_eq!(m.frees(0), 0);
    });
}

#[test]
fn unpin_at_completion_racing_a_writeback_check_has_no_false_negative() {
    unpin_at_completion_racing_a_writeback_check(|t, page| t.maybe_dma_pinned(page).unwrap());
}

/// The model has teeth: a query that always answers "not pinned" fails it
/// (as `maybe_dma_pinned` hard-wired to false does:
/// `cargo xtask mutants query-never-pinned` fails the model above).
#[test]
#[should_panic(expected = "reported unpinned while the pin was still held")]
fn a_query_that_never_sees_the_pin_fails_the_no_false_negative_model() {
    unpin_at_completion_racing_a_writeback_check(|_, _| false);
}

#[test]
fn put_and_unpin_racing_on_one_small_page() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<4>::new(0));
        let page = m.prepare(0, 0);
        let t = Tracker::new(&*m);
        t.get_page(page).unwrap();
        t.pin_page(page).unwrap();
        t.put_page(page).unwrap(); // drop the allocation reference

        let put = {
            let m = Arc::clone(&m);
            thread::spawn(move || release_one(&m, page, Origin::Referenced, 0, false))
        };
        let unpin = {
            let m = Arc::clone(&m);
            thread::spawn(move || release_one(&m, page, Origin::Pinned, 2048, true))
        };
        put.join().unwrap();
        unpin.join().unwrap();
        assert_eq!(m.frees(0), 1);
        assert_eq!(m.page(0).refcount(), 0);
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), m.stats.released());
    });
}
