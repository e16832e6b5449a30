//! External commands: built, printed as a shell line, run from the
//! repository root.
//!
//! `duct` runs them (exit statuses, captured output, the merged output of
//! a run expected to fail, and the deadline of `cargo xtask qemu`); [`Cmd`]
//! only records what it needs to print the command first as a line a shell
//! would run, environment and working directory included, which duct's
//! `Debug` output is not.

use std::ffi::OsStr;
use std::fmt;
use std::process::Output;

use crate::layout;

/// A command to run from the repository root.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// A directory relative to the repository root to run in, if not the root.
    dir: Option<String>,
}

impl Cmd {
    /// `program` with no arguments.
    pub fn new(program: &str) -> Self {
        Self {
            program: program.to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    /// Runs the command in `dir`, relative to the repository root (cargo
    /// reads `.cargo/config.toml` from the working directory upwards).
    pub fn in_dir(mut self, dir: &str) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// `cargo`, through the rustup proxy on `PATH` so that `+toolchain` works.
    pub fn cargo() -> Self {
        Self::new("cargo")
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the command (shown in its shell line).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// The command as a duct expression, run from the repository root (or
    /// its directory), exit status unchecked: each method below judges it.
    pub fn expression(&self) -> duct::Expression {
        let root = layout::root();
        let dir = match &self.dir {
            Some(dir) => root.join(dir),
            None => root.to_path_buf(),
        };
        // `cargo run` points CARGO at the cargo that built xtask; cargo-miri
        // and others would use it instead of the `+toolchain` one asked for.
        let mut expression = duct::cmd(&self.program, &self.args)
            .dir(dir)
            .env_remove("CARGO")
            .unchecked();
        for (key, value) in &self.envs {
            expression = expression.env(key, value);
        }
        expression
    }

    /// Runs `expression` (this command with its streams redirected),
    /// failing only if it cannot start.
    fn output(&self, expression: &duct::Expression) -> Result<Output, String> {
        expression
            .run()
            .map_err(|e| format!("cannot start `{self}`: {e}"))
    }

    /// Prints the command, runs it with inherited stdio, and fails unless it
    /// exits successfully.
    pub fn run(&self) -> Result<(), String> {
        println!("$ {self}");
        let output = self.output(&self.expression())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!("`{self}` failed ({})", output.status))
        }
    }

    /// Prints the command, runs it, and returns its standard output (its
    /// standard error goes to ours).
    pub fn read(&self) -> Result<String, String> {
        println!("$ {self}");
        let output = self.output(&self.expression().stdout_capture())?;
        if !output.status.success() {
            return Err(format!("`{self}` failed ({})", output.status));
        }
        String::from_utf8(output.stdout).map_err(|_| format!("`{self}` printed non-UTF-8 output"))
    }

    /// Prints the command, runs it, and returns whether it succeeded with
    /// its standard output and standard error interleaved as printed (for a
    /// run that is expected to fail).
    pub fn outcome(&self) -> Result<(bool, String), String> {
        println!("$ {self}");
        let output = self.output(
            &self
                .expression()
                .stdin_null()
                .stderr_to_stdout()
                .stdout_capture(),
        )?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        Ok((output.status.success(), text))
    }

    /// Prints the command, runs it, and returns its exit status and both
    /// output streams as bytes, whatever the status.
    pub fn capture(&self) -> Result<Output, String> {
        println!("$ {self}");
        self.output(
            &self
                .expression()
                .stdin_null()
                .stdout_capture()
                .stderr_capture(),
        )
    }

    /// Runs the command silently: its standard output if it succeeded.
    /// For probing whether a tool is installed.
    pub fn probe(&self) -> Option<String> {
        let output = self
            .expression()
            .stdin_null()
            .stderr_null()
            .stdout_capture()
            .run()
            .ok()?;
        if output.status.success() {
            String::from_utf8(output.stdout).ok()
        } else {
            None
        }
    }
}

impl fmt::Display for Cmd {
    /// The command as a line a POSIX shell would run from the repository root.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(dir) = &self.dir {
            write!(f, "cd {} && ", shell_quote(dir))?;
        }
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", shell_quote(value))?;
        }
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// `word` quoted for a POSIX shell, or as it is when no quoting is needed.
///
/// By hand rather than with shlex (in the lock file through cc): shlex also
/// quotes `=` and `,` (safe inside brace expansions), so every
/// `--target=...` and QEMU's `file=...,if=none` would print in quotes; these
/// lines are read by people, and the eight lines below keep them plain.
pub fn shell_quote(word: impl AsRef<OsStr>) -> String {
    let word = word.as_ref().to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
