//! The demo's command line, read with `lexopt` (as xtask reads its own):
//! which scenario to run, and the pieces each scenario's parser
//! (`demo::parse_args`, `demo::dio_write::parse_args`) shares.
//!
//! lexopt splits the arguments (`--pages 64`, `--pages=64`, `-h`) and names
//! the option in its errors; the usage texts stay hand-written beside each
//! scenario's parser (`demo::USAGE`, `demo::dio_write::USAGE`), so `--help`
//! prints what the code beside it reads.

use std::ffi::OsString;
use std::str::FromStr;

use lexopt::prelude::*;
use lexopt::{Arg, Parser};

/// The workloads `gupio-demo` runs, chosen with `--scenario NAME`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Direct-I/O reads racing writeback, without and with gupio (the default).
    DioRead,
    /// Direct-I/O writes from buffers that keep changing, in each stable mode.
    DioWrite,
}

impl Scenario {
    /// The name `--scenario` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DioRead => "dio-read",
            Self::DioWrite => "dio-write",
        }
    }

    fn from_name(name: &str) -> Result<Self, String> {
        [Self::DioRead, Self::DioWrite]
            .into_iter()
            .find(|scenario| scenario.name() == name)
            .ok_or_else(|| format!("--scenario: `{name}` is not dio-read or dio-write"))
    }
}

/// The scenario the arguments select: the last `--scenario NAME` (or
/// `--scenario=NAME`) anywhere among them, [`Scenario::DioRead`] if none.
/// Nothing else is checked here: the scenario's own parser reads every
/// argument again and names what is wrong.
///
/// # Errors
/// A message naming `--scenario` when its value is missing or names no
/// scenario.
pub fn scenario<I>(args: I) -> Result<Scenario, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = Parser::from_args(args);
    let mut selected = Scenario::DioRead;
    while let Some(arg) = parser.next().map_err(|error| error.to_string())? {
        match arg {
            Long("scenario") => {
                selected = Scenario::from_name(&string(&mut parser, "--scenario")?)?;
            }
            // Another option's value, when attached (`--pages=64`), is
            // dropped here; a separate one comes back as a `Value`.
            Long(_) | Short(_) => {
                let _ = parser.optional_value();
            }
            Value(_) => {}
        }
    }
    Ok(selected)
}

/// A parser over `args` (without the program name).
pub(super) fn parser<I>(args: I) -> Parser
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    Parser::from_args(args)
}

/// The next argument, with lexopt's error (which names the option) as text.
pub(super) fn next(parser: &mut Parser) -> Result<Option<Arg<'_>>, String> {
    parser.next().map_err(|error| error.to_string())
}

/// The value of the option `name` just read, as UTF-8.
pub(super) fn string(parser: &mut Parser, name: &str) -> Result<String, String> {
    let value = parser.value().map_err(|error| error.to_string())?;
    value
        .into_string()
        .map_err(|value| format!("{name}: {value:?} is not UTF-8"))
}

/// The value of the option `name` just read, as a number.
pub(super) fn number<T: FromStr>(parser: &mut Parser, name: &str) -> Result<T, String> {
    let text = string(parser, name)?;
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not a number"))
}

/// The value of the option `name` just read, as a count of at least `min`.
pub(super) fn count(parser: &mut Parser, name: &str, min: usize) -> Result<usize, String> {
    let value: u64 = number(parser, name)?;
    usize::try_from(value)
        .ok()
        .filter(|&v| v >= min)
        .ok_or_else(|| format!("{name} must be at least {min}"))
}

/// `--scenario NAME` met by the parser of `own`: the binary chose `own`
/// from that same argument, so any other name is an error.
pub(super) fn own_scenario(parser: &mut Parser, own: Scenario) -> Result<(), String> {
    let named = Scenario::from_name(&string(parser, "--scenario")?)?;
    if named == own {
        Ok(())
    } else {
        Err(format!(
            "--scenario: `{}` given to the {} parser",
            named.name(),
            own.name()
        ))
    }
}

/// The error for an argument the parser does not take; it names it.
pub(super) fn unexpected(arg: Arg<'_>) -> String {
    arg.unexpected().to_string()
}

#[cfg(test)]
mod tests;
