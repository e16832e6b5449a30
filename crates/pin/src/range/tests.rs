use super::*;

#[test]
fn a_range_knows_its_first_and_last_page_and_its_length() {
    let range = PageRange::new(Pfn::new(5), 2);
    assert_eq!(range.first(), Pfn::new(5));
    assert_eq!(range.last(), Some(Pfn::new(6)));
    assert_eq!(range.len(), 2);
    assert!(!range.is_empty());
    assert!(range.contains(Pfn::new(6)) && !range.contains(Pfn::new(7)));
    let empty = PageRange::new(Pfn::new(5), 0);
    assert_eq!(empty.last(), None);
    assert!(empty.is_empty());
    assert!(!empty.contains(Pfn::new(5)));
}
