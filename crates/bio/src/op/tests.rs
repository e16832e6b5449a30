use super::*;

#[test]
fn only_reads_and_writes_carry_data_and_only_reads_dirty_pages() {
    let ops = [BioOp::Read, BioOp::Write, BioOp::Flush, BioOp::Discard];
    let data: Vec<bool> = ops.iter().map(|op| op.has_data()).collect();
    let dirties: Vec<bool> = ops.iter().map(|op| op.dirties_pages()).collect();
    assert_eq!(data, [true, true, false, false]);
    assert_eq!(dirties, [true, false, false, false]);
}

#[test]
fn a_new_status_is_ok_and_every_other_status_is_an_error() {
    assert_eq!(BioStatus::default(), BioStatus::Ok);
    assert!(BioStatus::Ok.is_ok() && !BioStatus::Ok.is_err());
    for status in &BioStatus::ALL[1..] {
        assert!(status.is_err() && !status.is_ok(), "{status:?}");
    }
}

#[test]
fn every_status_round_trips_its_byte_and_no_other_byte_decodes() {
    for (n, status) in BioStatus::ALL.iter().enumerate() {
        assert_eq!(usize::from(status.to_raw()), n);
        assert_eq!(BioStatus::from_raw(status.to_raw()), Some(*status));
        assert_eq!(status.is_ok(), n == 0);
        assert!(!status.to_string().is_empty());
    }
    for raw in 12..=u8::MAX {
        assert_eq!(BioStatus::from_raw(raw), None);
    }
}

#[test]
fn status_bytes_and_names_are_fixed() {
    assert_eq!(BioStatus::Ok.to_raw(), 0);
    assert_eq!(BioStatus::from_raw(8), Some(BioStatus::IoError));
    assert_eq!(BioStatus::from_raw(200), None);
    assert_eq!(BioStatus::Timeout.to_string(), "timeout");
    assert_eq!(BioStatus::Medium.to_string(), "medium error");
}

#[test]
fn origin_sets_hold_their_origins_and_need_release_unless_only_borrowed() {
    let flags = [
        (Origin::Pinned, OriginSet::PINNED),
        (Origin::Referenced, OriginSet::REFERENCED),
        (Origin::Borrowed, OriginSet::BORROWED),
    ];
    for (origin, flag) in flags {
        assert_eq!(OriginSet::of(origin), flag);
        assert_eq!(OriginSet::from(origin), flag);
        for (other, _) in flags {
            assert_eq!(flag.has(other), other == origin, "{flag:?} has {other:?}");
        }
        assert_eq!(flag.needs_release(), origin != Origin::Borrowed);
    }
    assert!(!OriginSet::empty().needs_release());
    assert!((OriginSet::BORROWED | OriginSet::PINNED).needs_release());
    assert!((OriginSet::BORROWED | OriginSet::REFERENCED).needs_release());
}
