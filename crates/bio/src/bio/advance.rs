//! Moving through a bio: advance, rewind, and splitting off the front.

use super::Bio;
use crate::error::BioError;
use crate::sector::SectorCount;
use crate::split::BioSplit;
use crate::storage::BvecStorage;
use crate::window;

impl<S: BvecStorage> Bio<S> {
    /// Moves the bio forward by `bytes` (`bio_advance`): the iterator moves
    /// across bvecs and the sector by `bytes >> 9`. A bio without data
    /// pages moves only its size and sector.
    ///
    /// # Errors
    /// [`BioError::NotSectorMultiple`] or [`BioError::SectorOverflow`]
    /// (nothing moves); [`BioError::AdvancePastEnd`] if `bytes` is more
    /// than the bio has left: the bio is then left empty, its iterator and
    /// sector moved to the end.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioError, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(100), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// bio.advance(1024)?;
    /// assert_eq!((bio.sector(), bio.size()), (Sector(102), 3072));
    /// assert_eq!(bio.advance(100), Err(BioError::NotSectorMultiple { bytes: 100 }));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn advance(&mut self, bytes: u32) -> Result<(), BioError> {
        window::advance(self.iter.get_mut(), self.storage.as_slice(), self.op, bytes)
    }

    /// Moves the bio back by `bytes` (`bio_rewind`): the inverse of
    /// [`advance`](Self::advance). The owner may rewind to the start of its
    /// table, over bytes it split off earlier.
    ///
    /// # Errors
    /// [`BioError::NotSectorMultiple`], [`BioError::SectorOverflow`] (below
    /// sector 0), [`BioError::RewindPastStart`], [`BioError::SizeOverflow`];
    /// the bio is unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Read, Sector(100), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// bio.advance(1024)?;
    /// bio.rewind(1024)?;
    /// assert_eq!((bio.sector(), bio.size()), (Sector(100), 4096));
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn rewind(&mut self, bytes: u32) -> Result<(), BioError> {
        let iter = self.iter.get_mut();
        // Over data pages the table bounds the rewind; a bio without them
        // may give back what it advanced over.
        let limit = (!self.op.has_data()).then(|| self.total.saturating_sub(iter.size()));
        window::rewind(iter, self.storage.as_slice(), self.op, bytes, limit)
    }

    /// Cuts the first `sectors` sectors off the bio (`bio_split`): returns
    /// them as a [`BioSplit`] that shares the bvec table, and advances this
    /// bio past them. The split part can be iterated, advanced and split
    /// further, but never releases pages: only the owner does, after every
    /// part is gone (the borrow enforces it).
    ///
    /// # Errors
    /// [`BioError::SplitOutOfRange`] for zero sectors or at least all the
    /// sectors the bio has left; [`BioError::SplitUnaligned`] unless
    /// `sectors` is a whole number of logical blocks;
    /// [`BioError::SectorOverflow`]. The bio is unchanged.
    ///
    /// ```
    /// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Pfn, Sector, SectorCount};
    /// let mut table = heapless::Vec::<_, 4>::new();
    /// let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), BioLimits::default());
    /// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Pinned).unwrap();
    /// let front = bio.split(SectorCount(2))?;
    /// assert_eq!((front.sector(), front.size()), (Sector(0), 1024));
    /// assert_eq!((bio.sector(), bio.size()), (Sector(2), 3072));
    /// assert!(bio.is_owner() && !front.is_owner());
    /// # Ok::<(), gupio_bio::BioError>(())
    /// ```
    pub fn split(&self, sectors: SectorCount) -> Result<BioSplit<'_>, BioError> {
        let table = self.storage.as_slice();
        let (front, rest) = window::split(self.iter.get(), table, self.op, &self.limits, sectors)?;
        self.iter.set(rest);
        Ok(BioSplit::new(table, front, self.op, self.limits))
    }
}
