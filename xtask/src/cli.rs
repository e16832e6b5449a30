//! The command line after `cargo xtask`, read with `lexopt`.
//!
//! lexopt rather than clap or argh: it has no dependencies and no proc
//! macro, so xtask's first build stays short, and it only splits the
//! arguments (`--seconds 5`, `--seconds=5`, `--`, positionals), leaving the
//! usage text to the hand-written `USAGE` each subcommand keeps beside its
//! code (clap would generate a second one that drifts from it). Each
//! subcommand's `main` reads its own options in a `match` on
//! `lexopt::Arg`.

use crate::Failure;

/// The remaining command-line arguments.
pub type Args = lexopt::Parser;

/// The process's arguments after the program name.
pub fn from_env() -> Args {
    lexopt::Parser::from_env()
}

/// Arguments from a list (for tests).
#[cfg(test)]
pub fn from_list(items: &[&str]) -> Args {
    lexopt::Parser::from_args(items.iter().copied())
}

impl From<lexopt::Error> for Failure {
    fn from(error: lexopt::Error) -> Self {
        Self::Usage(error.to_string())
    }
}

/// The value of the option `name` just read, as a count above zero.
pub fn count(args: &mut Args, name: &str) -> Result<u64, Failure> {
    let value = args.value()?;
    let value = value.to_string_lossy();
    match value.parse::<u64>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(Failure::Usage(format!(
            "`{name}` needs a whole number above zero, not `{value}`"
        ))),
    }
}

/// The value of the option just read, as UTF-8.
pub fn string(args: &mut Args) -> Result<String, Failure> {
    Ok(lexopt::ValueExt::string(args.value()?)?)
}

/// Every argument not read yet, verbatim (for a subcommand that passes
/// them on).
pub fn rest(args: &mut Args) -> Result<Vec<String>, Failure> {
    args.raw_args()?
        .map(|arg| {
            arg.into_string()
                .map_err(|arg| Failure::Usage(format!("argument {arg:?} is not UTF-8")))
        })
        .collect()
}

/// Fails on any argument left (for a subcommand that takes none).
pub fn finish(mut args: Args) -> Result<(), Failure> {
    match args.next()? {
        None => Ok(()),
        Some(arg) => Err(arg.unexpected().into()),
    }
}

#[cfg(test)]
mod tests {
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
}
