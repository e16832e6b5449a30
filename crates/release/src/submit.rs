//! Ownership in types: a built bio is consumed by submission, a submitted
//! bio by completion, a completed bio by release.

use gupio_bio::{Bio, BioError, BioStatus, BvecStorage};
use gupio_pin::{PageOps, Tracker};

use crate::{
    check_pages_dirty, release_pages, DeferredFull, DeferredList, ReleaseError, ReleaseStats, Warn,
};

/// A bio handed to a device: its pages may be under DMA. Only
/// [`complete`](Self::complete) gets the bio back, so nothing can release
/// its pages while the device may still touch them.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
/// use gupio_release::SubmittedBio;
/// let mut table = heapless::Vec::<_, 2>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(8), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(3), 4096, 0, Origin::Borrowed).unwrap();
/// let submitted = SubmittedBio::submit(bio).map_err(|(_, e)| e)?;
/// assert_eq!(submitted.bio().size(), 4096);
/// let done = submitted.complete(BioStatus::Ok);
/// assert!(done.status().is_ok());
/// # Ok::<(), gupio_bio::BioError>(())
/// ```
#[derive(Debug)]
#[must_use = "a submitted bio must be completed, or its pages are never released"]
pub struct SubmittedBio<S> {
    bio: Bio<S>,
}

/// A bio the device has finished with: its pages may be released.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, Tracker};
/// use gupio_release::AnyWarning;
/// use gupio_release::SubmittedBio;
/// let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
/// let tracker = Tracker::new(&map);
/// tracker.pin_page(Pfn::new(0)).unwrap();
/// let mut table = heapless::Vec::<_, 1>::new();
/// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
/// let done = SubmittedBio::submit(bio).unwrap().complete(BioStatus::Ok);
/// let released = done.release(&tracker, true);
/// assert_eq!(released.result.unwrap().unpinned, 1);
/// ```
#[derive(Debug)]
#[must_use = "a completed bio must be released, or its pages leak"]
pub struct CompletedBio<S> {
    bio: Bio<S>,
}

/// What [`CompletedBio::release`] gives back: the storage, for reuse, and
/// the outcome. Pages that could be released were released even when
/// `result` is an error.
#[derive(Debug)]
pub struct Released<S> {
    /// The bvec storage the bio was built over.
    pub storage: S,
    /// What was released, or the first failure.
    pub result: Result<ReleaseStats, ReleaseError>,
}

/// How a direct-I/O read's completion ended; see
/// [`CompletedBio::complete_dio_read`].
#[derive(Debug)]
pub enum DioRead<S> {
    /// Every page was still dirty: released at once.
    Released(Released<S>),
    /// Writeback cleaned a page meanwhile: queued for
    /// [`release_deferred`] in process context.
    Deferred,
}

impl<S: BvecStorage> SubmittedBio<S> {
    /// Submits `bio`: checks it ([`Bio::validate`]) and takes it.
    ///
    /// # Errors
    /// The bio and the [`BioError`] that refused it: the caller still owns
    /// the bio and its pages.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Sector};
    /// use gupio_release::SubmittedBio;
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let empty = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let (_bio, error) = SubmittedBio::submit(empty).unwrap_err();
    /// assert!(matches!(error, BioError::ZeroLength));
    /// ```
    #[allow(clippy::result_large_err)] // the bio is handed back by value on purpose
    pub fn submit(bio: Bio<S>) -> Result<Self, (Bio<S>, BioError)> {
        match bio.validate() {
            Ok(()) => Ok(Self { bio }),
            Err(error) => Err((bio, error)),
        }
    }

    /// The bio, for the driver to read its segments.
    pub fn bio(&self) -> &Bio<S> {
        &self.bio
    }

    /// Moves the bio's iterator past `bytes` the device has done (a
    /// partial completion).
    ///
    /// # Errors
    /// [`BioError`] if `bytes` is past the end (the iterator is left empty).
    ///
    /// ```
    /// # use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// # let mut table = heapless::Vec::<_, 1>::new();
    /// # let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// # let _ = bio.add_page(Pfn::new(1), 1024, 0, Origin::Borrowed).unwrap();
    /// let mut submitted = gupio_release::SubmittedBio::submit(bio).unwrap();
    /// submitted.advance(512).unwrap();
    /// assert_eq!(submitted.bio().iter().size(), 512);
    /// # let _ = submitted.complete(gupio_bio::BioStatus::Ok);
    /// ```
    pub fn advance(&mut self, bytes: u32) -> Result<(), BioError> {
        self.bio.advance(bytes)
    }

    /// The device is done: records `status` and hands the bio on for release.
    ///
    /// ```
    /// # use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
    /// # let mut table = heapless::Vec::<_, 1>::new();
    /// # let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// # let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Borrowed).unwrap();
    /// let done = gupio_release::SubmittedBio::submit(bio).unwrap().complete(BioStatus::Medium);
    /// assert_eq!(done.status(), BioStatus::Medium);
    /// ```
    ///
    /// Completing twice does not compile: the first call consumed the bio.
    ///
    /// ```compile_fail
    /// # use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
    /// # let mut table = heapless::Vec::<_, 1>::new();
    /// # let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// # let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Borrowed).unwrap();
    /// let submitted = gupio_release::SubmittedBio::submit(bio).unwrap();
    /// let first = submitted.complete(BioStatus::Ok);
    /// let second = submitted.complete(BioStatus::Ok); // no: moved
    /// ```
    pub fn complete(mut self, status: BioStatus) -> CompletedBio<S> {
        self.bio.set_status(status);
        CompletedBio { bio: self.bio }
    }
}

impl<S: BvecStorage> CompletedBio<S> {
    /// The status the device reported.
    pub fn status(&self) -> BioStatus {
        self.bio.status()
    }

    /// The bio, for reading what the device delivered.
    pub fn bio(&self) -> &Bio<S> {
        &self.bio
    }

    /// Releases every page by its origin ([`release_pages`]) and gives the
    /// storage back. With `mark_dirty`, pages not yet dirty are dirtied
    /// first (a read the device wrote into).
    ///
    /// ```
    /// # use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
    /// # use gupio_pin::{ArrayMemoryMap, Tracker};
    /// # use gupio_release::AnyWarning;
    /// # let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
    /// # let mut table = heapless::Vec::<_, 1>::new();
    /// # let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// # let _ = bio.add_page(Pfn::new(0), 512, 0, Origin::Borrowed).unwrap();
    /// let done = gupio_release::SubmittedBio::submit(bio).unwrap().complete(BioStatus::Ok);
    /// let released = done.release(&Tracker::new(&map), false);
    /// // Only borrowed pages: nothing to release, known in O(1).
    /// assert_eq!(released.result.unwrap().pages(), 0);
    /// assert_eq!(released.storage.len(), 1, "the table comes back for reuse");
    /// ```
    pub fn release<M: PageOps + Warn + ?Sized>(
        self,
        tracker: &Tracker<'_, M>,
        mark_dirty: bool,
    ) -> Released<S> {
        let result = release_pages(tracker, &self.bio, mark_dirty);
        Released {
            storage: self.bio.into_storage(),
            result,
        }
    }

    /// Completes a direct-I/O read whose pages were dirtied with
    /// [`set_pages_dirty`](crate::set_pages_dirty) before submission
    /// (Linux's `bio_check_pages_dirty`): if every page is still dirty,
    /// release now; if writeback cleaned one meanwhile, queue the bio on
    /// `deferred` for [`release_deferred`], which re-dirties then releases.
    /// Safe in interrupt context: it takes no page lock.
    ///
    /// # Errors
    /// [`DeferredFull`] holding the bio if it had to be deferred and the
    /// list is full: release it with `mark_dirty` where blocking is allowed,
    /// or retry. Nothing is lost.
    ///
    /// ```
    /// # use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
    /// # use gupio_pin::{ArrayMemoryMap, FolioOrder, PageFlags, Tracker, MemoryMap};
    /// # use gupio_release::AnyWarning;
    /// use gupio_release::{set_pages_dirty, release_deferred, DeferredList, DioRead, SubmittedBio};
    /// # let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
    /// # map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    /// let tracker = Tracker::new(&map);
    /// tracker.pin_page(Pfn::new(0)).unwrap();
    /// # let mut table = heapless::Vec::<_, 1>::new();
    /// # let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// # let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
    /// set_pages_dirty(&tracker, &bio).unwrap();
    /// let submitted = SubmittedBio::submit(bio).unwrap();
    /// // Writeback cleans the page while the device writes into it.
    /// map.counters(Pfn::new(0)).unwrap().clear_flags(PageFlags::DIRTY);
    /// let deferred: DeferredList<_, 4> = DeferredList::new();
    /// let done = submitted.complete(BioStatus::Ok);
    /// assert!(matches!(done.complete_dio_read(&tracker, &deferred), Ok(DioRead::Deferred)));
    /// // Later, in process context:
    /// assert_eq!(release_deferred(&deferred, &tracker, |released| assert!(released.result.is_ok())), 1);
    /// assert!(map.counters(Pfn::new(0)).unwrap().flags().contains(PageFlags::DIRTY));
    /// assert_eq!(map.counters(Pfn::new(0)).unwrap().refcount(), 1);
    /// ```
    #[allow(clippy::result_large_err)] // the bio is handed back by value on purpose
    pub fn complete_dio_read<M: PageOps + Warn + ?Sized, const N: usize>(
        self,
        tracker: &Tracker<'_, M>,
        deferred: &DeferredList<CompletedBio<S>, N>,
    ) -> Result<DioRead<S>, DeferredFull<CompletedBio<S>>> {
        match check_pages_dirty(tracker, &self.bio) {
            Ok(true) => Ok(DioRead::Released(self.release(tracker, false))),
            // Some page was cleaned, or could not be checked: let process
            // context re-dirty and release, which reports any failure.
            Ok(false) | Err(_) => deferred.push(self).map(|()| DioRead::Deferred),
        }
    }
}

/// Drains `deferred` in process context: each bio's pages are re-dirtied
/// (locking each page not yet dirty) and released, and `each` gets what
/// [`CompletedBio::release`] gave back. Returns how many bios were handled.
///
/// ```
/// use gupio_release::{release_deferred, DeferredList, CompletedBio};
/// use gupio_pin::{ArrayMemoryMap, Tracker};
/// use gupio_release::AnyWarning;
/// # use gupio_bio::BvecSlice;
/// let map = ArrayMemoryMap::<1, AnyWarning>::new(gupio_pfn::Pfn::new(0));
/// let list: DeferredList<CompletedBio<BvecSlice<'static>>, 2> = DeferredList::new();
/// assert_eq!(release_deferred(&list, &Tracker::new(&map), |_| {}), 0);
/// ```
pub fn release_deferred<S, M, F, const N: usize>(
    deferred: &DeferredList<CompletedBio<S>, N>,
    tracker: &Tracker<'_, M>,
    mut each: F,
) -> usize
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
    F: FnMut(Released<S>),
{
    deferred.drain(|bio| each(bio.release(tracker, true)))
}
