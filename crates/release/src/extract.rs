//! Building a bio from a user buffer (Linux's `iov_iter_extract_pages` +
//! `bio_iov_iter_get_pages`): pin the pages run by run, add each folio run
//! as one multi-page bvec holding one pin per page, hand back what did not
//! fit.

use core::fmt;

use gupio_bio::{Added, Bio, BioError, BioVec, BvecStorage};
use gupio_pin::{AddressSpace, GupFlags, HeldRun, PageOps, PageRange, Tracker, UserAddr};

use crate::ReleaseError;

/// A run [`add_held_run`] could not add: the bio's reason, and the run,
/// still holding its pins, for the caller to release or add elsewhere.
pub struct RunRefused<'a, M: PageOps + ?Sized> {
    /// Why the bio refused the run's bytes.
    pub error: BioError,
    /// The run, unchanged.
    pub run: HeldRun<'a, M>,
}

impl<M: PageOps + ?Sized> fmt::Debug for RunRefused<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunRefused")
            .field("error", &self.error)
            .field("run", &self.run)
            .finish()
    }
}

/// Adds the bytes `[offset, offset + len)` of a held run to `bio` as one
/// bvec of the run's origin ([`Origin::Pinned`](gupio_pfn::Origin::Pinned)
/// for a pin), handing the run's pins over to the bio: the completion path
/// releases them (`release_pages`). `offset` is below the page size and the
/// bytes end in the run's last page, so every page the bvec spans holds
/// exactly the one pin the run took for it. A fragment that merges into
/// the bvec before it inside a page that bvec already pins has its
/// duplicate pin dropped at once (one pin per page per bio).
///
/// # Errors
/// The bio's refusal, with the run handed back unchanged in
/// [`RunRefused`]: any [`Bio::add_bvec`] error (full, a size limit,
/// misaligned), or [`BioError::PastPageRun`] if the bytes do not lie inside
/// the run or leave its last page untouched.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, Sector};
/// use gupio_pfn::{PageGeometry, Pfn};
/// use gupio_pin::*;
/// use gupio_release::{add_held_run, release_pages, AnyWarning};
/// # use gupio_pin::doc_fixtures::Identity;
/// let map = ArrayMemoryMap::<8, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::try_new(3).unwrap()).unwrap();
/// let tracker = Tracker::new(&map);
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let mut runs = tracker.pin_user_pages(&Identity, UserAddr::new(0x1000), 2, GupFlags::WRITE).unwrap();
/// let run = runs.next().unwrap().unwrap(); // pages 1 and 2, one pin update
/// add_held_run(&mut bio, run, 0, 8192).unwrap();
/// assert_eq!((bio.vcnt(), bio.size()), (1, 8192));
/// release_pages(&tracker, &bio, true).unwrap();
/// assert_eq!(map.stats().in_flight(), 0);
/// ```
#[inline(always)]
pub fn add_held_run<'a, S, M>(
    bio: &mut Bio<S>,
    run: HeldRun<'a, M>,
    offset: u32,
    len: u32,
) -> Result<(), RunRefused<'a, M>>
where
    S: BvecStorage,
    M: PageOps + ?Sized,
{
    let tracker = run.tracker();
    let added = if run.pages() == 1 {
        // The common small-page case: the bio's single-page entry point
        // checks that the bytes lie in the page.
        bio.add_page(run.first(), len, offset, run.origin())
            .map_err(|error| error.error())
    } else {
        let page_size = bio.geometry().size_u64();
        let run_bytes = u64::try_from(run.pages())
            .unwrap_or(u64::MAX)
            .saturating_mul(page_size);
        let end = u64::from(offset) + u64::from(len);
        if u64::from(offset) < page_size && end <= run_bytes && end + page_size > run_bytes {
            bio.add_bvec(BioVec::new(run.first(), run.origin(), len, offset))
                .map_err(|error| error.error())
        } else {
            Err(BioError::PastPageRun {
                offset,
                len,
                run_bytes,
            })
        }
    };
    match added {
        Ok(added) => {
            let (_, origin) = run.into_raw();
            if added.duplicate().is_some() {
                drop_duplicate(&tracker, added, origin);
            }
            Ok(())
        }
        Err(error) => Err(RunRefused { error, run }),
    }
}

#[cold]
/// Drops the pin (or reference) a merge reported as a duplicate: the bio
/// already holds one on that page. A failure was already warned by the
/// tracker; the bio's own pin is unaffected.
fn drop_duplicate<M: PageOps + ?Sized>(
    tracker: &Tracker<'_, M>,
    added: Added,
    origin: gupio_pfn::Origin,
) {
    if let Some((page, duplicate)) = added.duplicate() {
        debug_assert_eq!(duplicate, origin);
        let _ = tracker.release_range(PageRange::single(page), duplicate, false);
    }
}

/// Pins the user range `[start, start + len)` of `space` and adds it to
/// `bio` as [`Origin::Pinned`](gupio_pfn::Origin::Pinned) bvecs; returns
/// the bytes added.
///
/// The range is pinned run by run ([`Tracker::pin_user_pages`]): each folio
/// run is one update of its folio's counts and one multi-page bvec (split
/// only where the bio's maximum segment size demands it), so a 2 MiB folio
/// costs one atomic at pin and one at release. `flags` are the caller's GUP
/// flags: pass [`GupFlags::WRITE`] for a read from the device (the device
/// writes the user pages). The bio takes exactly one pin per page per
/// bvec: a fragment that merges inside a page the bio already pins has its
/// extra pin dropped at once. Like Linux's `bio_iov_iter_get_pages`, a
/// short result is not an error: when the bio fills up or a page cannot be
/// pinned after some bytes were added, the bytes added so far are returned
/// and every pin not handed to the bio is dropped. The caller submits what
/// was added and continues with a new bio.
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
/// use gupio_release::{add_user_range, release_pages, AnyWarning};
/// // User address N * 4096 maps pfn N.
/// use gupio_pin::doc_fixtures::Identity;
/// let map = ArrayMemoryMap::<8, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::try_new(3).unwrap()).unwrap();
/// let tracker = Tracker::new(&map);
/// let mut table = heapless::Vec::<_, 4>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// // 3 KiB into page 1, 6 KiB long: page 1's last KiB, then page 2 and page 3's first KiB.
/// let added = add_user_range(&tracker, &Identity, &mut bio, UserAddr::new(0x1c00), 6144,
///                            GupFlags::WRITE).unwrap();
/// assert_eq!(added, 6144);
/// assert_eq!(bio.vcnt(), 1, "one folio run: one bvec");
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
    let page_size = bio.geometry().size();
    let mut offset = start.get() & (page_size - 1);
    let nr_pages = (offset + len).div_ceil(page_size);
    let runs = tracker
        .pin_user_pages(space, start, nr_pages, flags)
        .map_err(|error| ReleaseError::Extract { pfn: None, error })?;
    let max_segment = usize::try_from(bio.limits().max_segment_size()).unwrap_or(usize::MAX);
    let mut added = 0usize;
    for run in runs {
        let mut run = match run {
            Ok(run) => run,
            Err(error) if added == 0 => return Err(ReleaseError::Extract { pfn: None, error }),
            // A page past the first failed: the caller submits what was
            // added and meets the failure again with its next bio.
            Err(_) => break,
        };
        // The bytes of this run inside the range.
        let mut bytes = (run.pages() * page_size - offset).min(len - added);
        if bytes <= max_segment {
            // The whole run is one bvec: the common case.
            let (in_page, chunk_len) = segment(offset, bytes);
            if let Err(refused) = add_held_run(bio, run, in_page, chunk_len) {
                release_refused(tracker, refused.run, None);
                return short(added, refused.error);
            }
            added += bytes;
            offset = 0;
            if added == len {
                break;
            }
            continue;
        }
        loop {
            // A segment ends on a page boundary unless it ends the run's
            // bytes; the segment limit is at least one page.
            let chunk = if bytes <= max_segment {
                bytes
            } else {
                (offset + max_segment) / page_size * page_size - offset
            };
            let chunk_pages = (offset + chunk).div_ceil(page_size);
            let rest = run.split_off(chunk_pages);
            let (in_page, chunk_len) = segment(offset, chunk);
            if let Err(refused) = add_held_run(bio, run, in_page, chunk_len) {
                // Full or a limit: drop the pins the bio did not take.
                release_refused(tracker, refused.run, rest);
                return short(added, refused.error);
            }
            added += chunk;
            bytes -= chunk;
            offset = 0;
            match rest {
                Some(tail) if bytes > 0 => run = tail,
                Some(tail) => {
                    // Cannot happen (the range covers every pinned page),
                    // but a run is never dropped unreleased.
                    let _ = tracker.release_held(tail, false);
                    break;
                }
                None => break,
            }
        }
        if added == len {
            break;
        }
    }
    Ok(added)
}

/// A segment's offset in its first page and its length as the bio takes
/// them. Both fit a `u32`: the offset is below the page size and the length
/// at most the bio's `u32` segment limit.
fn segment(offset: usize, len: usize) -> (u32, u32) {
    (
        u32::try_from(offset).unwrap_or(u32::MAX),
        u32::try_from(len).unwrap_or(u32::MAX),
    )
}

/// What `add_user_range` returns when the bio refused a segment after
/// `added` bytes: a short count, or the bio's error if nothing was added.
fn short(added: usize, error: BioError) -> Result<usize, ReleaseError> {
    if added == 0 {
        Err(ReleaseError::Build { error })
    } else {
        Ok(added)
    }
}

/// Releases a run the bio refused, and the rest of its folio run. Failures
/// were warned by the tracker.
fn release_refused<M: PageOps + ?Sized>(
    tracker: &Tracker<'_, M>,
    refused: HeldRun<'_, M>,
    rest: Option<HeldRun<'_, M>>,
) {
    let _ = tracker.release_held(refused, false);
    if let Some(rest) = rest {
        let _ = tracker.release_held(rest, false);
    }
}
