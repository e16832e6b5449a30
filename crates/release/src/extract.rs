//! Building a bio from a user buffer (Linux's `iov_iter_extract_pages` +
//! `bio_iov_iter_get_pages`): pin the pages, add them as pinned, keep one
//! pin per page, hand back what did not fit.

use gupio_bio::{AddError, Bio, BvecStorage};
use gupio_pfn::{Origin, Pfn};
use gupio_pin::{AddressSpace, GupFlags, PageOps, Tracker, UserAddr};

use crate::ReleaseError;

/// Pages pinned per call into the address space.
const BATCH: usize = 16;

/// Pins the user range `[start, start + len)` of `space` and adds it to
/// `bio` as [`Origin::Pinned`] fragments; returns the bytes added.
///
/// `flags` are the caller's GUP flags: pass [`GupFlags::WRITE`] for a read
/// from the device (the device writes the user pages). The bio takes
/// exactly one pin per page per bvec: a fragment that merges inside a page
/// the bio already pins has its extra pin dropped at once. Like Linux's
/// `bio_iov_iter_get_pages`, a short result is not an error: when the bio
/// fills up or a page cannot be pinned after some bytes were added, the
/// bytes added so far are returned and every pin not handed to the bio is
/// dropped. The caller submits what was added and continues with a new bio.
///
/// # Errors
/// Only when nothing was added: [`ReleaseError::Extract`] if the first page
/// could not be pinned (a fault, a bad flag combination, ...), or
/// [`ReleaseError::Build`] if the bio refused the first fragment (full,
/// misaligned, a size limit). The bio and the page counters are then as
/// they were.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
/// use gupio_pfn::{PageGeometry, Pfn};
/// use gupio_pin::*;
/// use gupio_release::{add_user_range, release_pages};
/// // User address N * 4096 maps pfn N.
/// struct Identity;
/// impl AddressSpace for Identity {
///     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
///     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
///         Ok(Some(Mapping::new(Pfn::new(a.get() >> 12), MappingFlags::WRITABLE)))
///     }
///     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
/// }
/// let map = ArrayMemoryMap::<8>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::try_new(3).unwrap()).unwrap();
/// let tracker = Tracker::new(&map);
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// // 3 KiB into page 1, 6 KiB long: page 1's last KiB, then page 2 and page 3's first KiB.
/// let added = add_user_range(&tracker, &Identity, &mut bio, UserAddr::new(0x1c00), 6144,
///                            GupFlags::WRITE).unwrap();
/// assert_eq!(added, 6144);
/// assert_eq!(bio.vcnt(), 1, "contiguous frames merge into one bvec");
/// assert_eq!(map.counters(Pfn::new(0)).unwrap().pincount(), 3);
/// release_pages(&tracker, &bio, true).unwrap();
/// assert_eq!(map.counters(Pfn::new(0)).unwrap().pincount(), 0);
/// ```
pub fn add_user_range<S, M, A>(
    tracker: &Tracker<'_, M>,
    space: &A,
    bio: &mut Bio<S>,
    start: UserAddr,
    len: usize,
    flags: GupFlags,
) -> Result<usize, ReleaseError>
where
    S: BvecStorage,
    M: PageOps + ?Sized,
    A: AddressSpace + ?Sized,
{
    let geometry = bio.geometry();
    let page_size = geometry.size();
    let mut added = 0usize;
    let mut addr = start;
    let mut pages = [Pfn::ZERO; BATCH];
    while added < len {
        let remaining = len - added;
        let in_page = addr.get() & (page_size - 1);
        // Each page takes at most one new bvec: pinning no more pages than
        // the bio has free slots means every pin is added, not dropped
        // again. A full bio may still merge a page, so it tries one.
        let free = bio.max_vecs().saturating_sub(bio.vcnt()).max(1);
        let needed = (in_page + remaining)
            .div_ceil(page_size)
            .min(BATCH)
            .min(free);
        let pinned = match tracker.pin_user_pages(space, addr, flags, &mut pages[..needed]) {
            Ok(0) => break,
            Ok(pinned) => pinned,
            Err(error) if added == 0 => return Err(ReleaseError::Extract { pfn: None, error }),
            Err(_) => break,
        };
        for (i, &pfn) in pages[..pinned].iter().enumerate() {
            let offset = addr.get() & (page_size - 1);
            let fragment = (page_size - offset).min(len - added);
            match add_fragment(tracker, bio, pfn, fragment, offset) {
                Ok(()) => {
                    added += fragment;
                    // Cannot wrap: pin_user_pages resolved this page.
                    addr = UserAddr::new(addr.get().wrapping_add(fragment));
                }
                Err(error) => {
                    // The bio is full or refused the fragment: drop the pins
                    // it did not take.
                    drop_pins(tracker, &pages[i..pinned]);
                    return if added == 0 {
                        Err(ReleaseError::Build {
                            error: error.error(),
                        })
                    } else {
                        Ok(added)
                    };
                }
            }
        }
        if pinned < needed {
            // The address space stopped short (a fault past the first page).
            break;
        }
    }
    Ok(added)
}

/// Adds one pinned fragment, dropping a duplicate pin the bio reports.
fn add_fragment<S, M>(
    tracker: &Tracker<'_, M>,
    bio: &mut Bio<S>,
    pfn: Pfn,
    len: usize,
    offset: usize,
) -> Result<(), AddError>
where
    S: BvecStorage,
    M: PageOps + ?Sized,
{
    // Both fit a u32: they are at most one page.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    let offset = u32::try_from(offset).unwrap_or(u32::MAX);
    let added = bio.add_page(pfn, len, offset, Origin::Pinned)?;
    if let Some((page, origin)) = added.duplicate() {
        // The bio already holds this page's pin: drop the extra one now.
        // A failure was already warned by the tracker; the bio's own pin
        // is unaffected.
        let _ = tracker.release_range(gupio_pin::PageRange::single(page), origin, false);
    }
    Ok(())
}

/// Drops pins the bio did not take. Failures are warned by the tracker.
fn drop_pins<M: PageOps + ?Sized>(tracker: &Tracker<'_, M>, pages: &[Pfn]) {
    let _ = tracker.unpin_pages(pages);
}
