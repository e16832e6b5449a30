use super::*;

#[test]
fn a_shape_word_with_an_order_above_max_reads_as_a_tail_no_lookup_accepts() {
    let shape = FolioShape::from_word(25 | (3 << 8));
    assert_eq!(shape.order(), FolioOrder::SMALL);
    assert_eq!(shape.index(), u32::MAX);
    assert!(!shape.is_head());
    // The largest valid order still round-trips.
    let max = FolioShape::head(FolioOrder::MAX);
    assert_eq!(FolioShape::from_word(max.to_word()), max);
}

#[test]
fn shape_word_round_trips_every_order_and_edge_index() {
    for order in 0..=FolioOrder::MAX.get() {
        let order = FolioOrder::try_new(order).unwrap();
        let last = u32::try_from(order.nr_pages() - 1).unwrap();
        for index in [0, last / 2, last] {
            let shape = FolioShape::new(order, index).unwrap();
            assert_eq!(FolioShape::from_word(shape.to_word()), shape);
        }
        let past = u32::try_from(order.nr_pages()).unwrap();
        assert!(FolioShape::new(order, past).is_err());
    }
}

#[test]
fn add_refuses_free_page_and_ceiling_without_change() {
    let page = PageCounters::new();
    assert_eq!(page.try_add(1, 0), Err(AddRefsError::Free));
    assert_eq!(page.refcount(), 0);

    page.init(REFCOUNT_MAX - 2, FolioShape::SMALL);
    assert_eq!(
        page.try_add(3, 0),
        Err(AddRefsError::Overflow(REFCOUNT_MAX - 2))
    );
    assert_eq!(page.refcount(), REFCOUNT_MAX - 2);
    assert_eq!(page.try_add(2, 0), Ok(()));
    assert_eq!(page.refcount(), REFCOUNT_MAX);
    assert_eq!(
        page.try_add(1, 1),
        Err(AddRefsError::Overflow(REFCOUNT_MAX))
    );
    assert_eq!((page.refcount(), page.pincount()), (REFCOUNT_MAX, 0));
}

#[test]
fn add_treats_a_count_above_the_ceiling_as_overflow() {
    let page = PageCounters::new();
    page.init(u32::MAX, FolioShape::SMALL);
    assert_eq!(page.try_add(1, 0), Err(AddRefsError::Overflow(u32::MAX)));
    assert_eq!(page.refcount(), u32::MAX);
}

#[test]
fn add_and_sub_move_both_counts_together() {
    let page = PageCounters::new();
    page.init(1, FolioShape::head(FolioOrder::try_new(2).unwrap()));
    probe::take_rmw();
    page.try_add(3, 3).unwrap();
    assert_eq!((page.refcount(), page.pincount()), (4, 3));
    assert_eq!(page.try_sub(2, 2), Ok(2));
    assert_eq!((page.refcount(), page.pincount()), (2, 1));
    assert_eq!(probe::take_rmw(), 2 * probe::LARGE_PIN_RMW);
}

#[test]
fn sub_refuses_to_go_below_zero() {
    let page = PageCounters::new();
    page.init(3, FolioShape::SMALL);
    assert_eq!(
        page.try_sub(4, 0),
        Err(SubError::Refs {
            refcount: 3,
            pincount: 0
        })
    );
    assert_eq!(page.refcount(), 3);
    assert_eq!(page.try_sub(2, 0), Ok(1));
    assert_eq!(page.try_sub(1, 0), Ok(0));
    assert!(page.try_sub(1, 0).is_err());
}

#[test]
fn sub_refuses_more_pins_than_held_without_change() {
    let page = PageCounters::new();
    page.init(1, FolioShape::SMALL);
    page.try_add(2, 2).unwrap();
    assert_eq!(
        page.try_sub(3, 3),
        Err(SubError::Pins {
            refcount: 3,
            pincount: 2
        })
    );
    assert_eq!((page.refcount(), page.pincount()), (3, 2));
    assert_eq!(page.try_sub(2, 2), Ok(1));
    assert_eq!(page.pincount(), 0);
}

#[test]
fn a_put_of_references_that_pins_hold() {
    // Only a bug gets here: a plain put of references that stand for
    // pins. The wide layout sees both counts and refuses the put; the
    // split layout commits it, and refuses (and restores) the unpin of
    // pins whose references are gone.
    let page = PageCounters::new();
    page.init(1, FolioShape::SMALL);
    page.try_add(2, 2).unwrap();
    let put = page.try_sub(2, 0);
    if PageCounters::COUNTS_IN_ONE_WORD {
        let seen = SubError::Refs {
            refcount: 3,
            pincount: 2,
        };
        assert_eq!(put, Err(seen));
        assert_eq!((page.refcount(), page.pincount()), (3, 2));
    } else {
        assert_eq!(put, Ok(1));
        let seen = SubError::Refs {
            refcount: 1,
            pincount: 2,
        };
        assert_eq!(page.try_sub(2, 2), Err(seen));
        assert_eq!((page.refcount(), page.pincount()), (1, 2));
    }
}

#[test]
fn init_resets_pins_flags_and_shape() {
    let page = PageCounters::new();
    page.init(1, FolioShape::SMALL);
    page.try_add(5, 5).unwrap();
    page.set_flags(PageFlags::DIRTY | PageFlags::LOCKED);
    let order = FolioOrder::try_new(3).unwrap();
    page.init(1, FolioShape::head(order));
    assert_eq!(page.pincount(), 0);
    assert!(page.flags().is_empty());
    assert_eq!(page.shape(), FolioShape::head(order));
    assert_eq!(page.refcount(), 1);
}

#[test]
fn lock_bit_excludes_and_keeps_other_flags() {
    let page = PageCounters::new();
    page.set_flags(PageFlags::UPTODATE);
    assert!(page.try_lock());
    assert!(!page.try_lock());
    assert_eq!(page.flags(), PageFlags::UPTODATE | PageFlags::LOCKED);
    page.unlock();
    assert_eq!(page.flags(), PageFlags::UPTODATE);
}

#[test]
fn probe_counts_only_committed_count_updates() {
    let page = PageCounters::new();
    probe::take_rmw();
    page.init(1, FolioShape::SMALL);
    page.set_flags(PageFlags::DIRTY);
    assert_eq!(probe::take_rmw(), 0);
    page.try_add(1, 0).unwrap();
    page.try_sub(1, 0).unwrap();
    assert!(page.try_sub(5, 0).is_err());
    assert_eq!(probe::take_rmw(), 2);
    page.try_add(1, 1).unwrap();
    page.try_sub(1, 1).unwrap();
    assert_eq!(probe::take_rmw(), 2 * probe::LARGE_PIN_RMW);
}

#[test]
fn a_small_shape_is_its_own_head_at_order_zero() {
    assert_eq!(FolioShape::SMALL.order(), FolioOrder::SMALL);
    assert_eq!(FolioShape::SMALL.index(), 0);
    assert!(FolioShape::SMALL.is_head());
    let tail = FolioShape::new(FolioOrder::try_new(2).unwrap(), 3).unwrap();
    assert_eq!((tail.order().get(), tail.index()), (2, 3));
    assert!(!tail.is_head());
}

#[test]
fn flags_read_back_what_was_set() {
    let page = PageCounters::new();
    assert!(page.flags().is_empty());
    page.set_flags(PageFlags::UPTODATE);
    assert_eq!(page.flags(), PageFlags::UPTODATE);
}
