//! The command line after `cargo xtask`, consumed as each part is recognised.

use std::collections::VecDeque;

use crate::Failure;

/// The remaining command-line arguments.
#[derive(Debug)]
pub struct Args {
    items: VecDeque<String>,
}

impl Args {
    /// The process's arguments after the program name.
    pub fn from_env() -> Result<Self, String> {
        let items = std::env::args_os()
            .skip(1)
            .map(|arg| {
                arg.into_string()
                    .map_err(|arg| format!("argument {arg:?} is not UTF-8"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { items })
    }

    /// Arguments from a list (for tests).
    #[cfg(test)]
    pub fn from_list(items: &[&str]) -> Self {
        Self {
            items: items.iter().map(|&item| item.to_owned()).collect(),
        }
    }

    /// Removes and returns the first argument that is not an option.
    pub fn next_positional(&mut self) -> Option<String> {
        let index = self.items.iter().position(|item| !item.starts_with('-'))?;
        self.items.remove(index)
    }

    /// Removes every `name` flag; whether there was one.
    pub fn flag(&mut self, name: &str) -> bool {
        let before = self.items.len();
        self.items.retain(|item| item != name);
        self.items.len() != before
    }

    /// Removes `name VALUE` or `name=VALUE` and parses the value as a count.
    pub fn count(&mut self, name: &str) -> Result<Option<u64>, Failure> {
        let Some(value) = self.value(name)? else {
            return Ok(None);
        };
        match value.parse::<u64>() {
            Ok(count) if count > 0 => Ok(Some(count)),
            _ => Err(Failure::Usage(format!(
                "`{name}` needs a whole number above zero, not `{value}`"
            ))),
        }
    }

    /// Removes `name VALUE` or `name=VALUE`; the value if there was one.
    fn value(&mut self, name: &str) -> Result<Option<String>, Failure> {
        let prefix = format!("{name}=");
        let Some(index) = self
            .items
            .iter()
            .position(|item| item == name || item.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let item = self.items.remove(index).unwrap_or_default();
        if let Some(value) = item.strip_prefix(&prefix) {
            return Ok(Some(value.to_owned()));
        }
        match self.items.remove(index) {
            Some(value) if !value.starts_with('-') => Ok(Some(value)),
            _ => Err(Failure::Usage(format!("`{name}` needs a value"))),
        }
    }

    /// Every argument not consumed yet, in order (for a subcommand that
    /// passes them on).
    pub fn rest(self) -> Vec<String> {
        self.items.into_iter().collect()
    }

    /// Fails on anything not consumed yet.
    pub fn finish(self) -> Result<(), Failure> {
        if self.items.is_empty() {
            Ok(())
        } else {
            let rest: Vec<String> = self.items.into_iter().collect();
            Err(Failure::Usage(format!(
                "unexpected argument(s): {}",
                rest.join(" ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_skips_options() {
        let mut args = Args::from_list(&["--seconds", "5", "pfn_encoding"]);
        assert_eq!(args.count("--seconds"), Ok(Some(5)));
        assert_eq!(args.next_positional().as_deref(), Some("pfn_encoding"));
        assert_eq!(args.finish(), Ok(()));
    }

    #[test]
    fn count_accepts_equals_form() {
        let mut args = Args::from_list(&["--seconds=30"]);
        assert_eq!(args.count("--seconds"), Ok(Some(30)));
        assert_eq!(args.finish(), Ok(()));
    }

    #[test]
    fn count_rejects_missing_zero_and_garbage_values() {
        for list in [
            &["--seconds"][..],
            &["--seconds", "--allow-skip"],
            &["--seconds", "0"],
            &["--seconds=ten"],
        ] {
            let mut args = Args::from_list(list);
            assert!(
                matches!(args.count("--seconds"), Err(Failure::Usage(_))),
                "{list:?}"
            );
        }
    }

    #[test]
    fn absent_count_is_none() {
        let mut args = Args::from_list(&["target"]);
        assert_eq!(args.count("--seconds"), Ok(None));
    }

    #[test]
    fn flag_is_consumed() {
        let mut args = Args::from_list(&["--allow-skip"]);
        assert!(args.flag("--allow-skip"));
        assert!(!args.flag("--allow-skip"));
        assert_eq!(args.finish(), Ok(()));
    }

    #[test]
    fn leftover_arguments_are_a_usage_error() {
        let args = Args::from_list(&["--frobnicate"]);
        assert!(matches!(args.finish(), Err(Failure::Usage(m)) if m.contains("--frobnicate")));
    }
}
