//! What the scenario did, counted as it goes and printed at the end.

use core::time::Duration;

use gupio::release::ReleaseStats;

use crate::pagemap::AllocatorStats;
use crate::userspace::FaultStats;

/// What the scenario did, for the summary it prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Bios submitted to the device (flush included).
    pub bios: usize,
    /// Data segments those bios carried.
    pub segments: usize,
    /// Bytes the device wrote into tracked pages.
    pub bytes_read: usize,
    /// Bytes the device read from tracked pages.
    pub bytes_written: usize,
    /// Bytes compared against the disk's contents.
    pub bytes_checked: usize,
    /// Pins taken (`nr_foll_pin_acquired`).
    pub pins_acquired: usize,
    /// Pins dropped (`nr_foll_pin_released`).
    pub pins_released: usize,
    /// Pages the completions released, by origin.
    pub released: ReleaseStats,
    /// `add_user_range` calls that came back short (bio full).
    pub short_adds: usize,
    /// Bios whose release was deferred to process context.
    pub deferred: usize,
    /// Faults the address space resolved.
    pub faults: FaultStats,
    /// Warnings the scenario provoked on purpose.
    pub expected_warnings: usize,
    /// Every other warning (must be zero).
    pub unexpected_warnings: usize,
    /// The page allocator's counts at the end.
    pub allocator: AllocatorStats,
    /// Every counter of the managed region back at baseline at the end.
    pub counters_at_baseline: bool,
    /// Wall time (mtime).
    pub elapsed: Duration,
}

/// Adds `stats` to `total`.
pub(super) fn accumulate(total: &mut ReleaseStats, stats: ReleaseStats) {
    total.unpinned += stats.unpinned;
    total.put += stats.put;
    total.borrowed += stats.borrowed;
    total.bvecs += stats.bvecs;
}

impl Summary {
    pub(super) fn add_released(&mut self, stats: ReleaseStats) {
        accumulate(&mut self.released, stats);
    }

    /// Prints the summary, several lines.
    pub fn print(&self) {
        println!("gupio scenario summary:");
        println!(
            "  bios submitted         {} ({} segments)",
            self.bios, self.segments
        );
        println!(
            "  bytes DMA'd            {} read into tracked pages, {} written from them; {} checked",
            self.bytes_read, self.bytes_written, self.bytes_checked
        );
        println!(
            "  pages pinned           {} into bios, {} more dropped at once (bio full); {} short adds, \
             {} deferred releases, faults: {} demand-zero, {} copy-on-write",
            self.released.unpinned,
            self.pins_acquired.saturating_sub(self.released.unpinned),
            self.short_adds,
            self.deferred,
            self.faults.demand_zero,
            self.faults.copy_on_write
        );
        println!(
            "  pages released         {} unpinned, {} put, {} borrowed (left alone), in {} bvecs",
            self.released.unpinned, self.released.put, self.released.borrowed, self.released.bvecs
        );
        println!(
            "  pins acquired/released {}/{}",
            self.pins_acquired, self.pins_released
        );
        println!(
            "  warnings               {} expected, {} unexpected",
            self.expected_warnings, self.unexpected_warnings
        );
        self.allocator
            .print_summary_end(self.counters_at_baseline, self.elapsed);
    }
}
