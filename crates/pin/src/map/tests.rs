use super::*;
use crate::PageRange;

fn order(n: u32) -> FolioOrder {
    FolioOrder::try_new(n).unwrap()
}

#[test]
fn folio_lookup_finds_head_from_every_tail() {
    let map = ArrayMemoryMap::<16>::new(Pfn::new(32));
    map.prepare_folio(Pfn::new(40), order(3)).unwrap();
    for pfn in 40..48 {
        let folio = map.folio(Pfn::new(pfn)).unwrap();
        assert_eq!(folio.head(), Pfn::new(40));
        assert_eq!(folio.order(), order(3));
        assert_eq!(folio.pages_from(Pfn::new(pfn)), 48 - pfn);
    }
    assert_eq!(map.folio(Pfn::new(39)).unwrap().head(), Pfn::new(39));
}

#[test]
fn folio_lookup_reports_pfn_outside_map() {
    let map = ArrayMemoryMap::<4>::new(Pfn::new(4));
    assert_eq!(
        map.folio(Pfn::new(3)).unwrap_err(),
        PinError::NotInMemoryMap { pfn: Pfn::new(3) }
    );
    assert_eq!(
        map.folio(Pfn::new(8)).unwrap_err(),
        PinError::NotInMemoryMap { pfn: Pfn::new(8) }
    );
}

#[test]
fn folio_lookup_detects_a_tail_whose_head_disagrees() {
    let map = ArrayMemoryMap::<4>::new(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), order(2)).unwrap();
    // Re-shape the head as a small page behind the tails' back.
    map.counters(Pfn::new(0))
        .unwrap()
        .init(1, FolioShape::SMALL);
    assert_eq!(
        map.folio(Pfn::new(2)).unwrap_err(),
        PinError::CorruptCounters { pfn: Pfn::new(2) }
    );
    // A tail whose head would lie before the map.
    let stray = ArrayMemoryMap::<2>::new(Pfn::new(0));
    stray
        .counters(Pfn::new(0))
        .unwrap()
        .init(0, FolioShape::new(order(2), 3).unwrap());
    assert_eq!(
        stray.folio(Pfn::new(0)).unwrap_err(),
        PinError::CorruptCounters { pfn: Pfn::new(0) }
    );
}

#[test]
fn prepare_refuses_folio_past_the_map_and_pages_in_use() {
    let map = ArrayMemoryMap::<4>::new(Pfn::new(0));
    assert!(matches!(
        map.prepare_folio(Pfn::new(4), order(2)),
        Err(PinError::NotInMemoryMap { .. })
    ));
    assert_eq!(
        map.prepare_folio(Pfn::new(2), order(2)),
        Err(PinError::InvalidFolio {
            error: gupio_pfn::PfnError::UnalignedFolio { head: 2, order: 2 }
        })
    );
    assert_eq!(
        map.prepare_folio(Pfn::new(9), order(0)),
        Err(PinError::NotInMemoryMap { pfn: Pfn::new(9) })
    );
    map.prepare_folio(Pfn::new(0), order(1)).unwrap();
    assert_eq!(
        map.prepare_folio(Pfn::new(0), order(2)),
        Err(PinError::PageInUse { pfn: Pfn::new(0) })
    );
    // Nothing changed: page 2 is still a free small page.
    assert_eq!(
        map.counters(Pfn::new(2)).unwrap().shape(),
        FolioShape::SMALL
    );
    // Once the folio is free, its pages may be re-shaped.
    map.counters(Pfn::new(0)).unwrap().try_sub(1, 0).unwrap();
    map.prepare_folio(Pfn::new(1), order(0)).unwrap();
    assert_eq!(map.folio(Pfn::new(1)).unwrap().head(), Pfn::new(1));
}

#[test]
fn zero_page_and_movable_range_are_reported() {
    let map = ArrayMemoryMap::<8>::new(Pfn::new(0))
        .with_zero_page(Pfn::new(7))
        .with_movable(PageRange::new(Pfn::new(2), 3));
    assert!(map.is_zero_page(Pfn::new(7)));
    assert!(!map.is_zero_page(Pfn::new(6)));
    let pinnable: Vec<bool> = (0..8)
        .map(|p| map.is_longterm_pinnable(Pfn::new(p)))
        .collect();
    assert_eq!(
        pinnable,
        [true, true, false, false, false, true, true, true]
    );
}

#[test]
fn maybe_dma_pinned_is_false_for_the_zero_page_even_with_many_references() {
    let map = ArrayMemoryMap::<1>::new(Pfn::new(0)).with_zero_page(Pfn::new(0));
    map.counters(Pfn::new(0))
        .unwrap()
        .init(5000, FolioShape::SMALL);
    assert_eq!(maybe_dma_pinned(&map, Pfn::new(0)), Ok(false));
}

#[test]
fn pin_stats_track_in_flight_pins() {
    let stats = PinStats::default();
    stats.record_acquired(10);
    stats.record_released(4);
    assert_eq!(stats.in_flight(), 6);
    assert!(format!("{stats:?}").contains("acquired: 10"));
}

#[test]
fn the_warning_log_keeps_which_warnings_fired_in_order() {
    use crate::Tracker;
    let map = ArrayMemoryMap::<2>::new(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    let tracker = Tracker::new(&map);
    assert!(tracker.get_page(Pfn::new(1)).is_err(), "a free page");
    assert!(tracker.unpin_page(Pfn::new(0)).is_err(), "never pinned");
    assert_eq!(
        map.warning_log().collect::<Vec<_>>(),
        [
            Warning::GrabOfFreePage { pfn: Pfn::new(1) },
            Warning::UnpinWithoutPin {
                pfn: Pfn::new(0),
                pages: 1,
                refcount: 1,
                pincount: 0,
            },
        ]
    );
    assert_eq!(map.warnings(), 2);
}

#[test]
fn the_warning_log_keeps_the_first_warnings_and_counts_them_all() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HOOKED: AtomicUsize = AtomicUsize::new(0);
    fn hook(_: Warning) {
        HOOKED.fetch_add(1, Ordering::Relaxed);
    }
    let map = ArrayMemoryMap::<1>::new(Pfn::new(0)).with_warn_hook(hook);
    let total = WARNING_LOG_LEN + 3;
    for pfn in 0..total {
        map.warn(Warning::CorruptFolio { pfn: Pfn::new(pfn) });
    }
    let logged: Vec<_> = map.warning_log().collect();
    assert_eq!(logged.len(), WARNING_LOG_LEN);
    for (pfn, warning) in logged.into_iter().enumerate() {
        assert_eq!(warning, Warning::CorruptFolio { pfn: Pfn::new(pfn) });
    }
    assert_eq!(map.warnings(), total);
    assert_eq!(HOOKED.load(Ordering::Relaxed), total);
}

#[test]
fn pin_stats_count_acquired_released_and_in_flight() {
    let s = PinStats::new();
    assert_eq!((s.acquired(), s.released(), s.in_flight()), (0, 0, 0));
    s.record_acquired(5);
    assert_eq!((s.acquired(), s.in_flight()), (5, 5));
    s.record_released(5);
    assert_eq!((s.released(), s.in_flight()), (5, 0));
}

#[test]
fn the_array_map_reports_its_shape_and_what_happened_to_it() {
    use crate::Tracker;
    let map = ArrayMemoryMap::<4>::new(Pfn::new(10));
    assert_eq!(
        (map.base(), map.len(), map.is_empty()),
        (Pfn::new(10), 4, false)
    );
    assert!(ArrayMemoryMap::<0>::new(Pfn::new(0)).is_empty());
    assert_eq!(map.index_of(Pfn::new(12)), Some(2));
    assert_eq!(map.index_of(Pfn::new(9)), None);
    assert_eq!(map.index_of(Pfn::new(14)), None);
    assert_eq!(
        (map.stats().in_flight(), map.folios_freed(), map.warnings()),
        (0, 0, 0)
    );
    map.prepare_folio(Pfn::new(10), FolioOrder::SMALL).unwrap();
    let tracker = Tracker::new(&map);
    tracker.pin_page(Pfn::new(10)).unwrap();
    assert_eq!(map.stats().in_flight(), 1);
    tracker.unpin_page(Pfn::new(10)).unwrap();
    tracker.put_page(Pfn::new(10)).unwrap();
    assert_eq!(map.folios_freed(), 1);
    assert_eq!(map.stats().in_flight(), 0);
}

#[test]
fn pinned_beyond_counts_only_pins_past_the_callers_own() {
    let map = ArrayMemoryMap::<8>::new(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    map.prepare_folio(Pfn::new(4), order(2)).unwrap();
    let tracker = crate::Tracker::new(&map);
    let small = || map.folio(Pfn::new(0)).unwrap();
    let large = || map.folio(Pfn::new(4)).unwrap();
    // Nobody's pins: nothing beyond any count.
    assert!(!small().pinned_beyond(0) && !large().pinned_beyond(0));
    // The caller's own pins: one on the small page, two pages of the folio.
    tracker.pin_page(Pfn::new(0)).unwrap();
    tracker
        .pin_range(PageRange::try_new(Pfn::new(4), 2).unwrap())
        .unwrap();
    assert!(small().pinned_beyond(0), "a pin past none");
    assert!(!small().pinned_beyond(1), "exactly the caller's own");
    assert!(large().pinned_beyond(1));
    assert!(!large().pinned_beyond(2));
    // Someone else pins one more page of each.
    tracker.pin_page(Pfn::new(0)).unwrap();
    tracker.pin_page(Pfn::new(7)).unwrap();
    assert!(small().pinned_beyond(1) && !small().pinned_beyond(2));
    assert!(large().pinned_beyond(2) && !large().pinned_beyond(3));
    // Plain references never add up to a pin of a large folio; on a small
    // page they are a false positive only once they reach a whole bias.
    tracker.get_page(Pfn::new(5)).unwrap();
    assert!(!large().pinned_beyond(3));
    assert!(!small().pinned_beyond(2));
    // A count no page can hold saturates instead of wrapping.
    assert!(!small().pinned_beyond(u32::MAX));
}
