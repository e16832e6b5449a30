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
use std::process::{ExitStatus, Output};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use lexopt::prelude::*;
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::cli::{self, Args};
use crate::cmd::Cmd;
use crate::step::{Runner, StepLog};
use crate::tools::Tool;
use crate::Failure;

/// The disk image's contents, shared with the kernel (see the file's header).
mod pattern {
    include!("../../crates/demo-kernel/src/pattern.rs");
}

/// The file checksum and the FAT scenario's command-line and manifest
/// formats, shared with the kernel (see the file's header).
mod checksum {
    include!("../../crates/demo-kernel/src/checksum.rs");
}

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
/// Size of the FAT image in KiB: FAT32 with 4 KiB clusters needs at least
/// 65525 clusters (embedded-sdmmc, like the FAT specification, tells the
/// FAT type by the cluster count), so 300 MiB; the file is sparse.
const FAT_IMAGE_KIB: u64 = 300 * 1024;
/// Sectors per cluster: 4 KiB clusters, one page each, page aligned.
const FAT_CLUSTER_SECTORS: &str = "8";

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

/// A file `cargo xtask qemu` seeds the FAT image with.
struct SeedFile {
    /// Its 8.3 name in the root directory.
    name: &'static str,
    /// Its contents.
    bytes: Vec<u8>,
}

/// Bytes from a xorshift generator started at `seed` (never zero).
///
/// By hand: three shifts give the seeded files bytes that differ from page
/// to page and are the same in every run; `rand` would add several crates
/// for it.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// The seeded files: text, binary across many clusters, a small binary,
/// and the one the kernel deletes.
fn seed_files() -> Vec<SeedFile> {
    let readme: String = (1..=40)
        .map(|line| format!("gupio demo kernel, seeded line {line:02}: the page cache keeps it\n"))
        .collect();
    let old: String = (1..=100)
        .map(|line| format!("old line {line:03}, deleted by the kernel\n"))
        .collect();
    vec![
        SeedFile {
            name: "README.TXT",
            bytes: readme.into_bytes(),
        },
        SeedFile {
            name: "BIG.BIN",
            bytes: noise(0x6775_7069_6f21, 200 * 1024 + 123),
        },
        SeedFile {
            name: "KEEP.DAT",
            bytes: noise(0x5eed, 9000),
        },
        SeedFile {
            name: checksum::DELETED_SEED,
            bytes: old.into_bytes(),
        },
    ]
}

/// The FNV-1a checksum of `bytes`.
fn checksum_of(bytes: &[u8]) -> u32 {
    let mut sum = checksum::Checksum::new();
    sum.update(bytes);
    sum.get()
}

/// Runs a FAT tool; its output, or an error naming the package to install.
fn fat_tool(command: Cmd, package: &str) -> Result<Output, String> {
    command
        .env("MTOOLS_SKIP_CHECK", "1")
        .capture()
        .map_err(|error| {
            format!(
                "qemu: {error}\n(install it with `apt-get install {package}`; see ci/install.sh)"
            )
        })
}

/// `path` as a command argument.
fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Makes the FAT32 image with `mkfs.fat` and copies the seeded files into
/// its root with `mcopy` (staged in `staging`); returns them.
fn write_fat_image(path: &Path, staging: &Path) -> Result<Vec<SeedFile>, String> {
    // mkfs.fat -C refuses to overwrite.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("qemu: cannot remove {}: {error}", path.display())),
    }
    let output = fat_tool(
        Cmd::new("mkfs.fat")
            .args(["-F", "32", "-s", FAT_CLUSTER_SECTORS, "-n", "GUPIO", "-C"])
            .arg(path_arg(path))
            .arg(FAT_IMAGE_KIB.to_string()),
        "dosfstools",
    )?;
    if !output.status.success() {
        return Err(format!(
            "qemu: mkfs.fat failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    fs::create_dir_all(staging)
        .map_err(|error| format!("qemu: cannot create {}: {error}", staging.display()))?;
    let seeds = seed_files();
    for seed in &seeds {
        let file = staging.join(seed.name);
        fs::write(&file, &seed.bytes)
            .map_err(|error| format!("qemu: cannot write {}: {error}", file.display()))?;
        let output = fat_tool(
            Cmd::new("mcopy")
                .arg("-i")
                .arg(path_arg(path))
                .arg(path_arg(&file))
                .arg(format!("::/{}", seed.name)),
            "mtools",
        )?;
        if !output.status.success() {
            return Err(format!(
                "qemu: mcopy of {} failed: {}",
                seed.name,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    println!(
        "qemu: {} is FAT32 ({} MiB, 4 KiB clusters) with {} seeded files",
        path.display(),
        FAT_IMAGE_KIB / 1024,
        seeds.len()
    );
    Ok(seeds)
}

/// The kernel command line naming the seeded files, their sizes and checksums.
fn seed_bootargs(seeds: &[SeedFile]) -> String {
    let list: Vec<String> = seeds
        .iter()
        .map(|seed| {
            format!(
                "{}:{}:{:08x}",
                seed.name,
                seed.bytes.len(),
                checksum_of(&seed.bytes)
            )
        })
        .collect();
    format!("{}{}", checksum::SEED_KEY, list.join(","))
}

/// One line of the kernel's manifest.
#[derive(Debug, PartialEq, Eq)]
enum ManifestEntry {
    /// A file the kernel left: path, size, checksum.
    File(String, u64, u32),
    /// A file the kernel deleted.
    Gone(String),
}

/// The manifest lines of the UART log (a format of the kernel's own,
/// `src/checksum.rs`; read by hand).
fn parse_manifest(uart: &str) -> Result<Vec<ManifestEntry>, String> {
    uart.lines()
        .filter_map(|line| line.trim_end().strip_prefix(checksum::MANIFEST_PREFIX))
        .map(|entry| {
            let words: Vec<&str> = entry.split_whitespace().collect();
            match words.as_slice() {
                ["file", name, size, sum] => {
                    let size = size
                        .parse()
                        .map_err(|_| format!("manifest: bad size in `{entry}`"))?;
                    let sum = u32::from_str_radix(sum, 16)
                        .map_err(|_| format!("manifest: bad checksum in `{entry}`"))?;
                    Ok(ManifestEntry::File((*name).to_owned(), size, sum))
                }
                ["gone", name] => Ok(ManifestEntry::Gone((*name).to_owned())),
                _ => Err(format!("manifest: cannot parse `{entry}`")),
            }
        })
        .collect()
}

/// The oracle of the FAT scenario: `fsck.fat -n` finds no error, every
/// file of the kernel's manifest reads back from the image (mtools) with
/// its size and checksum, the seeded files are intact and the deleted
/// ones gone.
fn check_fat_image(path: &Path, uart: &str, seeds: &[SeedFile]) -> Result<(), String> {
    let fsck = fat_tool(
        Cmd::new("fsck.fat").arg("-n").arg(path_arg(path)),
        "dosfstools",
    )?;
    let fsck_log = format!(
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    print!("{fsck_log}");
    if !fsck.status.success() {
        return Err(format!(
            "fsck.fat -n found errors in {} ({}):\n{fsck_log}",
            path.display(),
            fsck.status
        ));
    }
    let manifest = parse_manifest(uart)?;
    let mut problems = Vec::new();
    for entry in &manifest {
        match entry {
            ManifestEntry::File(name, size, sum) => {
                let output = fat_tool(
                    Cmd::new("mcopy")
                        .args(["-n", "-i"])
                        .arg(path_arg(path))
                        .arg(format!("::/{name}"))
                        .arg("-"),
                    "mtools",
                )?;
                if !output.status.success() {
                    problems.push(format!(
                        "{name}: mcopy failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                    continue;
                }
                let found = (output.stdout.len() as u64, checksum_of(&output.stdout));
                if found != (*size, *sum) {
                    problems.push(format!(
                        "{name}: the image holds {} bytes, sum {:08x}; the kernel's manifest says {size} bytes, sum {sum:08x}",
                        found.0, found.1
                    ));
                }
            }
            ManifestEntry::Gone(name) => {
                let output = fat_tool(
                    Cmd::new("mdir")
                        .arg("-i")
                        .arg(path_arg(path))
                        .arg(format!("::/{name}")),
                    "mtools",
                )?;
                if output.status.success() {
                    problems.push(format!(
                        "{name}: deleted by the kernel, but still in the image"
                    ));
                }
            }
        }
    }
    for seed in seeds {
        let expected = if seed.name == checksum::DELETED_SEED {
            ManifestEntry::Gone(seed.name.to_owned())
        } else {
            ManifestEntry::File(
                seed.name.to_owned(),
                seed.bytes.len() as u64,
                checksum_of(&seed.bytes),
            )
        };
        if !manifest.contains(&expected) {
            problems.push(format!(
                "seeded {}: not in the manifest as {expected:?}",
                seed.name
            ));
        }
    }
    let files = manifest
        .iter()
        .filter(|entry| matches!(entry, ManifestEntry::File(..)))
        .count();
    if files <= seeds.len() {
        problems.push(format!(
            "the manifest lists {files} files: the kernel's own are missing"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "the FAT image differs from the kernel's manifest:\n  {}\n----- fsck.fat -n -----\n{fsck_log}",
            problems.join("\n  ")
        ));
    }
    println!(
        "qemu: FAT check: fsck.fat -n clean; {files} files of the manifest match the image (mtools), \
         {} deleted files gone, seeded files intact",
        manifest.len() - files
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

// ---------------------------------------------------------------------------
// ELF section and per-crate .text sizes, read from the kernel's ELF with
// `object`; symbol names demangled with `rustc-demangle`.

/// The crate a Rust symbol belongs to, or a bucket for others.
///
/// Both manglings in the kernel demangle to a path: legacy (`_ZN`, the
/// kernel and its dependencies) and v0 (`_R`, the precompiled `core` and
/// `compiler_builtins`). The crate is the path's first segment; for a
/// `<T as Trait>` impl it is T's crate, or the trait's when T is generic
/// (a bare name without `::`).
fn crate_of(symbol: &str) -> String {
    let Ok(demangled) = rustc_demangle::try_demangle(symbol) else {
        let rust = symbol.starts_with("_ZN") || symbol.starts_with("_R");
        return if rust { "(unknown Rust)" } else { "(not Rust)" }.to_owned();
    };
    // `{:#}` leaves out the legacy mangling's hash.
    let path = format!("{demangled:#}");
    let Some(qualified) = path.strip_prefix('<') else {
        return first_segment(&path);
    };
    // `<&mut T as Trait>`, `<[T]>` and the like: look through references,
    // pointers, slices and tuples to the type's path.
    let mut subject = qualified;
    while let Some(rest) = ["&", "mut ", "*const ", "*mut ", "dyn ", "[", "("]
        .iter()
        .find_map(|prefix| subject.strip_prefix(prefix))
    {
        subject = rest;
    }
    let (subject, trait_path) = subject.split_once(" as ").unwrap_or((subject, ""));
    // The type's own path ends where its brackets or the impl's `>` close.
    let subject = subject
        .split([']', ';', ')', ',', '>'])
        .next()
        .unwrap_or(subject);
    if subject.contains("::") || trait_path.is_empty() {
        first_segment(subject)
    } else {
        first_segment(trait_path)
    }
}

/// Rust's primitive types: an inherent impl on one is `core`'s.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// The first `::`-separated segment of a demangled path.
fn first_segment(path: &str) -> String {
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    match &path[..end] {
        "" => "(unknown Rust)".to_owned(),
        primitive if PRIMITIVES.contains(&primitive) => "core".to_owned(),
        name => name.to_owned(),
    }
}

/// Whether `krate` is one of gupio's crates (the demo kernel is not).
fn is_gupio_crate(krate: &str) -> bool {
    krate == "gupio" || (krate.starts_with("gupio_") && krate != "gupio_demo_kernel")
}

/// Prints the kernel's section sizes and its `.text` by crate, and notes
/// gupio's share in the step's summary.
fn report_sizes(kernel: &Path, log: &mut StepLog) -> Result<(), String> {
    let bytes = fs::read(kernel)
        .map_err(|error| format!("qemu: cannot read {}: {error}", kernel.display()))?;
    let elf = object::File::parse(bytes.as_slice())
        .map_err(|error| format!("qemu: {}: {error}", kernel.display()))?;
    let mut line = String::from("qemu: kernel sections:");
    for section in elf.sections().filter(|s| s.address() != 0 && s.size() != 0) {
        let name = section.name().unwrap_or("?");
        let _ = write!(line, " {name} {} B", section.size());
    }
    println!("{line}");

    let Some(text) = elf.section_by_name(".text") else {
        return Err("qemu: the kernel has no .text section".to_owned());
    };
    if elf.symbol_table().is_none() {
        println!("qemu: kernel has no symbol table; no per-crate .text breakdown");
        return Ok(());
    }
    let mut by_crate: Vec<(String, u64)> = Vec::new();
    // Identical-code folding and aliases (memcpy) give one address several names.
    let mut seen = std::collections::HashSet::new();
    for symbol in elf.symbols() {
        let function = symbol.kind() == SymbolKind::Text
            && symbol.section_index() == Some(text.index())
            && symbol.size() != 0;
        if !function || !seen.insert(symbol.address()) {
            continue;
        }
        let krate = crate_of(symbol.name().unwrap_or(""));
        match by_crate.iter_mut().find(|(name, _)| *name == krate) {
            Some((_, total)) => *total += symbol.size(),
            None => by_crate.push((krate, symbol.size())),
        }
    }
    by_crate.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let counted: u64 = by_crate.iter().map(|(_, size)| size).sum();
    let text_size = text.size();
    println!("qemu: kernel .text is {text_size} B; functions by crate (they cover {counted} B):");
    for (krate, size) in &by_crate {
        // Display only: the lossy float conversion cannot matter.
        #[allow(clippy::cast_precision_loss)]
        let percent = 100.0 * *size as f64 / text_size as f64;
        println!("  {krate:<24} {size:>7} B {percent:>5.1}%");
    }
    let gupio: u64 = by_crate
        .iter()
        .filter(|(krate, _)| is_gupio_crate(krate))
        .map(|(_, size)| size)
        .sum();
    // Display only: the lossy float conversion cannot matter.
    #[allow(clippy::cast_precision_loss)]
    let percent = 100.0 * gupio as f64 / text_size as f64;
    println!(
        "qemu: gupio's crates are {gupio} B of the kernel's {text_size} B of .text ({percent:.1}%)"
    );
    log.note(&format!(
        ".text {text_size} B, gupio {gupio} B ({percent:.1}%)"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy-mangled symbol whose first path component is `first`.
    fn legacy(first: &str) -> String {
        format!("_ZN{}{first}4main17h0123456789abcdefE", first.len())
    }

    #[test]
    fn legacy_symbols_name_their_crate() {
        assert_eq!(crate_of(&legacy("gupio_demo_kernel")), "gupio_demo_kernel");
        assert_eq!(crate_of(&legacy("gupio_pin")), "gupio_pin");
    }

    #[test]
    fn trait_impls_name_the_type_crate_or_the_trait_crate_for_generics() {
        let concrete =
            "_$LT$gupio_demo_kernel..pagemap..PageMap$u20$as$u20$gupio_pin..map..PageOps$GT$";
        assert_eq!(crate_of(&legacy(concrete)), "gupio_demo_kernel");
        let generic = "_$LT$T$u20$as$u20$gupio_release..Warn$GT$";
        assert_eq!(crate_of(&legacy(generic)), "gupio_release");
    }

    #[test]
    fn v0_symbols_name_their_innermost_crate() {
        assert_eq!(crate_of("_RNvNtCs1a2b_4core3fmt5write"), "core");
        assert_eq!(
            crate_of("_RNvCs9_17compiler_builtins6memcpy"),
            "compiler_builtins"
        );
    }

    #[test]
    fn impls_on_primitives_are_cores() {
        // From the kernel's ELF: `<u128>::_fmt_inner`, `<char>::escape_debug_ext`.
        assert_eq!(
            crate_of("_RNvMs0_NtNtCsduH8GDKzQ6M_4core3fmt3numo10__fmt_inner"),
            "core"
        );
        assert_eq!(
            crate_of("_RNvMNtNtCsduH8GDKzQ6M_4core4char7methodsc16escape_debug_ext"),
            "core"
        );
    }

    #[test]
    fn other_symbols_are_bucketed() {
        assert_eq!(crate_of("memcpy"), "(not Rust)");
        assert_eq!(crate_of("_ZNnot-a-length"), "(unknown Rust)");
        assert_eq!(
            crate_of("_RINvNtCs1_4core3ptr13drop_in_placeNtCs2_9gupio_pin7TrackerEB4_"),
            "core",
            "a generic instance belongs to the generic's crate"
        );
    }

    #[test]
    fn gupio_share_counts_the_core_crates_but_not_the_kernel() {
        for krate in [
            "gupio",
            "gupio_pin",
            "gupio_bio",
            "gupio_release",
            "gupio_pfn",
        ] {
            assert!(is_gupio_crate(krate), "{krate}");
        }
        for krate in ["gupio_demo_kernel", "core", "virtio_drivers", "gupiox"] {
            assert!(!is_gupio_crate(krate), "{krate}");
        }
    }

    #[test]
    fn written_ranges_are_disjoint_inside_the_image_and_visible() {
        let ranges = &pattern::WRITTEN_SECTORS;
        for (index, range) in ranges.iter().enumerate() {
            assert!(range.start < range.end && range.end <= pattern::IMAGE_SECTORS);
            for other in &ranges[index + 1..] {
                assert!(range.end <= other.start || other.end <= range.start);
            }
        }
        for sector in 0..pattern::IMAGE_SECTORS {
            let written = ranges.iter().any(|range| range.contains(&sector));
            assert_eq!(pattern::is_written(sector), written, "sector {sector}");
            for offset in [0, 1, 255, pattern::SECTOR_SIZE - 1] {
                let image = pattern::image_byte(sector, offset);
                assert_ne!(pattern::written_byte(sector, offset), image);
                let expected = if written {
                    pattern::written_byte(sector, offset)
                } else {
                    image
                };
                assert_eq!(pattern::expected_final_byte(sector, offset), expected);
            }
        }
    }

    #[test]
    fn manifest_lines_parse_and_other_lines_are_ignored() {
        let uart = "boot\nfs manifest: file LOGS/EVENTS.TXT 8000 6654bbab\r\n\
                    fs manifest: gone OLD.TXT\nsummary\n";
        assert_eq!(
            parse_manifest(uart).unwrap(),
            vec![
                ManifestEntry::File("LOGS/EVENTS.TXT".to_owned(), 8000, 0x6654_bbab),
                ManifestEntry::Gone("OLD.TXT".to_owned()),
            ]
        );
        assert!(parse_manifest("fs manifest: file X.TXT ten 0").is_err());
        assert!(parse_manifest("fs manifest: renamed X.TXT").is_err());
    }

    #[test]
    fn seed_bootargs_name_every_seed_with_size_and_checksum() {
        let seeds = seed_files();
        let line = seed_bootargs(&seeds);
        let list = line.strip_prefix(checksum::SEED_KEY).unwrap();
        assert!(!line.contains(' '), "one word on the command line");
        assert_eq!(list.split(',').count(), seeds.len());
        assert!(list.contains(&format!("{}:", checksum::DELETED_SEED)));
        // FNV-1a's published test vector.
        assert_eq!(checksum_of(b"a"), 0xe40c_292c);
    }

    #[test]
    fn exit_statuses_are_explained_with_the_kernel_failure_codes() {
        use std::os::unix::process::ExitStatusExt;
        let status = |code: i32| ExitStatus::from_raw(code << 8);
        assert_eq!(describe_status(status(0)), "status 0 (pass)");
        assert_eq!(describe_status(status(2)), "status 2 (the kernel panicked)");
        assert!(describe_status(ExitStatus::from_raw(9)).contains("signal"));
    }
}
