use super::*;
use crate::testing::space::{pfn, ro, rw, user, Entry, TestSpace};

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

#[test]
fn a_mapping_kind_refuses_only_read_only_writes_and_long_term_dirty_tracked_writes() {
    let addr = UserAddr::new(0x4000);
    let denied = Err(PinError::Fault {
        addr,
        kind: FaultKind::AccessDenied,
    });
    let dirty_tracked = Err(PinError::LongtermDirtyTracked { addr });
    let (read, write) = (GupFlags::PIN, GupFlags::PIN | GupFlags::WRITE);
    let (long_read, long_write) = (read | GupFlags::LONGTERM, write | GupFlags::LONGTERM);
    let get_write = GupFlags::GET | GupFlags::WRITE;
    let tracked = MappingKind::SharedFile {
        dirty_tracked: true,
    };
    let untracked = MappingKind::SharedFile {
        dirty_tracked: false,
    };
    // (kind, [read, write, long-term read, long-term write, get for write])
    let table = [
        (MappingKind::Unknown, [Ok(()); 5]),
        (MappingKind::Anonymous, [Ok(()); 5]),
        (MappingKind::PrivateFile, [Ok(()); 5]),
        (untracked, [Ok(()); 5]),
        (MappingKind::Shmem, [Ok(()); 5]),
        (tracked, [Ok(()), Ok(()), Ok(()), dirty_tracked, Ok(())]),
        (
            MappingKind::ReadOnly,
            [Ok(()), denied, Ok(()), denied, denied],
        ),
    ];
    for (kind, expected) in table {
        for (flags, expected) in [read, write, long_read, long_write, get_write]
            .into_iter()
            .zip(expected)
        {
            assert_eq!(kind.check(flags, addr), expected, "{kind:?} {flags:?}");
        }
    }
}
