//! Moving a window (a [`BvecIter`] and its sector) through a bvec table:
//! the steps a `Bio` and the parts split off it share.

use crate::bvec::BioVec;
use crate::error::BioError;
use crate::iter::BvecIter;
use crate::limits::BioLimits;
use crate::op::BioOp;
use crate::sector::{Sector, SectorCount, SECTOR_SHIFT, SECTOR_SIZE};

/// Splits the window `iter` after `sectors` sectors: returns the front
/// window and the rest, or the error, with `iter` itself untouched.
pub(crate) fn split(
    iter: BvecIter,
    bvecs: &[BioVec],
    op: BioOp,
    limits: &BioLimits,
    sectors: SectorCount,
) -> Result<(BvecIter, BvecIter), BioError> {
    let bio_sectors = iter.size() >> SECTOR_SHIFT;
    if sectors.0 == 0 || sectors.0 >= bio_sectors {
        return Err(BioError::SplitOutOfRange {
            sectors: sectors.0,
            bio_sectors,
        });
    }
    let block_sectors = limits.block_sectors();
    if sectors.0 % block_sectors != 0 {
        return Err(BioError::SplitUnaligned {
            sectors: sectors.0,
            block_sectors,
        });
    }
    // sectors < bio_sectors <= u32::MAX >> 9, so the bytes fit.
    let bytes = sectors.0 << SECTOR_SHIFT;
    let mut rest = iter;
    advance(&mut rest, bvecs, op, bytes)?;
    let mut front = iter;
    front.set_size(bytes);
    Ok((front, rest))
}

/// Moves the window `iter` forward by `bytes`, and its sector by
/// `bytes >> 9`, through the table of a bio of operation `op` (without data
/// pages only the size and the sector move).
///
/// # Errors
/// [`BioError::NotSectorMultiple`] or [`BioError::SectorOverflow`], with
/// nothing moved; [`BioError::AdvancePastEnd`] if `bytes` is more than the
/// window has left: it is then left empty, its iterator and sector moved to
/// the end.
pub(crate) fn advance(
    iter: &mut BvecIter,
    bvecs: &[BioVec],
    op: BioOp,
    bytes: u32,
) -> Result<(), BioError> {
    if bytes % SECTOR_SIZE != 0 {
        return Err(BioError::NotSectorMultiple { bytes });
    }
    let sector = sector_after(
        iter.sector(),
        SectorCount::from_bytes(bytes.min(iter.size())),
    )?;
    let result = if op.has_data() {
        iter.advance(bvecs, bytes)
    } else {
        iter.advance_no_data(bytes)
    };
    iter.set_sector(sector);
    result
}

/// Moves the window `iter` back by `bytes`, and its sector with it: the
/// inverse of [`advance`]. At most `limit` bytes when given; a window over
/// data pages also stops at the start of the table.
///
/// # Errors
/// [`BioError::NotSectorMultiple`], [`BioError::SectorOverflow`] (below
/// sector 0), [`BioError::RewindPastStart`], [`BioError::SizeOverflow`],
/// checked in that order; the window is unchanged.
pub(crate) fn rewind(
    iter: &mut BvecIter,
    bvecs: &[BioVec],
    op: BioOp,
    bytes: u32,
    limit: Option<u32>,
) -> Result<(), BioError> {
    if bytes % SECTOR_SIZE != 0 {
        return Err(BioError::NotSectorMultiple { bytes });
    }
    let sectors = SectorCount::from_bytes(bytes);
    let sector = iter
        .sector()
        .checked_sub(sectors)
        .ok_or(BioError::SectorOverflow {
            sector: iter.sector().0,
            sectors: sectors.0,
        })?;
    if let Some(available) = limit.filter(|&available| bytes > available) {
        return Err(BioError::RewindPastStart {
            requested: bytes,
            available,
        });
    }
    if op.has_data() {
        iter.rewind(bvecs, bytes)?;
    } else {
        let size = iter
            .size()
            .checked_add(bytes)
            .ok_or(BioError::SizeOverflow {
                size: iter.size(),
                len: bytes,
            })?;
        iter.set_size(size);
    }
    iter.set_sector(sector);
    Ok(())
}

/// The sector `sectors` on from `sector`.
///
/// # Errors
/// [`BioError::SectorOverflow`] past `u64::MAX`.
pub(crate) fn sector_after(sector: Sector, sectors: SectorCount) -> Result<Sector, BioError> {
    sector.checked_add(sectors).ok_or(BioError::SectorOverflow {
        sector: sector.0,
        sectors: sectors.0,
    })
}
