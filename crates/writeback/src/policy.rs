//! What to do with a dirty folio that a device may still be writing into.

use gupio_pin::FolioRef;

/// One of the things writeback can safely do with a dirty folio that may be
/// DMA-pinned. None of them marks the folio clean while a pin may remain:
/// that is the engine's job, and it does it only after re-checking the pin.
///
/// A [`PinnedAction`] is also a [`PinnedPolicy`]: the constant one.
///
/// ```
/// use gupio_writeback::{Attempt, PinnedAction, PinnedPolicy};
/// # use gupio_pfn::Pfn;
/// # use gupio_pin::{Folio, FolioRef, PageCounters};
/// # let c = PageCounters::new();
/// # let folio = FolioRef::new(Folio::single(Pfn::new(0)), &c);
/// assert_eq!(PinnedAction::Skip.action(folio, Attempt::First), PinnedAction::Skip);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinnedAction {
    /// Write a bounce copy ([`WritebackIo::write_bounced`]) and keep the
    /// folio dirty, so its final contents are written after the unpin.
    ///
    /// Costs a copy and a write per pass; the only choice that makes
    /// progress on a folio pinned for a long time (an RDMA region), and the
    /// one a data-integrity sync wants: what the copy holds reaches the disk.
    ///
    /// [`WritebackIo::write_bounced`]: crate::WritebackIo::write_bounced
    Bounce,
    /// Write nothing and leave the folio dirty for a later pass.
    ///
    /// Free; right for background writeback, since most pins (direct I/O)
    /// go away within one I/O's latency.
    Skip,
    /// Unlock the folio, let the embedder wait for the pin to go away
    /// ([`WritebackIo::wait_until_unpinned`], with its own bound), then run
    /// the whole protocol once more: written in place if the folio is no
    /// longer pinned, otherwise the policy is asked again with
    /// [`Attempt::AfterWait`].
    ///
    /// The folio lock is dropped for the wait because the completion that
    /// will unpin may need it first (to mark the folio dirty, as Linux's
    /// `unpin_user_pages_dirty_lock` does); waiting with it held would stall
    /// until the embedder's bound expired. At most one wait per call.
    ///
    /// [`WritebackIo::wait_until_unpinned`]: crate::WritebackIo::wait_until_unpinned
    Wait,
}

/// Which time the policy is asked about a folio in one writeback call.
///
/// ```
/// use gupio_writeback::Attempt;
/// assert_ne!(Attempt::First, Attempt::AfterWait);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// The folio was found dirty and maybe pinned.
    First,
    /// The policy chose [`PinnedAction::Wait`] and the folio is still
    /// pinned (or the wait gave up). [`PinnedAction::Bounce`] writes a
    /// copy; anything else leaves the folio dirty
    /// ([`Outcome::WaitGaveUp`](crate::Outcome::WaitGaveUp)).
    AfterWait,
}

/// Chooses what writeback does with a dirty folio that may be DMA-pinned.
///
/// The engine asks only once it has cleared the folio's dirty bit,
/// write-protected it and seen a possible pin; by then the folio is locked
/// and dirty again, so no answer can lose data. A policy chooses among the
/// safe [`PinnedAction`]s; it may look at the folio (its size, its counters)
/// and at its own state (a sync mode, a per-file setting). Implement it on
/// your own type, or pass a closure `Fn(FolioRef<'_>, Attempt) -> PinnedAction`.
///
/// ```
/// use gupio_pin::FolioRef;
/// use gupio_writeback::{Attempt, PinnedAction, PinnedPolicy};
///
/// /// Data-integrity sync: wait for short pins, bounce what stays pinned.
/// struct Integrity;
///
/// impl PinnedPolicy for Integrity {
///     fn action(&self, _folio: FolioRef<'_>, attempt: Attempt) -> PinnedAction {
///         match attempt {
///             Attempt::First => PinnedAction::Wait,
///             Attempt::AfterWait => PinnedAction::Bounce,
///         }
///     }
/// }
///
/// // Background writeback: bounce large folios (copying pays off), skip small ones.
/// let background = |folio: FolioRef<'_>, _: Attempt| {
///     if folio.nr_pages() > 1 { PinnedAction::Bounce } else { PinnedAction::Skip }
/// };
/// # use gupio_pfn::Pfn;
/// # use gupio_pin::{Folio, PageCounters};
/// # let c = PageCounters::new();
/// # let small = FolioRef::new(Folio::single(Pfn::new(0)), &c);
/// assert_eq!(background.action(small, Attempt::First), PinnedAction::Skip);
/// assert_eq!(Integrity.action(small, Attempt::AfterWait), PinnedAction::Bounce);
/// ```
pub trait PinnedPolicy {
    /// What to do with `folio`, which may be pinned, on this `attempt`.
    ///
    /// ```
    /// use gupio_writeback::{Attempt, PinnedAction, PinnedPolicy};
    /// # use gupio_pfn::Pfn;
    /// # use gupio_pin::{Folio, FolioRef, PageCounters};
    /// # let c = PageCounters::new();
    /// # let folio = FolioRef::new(Folio::single(Pfn::new(0)), &c);
    /// assert_eq!(PinnedAction::Bounce.action(folio, Attempt::AfterWait), PinnedAction::Bounce);
    /// ```
    fn action(&self, folio: FolioRef<'_>, attempt: Attempt) -> PinnedAction;
}

impl PinnedPolicy for PinnedAction {
    /// Always `self`. For [`PinnedAction::Wait`], asking again after the
    /// wait answers `Wait`, which gives up: the folio stays dirty.
    fn action(&self, _folio: FolioRef<'_>, _attempt: Attempt) -> PinnedAction {
        *self
    }
}

impl<F> PinnedPolicy for F
where
    F: Fn(FolioRef<'_>, Attempt) -> PinnedAction,
{
    fn action(&self, folio: FolioRef<'_>, attempt: Attempt) -> PinnedAction {
        self(folio, attempt)
    }
}

#[cfg(test)]
mod tests;
