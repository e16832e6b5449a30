//! Fork and pinned pages: [`fork_action`], the rule an embedder's `fork`
//! follows for each present page of a private anonymous mapping.

use gupio_pfn::Pfn;

use crate::{maybe_dma_pinned, MemoryMap, PinError};

/// What a fork does with one present page of a private anonymous mapping
/// of the parent ([`fork_action`]).
///
/// ```
/// use gupio_pin::ForkAction;
/// assert_ne!(ForkAction::Share, ForkAction::Copy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForkAction {
    /// Share the page with the child copy-on-write: a reference for the
    /// child's entry, both entries read-only.
    Share,
    /// The page may be pinned: keep the parent's entry as it is and give
    /// the child a copy of the page now.
    Copy,
}

/// What a fork does with the present page at `pfn` of a private anonymous
/// mapping of the parent: [`ForkAction::Copy`] if a device may hold a pin
/// on it, [`ForkAction::Share`] otherwise (always for the zero page).
///
/// # The hazard
///
/// A classic `fork` shares every private anonymous page between parent and
/// child copy-on-write: both entries become read-only, and whoever writes
/// first gets a copy. If the parent had pinned the page for a device, the
/// parent's next CPU write copies the page away from the parent, so the
/// device keeps reading or writing the old page, now the child's, and the
/// parent never sees the device's data again (or the device never sees the
/// parent's). Linux copies such pages for the child at fork time instead
/// (`folio_needs_cow_for_dma`).
///
/// # The rule an embedder's fork follows
///
/// 1. Hold the lock that excludes GUP on the parent (Linux's mmap write
///    lock; the guard an [`AddressSpace`](crate::AddressSpace) is
///    implemented on) for the whole copy of its page tables, so no pin is
///    taken between the decision and the change of the entry. A pin taken
///    after fork finds the entry write-protected and breaks copy-on-write
///    first (for a write pin), so it pins the parent's own copy.
/// 2. For each present page of a private anonymous mapping, ask this
///    function: [`ForkAction::Share`], share it copy-on-write (a
///    reference for the child's entry, both entries read-only);
///    [`ForkAction::Copy`], leave the parent's entry as it is (still
///    writable, still mapping the pinned page) and give the child a copy of
///    the page's contents in a fresh page. For a large folio that may be
///    pinned, every page of it is copied (into small pages, as Linux does).
/// 3. Shared file mappings are shared as they are; the zero page is mapped
///    in the child as it is (it is never pinned).
///
/// The answer is [`maybe_dma_pinned`]'s: exact for a large folio (its pin
/// count), conservative for a small page, where a reference count of at
/// least [`GUP_PIN_COUNTING_BIAS`](crate::GUP_PIN_COUNTING_BIAS) reads as a
/// pin. A false positive costs one needless copy at fork, never a wrong
/// result; a pinned page is never shared. Linux additionally skips the
/// question for processes that never pinned anything (`MMF_HAS_PINNED`);
/// an embedder can keep such a flag to avoid the false positives.
///
/// Not covered here: a *read* pin taken after fork of a page still shared
/// with the child. Linux unshares the page first (its anonymous-exclusive
/// bit tells it the page is shared); gupio has no such bit, so an embedder
/// that needs read pins coherent with later writes of a forked page breaks
/// copy-on-write before pinning (a pin with
/// [`GupFlags::WRITE`](crate::GupFlags::WRITE) does).
///
/// # Errors
/// [`PinError::NotInMemoryMap`] or [`PinError::CorruptCounters`], as
/// [`maybe_dma_pinned`].
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{fork_action, ArrayMemoryMap, FolioOrder, ForkAction, Tracker};
/// let m = ArrayMemoryMap::<1>::new(Pfn::new(0));
/// let page = Pfn::new(0);
/// m.prepare_folio(page, FolioOrder::SMALL).unwrap();
/// assert_eq!(fork_action(&m, page), Ok(ForkAction::Share));
/// Tracker::new(&m).pin_page(page).unwrap();
/// assert_eq!(fork_action(&m, page), Ok(ForkAction::Copy));
/// ```
pub fn fork_action<M: MemoryMap + ?Sized>(map: &M, pfn: Pfn) -> Result<ForkAction, PinError> {
    Ok(if maybe_dma_pinned(map, pfn)? {
        ForkAction::Copy
    } else {
        ForkAction::Share
    })
}

#[cfg(test)]
mod tests;
