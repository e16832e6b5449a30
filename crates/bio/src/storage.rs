//! Where a bio keeps its bvec table: storage the caller provides.

use crate::bvec::BioVec;

/// Storage for a bio's bvec table (Linux's `bi_io_vec` with `bi_vcnt` and
/// `bi_max_vecs`), provided by the caller so the crate never allocates.
///
/// Implemented for `heapless::Vec<BioVec, N>` (an inline table, like a
/// bio's inline vecs), for [`BvecSlice`] (a `&mut [BioVec]` the caller
/// owns, like a bvec pool allocation), and for `&mut S` of either.
///
/// Contract for other implementations: [`push`](Self::push) appends one
/// bvec to the end of [`as_slice`](Self::as_slice) or hands it back when
/// the storage is full, and [`capacity`](Self::capacity) does not change.
/// A [`Bio`](crate::Bio) never panics if an implementation breaks this, but
/// its iteration may then disagree with what was added.
///
/// ```
/// use gupio_bio::{BioVec, BvecStorage, Origin, Pfn};
/// let mut table = heapless::Vec::<BioVec, 2>::new();
/// let bv = BioVec::new(Pfn::new(1), Origin::Pinned, 512, 0);
/// assert_eq!(table.push(bv), Ok(()));
/// assert_eq!(BvecStorage::capacity(&table), 2);
/// assert_eq!(BvecStorage::as_slice(&table), &[bv]);
/// ```
pub trait BvecStorage {
    /// How many bvecs fit.
    fn capacity(&self) -> usize;

    /// The bvecs stored so far, in order.
    fn as_slice(&self) -> &[BioVec];

    /// The bvecs stored so far, writable.
    fn as_mut_slice(&mut self) -> &mut [BioVec];

    /// Appends `bvec`, or hands it back when the storage is full.
    ///
    /// # Errors
    /// `Err(bvec)` when [`len`](Self::len) has reached
    /// [`capacity`](Self::capacity).
    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec>;

    /// Forgets every bvec, releasing nothing (a `BioVec` holds no reference).
    fn clear(&mut self);

    /// How many bvecs are stored.
    #[inline]
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether no bvec is stored.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N: usize> BvecStorage for heapless::Vec<BioVec, N> {
    #[inline]
    fn capacity(&self) -> usize {
        N
    }

    #[inline]
    fn as_slice(&self) -> &[BioVec] {
        self
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        self
    }

    #[inline]
    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        heapless::Vec::push(self, bvec)
    }

    #[inline]
    fn clear(&mut self) {
        heapless::Vec::clear(self);
    }
}

impl<S: BvecStorage + ?Sized> BvecStorage for &mut S {
    #[inline]
    fn capacity(&self) -> usize {
        (**self).capacity()
    }

    #[inline]
    fn as_slice(&self) -> &[BioVec] {
        (**self).as_slice()
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        (**self).as_mut_slice()
    }

    #[inline]
    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        (**self).push(bvec)
    }

    #[inline]
    fn clear(&mut self) {
        (**self).clear();
    }
}

/// A bvec table in a caller-owned slice: the slice is the capacity, the
/// table is its first [`len`](BvecStorage::len) entries.
///
/// ```
/// use gupio_bio::{Bio, BioLimits, BioOp, BioVec, BvecSlice, Origin, Pfn, Sector};
/// let mut backing = [BioVec::NONE; 16];
/// let mut bio = Bio::new(BvecSlice::new(&mut backing), BioOp::Read, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(5), 4096, 0, Origin::Pinned)?;
/// assert_eq!(bio.vcnt(), 1);
/// # Ok::<(), gupio_bio::AddError>(())
/// ```
#[derive(Debug)]
pub struct BvecSlice<'a> {
    slots: &'a mut [BioVec],
    len: usize,
}

impl<'a> BvecSlice<'a> {
    /// An empty table over `slots`; their current contents are ignored.
    #[inline]
    pub fn new(slots: &'a mut [BioVec]) -> Self {
        Self { slots, len: 0 }
    }
}

impl<'a> From<&'a mut [BioVec]> for BvecSlice<'a> {
    #[inline]
    fn from(slots: &'a mut [BioVec]) -> Self {
        Self::new(slots)
    }
}

impl BvecStorage for BvecSlice<'_> {
    #[inline]
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn as_slice(&self) -> &[BioVec] {
        self.slots.get(..self.len).unwrap_or(&[])
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        self.slots.get_mut(..self.len).unwrap_or(&mut [])
    }

    #[inline]
    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        match self.slots.get_mut(self.len) {
            Some(slot) => {
                *slot = bvec;
                self.len += 1;
                Ok(())
            }
            None => Err(bvec),
        }
    }

    #[inline]
    fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests;
