use super::*;
use std::string::ToString;

#[test]
fn every_error_displays_its_pfn_and_cause() {
    let pfn = Pfn::new(0x1c);
    let cases: [(WritebackError<i32>, &str); 6] = [
        (WritebackError::NotInMemoryMap { pfn }, "memory map"),
        (WritebackError::CorruptFolio { pfn }, "contradicts"),
        (WritebackError::Locked { pfn }, "locked"),
        (WritebackError::UnderWriteback { pfn }, "under writeback"),
        (WritebackError::WriteInPlace { pfn, error: -5 }, "-5"),
        (WritebackError::WriteBounced { pfn, error: -28 }, "-28"),
    ];
    for (error, needle) in cases {
        let text = error.to_string();
        assert!(text.contains("0x1c"), "{text:?} lacks the pfn");
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
        assert_eq!(error.pfn(), pfn);
    }
}

#[test]
fn only_lock_and_writeback_conflicts_are_busy() {
    let pfn = Pfn::new(3);
    assert!(WritebackError::<u8>::Locked { pfn }.is_busy());
    assert!(WritebackError::<u8>::UnderWriteback { pfn }.is_busy());
    assert!(!WritebackError::<u8>::CorruptFolio { pfn }.is_busy());
    assert!(!WritebackError::WriteInPlace { pfn, error: 1u8 }.is_busy());
    assert!(!WritebackError::WriteBounced { pfn, error: 1u8 }.is_busy());
}

#[test]
fn an_error_names_its_frame_and_whether_the_folio_was_busy() {
    assert_eq!(
        WritebackError::<()>::Locked { pfn: Pfn::new(8) }.pfn(),
        Pfn::new(8)
    );
    assert!(WritebackError::<()>::UnderWriteback { pfn: Pfn::new(1) }.is_busy());
    assert!(WritebackError::<()>::Locked { pfn: Pfn::new(1) }.is_busy());
    assert!(!WritebackError::<()>::NotInMemoryMap { pfn: Pfn::new(1) }.is_busy());
}
