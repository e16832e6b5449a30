//! What phase 3 did, counted as it goes and printed at the end.

use core::time::Duration;

use gupio::writeback::WritebackCounts;

use crate::pagecache::CacheStats;
use crate::pagemap::AllocatorStats;

/// What phase 3 did, for the summary it prints.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Seeded files read back intact.
    pub seeds_checked: usize,
    /// Files in the manifest.
    pub manifest_files: usize,
    /// Clusters of deleted files the kernel freed.
    pub clusters_freed: usize,
    /// Pages pinned by the direct write and the direct read.
    pub direct_pinned: usize,
    /// Folios writeback bounced while they were in flight.
    pub bounced_in_flight: usize,
    /// What the page cache did.
    pub cache: CacheStats,
    /// What writeback did, over the whole phase.
    pub writeback: WritebackCounts,
    /// Pins taken and dropped.
    pub pins_acquired: usize,
    /// Pins dropped.
    pub pins_released: usize,
    /// Warnings (must be zero).
    pub warnings: usize,
    /// The page allocator's counts at the end.
    pub allocator: AllocatorStats,
    /// Every counter of the managed region back at baseline at the end.
    pub counters_at_baseline: bool,
    /// Wall time (mtime).
    pub elapsed: Duration,
}

impl Summary {
    /// Prints the summary, several lines.
    pub fn print(&self) {
        let cache = &self.cache;
        let wb = &self.writeback;
        println!("gupio file summary:");
        println!(
            "  files                  {} seeded files intact, {} in the manifest, {} clusters of deleted files freed",
            self.seeds_checked, self.manifest_files, self.clusters_freed
        );
        println!(
            "  page cache             {} hits, {} misses, {} evictions; {} bios, {} bytes read, {} written; \
             released {} put, {} unpinned (bounce copies go out borrowed: nothing to release)",
            cache.hits,
            cache.misses,
            cache.evictions,
            cache.bios,
            cache.bytes_in,
            cache.bytes_out,
            cache.released.put,
            cache.released.unpinned
        );
        println!(
            "  writeback              {} folios examined: {} clean, {} written in place, {} bounced, \
             {} skipped, {} write errors; {} user mappings write-protected",
            wb.examined,
            wb.clean,
            wb.written_in_place,
            wb.bounced,
            wb.skipped,
            wb.write_errors,
            cache.write_protected
        );
        println!(
            "  direct I/O             {} page-cache pages pinned by a write bio and a read bio, {} bounced by writeback while they were in flight",
            self.direct_pinned, self.bounced_in_flight
        );
        println!(
            "  pins acquired/released {}/{}",
            self.pins_acquired, self.pins_released
        );
        println!("  warnings               {}", self.warnings);
        self.allocator
            .print_summary_end(self.counters_at_baseline, self.elapsed);
    }
}
