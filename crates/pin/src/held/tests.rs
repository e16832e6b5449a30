use gupio_pfn::{Origin, PageGeometry, Pfn};

use crate::testing::TestMachine;
use crate::{
    AddressSpace, FaultKind, GupFlags, Mapping, MappingFlags, PinError, Tracker, UserAddr, Warning,
};

/// User page N maps pfn N, writable.
struct Identity;

impl AddressSpace for Identity {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let pfn = Pfn::try_new(addr.get() >> 12).map_err(|_| FaultKind::Unmapped)?;
        Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }
}

/// An order-3 folio at pfn 0 and small pages at 8 and 9.
fn machine() -> TestMachine<10> {
    let m = TestMachine::new(0);
    m.prepare(0, 3);
    m.prepare(8, 0);
    m.prepare(9, 0);
    m
}

fn pin_first_run<'a>(
    t: &Tracker<'a, TestMachine<10>>,
    page: usize,
    pages: usize,
) -> crate::HeldRun<'a, TestMachine<10>> {
    t.pin_user_pages(&Identity, UserAddr::new(page << 12), pages, GupFlags::WRITE)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

#[test]
fn a_dropped_run_warns_and_leaks_its_pins_instead_of_freeing() {
    let m = machine();
    let t = Tracker::new(&m);
    let run = pin_first_run(&t, 2, 3);
    assert_eq!((m.page(0).refcount(), m.page(0).pincount()), (4, 3));
    drop(run);
    assert_eq!(
        m.last_warning(),
        Some(Warning::HeldRunDropped {
            pfn: Pfn::new(2),
            pages: 3,
            origin: Origin::Pinned
        })
    );
    // Leaked, not released: the pins stay, and so does the folio.
    assert_eq!((m.page(0).refcount(), m.page(0).pincount()), (4, 3));
    assert_eq!(m.stats.in_flight(), 3);
    assert_eq!(m.total_frees(), 0);
}

#[test]
fn release_held_unpins_once_and_accounts() {
    let m = machine();
    let t = Tracker::new(&m);
    let run = pin_first_run(&t, 0, 8);
    assert_eq!(run.pages(), 8);
    t.release_held(run, false).unwrap();
    assert_eq!((m.page(0).refcount(), m.page(0).pincount()), (1, 0));
    assert_eq!((m.stats.acquired(), m.stats.released()), (8, 8));
    assert_eq!(m.warnings(), 0);
}

#[test]
fn a_referenced_run_is_put_not_unpinned() {
    let m = machine();
    let t = Tracker::new(&m);
    let run = t
        .get_user_pages(&Identity, UserAddr::new(8 << 12), 1, GupFlags::empty())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(run.origin(), Origin::Referenced);
    assert_eq!(m.page(8).refcount(), 2);
    t.release_held(run, false).unwrap();
    assert_eq!(m.page(8).refcount(), 1);
    assert_eq!(m.stats.acquired(), 0, "references are not pins");
}

#[test]
fn into_raw_hands_the_pins_over_without_releasing_or_warning() {
    let m = machine();
    let t = Tracker::new(&m);
    let run = pin_first_run(&t, 9, 1);
    let (range, origin) = run.into_raw();
    assert_eq!(
        (range.first(), range.len(), origin),
        (Pfn::new(9), 1, Origin::Pinned)
    );
    assert_eq!(m.warnings(), 0);
    assert!(t.maybe_dma_pinned(Pfn::new(9)).unwrap());
    t.release_range(range, origin, false).unwrap();
    assert_eq!(m.page(9).refcount(), 1);
    assert_eq!(m.stats.in_flight(), 0);
}

#[test]
fn split_off_keeps_each_page_with_its_pin_and_refuses_empty_halves() {
    let m = machine();
    let t = Tracker::new(&m);
    let mut run = pin_first_run(&t, 1, 5);
    assert!(run.split_off(0).is_none());
    assert!(run.split_off(5).is_none());
    let tail = run.split_off(2).unwrap();
    assert_eq!((run.first(), run.pages()), (Pfn::new(1), 2));
    assert_eq!((tail.first(), tail.pages()), (Pfn::new(3), 3));
    t.release_held(tail, false).unwrap();
    assert_eq!(m.page(0).pincount(), 2);
    t.release_held(run, false).unwrap();
    assert_eq!((m.page(0).refcount(), m.page(0).pincount()), (1, 0));
}

#[test]
fn releasing_pages_someone_else_released_is_refused_and_warned() {
    let m = machine();
    let t = Tracker::new(&m);
    let run = pin_first_run(&t, 8, 1);
    // A bug elsewhere drops the pin behind the run's back.
    t.unpin_page(Pfn::new(8)).unwrap();
    assert_eq!(
        t.release_held(run, false),
        Err(PinError::NotPinned { pfn: Pfn::new(8) })
    );
    assert_eq!(
        m.page(8).refcount(),
        1,
        "never below the allocation reference"
    );
    assert!(matches!(
        m.last_warning(),
        Some(Warning::UnpinWithoutPin { .. })
    ));
}
