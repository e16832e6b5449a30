//! The completion object: status, chained bios, `end_io` exactly once.

use gupio_bio::BioStatus;
use gupio_sync::atomic::{AtomicU32, AtomicU8, Ordering};
use gupio_sync::const_unless_loom;

use crate::{ReleaseError, ReleaseWarning, Warn};

const IDLE: u8 = 0;
const IN_FLIGHT: u8 = 1;
/// The bio's own I/O has completed; children may still be outstanding.
const OWN_DONE: u8 = 2;
const FINISHED: u8 = 3;

/// A bio's completion state, embedded next to the bio by the embedder (the
/// fields Linux keeps in `struct bio`: `bi_status`, `__bi_remaining`, and
/// the guarantee that `bi_end_io` runs once).
///
/// A completion counts the parts outstanding: the bio's own I/O and one per
/// chained child. It moves `idle → in flight → finished` by
/// `compare_exchange` from a named prior state only, so a second completion
/// of the bio's own I/O is detected (warn hook and
/// [`ReleaseError::DoubleCompletion`]) and never ends the bio twice. The
/// first error status reported, by the bio or any child, is the one the
/// bio ends with. Whoever reports the last outstanding part gets
/// [`Ending::Finished`] and runs `end_io`: exactly one caller does.
///
/// Lock-free: every method may run in interrupt context.
///
/// ```
/// use gupio_bio::BioStatus;
/// use gupio_release::{Completion, Ending};
/// # struct NoWarn;
/// # impl gupio_release::Warn for NoWarn { fn warn(&self, w: gupio_release::ReleaseWarning) { panic!("{w}") } }
///
/// let parent = Completion::new();
/// parent.start()?;
/// let child = parent.chain()?;
/// // The parent's own I/O completes first: the child is still out.
/// assert_eq!(parent.complete(BioStatus::Ok, &NoWarn)?, Ending::Pending);
/// // The child's failure finishes the parent with the child's error.
/// assert_eq!(parent.child_complete(child, BioStatus::IoError, &NoWarn)?,
///            Ending::Finished(BioStatus::IoError));
/// # Ok::<(), gupio_release::ReleaseError>(())
/// ```
#[derive(Debug)]
pub struct Completion {
    state: AtomicU8,
    /// The first error status, or `Ok`, as `BioStatus` bits.
    status: AtomicU8,
    /// Parts outstanding: the bio's own I/O plus each chained child.
    remaining: AtomicU32,
}

/// What reporting one part did.
///
/// ```
/// use gupio_release::Ending;
/// assert_ne!(Ending::Pending, Ending::Finished(gupio_bio::BioStatus::Ok));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ending {
    /// Other parts are still outstanding.
    Pending,
    /// This was the last part: run `end_io` with this status. Exactly one
    /// report per start returns it.
    Finished(BioStatus),
}

/// A chained child's claim on its parent: returned by
/// [`Completion::chain`], consumed by [`Completion::child_complete`], so a
/// child can report to its parent only once.
#[must_use = "a chained child must report to its parent, or the parent never finishes"]
#[derive(Debug)]
pub struct ChildToken {
    _private: (),
}

/// Encodes a status for the status word.
const fn status_to_raw(status: BioStatus) -> u8 {
    status.to_raw()
}

impl Completion {
    const_unless_loom! {
        /// An idle completion.
        ///
        /// ```
        /// let c = gupio_release::Completion::new();
        /// assert!(!c.is_in_flight());
        /// ```
        pub fn new() -> Self {
            Self {
                state: AtomicU8::new(IDLE),
                status: AtomicU8::new(status_to_raw(BioStatus::Ok)),
                remaining: AtomicU32::new(0),
            }
        }
    }

    /// Starts the completion when its bio is submitted: one part (the bio's
    /// own I/O) outstanding, status `Ok`. A finished completion may be
    /// started again (bio reuse).
    ///
    /// # Errors
    /// [`ReleaseError::AlreadyStarted`] if it is in flight.
    ///
    /// ```
    /// let c = gupio_release::Completion::new();
    /// c.start().unwrap();
    /// assert!(c.start().is_err());
    /// ```
    pub fn start(&self) -> Result<(), ReleaseError> {
        for prior in [IDLE, FINISHED] {
            // Acquire: a restart after FINISHED sees everything the finishing
            // report did (pairs with the AcqRel swap to FINISHED).
            if self
                .state
                .compare_exchange(prior, IN_FLIGHT, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // Relaxed: nobody else may touch an in-flight completion
                // before the submitter publishes the bio to the device.
                self.status
                    .store(status_to_raw(BioStatus::Ok), Ordering::Relaxed);
                self.remaining.store(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        Err(ReleaseError::AlreadyStarted)
    }

    /// Chains a child to this in-flight completion (Linux's `bio_chain`):
    /// the completion finishes only after the child reports through
    /// [`child_complete`](Self::child_complete). Chain children before the
    /// bio's own completion can run.
    ///
    /// # Errors
    /// [`ReleaseError::ChainNotInFlight`] if the completion is not in
    /// flight; [`ReleaseError::TooManyChildren`] if the count of parts would
    /// overflow.
    ///
    /// ```
    /// let c = gupio_release::Completion::new();
    /// assert!(c.chain().is_err(), "not started");
    /// c.start().unwrap();
    /// let _child = c.chain().unwrap();
    /// assert_eq!(c.outstanding(), 2);
    /// # std::mem::forget(_child);
    /// ```
    pub fn chain(&self) -> Result<ChildToken, ReleaseError> {
        // Relaxed: the state is only a guard against misuse here; the count
        // itself is what orders the finish.
        if self.state.load(Ordering::Relaxed) != IN_FLIGHT {
            return Err(ReleaseError::ChainNotInFlight);
        }
        let mut seen = self.remaining.load(Ordering::Relaxed);
        loop {
            if seen == 0 {
                return Err(ReleaseError::ChainNotInFlight);
            }
            let Some(next) = seen.checked_add(1) else {
                return Err(ReleaseError::TooManyChildren { remaining: seen });
            };
            // Relaxed: taking a part needs no ordering (as Arc's clone); the
            // AcqRel decrements order the finish.
            match self.remaining.compare_exchange_weak(
                seen,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(ChildToken { _private: () }),
                Err(now) => seen = now,
            }
        }
    }

    /// Reports the bio's own I/O done with `status` (Linux's `bio_endio`).
    ///
    /// # Errors
    /// [`ReleaseError::DoubleCompletion`] (warned) if the bio's own I/O was
    /// already reported; [`ReleaseError::NotStarted`] if the completion was
    /// never started. Neither changes anything.
    ///
    /// ```
    /// use gupio_bio::BioStatus;
    /// use gupio_release::{Completion, Ending, ReleaseError};
    /// # struct W; impl gupio_release::Warn for W { fn warn(&self, _: gupio_release::ReleaseWarning) {} }
    /// let c = Completion::new();
    /// c.start()?;
    /// assert_eq!(c.complete(BioStatus::Ok, &W)?, Ending::Finished(BioStatus::Ok));
    /// assert_eq!(c.complete(BioStatus::Ok, &W), Err(ReleaseError::DoubleCompletion));
    /// # Ok::<(), ReleaseError>(())
    /// ```
    pub fn complete<W: Warn + ?Sized>(
        &self,
        status: BioStatus,
        warn: &W,
    ) -> Result<Ending, ReleaseError> {
        // Relaxed on success: this CAS only claims the bio's own part; the
        // count's AcqRel decrement below orders the finish.
        match self
            .state
            .compare_exchange(IN_FLIGHT, OWN_DONE, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => self.report(status, warn),
            Err(IDLE) => Err(ReleaseError::NotStarted),
            Err(_) => {
                warn.warn(ReleaseWarning::DoubleCompletion);
                Err(ReleaseError::DoubleCompletion)
            }
        }
    }

    /// Reports a chained child done with `status`.
    ///
    /// # Errors
    /// [`ReleaseError::DoubleCompletion`] (warned) if no part is
    /// outstanding: a token from another completion, or one kept past a
    /// restart.
    ///
    /// ```
    /// use gupio_bio::BioStatus;
    /// use gupio_release::{Completion, Ending};
    /// # struct W; impl gupio_release::Warn for W { fn warn(&self, _: gupio_release::ReleaseWarning) {} }
    /// let c = Completion::new();
    /// c.start()?;
    /// let child = c.chain()?;
    /// assert_eq!(c.child_complete(child, BioStatus::Ok, &W)?, Ending::Pending);
    /// assert_eq!(c.complete(BioStatus::Ok, &W)?, Ending::Finished(BioStatus::Ok));
    /// # Ok::<(), gupio_release::ReleaseError>(())
    /// ```
    pub fn child_complete<W: Warn + ?Sized>(
        &self,
        child: ChildToken,
        status: BioStatus,
        warn: &W,
    ) -> Result<Ending, ReleaseError> {
        let ChildToken { _private: () } = child;
        self.report(status, warn)
    }

    /// Records `status` and drops one outstanding part.
    fn report<W: Warn + ?Sized>(
        &self,
        status: BioStatus,
        warn: &W,
    ) -> Result<Ending, ReleaseError> {
        if status.is_err() {
            // Relaxed: the status is published by the Release half of the
            // decrement below and read after its Acquire half.
            let _ = self.status.compare_exchange(
                status_to_raw(BioStatus::Ok),
                status_to_raw(status),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        let mut seen = self.remaining.load(Ordering::Relaxed);
        loop {
            if seen == 0 {
                warn.warn(ReleaseWarning::DoubleCompletion);
                return Err(ReleaseError::DoubleCompletion);
            }
            // AcqRel: Release publishes this part's status and page
            // accesses; the last reporter's Acquire sees every part's.
            match self.remaining.compare_exchange_weak(
                seen,
                seen - 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(1) => break,
                Ok(_) => return Ok(Ending::Pending),
                Err(now) => seen = now,
            }
        }
        // Release: a restart's Acquire CAS sees the finished state.
        self.state.store(FINISHED, Ordering::Release);
        // Relaxed: ordered after every part's report by the Acquire above.
        let raw = self.status.load(Ordering::Relaxed);
        match BioStatus::from_raw(raw) {
            Some(status) => Ok(Ending::Finished(status)),
            None => {
                warn.warn(ReleaseWarning::CorruptCompletionStatus { raw });
                Ok(Ending::Finished(BioStatus::IoError))
            }
        }
    }

    /// Whether the completion is started and not yet finished.
    pub fn is_in_flight(&self) -> bool {
        // Acquire: pairs with the Release store of FINISHED.
        matches!(self.state.load(Ordering::Acquire), IN_FLIGHT | OWN_DONE)
    }

    /// The parts still outstanding (a snapshot).
    pub fn outstanding(&self) -> u32 {
        // Relaxed: a snapshot for diagnostics.
        self.remaining.load(Ordering::Relaxed)
    }

    /// Overwrites the status word with `raw`, as a stray write would: for
    /// tests of the corrupt-status path.
    #[cfg(test)]
    pub(crate) fn corrupt_status(&self, raw: u8) {
        self.status.store(raw, Ordering::Relaxed);
    }
}

impl Default for Completion {
    fn default() -> Self {
        Self::new()
    }
}
