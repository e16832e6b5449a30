//! The tracker's inner loop: the folio-run walk, and taking and dropping
//! references and pins one folio run at a time, with the checks, the warn
//! hook and the accounting around them.

use core::ops::ControlFlow;

use gupio_pfn::Pfn;

use super::{GrabKind, Pages, Tracker};
use crate::counters::{AddRefsError, SubError, GUP_PIN_COUNTING_BIAS};
use crate::{FolioRef, PageFlags, PageOps, PageRange, PinError, Warning};

impl<'a, M: PageOps + ?Sized> Tracker<'a, M> {
    /// Looks up the folio of `pfn`, warning if the map's answer is
    /// inconsistent.
    pub(crate) fn lookup(&self, pfn: Pfn) -> Result<FolioRef<'a>, PinError> {
        match self.ops.folio(pfn) {
            Ok(folio) if folio.contains(pfn) => Ok(folio),
            Ok(_) | Err(PinError::CorruptCounters { .. }) => {
                self.ops.warn(Warning::CorruptFolio { pfn });
                Err(PinError::CorruptCounters { pfn })
            }
            Err(other) => Err(other),
        }
    }

    /// Calls `visit(folio, start, len)` for each folio run of `pages`, in
    /// order, until it breaks. A page whose lookup fails is a run of one.
    pub(super) fn for_each_run(
        &self,
        pages: Pages<'_>,
        mut visit: impl FnMut(Result<FolioRef<'a>, PinError>, usize, usize) -> ControlFlow<()>,
    ) {
        match pages {
            Pages::Array(pfns) => {
                let mut start = 0;
                let mut rest = pfns;
                while let Some((&pfn, tail)) = rest.split_first() {
                    let (folio, len) = match self.lookup(pfn) {
                        Ok(folio) => {
                            let more = tail.iter().take_while(|&&p| folio.contains(p)).count();
                            (Ok(folio), 1 + more)
                        }
                        Err(e) => (Err(e), 1),
                    };
                    if visit(folio, start, len).is_break() {
                        return;
                    }
                    start += len;
                    rest = rest.get(len..).unwrap_or_default();
                }
            }
            Pages::Range(range) => {
                let mut start = 0;
                while start < range.len() {
                    let pfn = range.nth(start);
                    let (folio, len) = match self.lookup(pfn) {
                        // `lookup` checked that the folio contains `pfn`, so
                        // the run has at least one page.
                        Ok(folio) => (Ok(folio), folio.pages_from(pfn).min(range.len() - start)),
                        Err(e) => (Err(e), 1),
                    };
                    if visit(folio, start, len).is_break() {
                        return;
                    }
                    start += len;
                }
            }
        }
    }

    /// Takes a reference or pin on every page, all or nothing, and accounts
    /// the pins once at the end.
    pub(super) fn grab(&self, pages: Pages<'_>, kind: GrabKind) -> Result<(), PinError> {
        let mut pins = 0usize;
        let mut failure = None;
        self.for_each_run(pages, |folio, start, len| {
            match folio.and_then(|folio| self.grab_run(folio, len, kind)) {
                Ok(taken) => {
                    pins += taken;
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some((start, e));
                    ControlFlow::Break(())
                }
            }
        });
        if let Some((done, error)) = failure {
            // Undo the runs before the failure. Not yet accounted, so the
            // release is not accounted either. Its own failures (a bug
            // elsewhere) have been warned about; the caller gets the error
            // that stopped the grab.
            let _ = self.release(pages.prefix(done), kind, false);
            return Err(error);
        }
        if pins > 0 {
            self.ops.pins_acquired(pins);
        }
        Ok(())
    }

    /// Takes `pages` references or pins on `folio` with one checked update
    /// of its refcount (and one of its pin count if it is large and this is
    /// a pin). Returns the pins to account.
    pub(crate) fn grab_run(
        &self,
        folio: FolioRef<'a>,
        pages: usize,
        kind: GrabKind,
    ) -> Result<usize, PinError> {
        let head = folio.head();
        if kind == GrabKind::Pin && self.ops.is_zero_page(head) {
            // Linux 6.5: the zero page is never pinned; nothing to undo later.
            return Ok(0);
        }
        let counters = folio.counters();
        let refs = refs_needed(&folio, pages, kind);
        let overflow = |refcount| PinError::RefcountOverflow {
            pfn: head,
            refcount,
            adding: refs,
        };
        let delta = u32::try_from(refs).map_err(|_| overflow(counters.refcount()))?;
        // A large folio counts the pin exactly as well: one update of both
        // counts (one read-modify-write where they share a word).
        let pins = if kind == GrabKind::Pin && folio.has_pincount() {
            delta
        } else {
            0
        };
        match counters.try_add(delta, pins) {
            Ok(()) => {}
            Err(AddRefsError::Free) => {
                self.ops.warn(Warning::GrabOfFreePage { pfn: head });
                return Err(PinError::PageFree { pfn: head });
            }
            Err(AddRefsError::Overflow(refcount)) => return Err(overflow(refcount)),
        }
        Ok(if kind == GrabKind::Pin { pages } else { 0 })
    }

    /// Releases every run it can and accounts the pins released.
    #[inline]
    pub(super) fn release_and_account(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<(), PinError> {
        self.release_and_count(pages, kind, make_dirty).map(|_| ())
    }

    /// [`release_and_account`](Self::release_and_account), returning the
    /// pins released and accounted (0 for puts and for the zero page).
    #[inline]
    pub(super) fn release_and_count(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        // A range inside one folio (every single-page bvec) is one run:
        // release it without the walk, with the same result.
        if let Pages::Range(range) = pages {
            if let Some(folio) = self.single_run(range) {
                let pins = self.release_run(folio, range.len(), kind, make_dirty)?;
                if pins > 0 {
                    self.ops.pins_released(pins);
                }
                return Ok(pins);
            }
        }
        self.release_and_account_walk(pages, kind, make_dirty)
    }

    /// [`release_and_count`](Self::release_and_count) for pages that
    /// span several folio runs (or that the map answers badly for): the
    /// walk, kept out of line so the one-run case stays small.
    #[inline(never)]
    pub(super) fn release_and_account_walk(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        let (released, result) = self.release(pages, kind, make_dirty);
        if released > 0 {
            self.ops.pins_released(released);
        }
        result.map(|()| released)
    }

    /// The folio holding every page of the non-empty `range`, if the map
    /// answers consistently; otherwise `None`, and the general walk looks
    /// the pages up again and reports (and warns about) what is wrong.
    #[inline]
    pub(super) fn single_run(&self, range: PageRange) -> Option<FolioRef<'a>> {
        if range.is_empty() {
            return None;
        }
        let first = range.first();
        let folio = self.ops.folio(first).ok()?;
        (folio.contains(first) && folio.pages_from(first) >= range.len()).then_some(folio)
    }

    /// Releases every run it can; returns the pins released and the first
    /// error.
    pub(super) fn release(
        &self,
        pages: Pages<'_>,
        kind: GrabKind,
        make_dirty: bool,
    ) -> (usize, Result<(), PinError>) {
        let mut released = 0usize;
        let mut first_error = None;
        self.for_each_run(pages, |folio, _, len| {
            match folio.and_then(|folio| self.release_run(folio, len, kind, make_dirty)) {
                Ok(pins) => released += pins,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            ControlFlow::Continue(())
        });
        (released, first_error.map_or(Ok(()), Err))
    }

    /// Drops `pages` references or pins from `folio` with one checked update
    /// of its refcount (and one of its pin count if it is large and this is
    /// an unpin), dirtying it first if asked. Returns the pins to account.
    pub(crate) fn release_run(
        &self,
        folio: FolioRef<'a>,
        pages: usize,
        kind: GrabKind,
        make_dirty: bool,
    ) -> Result<usize, PinError> {
        let head = folio.head();
        let counters = folio.counters();
        let zero = self.ops.is_zero_page(head);
        if make_dirty && !zero && !counters.flags().contains(PageFlags::DIRTY) {
            // Linux's unpin_user_pages_dirty_lock: lock, mark dirty, unlock.
            // Racing writeback may clean it again: at worst one more
            // writeback of the folio.
            self.ops.lock_folio(folio);
            self.ops.mark_folio_dirty(folio);
            self.ops.unlock_folio(folio);
        }
        if kind == GrabKind::Pin && zero {
            return Ok(0);
        }
        let refs = refs_needed(&folio, pages, kind);
        let large_unpin = kind == GrabKind::Pin && folio.has_pincount();
        // More references than a count can hold are certainly not held.
        let Ok(delta) = u32::try_from(refs) else {
            return Err(self.refuse_release(&folio, pages, refs, kind, counters.refcount()));
        };
        let pins = if large_unpin { delta } else { 0 };
        match counters.try_sub(delta, pins) {
            Ok(0) => self.last_reference_dropped(folio)?,
            Ok(_) => {}
            Err(SubError::Pins { refcount, pincount }) => {
                self.ops.warn(Warning::UnpinWithoutPin {
                    pfn: head,
                    pages: widen(pages),
                    refcount,
                    pincount,
                });
                return Err(PinError::NotPinned { pfn: head });
            }
            Err(SubError::Refs { refcount, pincount }) if large_unpin => {
                // The pins are there but their references are not: nothing
                // changed, and the folio is left alone.
                self.ops.warn(Warning::RefcountBelowPincount {
                    pfn: head,
                    refcount,
                    pincount,
                });
                return Err(PinError::CorruptCounters { pfn: head });
            }
            Err(SubError::Refs { refcount, .. }) => {
                return Err(self.refuse_release(&folio, pages, refs, kind, refcount))
            }
        }
        Ok(if kind == GrabKind::Pin { pages } else { 0 })
    }

    /// Warns about and returns the error for a release of more than is held
    /// (`refcount` is the count seen).
    pub(super) fn refuse_release(
        &self,
        folio: &FolioRef<'a>,
        pages: usize,
        refs: u64,
        kind: GrabKind,
        refcount: u32,
    ) -> PinError {
        let pfn = folio.head();
        match kind {
            GrabKind::Get => {
                self.ops.warn(Warning::PutWithoutReference {
                    pfn,
                    refcount,
                    dropping: refs,
                });
                PinError::NoReference { pfn }
            }
            GrabKind::Pin => {
                self.ops.warn(Warning::UnpinWithoutPin {
                    pfn,
                    pages: widen(pages),
                    refcount,
                    pincount: folio.counters().pincount(),
                });
                PinError::NotPinned { pfn }
            }
        }
    }

    /// The caller's update took the count to zero (and ran the Acquire
    /// fence): free the folio, unless pins remain, which only a bug causes;
    /// then it is leaked rather than freed under a device.
    pub(super) fn last_reference_dropped(&self, folio: FolioRef<'a>) -> Result<(), PinError> {
        if folio.has_pincount() {
            let pincount = folio.counters().pincount();
            if pincount != 0 {
                let pfn = folio.head();
                self.ops.warn(Warning::FreedWhilePinned { pfn, pincount });
                return Err(PinError::CorruptCounters { pfn });
            }
        }
        self.ops.free_folio(folio);
        Ok(())
    }
}

/// The references `pages` gets or pins of `folio` amount to, saturating.
fn refs_needed(folio: &FolioRef<'_>, pages: usize, kind: GrabKind) -> u64 {
    let pages = widen(pages);
    match kind {
        GrabKind::Pin if !folio.has_pincount() => {
            pages.saturating_mul(u64::from(GUP_PIN_COUNTING_BIAS))
        }
        _ => pages,
    }
}

/// A page count as a `u64` (lossless on every supported target).
fn widen(pages: usize) -> u64 {
    u64::try_from(pages).unwrap_or(u64::MAX)
}
