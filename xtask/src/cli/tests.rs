use lexopt::prelude::*;

use super::*;

/// `--seconds N` and one positional, in any order, as `fuzz` reads them.
fn seconds_and_target(list: &[&str]) -> Result<(Option<u64>, Option<String>), Failure> {
    let mut args = from_list(list);
    let (mut seconds, mut target) = (None, None);
    while let Some(arg) = args.next()? {
        match arg {
            Long("seconds") => seconds = Some(count(&mut args, "--seconds")?),
            Value(value) if target.is_none() => target = Some(value.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok((seconds, target))
}

#[test]
fn options_and_positionals_mix_in_any_order() {
    let expected = (Some(5), Some("pfn_encoding".to_owned()));
    for list in [
        &["--seconds", "5", "pfn_encoding"][..],
        &["pfn_encoding", "--seconds=5"],
    ] {
        assert_eq!(seconds_and_target(list), Ok(expected.clone()), "{list:?}");
    }
    assert_eq!(seconds_and_target(&[]), Ok((None, None)));
}

#[test]
fn count_rejects_missing_zero_and_garbage_values() {
    for list in [
        &["--seconds"][..],
        &["--seconds", "--allow-skip"],
        &["--seconds", "0"],
        &["--seconds=ten"],
    ] {
        assert!(
            matches!(seconds_and_target(list), Err(Failure::Usage(_))),
            "{list:?}"
        );
    }
}

#[test]
fn unknown_options_and_extra_arguments_are_usage_errors() {
    let error = seconds_and_target(&["--frobnicate"]).unwrap_err();
    assert!(
        matches!(&error, Failure::Usage(m) if m.contains("--frobnicate")),
        "{error:?}"
    );
    assert!(seconds_and_target(&["one", "two"]).is_err());
    assert!(matches!(
        finish(from_list(&["--allow-skip"])),
        Err(Failure::Usage(m)) if m.contains("--allow-skip")
    ));
    assert_eq!(finish(from_list(&[])), Ok(()));
}

#[test]
fn rest_keeps_every_argument_verbatim() {
    let mut args = from_list(&["demo", "--pages", "256", "--policy=skip", "--", "-x"]);
    assert!(matches!(args.next(), Ok(Some(Value(_)))));
    assert_eq!(
        rest(&mut args),
        Ok(["--pages", "256", "--policy=skip", "--", "-x"]
            .map(str::to_owned)
            .to_vec())
    );
}
