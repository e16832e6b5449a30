use super::*;
use crate::counters::probe::{self, LARGE_PIN_RMW};
use crate::testing::TestMachine;
use crate::{FolioOrder, FolioShape, MemoryMap, GUP_PIN_COUNTING_BIAS, REFCOUNT_MAX};

fn pfn(raw: usize) -> Pfn {
    Pfn::new(raw)
}

fn pfns(raws: &[usize]) -> Vec<Pfn> {
    raws.iter().map(|&r| pfn(r)).collect()
}

/// A machine with small pages 0..4, an order-2 folio 4..8 and an order-3
/// folio 8..16, each holding its allocation reference.
fn machine() -> TestMachine<16> {
    let m = TestMachine::new(0);
    for small in 0..4 {
        m.prepare(small, 0);
    }
    m.prepare(4, 2);
    m.prepare(8, 3);
    m
}

fn assert_baseline(m: &TestMachine<16>) {
    for head in [0, 1, 2, 3, 4, 8] {
        assert_eq!(m.page(head).refcount(), 1, "refcount of {head}");
        assert_eq!(m.page(head).pincount(), 0, "pincount of {head}");
    }
    assert_eq!(m.stats.acquired(), m.stats.released());
    assert_eq!(m.total_frees(), 0);
}

#[test]
fn small_page_pin_adds_the_bias_and_unpin_removes_it() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_page(pfn(1)).unwrap();
    assert_eq!(m.page(1).refcount(), 1 + GUP_PIN_COUNTING_BIAS);
    assert_eq!(m.page(1).pincount(), 0);
    assert_eq!(t.maybe_dma_pinned(pfn(1)), Ok(true));
    t.unpin_page(pfn(1)).unwrap();
    assert_eq!(t.maybe_dma_pinned(pfn(1)), Ok(false));
    assert_eq!(m.stats.acquired(), 1);
    assert_baseline(&m);
}

#[test]
fn large_folio_pin_adds_one_reference_and_one_pin_per_page() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_page(pfn(10)).unwrap();
    t.pin_page(pfn(15)).unwrap();
    assert_eq!(m.page(8).refcount(), 3);
    assert_eq!(m.page(8).pincount(), 2);
    assert_eq!(m.page(10).refcount(), 0, "tails hold no counts");
    assert_eq!(t.maybe_dma_pinned(pfn(9)), Ok(true));
    t.unpin_page(pfn(10)).unwrap();
    assert_eq!(t.maybe_dma_pinned(pfn(9)), Ok(true));
    t.unpin_page(pfn(15)).unwrap();
    assert_eq!(t.maybe_dma_pinned(pfn(9)), Ok(false));
    assert_baseline(&m);
}

#[test]
fn large_folio_has_no_false_positive_small_page_may() {
    let m = machine();
    let t = Tracker::new(&m);
    let many: Vec<Pfn> = core::iter::repeat_n(pfn(8), 2000).collect();
    t.get_pages(&many).unwrap();
    assert_eq!(t.maybe_dma_pinned(pfn(8)), Ok(false), "large: exact");
    let many: Vec<Pfn> = core::iter::repeat_n(pfn(2), 1023).collect();
    t.get_pages(&many).unwrap();
    assert_eq!(
        t.maybe_dma_pinned(pfn(2)),
        Ok(true),
        "small: 1024 references read as a pin"
    );
}

#[test]
fn get_and_put_change_the_head_by_one_per_page() {
    let m = machine();
    let t = Tracker::new(&m);
    t.get_page(pfn(6)).unwrap();
    t.get_page(pfn(0)).unwrap();
    assert_eq!(m.page(4).refcount(), 2);
    assert_eq!(m.page(0).refcount(), 2);
    t.put_page(pfn(6)).unwrap();
    t.put_page(pfn(0)).unwrap();
    assert_eq!(m.stats.acquired(), 0, "gets are not pins");
    assert_baseline(&m);
}

#[test]
fn last_put_frees_the_folio_exactly_once() {
    let m = machine();
    let t = Tracker::new(&m);
    t.put_page(pfn(13)).unwrap();
    assert_eq!(m.frees(8), 1);
    assert_eq!(m.page(8).refcount(), 0);
    // A second put finds no reference: refused, warned, not freed again.
    assert_eq!(
        t.put_page(pfn(13)),
        Err(PinError::NoReference { pfn: pfn(8) })
    );
    assert_eq!(m.frees(8), 1);
    assert_eq!(m.page(8).refcount(), 0);
    assert_eq!(
        m.last_warning(),
        Some(Warning::PutWithoutReference {
            pfn: pfn(8),
            refcount: 0,
            dropping: 1
        })
    );
}

#[test]
fn last_unpin_frees_when_the_pin_was_the_only_reference() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_page(pfn(3)).unwrap();
    t.pin_page(pfn(5)).unwrap();
    // The owners drop their allocation references: the pins keep the pages.
    t.put_pages(&pfns(&[3, 5])).unwrap();
    assert_eq!(m.total_frees(), 0);
    t.unpin_pages(&pfns(&[3, 5])).unwrap();
    assert_eq!((m.frees(3), m.frees(4)), (1, 1));
    assert_eq!(m.warnings(), 0);
}

#[test]
fn unpin_without_pin_is_refused_on_a_small_page() {
    let m = machine();
    let t = Tracker::new(&m);
    assert_eq!(
        t.unpin_page(pfn(2)),
        Err(PinError::NotPinned { pfn: pfn(2) })
    );
    assert_eq!(m.page(2).refcount(), 1, "never wraps, never frees");
    assert_eq!(m.frees(2), 0);
    assert_eq!(
        m.last_warning(),
        Some(Warning::UnpinWithoutPin {
            pfn: pfn(2),
            pages: 1,
            refcount: 1,
            pincount: 0
        })
    );
    assert_eq!(m.stats.released(), 0, "a refused unpin is not accounted");
}

#[test]
fn unpin_without_pin_is_refused_on_a_large_folio_even_with_many_references() {
    let m = machine();
    let t = Tracker::new(&m);
    let many: Vec<Pfn> = core::iter::repeat_n(pfn(9), 3000).collect();
    t.get_pages(&many).unwrap();
    assert_eq!(
        t.unpin_page(pfn(9)),
        Err(PinError::NotPinned { pfn: pfn(8) })
    );
    assert_eq!(m.page(8).refcount(), 3001);
    assert!(matches!(
        m.last_warning(),
        Some(Warning::UnpinWithoutPin { pincount: 0, .. })
    ));
}

#[test]
fn unpinning_more_pages_than_pinned_changes_nothing() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_range(PageRange::new(pfn(8), 2)).unwrap();
    assert_eq!(
        t.unpin_range(PageRange::new(pfn(8), 3)),
        Err(PinError::NotPinned { pfn: pfn(8) })
    );
    assert_eq!((m.page(8).refcount(), m.page(8).pincount()), (3, 2));
    t.unpin_range(PageRange::new(pfn(8), 2)).unwrap();
    assert_baseline(&m);
}

#[test]
fn put_of_a_free_small_page_never_wraps() {
    let m = machine();
    let t = Tracker::new(&m);
    t.put_page(pfn(0)).unwrap();
    assert_eq!(
        t.put_page(pfn(0)),
        Err(PinError::NoReference { pfn: pfn(0) })
    );
    assert_eq!(m.page(0).refcount(), 0);
    assert_eq!(m.frees(0), 1);
}

#[test]
fn get_or_pin_of_a_free_page_is_refused_and_warned() {
    let m = TestMachine::<2>::new(0);
    let t = Tracker::new(&m);
    assert_eq!(t.get_page(pfn(0)), Err(PinError::PageFree { pfn: pfn(0) }));
    assert_eq!(t.pin_page(pfn(1)), Err(PinError::PageFree { pfn: pfn(1) }));
    assert_eq!(m.page(0).refcount(), 0);
    assert_eq!(m.warnings(), 2);
    assert_eq!(
        m.last_warning(),
        Some(Warning::GrabOfFreePage { pfn: pfn(1) })
    );
    assert_eq!(m.stats.acquired(), 0);
}

#[test]
fn a_stray_put_of_a_pinned_large_folio_never_frees_it() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_page(pfn(4)).unwrap();
    t.put_page(pfn(4)).unwrap(); // the allocation reference: legitimate
                                 // A stray put would take the pin's reference.
    let stray = t.put_page(pfn(4));
    assert_eq!(m.frees(4), 0, "never freed under a pin");
    if crate::PageCounters::COUNTS_IN_ONE_WORD {
        // One word holds both counts: the put is refused up front.
        assert_eq!(stray, Err(PinError::NoReference { pfn: pfn(4) }));
        assert_eq!((m.page(4).refcount(), m.page(4).pincount()), (1, 1));
        assert_eq!(
            m.last_warning(),
            Some(Warning::PutWithoutReference {
                pfn: pfn(4),
                refcount: 1,
                dropping: 1
            })
        );
        t.unpin_page(pfn(4)).unwrap();
        assert_eq!(m.frees(4), 1, "the pin held the last reference");
    } else {
        // Two words: the put commits (refcount 0, pincount 1) and the
        // folio is leaked rather than freed under a device.
        assert_eq!(stray, Err(PinError::CorruptCounters { pfn: pfn(4) }));
        assert_eq!(
            m.last_warning(),
            Some(Warning::FreedWhilePinned {
                pfn: pfn(4),
                pincount: 1
            })
        );
    }
}

#[test]
fn large_unpin_with_refcount_below_pincount_restores_the_pins() {
    let m = machine();
    let t = Tracker::new(&m);
    // Corrupt: two pins recorded, one reference in total.
    m.page(8).force_counts(1, 2);
    assert_eq!(
        t.unpin_range(PageRange::new(pfn(8), 2)),
        Err(PinError::CorruptCounters { pfn: pfn(8) })
    );
    assert_eq!((m.page(8).refcount(), m.page(8).pincount()), (1, 2));
    assert_eq!(
        m.last_warning(),
        Some(Warning::RefcountBelowPincount {
            pfn: pfn(8),
            refcount: 1,
            pincount: 2
        })
    );
    assert_eq!(m.frees(8), 0);
}

#[test]
fn zero_page_pin_and_unpin_change_nothing_and_account_nothing() {
    let m = TestMachine::with_map(zero_page_map());
    m.prepare(0, 0);
    m.prepare(1, 0);
    let t = Tracker::new(&m);
    t.pin_pages(&pfns(&[0, 0, 1])).unwrap();
    assert_eq!(m.page(0).refcount(), 1, "zero page untouched");
    assert_eq!(m.page(1).refcount(), 1025);
    assert_eq!(m.stats.acquired(), 1, "only the real page is accounted");
    assert_eq!(t.maybe_dma_pinned(pfn(0)), Ok(false));
    t.unpin_pages_dirty_lock(&pfns(&[0, 0, 1]), true).unwrap();
    assert_eq!(m.page(0).refcount(), 1);
    assert!(
        m.page(0).flags().is_empty(),
        "the zero page is never dirtied"
    );
    assert_eq!(m.stats.released(), 1);
    // Unpinning the zero page without a pin is still a no-op.
    t.unpin_page(pfn(0)).unwrap();
    assert_eq!(m.warnings(), 0);
    // Gets and puts of the zero page are ordinary references.
    t.get_page(pfn(0)).unwrap();
    assert_eq!(m.page(0).refcount(), 2);
    t.put_page(pfn(0)).unwrap();
    assert_eq!(m.page(0).refcount(), 1);
}

/// Two pages; page 0 is the zero page.
fn zero_page_map() -> crate::ArrayMemoryMap<2> {
    crate::ArrayMemoryMap::new(pfn(0)).with_zero_page(pfn(0))
}

#[test]
fn array_runs_cost_one_update_per_folio_run() {
    let m = machine();
    let t = Tracker::new(&m);
    // Runs: [8..16 in order-3 folio], [4, 5, 7 in order-2 folio],
    // [1], [2, 2, 2], [9 again: a new run], [0].
    let list = pfns(&[8, 9, 10, 11, 12, 13, 14, 15, 4, 5, 7, 1, 2, 2, 2, 9, 0]);
    probe::take_rmw();
    t.get_pages(&list).unwrap();
    assert_eq!(probe::take_rmw(), 6, "gets: one refcount update per run");
    t.put_pages(&list).unwrap();
    assert_eq!(probe::take_rmw(), 6);
    t.pin_pages(&list).unwrap();
    // Large runs also update the pin count: 3 large runs + 3 small.
    assert_eq!(probe::take_rmw(), 3 * LARGE_PIN_RMW + 3);
    assert_eq!(m.page(8).pincount(), 9);
    assert_eq!(m.page(2).refcount(), 1 + 3 * GUP_PIN_COUNTING_BIAS);
    assert_eq!(m.stats.acquired(), list.len());
    t.unpin_pages_dirty_lock(&list, false).unwrap();
    assert_eq!(probe::take_rmw(), 3 * LARGE_PIN_RMW + 3);
    assert_baseline(&m);
}

#[test]
fn range_runs_cost_one_update_per_folio() {
    let m = machine();
    let t = Tracker::new(&m);
    // Pages 2..14: small 2, small 3, folio 4..8, folio 8..16 (6 pages).
    let range = PageRange::new(pfn(2), 12);
    probe::take_rmw();
    t.pin_range(range).unwrap();
    assert_eq!(probe::take_rmw(), 2 + 2 * LARGE_PIN_RMW);
    assert_eq!((m.page(4).pincount(), m.page(8).pincount()), (4, 6));
    assert_eq!(m.stats.acquired(), 12);
    t.unpin_range_dirty_lock(range, true).unwrap();
    assert_eq!(probe::take_rmw(), 2 + 2 * LARGE_PIN_RMW);
    assert_eq!(m.dirtied(), 4, "one dirtying per folio");
    assert_eq!(m.locks(), 4);
    t.get_range(range).unwrap();
    assert_eq!(probe::take_rmw(), 4);
    t.put_range_dirty_lock(range, true).unwrap();
    assert_eq!(m.dirtied(), 4, "already dirty folios are not locked again");
    assert_eq!(m.locks(), 4);
    assert_eq!(probe::take_rmw(), 4);
    assert_baseline(&m);
}

#[test]
fn a_huge_folio_costs_what_a_small_page_does() {
    let m = TestMachine::<512>::new(0);
    m.prepare(0, 9);
    let t = Tracker::new(&m);
    let range = PageRange::new(pfn(0), 512);
    probe::take_rmw();
    t.pin_range(range).unwrap();
    t.unpin_range(range).unwrap();
    assert_eq!(probe::take_rmw(), 2 * LARGE_PIN_RMW);
    assert_eq!(m.stats.acquired(), 512);
    assert_eq!(m.stats.released(), 512);
}

#[test]
fn a_range_in_one_folio_is_released_in_one_step_with_the_walks_errors() {
    let m = machine();
    let t = Tracker::new(&m);
    let inside = PageRange::new(pfn(9), 3); // in the order-3 folio 8..16
    t.pin_range(inside).unwrap();
    probe::take_rmw();
    t.release_range(inside, Origin::Pinned, true).unwrap();
    assert_eq!(probe::take_rmw(), LARGE_PIN_RMW, "the counts of one folio");
    assert_eq!(m.stats.released(), 3);
    assert_eq!(m.dirtied(), 1);
    // Nothing pinned any more: refused, warned once, nothing changed.
    assert_eq!(
        t.release_range(inside, Origin::Pinned, false),
        Err(PinError::NotPinned { pfn: pfn(8) })
    );
    assert_eq!(m.warnings(), 1);
    assert_eq!(probe::take_rmw(), 0);
    // A page whose shape is corrupt: the walk reports it, warned once.
    let order = crate::FolioOrder::try_new(2).unwrap();
    m.page(6).init(0, FolioShape::new(order, 1).unwrap());
    assert_eq!(
        t.release_range(PageRange::single(pfn(6)), Origin::Referenced, false),
        Err(PinError::CorruptCounters { pfn: pfn(6) })
    );
    assert_eq!(m.warnings(), 2);
    m.page(6).init(0, FolioShape::new(order, 2).unwrap());
    // A range running past its folio still takes the walk.
    let across = PageRange::new(pfn(3), 3); // small 3, then folio 4..8
    t.get_range(across).unwrap();
    probe::take_rmw();
    t.release_range(across, Origin::Referenced, false).unwrap();
    assert_eq!(probe::take_rmw(), 2);
    assert_baseline(&m);
}

#[test]
fn dirty_lock_skips_folios_already_dirty_and_dirties_each_folio_once() {
    let m = machine();
    let t = Tracker::new(&m);
    m.page(4).set_flags(PageFlags::DIRTY);
    let list = pfns(&[4, 5, 1, 9]);
    t.pin_pages(&list).unwrap();
    t.unpin_pages_dirty_lock(&list, true).unwrap();
    assert_eq!(m.dirtied(), 2);
    for head in [1, 4, 8] {
        assert!(m.page(head).flags().contains(PageFlags::DIRTY));
        assert!(!m.page(head).flags().contains(PageFlags::LOCKED));
    }
    t.pin_pages(&list).unwrap();
    t.unpin_pages_dirty_lock(&list, false).unwrap();
    assert_eq!(m.locks(), 2, "make_dirty=false takes no lock");
    assert_baseline(&m);
}

#[test]
fn dirty_range_lock_locks_each_clean_folio_once_and_changes_no_count() {
    let m = machine();
    let t = Tracker::new(&m);
    // Small page 3, all of folio 4..8, the first page of folio 8..16.
    let range = PageRange::new(pfn(3), 6);
    assert_eq!(t.range_dirty(range), Ok(false));
    t.dirty_range_lock(range).unwrap();
    assert_eq!((m.locks(), m.dirtied()), (3, 3), "one lock per folio run");
    assert_eq!(t.range_dirty(range), Ok(true));
    t.dirty_range_lock(range).unwrap();
    assert_eq!(m.locks(), 3, "already dirty: no lock taken");
    for head in [3, 4, 8] {
        assert!(!m.page(head).flags().contains(PageFlags::LOCKED));
    }
    assert_eq!(
        t.range_dirty(PageRange::new(pfn(2), 2)),
        Ok(false),
        "page 2 is clean"
    );
    assert_baseline(&m);
}

#[test]
fn dirty_range_reports_pages_outside_the_map_and_still_dirties_the_rest() {
    let m = machine();
    let t = Tracker::new(&m);
    let range = PageRange::new(pfn(15), 2); // 16 is outside the map
    assert_eq!(
        t.dirty_range_lock(range),
        Err(PinError::NotInMemoryMap { pfn: pfn(16) })
    );
    assert!(m.page(8).flags().contains(PageFlags::DIRTY));
    assert_eq!(
        t.range_dirty(PageRange::single(pfn(16))),
        Err(PinError::NotInMemoryMap { pfn: pfn(16) })
    );
}

#[test]
fn pin_overflow_leaves_no_partial_increment() {
    let m = machine();
    let t = Tracker::new(&m);
    let near = REFCOUNT_MAX - GUP_PIN_COUNTING_BIAS + 1;
    m.page(3).init(near, FolioShape::SMALL);
    let list = pfns(&[0, 8, 9, 1, 3, 2]);
    let err = t.pin_pages(&list).unwrap_err();
    assert_eq!(
        err,
        PinError::RefcountOverflow {
            pfn: pfn(3),
            refcount: near,
            adding: u64::from(GUP_PIN_COUNTING_BIAS)
        }
    );
    assert_eq!(m.page(3).refcount(), near);
    for head in [0, 1, 2, 8] {
        assert_eq!(m.page(head).refcount(), 1, "undone: {head}");
        assert_eq!(m.page(head).pincount(), 0);
    }
    assert_eq!(m.stats.acquired(), 0);
    assert_eq!(m.stats.released(), 0);
    assert_eq!(m.warnings(), 0, "overflow is a refusal, not a bug");
    // One pin less fits exactly up to the ceiling.
    m.page(3).init(near - 1, FolioShape::SMALL);
    t.pin_page(pfn(3)).unwrap();
    assert_eq!(m.page(3).refcount(), REFCOUNT_MAX);
    assert!(t.get_page(pfn(3)).is_err());
}

/// Delegates to a test machine, and drops the allocation reference of
/// `victim` the first time the tracker asks about `trigger`: the owner
/// of `victim` letting go in the middle of a batch.
struct OwnerLetsGo<'m> {
    inner: &'m TestMachine<16>,
    trigger: Pfn,
    victim: Pfn,
    fired: core::cell::Cell<bool>,
}

impl MemoryMap for OwnerLetsGo<'_> {
    fn counters(&self, pfn: Pfn) -> Option<&crate::PageCounters> {
        self.inner.counters(pfn)
    }
    fn is_zero_page(&self, pfn: Pfn) -> bool {
        if pfn == self.trigger && !self.fired.replace(true) {
            Tracker::new(self.inner).put_page(self.victim).unwrap();
        }
        self.inner.is_zero_page(pfn)
    }
}

impl PageOps for OwnerLetsGo<'_> {
    fn free_folio(&self, folio: FolioRef<'_>) {
        self.inner.free_folio(folio);
    }
    fn warn(&self, warning: Warning) {
        self.inner.warn(warning);
    }
    fn pins_acquired(&self, pages: usize) {
        self.inner.pins_acquired(pages);
    }
    fn pins_released(&self, pages: usize) {
        self.inner.pins_released(pages);
    }
}

#[test]
fn undo_of_a_failed_batch_frees_a_folio_whose_owner_let_go() {
    let m = machine();
    let order = m.map.folio(pfn(8)).unwrap().order();
    m.page(8).init(REFCOUNT_MAX, FolioShape::head(order));
    let meddler = OwnerLetsGo {
        inner: &m,
        trigger: pfn(8),
        victim: pfn(4),
        fired: core::cell::Cell::new(false),
    };
    let t = Tracker::new(&meddler);
    // Pins 4..8 (one run), then the run on folio 8 overflows; meanwhile
    // the owner of folio 4 dropped its reference, so the undo drops the
    // last references and must free folio 4, once.
    assert!(matches!(
        t.pin_range(PageRange::new(pfn(4), 12)),
        Err(PinError::RefcountOverflow { pfn: p, .. }) if p == pfn(8)
    ));
    assert_eq!(m.frees(4), 1);
    assert_eq!((m.page(4).refcount(), m.page(4).pincount()), (0, 0));
    assert_eq!(m.page(8).refcount(), REFCOUNT_MAX);
    assert_eq!(m.stats.acquired(), 0);
    assert_eq!(m.stats.released(), 0);
    assert_eq!(m.warnings(), 0);
}

#[test]
fn large_folio_get_overflow_carries_the_seen_count() {
    let m = machine();
    let t = Tracker::new(&m);
    let order = m.map.folio(pfn(4)).unwrap().order();
    m.page(4).init(REFCOUNT_MAX - 2, FolioShape::head(order));
    assert_eq!(
        t.get_range(PageRange::new(pfn(4), 4)),
        Err(PinError::RefcountOverflow {
            pfn: pfn(4),
            refcount: REFCOUNT_MAX - 2,
            adding: 4
        })
    );
    assert_eq!(m.page(4).refcount(), REFCOUNT_MAX - 2);
    t.get_range(PageRange::new(pfn(4), 2)).unwrap();
    assert_eq!(m.page(4).refcount(), REFCOUNT_MAX);
}

#[test]
fn a_run_longer_than_any_count_overflows_cleanly() {
    let m = machine();
    let t = Tracker::new(&m);
    // 2^22 copies of one small page: 2^32 references, more than a u32.
    let count = 1usize << 22;
    let list: Vec<Pfn> = core::iter::repeat_n(pfn(1), if cfg!(miri) { 4 } else { count }).collect();
    if cfg!(miri) {
        return;
    }
    assert_eq!(
        t.pin_pages(&list),
        Err(PinError::RefcountOverflow {
            pfn: pfn(1),
            refcount: 1,
            adding: 1 << 32
        })
    );
    assert_eq!(
        t.unpin_pages(&list),
        Err(PinError::NotPinned { pfn: pfn(1) })
    );
    assert_eq!(m.page(1).refcount(), 1);
}

#[test]
fn lookup_failure_fails_a_grab_and_skips_only_that_page_on_release() {
    let m = machine();
    let t = Tracker::new(&m);
    let list = pfns(&[1, 99, 2]);
    assert_eq!(
        t.pin_pages(&list),
        Err(PinError::NotInMemoryMap { pfn: pfn(99) })
    );
    assert_baseline(&m);
    t.pin_pages(&pfns(&[1, 2])).unwrap();
    assert_eq!(
        t.unpin_pages(&list),
        Err(PinError::NotInMemoryMap { pfn: pfn(99) })
    );
    assert_baseline(&m);
}

#[test]
fn release_continues_past_a_refused_run_and_reports_the_first_error() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_pages(&pfns(&[1, 9])).unwrap();
    // 2 holds no pin: refused; 1 and 9 are released.
    assert_eq!(
        t.unpin_pages(&pfns(&[1, 2, 9])),
        Err(PinError::NotPinned { pfn: pfn(2) })
    );
    assert_eq!(m.warnings(), 1);
    assert_baseline(&m);
}

#[test]
fn corrupt_folio_shape_is_warned_and_refused() {
    let m = machine();
    let t = Tracker::new(&m);
    // Page 6 claims to be index 1 of an order-2 folio headed at 5,
    // which is itself a tail.
    m.page(6).init(
        0,
        FolioShape::new(crate::FolioOrder::try_new(2).unwrap(), 1).unwrap(),
    );
    assert_eq!(
        t.pin_page(pfn(6)),
        Err(PinError::CorruptCounters { pfn: pfn(6) })
    );
    assert_eq!(
        m.last_warning(),
        Some(Warning::CorruptFolio { pfn: pfn(6) })
    );
    assert_eq!(
        t.maybe_dma_pinned(pfn(6)),
        Err(PinError::CorruptCounters { pfn: pfn(6) })
    );
}

#[test]
fn empty_arrays_and_ranges_are_no_ops() {
    let m = machine();
    let t = Tracker::new(&m);
    probe::take_rmw();
    t.pin_pages(&[]).unwrap();
    t.unpin_pages(&[]).unwrap();
    t.pin_range(PageRange::new(pfn(0), 0)).unwrap();
    t.put_range_dirty_lock(PageRange::new(pfn(0), 0), true)
        .unwrap();
    assert_eq!(probe::take_rmw(), 0);
    assert_baseline(&m);
}

#[test]
fn release_range_follows_the_origin() {
    let m = machine();
    let t = Tracker::new(&m);
    let range = PageRange::new(pfn(4), 4);
    t.pin_range(range).unwrap();
    t.get_range(range).unwrap();
    t.release_range(range, Origin::Borrowed, true).unwrap();
    assert_eq!(m.page(4).refcount(), 9);
    assert!(m.page(4).flags().is_empty());
    t.release_range(range, Origin::Pinned, true).unwrap();
    t.release_range(range, Origin::Referenced, false).unwrap();
    assert!(m.page(4).flags().contains(PageFlags::DIRTY));
    assert_baseline(&m);
}

#[test]
fn page_range_rejects_overflow_and_knows_its_pages() {
    assert!(PageRange::try_new(Pfn::MAX, 0).is_ok());
    assert!(PageRange::try_new(Pfn::MAX, 1).is_ok());
    assert_eq!(
        PageRange::try_new(Pfn::new(Pfn::MAX.get() - 1), 3),
        Err(PinError::RangeOverflow {
            first: Pfn::new(Pfn::MAX.get() - 1),
            count: 3
        })
    );
    let r = PageRange::new(pfn(10), 5);
    assert_eq!(r.last(), Some(pfn(14)));
    assert!(r.contains(pfn(10)) && r.contains(pfn(14)));
    assert!(!r.contains(pfn(9)) && !r.contains(pfn(15)));
    assert_eq!(r.prefix(2).last(), Some(pfn(11)));
}

/// Splitmix64: a tiny deterministic generator for property tests.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

#[test]
fn random_balanced_sequences_return_every_count_to_baseline() {
    let rounds = if cfg!(miri) { 3 } else { 200 };
    let mut rng = SplitMix(0x5eed);
    let m = machine();
    let t = Tracker::new(&m);
    for _ in 0..rounds {
        let len = 1 + rng.below(12);
        let list: Vec<Pfn> = (0..len).map(|_| pfn(rng.below(16))).collect();
        let first = rng.below(16);
        let range = PageRange::new(pfn(first), rng.below(16 - first) + 1);
        t.pin_pages(&list).unwrap();
        t.get_range(range).unwrap();
        t.pin_range(range).unwrap();
        t.get_pages(&list).unwrap();
        for &p in &list {
            assert_eq!(t.maybe_dma_pinned(p), Ok(true));
        }
        let dirty = rng.next() & 1 == 1;
        t.put_pages_dirty_lock(&list, dirty).unwrap();
        t.unpin_range_dirty_lock(range, dirty).unwrap();
        t.put_range(range).unwrap();
        t.unpin_pages(&list).unwrap();
    }
    assert_eq!(m.warnings(), 0);
    assert!(m.stats.acquired() > 0);
    assert_baseline(&m);
}

#[test]
fn add_pin_adds_one_pin_to_a_pinned_small_page_or_large_folio() {
    let m = machine();
    let t = Tracker::new(&m);
    t.pin_page(pfn(1)).unwrap();
    t.add_pin(pfn(1)).unwrap();
    assert_eq!(m.page(1).refcount(), 1 + 2 * GUP_PIN_COUNTING_BIAS);
    // A tail page of the order-2 folio: one reference and one pin more.
    t.pin_page(pfn(5)).unwrap();
    t.add_pin(pfn(6)).unwrap();
    assert_eq!((m.page(4).refcount(), m.page(4).pincount()), (3, 2));
    assert_eq!(m.stats.acquired(), 4, "both added pins are accounted");
    // Each added pin is released like any other.
    t.unpin_pages(&pfns(&[1, 1, 5, 6])).unwrap();
    assert_eq!(m.warnings(), 0);
    assert_baseline(&m);
}

#[test]
fn add_pin_to_an_unpinned_folio_is_warned_and_refused() {
    let m = crate::ArrayMemoryMap::<8>::new(pfn(0));
    m.prepare_folio(pfn(0), FolioOrder::SMALL).unwrap();
    m.prepare_folio(pfn(4), FolioOrder::try_new(2).unwrap())
        .unwrap();
    let t = Tracker::new(&m);
    t.get_page(pfn(0)).unwrap();
    assert_eq!(t.add_pin(pfn(0)), Err(PinError::NotPinned { pfn: pfn(0) }));
    assert_eq!(t.add_pin(pfn(6)), Err(PinError::NotPinned { pfn: pfn(4) }));
    assert_eq!(
        m.warning_log().collect::<Vec<_>>(),
        [
            Warning::AddPinWithoutPin {
                pfn: pfn(0),
                refcount: 2,
                pincount: 0,
            },
            Warning::AddPinWithoutPin {
                pfn: pfn(4),
                refcount: 1,
                pincount: 0,
            },
        ]
    );
    // Nothing changed and nothing was accounted.
    assert_eq!(m.counters(pfn(0)).unwrap().refcount(), 2);
    assert_eq!(m.counters(pfn(4)).unwrap().refcount(), 1);
    assert_eq!(m.stats().acquired(), 0);
    // A large folio whose last pin was dropped is unpinned again.
    t.pin_page(pfn(5)).unwrap();
    t.unpin_page(pfn(5)).unwrap();
    assert_eq!(t.add_pin(pfn(5)), Err(PinError::NotPinned { pfn: pfn(4) }));
    assert_eq!(m.warnings(), 3);
}

#[test]
fn add_pin_to_the_zero_page_changes_nothing_and_counts_nothing() {
    let m = crate::ArrayMemoryMap::<2>::new(pfn(0)).with_zero_page(pfn(0));
    m.prepare_folio(pfn(0), FolioOrder::SMALL).unwrap();
    let t = Tracker::new(&m);
    t.pin_page(pfn(0)).unwrap();
    t.add_pin(pfn(0)).unwrap();
    assert_eq!(m.counters(pfn(0)).unwrap().refcount(), 1);
    assert_eq!((m.stats().acquired(), m.warnings()), (0, 0));
}

#[test]
fn add_pin_outside_the_map_is_an_error_without_a_warning() {
    let m = machine();
    let t = Tracker::new(&m);
    assert_eq!(
        t.add_pin(pfn(99)),
        Err(PinError::NotInMemoryMap { pfn: pfn(99) })
    );
    assert_eq!(m.warnings(), 0);
}

#[test]
fn a_grab_kind_names_the_origin_it_leaves_in_a_bio() {
    assert_eq!(GrabKind::Pin.origin(), Origin::Pinned);
    assert_eq!(GrabKind::Get.origin(), Origin::Referenced);
}

#[test]
fn a_tracker_hands_back_the_hooks_it_works_through() {
    let m = machine();
    let t = Tracker::new(&m);
    assert!(core::ptr::eq(t.ops(), &m));
}
