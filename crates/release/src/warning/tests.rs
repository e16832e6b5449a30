use gupio_pfn::Pfn;
use gupio_pin::{ArrayMemoryMap, PageOps, Tracker, Warning};

use super::{AnyWarning, ReleaseWarning, Warn};

#[test]
fn release_warnings_name_what_broke() {
    let cases = [
        (ReleaseWarning::BvecWithoutPage { index: 7 }, "bvec 7"),
        (ReleaseWarning::DoubleCompletion, "twice"),
        (
            ReleaseWarning::CorruptCompletionStatus { raw: 0x10 },
            "0x10",
        ),
    ];
    for (warning, text) in cases {
        assert!(warning.to_string().contains(text), "{warning}");
        assert_eq!(AnyWarning::from(warning).to_string(), warning.to_string());
    }
}

#[test]
fn either_layers_warning_converts_into_any_warning() {
    let pin = Warning::GrabOfFreePage { pfn: Pfn::new(3) };
    assert_eq!(AnyWarning::from(pin), AnyWarning::Pin(pin));
    assert_eq!(AnyWarning::from(pin).to_string(), pin.to_string());
    let release = ReleaseWarning::DoubleCompletion;
    assert_eq!(AnyWarning::from(release), AnyWarning::Release(release));
}

#[test]
fn the_array_map_logs_pin_and_release_warnings_in_the_order_they_fired() {
    let map = ArrayMemoryMap::<2, AnyWarning>::new(Pfn::new(0));
    Warn::warn(&map, ReleaseWarning::DoubleCompletion);
    assert!(
        Tracker::new(&map).get_page(Pfn::new(1)).is_err(),
        "a free page"
    );
    PageOps::warn(&map, Warning::CorruptFolio { pfn: Pfn::new(0) });
    Warn::warn(&map, ReleaseWarning::CorruptCompletionStatus { raw: 9 });
    assert_eq!(
        map.warning_log().collect::<Vec<_>>(),
        [
            AnyWarning::Release(ReleaseWarning::DoubleCompletion),
            AnyWarning::Pin(Warning::GrabOfFreePage { pfn: Pfn::new(1) }),
            AnyWarning::Pin(Warning::CorruptFolio { pfn: Pfn::new(0) }),
            AnyWarning::Release(ReleaseWarning::CorruptCompletionStatus { raw: 9 }),
        ]
    );
    assert_eq!(map.warnings(), 4);
}
