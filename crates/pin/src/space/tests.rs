use super::*;
use crate::testing::{pfn, ro, rw, user, Entry, TestSpace};

#[test]
fn a_user_address_gives_back_its_raw_value() {
    assert_eq!(UserAddr::new(1).get(), 1);
    assert_eq!(UserAddr::new(0x7fff_1234).get(), 0x7fff_1234);
}

#[test]
fn the_default_run_translation_stops_at_a_gap_or_other_flags() {
    let space = TestSpace::new(&[
        Entry::Present(rw(4)),
        Entry::Present(rw(5)),
        Entry::Present(ro(6)),
        Entry::Present(rw(7)),
    ]);
    let run = space.translate_run(user(0), 8).unwrap().unwrap();
    assert_eq!((run.pfn, run.pages), (pfn(4), 2), "page 2 is read-only");
    let run = space.translate_run(user(2), 8).unwrap().unwrap();
    assert_eq!(run.pages, 1, "page 3 is writable");
    let run = space.translate_run(user(3), 8).unwrap().unwrap();
    assert_eq!(run.pages, 1, "page 4 is unmapped");
    assert_eq!(space.translate_run(user(0), 1).unwrap().unwrap().pages, 1);
}
