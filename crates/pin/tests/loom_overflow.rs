//! Loom model: two threads racing the reference-count ceiling.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_overflow` (and a separate target dir).
#![cfg(loom)]

use gupio_pfn::Pfn;
use gupio_pin::testing::TestMachine;
use gupio_pin::{
    FolioOrder, FolioShape, MemoryMap, PinError, Tracker, GUP_PIN_COUNTING_BIAS, REFCOUNT_MAX,
};
use loom::sync::Arc;
use loom::thread;

/// Spawns a thread that pins `pfns` and reports whether it succeeded,
/// checking that the ceiling held whatever happened.
fn pinner(m: &Arc<TestMachine<2>>, pfns: &'static [Pfn], watch: Pfn) -> thread::JoinHandle<bool> {
    let m = Arc::clone(m);
    thread::spawn(move || {
        let result = Tracker::new(&*m).pin_pages(pfns);
        assert!(m.counters(watch).unwrap().refcount() <= REFCOUNT_MAX);
        match result {
            Ok(()) => true,
            Err(PinError::RefcountOverflow { pfn, .. }) => {
                assert_eq!(pfn, watch);
                false
            }
            Err(other) => panic!("unexpected {other}"),
        }
    })
}

#[test]
fn two_small_page_pins_fit_one_and_never_pass_the_ceiling() {
    static PAGE: [Pfn; 1] = [Pfn::new(0)];
    loom::model(|| {
        let m = Arc::new(TestMachine::<2>::new(0));
        m.prepare(0, 0);
        // Room for one pin, not two.
        let start = REFCOUNT_MAX - GUP_PIN_COUNTING_BIAS - 5;
        m.page(0).init(start, FolioShape::SMALL);
        let a = pinner(&m, &PAGE, PAGE[0]);
        let b = pinner(&m, &PAGE, PAGE[0]);
        let won = [a.join().unwrap(), b.join().unwrap()];
        assert_eq!(won.iter().filter(|&&w| w).count(), 1);
        assert_eq!(m.page(0).refcount(), start + GUP_PIN_COUNTING_BIAS);
        assert_eq!(m.stats.acquired(), 1);
        Tracker::new(&*m).unpin_page(PAGE[0]).unwrap();
        assert_eq!(m.page(0).refcount(), start);
        assert_eq!(m.warnings(), 0);
    });
}

#[test]
fn two_large_folio_pins_fit_one_and_leave_no_stray_pin() {
    static TAIL: [Pfn; 1] = [Pfn::new(1)];
    loom::model(|| {
        let m = Arc::new(TestMachine::<2>::new(0));
        m.prepare(0, 1);
        let order = FolioOrder::try_new(1).unwrap();
        m.page(0).init(REFCOUNT_MAX - 1, FolioShape::head(order));
        let a = pinner(&m, &TAIL, Pfn::new(0));
        let b = pinner(&m, &TAIL, Pfn::new(0));
        let won = [a.join().unwrap(), b.join().unwrap()];
        assert_eq!(won.iter().filter(|&&w| w).count(), 1);
        assert_eq!(m.page(0).refcount(), REFCOUNT_MAX);
        assert_eq!(m.page(0).pincount(), 1, "the loser added no pin");
    });
}

#[test]
fn a_batch_that_loses_the_race_undoes_its_earlier_pins() {
    // Thread a pins page 1 (plenty of room) then page 0 (room for one pin);
    // thread b pins page 0. Whoever loses on page 0 keeps nothing.
    static BATCH: [Pfn; 2] = [Pfn::new(1), Pfn::new(0)];
    static SINGLE: [Pfn; 1] = [Pfn::new(0)];
    loom::model(|| {
        let m = Arc::new(TestMachine::<2>::new(0));
        m.prepare(0, 0);
        m.prepare(1, 0);
        let start = REFCOUNT_MAX - GUP_PIN_COUNTING_BIAS;
        m.page(0).init(start, FolioShape::SMALL);
        let a = pinner(&m, &BATCH, Pfn::new(0));
        let b = pinner(&m, &SINGLE, Pfn::new(0));
        let (a_won, b_won) = (a.join().unwrap(), b.join().unwrap());
        assert!(a_won != b_won, "exactly one fits");
        assert_eq!(m.page(0).refcount(), REFCOUNT_MAX);
        let other = if a_won { 1 + GUP_PIN_COUNTING_BIAS } else { 1 };
        assert_eq!(m.page(1).refcount(), other, "no partial increment");
        assert_eq!(m.stats.acquired(), if a_won { 2 } else { 1 });
        assert_eq!(m.stats.released(), 0);
        assert_eq!(m.total_frees(), 0);
    });
}
