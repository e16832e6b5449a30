//! Named, timed steps and the summary table a run ends with.

use std::time::{Duration, Instant};

use crate::tools::Tool;

/// Why a subcommand stopped early.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The command line is wrong; the message says how. Exit status 2.
    Usage(String),
    /// A step failed; it has been reported and recorded. Exit status 1.
    StepFailed,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    /// It ran and passed; the note says anything worth a column (e.g. "no
    /// models yet").
    Passed { note: Option<String> },
    /// A tool it needs is missing and the caller allowed skipping.
    Skipped { reason: String },
    /// It failed, or could not run, for this reason.
    Failed { reason: String },
}

/// One finished step.
#[derive(Debug)]
struct Record {
    name: String,
    elapsed: Duration,
    status: Status,
}

/// What a step's body may record besides passing or failing.
#[derive(Debug)]
pub struct StepLog {
    step: String,
    note: Option<String>,
}

impl StepLog {
    /// Prints `<step>: <note>` and shows the note in the summary table.
    pub fn note(&mut self, note: &str) {
        println!("{}: {note}", self.step);
        self.note = Some(note.to_owned());
    }
}

/// Runs steps in order and remembers how each ended.
#[derive(Debug)]
pub struct Runner {
    records: Vec<Record>,
    allow_skip: bool,
    started: Instant,
}

impl Runner {
    /// A runner that fails steps whose tools are missing.
    pub fn new() -> Self {
        Self {
            records: Vec::new(),
            allow_skip: false,
            started: Instant::now(),
        }
    }

    /// Whether a step whose tool is missing is skipped instead of failed.
    pub fn set_allow_skip(&mut self, allow_skip: bool) {
        self.allow_skip = allow_skip;
    }

    /// Runs step `name`: checks `tools`, then runs `body`, timing it.
    ///
    /// A missing tool fails the step, naming the tool and how to install it,
    /// unless skipping is allowed. A failing step returns
    /// [`Failure::StepFailed`] so that the caller stops.
    pub fn step(
        &mut self,
        name: &str,
        tools: &[Tool],
        body: impl FnOnce(&mut StepLog) -> Result<(), String>,
    ) -> Result<(), Failure> {
        println!("\n==> {name}");
        if let Some(missing) = tools.iter().find_map(|tool| tool.check().err()) {
            if self.allow_skip {
                let reason = format!("{} missing", missing.tool);
                println!(
                    "!!! SKIPPED {name}: {reason} (install: {})",
                    missing.install
                );
                self.record(name, Duration::ZERO, Status::Skipped { reason });
                return Ok(());
            }
            let reason = format!(
                "{} is missing; install it with `bash ci/install.sh` (or `{}`), \
                 or pass --allow-skip to skip this step",
                missing.tool, missing.install
            );
            println!("error: step `{name}` cannot run: {reason}");
            self.record(name, Duration::ZERO, Status::Failed { reason });
            return Err(Failure::StepFailed);
        }

        let started = Instant::now();
        let mut log = StepLog {
            step: name.to_owned(),
            note: None,
        };
        let result = body(&mut log);
        let elapsed = started.elapsed();
        match result {
            Ok(()) => {
                println!("--- {name}: ok ({})", format_duration(elapsed));
                self.record(name, elapsed, Status::Passed { note: log.note });
                Ok(())
            }
            Err(reason) => {
                println!("error: step `{name}` failed: {reason}");
                self.record(name, elapsed, Status::Failed { reason });
                Err(Failure::StepFailed)
            }
        }
    }

    fn record(&mut self, name: &str, elapsed: Duration, status: Status) {
        self.records.push(Record {
            name: name.to_owned(),
            elapsed,
            status,
        });
    }

    /// Prints the table of steps and the closing count line.
    pub fn print_summary(&self, title: &str) {
        print!("{}", self.summary(title, self.started.elapsed()));
    }

    /// The table is formatted by hand: three left- or right-aligned columns
    /// are what `format!` widths do, without a table crate.
    fn summary(&self, title: &str, total: Duration) -> String {
        let status_text = |status: &Status| match status {
            Status::Passed { note: None } => "ok".to_owned(),
            Status::Passed { note: Some(note) } => format!("ok: {note}"),
            Status::Skipped { reason } => format!("SKIPPED: {reason}"),
            Status::Failed { .. } => "FAILED".to_owned(),
        };
        let name_width = self
            .records
            .iter()
            .map(|r| r.name.len())
            .chain(["step".len(), "total".len()])
            .max()
            .unwrap_or(0);
        let status_width = self
            .records
            .iter()
            .map(|r| status_text(&r.status).len())
            .chain(["status".len()])
            .max()
            .unwrap_or(0);

        let mut text = format!("\n==> summary of {title}\n");
        let mut row = |name: &str, status: &str, time: &str| {
            text.push_str(&format!(
                "{name:<name_width$}  {status:<status_width$}  {time:>8}\n"
            ));
        };
        row("step", "status", "time");
        for record in &self.records {
            row(
                &record.name,
                &status_text(&record.status),
                &format_duration(record.elapsed),
            );
        }
        row("total", "", &format_duration(total));
        for record in &self.records {
            if let Status::Failed { reason } = &record.status {
                text.push_str(&format!("FAILED {}: {reason}\n", record.name));
            }
        }

        let count =
            |wanted: fn(&Status) -> bool| self.records.iter().filter(|r| wanted(&r.status)).count();
        let passed = count(|s| matches!(s, Status::Passed { .. }));
        let failed = count(|s| matches!(s, Status::Failed { .. }));
        let skipped = count(|s| matches!(s, Status::Skipped { .. }));
        text.push_str(&format!(
            "steps: {passed} passed, {failed} failed, {skipped} skipped\n"
        ));
        text
    }
}

/// `12.3s` below a minute, `4m05s` above.
fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests;
