//! `cargo xtask mutants`: the documented orderings and protocol steps are
//! proven only if a model fails without them. Each mutation weakens one
//! ordering or drops one step in a scratch copy of the repository, runs the
//! model that should catch it, and expects that model to fail; a mutation
//! that survives fails the step. The mutations name the function and the
//! text they change, so a rename or a rewrite that moves the text makes the
//! mutation fail to apply, loudly, instead of passing silently.

use std::fs;
use std::path::Path;

use lexopt::prelude::*;

use crate::cli::Args;
use crate::cmd::Cmd;
use crate::layout;
use crate::step::Failure;
use crate::step::Runner;

/// Usage line.
pub const USAGE: &str = "  mutants [NAME]
      applies each documented mutation (an ordering weakened, a protocol step
      dropped) to a scratch copy of the repository under target/mutants and
      checks that the model meant to catch it fails; NAME runs one";

/// One mutation and the model that must catch it.
struct Mutation {
    /// A short name.
    name: &'static str,
    /// What is weakened or dropped, for the table.
    what: &'static str,
    /// The file, from the repository root.
    file: &'static str,
    /// Text on the first line of each function body to change (every
    /// function whose opening line contains it is changed).
    function: &'static str,
    /// The text to replace inside those functions, and its replacement.
    from: &'static str,
    to: &'static str,
    /// Extra `--cfg` flags (`loom`, `gupio_split_counts`).
    cfgs: &'static [&'static str],
    /// The package and its integration test that must fail, or
    /// [`DEMO`] for the host demo (which must fail its verdict).
    package: &'static str,
    test: &'static str,
    /// A line the failing run must print (the test that caught it, or the
    /// demo's failed verdict), on a line that also says `FAILED` (or, under
    /// miri, `Undefined Behavior`).
    caught_by: &'static str,
    /// Whether the model is `test`, a unit test of `package`'s library, run
    /// under miri (whose data-race detector sees an unordered access in
    /// any interleaving), rather than an integration test.
    miri: bool,
}

/// The `package` of a mutation the host demo must catch.
const DEMO: &str = "gupio-demo";

const LOOM: &[&str] = &["loom"];
const LOOM_SPLIT: &[&str] = &["loom", "gupio_split_counts"];

/// Every mutation, in the order of the note that lists them.
const MUTATIONS: &[Mutation] = &[
    Mutation {
        name: "small-query-relaxed",
        what: "maybe_dma_pinned's Acquire load of a small page's count -> Relaxed",
        file: "crates/pin/src/counters.rs",
        function: "fn refcount_acquire(",
        from: "Ordering::Acquire",
        to: "Ordering::Relaxed",
        cfgs: LOOM,
        package: "gupio-pin",
        test: "loom_happens_before",
        caught_by: "unpinned_small_page_shows_the_device_writes",
        miri: false,
    },
    Mutation {
        name: "release-relaxed",
        what: "the Release of an unpin's or put's decrement -> Relaxed",
        file: "crates/pin/src/counters.rs",
        function: "fn try_sub(",
        from: "Ordering::Release,",
        to: "Ordering::Relaxed,",
        cfgs: LOOM,
        package: "gupio-pin",
        test: "loom_happens_before",
        caught_by: "sees_every_write",
        miri: false,
    },
    Mutation {
        name: "large-query-relaxed",
        what: "maybe_dma_pinned's Acquire load of a large folio's pin count -> Relaxed",
        file: "crates/pin/src/counters.rs",
        function: "fn pincount_acquire(",
        from: "Ordering::Acquire",
        to: "Ordering::Relaxed",
        cfgs: LOOM,
        package: "gupio-pin",
        test: "loom_happens_before",
        caught_by: "unpinned_large_folio_shows_the_device_writes",
        miri: false,
    },
    Mutation {
        name: "free-fence",
        what: "the Acquire fence before freeing on the last reference, dropped",
        file: "crates/pin/src/counters.rs",
        function: "fn try_sub(",
        from: "fence(Ordering::Acquire);",
        to: "",
        cfgs: LOOM,
        package: "gupio-pin",
        test: "loom_happens_before",
        caught_by: "sees_every_write",
        miri: false,
    },
    Mutation {
        name: "split-unpin-relaxed",
        what: "two-word layout: the Release of the pin count's decrement -> Relaxed",
        file: "crates/pin/src/counters.rs",
        function: "fn try_sub_pins(",
        from: "Ordering::Release,",
        to: "Ordering::Relaxed,",
        cfgs: LOOM_SPLIT,
        package: "gupio-pin",
        test: "loom_happens_before",
        caught_by: "unpinned_large_folio_shows_the_device_writes",
        miri: false,
    },
    Mutation {
        name: "gup-fence",
        what: "the SeqCst fence pin_user_pages issues after each run's pins, dropped",
        file: "crates/pin/src/gup.rs",
        function: "fn step(",
        from: "fence(Ordering::SeqCst);",
        to: "",
        cfgs: LOOM,
        package: "gupio-writeback",
        test: "loom_writeback",
        caught_by: "pin_user_pages_then_checked_dirty",
        miri: false,
    },
    Mutation {
        name: "dirty-without-lock",
        what: "dirty_range_lock dirtying without the folio lock",
        file: "crates/pin/src/tracker.rs",
        function: "pub fn dirty_range_lock(",
        from: "self.ops.lock_folio(folio);",
        to: "",
        cfgs: &[],
        package: "gupio-pin",
        test: "dirty_lock",
        caught_by: "dirty_range_lock_dirties_each_folio_under_its_lock",
        miri: false,
    },
    Mutation {
        name: "writeback-no-redirty",
        what: "writeback's re-dirty of a folio it found pinned (and after a failed write), dropped",
        file: "crates/writeback/src/engine.rs",
        function: "fn write(",
        from: "self.redirty(folio);",
        to: "",
        cfgs: &[],
        package: DEMO,
        test: "",
        caught_by: "writeback cleaned",
        miri: false,
    },
    Mutation {
        name: "query-never-pinned",
        what: "maybe_dma_pinned of a small page hard-coded to false",
        file: "crates/pin/src/map.rs",
        function: "pub fn maybe_dma_pinned(&self)",
        from: "self.counters.refcount_acquire() >= GUP_PIN_COUNTING_BIAS",
        to: "false",
        cfgs: LOOM,
        package: "gupio-release",
        test: "loom_release",
        caught_by: "unpin_at_completion_racing_a_writeback_check_has_no_false_negative",
        miri: false,
    },
    Mutation {
        name: "warning-log-racy-claim",
        what: "ArrayMemoryMap's warning-log slot claimed by a load and a store instead of one increment",
        file: "crates/pin/src/map.rs",
        function: "pub fn report(",
        from: "self.warnings.fetch_add(1, Ordering::Relaxed)",
        to: "{ let slot = self.warnings.load(Ordering::Relaxed); self.warnings.store(slot + 1, Ordering::Relaxed); slot }",
        cfgs: LOOM,
        package: "gupio-pin",
        test: "loom_warning_log",
        caught_by: "two_reporters_at_once_both_land_in_the_log",
        miri: false,
    },
    Mutation {
        name: "stable-close-relaxed",
        what: "the Release of a stable write's window close -> Relaxed",
        file: "crates/release/src/stable.rs",
        function: "pub fn close<E>(",
        from: "Ordering::Release, Ordering::Relaxed",
        to: "Ordering::Relaxed, Ordering::Relaxed",
        cfgs: LOOM,
        package: "gupio-release",
        test: "loom_stable",
        caught_by: "closing_before_restoring_orders_the_device_read_before_the_writer",
        miri: false,
    },
    Mutation {
        name: "stable-wait-relaxed",
        what: "the Acquire load a waiting writer re-checks the window with -> Relaxed",
        file: "crates/release/src/stable.rs",
        function: "pub fn is_open(",
        from: "Ordering::Acquire",
        to: "Ordering::Relaxed",
        cfgs: LOOM,
        package: "gupio-release",
        test: "loom_stable",
        caught_by: "closing_before_restoring_orders_the_device_read_before_the_writer",
        miri: false,
    },
    Mutation {
        name: "stable-fault-no-wait",
        what: "a write fault on a protected page answering \"not protected\" instead of waiting",
        file: "crates/release/src/stable.rs",
        function: "pub fn on_write_fault(",
        from: "FaultChoice::Wait => FaultResolution::Wait,",
        to: "FaultChoice::Wait => FaultResolution::NotProtected,",
        cfgs: LOOM,
        package: "gupio-release",
        test: "loom_stable",
        caught_by: "a_writer_faulting_on_a_protected_page_waits_for_the_completion",
        miri: false,
    },
    Mutation {
        name: "stable-protect-ignores-other-pins",
        what: "a write-protect stable write whose page another pinner holds, protected anyway instead of bounced",
        file: "crates/host/src/machine/stable.rs",
        function: "pub fn submit_stable_dio_write<",
        from: "mode = StableMode::Bounce;",
        to: "mode = StableMode::WriteProtect;",
        cfgs: &[],
        package: "gupio-host",
        test: "stable_writes",
        caught_by: "write_protect_of_a_page_a_device_may_write_bounces_instead",
        miri: false,
    },
    Mutation {
        name: "capi-deferred-state-after-push",
        what: "gupio_bio_complete_dio_read marking the bio deferred after pushing it, not before",
        file: "crates/capi/src/bio.rs",
        function: "pub unsafe extern \"C\" fn gupio_bio_complete_dio_read(",
        from: "*slot = Slot::Deferred(done);\n        let pushed = list.push(Deferred(bio));",
        to: "let pushed = list.push(Deferred(bio));\n        *slot = Slot::Deferred(done);",
        cfgs: &[],
        package: "gupio-capi",
        test: "a_deferred_read_is_deferred_before_a_drainer_can_take_it",
        caught_by: "a_deferred_read_is_deferred_before_a_drainer_can_take_it",
        miri: true,
    },
];

/// Parses `mutants`' arguments and runs it.
pub fn main(runner: &mut Runner, mut args: Args) -> Result<(), Failure> {
    let mut only = None;
    while let Some(arg) = args.next()? {
        match arg {
            Value(name) if only.is_none() => only = Some(name.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(name) = &only {
        if !MUTATIONS.iter().any(|m| m.name == name) {
            let names: Vec<_> = MUTATIONS.iter().map(|m| m.name).collect();
            return Err(Failure::Usage(format!(
                "unknown mutation `{name}`; one of: {}",
                names.join(", ")
            )));
        }
    }
    run(runner, only.as_deref())
}

/// Runs every mutation (or the one named), one step each.
pub fn run(runner: &mut Runner, only: Option<&str>) -> Result<(), Failure> {
    let scratch = layout::target_dir().join("mutants");
    let copy = scratch.join("repo");
    runner.step("mutants: scratch copy", &[], |_| copy_repository(&copy))?;
    for mutation in MUTATIONS
        .iter()
        .filter(|m| only.is_none_or(|name| m.name == name))
    {
        let name = format!("mutant {}: {}", mutation.name, mutation.what);
        runner.step(&name, &[], |log| {
            let note = check(mutation, &copy, &scratch.join("target"))?;
            log.note(&note);
            Ok(())
        })?;
    }
    Ok(())
}

/// Copies every file git tracks (as it is in the working tree) to `copy`.
fn copy_repository(copy: &Path) -> Result<(), String> {
    let root = layout::root();
    if copy.exists() {
        fs::remove_dir_all(copy).map_err(|e| format!("removing {}: {e}", copy.display()))?;
    }
    let files = Cmd::new("git")
        .in_dir(&layout::display(root))
        .args(["ls-files", "-z"])
        .read()?;
    for file in files.split('\0').filter(|f| !f.is_empty()) {
        let from = root.join(file);
        if !from.is_file() {
            // Deleted in the working tree but not yet in git.
            continue;
        }
        let to = copy.join(file);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::copy(&from, &to).map_err(|e| format!("copying {file}: {e}"))?;
    }
    Ok(())
}

/// Applies `mutation` in `copy`, runs its model, restores the file, and
/// says how it was caught (or why it survived).
fn check(mutation: &Mutation, copy: &Path, target: &Path) -> Result<String, String> {
    let path = copy.join(mutation.file);
    let original = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mutated, changes) = mutate(&original, mutation.function, mutation.from, mutation.to);
    if changes == 0 {
        return Err(format!(
            "the mutation no longer applies: no `{}` inside `{}` in {}",
            mutation.from, mutation.function, mutation.file
        ));
    }
    fs::write(&path, mutated).map_err(|e| format!("{}: {e}", path.display()))?;
    let outcome = model(mutation, copy, target).outcome();
    fs::write(&path, &original).map_err(|e| format!("{}: {e}", path.display()))?;
    let (passed, output) = outcome?;
    let failed_line = output
        .lines()
        .find(|line| line.contains("FAILED") || line.contains("panicked"))
        .map(str::trim)
        .unwrap_or("");
    let model_name = if mutation.package == DEMO {
        "the demo"
    } else {
        mutation.test
    };
    if passed {
        return Err(format!(
            "survived: {model_name} still passes with {changes} change(s) to {}",
            mutation.file
        ));
    }
    if output.contains("error[E") || output.contains("could not compile") {
        return Err(format!("the mutated copy does not compile:\n{output}"));
    }
    let caught = output.lines().any(|line| {
        line.contains(mutation.caught_by)
            && (line.contains("FAILED") || line.contains("Undefined Behavior"))
    });
    if !caught {
        return Err(format!(
            "{model_name} failed, but not with `{}`:\n{output}",
            mutation.caught_by
        ));
    }
    Ok(format!("caught by {model_name}: {failed_line}"))
}

/// The model's command in the scratch copy.
fn model(mutation: &Mutation, copy: &Path, target: &Path) -> Cmd {
    let cmd = if mutation.package == DEMO {
        crate::demo::command(&["--quiet".to_owned()])
    } else if mutation.miri {
        crate::test::miri_test(Cmd::cargo())
            .args(["-p", mutation.package, "--lib"])
            .arg(mutation.test)
    } else {
        let mut args = vec!["test", "-p", mutation.package, "--test", mutation.test];
        if mutation.cfgs.contains(&"loom") {
            args.push("--release");
        }
        Cmd::cargo().args(args)
    };
    let cmd = cmd
        .in_dir(&layout::display(copy))
        .env("CARGO_TARGET_DIR", layout::display(target))
        .env("LOOM_MAX_PREEMPTIONS", "2");
    if mutation.cfgs.is_empty() {
        cmd
    } else {
        crate::test::with_cfgs(cmd, mutation.cfgs)
    }
}

/// `text` with `from` replaced by `to` inside every function whose opening
/// line contains `function` (up to the closing brace at that line's
/// indentation); returns the text and how many replacements it made.
/// `from` may span lines (to move a statement past another), but never
/// leaves the function.
///
/// By hand rather than with cargo-mutants: that tool mutates with its own
/// catalogue of operators and asks only that some test fail, while each
/// mutation here weakens one documented ordering and names the model that
/// must be the one to catch it.
fn mutate(text: &str, function: &str, from: &str, to: &str) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut changes = 0;
    // The body of the function being read: its indentation and its lines.
    let mut inside: Option<(usize, String)> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        match &mut inside {
            None => {
                if line.contains(function) {
                    inside = Some((indent, String::new()));
                }
                out.push_str(line);
            }
            Some((depth, body)) if indent == *depth && line.trim() == "}" => {
                changes += body.matches(from).count();
                out.push_str(&body.replace(from, to));
                out.push_str(line);
                inside = None;
            }
            Some((_, body)) => body.push_str(line),
        }
    }
    if let Some((_, body)) = inside {
        // A function that never closed: change what was read of it.
        changes += body.matches(from).count();
        out.push_str(&body.replace(from, to));
    }
    (out, changes)
}

#[cfg(test)]
mod tests;
