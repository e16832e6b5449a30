//! Moving through a bio: advance, rewind, and splitting off the front.

use super::Bio;
use crate::error::BioError;
use crate::sector::{SectorCount, SECTOR_SIZE};
use crate::split::BioSplit;
use crate::storage::BvecStorage;
use crate::window::split_iter;

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
        if bytes % SECTOR_SIZE != 0 {
            return Err(BioError::NotSectorMultiple { bytes });
        }
        let has_data = self.op.has_data();
        let iter = self.iter.get_mut();
        let moved = SectorCount::from_bytes(bytes.min(iter.size()));
        let sector = iter
            .sector()
            .checked_add(moved)
            .ok_or(BioError::SectorOverflow {
                sector: iter.sector().0,
                sectors: moved.0,
            })?;
        let result = if has_data {
            iter.advance(self.storage.as_slice(), bytes)
        } else {
            iter.advance_no_data(bytes)
        };
        iter.set_sector(sector);
        result
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
        if bytes % SECTOR_SIZE != 0 {
            return Err(BioError::NotSectorMultiple { bytes });
        }
        let has_data = self.op.has_data();
        let total = self.total;
        let iter = self.iter.get_mut();
        let sectors = SectorCount::from_bytes(bytes);
        let sector = iter
            .sector()
            .checked_sub(sectors)
            .ok_or(BioError::SectorOverflow {
                sector: iter.sector().0,
                sectors: sectors.0,
            })?;
        if has_data {
            iter.rewind(self.storage.as_slice(), bytes)?;
        } else {
            let before = total.saturating_sub(iter.size());
            if bytes > before {
                return Err(BioError::RewindPastStart {
                    requested: bytes,
                    available: before,
                });
            }
            iter.set_size(iter.size() + bytes);
        }
        iter.set_sector(sector);
        Ok(())
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
        let (front, rest) = split_iter(self.iter.get(), table, self.op, &self.limits, sectors)?;
        self.iter.set(rest);
        Ok(BioSplit::new(table, front, self.op, self.limits))
    }
}
