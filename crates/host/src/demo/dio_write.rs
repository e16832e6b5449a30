//! The `dio-write` scenario: direct-I/O writes from buffers the application
//! keeps changing, to a device that records the filesystem's checksum of
//! every block, in each stable mode, measured against zero-copy.
//!
//! Writer threads each own an anonymous buffer of the write size. Each
//! write stores a new generation into every page of its buffer, submits an
//! `O_DIRECT` write of the whole buffer to a fresh disk region (the
//! filesystem checksums each page at submission; the device records the
//! checksum with the block), then goes on storing into the buffer, one word
//! in each page, while the device reads it, and waits for the completion.
//! After the run the device scrubs every block it wrote: a block whose bytes
//! do not match the checksum recorded with them is what a checksumming
//! filesystem, T10 PI or RAID parity reports as corruption.
//!
//! Every mode runs the same seeded workload on a fresh machine, at each
//! write size; throughput and CPU time are measured in the same run and
//! given relative to zero-copy's at the same size ([`run`], [`table`]).
//!
//! ```
//! use gupio::release::StableMode;
//! use gupio_host::demo::dio_write::{run_row, DioWriteConfig, Row};
//! let config = DioWriteConfig::quick();
//! let bounce = run_row(&config, 4096, Row::Mode(StableMode::Bounce)).unwrap();
//! assert_eq!(bounce.mismatches_on_disk, 0);
//! assert_eq!(bounce.pages_copied, bounce.pages);
//! assert!(bounce.problems.is_empty(), "{:?}", bounce.problems);
//! ```

use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use gupio::bio::Sector;
use gupio::pin::UserAddr;
use gupio::release::{FaultChoice, StableMode};

use super::{args, Scenario};
use crate::data::{Prng, PAGE_SIZE, SECTORS_PER_PAGE, WORDS_PER_PAGE};
use crate::{DeviceConfig, HostError, Machine, MachineConfig};

/// The scenario's parameters (its command-line options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DioWriteConfig {
    /// Writer threads (`--writers`).
    pub writers: usize,
    /// Write sizes in bytes, each a multiple of the page size (`--sizes`,
    /// in KiB).
    pub sizes: Vec<usize>,
    /// Bytes each writer writes at each size (`--mib-per-writer`): the
    /// number of writes is this over the size.
    pub bytes_per_writer: usize,
    /// Most writes per writer at any size (`--max-writes`).
    pub max_writes: usize,
    /// Stores into each page of the buffer while a write is in flight
    /// (`--stores`).
    pub stores_per_page: usize,
    /// The device's pause after each chunk (`--latency-us`).
    pub latency: Duration,
    /// The workload's seed (`--seed`).
    pub seed: u64,
}

impl Default for DioWriteConfig {
    /// What `cargo xtask demo --scenario dio-write` runs: 2 writers, 4 KiB
    /// and 1 MiB writes, 64 MiB per writer per size (at most 16384 writes),
    /// 2 stores per page in flight, no device pause.
    fn default() -> Self {
        Self {
            writers: 2,
            sizes: vec![4096, 1 << 20],
            bytes_per_writer: 64 << 20,
            max_writes: 16384,
            stores_per_page: 2,
            latency: Duration::ZERO,
            seed: 1,
        }
    }
}

impl DioWriteConfig {
    /// A small configuration for tests: 2 writers, 4 KiB and 64 KiB, 64
    /// writes each.
    pub fn quick() -> Self {
        Self {
            writers: 2,
            sizes: vec![4096, 64 << 10],
            bytes_per_writer: 4 << 20,
            max_writes: 64,
            stores_per_page: 2,
            latency: Duration::ZERO,
            seed: 3,
        }
    }

    fn writes(&self, size: usize) -> usize {
        (self.bytes_per_writer / size.max(1)).clamp(1, self.max_writes.max(1))
    }
}

/// One row of the table: zero-copy, or a stable mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// Zero-copy, bounce or verify.
    Mode(StableMode),
    /// Write-protect, with what a write fault does.
    WriteProtect(FaultChoice),
}

impl Row {
    /// The rows of the table, zero-copy first.
    pub const ALL: [Self; 5] = [
        Self::Mode(StableMode::ZeroCopy),
        Self::Mode(StableMode::Bounce),
        Self::WriteProtect(FaultChoice::Wait),
        Self::WriteProtect(FaultChoice::CopyOnWrite),
        Self::Mode(StableMode::Verify),
    ];

    /// The row's name in the table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mode(StableMode::Bounce) => "bounce",
            Self::Mode(StableMode::Verify) => "verify",
            Self::Mode(StableMode::WriteProtect) | Self::WriteProtect(FaultChoice::Wait) => {
                "write-protect (wait)"
            }
            Self::WriteProtect(FaultChoice::CopyOnWrite) => "write-protect (copy)",
            Self::Mode(_) => "zero-copy",
        }
    }

    /// Whether the row promises stable pages.
    pub const fn is_stable(self) -> bool {
        match self {
            Self::Mode(mode) => mode.is_stable(),
            Self::WriteProtect(_) => true,
        }
    }

    const fn mode(self) -> (StableMode, FaultChoice) {
        match self {
            Self::Mode(mode) => (mode, FaultChoice::Wait),
            Self::WriteProtect(choice) => (StableMode::WriteProtect, choice),
        }
    }
}

/// What one row's run did and found.
#[derive(Clone, Debug, PartialEq)]
pub struct RowReport {
    /// The write size in bytes.
    pub size: usize,
    /// The row.
    pub row: Row,
    /// Writes completed.
    pub writes: usize,
    /// Pages written (user pages pinned).
    pub pages: usize,
    /// Application stores into buffers while their write was in flight.
    pub stores: usize,
    /// Wall time of the writes.
    pub elapsed: Duration,
    /// CPU time of the process (all threads) during the writes, if known.
    pub cpu: Option<Duration>,
    /// Pages copied (bounce, copy on write, reissue).
    pub pages_copied: usize,
    /// Write faults on protected pages.
    pub faults_taken: usize,
    /// Of those, faults that waited for the completion.
    pub faults_waited: usize,
    /// Ranges written again after verification.
    pub reissues: usize,
    /// Pages whose checksum the device found wrong as it wrote them.
    pub torn_at_write: usize,
    /// Blocks whose bytes on disk do not match their recorded checksum.
    pub mismatches_on_disk: usize,
    /// Audit findings (imbalance, leaks, errors): must be empty.
    pub problems: Vec<String>,
}

impl RowReport {
    /// Megabytes per second written.
    pub fn mib_per_second(&self) -> f64 {
        let bytes = (self.writes * self.size) as f64;
        bytes / f64::from(1 << 20) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The CPU time the process has used so far (every thread), from
/// `/proc/self/stat`, if the platform has it.
fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture std supports.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Runs one row: a fresh machine, `config.writers` writers each issuing
/// their writes of `size` bytes, then the scrub and the audit.
///
/// # Errors
/// A machine that cannot be built, a buffer that cannot be mapped, or a
/// write refused at submission (none of them expected).
pub fn run_row(config: &DioWriteConfig, size: usize, row: Row) -> Result<RowReport, HostError> {
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let size = pages * PAGE_SIZE;
    let writes = config.writes(size);
    let writers = config.writers.max(1);
    let sectors_per_write = u64::try_from(pages).unwrap_or(u64::MAX) * SECTORS_PER_PAGE;
    let region = sectors_per_write * u64::try_from(writes * writers).unwrap_or(u64::MAX);
    // Each writer's buffer, a copy of it in flight (bounce, copy on write,
    // reissue), and room for the allocator's alignment.
    let frames = writers * pages * 3 + 256;
    let machine = Machine::new(MachineConfig {
        frames,
        disk_sectors: region + 64,
        device: DeviceConfig::threaded(2, config.latency),
        deferred_worker: true,
    })?;
    let base = machine.cache().reserve_sectors(region)?;
    let (mode, fault) = row.mode();
    let mut buffers = Vec::new();
    for _ in 0..writers {
        let process = machine.spawn_process();
        let buffer = process.mmap_anonymous(pages)?;
        // Fault every page in before timing.
        process.store(buffer, &vec![0; pages * WORDS_PER_PAGE])?;
        buffers.push((process, buffer));
    }
    let cpu_before = process_cpu_time();
    let started = Instant::now();
    let results: Vec<Result<usize, HostError>> = thread::scope(|scope| {
        let handles: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(writer, (process, buffer))| {
                let machine = &machine;
                scope.spawn(move || -> Result<usize, HostError> {
                    let mut rng = Prng::new(config.seed ^ ((writer as u64 + 1) << 32));
                    let mut stores = 0;
                    for write in 0..writes {
                        let generation = ((writer as u64) << 48) | ((write as u64) << 16);
                        for page in 0..pages {
                            let addr = UserAddr::new(buffer.get() + page * PAGE_SIZE);
                            process.store(addr, &[generation])?;
                        }
                        let slot = u64::try_from(writer * writes + write).unwrap_or(0);
                        let sector = Sector(base + slot * sectors_per_write);
                        let io = machine.submit_stable_dio_write(
                            process, *buffer, size, sector, &mode, fault,
                        )?;
                        // The application goes on writing into the buffer.
                        'store: for round in 0..config.stores_per_page {
                            for page in 0..pages {
                                if io.is_complete() {
                                    break 'store;
                                }
                                let word = 1 + rng.below(WORDS_PER_PAGE - 1);
                                let addr = buffer.get() + page * PAGE_SIZE + word * 8;
                                let value = generation | (round as u64 + 1);
                                process.store(UserAddr::new(addr), &[value])?;
                                stores += 1;
                            }
                        }
                        io.wait(machine)?;
                    }
                    Ok(stores)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or(Err(HostError::DeviceGone)))
            .collect()
    });
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(process_cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    let mut stores = 0;
    for result in results {
        stores += result?;
    }
    machine.quiesce();
    let counts = machine.stable_stats().counts();
    let mismatches_on_disk = machine.device().scrub().len();
    let torn_at_write = machine.device().stats().unstable_pages;
    drop(buffers);
    let (audit, _) = machine.evict_and_audit();
    let problems = if audit.is_clean() {
        Vec::new()
    } else {
        audit
            .to_string()
            .lines()
            .map(str::to_owned)
            .take(20)
            .collect()
    };
    Ok(RowReport {
        size,
        row,
        writes: counts.writes.iter().sum(),
        pages: counts.pages.iter().sum(),
        stores,
        elapsed,
        cpu,
        pages_copied: counts.pages_copied,
        faults_taken: counts.faults_taken,
        faults_waited: counts.faults_waited,
        reissues: counts.reissues,
        torn_at_write,
        mismatches_on_disk,
        problems,
    })
}

/// Runs every row at every size, zero-copy first at each size.
///
/// # Errors
/// The first row that could not run.
pub fn run(
    config: &DioWriteConfig,
    mut progress: impl FnMut(&RowReport),
) -> Result<Vec<RowReport>, HostError> {
    let mut reports = Vec::new();
    for &size in &config.sizes {
        for row in Row::ALL {
            let report = run_row(config, size, row)?;
            progress(&report);
            reports.push(report);
        }
    }
    Ok(reports)
}

fn size_name(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    }
}

/// The comparison table: per size and row, what was done, the throughput
/// and CPU time relative to zero-copy at the same size, and the checksum
/// mismatches.
pub fn table(reports: &[RowReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<21} {:>6} {:>8} {:>7} {:>7} {:>9} {:>7} {:>7} {:>8} {:>8} {:>11} {:>10}",
        "size",
        "mode",
        "writes",
        "MiB/s",
        "x tput",
        "CPU s",
        "x CPU/MiB",
        "copied",
        "faults",
        "waited",
        "reissues",
        "torn (dev)",
        "mismatches"
    );
    for report in reports {
        let zero = reports
            .iter()
            .find(|r| r.size == report.size && r.row == Row::Mode(StableMode::ZeroCopy));
        let throughput = zero.map_or(f64::NAN, |z| report.mib_per_second() / z.mib_per_second());
        let cpu_per_mib = |r: &RowReport| {
            r.cpu
                .map(|cpu| cpu.as_secs_f64() / ((r.writes * r.size) as f64 / f64::from(1 << 20)))
        };
        let cpu_ratio = zero
            .and_then(|z| Some(cpu_per_mib(report)? / cpu_per_mib(z)?))
            .filter(|ratio| ratio.is_finite());
        let _ = writeln!(
            out,
            "{:<7} {:<21} {:>6} {:>8.1} {:>6.2}x {:>7} {:>9} {:>7} {:>7} {:>8} {:>8} {:>11} {:>10}",
            size_name(report.size),
            report.row.name(),
            report.writes,
            report.mib_per_second(),
            throughput,
            report.cpu.map_or_else(
                || "n/a".to_owned(),
                |cpu| format!("{:.2}", cpu.as_secs_f64())
            ),
            cpu_ratio.map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.2}x")),
            report.pages_copied,
            report.faults_taken,
            report.faults_waited,
            report.reissues,
            report.torn_at_write,
            report.mismatches_on_disk,
        );
    }
    out
}

/// What the scenario requires: no stable row with a mismatch on disk or an
/// audit problem, and every zero-copy row with at least one mismatch (the
/// hazard must show). Each failure as a sentence.
pub fn verdict(reports: &[RowReport]) -> Vec<String> {
    let mut failures = Vec::new();
    for report in reports {
        let name = format!("{} {}", size_name(report.size), report.row.name());
        if report.row.is_stable() && report.mismatches_on_disk > 0 {
            failures.push(format!(
                "{name}: {} blocks on disk do not match their checksum",
                report.mismatches_on_disk
            ));
        }
        if !report.row.is_stable() && report.mismatches_on_disk == 0 {
            failures.push(format!(
                "{name}: no checksum mismatch on disk (raise --stores or the write count to show the hazard)"
            ));
        }
        for problem in &report.problems {
            failures.push(format!("{name}: {problem}"));
        }
    }
    failures
}

/// What the columns mean, printed under the table.
pub const EXPLANATION: &str = "\
writes: writes completed (all writers). MiB/s: written per second of wall time;
x tput: that over zero-copy's at the same size. CPU s: CPU time of the whole
process (every thread) during the writes; x CPU/MiB: CPU time per MiB written
over zero-copy's. copied: pages copied (bounce at submission, copy on write in
a fault, verify's reissues). faults: CPU writes that faulted on a protected
page; waited: those that slept until the completion. reissues: ranges verify
wrote again. torn (dev): pages whose checksum the device found wrong as it
wrote them. mismatches: blocks on disk whose bytes do not match the checksum
recorded with them, once all I/O is done (what a scrub reports).";

/// The scenario's options.
pub const USAGE: &str = "usage: gupio-demo --scenario dio-write [OPTIONS]

Direct-I/O writes from buffers the writers keep changing, to a device that
records the filesystem's checksum of each block: zero-copy, then each stable
mode (bounce, write-protect waiting or copying on write, verify), at each
write size, on a fresh machine each.

options:
  --writers N          writer threads (default 2)
  --sizes K,K          write sizes in KiB (default 4,1024)
  --mib-per-writer N   MiB each writer writes per size and mode (default 64)
  --max-writes N       most writes per writer (default 16384)
  --stores N           stores into each page while a write is in flight (default 2)
  --latency-us N       device pause after each chunk, in microseconds (default 0)
  --seed N             workload seed (default 1)
  -h, --help           this text";

/// Parses the scenario's options.
///
/// # Errors
/// An unknown option, or a value that is missing or not a number; the
/// message names the option.
pub fn parse_args<I>(args: I) -> Result<Option<DioWriteConfig>, String>
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString>,
{
    use lexopt::prelude::*;

    let mut config = DioWriteConfig::default();
    let mut parser = args::parser(args);
    while let Some(arg) = args::next(&mut parser)? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("writers") => {
                config.writers = args::number::<usize>(&mut parser, "--writers")?.max(1)
            }
            Long("mib-per-writer") => {
                config.bytes_per_writer =
                    args::number::<usize>(&mut parser, "--mib-per-writer")? << 20;
            }
            Long("max-writes") => {
                config.max_writes = args::number::<usize>(&mut parser, "--max-writes")?.max(1);
            }
            Long("stores") => config.stores_per_page = args::number(&mut parser, "--stores")?,
            Long("latency-us") => {
                config.latency = Duration::from_micros(args::number(&mut parser, "--latency-us")?);
            }
            Long("seed") => config.seed = args::number(&mut parser, "--seed")?,
            Long("sizes") => {
                let mut sizes = Vec::new();
                for kib in args::string(&mut parser, "--sizes")?.split(',') {
                    let kib: usize = kib
                        .trim()
                        .parse()
                        .map_err(|_| format!("--sizes: `{kib}` is not a number"))?;
                    if kib == 0 || kib % 4 != 0 {
                        return Err(format!("--sizes: {kib} KiB is not a multiple of 4 KiB"));
                    }
                    sizes.push(kib << 10);
                }
                config.sizes = sizes;
            }
            Long("scenario") => args::own_scenario(&mut parser, Scenario::DioWrite)?,
            _ => return Err(args::unexpected(arg)),
        }
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests;
