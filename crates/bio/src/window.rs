//! Moving a window (a [`BvecIter`] and its sector) through a bvec table:
//! the steps a `Bio` and the parts split off it share.

use crate::bvec::BioVec;
use crate::error::BioError;
use crate::iter::BvecIter;
use crate::limits::BioLimits;
use crate::op::BioOp;
use crate::sector::{SectorCount, SECTOR_SHIFT};

/// Splits the window of `iter` after `sectors` sectors: returns the front
/// window and the rest, or the error, with `iter` itself untouched.
pub(crate) fn split_iter(
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
    let rest_sector = iter
        .sector()
        .checked_add(sectors)
        .ok_or(BioError::SectorOverflow {
            sector: iter.sector().0,
            sectors: sectors.0,
        })?;
    let mut front = iter;
    front.set_size(bytes);
    let mut rest = iter;
    if op.has_data() {
        rest.advance(bvecs, bytes)?;
    } else {
        rest.advance_no_data(bytes)?;
    }
    rest.set_sector(rest_sector);
    Ok((front, rest))
}
