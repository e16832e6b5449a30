use super::*;
use gupio_pfn::Pfn;

#[test]
fn every_crate_error_converts_and_displays() {
    let pfn = Pfn::new(0x77);
    let errors: [Error<i32>; 5] = [
        PfnError::PfnOutOfRange { pfn: 0x77 }.into(),
        BioError::ZeroLength.into(),
        PinError::NotInMemoryMap { pfn }.into(),
        ReleaseError::DoubleCompletion.into(),
        WritebackError::WriteInPlace { pfn, error: -5 }.into(),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(text.starts_with("gupio: "), "{text}");
    }
    assert!(matches!(
        errors[2],
        Error::Pin(PinError::NotInMemoryMap { .. })
    ));
    assert!(errors[4].to_string().contains("0x77"));
}
