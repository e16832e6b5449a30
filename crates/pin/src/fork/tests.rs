use super::*;
use crate::testing::TestMachine;
use crate::{ArrayMemoryMap, PageRange, Tracker, GUP_PIN_COUNTING_BIAS};

fn pfn(raw: usize) -> Pfn {
    Pfn::new(raw)
}

/// The zero page at 0, small pages 1..4, an order-2 folio 4..8.
fn machine() -> TestMachine<8> {
    let m = TestMachine::with_map(ArrayMemoryMap::new(pfn(0)).with_zero_page(pfn(0)));
    for small in 0..4 {
        m.prepare(small, 0);
    }
    m.prepare(4, 2);
    m
}

#[test]
fn an_unpinned_page_is_shared_and_a_pinned_one_copied() {
    let m = machine();
    let t = Tracker::new(&m);
    assert_eq!(fork_action(&m, pfn(1)), Ok(ForkAction::Share));
    t.pin_page(pfn(1)).unwrap();
    assert_eq!(fork_action(&m, pfn(1)), Ok(ForkAction::Copy));
    t.unpin_page(pfn(1)).unwrap();
    assert_eq!(fork_action(&m, pfn(1)), Ok(ForkAction::Share));
}

#[test]
fn a_large_folio_is_copied_exactly_when_pinned_whichever_page_holds_the_pin() {
    let m = machine();
    let t = Tracker::new(&m);
    // Many plain references (the child entries of earlier forks): no pin.
    t.get_range(PageRange::new(pfn(4), 4)).unwrap();
    for _ in 0..GUP_PIN_COUNTING_BIAS {
        t.get_page(pfn(5)).unwrap();
    }
    assert_eq!(fork_action(&m, pfn(7)), Ok(ForkAction::Share), "exact");
    t.pin_page(pfn(6)).unwrap();
    for page in 4..8 {
        assert_eq!(fork_action(&m, pfn(page)), Ok(ForkAction::Copy));
    }
    t.unpin_page(pfn(6)).unwrap();
    assert_eq!(fork_action(&m, pfn(4)), Ok(ForkAction::Share));
}

#[test]
fn a_small_page_with_a_bias_of_plain_references_is_copied_needlessly() {
    // The documented false positive: a copy too many, never a pin shared.
    let m = machine();
    let t = Tracker::new(&m);
    for _ in 0..GUP_PIN_COUNTING_BIAS {
        t.get_page(pfn(2)).unwrap();
    }
    assert_eq!(fork_action(&m, pfn(2)), Ok(ForkAction::Copy));
}

#[test]
fn the_zero_page_is_shared_and_unknown_pages_are_errors() {
    let m = machine();
    Tracker::new(&m).pin_page(pfn(0)).unwrap(); // changes nothing
    assert_eq!(fork_action(&m, pfn(0)), Ok(ForkAction::Share));
    assert_eq!(
        fork_action(&m, pfn(9)),
        Err(PinError::NotInMemoryMap { pfn: pfn(9) })
    );
}
