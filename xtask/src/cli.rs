//! The command line after `cargo xtask`, read with `lexopt`.
//!
//! lexopt rather than clap or argh: it has no dependencies and no proc
//! macro, so xtask's first build stays short, and it only splits the
//! arguments (`--seconds 5`, `--seconds=5`, `--`, positionals), leaving the
//! usage text to the hand-written `USAGE` each subcommand keeps beside its
//! code (clap would generate a second one that drifts from it). Each
//! subcommand's `main` reads its own options in a `match` on
//! `lexopt::Arg`.

use crate::step::Failure;

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
mod tests;
