//! The writeback protocol for one folio, and batches of folios.

use core::fmt;

use gupio_pfn::Pfn;
use gupio_pin::{FolioRef, PageFlags, PageOps, PageRange, PinError, Warning};
use gupio_sync::atomic::{fence, Ordering};

use crate::{
    Attempt, PinnedAction, PinnedPolicy, WritebackCounts, WritebackError, WritebackIo,
    WritebackReason, WritebackStats,
};

/// How writeback of one folio ended.
///
/// ```
/// use gupio_writeback::Outcome;
/// assert!(Outcome::Bounced.left_dirty());
/// assert!(!Outcome::WrittenInPlace.left_dirty());
/// assert!(Outcome::Bounced.wrote());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The folio was not dirty: nothing done (not even write-protected).
    Clean,
    /// Not pinned: written in place, now clean.
    WrittenInPlace,
    /// Maybe pinned: a bounce copy was written; still dirty.
    Bounced,
    /// Maybe pinned: nothing written; still dirty.
    Skipped,
    /// Pinned, unpinned during the wait, then written in place: now clean.
    WaitedThenWritten,
    /// Still pinned after the wait, or the wait gave up: nothing written; still dirty.
    WaitGaveUp,
}

impl Outcome {
    /// Whether the folio is still dirty: a later pass must write it.
    pub const fn left_dirty(self) -> bool {
        matches!(self, Self::Bounced | Self::Skipped | Self::WaitGaveUp)
    }

    /// Whether the embedder was asked to write (in place or a bounce copy).
    pub const fn wrote(self) -> bool {
        matches!(
            self,
            Self::WrittenInPlace | Self::Bounced | Self::WaitedThenWritten
        )
    }
}

/// How writeback takes the folio lock.
///
/// ```
/// use gupio_writeback::LockMode;
/// assert_eq!(LockMode::default(), LockMode::Blocking);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LockMode {
    /// Wait for the lock ([`PageOps::lock_folio`]): data-integrity writeback.
    #[default]
    Blocking,
    /// Take the lock only if it is free right now
    /// ([`PageOps::try_lock_folio`], released through
    /// [`PageOps::unlock_folio`]); a locked folio is
    /// [`WritebackError::Locked`]: background writeback moves on.
    NonBlocking,
}

/// What a batch did: its counts and the first error it met.
///
/// A batch never stops at an error: every folio gets its chance (a failed
/// write of one folio says nothing about the next), as Linux's
/// `write_cache_pages` does for data-integrity writeback.
///
/// ```
/// use gupio_writeback::{WritebackCounts, WritebackSummary};
/// let summary = WritebackSummary::<i32> { counts: WritebackCounts::default(), first_error: None };
/// assert!(summary.is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WritebackSummary<E> {
    /// This batch's counts (also added to the engine's [`WritebackStats`]).
    pub counts: WritebackCounts,
    /// The first error, in the order the folios were visited.
    pub first_error: Option<WritebackError<E>>,
}

impl<E> WritebackSummary<E> {
    /// Whether no folio failed (a busy folio or a failed lookup did: it was not written).
    pub const fn is_ok(&self) -> bool {
        self.first_error.is_none()
    }

    /// The summary as a `Result`: the counts, or the first error.
    ///
    /// # Errors
    /// The first error the batch met.
    ///
    /// ```
    /// use gupio_writeback::{WritebackCounts, WritebackSummary};
    /// let s = WritebackSummary::<i32> { counts: WritebackCounts::default(), first_error: None };
    /// assert_eq!(s.into_result().unwrap().examined, 0);
    /// ```
    pub fn into_result(self) -> Result<WritebackCounts, WritebackError<E>> {
        match self.first_error {
            None => Ok(self.counts),
            Some(error) => Err(error),
        }
    }

    fn new() -> Self {
        Self {
            counts: WritebackCounts::default(),
            first_error: None,
        }
    }

    fn record(&mut self, result: Result<Outcome, WritebackError<E>>) {
        self.counts.record(&result);
        if let Err(error) = result {
            self.first_error.get_or_insert(error);
        }
    }
}

/// Where one locked pass of the protocol left the folio.
enum Step {
    /// Done: the folio is unlocked and its flags final for this call.
    Done(Outcome),
    /// The policy chose [`PinnedAction::Wait`]: the folio is unlocked,
    /// dirty and not under writeback; wait, then run the protocol again.
    Wait,
}

/// The writeback engine: runs the protocol of the [crate docs](crate) on
/// folios of the embedder's memory map, through its [`WritebackIo`], and
/// counts what it did in a [`WritebackStats`].
///
/// Cheap to build (three references and a mode): make one per writeback
/// pass. The caller holds a reference on every folio it passes in (the
/// page cache's), so folios are not freed or re-shaped under the engine.
///
/// ```
/// use core::cell::Cell;
/// use gupio_pfn::Pfn;
/// use gupio_pin::{ArrayMemoryMap, FolioRef, FolioOrder, MemoryMap, PageFlags, Tracker};
/// use gupio_writeback::{Outcome, PinnedAction, Writeback, WritebackIo, WritebackStats};
///
/// #[derive(Default)]
/// struct Disk { writes: Cell<usize>, bounces: Cell<usize> }
/// impl WritebackIo for Disk {
///     type Error = i32;
///     fn write_protect(&self, _: FolioRef<'_>) {}
///     fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> {
///         Ok(self.writes.set(self.writes.get() + 1))
///     }
///     fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> {
///         Ok(self.bounces.set(self.bounces.get() + 1))
///     }
///     fn wait_until_unpinned(&self, _: FolioRef<'_>) -> bool { false }
/// }
///
/// // gupio-pin's ready-made memory map; a kernel implements `PageOps` on its own.
/// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
/// let page = Pfn::new(1);
/// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
/// let counters = m.counters(page).unwrap();
/// counters.set_flags(PageFlags::DIRTY);
///
/// let (disk, stats) = (Disk::default(), WritebackStats::new());
/// let wb = Writeback::new(&m, &disk, &stats);
///
/// // A device holds a pin: write a stable copy, keep the page dirty.
/// let tracker = Tracker::new(&m);
/// tracker.pin_page(page).unwrap();
/// assert_eq!(wb.writeback_folio(page, &PinnedAction::Bounce), Ok(Outcome::Bounced));
/// assert!(counters.flags().contains(PageFlags::DIRTY));
///
/// // After the unpin, the next pass writes the final contents in place.
/// tracker.unpin_page(page).unwrap();
/// assert_eq!(wb.writeback_folio(page, &PinnedAction::Bounce), Ok(Outcome::WrittenInPlace));
/// assert!(!counters.flags().contains(PageFlags::DIRTY));
/// assert_eq!((disk.bounces.get(), disk.writes.get()), (1, 1));
/// assert!(stats.snapshot().is_balanced());
/// ```
pub struct Writeback<'a, M: PageOps + ?Sized, W: WritebackIo + ?Sized> {
    ops: &'a M,
    io: &'a W,
    stats: &'a WritebackStats,
    lock_mode: LockMode,
    reason: WritebackReason,
}

impl<M: PageOps + ?Sized, W: WritebackIo + ?Sized> Clone for Writeback<'_, M, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: PageOps + ?Sized, W: WritebackIo + ?Sized> Copy for Writeback<'_, M, W> {}

impl<M: PageOps + ?Sized, W: WritebackIo + ?Sized> fmt::Debug for Writeback<'_, M, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writeback")
            .field("lock_mode", &self.lock_mode)
            .field("reason", &self.reason)
            .field("stats", self.stats)
            .finish_non_exhaustive()
    }
}

impl<'a, M: PageOps + ?Sized, W: WritebackIo + ?Sized> Writeback<'a, M, W> {
    /// An engine over the memory map and page hooks `ops`, writing through
    /// `io`, counting into `stats`, taking folio locks with
    /// [`LockMode::Blocking`].
    ///
    /// ```
    /// # use gupio_writeback::doc_fixtures::{dirty, Disk};
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::ArrayMemoryMap;
    /// use gupio_writeback::{LockMode, Writeback, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// let wb = Writeback::new(&m, &disk, &stats);
    /// assert_eq!(wb.lock_mode(), LockMode::Blocking);
    /// ```
    pub const fn new(ops: &'a M, io: &'a W, stats: &'a WritebackStats) -> Self {
        Self {
            ops,
            io,
            stats,
            lock_mode: LockMode::Blocking,
            reason: WritebackReason::Background,
        }
    }

    /// The same engine running for `reason`, which it tells the policy
    /// ([`PinnedPolicy::action_for`]); a new engine runs for
    /// [`WritebackReason::Background`].
    ///
    /// ```
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{ArrayMemoryMap, FolioRef};
    /// # use gupio_writeback::doc_fixtures::Disk;
    /// use gupio_writeback::{Writeback, WritebackReason, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// let fsync = Writeback::new(&m, &disk, &stats).with_reason(WritebackReason::Integrity);
    /// assert_eq!(fsync.reason(), WritebackReason::Integrity);
    /// ```
    #[must_use]
    pub const fn with_reason(mut self, reason: WritebackReason) -> Self {
        self.reason = reason;
        self
    }

    /// Why this engine runs.
    pub const fn reason(&self) -> WritebackReason {
        self.reason
    }

    /// The same engine, taking folio locks with `lock_mode`.
    ///
    /// ```
    /// # use gupio_writeback::doc_fixtures::{dirty, Disk};
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::ArrayMemoryMap;
    /// use gupio_writeback::{LockMode, Writeback, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// let wb = Writeback::new(&m, &disk, &stats).with_lock_mode(LockMode::NonBlocking);
    /// assert_eq!(wb.lock_mode(), LockMode::NonBlocking);
    /// ```
    pub const fn with_lock_mode(mut self, lock_mode: LockMode) -> Self {
        self.lock_mode = lock_mode;
        self
    }

    /// How this engine takes folio locks.
    pub const fn lock_mode(&self) -> LockMode {
        self.lock_mode
    }

    /// The counters this engine adds to.
    pub const fn stats(&self) -> &'a WritebackStats {
        self.stats
    }

    /// Writes back the folio holding `pfn` (the whole folio, whichever of
    /// its pages `pfn` is), following the protocol of the [crate
    /// docs](crate) and asking `policy` if the folio may be pinned.
    ///
    /// # Errors
    /// [`WritebackError::NotInMemoryMap`] and [`WritebackError::CorruptFolio`]
    /// (warned) from the lookup; [`WritebackError::Locked`] in
    /// [`LockMode::NonBlocking`]; [`WritebackError::UnderWriteback`] if the
    /// folio's `WRITEBACK` bit is already set; [`WritebackError::WriteInPlace`]
    /// and [`WritebackError::WriteBounced`] with the embedder's error. The
    /// folio is dirty after a write error and untouched after the others.
    ///
    /// ```
    /// # use gupio_writeback::doc_fixtures::{dirty, Disk};
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{ArrayMemoryMap, PageFlags};
    /// use gupio_writeback::{Outcome, PinnedAction, Writeback, WritebackError, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// let page = dirty(&m, 2, 0);
    /// let wb = Writeback::new(&m, &disk, &stats);
    /// assert_eq!(wb.writeback_folio(page, &PinnedAction::Skip), Ok(Outcome::WrittenInPlace));
    /// assert_eq!(wb.writeback_folio(page, &PinnedAction::Skip), Ok(Outcome::Clean));
    /// assert_eq!(
    ///     wb.writeback_folio(Pfn::new(999), &PinnedAction::Skip),
    ///     Err(WritebackError::NotInMemoryMap { pfn: Pfn::new(999) })
    /// );
    /// ```
    pub fn writeback_folio<P: PinnedPolicy + ?Sized>(
        &self,
        pfn: Pfn,
        policy: &P,
    ) -> Result<Outcome, WritebackError<W::Error>> {
        let result = self
            .lookup(pfn)
            .and_then(|folio| self.writeback(folio, policy));
        self.stats.record(&result);
        result
    }

    /// Writes back the folio of every frame in `pfns`, in order; consecutive
    /// frames in one folio are one folio (written once). Never stops early.
    ///
    /// ```
    /// # use gupio_writeback::doc_fixtures::{dirty, Disk};
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::ArrayMemoryMap;
    /// use gupio_writeback::{PinnedAction, Writeback, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// dirty(&m, 4, 2); // pages 4..8
    /// let small = dirty(&m, 1, 0);
    /// let wb = Writeback::new(&m, &disk, &stats);
    /// let pfns = [Pfn::new(5), Pfn::new(6), small, Pfn::new(99)];
    /// let summary = wb.writeback_folios(&pfns, &PinnedAction::Bounce);
    /// assert_eq!(summary.counts.written_in_place, 2);
    /// assert_eq!(summary.counts.lookup_errors, 1);
    /// assert_eq!(summary.first_error.unwrap().pfn(), Pfn::new(99));
    /// ```
    pub fn writeback_folios<P: PinnedPolicy + ?Sized>(
        &self,
        pfns: &[Pfn],
        policy: &P,
    ) -> WritebackSummary<W::Error> {
        let mut summary = WritebackSummary::new();
        let mut rest = pfns;
        while let Some((&pfn, tail)) = rest.split_first() {
            let (result, more) = match self.lookup(pfn) {
                Ok(folio) => {
                    let more = tail.iter().take_while(|&&p| folio.contains(p)).count();
                    (self.writeback(folio, policy), more)
                }
                Err(error) => (Err(error), 0),
            };
            self.stats.record(&result);
            summary.record(result);
            rest = tail.get(more..).unwrap_or_default();
        }
        summary
    }

    /// Writes back every folio that `range` touches, in order, each once
    /// (a folio only partly inside the range is written whole). Never stops
    /// early; a frame whose lookup fails counts as one failed page.
    ///
    /// ```
    /// # use gupio_writeback::doc_fixtures::{dirty, Disk};
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{ArrayMemoryMap, PageRange};
    /// use gupio_writeback::{PinnedAction, Writeback, WritebackStats};
    /// let (m, disk, stats) = (ArrayMemoryMap::<16>::new(Pfn::new(0)), Disk, WritebackStats::new());
    /// dirty(&m, 8, 3); // pages 8..16
    /// let wb = Writeback::new(&m, &disk, &stats);
    /// let summary = wb.writeback_range(PageRange::new(Pfn::new(10), 4), &PinnedAction::Skip);
    /// assert_eq!((summary.counts.examined, summary.counts.written_in_place), (1, 1));
    /// ```
    pub fn writeback_range<P: PinnedPolicy + ?Sized>(
        &self,
        range: PageRange,
        policy: &P,
    ) -> WritebackSummary<W::Error> {
        let mut summary = WritebackSummary::new();
        let mut next = range.first();
        let mut left = range.len();
        while left > 0 {
            let (result, pages) = match self.lookup(next) {
                // A folio that contains `next` has at least one page from it.
                Ok(folio) => (self.writeback(folio, policy), folio.pages_from(next)),
                Err(error) => (Err(error), 1),
            };
            self.stats.record(&result);
            summary.record(result);
            let step = pages.clamp(1, left);
            left -= step;
            // Within the range while pages are left, so encodable.
            match next.checked_add(step) {
                Some(pfn) if left > 0 => next = pfn,
                _ => break,
            }
        }
        summary
    }

    /// The folio holding `pfn`, warning if the map contradicts itself.
    fn lookup(&self, pfn: Pfn) -> Result<FolioRef<'a>, WritebackError<W::Error>> {
        match self.ops.folio(pfn) {
            Ok(folio) if folio.contains(pfn) => Ok(folio),
            Err(PinError::NotInMemoryMap { .. }) => Err(WritebackError::NotInMemoryMap { pfn }),
            Ok(_) | Err(_) => {
                self.ops.warn(Warning::CorruptFolio { pfn });
                Err(WritebackError::CorruptFolio { pfn })
            }
        }
    }

    /// The whole protocol for one folio, including at most one wait.
    fn writeback<P: PinnedPolicy + ?Sized>(
        &self,
        folio: FolioRef<'a>,
        policy: &P,
    ) -> Result<Outcome, WritebackError<W::Error>> {
        let reason = self.reason;
        let first = self.locked_pass(folio, Attempt::First, || {
            policy.action_for(folio, Attempt::First, reason)
        })?;
        match first {
            Step::Done(outcome) => return Ok(outcome),
            Step::Wait => {}
        }
        // Unlocked, dirty, not under writeback: the pin's owner can finish.
        if !self.io.wait_until_unpinned(folio) {
            // Gave up: still pinned as far as anyone knows. Only a bounce
            // is worth another locked pass.
            match policy.action_for(folio, Attempt::AfterWait, reason) {
                PinnedAction::Bounce => {}
                PinnedAction::Skip | PinnedAction::Wait => return Ok(Outcome::WaitGaveUp),
            }
            return self.after_wait(folio, || PinnedAction::Bounce);
        }
        self.after_wait(folio, || {
            policy.action_for(folio, Attempt::AfterWait, reason)
        })
    }

    /// The locked pass after a wait; it never asks for another wait.
    fn after_wait(
        &self,
        folio: FolioRef<'a>,
        choose: impl FnOnce() -> PinnedAction,
    ) -> Result<Outcome, WritebackError<W::Error>> {
        match self.locked_pass(folio, Attempt::AfterWait, choose)? {
            Step::Done(outcome) => Ok(outcome),
            // `pinned` turns Wait into WaitGaveUp after a wait.
            Step::Wait => Ok(Outcome::WaitGaveUp),
        }
    }

    /// Steps 1 and 8 of the protocol: lock, run the pass, unlock.
    fn locked_pass(
        &self,
        folio: FolioRef<'a>,
        attempt: Attempt,
        choose: impl FnOnce() -> PinnedAction,
    ) -> Result<Step, WritebackError<W::Error>> {
        match self.lock_mode {
            LockMode::Blocking => self.ops.lock_folio(folio),
            LockMode::NonBlocking => {
                if !self.ops.try_lock_folio(folio) {
                    return Err(WritebackError::Locked { pfn: folio.head() });
                }
            }
        }
        let step = self.claim(folio, attempt, choose);
        self.ops.unlock_folio(folio);
        step
    }

    /// Steps 2, 3 and 7, under the folio lock: take the dirty bit and mark
    /// the folio under writeback, run the pass, end writeback.
    fn claim(
        &self,
        folio: FolioRef<'a>,
        attempt: Attempt,
        choose: impl FnOnce() -> PinnedAction,
    ) -> Result<Step, WritebackError<W::Error>> {
        let counters = folio.counters();
        if counters.flags().contains(PageFlags::WRITEBACK) {
            return Err(WritebackError::UnderWriteback { pfn: folio.head() });
        }
        // Step 2. AcqRel (clear_flags): if a pinner's dirtying RMW comes
        // first on this word, this reads from it and acquires the pin taken
        // before it; if it comes after, the folio ends dirty.
        if !counters
            .clear_flags(PageFlags::DIRTY)
            .contains(PageFlags::DIRTY)
        {
            return Ok(Step::Done(Outcome::Clean));
        }
        // Step 3. Only the lock holder sets WRITEBACK, and it was clear.
        // AcqRel (set_flags): a lock-free reader that sees WRITEBACK also
        // sees the dirty bit taken above.
        counters.set_flags(PageFlags::WRITEBACK);
        let step = self.write(folio, attempt, choose);
        // Step 7. The dirty bit is final by now (restored if needed).
        // AcqRel (clear_flags): a lock-free reader that sees WRITEBACK
        // clear also sees the final dirty bit.
        counters.clear_flags(PageFlags::WRITEBACK);
        step
    }

    /// Steps 4 to 6, under the lock with WRITEBACK set and DIRTY taken:
    /// write-protect, check for a pin, write in place or follow the policy.
    fn write(
        &self,
        folio: FolioRef<'a>,
        attempt: Attempt,
        choose: impl FnOnce() -> PinnedAction,
    ) -> Result<Step, WritebackError<W::Error>> {
        let pfn = folio.head();
        // Step 4.
        self.io.write_protect(folio);
        // SeqCst: pairs with the SeqCst fence pin_user_pages issues after
        // pinning and before it re-checks the page tables (or the dirty
        // bit): either the pin check below sees its pin, or it sees this
        // write-protection (and this cleared dirty bit).
        fence(Ordering::SeqCst);
        // Step 5.
        if !self.maybe_pinned(folio) {
            return match self.io.write_in_place(folio) {
                Ok(()) => Ok(Step::Done(match attempt {
                    Attempt::First => Outcome::WrittenInPlace,
                    Attempt::AfterWait => Outcome::WaitedThenWritten,
                })),
                Err(error) => {
                    self.redirty(folio);
                    Err(WritebackError::WriteInPlace { pfn, error })
                }
            };
        }
        // Step 6. Dirty again before the policy runs: whatever it does, and
        // whoever looks at the flags meanwhile (a completion deciding
        // whether it must lock the folio to dirty it), the folio is dirty.
        self.redirty(folio);
        match (choose(), attempt) {
            (PinnedAction::Bounce, _) => match self.io.write_bounced(folio) {
                Ok(()) => Ok(Step::Done(Outcome::Bounced)),
                Err(error) => Err(WritebackError::WriteBounced { pfn, error }),
            },
            (PinnedAction::Skip, Attempt::First) => Ok(Step::Done(Outcome::Skipped)),
            (PinnedAction::Wait, Attempt::First) => Ok(Step::Wait),
            (PinnedAction::Skip | PinnedAction::Wait, Attempt::AfterWait) => {
                Ok(Step::Done(Outcome::WaitGaveUp))
            }
        }
    }

    /// Whether a device may hold a pin on `folio` (never the zero page).
    fn maybe_pinned(&self, folio: FolioRef<'a>) -> bool {
        !self.ops.is_zero_page(folio.head()) && folio.maybe_dma_pinned()
    }

    /// Puts back the dirty bit taken in step 2. The engine's own bit: the
    /// folio never stopped being dirty as far as the filesystem knows, so
    /// no `PageOps::mark_folio_dirty` (the outcome tells the caller).
    fn redirty(&self, folio: FolioRef<'a>) {
        // AcqRel (set_flags): published to the next lock holder by the
        // unlock; to lock-free readers by the RMW itself.
        folio.counters().set_flags(PageFlags::DIRTY);
    }
}

#[cfg(test)]
mod tests;
