use super::*;

#[test]
fn every_error_displays_its_values() {
    let addr = UserAddr::new(0x4000);
    let cases: [(HostError, &str); 7] = [
        (HostError::OutOfMemory { order: 9 }, "order 9"),
        (HostError::NotMapped { addr }, "0x4000"),
        (
            HostError::Fault {
                addr,
                kind: FaultKind::AccessDenied,
            },
            "access denied",
        ),
        (
            HostError::PastEndOfFile {
                file: FileId(3),
                index: 77,
            },
            "77",
        ),
        (HostError::MisalignedFolio { index: 4, order: 3 }, "index 4"),
        (
            HostError::Io {
                status: BioStatus::Timeout,
            },
            "timeout",
        ),
        (IoError::OutOfMemory { order: 2 }.into(), "order 2"),
    ];
    for (error, needle) in cases {
        assert!(error.to_string().contains(needle), "{error}");
    }
}

#[test]
fn an_io_error_says_what_the_device_reported() {
    let error = IoError::Device {
        status: BioStatus::Medium,
    };
    assert_eq!(
        error.to_string(),
        "the device failed the write: medium error"
    );
}

#[test]
fn a_core_error_converts_and_keeps_its_values() {
    let error: HostError = PinError::PageFree {
        pfn: Pfn::new(0x20),
    }
    .into();
    assert!(matches!(
        error,
        HostError::Core(gupio::Error::Pin(PinError::PageFree { .. }))
    ));
    assert!(error.to_string().contains("0x20"));
}
