//! The `rmw-stats` counter: one count per committed reference or pin count
//! update, from every thread. One test function, since the count is global
//! and tests in one binary run in parallel.
#![cfg(all(feature = "rmw-stats", not(loom)))]

use gupio_pfn::Pfn;
use gupio_pin::{rmw_stats, ArrayMemoryMap, FolioOrder, MemoryMap, PageFlags, PageRange, Tracker};

#[test]
fn global_count_sees_each_folio_run_update_from_every_thread() {
    // Pages 0..4 small, 512..1024 one order-9 folio.
    let map = ArrayMemoryMap::<1024>::new(Pfn::new(0));
    for pfn in 0..4 {
        map.prepare_folio(Pfn::new(pfn), FolioOrder::SMALL).unwrap();
    }
    map.prepare_folio(Pfn::new(512), FolioOrder::try_new(9).unwrap())
        .unwrap();
    let tracker = Tracker::new(&map);
    rmw_stats::take();

    // Small pages: one refcount update per page (each its own folio run).
    let small = PageRange::new(Pfn::new(0), 4);
    tracker.pin_range(small).unwrap();
    assert_eq!(rmw_stats::take(), 4);
    tracker.unpin_range(small).unwrap();
    assert_eq!(rmw_stats::take(), 4);

    // A large folio: the refcount and the exact pin count, once per run:
    // one update where they share a 64-bit word, two where they do not.
    let per_run = if gupio_pin::PageCounters::COUNTS_IN_ONE_WORD {
        1
    } else {
        2
    };
    let large = PageRange::new(Pfn::new(512), 512);
    tracker.pin_range(large).unwrap();
    assert_eq!(rmw_stats::take(), per_run);
    tracker.unpin_range(large).unwrap();
    assert_eq!(rmw_stats::take(), per_run);

    // Refused updates and flag updates are not counted.
    assert!(tracker.unpin_range(small).is_err());
    map.counters(Pfn::new(0))
        .unwrap()
        .set_flags(PageFlags::DIRTY);
    assert_eq!(rmw_stats::take(), 0);

    // Two threads: both counted.
    let shared = &map;
    std::thread::scope(|scope| {
        for first in [0, 2] {
            scope.spawn(move || {
                let tracker = Tracker::new(shared);
                tracker
                    .get_range(PageRange::new(Pfn::new(first), 2))
                    .unwrap();
            });
        }
    });
    assert_eq!(rmw_stats::take(), 4);
    tracker.put_range(small).unwrap();
    assert_eq!(rmw_stats::take(), 4);
    assert_eq!(map.stats().acquired(), map.stats().released());
}
