//! External commands: built, printed as a shell line, run from the
//! repository root.

use std::ffi::OsStr;
use std::fmt;
use std::process::{Command, Stdio};

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

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        let root = layout::root();
        let dir = match &self.dir {
            Some(dir) => root.join(dir),
            None => root.to_path_buf(),
        };
        command.args(&self.args).current_dir(dir);
        // `cargo run` points CARGO at the cargo that built xtask; cargo-miri
        // and others would use it instead of the `+toolchain` one asked for.
        command.env_remove("CARGO");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// Prints the command, runs it with inherited stdio, and fails unless it
    /// exits successfully.
    pub fn run(&self) -> Result<(), String> {
        println!("$ {self}");
        let status = self
            .command()
            .status()
            .map_err(|e| format!("cannot start `{self}`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{self}` failed ({status})"))
        }
    }

    /// Prints the command, runs it, and returns its standard output (its
    /// standard error goes to ours).
    pub fn read(&self) -> Result<String, String> {
        println!("$ {self}");
        let output = self
            .command()
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot start `{self}`: {e}"))?;
        if !output.status.success() {
            return Err(format!("`{self}` failed ({})", output.status));
        }
        String::from_utf8(output.stdout).map_err(|_| format!("`{self}` printed non-UTF-8 output"))
    }

    /// Prints the command, runs it, and returns whether it succeeded with
    /// its standard output and standard error together (for a run that is
    /// expected to fail).
    pub fn outcome(&self) -> Result<(bool, String), String> {
        println!("$ {self}");
        let output = self
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot start `{self}`: {e}"))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok((output.status.success(), text))
    }

    /// Runs the command silently: its standard output if it succeeded.
    /// For probing whether a tool is installed.
    pub fn probe(&self) -> Option<String> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
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
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_not_quoted() {
        let cmd = Cmd::cargo().args(["test", "-p", "gupio-pfn", "--target=x86_64-unknown-none"]);
        assert_eq!(
            cmd.to_string(),
            "cargo test -p gupio-pfn --target=x86_64-unknown-none"
        );
    }

    #[test]
    fn environment_and_special_words_are_quoted() {
        let cmd = Cmd::cargo().env("RUSTFLAGS", "--cfg loom").args([
            "doc",
            "--config",
            r#"build.rustdocflags=["-D","warnings"]"#,
        ]);
        assert_eq!(
            cmd.to_string(),
            r#"RUSTFLAGS='--cfg loom' cargo doc --config 'build.rustdocflags=["-D","warnings"]'"#
        );
    }

    #[test]
    fn a_working_directory_is_shown_as_a_cd() {
        let cmd = Cmd::cargo()
            .in_dir("crates/demo-kernel")
            .args(["fmt", "--check"]);
        assert_eq!(
            cmd.to_string(),
            "cd crates/demo-kernel && cargo fmt --check"
        );
    }

    #[test]
    fn single_quotes_and_empty_words_survive_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn run_reports_a_failing_command() {
        let error = Cmd::new("false").run().unwrap_err();
        assert!(error.contains("`false` failed"), "{error}");
    }

    #[test]
    fn probe_reads_output_and_spots_missing_programs() {
        assert_eq!(Cmd::new("echo").arg("hi").probe().as_deref(), Some("hi\n"));
        assert_eq!(Cmd::new("gupio-no-such-program").probe(), None);
    }
}
