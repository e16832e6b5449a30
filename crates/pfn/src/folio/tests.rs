use super::*;

fn order(n: u32) -> FolioOrder {
    FolioOrder::try_new(n).unwrap()
}

#[test]
fn orders_up_to_max_are_accepted_and_above_refused() {
    assert_eq!(FolioOrder::try_new(0), Ok(FolioOrder::SMALL));
    assert_eq!(FolioOrder::try_new(24), Ok(FolioOrder::MAX));
    assert_eq!(
        FolioOrder::try_new(25),
        Err(PfnError::OrderTooLarge { order: 25 })
    );
    assert_eq!(
        FolioOrder::try_new(u32::MAX),
        Err(PfnError::OrderTooLarge { order: u32::MAX })
    );
}

#[test]
fn order_accessors() {
    assert_eq!(FolioOrder::MAX.get(), 24);
    assert_eq!(FolioOrder::SMALL.nr_pages(), 1);
    assert_eq!(order(9).nr_pages(), 512);
    assert!(!FolioOrder::SMALL.is_large());
    assert!(order(1).is_large());
    assert_eq!(order(3).to_string(), "order 3");
}

#[test]
fn a_folio_head_must_be_aligned_to_its_page_count() {
    assert!(Folio::new(Pfn::new(16), order(4)).is_ok());
    assert_eq!(
        Folio::new(Pfn::new(8), order(4)),
        Err(PfnError::UnalignedFolio { head: 8, order: 4 })
    );
    assert!(Folio::new(Pfn::new(0), FolioOrder::MAX).is_ok());
    // Any page is a one-page folio.
    assert_eq!(
        Folio::new(Pfn::new(3), FolioOrder::SMALL),
        Ok(Folio::single(Pfn::new(3)))
    );
}

#[test]
fn the_last_aligned_folio_below_pfn_max_fits() {
    let o = FolioOrder::MAX;
    let head = Pfn::new(Pfn::MAX.get() & !(o.nr_pages() - 1));
    let folio = Folio::new(head, o).unwrap();
    assert_eq!(head.checked_add(folio.nr_pages() - 1), Some(Pfn::MAX));
}

#[test]
fn folio_accessors() {
    let f = Folio::new(Pfn::new(4), order(2)).unwrap();
    assert_eq!(f.head(), Pfn::new(4));
    assert_eq!(f.order(), order(2));
    assert_eq!(f.nr_pages(), 4);
    assert!(f.is_large());
    assert!(!Folio::single(Pfn::new(4)).is_large());
    assert_eq!(f.size(PageGeometry::SIXTEEN_KIB), 64 * 1024);
    assert_eq!(
        Folio::new(Pfn::new(0), FolioOrder::MAX)
            .unwrap()
            .size(PageGeometry::SIXTY_FOUR_KIB),
        1 << 40
    );
}

#[test]
fn contains_and_pages_from_cover_exactly_the_folio() {
    let f = Folio::new(Pfn::new(4), order(2)).unwrap();
    assert!(!f.contains(Pfn::new(3)));
    assert!(f.contains(Pfn::new(4)) && f.contains(Pfn::new(7)));
    assert!(!f.contains(Pfn::new(8)));
    assert_eq!(f.pages_from(Pfn::new(4)), 4);
    assert_eq!(f.pages_from(Pfn::new(5)), 3);
    assert_eq!(f.pages_from(Pfn::new(7)), 1);
    assert_eq!(f.pages_from(Pfn::new(8)), 0);
    assert_eq!(f.pages_from(Pfn::new(0)), 0);
}

#[test]
fn containing_rounds_down_to_the_head() {
    let f = Folio::containing(Pfn::new(0x3ff), order(9));
    assert_eq!(f.head(), Pfn::new(0x200));
    assert_eq!(
        Folio::containing(Pfn::new(7), FolioOrder::SMALL).head(),
        Pfn::new(7)
    );
}
