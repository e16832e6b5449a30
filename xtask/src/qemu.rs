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
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::cli::Args;
use crate::cmd::shell_quote;
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
/// How often the QEMU process is polled for exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
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
    if let Some(seconds) = args.count("--timeout")? {
        options.timeout = Duration::from_secs(seconds);
    }
    args.finish()?;
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

/// Prints `command` (and its working directory, if set) as a shell line.
fn show(command: &Command) {
    let mut line = String::from("$");
    if let Some(dir) = command.get_current_dir() {
        let _ = write!(line, " cd {} &&", shell_quote(dir));
    }
    for part in std::iter::once(command.get_program()).chain(command.get_args()) {
        let _ = write!(line, " {}", shell_quote(part));
    }
    println!("{line}");
}

/// Builds the kernel (release) and returns the ELF's path.
fn build_kernel(root: &Path) -> Result<PathBuf, String> {
    let kernel_dir = root.join("crates").join("demo-kernel");
    // The kernel is its own workspace; its target directory is set explicitly
    // so a CARGO_TARGET_DIR meant for the parent workspace does not move it.
    let target_dir = kernel_dir.join("target");
    // Cargo reads `.cargo/config.toml` from the working directory up, so the
    // build runs in the kernel's directory; `--target` repeats its setting.
    crate::cmd::Cmd::cargo()
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
fn fat_tool(command: &mut Command, package: &str) -> Result<std::process::Output, String> {
    command.env("MTOOLS_SKIP_CHECK", "1");
    show(command);
    command.output().map_err(|error| {
        format!(
            "qemu: cannot run `{}`: {error}\n(install it with `apt-get install {package}`; see ci/install.sh)",
            command.get_program().to_string_lossy()
        )
    })
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
        Command::new("mkfs.fat")
            .args(["-F", "32", "-s", FAT_CLUSTER_SECTORS, "-n", "GUPIO", "-C"])
            .arg(path)
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
            Command::new("mcopy")
                .arg("-i")
                .arg(path)
                .arg(&file)
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

/// The manifest lines of the UART log.
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
    let fsck = fat_tool(Command::new("fsck.fat").arg("-n").arg(path), "dosfstools")?;
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
                    Command::new("mcopy")
                        .arg("-n")
                        .arg("-i")
                        .arg(path)
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
                    Command::new("mdir")
                        .arg("-i")
                        .arg(path)
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

/// Copies `source` into a shared buffer until EOF, echoing it if `echo`.
fn capture(
    mut source: impl Read + Send + 'static,
    echo: bool,
) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buffer);
    let handle = thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match source.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(len) => {
                    if echo {
                        let mut stdout = std::io::stdout().lock();
                        let _ = stdout.write_all(&chunk[..len]);
                        let _ = stdout.flush();
                    }
                    sink.lock()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .extend_from_slice(&chunk[..len]);
                }
            }
        }
    });
    (buffer, handle)
}

fn collected(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    let bytes = buffer.lock().unwrap_or_else(|poison| poison.into_inner());
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

/// Boots the kernel, echoing the UART; kills QEMU at the timeout.
fn run_qemu(
    options: &Options,
    kernel: &Path,
    image: &Path,
    fat_image: &Path,
    bootargs: &str,
) -> Result<Outcome, String> {
    // QEMU's option parser takes `,,` for a literal comma in a value.
    let image_arg = image.to_string_lossy().replace(',', ",,");
    let fat_arg = fat_image.to_string_lossy().replace(',', ",,");
    let mut command = Command::new(&options.qemu);
    command
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
        .arg(kernel)
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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    show(&command);
    let mut child: Child = command.spawn().map_err(|error| {
        format!(
            "qemu: cannot run `{}`: {error}\n(install it with `apt-get install qemu-system-misc`; see ci/install.sh)",
            options.qemu
        )
    })?;
    let (stdout, stdout_reader) = capture(child.stdout.take().expect("stdout is piped"), true);
    let (stderr, stderr_reader) = capture(child.stderr.take().expect("stderr is piped"), false);

    let deadline = Instant::now() + options.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // Killing can only fail if QEMU has exited meanwhile.
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(POLL_INTERVAL),
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("qemu: cannot wait for QEMU: {error}"));
            }
        }
    };
    // QEMU is gone, so both pipes are at EOF and the readers finish.
    let _ = stdout_reader.join();
    let _ = stderr_reader.join();
    Ok(Outcome {
        status,
        uart: collected(&stdout),
        stderr: collected(&stderr),
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
// ELF section and per-crate .text sizes, read from the kernel's ELF.

/// A section of a 64-bit little-endian ELF file.
struct Section {
    name: String,
    kind: u32,
    address: u64,
    offset: u64,
    size: u64,
    link: u32,
}

/// ELF section type: symbol table.
const SHT_SYMTAB: u32 = 2;
/// ELF section type: occupies no file space (.bss).
const SHT_NOBITS: u32 = 8;
/// ELF symbol type: function.
const STT_FUNC: u8 = 2;

fn field<const N: usize>(bytes: &[u8], offset: u64) -> Result<[u8; N], String> {
    usize::try_from(offset)
        .ok()
        .and_then(|start| bytes.get(start..start.checked_add(N)?))
        .and_then(|slice| slice.try_into().ok())
        .ok_or_else(|| format!("ELF field at {offset:#x} is out of bounds"))
}

fn u16_at(bytes: &[u8], offset: u64) -> Result<u16, String> {
    field(bytes, offset).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], offset: u64) -> Result<u32, String> {
    field(bytes, offset).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], offset: u64) -> Result<u64, String> {
    field(bytes, offset).map(u64::from_le_bytes)
}

fn c_string(bytes: &[u8], offset: u64) -> Result<String, String> {
    let start = usize::try_from(offset).map_err(|_| "ELF string offset too large".to_owned())?;
    let tail = bytes
        .get(start..)
        .ok_or_else(|| format!("ELF string at {offset:#x} is out of bounds"))?;
    let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
    Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
}

fn sections(elf: &[u8]) -> Result<Vec<Section>, String> {
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1).
    if elf.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1]) {
        return Err("not a 64-bit little-endian ELF file".to_owned());
    }
    let table = u64_at(elf, 0x28)?;
    let entry_size = u64::from(u16_at(elf, 0x3a)?);
    let count = u64::from(u16_at(elf, 0x3c)?);
    let names_index = u64::from(u16_at(elf, 0x3e)?);
    let header = |index: u64| table + index * entry_size;
    let names_offset = u64_at(elf, header(names_index) + 24)?;
    (0..count)
        .map(|index| {
            let at = header(index);
            Ok(Section {
                name: c_string(elf, names_offset + u64::from(u32_at(elf, at)?))?,
                kind: u32_at(elf, at + 4)?,
                address: u64_at(elf, at + 16)?,
                offset: u64_at(elf, at + 24)?,
                size: u64_at(elf, at + 32)?,
                link: u32_at(elf, at + 40)?,
            })
        })
        .collect()
}

/// The crate a mangled Rust symbol belongs to, or a bucket for others.
///
/// Handles both manglings in the kernel: legacy (`_ZN`, the kernel and its
/// dependencies) and v0 (`_R`, the precompiled `core` and
/// `compiler_builtins`). For `<T as Trait>` impls it names T's crate, or the
/// trait's when T is generic.
fn crate_of(symbol: &str) -> String {
    if let Some(rest) = symbol.strip_prefix("_ZN") {
        legacy_crate(rest).unwrap_or_else(|| "(unknown Rust)".to_owned())
    } else if let Some(rest) = symbol.strip_prefix("_R") {
        v0_crate(rest).unwrap_or_else(|| "(unknown Rust)".to_owned())
    } else {
        "(not Rust)".to_owned()
    }
}

fn legacy_crate(rest: &str) -> Option<String> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let len: usize = rest[..digits].parse().ok()?;
    let first = rest.get(digits..digits.checked_add(len)?)?;
    let Some(impl_of) = first.strip_prefix("_$LT$") else {
        return Some(first.to_owned());
    };
    // `<&mut T as Trait>` and the like: look through references and pointers.
    let mut subject = impl_of;
    for prefix in ["$RF$", "$BP$", "mut$u20$", "const$u20$"] {
        subject = subject.strip_prefix(prefix).unwrap_or(subject);
    }
    let (subject, trait_path) = subject.split_once("$u20$as$u20$").unwrap_or((subject, ""));
    let path = if subject.contains("..") {
        subject
    } else {
        trait_path
    };
    let end = path.find("..").unwrap_or(path.len());
    (end > 0).then(|| path[..end].to_owned())
}

fn v0_crate(rest: &str) -> Option<String> {
    // The innermost path comes first, so the first crate root `C` (an
    // optional `s<base-62>_` disambiguator, then `<length><name>`) is the
    // crate the item is defined in.
    let bytes = rest.as_bytes();
    'roots: for start in (0..bytes.len()).filter(|&i| bytes[i] == b'C') {
        let mut at = start + 1;
        if bytes.get(at) == Some(&b's') {
            at += 1;
            while bytes.get(at).is_some_and(u8::is_ascii_alphanumeric) {
                at += 1;
            }
            if bytes.get(at) != Some(&b'_') {
                continue 'roots;
            }
            at += 1;
        }
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let Ok(len) = rest[at..at + digits].parse::<usize>() else {
            continue 'roots;
        };
        at += digits;
        if bytes.get(at) == Some(&b'_') {
            at += 1;
        }
        if let Some(name) = rest.get(at..at + len) {
            return Some(name.to_owned());
        }
    }
    None
}

/// Whether `krate` is one of gupio's crates (the demo kernel is not).
fn is_gupio_crate(krate: &str) -> bool {
    krate == "gupio" || (krate.starts_with("gupio_") && krate != "gupio_demo_kernel")
}

/// Prints the kernel's section sizes and its `.text` by crate, and notes
/// gupio's share in the step's summary.
fn report_sizes(kernel: &Path, log: &mut StepLog) -> Result<(), String> {
    let elf = fs::read(kernel)
        .map_err(|error| format!("qemu: cannot read {}: {error}", kernel.display()))?;
    let sections =
        sections(&elf).map_err(|error| format!("qemu: {}: {error}", kernel.display()))?;
    let mut line = String::from("qemu: kernel sections:");
    for section in sections.iter().filter(|s| s.address != 0 && s.size != 0) {
        let _ = write!(line, " {} {} B", section.name, section.size);
    }
    println!("{line}");

    let Some((text_index, text)) = sections.iter().enumerate().find(|(_, s)| s.name == ".text")
    else {
        return Err("qemu: the kernel has no .text section".to_owned());
    };
    let Some(symtab) = sections.iter().find(|s| s.kind == SHT_SYMTAB) else {
        println!("qemu: kernel has no symbol table; no per-crate .text breakdown");
        return Ok(());
    };
    let strings = sections
        .get(usize::try_from(symtab.link).unwrap_or(usize::MAX))
        .filter(|s| s.kind != SHT_NOBITS)
        .ok_or("qemu: kernel symbol table has no string table")?;
    let mut by_crate: Vec<(String, u64)> = Vec::new();
    // Identical-code folding and aliases (memcpy) give one address several names.
    let mut seen = std::collections::HashSet::new();
    for at in (symtab.offset..symtab.offset + symtab.size).step_by(24) {
        let info = field::<1>(&elf, at + 4)?[0];
        let section_index = u64::from(u16_at(&elf, at + 6)?);
        let address = u64_at(&elf, at + 8)?;
        let size = u64_at(&elf, at + 16)?;
        if info & 0xf != STT_FUNC || section_index != text_index as u64 || size == 0 {
            continue;
        }
        if !seen.insert(address) {
            continue;
        }
        let name = c_string(&elf, strings.offset + u64::from(u32_at(&elf, at)?))?;
        let krate = crate_of(&name);
        match by_crate.iter_mut().find(|(name, _)| *name == krate) {
            Some((_, total)) => *total += size,
            None => by_crate.push((krate, size)),
        }
    }
    by_crate.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let counted: u64 = by_crate.iter().map(|(_, size)| size).sum();
    println!(
        "qemu: kernel .text is {} B; functions by crate (they cover {counted} B):",
        text.size
    );
    for (krate, size) in &by_crate {
        // Display only: the lossy float conversion cannot matter.
        #[allow(clippy::cast_precision_loss)]
        let percent = 100.0 * *size as f64 / text.size as f64;
        println!("  {krate:<24} {size:>7} B {percent:>5.1}%");
    }
    let gupio: u64 = by_crate
        .iter()
        .filter(|(krate, _)| is_gupio_crate(krate))
        .map(|(_, size)| size)
        .sum();
    // Display only: the lossy float conversion cannot matter.
    #[allow(clippy::cast_precision_loss)]
    let percent = 100.0 * gupio as f64 / text.size as f64;
    println!(
        "qemu: gupio's crates are {gupio} B of the kernel's {} B of .text ({percent:.1}%)",
        text.size
    );
    log.note(&format!(
        ".text {} B, gupio {gupio} B ({percent:.1}%)",
        text.size
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
    fn other_symbols_are_bucketed() {
        assert_eq!(crate_of("memcpy"), "(not Rust)");
        assert_eq!(crate_of("_ZNnot-a-length"), "(unknown Rust)");
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
