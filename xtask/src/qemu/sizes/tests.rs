use super::*;

/// A legacy-mangled symbol whose first path component is `first`.
fn legacy(first: &str) -> String {
    format!("_ZN{}{first}4main17h0123456789abcdefE", first.len())
}

#[test]
fn legacy_symbols_name_their_crate() {
    assert_eq!(crate_of(&legacy("gupio_demo_kernel")), "gupio_demo_kernel");
    assert_eq!(crate_of(&legacy("gupio_pin")), "gupio_pin");
}

#[test]
fn trait_impls_name_the_type_crate_or_the_trait_crate_for_generics() {
    let concrete =
        "_$LT$gupio_demo_kernel..pagemap..PageMap$u20$as$u20$gupio_pin..map..PageOps$GT$";
    assert_eq!(crate_of(&legacy(concrete)), "gupio_demo_kernel");
    let generic = "_$LT$T$u20$as$u20$gupio_release..Warn$GT$";
    assert_eq!(crate_of(&legacy(generic)), "gupio_release");
}

#[test]
fn v0_symbols_name_their_innermost_crate() {
    assert_eq!(crate_of("_RNvNtCs1a2b_4core3fmt5write"), "core");
    assert_eq!(
        crate_of("_RNvCs9_17compiler_builtins6memcpy"),
        "compiler_builtins"
    );
}

#[test]
fn impls_on_primitives_are_cores() {
    // From the kernel's ELF: `<u128>::_fmt_inner`, `<char>::escape_debug_ext`.
    assert_eq!(
        crate_of("_RNvMs0_NtNtCsduH8GDKzQ6M_4core3fmt3numo10__fmt_inner"),
        "core"
    );
    assert_eq!(
        crate_of("_RNvMNtNtCsduH8GDKzQ6M_4core4char7methodsc16escape_debug_ext"),
        "core"
    );
}

#[test]
fn other_symbols_are_bucketed() {
    assert_eq!(crate_of("memcpy"), "(not Rust)");
    assert_eq!(crate_of("_ZNnot-a-length"), "(unknown Rust)");
    assert_eq!(
        crate_of("_RINvNtCs1_4core3ptr13drop_in_placeNtCs2_9gupio_pin7TrackerEB4_"),
        "core",
        "a generic instance belongs to the generic's crate"
    );
}

#[test]
fn gupio_share_counts_the_core_crates_but_not_the_kernel() {
    for krate in [
        "gupio",
        "gupio_pin",
        "gupio_bio",
        "gupio_release",
        "gupio_pfn",
    ] {
        assert!(is_gupio_crate(krate), "{krate}");
    }
    for krate in ["gupio_demo_kernel", "core", "virtio_drivers", "gupiox"] {
        assert!(!is_gupio_crate(krate), "{krate}");
    }
}
