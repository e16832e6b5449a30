use super::*;
use std::string::ToString;

#[test]
fn every_error_displays_its_value() {
    let pfn = Pfn::new(0xab);
    let addr = UserAddr::new(0x7000);
    let cases = [
        (PinError::NotInMemoryMap { pfn }, "0xab"),
        (
            PinError::RangeOverflow {
                first: pfn,
                count: 9,
            },
            "9 pages",
        ),
        (
            PinError::InvalidFolioShape {
                order: 30,
                index: 1,
            },
            "order 30",
        ),
        (
            PinError::RefcountOverflow {
                pfn,
                refcount: 7,
                adding: 1024,
            },
            "1024",
        ),
        (PinError::PageFree { pfn }, "0xab"),
        (PinError::NotPinned { pfn }, "pins"),
        (PinError::NoReference { pfn }, "references"),
        (PinError::CorruptCounters { pfn }, "contradict"),
        (PinError::PageInUse { pfn }, "in use"),
        (PinError::UnknownGupFlags { bits: 0x80 }, "0x80"),
        (PinError::InternalGupFlags { bits: 0x8 }, "internal"),
        (PinError::GetAndPin { bits: 0xa }, "GET and PIN"),
        (PinError::NeitherGetNorPin { bits: 0 }, "neither"),
        (PinError::LongtermWithoutPin { bits: 4 }, "LONGTERM"),
        (
            PinError::AddressOverflow {
                start: addr,
                nr_pages: 2,
            },
            "wrap",
        ),
        (
            PinError::Fault {
                addr,
                kind: FaultKind::AccessDenied,
            },
            "0x7000",
        ),
        (PinError::FaultNotResolved { addr }, "fault-in"),
        (PinError::WriteToZeroPage { addr }, "zero page"),
        (PinError::LongtermDirtyTracked { addr }, "dirty-tracked"),
        (PinError::NotLongtermPinnable { pfn }, "long term"),
        (
            PinError::PinLimitExceeded {
                limit: 16,
                charged: 12,
                request: 5,
            },
            "5 more 4 KiB pages over the 12 charged passes the owner's limit of 16",
        ),
        (
            PinError::AccountUnderflow {
                charged: 2,
                request: 3,
            },
            "uncharging 3 4 KiB pages from an account holding 2",
        ),
    ];
    for (error, needle) in cases {
        let text = error.to_string();
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
}

#[test]
fn every_warning_displays_its_value() {
    let pfn = Pfn::new(0x10);
    let cases = [
        Warning::UnpinWithoutPin {
            pfn,
            pages: 1,
            refcount: 1,
            pincount: 0,
        },
        Warning::PutWithoutReference {
            pfn,
            refcount: 0,
            dropping: 1,
        },
        Warning::GrabOfFreePage { pfn },
        Warning::RefcountBelowPincount {
            pfn,
            refcount: 1,
            pincount: 2,
        },
        Warning::FreedWhilePinned { pfn, pincount: 1 },
        Warning::CorruptFolio { pfn },
        Warning::AddPinWithoutPin {
            pfn,
            refcount: 1,
            pincount: 0,
        },
    ];
    for warning in cases {
        assert!(warning.to_string().contains("0x10"), "{warning}");
    }
    let account = Warning::AccountUnderflow {
        charged: 1,
        request: 2,
    };
    assert!(
        account
            .to_string()
            .contains("holding 1 4 KiB pages was asked to give back 2"),
        "{account}"
    );
}
