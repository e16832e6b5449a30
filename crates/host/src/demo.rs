//! The demo: direct-I/O reads into a shared file mapping racing writeback,
//! once with writeback ignoring pins and once with gupio's policy.
//!
//! Both runs use the same seed, so the same workload: `threads` reader
//! threads each issue their share of `ios` `O_DIRECT` reads of 1 to 8
//! pages from a raw disk region into random page-aligned ranges of a
//! shared, writable mapping of a file, with a CPU write (buffered or
//! through the mapping) now and then, while a writeback thread writes the
//! file's dirty folios back pass after pass. The device copies data in
//! chunks with a pause after each, so a DMA is slow enough for writeback to
//! meet it. Each run then waits for all I/O, writes the file back one last
//! time, checks every page against the disk, tears the machine down and
//! audits it ([`run`], [`RunReport`]).
//!
//! ```
//! use gupio_host::demo::{run, DemoConfig, RunKind};
//! let config = DemoConfig { pages: 64, ios: 40, threads: 2, ..DemoConfig::quick() };
//! let tracked = run(&config, RunKind::Tracked(config.policy)).unwrap();
//! assert_eq!(tracked.ios, 40);
//! assert_eq!((tracked.unstable_writes, tracked.lost_writes), (0, 0));
//! assert!(tracked.problems().is_empty(), "{:?}", tracked.problems());
//! ```

use std::fmt::Write as _;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use gupio::bio::Sector;
use gupio::pin::UserAddr;
use gupio::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use gupio::writeback::{PinnedAction, WritebackReason};

use crate::data::{Prng, PAGE_SIZE, SECTORS_PER_PAGE, WORDS_PER_PAGE};
use crate::{DeviceConfig, HostError, Machine, MachineConfig, WritebackMode};

mod args;
pub mod dio_write;

pub use args::{scenario, Scenario};

/// How often the progress line is printed on a long run.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// The largest direct-I/O read, in pages.
const MAX_IO_PAGES: usize = 8;

/// One CPU write per this many I/Os, on average.
const CPU_WRITE_ONE_IN: usize = 6;

/// Audit findings kept in a report.
const MAX_FINDINGS: usize = 20;

/// Final writeback passes before a page still dirty counts as a failure.
const FINAL_PASSES: usize = 4;

/// With `--policy by-reason`, every this many writeback passes one is a
/// data-integrity pass (an `fsync`); the others are background cleaning.
pub const INTEGRITY_EVERY: usize = 4;

/// The demo's parameters (its command-line options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoConfig {
    /// Pages in the mapped file (`--pages`).
    pub pages: usize,
    /// Direct-I/O reads in total (`--ios`).
    pub ios: usize,
    /// Reader threads (`--threads`).
    pub threads: usize,
    /// The workload's seed (`--seed`).
    pub seed: u64,
    /// The tracked run's policy for pinned folios (`--policy`).
    pub policy: PinnedAction,
    /// `--policy by-reason`: the tracked run's writeback knows why it runs
    /// and uses the default policy by reason instead of `policy`.
    pub by_reason: bool,
    /// The device's pause after each DMA chunk (`--latency-us`).
    pub latency: Duration,
    /// Whether to print a progress line on long runs.
    pub progress: bool,
}

impl Default for DemoConfig {
    /// What `cargo xtask demo` runs: a 4 MiB file with a 2 MiB folio,
    /// 3000 reads from 4 threads, 20 µs per DMA chunk.
    fn default() -> Self {
        Self {
            pages: 1024,
            ios: 3000,
            threads: 4,
            seed: 1,
            policy: PinnedAction::Bounce,
            by_reason: false,
            latency: Duration::from_micros(20),
            progress: true,
        }
    }
}

impl DemoConfig {
    /// A small, fast configuration for tests: 128 pages, 200 reads, 2 µs.
    pub const fn quick() -> Self {
        Self {
            pages: 128,
            ios: 200,
            threads: 3,
            seed: 7,
            policy: PinnedAction::Bounce,
            by_reason: false,
            latency: Duration::from_micros(2),
            progress: false,
        }
    }
}

/// Which writeback a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// Writeback that never asks whether a page is pinned.
    Untracked,
    /// gupio's writeback with this policy.
    Tracked(PinnedAction),
    /// gupio's writeback by reason with the default policy: background
    /// passes skip pinned folios, every [`INTEGRITY_EVERY`]th pass and the
    /// final ones are data-integrity passes, which bounce them.
    ByReason,
}

impl RunKind {
    /// The run's name in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Untracked => "untracked",
            Self::Tracked(_) | Self::ByReason => "tracked",
        }
    }

    /// The writeback of pass `pass` during the run (from 0).
    const fn mode(self, pass: usize) -> WritebackMode {
        match self {
            Self::Untracked => WritebackMode::Untracked,
            Self::Tracked(policy) => WritebackMode::Tracked(policy),
            Self::ByReason if pass % INTEGRITY_EVERY == INTEGRITY_EVERY - 1 => {
                WritebackMode::ByReason(WritebackReason::Integrity)
            }
            Self::ByReason => WritebackMode::ByReason(WritebackReason::Background),
        }
    }

    /// The writeback after all I/O: a data-integrity pass.
    const fn final_mode(self) -> WritebackMode {
        match self {
            Self::ByReason => WritebackMode::ByReason(WritebackReason::Integrity),
            other => other.mode(0),
        }
    }
}

/// What one run did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// "untracked" or "tracked".
    pub name: &'static str,
    /// Direct-I/O reads completed.
    pub ios: usize,
    /// Pages those reads pinned.
    pub pages_pinned: usize,
    /// Pages written while their contents changed (checksum mismatch).
    pub unstable_writes: usize,
    /// Pages whose final contents are not on disk after the last writeback.
    pub lost_writes: usize,
    /// Pages still dirty after the last writeback.
    pub dirty_left: usize,
    /// Pages writeback wrote through a bounce copy.
    pub pages_bounced: usize,
    /// Pinned folios writeback skipped (by-reason background passes).
    pub folios_skipped: usize,
    /// Data-integrity writeback passes during the run (by reason).
    pub integrity_passes: usize,
    /// Pins acquired (pages).
    pub pins_acquired: usize,
    /// Pins released (pages).
    pub pins_released: usize,
    /// Pages still allocated after teardown.
    pub pages_leaked: usize,
    /// Warnings gupio reported.
    pub warnings: usize,
    /// Frees the allocator refused.
    pub bad_frees: usize,
    /// Folios whose counters were off baseline at the end, release and
    /// completion errors, and failed I/Os, all together.
    pub other_errors: usize,
    /// Writeback passes over the file during the run that found a dirty
    /// folio.
    pub writeback_passes: usize,
    /// Direct-I/O completions the release path deferred to the worker
    /// (a folio looked clean at completion).
    pub deferred_releases: usize,
    /// Folios those deferred releases found clean under the folio lock:
    /// writeback wrote and cleaned them while a device could still write
    /// into them. The rest of the deferrals saw a folio clean only while a
    /// writeback pass was deciding about it (it clears the dirty bit, then
    /// sets it again for a folio that may be pinned, under one lock hold).
    pub cleaned_under_dma: usize,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The first lines of the audit's findings, for a failing run.
    pub findings: Vec<String>,
}

impl RunReport {
    /// Unstable plus lost writes.
    pub fn corruption(&self) -> usize {
        self.unstable_writes + self.lost_writes
    }

    /// What is wrong with the machine after the run, apart from corruption:
    /// pin imbalance, leaks, refused frees, warnings, dirty pages left,
    /// counters off baseline and errors.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.pins_acquired != self.pins_released {
            problems.push(format!(
                "pins acquired {} != released {}",
                self.pins_acquired, self.pins_released
            ));
        }
        let counts = [
            (self.pages_leaked, "pages leaked"),
            (self.bad_frees, "double or invalid frees"),
            (self.warnings, "warnings"),
            (self.dirty_left, "pages left dirty"),
            (self.other_errors, "counters off baseline or I/O errors"),
        ];
        for (count, what) in counts {
            if count > 0 {
                problems.push(format!("{count} {what}"));
            }
        }
        problems
    }
}

/// One step of a reader thread's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `O_DIRECT` read of `pages` pages from source page `source` into the
    /// mapping at page `page`.
    DioRead {
        page: usize,
        pages: usize,
        source: usize,
    },
    /// A buffered write of eight words into file page `page`.
    BufferedWrite {
        page: usize,
        word: usize,
        value: u64,
    },
    /// A CPU store of eight words through the mapping.
    MappedStore {
        page: usize,
        word: usize,
        value: u64,
    },
}

/// The reader threads' workloads for `config`: deterministic per seed.
fn workload(config: &DemoConfig) -> Vec<Vec<Op>> {
    let threads = config.threads.max(1);
    let pages = config.pages.max(1);
    (0..threads)
        .map(|thread| {
            let share = config.ios / threads + usize::from(thread < config.ios % threads);
            let seed = config.seed ^ crate::data::mix(u64::try_from(thread).unwrap_or(0));
            let mut rng = Prng::new(seed);
            let mut ops = Vec::with_capacity(share + share / CPU_WRITE_ONE_IN + 1);
            for _ in 0..share {
                if rng.one_in(CPU_WRITE_ONE_IN) {
                    let page = rng.below(pages);
                    let word = rng.below(WORDS_PER_PAGE - 8);
                    let value = rng.next_u64();
                    ops.push(if rng.one_in(2) {
                        Op::BufferedWrite { page, word, value }
                    } else {
                        Op::MappedStore { page, word, value }
                    });
                }
                let len = 1 + rng.below(MAX_IO_PAGES.min(pages));
                ops.push(Op::DioRead {
                    page: rng.below(pages - len + 1),
                    pages: len,
                    source: rng.below(pages - len + 1),
                });
            }
            ops
        })
        .collect()
}

/// The folio orders of the demo file: a 2 MiB folio when the file has room
/// for one, then 64 KiB folios, then 16 KiB folios, then small pages.
pub fn file_layout(pages: usize) -> Vec<u32> {
    let mut orders = Vec::new();
    let mut index = 0;
    if pages >= 1024 {
        orders.push(9);
        index = 512;
    }
    for (order, share) in [(4u32, 6usize), (2, 7)] {
        let size = 1usize << order;
        let end = pages * share / 8;
        while index % size == 0 && index + size <= end {
            orders.push(order);
            index += size;
        }
    }
    orders
}

/// Runs the workload of `config` once on a fresh machine with `kind`'s
/// writeback, then checks and audits it.
///
/// # Errors
/// A [`HostError`] if the machine cannot be set up (too little memory for
/// the file, for one). Failed I/Os during the run are counted, not errors.
///
/// ```
/// use gupio_host::demo::{run, DemoConfig, RunKind};
/// let config = DemoConfig { pages: 32, ios: 20, threads: 2, ..DemoConfig::quick() };
/// let report = run(&config, RunKind::Untracked).unwrap();
/// assert!(report.problems().is_empty());
/// assert_eq!(report.pins_acquired, report.pins_released);
/// ```
pub fn run(config: &DemoConfig, kind: RunKind) -> Result<RunReport, HostError> {
    let started = Instant::now();
    let pages = config.pages.max(MAX_IO_PAGES);
    let config = DemoConfig { pages, ..*config };
    let machine = Machine::new(MachineConfig {
        frames: pages * 2 + 1024,
        disk_sectors: u64::try_from(pages).unwrap_or(u64::MAX) * SECTORS_PER_PAGE * 2 + 64,
        device: DeviceConfig::threaded(config.threads.max(1) + 2, config.latency),
        deferred_worker: true,
    })?;
    let cache = machine.cache();
    let file = cache.create_file(pages, &file_layout(pages))?;
    cache.populate(&file)?;
    let source =
        cache.reserve_sectors(u64::try_from(pages).unwrap_or(u64::MAX) * SECTORS_PER_PAGE)?;
    let process = machine.spawn_process();
    let map = process.mmap_file(&file, 0, pages, true)?;
    let workloads = workload(&config);
    let total: usize = config.ios;
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let passes = AtomicUsize::new(0);
    let readers_done = AtomicBool::new(false);
    let skipped = AtomicUsize::new(0);
    let integrity_passes = AtomicUsize::new(0);

    thread::scope(|scope| {
        let writeback = scope.spawn(|| {
            // Relaxed: a stop flag; the scope's joins order everything else.
            let mut pass = 0;
            while !readers_done.load(Ordering::Relaxed) {
                let mode = kind.mode(pass);
                pass += 1;
                if mode == WritebackMode::ByReason(WritebackReason::Integrity) {
                    integrity_passes.fetch_add(1, Ordering::Relaxed);
                }
                let summary = cache.writeback(&file, mode);
                skipped.fetch_add(summary.counts.skipped, Ordering::Relaxed);
                if summary.counts.write_errors > 0 {
                    failed.fetch_add(summary.counts.write_errors, Ordering::Relaxed);
                }
                if summary.counts.examined > summary.counts.clean {
                    passes.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let (stop_progress, stopped) = mpsc::channel::<()>();
        if config.progress {
            let (done, passes) = (&done, &passes);
            scope.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(PROGRESS_EVERY)
                {
                    eprintln!(
                        "  {}: {}/{} I/Os, {} writeback passes, {:.1} s",
                        kind.name(),
                        // Relaxed: progress figures; they order nothing.
                        done.load(Ordering::Relaxed),
                        total,
                        passes.load(Ordering::Relaxed),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        }
        let readers: Vec<_> = workloads
            .iter()
            .map(|ops| {
                let (machine, file, process) = (&machine, &file, &process);
                let (done, failed) = (&done, &failed);
                scope.spawn(move || {
                    for &op in ops {
                        let result = match op {
                            Op::DioRead {
                                page,
                                pages,
                                source: from,
                            } => machine
                                .dio_read(
                                    process,
                                    UserAddr::new(map.get() + page * PAGE_SIZE),
                                    pages * PAGE_SIZE,
                                    Sector(
                                        source
                                            + u64::try_from(from).unwrap_or(0) * SECTORS_PER_PAGE,
                                    ),
                                )
                                .map(|_| {
                                    // Relaxed: a progress count.
                                    done.fetch_add(1, Ordering::Relaxed);
                                }),
                            Op::BufferedWrite { page, word, value } => {
                                machine.cache().write(file, page, word, &[value; 8])
                            }
                            Op::MappedStore { page, word, value } => process.store(
                                UserAddr::new(map.get() + page * PAGE_SIZE + word * 8),
                                &[value; 8],
                            ),
                        };
                        if result.is_err() {
                            // Relaxed: a statistic.
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for reader in readers {
            if reader.join().is_err() {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Relaxed: see the writeback loop.
        readers_done.store(true, Ordering::Relaxed);
        if writeback.join().is_err() {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        drop(stop_progress);
    });

    // Every I/O completed and released; then the last writeback, with no
    // pin left, and the final check of every page against the disk.
    machine.quiesce();
    let mut check = cache.verify(&file);
    for _ in 0..FINAL_PASSES {
        if cache
            .writeback(&file, kind.final_mode())
            .counts
            .write_errors
            > 0
        {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        check = cache.verify(&file);
        if check.dirty == 0 {
            break;
        }
    }
    let device = machine.device().stats();
    let stats = machine.stats();
    drop(process);
    let (audit, _) = machine.evict_and_audit();
    Ok(RunReport {
        name: kind.name(),
        // Relaxed: the scope joined every thread that counted.
        ios: done.load(Ordering::Relaxed),
        pages_pinned: stats.pages_pinned,
        unstable_writes: device.unstable_pages,
        lost_writes: check.lost_writes,
        dirty_left: check.dirty,
        pages_bounced: cache.stats().pages_bounced,
        folios_skipped: skipped.load(Ordering::Relaxed),
        integrity_passes: integrity_passes.load(Ordering::Relaxed),
        pins_acquired: audit.pins_acquired,
        pins_released: audit.pins_released,
        pages_leaked: audit.leaks.iter().map(|leak| 1usize << leak.order).sum(),
        warnings: audit.warnings.len(),
        bad_frees: audit.bad_frees.len(),
        other_errors: audit.off_baseline.len()
            + audit.release_errors.len()
            + audit.completion_errors.len()
            + failed.load(Ordering::Relaxed)
            + device.failed,
        writeback_passes: passes.load(Ordering::Relaxed),
        deferred_releases: stats.deferred_releases,
        cleaned_under_dma: stats.folios_cleaned_under_dma,
        elapsed: started.elapsed(),
        findings: audit
            .to_string()
            .lines()
            .skip(1)
            .take(MAX_FINDINGS)
            .map(str::to_owned)
            .collect(),
    })
}

/// The table of `reports`, one row each, under the header the README
/// describes.
pub fn table(reports: &[RunReport]) -> String {
    const COLUMNS: [&str; 10] = [
        "run",
        "I/Os",
        "pages pinned",
        "unstable writes",
        "lost writes",
        "pages bounced",
        "pins acquired",
        "pins released",
        "pages leaked",
        "warnings",
    ];
    let mut text = String::new();
    let _ = write!(text, "{:<9}", COLUMNS[0]);
    for column in &COLUMNS[1..] {
        let _ = write!(text, "  {column:>w$}", w = column.len().max(4));
    }
    text.push('\n');
    for report in reports {
        let values = [
            report.ios,
            report.pages_pinned,
            report.unstable_writes,
            report.lost_writes,
            report.pages_bounced,
            report.pins_acquired,
            report.pins_released,
            report.pages_leaked,
            report.warnings,
        ];
        let _ = write!(text, "{:<9}", report.name);
        for (column, value) in COLUMNS[1..].iter().zip(values) {
            let _ = write!(text, "  {value:>w$}", w = column.len().max(4));
        }
        text.push('\n');
    }
    text
}

/// What the table means, printed under it.
pub const EXPLANATION: &str = "\
Both rows run the same seeded workload on a fresh simulated machine: reader
threads pin pages of a shared file mapping (pin_user_pages) and let a slow
device DMA into them (O_DIRECT reads), while a writeback thread keeps
writing the file's dirty pages back. The untracked run writes back as the
kernel did before pin tracking: it write-protects a dirty page, writes it in
place and marks it clean, while a device is still writing into it through
the pin. The page changes under the write, so the checksum the filesystem
computed at submission no longer matches what reached the disk: an unstable
write, the torn page a checksumming filesystem or RAID parity later reports
as corruption. The tracked run asks gupio's maybe_dma_pinned first and, for
a page that may be pinned, writes a stable bounce copy (or skips it, or
waits, per --policy) and keeps it dirty, so the final contents are written
after the unpin: no unstable write, and the final check (every page clean
and equal to its disk copy) passes. Lost writes stay at zero in both rows
because the completion path re-dirties a page that writeback cleaned under
the DMA (the deferred release of bio_check_pages_dirty), so the untracked
run's damage is the torn data on disk in between. In both rows every pin is
released exactly once, nothing leaks, and gupio warns about nothing.";

/// Checks the two runs: the tracked run must be clean (no corruption, and
/// no folio that writeback cleaned under the DMA of a read: with tracking,
/// writeback never cleans a pinned page), and the untracked run must show
/// the corruption (and be balanced). Returns the failures.
pub fn verdict(untracked: &RunReport, tracked: &RunReport) -> Vec<String> {
    let mut failures = Vec::new();
    if tracked.corruption() > 0 {
        failures.push(format!(
            "tracked run: {} unstable and {} lost writes",
            tracked.unstable_writes, tracked.lost_writes
        ));
    }
    if tracked.cleaned_under_dma > 0 {
        failures.push(format!(
            "tracked run: writeback cleaned {} folios under the DMA of a read",
            tracked.cleaned_under_dma
        ));
    }
    for (report, problems) in [
        (tracked, tracked.problems()),
        (untracked, untracked.problems()),
    ] {
        for problem in problems {
            failures.push(format!("{} run: {problem}", report.name));
        }
    }
    if untracked.corruption() == 0 {
        failures.push(
            "untracked run: no corruption seen (raise --ios or --latency-us to show the hazard)"
                .to_owned(),
        );
    }
    failures
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the demo.
    Run(DemoConfig),
    /// Print the usage text.
    Help,
}

/// The usage text.
pub const USAGE: &str = "\
usage: gupio-demo [options]

Direct-I/O reads into a shared file mapping racing writeback on a simulated
machine, run without and with gupio's pin tracking.

options:
  --pages N        pages in the mapped file (default 1024; 1024 or more gets a 2 MiB folio)
  --ios N          direct-I/O reads in total (default 3000)
  --threads N      reader threads (default 4)
  --seed N         workload seed (default 1)
  --policy P       tracked run's policy for pinned pages: bounce, skip or wait (default
                   bounce), or by-reason: background passes skip them, every 4th pass is
                   a data-integrity pass (an fsync) that bounces them
  --scenario S     dio-read (this one, the default) or dio-write (--scenario dio-write
                   --help lists its options)
  --latency-us N   device pause after each DMA chunk, in microseconds (default 20)
  --quiet          no progress line
  -h, --help       this text";

/// Parses the dio-read scenario's arguments (without the program name).
///
/// # Errors
/// A message naming the bad option or value.
pub fn parse_args<I>(args: I) -> Result<Command, String>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    use lexopt::prelude::*;

    let mut config = DemoConfig::default();
    let mut parser = args::parser(args);
    while let Some(arg) = args::next(&mut parser)? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Long("quiet") => config.progress = false,
            Long("pages") => config.pages = args::count(&mut parser, "--pages", 16)?,
            Long("ios") => config.ios = args::count(&mut parser, "--ios", 1)?,
            Long("threads") => config.threads = args::count(&mut parser, "--threads", 1)?,
            Long("seed") => config.seed = args::number(&mut parser, "--seed")?,
            Long("latency-us") => {
                config.latency = Duration::from_micros(args::number(&mut parser, "--latency-us")?);
            }
            Long("policy") => {
                config.policy = match args::string(&mut parser, "--policy")?.as_str() {
                    "bounce" => PinnedAction::Bounce,
                    "skip" => PinnedAction::Skip,
                    "wait" => PinnedAction::Wait,
                    "by-reason" => {
                        config.by_reason = true;
                        config.policy
                    }
                    other => {
                        return Err(format!(
                            "--policy: `{other}` is not bounce, skip, wait or by-reason"
                        ))
                    }
                }
            }
            Long("scenario") => args::own_scenario(&mut parser, Scenario::DioRead)?,
            _ => return Err(args::unexpected(arg)),
        }
    }
    Ok(Command::Run(config))
}

/// The file and workload in a few lines, printed above the table.
pub fn describe(config: &DemoConfig) -> String {
    let orders = file_layout(config.pages);
    let count = |order: u32| orders.iter().filter(|&&o| o == order).count();
    let covered: usize = orders.iter().map(|&o| 1usize << o).sum();
    let mut folios = Vec::new();
    for (order, size) in [(9, "2 MiB"), (4, "64 KiB"), (2, "16 KiB")] {
        match count(order) {
            0 => {}
            1 => folios.push(format!("one {size} folio")),
            n => folios.push(format!("{n} folios of {size}")),
        }
    }
    folios.push(format!(
        "{} small pages",
        config.pages.saturating_sub(covered)
    ));
    let policy = match config.policy {
        _ if config.by_reason => "by reason",
        PinnedAction::Bounce => "bounce",
        PinnedAction::Skip => "skip",
        _ => "wait",
    };
    let text = format!(
        "gupio demo: a {}-page file ({}) is mapped shared and writable; {} threads \
         issue {} O_DIRECT reads of 1 to {} pages into the mapping while writeback \
         runs. Seed {}, {} us device pause per DMA chunk, tracked policy: {}.",
        config.pages,
        folios.join(", "),
        config.threads,
        config.ios,
        MAX_IO_PAGES,
        config.seed,
        config.latency.as_micros(),
        policy
    );
    wrap(&text, 78)
}

/// `text` with its words re-flowed into lines of at most `width` columns
/// (a longer word gets a line of its own).
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split_whitespace() {
        if line > 0 && line + 1 + word.len() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests;
