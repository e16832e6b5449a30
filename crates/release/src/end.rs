//! The one rule for ending a submitted bio from its completion.

use gupio_bio::{BioStatus, BvecStorage};

use crate::{CompletedBio, Completion, Ending, ReleaseError, SubmittedBio, Warn};

/// What [`SubmittedBio::end`] gives back: the bio, always completed so its
/// pages can be released, and how its completion ended.
#[derive(Debug)]
#[must_use = "an ended bio must be released, or its pages leak"]
pub struct Ended<S> {
    /// The bio, completed with the status in `result`, or with
    /// [`BioStatus::IoError`] when `result` is an error.
    pub bio: CompletedBio<S>,
    /// The status `end_io` runs with, or why the completion did not end
    /// the bio (the bio then carries [`BioStatus::IoError`]).
    pub result: Result<BioStatus, ReleaseError>,
}

impl<S: BvecStorage> SubmittedBio<S> {
    /// Ends a lone bio (one with no chained children) from its interrupt
    /// handler: reports the device's `status` to the bio's `completion` and
    /// completes the bio with the status the completion finished with.
    ///
    /// This is the whole of an embedder's completion glue for a bio that is
    /// not a parent. Every arm gives back a completed bio, so its pages are
    /// released whatever went wrong:
    ///
    /// - the completion finished: the bio carries its final status (the
    ///   first error reported, or [`BioStatus::IoError`] if the status word
    ///   was corrupt, which the completion has warned about already);
    /// - the completion is still waiting for other parts (a child was
    ///   chained, so this was no lone bio): the bio carries
    ///   [`BioStatus::IoError`] and the result is
    ///   [`ReleaseError::Unfinished`]. The completion is left as it is: the
    ///   caller must not also end the bio when a child later finishes it;
    /// - the completion refused the report ([`ReleaseError::NotStarted`],
    ///   or [`ReleaseError::DoubleCompletion`], warned): the bio carries
    ///   [`BioStatus::IoError`] and the result is that error.
    ///
    /// A parent with chained children reports with
    /// [`Completion::complete`] and [`Completion::child_complete`] instead,
    /// and completes its bio when one of them returns
    /// [`Ending::Finished`].
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, Origin, Pfn, Sector};
    /// use gupio_pin::{ArrayMemoryMap, FolioOrder, Tracker};
    /// use gupio_release::{AnyWarning, Completion, SubmittedBio};
    /// let map = ArrayMemoryMap::<1, AnyWarning>::new(Pfn::new(0));
    /// map.prepare_folio(Pfn::new(0), FolioOrder::SMALL)?;
    /// let tracker = Tracker::new(&map);
    /// tracker.pin_page(Pfn::new(0))?;
    /// let mut table = heapless::Vec::<_, 1>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned)?;
    /// let completion = Completion::new();
    /// completion.start()?;
    /// let in_flight = SubmittedBio::submit(bio).map_err(|(_, e)| e)?;
    /// // The device's interrupt: end the bio, then release its pages.
    /// let ended = in_flight.end(&completion, BioStatus::Ok, &map);
    /// assert_eq!(ended.result, Ok(BioStatus::Ok));
    /// assert_eq!(ended.bio.release(&tracker, true).result?.unpinned, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn end<W: Warn + ?Sized>(
        self,
        completion: &Completion,
        status: BioStatus,
        warn: &W,
    ) -> Ended<S> {
        let result = match completion.complete(status, warn) {
            Ok(Ending::Finished(status)) => Ok(status),
            Ok(Ending::Pending) => Err(ReleaseError::Unfinished {
                outstanding: completion.outstanding(),
            }),
            Err(error) => Err(error),
        };
        let bio = self.complete(result.unwrap_or(BioStatus::IoError));
        Ended { bio, result }
    }
}

#[cfg(test)]
mod tests;
