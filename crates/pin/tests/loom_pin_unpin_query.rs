//! Loom model: pins and unpins racing `maybe_dma_pinned` and the last put.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_pin_unpin_query` (and a separate target dir).
#![cfg(loom)]

use gupio_pfn::Pfn;
use gupio_pin::testing::TestMachine;
use gupio_pin::{MemoryMap, Tracker};
use loom::sync::Arc;
use loom::thread;

/// Two holders of one folio of order `order` at pfn 0. Thread `a` owns the
/// allocation reference: it pins, checks, unpins, then drops the
/// allocation reference. Thread `b` owns a pin taken before the threads
/// start: it checks and unpins. Whoever drops last frees the folio.
fn pin_unpin_query_and_last_put(order: u32) {
    loom::model(move || {
        let m = Arc::new(TestMachine::<2>::new(0));
        let head = m.prepare(0, order);
        let last = Pfn::new((1 << order) - 1);
        Tracker::new(&*m).pin_page(last).unwrap();

        let a = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                t.pin_page(head).unwrap();
                assert_eq!(t.maybe_dma_pinned(last), Ok(true), "own pin held");
                t.unpin_page(head).unwrap();
                t.put_page(head).unwrap();
            })
        };
        let b = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                assert_eq!(t.maybe_dma_pinned(head), Ok(true), "own pin held");
                t.unpin_page(last).unwrap();
            })
        };
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(m.frees(0), 1, "freed exactly once");
        let counters = m.counters(head).unwrap();
        assert_eq!((counters.refcount(), counters.pincount()), (0, 0));
        assert_eq!(Tracker::new(&*m).maybe_dma_pinned(head), Ok(false));
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), 2);
        assert_eq!(m.stats.released(), 2);
    });
}

#[test]
fn large_folio_pins_race_queries_and_free_once() {
    pin_unpin_query_and_last_put(1);
}

#[test]
fn small_page_pins_race_queries_and_free_once() {
    pin_unpin_query_and_last_put(0);
}
