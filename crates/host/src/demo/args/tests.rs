use super::*;
use crate::demo::{dio_write, parse_args, Command, DemoConfig};

#[test]
fn the_scenario_is_dio_read_unless_named_and_the_last_name_wins() {
    assert_eq!(scenario(Vec::<String>::new()), Ok(Scenario::DioRead));
    assert_eq!(
        scenario(["--pages", "64", "--quiet"]),
        Ok(Scenario::DioRead)
    );
    for args in [
        &["--scenario", "dio-write"][..],
        &["--scenario=dio-write"],
        &["--writers", "3", "--scenario", "dio-write", "--help"],
        &["--scenario", "dio-read", "--scenario=dio-write"],
    ] {
        assert_eq!(
            scenario(args.iter().copied()),
            Ok(Scenario::DioWrite),
            "{args:?}"
        );
    }
    assert_eq!(
        scenario(["--scenario", "dio-write", "--scenario", "dio-read"]),
        Ok(Scenario::DioRead)
    );
}

#[test]
fn another_option_s_attached_value_is_not_read_as_an_option() {
    // `--scenario` here is the value of --policy, not an option.
    assert_eq!(scenario(["--policy=--scenario"]), Ok(Scenario::DioRead));
    assert_eq!(
        scenario(["--seed=--scenario", "--scenario=dio-write"]),
        Ok(Scenario::DioWrite)
    );
}

#[test]
fn a_missing_or_unknown_scenario_is_named() {
    let missing = scenario(["--pages", "64", "--scenario"]).unwrap_err();
    assert!(missing.contains("--scenario"), "{missing}");
    let unknown = scenario(["--scenario=dio-sideways"]).unwrap_err();
    assert!(
        unknown.contains("dio-sideways") && unknown.contains("dio-read or dio-write"),
        "{unknown}"
    );
}

#[test]
fn each_scenario_is_selected_by_its_name() {
    for each in [Scenario::DioRead, Scenario::DioWrite] {
        let name = each.name();
        assert_eq!(scenario(["--scenario", name]), Ok(each), "{name}");
    }
    assert_eq!(Scenario::DioRead.name(), "dio-read");
    assert_eq!(Scenario::DioWrite.name(), "dio-write");
}

#[test]
fn the_whole_command_line_goes_to_the_selected_scenarios_parser() {
    // What the binary does: select, then parse the same arguments again.
    let line = ["--writers", "3", "--scenario", "dio-write", "--sizes=8"];
    assert_eq!(scenario(line), Ok(Scenario::DioWrite));
    let config = dio_write::parse_args(line).unwrap().unwrap();
    assert_eq!((config.writers, config.sizes), (3, vec![8192]));
    let line = ["--scenario=dio-read", "--pages", "32"];
    assert_eq!(scenario(line), Ok(Scenario::DioRead));
    let Ok(Command::Run(config)) = parse_args(line) else {
        panic!("{:?}", parse_args(line))
    };
    assert_eq!(config.pages, 32);
}

#[test]
fn a_scenarios_parser_refuses_the_other_scenarios_options() {
    let error = parse_args(["--scenario", "dio-write"]).unwrap_err();
    assert!(error.contains("dio-write"), "{error}");
    let error = dio_write::parse_args(["--scenario=dio-read"]).unwrap_err();
    assert!(error.contains("dio-read"), "{error}");
}

#[test]
fn values_attached_or_separate_parse_the_same() {
    let separate = parse_args(["--pages", "64", "--ios", "9", "--policy", "skip"]);
    let attached = parse_args(["--pages=64", "--ios=9", "--policy=skip"]);
    assert_eq!(separate, attached);
    let Ok(Command::Run(config)) = separate else {
        panic!("{separate:?}")
    };
    assert_eq!((config.pages, config.ios), (64, 9));
    assert_eq!(config.threads, DemoConfig::default().threads);
}

#[test]
fn missing_values_and_stray_arguments_are_named() {
    for (args, named) in [
        (&["--pages"][..], "--pages"),
        (&["--ios", "9", "--seed"], "--seed"),
        (&["--quiet=yes"], "--quiet"),
        (&["stray"], "stray"),
        (&["-x"], "-x"),
    ] {
        let error = parse_args(args.iter().copied()).unwrap_err();
        assert!(error.contains(named), "{args:?}: {error}");
    }
    for (args, named) in [
        (&["--stores"][..], "--stores"),
        (&["--sizes", "4,x"], "`x`"),
        (&["--mib-per-writer", "-1"], "--mib-per-writer"),
        (&["stray"], "stray"),
    ] {
        let error = dio_write::parse_args(args.iter().copied()).unwrap_err();
        assert!(error.contains(named), "{args:?}: {error}");
    }
}

#[test]
fn help_short_or_long_asks_for_the_usage() {
    for help in ["-h", "--help"] {
        assert_eq!(parse_args(["--pages", "64", help]), Ok(Command::Help));
        assert_eq!(dio_write::parse_args([help]), Ok(None));
    }
}

#[cfg(unix)]
#[test]
fn a_value_that_is_not_utf8_is_an_error_not_a_panic() {
    use std::os::unix::ffi::OsStringExt;
    let args = [
        OsString::from("--policy"),
        OsString::from_vec(vec![0xff, 0xfe]),
    ];
    let error = parse_args(args.clone()).unwrap_err();
    assert!(
        error.contains("--policy") && error.contains("UTF-8"),
        "{error}"
    );
    let args = [OsString::from("--scenario"), OsString::from_vec(vec![0xff])];
    assert!(scenario(args).unwrap_err().contains("--scenario"));
}
