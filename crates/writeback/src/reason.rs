//! Why writeback runs, and the policy that answers by the reason.

use gupio_pin::FolioRef;

use crate::{Attempt, PinnedAction, PinnedPolicy};

/// Why writeback runs: the engine tells the policy
/// ([`Writeback::with_reason`](crate::Writeback::with_reason),
/// [`PinnedPolicy::action_for`]).
///
/// ```
/// use gupio_writeback::WritebackReason;
/// assert_ne!(WritebackReason::Background, WritebackReason::Integrity);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WritebackReason {
    /// Cleaning: the flusher keeping dirty memory in check, or reclaim. Any
    /// folio it leaves dirty is written by a later pass; nobody waits on it.
    Background,
    /// Data integrity: `fsync`, `sync`, `msync(MS_SYNC)`, an unmount. What
    /// was written before the call must be on the disk when it returns, so
    /// a pinned folio's current contents must be written now.
    Integrity,
}

/// The default policy for pinned folios, by reason: what the writeback
/// engine should do when it cannot tell how long a pin will last.
///
/// [`ByReason::DEFAULT`] skips pinned folios in background writeback (a
/// direct-I/O pin goes away within one I/O's latency, and the next pass
/// writes the folio in place; a copy now would be written again then) and
/// bounces them in integrity writeback (the caller waits for this data to
/// be on the disk: a stable copy of it is written, and the folio stays
/// dirty because the device may still change it). Waiting instead of
/// bouncing would leave an `fsync` at the mercy of a pin that may never
/// go (RDMA, a registered io_uring buffer).
///
/// ```
/// use gupio_writeback::{Attempt, ByReason, PinnedAction, PinnedPolicy, WritebackReason};
/// # use gupio_pfn::Pfn;
/// # use gupio_pin::{Folio, FolioRef, PageCounters};
/// # let c = PageCounters::new();
/// # let folio = FolioRef::new(Folio::single(Pfn::new(0)), &c);
/// let policy = ByReason::DEFAULT;
/// assert_eq!(policy.action_for(folio, Attempt::First, WritebackReason::Background), PinnedAction::Skip);
/// assert_eq!(policy.action_for(folio, Attempt::First, WritebackReason::Integrity), PinnedAction::Bounce);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByReason {
    /// The action in background writeback.
    pub background: PinnedAction,
    /// The action in data-integrity writeback.
    pub integrity: PinnedAction,
}

impl ByReason {
    /// Skip in the background, bounce for integrity.
    pub const DEFAULT: Self = Self {
        background: PinnedAction::Skip,
        integrity: PinnedAction::Bounce,
    };

    /// The action for `reason`.
    pub const fn for_reason(&self, reason: WritebackReason) -> PinnedAction {
        match reason {
            WritebackReason::Background => self.background,
            WritebackReason::Integrity => self.integrity,
        }
    }
}

impl Default for ByReason {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PinnedPolicy for ByReason {
    /// Without a reason, the integrity action: the one that loses nothing
    /// a caller waits for.
    fn action(&self, _folio: FolioRef<'_>, _attempt: Attempt) -> PinnedAction {
        self.integrity
    }

    fn action_for(
        &self,
        _folio: FolioRef<'_>,
        _attempt: Attempt,
        reason: WritebackReason,
    ) -> PinnedAction {
        self.for_reason(reason)
    }
}

#[cfg(test)]
mod tests;
