use super::*;

#[test]
fn pinned_nightly_is_one_dated_toolchain_name() {
    let name = pinned_nightly();
    assert!(name.starts_with("nightly-"), "{name}");
    assert!(!name.contains(char::is_whitespace), "{name}");
}

#[test]
fn missing_program_says_which_package_installs_it() {
    let missing = Tool::Program {
        name: "gupio-no-such-program",
        package: "gupio-tools",
    }
    .check()
    .unwrap_err();
    assert_eq!(missing.tool, "gupio-no-such-program");
    assert_eq!(missing.install, "apt-get install -y gupio-tools");
}

#[test]
fn executables_are_found_on_path_by_file_name() {
    let missing = Tool::Executable {
        name: "gupio-no-such-program",
        package: "gupio-tools",
    }
    .check()
    .unwrap_err();
    assert_eq!(missing.install, "apt-get install -y gupio-tools");
    assert!(on_path("sh"), "every POSIX system has sh on PATH");
}

#[test]
fn unknown_target_has_no_standard_library() {
    assert!(!has_target_std("gupio-imaginary-target"));
}

#[test]
fn the_install_script_pins_the_same_cbindgen() {
    let script = include_str!("../../../ci/install.sh");
    assert!(
        script.contains(&format!("cbindgen_version={CBINDGEN_VERSION}\n")),
        "ci/install.sh and xtask must name one cbindgen release"
    );
}
