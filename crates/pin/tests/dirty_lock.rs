//! The dirtying paths (`Tracker::dirty_range_lock`, the `*_dirty_lock`
//! releases) mark each folio dirty while holding its lock: checked
//! deterministically by a `PageOps` that records who holds which lock, so
//! a path that dirties without taking the lock, or after dropping it,
//! fails every run.
//!
//! The mutation this catches, `cargo xtask mutants dirty-without-lock`
//! (`dirty_range_lock` dirtying without taking the folio lock), fails
//! `dirty_range_lock_dirties_each_folio_under_its_lock` with "dirtied
//! without its lock held by the dirtier"; the same deletion in the
//! `make_dirty` branch of `release_run` fails
//! `unpin_and_put_with_dirty_lock_dirty_each_folio_under_its_lock`.

use std::cell::RefCell;

use gupio_pfn::Pfn;
use gupio_pin::{
    ArrayMemoryMap, FolioOrder, FolioRef, MemoryMap, PageCounters, PageFlags, PageOps, PageRange,
    Tracker, Warning,
};

/// A memory map whose lock hooks record the folios the caller holds and
/// whose `mark_folio_dirty` refuses a folio the caller does not hold.
struct LockWitness {
    map: ArrayMemoryMap<8>,
    held: RefCell<Vec<Pfn>>,
    locks: RefCell<u32>,
    dirtied: RefCell<Vec<Pfn>>,
}

impl LockWitness {
    /// A small page at 0 and an order-2 folio at 4, both clean.
    fn new() -> Self {
        let map = ArrayMemoryMap::new(Pfn::new(0));
        map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
        map.prepare_folio(Pfn::new(4), FolioOrder::try_new(2).unwrap())
            .unwrap();
        Self {
            map,
            held: RefCell::new(Vec::new()),
            locks: RefCell::new(0),
            dirtied: RefCell::new(Vec::new()),
        }
    }

    /// Checks every lock was dropped and every folio is clean of LOCKED.
    fn assert_all_unlocked(&self) {
        assert!(self.held.borrow().is_empty(), "a folio lock left held");
        for head in [0, 4] {
            let flags = self.map.counters(Pfn::new(head)).unwrap().flags();
            assert!(!flags.contains(PageFlags::LOCKED), "LOCKED left set");
        }
    }
}

impl MemoryMap for LockWitness {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.map.counters(pfn)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        self.map.is_zero_page(pfn)
    }
}

impl PageOps for LockWitness {
    fn free_folio(&self, folio: FolioRef<'_>) {
        panic!("folio {:?} freed: the tests keep a reference", folio.head());
    }

    fn warn(&self, warning: Warning) {
        panic!("unexpected warning {warning:?}");
    }

    fn pins_acquired(&self, _pages: usize) {}

    fn pins_released(&self, _pages: usize) {}

    fn lock_folio(&self, folio: FolioRef<'_>) {
        // Single-threaded: a held lock here would spin forever.
        assert!(folio.counters().try_lock(), "folio locked twice");
        self.held.borrow_mut().push(folio.head());
        *self.locks.borrow_mut() += 1;
    }

    fn unlock_folio(&self, folio: FolioRef<'_>) {
        let mut held = self.held.borrow_mut();
        let at = held.iter().position(|&head| head == folio.head());
        held.remove(at.expect("unlocked a folio the caller does not hold"));
        folio.counters().unlock();
    }

    fn mark_folio_dirty(&self, folio: FolioRef<'_>) {
        assert!(
            self.held.borrow().contains(&folio.head())
                && folio.counters().flags().contains(PageFlags::LOCKED),
            "folio {:?} dirtied without its lock held by the dirtier",
            folio.head()
        );
        self.dirtied.borrow_mut().push(folio.head());
        folio.counters().set_flags(PageFlags::DIRTY);
    }
}

#[test]
fn dirty_range_lock_dirties_each_folio_under_its_lock() {
    let m = LockWitness::new();
    let t = Tracker::new(&m);
    // Pages 0..7: the small page, a free page, and the order-2 folio from
    // its head.
    t.dirty_range_lock(PageRange::single(Pfn::new(0))).unwrap();
    t.dirty_range_lock(PageRange::new(Pfn::new(5), 3)).unwrap();
    assert_eq!(*m.dirtied.borrow(), [Pfn::new(0), Pfn::new(4)]);
    assert_eq!(*m.locks.borrow(), 2, "one lock per folio run");
    m.assert_all_unlocked();

    // Dirty already: no lock, no second dirtying.
    t.dirty_range_lock(PageRange::new(Pfn::new(4), 4)).unwrap();
    assert_eq!(*m.locks.borrow(), 2);
    assert_eq!(m.dirtied.borrow().len(), 2);
}

#[test]
fn unpin_and_put_with_dirty_lock_dirty_each_folio_under_its_lock() {
    let m = LockWitness::new();
    let t = Tracker::new(&m);
    t.pin_range(PageRange::new(Pfn::new(4), 4)).unwrap();
    t.get_page(Pfn::new(0)).unwrap();
    t.unpin_range_dirty_lock(PageRange::new(Pfn::new(4), 4), true)
        .unwrap();
    t.put_pages_dirty_lock(&[Pfn::new(0)], true).unwrap();
    assert_eq!(*m.dirtied.borrow(), [Pfn::new(4), Pfn::new(0)]);
    assert_eq!(*m.locks.borrow(), 2);
    m.assert_all_unlocked();
}

/// The witness has teeth: dirtying a folio nobody locked panics.
#[test]
#[should_panic(expected = "dirtied without its lock held by the dirtier")]
fn dirtying_without_the_lock_is_caught() {
    let m = LockWitness::new();
    m.mark_folio_dirty(m.folio(Pfn::new(0)).unwrap());
}

/// The witness has teeth: the LOCKED bit set by someone else is not the
/// caller's lock.
#[test]
#[should_panic(expected = "dirtied without its lock held by the dirtier")]
fn another_holders_lock_bit_does_not_count() {
    let m = LockWitness::new();
    let folio = m.folio(Pfn::new(4)).unwrap();
    assert!(folio.counters().try_lock());
    m.mark_folio_dirty(folio);
}
