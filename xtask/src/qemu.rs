//! `cargo xtask qemu`: boot the demo kernel in QEMU against a fresh disk image
//! and check what it did.
//!
//! Two steps:
//! 1. **Build** `crates/demo-kernel` (its own workspace,
//!    riscv64gc-unknown-none-elf, `--locked`) and print its section sizes and
//!    its `.text` by crate, gupio's share included.
//! 2. **Boot**: write `target/demo-kernel/disk.img` from the pattern the
//!    kernel expects (`crates/demo-kernel/src/pattern.rs`, compiled into this
//!    module too), make `target/demo-kernel/fat.img`, a FAT32 filesystem
//!    (`mkfs.fat`, 4 KiB clusters) seeded with a few files (`mcopy`), run
//!    `qemu-system-riscv64 -M virt -bios none` headless with both drives
//!    and the seeds' names, sizes and checksums on the kernel command line
//!    (`-append`, which QEMU puts in the device tree's `/chosen/bootargs`),
//!    with a timeout, echoing and capturing the UART (also saved as
//!    `target/demo-kernel/uart.log`), then require exit status 0 (the
//!    kernel's test-finisher pass) and the kernel's PASS line, and check
//!    every byte of the pattern image: the sectors the kernel wrote hold the
//!    written pattern, all others are untouched. Then the FAT oracle:
//!    `fsck.fat -n` finds no error, every file of the manifest the kernel
//!    printed reads back with mtools with its size and checksum, the seeded
//!    files are intact and the deleted ones gone.
//!
//! The FAT filesystem has a drive of its own rather than a partition of the
//! pattern disk: the pattern image check stays byte for byte what it was,
//! and `mkfs.fat`, `fsck.fat` and mtools work on a whole-disk filesystem
//! without offsets.
//!
//! Any failure fails the step with a message that includes the UART log.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use self::fat::{check_fat_image, path_arg, seed_bootargs, write_fat_image};
use self::sizes::report_sizes;
use crate::cli::{self, Args};
use crate::cmd::Cmd;
use crate::step::Failure;
use crate::step::{Runner, StepLog};
use crate::tools::Tool;

/// The disk image's contents, shared with the kernel (see the file's header).
mod pattern {
    include!("../../crates/demo-kernel/src/pattern.rs");
}

/// The FAT image: made and seeded before the boot, checked after it.
mod fat;
/// The kernel's ELF sections and `.text` by crate.
mod sizes;

/// Target triple the kernel builds for (set in its `.cargo/config.toml`).
const KERNEL_TARGET: &str = "riscv64gc-unknown-none-elf";
/// The kernel's binary name.
const KERNEL_NAME: &str = "gupio-demo-kernel";
/// The line the kernel prints last when every check held.
const PASS_LINE: &str = "gupio-demo-kernel: PASS";
/// QEMU binary used unless [`QEMU_OVERRIDE`] names another.
const DEFAULT_QEMU: &str = "qemu-system-riscv64";
/// Environment variable naming another QEMU binary.
const QEMU_OVERRIDE: &str = "GUPIO_QEMU";
/// The Debian package that provides [`DEFAULT_QEMU`].
const QEMU_PACKAGE: &str = "qemu-system-misc";
/// Time QEMU may run before it is killed, unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Guest RAM; the kernel reads the size from the device tree.
const GUEST_MEMORY: &str = "128M";
/// Mismatching bytes listed in an image-check failure.
const MISMATCHES_SHOWN: usize = 8;

/// Usage line.
pub const USAGE: &str = "  qemu [--timeout SECONDS]
      build crates/demo-kernel, boot it in qemu-system-riscv64 (-M virt -bios
      none) against a fresh disk image and a seeded FAT32 image (mkfs.fat,
      mtools), check its exit status, its UART log
      (target/demo-kernel/uart.log) and both images afterwards (the FAT one
      with fsck.fat -n and mtools against the kernel's manifest); QEMU is killed
      after SECONDS (default 60); $GUPIO_QEMU names another QEMU binary";

/// Options of `cargo xtask qemu`.
pub struct Options {
    /// Time QEMU may run before it is killed.
    pub timeout: Duration,
    /// The QEMU binary.
    pub qemu: String,
}

impl Default for Options {
    fn default() -> Self {
        let qemu = std::env::var(QEMU_OVERRIDE)
            .ok()
            .filter(|path| !path.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_QEMU.to_owned());
        Self {
            timeout: DEFAULT_TIMEOUT,
            qemu,
        }
    }
}

/// Parses `qemu`'s arguments and runs it.
pub fn main(runner: &mut Runner, mut args: Args) -> Result<(), Failure> {
    let mut options = Options::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long("timeout") => {
                options.timeout = Duration::from_secs(cli::count(&mut args, "--timeout")?);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    run(runner, &options)
}

/// The `qemu` stage of `cargo xtask ci`, with the default options.
pub fn ci(runner: &mut Runner) -> Result<(), Failure> {
    run(runner, &Options::default())
}

/// Builds the kernel, then boots it and checks the outcome: two steps.
pub fn run(runner: &mut Runner, options: &Options) -> Result<(), Failure> {
    let root = workspace_root();
    let mut kernel = None;
    runner.step(
        "demo-kernel build",
        &[Tool::StableTarget(KERNEL_TARGET)],
        |log| {
            let elf = build_kernel(&root)?;
            report_sizes(&elf, log)?;
            kernel = Some(elf);
            Ok(())
        },
    )?;
    let Some(kernel) = kernel else {
        return Err(Failure::StepFailed);
    };
    // The FAT image's tools; a QEMU named by the override is the caller's
    // business to install.
    let mut tools = vec![
        Tool::Executable {
            name: "mkfs.fat",
            package: "dosfstools",
        },
        Tool::Executable {
            name: "fsck.fat",
            package: "dosfstools",
        },
        Tool::Program {
            name: "mcopy",
            package: "mtools",
        },
        Tool::Program {
            name: "mdir",
            package: "mtools",
        },
    ];
    if options.qemu == DEFAULT_QEMU {
        tools.push(Tool::Program {
            name: DEFAULT_QEMU,
            package: QEMU_PACKAGE,
        });
    }
    let tools = tools.as_slice();
    runner.step("demo-kernel boot in QEMU", tools, |log| {
        boot_and_check(&root, &kernel, options, log)
    })
}

/// Writes the image, boots the kernel on it and checks the outcome.
fn boot_and_check(
    root: &Path,
    kernel: &Path,
    options: &Options,
    log: &mut StepLog,
) -> Result<(), String> {
    let out_dir = root.join("target").join("demo-kernel");
    fs::create_dir_all(&out_dir)
        .map_err(|error| format!("qemu: cannot create {}: {error}", out_dir.display()))?;
    let image = out_dir.join("disk.img");
    write_image(&image)?;
    let fat_image = out_dir.join("fat.img");
    let seeds = write_fat_image(&fat_image, &out_dir.join("seeds"))?;
    let bootargs = seed_bootargs(&seeds);

    let started = Instant::now();
    let outcome = run_qemu(options, kernel, &image, &fat_image, &bootargs)?;
    let elapsed = started.elapsed();
    let log_path = out_dir.join("uart.log");
    fs::write(&log_path, &outcome.uart)
        .map_err(|error| format!("qemu: cannot write {}: {error}", log_path.display()))?;
    let failure = |what: String| format!("qemu: {what}\n{}", outcome.report());

    let Some(status) = outcome.status else {
        return Err(failure(format!(
            "QEMU did not exit within {} s and was killed",
            options.timeout.as_secs()
        )));
    };
    if !status.success() {
        return Err(failure(format!(
            "QEMU exited with {}",
            describe_status(status)
        )));
    }
    if !outcome
        .uart
        .lines()
        .any(|line| line.trim_end() == PASS_LINE)
    {
        return Err(failure(format!(
            "QEMU exited with status 0 but the kernel never printed `{PASS_LINE}`"
        )));
    }
    check_image(&image).map_err(&failure)?;
    check_fat_image(&fat_image, &outcome.uart, &seeds).map_err(&failure)?;
    println!(
        "qemu: passed in {:.2} s (boot and test, QEMU start to exit); UART log in {}",
        elapsed.as_secs_f64(),
        log_path.display()
    );
    log.note(&format!(
        "kernel passed in {:.2} s under QEMU",
        elapsed.as_secs_f64()
    ));
    Ok(())
}

/// The parent workspace's root (xtask lives in `<root>/xtask`).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Builds the kernel (release) and returns the ELF's path.
fn build_kernel(root: &Path) -> Result<PathBuf, String> {
    let kernel_dir = root.join("crates").join("demo-kernel");
    // The kernel is its own workspace; its target directory is set explicitly
    // so a CARGO_TARGET_DIR meant for the parent workspace does not move it.
    let target_dir = kernel_dir.join("target");
    // Cargo reads `.cargo/config.toml` from the working directory up, so the
    // build runs in the kernel's directory; `--target` repeats its setting.
    Cmd::cargo()
        .in_dir("crates/demo-kernel")
        .args(["build", "--release", "--locked", "--target", KERNEL_TARGET])
        .arg("--target-dir")
        .arg(target_dir.to_string_lossy())
        .run()
        .map_err(|error| format!("qemu: building the demo kernel failed: {error}"))?;
    let elf = target_dir
        .join(KERNEL_TARGET)
        .join("release")
        .join(KERNEL_NAME);
    if elf.is_file() {
        Ok(elf)
    } else {
        Err(format!("qemu: the build did not produce {}", elf.display()))
    }
}

/// Writes the disk image: every byte from `pattern::image_byte`.
fn write_image(path: &Path) -> Result<(), String> {
    let mut bytes = Vec::with_capacity(image_len());
    for sector in 0..pattern::IMAGE_SECTORS {
        bytes.extend((0..pattern::SECTOR_SIZE).map(|offset| pattern::image_byte(sector, offset)));
    }
    println!(
        "qemu: writing {} ({} sectors of {} bytes, pattern from crates/demo-kernel/src/pattern.rs)",
        path.display(),
        pattern::IMAGE_SECTORS,
        pattern::SECTOR_SIZE
    );
    fs::write(path, bytes)
        .map_err(|error| format!("qemu: cannot write {}: {error}", path.display()))
}

fn image_len() -> usize {
    usize::try_from(pattern::IMAGE_SECTORS).expect("the image size fits in memory")
        * pattern::SECTOR_SIZE
}

/// Checks every byte of the image against `pattern::expected_final_byte`.
fn check_image(path: &Path) -> Result<(), String> {
    let bytes =
        fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if bytes.len() != image_len() {
        return Err(format!(
            "{} is {} bytes after the run, {} expected",
            path.display(),
            bytes.len(),
            image_len()
        ));
    }
    let mut mismatches = 0usize;
    let mut shown = String::new();
    for (sector, chunk) in (0u64..).zip(bytes.chunks_exact(pattern::SECTOR_SIZE)) {
        for (offset, &found) in chunk.iter().enumerate() {
            let expected = pattern::expected_final_byte(sector, offset);
            if found == expected {
                continue;
            }
            mismatches += 1;
            if mismatches <= MISMATCHES_SHOWN {
                let role = if pattern::is_written(sector) {
                    "written by the kernel"
                } else {
                    "must be untouched"
                };
                let _ = writeln!(
                    shown,
                    "  sector {sector} ({role}) byte {offset}: expected {expected:#04x}, found {found:#04x}"
                );
            }
        }
    }
    if mismatches > 0 {
        return Err(format!(
            "the disk image differs from what the kernel should have left in {mismatches} bytes:\n{shown}"
        ));
    }
    let written: Vec<String> = pattern::WRITTEN_SECTORS
        .iter()
        .map(|range| format!("{}..{}", range.start, range.end))
        .collect();
    let untouched = (0..pattern::IMAGE_SECTORS)
        .filter(|&sector| !pattern::is_written(sector))
        .count();
    println!(
        "qemu: image check: sectors {} hold the kernel's writes, the other {untouched} sectors are untouched",
        written.join(" and ")
    );
    Ok(())
}

/// What a QEMU run produced.
struct Outcome {
    /// Exit status; `None` if QEMU was killed at the timeout.
    status: Option<ExitStatus>,
    /// The UART output (QEMU's stdout), `\r` removed.
    uart: String,
    /// QEMU's own diagnostics.
    stderr: String,
}

impl Outcome {
    fn report(&self) -> String {
        let mut report = String::from("----- UART log -----\n");
        report.push_str(&self.uart);
        if !self.uart.ends_with('\n') {
            report.push('\n');
        }
        report.push_str("----- end of UART log -----");
        if !self.stderr.trim().is_empty() {
            let _ = write!(
                report,
                "\n----- QEMU stderr -----\n{}",
                self.stderr.trim_end()
            );
        }
        report
    }
}

/// Copies the UART to our standard output as it arrives, and returns it.
///
/// By hand: duct captures a stream or passes it through, not both; the
/// UART must show live (a hung kernel is diagnosed from it) and be checked
/// afterwards.
fn tee(mut uart: impl Read) -> Vec<u8> {
    let mut captured = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match uart.read(&mut chunk) {
            Ok(0) | Err(_) => return captured,
            Ok(len) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&chunk[..len]);
                let _ = stdout.flush();
                captured.extend_from_slice(&chunk[..len]);
            }
        }
    }
}

/// The QEMU command line.
fn qemu_command(
    options: &Options,
    kernel: &Path,
    image: &Path,
    fat_image: &Path,
    bootargs: &str,
) -> Cmd {
    // QEMU's option parser takes `,,` for a literal comma in a value.
    let image_arg = path_arg(image).replace(',', ",,");
    let fat_arg = path_arg(fat_image).replace(',', ",,");
    Cmd::new(&options.qemu)
        .args([
            "-machine",
            "virt",
            "-bios",
            "none",
            "-smp",
            "1",
            "-m",
            GUEST_MEMORY,
        ])
        .args(["-nographic", "-monitor", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(path_arg(kernel))
        // The kernel takes the first block device in slot order for phases
        // 1 and 2, the second for phase 3. QEMU `virt` gives virtio-mmio
        // slots from the top down in command-line order, so the FAT drive
        // comes first here and lands in the higher slot.
        .arg("-drive")
        .arg(format!("file={fat_arg},if=none,format=raw,id=hd1"))
        .args(["-device", "virtio-blk-device,drive=hd1"])
        .arg("-drive")
        .arg(format!("file={image_arg},if=none,format=raw,id=hd0"))
        .args(["-device", "virtio-blk-device,drive=hd0"])
        .arg("-append")
        .arg(bootargs)
        .args(["-global", "virtio-mmio.force-legacy=false"])
}

/// Boots the kernel, echoing the UART; kills QEMU at the timeout.
fn run_qemu(
    options: &Options,
    kernel: &Path,
    image: &Path,
    fat_image: &Path,
    bootargs: &str,
) -> Result<Outcome, String> {
    let command = qemu_command(options, kernel, image, fat_image, bootargs);
    println!("$ {command}");
    let qemu = command
        .expression()
        .stdin_null()
        .stderr_capture()
        .reader()
        .map_err(|error| {
            format!(
                "qemu: cannot run `{}`: {error}\n(install it with `apt-get install {QEMU_PACKAGE}`; see ci/install.sh)",
                options.qemu
            )
        })?;
    let qemu = Arc::new(qemu);
    // The UART reaches end of file when QEMU exits (or is killed).
    let (exited, exit) = mpsc::channel();
    let uart_reader = {
        let qemu = Arc::clone(&qemu);
        thread::spawn(move || {
            let uart = tee(&*qemu);
            let _ = exited.send(());
            uart
        })
    };
    let killed = exit.recv_timeout(options.timeout).is_err();
    if killed {
        // Killing can only fail if QEMU has exited meanwhile.
        let _ = qemu.kill();
    }
    let uart = uart_reader
        .join()
        .map_err(|_| "qemu: the UART reader panicked".to_owned())?;
    let output = qemu
        .try_wait()
        .map_err(|error| format!("qemu: cannot wait for QEMU: {error}"))?
        .ok_or("qemu: QEMU closed its output but did not exit")?;
    Ok(Outcome {
        status: (!killed).then_some(output.status),
        uart: String::from_utf8_lossy(&uart).replace('\r', ""),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Explains an exit status in terms of the kernel's failure codes (its `finisher.rs`).
fn describe_status(status: ExitStatus) -> String {
    let Some(code) = status.code() else {
        return format!("{status} (killed by a signal)");
    };
    let meaning = match code {
        0 => "pass",
        1 => "a check failed",
        2 => "the kernel panicked",
        3 => "unexpected trap",
        4 => "fault while reporting a fault",
        _ => "QEMU error",
    };
    format!("status {code} ({meaning})")
}

#[cfg(test)]
mod tests;
