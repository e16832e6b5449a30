//! `cargo xtask test`: every check a change must pass, in order.

use std::env;

use lexopt::prelude::*;

use crate::capi;
use crate::cli::Args;
use crate::cmd::Cmd;
use crate::layout;
use crate::step::Failure;
use crate::step::{Runner, StepLog};
use crate::tools::{self, Tool};
use crate::workspace::{self, Crate};

/// Usage line.
pub const USAGE: &str = "  test [--allow-skip]
      fmt, clippy, tests (unit, integration, doc), the rmw-stats counter's
      test (an rmw-stats build), rustdoc, no_std builds for every bare-metal
      target, the C ABI (header drift, C tests against the static library,
      the static library for every bare-metal target), loom models, miri (64- and 32-bit), gupio-pin's two-word
      counter layout (tests, loom, miri), fuzz seed replay; --allow-skip
      skips (loudly) the steps whose tools are missing";

/// The bare-metal targets every `no_std` crate must build for (the ones
/// `rust-toolchain.toml` installs); thumbv7em is the 32-bit one.
const NO_STD_TARGETS: [&str; 4] = [
    "x86_64-unknown-none",
    "aarch64-unknown-none",
    "riscv64gc-unknown-none-elf",
    "thumbv7em-none-eabihf",
];

/// The 32-bit target miri runs the core crates on, so that the 32-bit word
/// layout is executed and not only compiled.
const MIRI_32_BIT_TARGET: &str = "i686-unknown-linux-gnu";

/// The loom preemption bound unless `LOOM_MAX_PREEMPTIONS` is already set.
const LOOM_MAX_PREEMPTIONS: &str = "2";

/// miri's flags unless `MIRIFLAGS` is already set.
const MIRIFLAGS: &str = "-Zmiri-strict-provenance";

/// The fuzz crate's manifest (it is its own workspace).
const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";

/// The C compiler the C ABI's header and tests are compiled with.
const CC: Tool = Tool::Program {
    name: "cc",
    package: "gcc",
};

/// libFuzzer, built by the fuzz crate's libfuzzer-sys, is C++.
const CXX: Tool = Tool::Program {
    name: "c++",
    package: "g++",
};

/// Parses `test`'s arguments and runs it.
pub fn main(runner: &mut Runner, mut args: Args) -> Result<(), Failure> {
    let mut allow_skip = false;
    while let Some(arg) = args.next()? {
        match arg {
            Long("allow-skip") => allow_skip = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    runner.set_allow_skip(allow_skip);
    run(runner)
}

/// Runs every step of `cargo xtask test`.
pub fn run(runner: &mut Runner) -> Result<(), Failure> {
    runner.step("fmt", &[Tool::Rustfmt], |_| fmt_check())?;
    runner.step("clippy", &[Tool::Clippy, CXX], |_| clippy())?;
    runner.step("test", &[], |_| {
        Cmd::cargo().args(["test", "--workspace"]).run()
    })?;
    runner.step("test rmw-stats", &[], |_| rmw_stats_test().run())?;
    runner.step("doc", &[], |_| rustdoc())?;
    for target in NO_STD_TARGETS {
        let name = format!("no_std build {target}");
        runner.step(&name, &[Tool::StableTarget(target)], |_| {
            no_std_build(target)
        })?;
    }
    runner.step("capi header drift", &[Tool::Cbindgen], capi::header_drift)?;
    runner.step("capi C tests", &[CC], capi::c_tests)?;
    let targets: Vec<Tool> = NO_STD_TARGETS.map(Tool::StableTarget).to_vec();
    runner.step("capi static library, bare metal", &targets, |log| {
        capi::bare_metal(log, &NO_STD_TARGETS)
    })?;
    runner.step("loom", &[], loom)?;
    let host = host_triple();
    for target in [host.as_str(), MIRI_32_BIT_TARGET] {
        let name = format!("miri {target}");
        runner.step(&name, &[Tool::Nightly, Tool::Miri], |_| {
            miri(target, target == host)
        })?;
    }
    runner.step(
        "gupio-pin split counts (tests, loom, miri)",
        &[Tool::Nightly, Tool::Miri],
        split_counts,
    )?;
    runner.step(
        "demo-kernel fmt, clippy, doc",
        &[Tool::StableTarget(KERNEL_TARGET)],
        |_| demo_kernel_checks(),
    )?;
    runner.step("fuzz seed replay", &[CXX], |_| {
        Cmd::cargo()
            .args(["test", "--manifest-path", FUZZ_MANIFEST])
            .run()
    })
}

/// gupio-pin's `rmw_stats` test, which only exists with the `rmw-stats`
/// feature (the workspace test run builds without it). In the default
/// target directory: the feature changes gupio-pin's build, not its flags.
fn rmw_stats_test() -> Cmd {
    Cmd::cargo().args([
        "test",
        "-p",
        "gupio-pin",
        "--features",
        "rmw-stats",
        "--test",
        "rmw_stats",
    ])
}

/// The demo kernel's directory: its own workspace, built only for riscv64
/// (its `.cargo/config.toml` sets the target, so cargo runs there).
const KERNEL_DIR: &str = "crates/demo-kernel";

/// The demo kernel's only target.
const KERNEL_TARGET: &str = "riscv64gc-unknown-none-elf";

/// The demo kernel (outside the workspace) is formatted, lint-free and
/// documented without warnings; `cargo xtask qemu` builds and boots it.
fn demo_kernel_checks() -> Result<(), String> {
    let kernel = || Cmd::cargo().in_dir(KERNEL_DIR);
    kernel().args(["fmt", "--check"]).run()?;
    kernel()
        .args(["clippy", "--release", "--locked", "--", "-D", "warnings"])
        .run()?;
    deny_rustdoc_warnings(kernel().args(["doc", "--no-deps", "--locked"])).run()
}

/// The workspace and the fuzz crate are formatted.
fn fmt_check() -> Result<(), String> {
    Cmd::cargo().args(["fmt", "--all", "--", "--check"]).run()?;
    Cmd::cargo()
        .args(["fmt", "--check", "--manifest-path", FUZZ_MANIFEST])
        .run()
}

/// clippy finds nothing in any target of the workspace or the fuzz crate.
fn clippy() -> Result<(), String> {
    let deny_warnings = ["--", "-D", "warnings"];
    Cmd::cargo()
        .args(["clippy", "--workspace", "--all-targets"])
        .args(deny_warnings)
        .run()?;
    Cmd::cargo()
        .args(["clippy", "--manifest-path", FUZZ_MANIFEST, "--all-targets"])
        .args(deny_warnings)
        .run()
}

/// The workspace's documentation builds without a warning (broken
/// intra-doc links included).
fn rustdoc() -> Result<(), String> {
    deny_rustdoc_warnings(Cmd::cargo().args(["doc", "--workspace", "--no-deps"])).run()
}

/// Every `no_std` crate builds for the bare-metal `target`.
fn no_std_build(target: &str) -> Result<(), String> {
    let crates = workspace::no_std_crates(layout::root())?;
    Cmd::cargo()
        .arg("build")
        .args(package_args(&crates))
        .args(["--target", target])
        .run()
}

/// `-p <package>` for each crate.
fn package_args(crates: &[Crate]) -> Vec<String> {
    crates
        .iter()
        .flat_map(|krate| ["-p".to_owned(), krate.package.clone()])
        .collect()
}

/// `cmd` with rustdoc warnings denied. Through `--config` normally; but
/// cargo ignores `build.rustdocflags` when `RUSTDOCFLAGS` (or its encoded
/// form) is set, so then the flag is appended to what is already there.
fn deny_rustdoc_warnings(cmd: Cmd) -> Cmd {
    if let Some(flags) = non_empty_env("CARGO_ENCODED_RUSTDOCFLAGS") {
        cmd.env(
            "CARGO_ENCODED_RUSTDOCFLAGS",
            format!("{flags}\x1f-D\x1fwarnings"),
        )
    } else if let Some(flags) = non_empty_env("RUSTDOCFLAGS") {
        cmd.env("RUSTDOCFLAGS", format!("{flags} -D warnings"))
    } else {
        cmd.args(["--config", r#"build.rustdocflags=["-D","warnings"]"#])
    }
}

/// `cmd` with `--cfg loom` added to the rustc flags already in force.
fn with_loom_cfg(cmd: Cmd) -> Cmd {
    with_cfgs(cmd, &["loom"])
}

/// `cmd` with `--cfg NAME` for each of `cfgs` added to the rustc flags
/// already in force.
pub fn with_cfgs(cmd: Cmd, cfgs: &[&str]) -> Cmd {
    if let Some(flags) = non_empty_env("CARGO_ENCODED_RUSTFLAGS") {
        let extra: String = cfgs
            .iter()
            .map(|cfg| format!("\x1f--cfg\x1f{cfg}"))
            .collect();
        cmd.env("CARGO_ENCODED_RUSTFLAGS", format!("{flags}{extra}"))
    } else {
        let extra: Vec<String> = cfgs.iter().map(|cfg| format!("--cfg {cfg}")).collect();
        let extra = extra.join(" ");
        match non_empty_env("RUSTFLAGS") {
            Some(flags) => cmd.env("RUSTFLAGS", format!("{flags} {extra}")),
            None => cmd.env("RUSTFLAGS", extra),
        }
    }
}

/// gupio-pin's second counter layout (two 32-bit words, as on targets
/// without 64-bit atomics), forced on the host: its unit tests, its loom
/// models and miri, each in a target directory of its own.
fn split_counts(log: &mut StepLog) -> Result<(), String> {
    const CFG: &str = "gupio_split_counts";
    let dir = |name: &str| layout::display(&layout::target_dir().join(name));
    with_cfgs(Cmd::cargo(), &[CFG])
        .env("CARGO_TARGET_DIR", dir("split-counts").as_str())
        .args(["test", "-p", "gupio-pin", "--lib", "--tests"])
        .run()?;
    let models = workspace::loom_models(layout::root())?;
    let preemptions =
        non_empty_env("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|| LOOM_MAX_PREEMPTIONS.to_owned());
    let mut ran = 0;
    for model in models.iter().filter(|model| model.package == "gupio-pin") {
        with_cfgs(Cmd::cargo(), &["loom", CFG])
            .env("LOOM_MAX_PREEMPTIONS", preemptions.as_str())
            .env("CARGO_TARGET_DIR", dir("loom-split-counts").as_str())
            .args([
                "test",
                "-p",
                "gupio-pin",
                "--release",
                "--test",
                &model.test,
            ])
            .run()?;
        ran += 1;
    }
    miri_test(with_cfgs(Cmd::cargo(), &[CFG]))
        .env("CARGO_TARGET_DIR", dir("miri-split-counts").as_str())
        .args(["-p", "gupio-pin", "--lib", "--tests"])
        .run()?;
    log.note(&format!("unit tests, {ran} loom model file(s), miri"));
    Ok(())
}

/// `cmd`, a `cargo` command with no arguments yet, as `cargo +NIGHTLY miri
/// test` with miri's flags (`MIRIFLAGS` when set, else [`MIRIFLAGS`]).
pub fn miri_test(cmd: Cmd) -> Cmd {
    let flags = non_empty_env("MIRIFLAGS").unwrap_or_else(|| MIRIFLAGS.to_owned());
    cmd.env("MIRIFLAGS", flags)
        .arg(format!("+{}", tools::nightly()))
        .args(["miri", "test"])
}

fn non_empty_env(key: &str) -> Option<String> {
    env::var(key).ok().filter(|value| !value.trim().is_empty())
}

/// Runs every loom model in release mode, in its own target directory
/// (its `RUSTFLAGS` differ from the ordinary build's).
fn loom(log: &mut StepLog) -> Result<(), String> {
    let models = workspace::loom_models(layout::root())?;
    if models.is_empty() {
        log.note("no models yet");
        return Ok(());
    }
    let preemptions =
        non_empty_env("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|| LOOM_MAX_PREEMPTIONS.to_owned());
    let target_dir = layout::display(&layout::target_dir().join("loom"));
    for model in &models {
        with_loom_cfg(Cmd::cargo())
            .env("LOOM_MAX_PREEMPTIONS", preemptions.as_str())
            .env("CARGO_TARGET_DIR", target_dir.as_str())
            .args([
                "test",
                "-p",
                &model.package,
                "--release",
                "--test",
                &model.test,
            ])
            .run()?;
    }
    log.note(&format!("{} model file(s)", models.len()));
    Ok(())
}

/// Runs the `no_std` crates' unit and integration tests under miri for
/// `target` (doc tests are left to the ordinary test step: under miri each
/// is a separate slow interpreter run).
fn miri(target: &str, is_host: bool) -> Result<(), String> {
    let crates = workspace::no_std_crates(layout::root())?;
    let target_dir = layout::display(&layout::target_dir().join("miri"));
    let mut cmd = miri_test(Cmd::cargo())
        .env("CARGO_TARGET_DIR", target_dir)
        .args(package_args(&crates))
        .args(["--lib", "--tests"]);
    if !is_host {
        cmd = cmd.args(["--target", target]);
    }
    cmd.run()
}

/// The host's target triple, from the active rustc.
fn host_triple() -> String {
    Cmd::new("rustc")
        .arg("-vV")
        .probe()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("host: "))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "host".to_owned())
}

#[cfg(test)]
mod tests;
