//! What writeback did, counted.

use core::fmt;

use gupio_sync::atomic::{AtomicUsize, Ordering};
use gupio_sync::const_unless_loom;

use crate::{Outcome, WritebackError};

/// Counts of what writeback did: a snapshot of [`WritebackStats`], or the
/// tally of one batch ([`WritebackSummary`](crate::WritebackSummary)).
///
/// Every folio looked up counts once in `examined` and once in exactly one
/// of the outcome fields (`clean` to `busy`), so after quiescent use
/// [`is_balanced`](Self::is_balanced) holds. Frames whose lookup failed
/// count only in `lookup_errors`.
///
/// `Display` prints one row under [`WritebackCounts::HEADER`]:
///
/// ```
/// use gupio_writeback::WritebackCounts;
/// let counts = WritebackCounts { examined: 3, clean: 1, bounced: 2, ..Default::default() };
/// assert!(counts.is_balanced());
/// assert_eq!(counts.left_dirty(), 2);
/// let table = format!("{}\n{counts}", WritebackCounts::HEADER);
/// assert_eq!(
///     table,
///     " examined    clean in-place  bounced  skipped   waited gave-up  errors    busy unmapped\n        \
///      3        1        0        2        0        0       0       0       0        0"
/// );
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WritebackCounts {
    /// Folios looked up and handled (with any outcome or error but a failed lookup).
    pub examined: usize,
    /// Folios found clean: nothing to do.
    pub clean: usize,
    /// Folios written in place and left clean.
    pub written_in_place: usize,
    /// Folios that may be pinned: a bounce copy written, left dirty.
    pub bounced: usize,
    /// Folios that may be pinned: nothing written, left dirty.
    pub skipped: usize,
    /// Folios that were pinned, unpinned during a wait, then written in place and left clean.
    pub waited_then_written: usize,
    /// Folios still pinned after a wait (or the wait gave up): nothing written, left dirty.
    pub wait_gave_up: usize,
    /// Folios whose write (in place or bounced) failed: left dirty.
    pub write_errors: usize,
    /// Folios locked by someone else or under writeback elsewhere: untouched.
    pub busy: usize,
    /// Frames whose folio lookup failed (not in the map, or corrupt): not examined.
    pub lookup_errors: usize,
}

impl WritebackCounts {
    /// The column headings matching the `Display` row.
    ///
    /// ```
    /// assert!(gupio_writeback::WritebackCounts::HEADER.contains("bounced"));
    /// ```
    pub const HEADER: &'static str =
        " examined    clean in-place  bounced  skipped   waited gave-up  errors    busy unmapped";

    /// The sum of the outcome fields (`clean` to `busy`).
    ///
    /// ```
    /// use gupio_writeback::WritebackCounts;
    /// let c = WritebackCounts { skipped: 2, busy: 1, lookup_errors: 4, ..Default::default() };
    /// assert_eq!(c.outcomes(), 3);
    /// ```
    pub const fn outcomes(&self) -> usize {
        self.clean
            .wrapping_add(self.written_in_place)
            .wrapping_add(self.bounced)
            .wrapping_add(self.skipped)
            .wrapping_add(self.waited_then_written)
            .wrapping_add(self.wait_gave_up)
            .wrapping_add(self.write_errors)
            .wrapping_add(self.busy)
    }

    /// Whether every examined folio has exactly one outcome. Holds for a
    /// batch tally, and for a [`WritebackStats`] snapshot taken while no
    /// writeback runs.
    pub const fn is_balanced(&self) -> bool {
        self.examined == self.outcomes()
    }

    /// Folios that writeback left dirty: bounced, skipped, still pinned
    /// after a wait, or failed. A filesystem keeps the file on its dirty
    /// list while this is non-zero (busy folios were not looked at and may
    /// be dirty too).
    pub const fn left_dirty(&self) -> usize {
        self.bounced
            .wrapping_add(self.skipped)
            .wrapping_add(self.wait_gave_up)
            .wrapping_add(self.write_errors)
    }

    /// Counts one folio's result.
    pub(crate) fn record<E>(&mut self, result: &Result<Outcome, WritebackError<E>>) {
        let field = match Tally::of(result) {
            Tally::LookupError => &mut self.lookup_errors,
            Tally::Examined(field) => {
                self.examined = self.examined.wrapping_add(1);
                self.field_mut(field)
            }
        };
        *field = field.wrapping_add(1);
    }

    fn field_mut(&mut self, field: Field) -> &mut usize {
        match field {
            Field::Clean => &mut self.clean,
            Field::WrittenInPlace => &mut self.written_in_place,
            Field::Bounced => &mut self.bounced,
            Field::Skipped => &mut self.skipped,
            Field::WaitedThenWritten => &mut self.waited_then_written,
            Field::WaitGaveUp => &mut self.wait_gave_up,
            Field::WriteError => &mut self.write_errors,
            Field::Busy => &mut self.busy,
        }
    }
}

impl fmt::Display for WritebackCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>8}{:>8}{:>8}{:>9}",
            self.examined,
            self.clean,
            self.written_in_place,
            self.bounced,
            self.skipped,
            self.waited_then_written,
            self.wait_gave_up,
            self.write_errors,
            self.busy,
            self.lookup_errors,
        )
    }
}

/// The outcome fields, one per way a looked-up folio can end.
#[derive(Clone, Copy)]
enum Field {
    Clean,
    WrittenInPlace,
    Bounced,
    Skipped,
    WaitedThenWritten,
    WaitGaveUp,
    WriteError,
    Busy,
}

/// Where one result is counted.
#[derive(Clone, Copy)]
enum Tally {
    LookupError,
    Examined(Field),
}

impl Tally {
    fn of<E>(result: &Result<Outcome, WritebackError<E>>) -> Self {
        let field = match result {
            Ok(Outcome::Clean) => Field::Clean,
            Ok(Outcome::WrittenInPlace) => Field::WrittenInPlace,
            Ok(Outcome::Bounced) => Field::Bounced,
            Ok(Outcome::Skipped) => Field::Skipped,
            Ok(Outcome::WaitedThenWritten) => Field::WaitedThenWritten,
            Ok(Outcome::WaitGaveUp) => Field::WaitGaveUp,
            Err(WritebackError::NotInMemoryMap { .. } | WritebackError::CorruptFolio { .. }) => {
                return Self::LookupError
            }
            Err(WritebackError::Locked { .. } | WritebackError::UnderWriteback { .. }) => {
                Field::Busy
            }
            Err(WritebackError::WriteInPlace { .. } | WritebackError::WriteBounced { .. }) => {
                Field::WriteError
            }
        };
        Self::Examined(field)
    }
}

/// Running counts of what writeback did, shared by every writeback thread
/// (like Linux's vmstat counters): one relaxed atomic increment per folio
/// and one for `examined`.
///
/// ```
/// use gupio_writeback::WritebackStats;
/// static STATS: WritebackStats = WritebackStats::new();
/// assert_eq!(STATS.snapshot().examined, 0);
/// ```
pub struct WritebackStats {
    examined: AtomicUsize,
    clean: AtomicUsize,
    written_in_place: AtomicUsize,
    bounced: AtomicUsize,
    skipped: AtomicUsize,
    waited_then_written: AtomicUsize,
    wait_gave_up: AtomicUsize,
    write_errors: AtomicUsize,
    busy: AtomicUsize,
    lookup_errors: AtomicUsize,
}

impl WritebackStats {
    const_unless_loom! {
        /// Every counter at zero.
        ///
        /// ```
        /// let stats = gupio_writeback::WritebackStats::new();
        /// assert!(stats.snapshot().is_balanced());
        /// ```
        pub fn new() -> Self {
            Self {
                examined: AtomicUsize::new(0),
                clean: AtomicUsize::new(0),
                written_in_place: AtomicUsize::new(0),
                bounced: AtomicUsize::new(0),
                skipped: AtomicUsize::new(0),
                waited_then_written: AtomicUsize::new(0),
                wait_gave_up: AtomicUsize::new(0),
                write_errors: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                lookup_errors: AtomicUsize::new(0),
            }
        }
    }

    /// A copy of the counters. Each is read on its own, so a snapshot taken
    /// while writeback runs may be off by the folios in flight.
    ///
    /// ```
    /// let stats = gupio_writeback::WritebackStats::new();
    /// let counts = stats.snapshot();
    /// assert_eq!(counts.written_in_place + counts.bounced, 0);
    /// ```
    pub fn snapshot(&self) -> WritebackCounts {
        // Relaxed: statistics; they order nothing.
        let read = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        WritebackCounts {
            examined: read(&self.examined),
            clean: read(&self.clean),
            written_in_place: read(&self.written_in_place),
            bounced: read(&self.bounced),
            skipped: read(&self.skipped),
            waited_then_written: read(&self.waited_then_written),
            wait_gave_up: read(&self.wait_gave_up),
            write_errors: read(&self.write_errors),
            busy: read(&self.busy),
            lookup_errors: read(&self.lookup_errors),
        }
    }

    /// Counts one folio's result.
    pub(crate) fn record<E>(&self, result: &Result<Outcome, WritebackError<E>>) {
        let counter = match Tally::of(result) {
            Tally::LookupError => &self.lookup_errors,
            Tally::Examined(field) => {
                // Relaxed: a statistic; it orders nothing.
                self.examined.fetch_add(1, Ordering::Relaxed);
                self.counter(field)
            }
        };
        // Relaxed: a statistic; it orders nothing.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn counter(&self, field: Field) -> &AtomicUsize {
        match field {
            Field::Clean => &self.clean,
            Field::WrittenInPlace => &self.written_in_place,
            Field::Bounced => &self.bounced,
            Field::Skipped => &self.skipped,
            Field::WaitedThenWritten => &self.waited_then_written,
            Field::WaitGaveUp => &self.wait_gave_up,
            Field::WriteError => &self.write_errors,
            Field::Busy => &self.busy,
        }
    }
}

impl Default for WritebackStats {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WritebackStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WritebackStats")
            .field(&self.snapshot())
            .finish()
    }
}

#[cfg(test)]
mod tests;
