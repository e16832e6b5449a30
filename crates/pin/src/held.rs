//! Pins and references as values: [`HeldRun`], what a grab hands back.

use core::fmt;

use gupio_pfn::{Origin, Pfn};

use crate::{FolioRef, GrabKind, PageOps, PageRange, PinAccount, PinError, Tracker, Warning};

/// A run of pages of one folio that the caller holds pinned (or referenced),
/// as [`Tracker::pin_user_pages`] and [`Tracker::get_user_pages`] hand them
/// out: a first frame, a page count, the folio and the origin a bio must
/// record for them.
///
/// The value *is* the pins: it cannot be cloned, and exactly one of two
/// things consumes it, releasing or transferring every pin it holds once:
/// - a bio builder (gupio-release's `add_held_run`, or
///   [`into_raw`](Self::into_raw) for a kernel's own builder), so a pinned
///   page enters a bio only as [`Origin::Pinned`], with its pin;
/// - [`Tracker::release_held`], the unpin or put.
///
/// A run from [`Tracker::pin_user_pages_longterm`] is also **charged** to
/// its owner's [`PinAccount`]: releasing it uncharges its pages,
/// [`split_off`](Self::split_off) splits the charge with the pages, and
/// [`into_raw`](Self::into_raw) ends the charge (the owner no longer holds
/// the pins once a bio does).
///
/// **Dropped unconsumed**, a run cannot release itself safely (the drop may
/// run anywhere, and a `no_std` drop cannot fail loudly): it reports
/// [`Warning::HeldRunDropped`] through the embedder's warn hook and leaks
/// what it holds (and its charge), so the folio stays allocated rather than
/// being freed under a device.
///
/// ```compile_fail
/// # use gupio_pin::*;
/// # fn twice<M: PageOps>(tracker: &Tracker<'_, M>, run: HeldRun<'_, M>) {
/// tracker.release_held(run, false).unwrap();
/// tracker.release_held(run, false).unwrap(); // error: use of moved value
/// # }
/// ```
///
/// ```compile_fail
/// # use gupio_pin::*;
/// # fn copy<M: PageOps>(run: HeldRun<'_, M>) {
/// let again = run.clone(); // error: HeldRun is not Clone
/// # }
/// ```
#[must_use = "a HeldRun holds pins: add it to a bio or release it with Tracker::release_held"]
pub struct HeldRun<'a, M: PageOps + ?Sized> {
    tracker: Tracker<'a, M>,
    folio: FolioRef<'a>,
    first: Pfn,
    pages: usize,
    kind: GrabKind,
    /// The account charged for the run, if any.
    account: Option<&'a PinAccount>,
    /// Each page is charged `1 << charge_shift` units.
    charge_shift: u8,
}

impl<'a, M: PageOps + ?Sized> HeldRun<'a, M> {
    /// A run the tracker has just grabbed.
    pub(crate) fn new(
        tracker: Tracker<'a, M>,
        folio: FolioRef<'a>,
        first: Pfn,
        pages: usize,
        kind: GrabKind,
        account: Option<&'a PinAccount>,
        charge_shift: u8,
    ) -> Self {
        Self {
            tracker,
            folio,
            first,
            pages,
            kind,
            account,
            charge_shift,
        }
    }

    /// The run's first page.
    #[inline]
    #[must_use]
    pub fn first(&self) -> Pfn {
        self.first
    }

    /// How many pages the run holds (at least one).
    #[inline]
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The run's pages as a range.
    #[inline]
    pub fn range(&self) -> PageRange {
        // The pages lie inside one folio of the memory map: encodable.
        PageRange::inside_folio(self.first, self.pages)
    }

    /// The folio the run belongs to.
    #[inline]
    pub fn folio(&self) -> FolioRef<'a> {
        self.folio
    }

    /// The tracker that grabbed the run (and releases it).
    #[inline]
    pub fn tracker(&self) -> Tracker<'a, M> {
        self.tracker
    }

    /// Whether the run holds pins or plain references.
    #[inline]
    pub fn kind(&self) -> GrabKind {
        self.kind
    }

    /// The origin a bio records for these pages.
    #[inline]
    pub fn origin(&self) -> Origin {
        self.kind.origin()
    }

    /// The account the run is charged to, if any.
    #[inline]
    pub fn account(&self) -> Option<&'a PinAccount> {
        self.account
    }

    /// The [`ACCOUNT_UNIT`](crate::ACCOUNT_UNIT)s the run is charged (0 if
    /// it is not charged).
    #[inline]
    pub fn charged(&self) -> usize {
        self.account.map_or(0, |_| self.pages << self.charge_shift)
    }

    /// Splits the run at page `at`: `self` keeps the first `at` pages, the
    /// returned run holds the rest, each page's pin with its page. `None`
    /// (and `self` unchanged) unless `0 < at < self.pages()`.
    ///
    /// ```
    /// # use gupio_pfn::{PageGeometry, Pfn};
    /// # use gupio_pin::*;
    /// # use gupio_pin::doc_fixtures::Identity;
    /// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
    /// let t = Tracker::new(&m);
    /// let mut runs = t.pin_user_pages(&Identity, UserAddr::new(0), 4, GupFlags::WRITE)?;
    /// let mut run = runs.next().unwrap()?;
    /// let tail = run.split_off(1).unwrap();
    /// assert_eq!((run.pages(), tail.first(), tail.pages()), (1, Pfn::new(1), 3));
    /// t.release_held(tail, false)?;
    /// t.release_held(run, false)?;
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().pincount(), 0);
    /// # Ok::<(), PinError>(())
    /// ```
    pub fn split_off(&mut self, at: usize) -> Option<Self> {
        if at == 0 || at >= self.pages {
            return None;
        }
        let first = self.first.checked_add(at)?;
        // The charge is per page: it splits with the pages.
        let tail = Self::new(
            self.tracker,
            self.folio,
            first,
            self.pages - at,
            self.kind,
            self.account,
            self.charge_shift,
        );
        self.pages = at;
        Some(tail)
    }

    /// Hands the pins (or references) over to the caller, who becomes
    /// responsible for releasing exactly `range` with `origin` once, for
    /// example by recording it in a bio that the completion path releases
    /// (Linux's `BIO_PAGE_PINNED`), or with [`Tracker::release_range`].
    ///
    /// This is the hand-over a bio builder makes; code that merely wants
    /// the run gone calls [`Tracker::release_held`].
    ///
    /// A charged run is uncharged here: the pins leave the owner's hands
    /// (a bio releases them at completion). An owner that keeps holding
    /// long-term pinned pages while a bio uses them keeps the run and adds
    /// its pages to the bio as borrowed instead.
    pub fn into_raw(self) -> (PageRange, Origin) {
        let parts = (self.range(), self.origin());
        let (tracker, account, units) = (self.tracker, self.account, self.charged());
        core::mem::forget(self);
        if let Some(account) = account {
            // Only a stray uncharge elsewhere can make this fail; the warn
            // hook hears of it, and the hand-over itself stands.
            let _ = tracker.uncharge(account, units);
        }
        parts
    }

    /// Releases the run through its tracker, consuming it, then gives its
    /// charge back.
    #[inline]
    pub(crate) fn release(self, make_dirty: bool) -> Result<(), PinError> {
        let (tracker, folio, pages, kind) = (self.tracker, self.folio, self.pages, self.kind);
        let (account, units) = (self.account, self.charged());
        core::mem::forget(self);
        if let Some(account) = account {
            return release_charged(tracker, folio, pages, kind, make_dirty, account, units);
        }
        // The uncharged release (every short-term pin) is exactly what it
        // was before accounting existed: no result is kept across a call.
        tracker.release_held_parts(folio, pages, kind, make_dirty)
    }
}

/// Releases a charged run's pages, then gives its charge back; the
/// release's own error, if any, comes first. Out of line, off the path of
/// uncharged runs.
#[inline(never)]
fn release_charged<'a, M: PageOps + ?Sized>(
    tracker: Tracker<'a, M>,
    folio: FolioRef<'a>,
    pages: usize,
    kind: GrabKind,
    make_dirty: bool,
    account: &PinAccount,
    units: usize,
) -> Result<(), PinError> {
    let released = tracker.release_held_parts(folio, pages, kind, make_dirty);
    let uncharged = tracker.uncharge(account, units);
    released.and(uncharged)
}

impl<M: PageOps + ?Sized> Drop for HeldRun<'_, M> {
    fn drop(&mut self) {
        // Leak rather than release: whoever dropped the run may still let a
        // device use its pages, and a release here could free them under
        // it. The warn hook makes the bug visible.
        self.tracker.ops().warn(Warning::HeldRunDropped {
            pfn: self.first,
            pages: u64::try_from(self.pages).unwrap_or(u64::MAX),
            origin: self.origin(),
        });
    }
}

impl<M: PageOps + ?Sized> fmt::Debug for HeldRun<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldRun")
            .field("first", &self.first)
            .field("pages", &self.pages)
            .field("origin", &self.origin())
            .field("folio", &self.folio.head())
            .finish()
    }
}

#[cfg(test)]
mod tests;
