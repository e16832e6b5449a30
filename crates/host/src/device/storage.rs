//! Owned bvec storage: a bio that can travel to a device thread and back.

use gupio::bio::{BioVec, BvecStorage};

/// A bio's bvec table in owned, heap-backed storage with a fixed capacity,
/// so a bio can travel to a device thread and back.
///
/// ```
/// use gupio::prelude::*;
/// use gupio_host::OwnedBvecs;
/// let mut bio = Bio::new(OwnedBvecs::with_capacity(2), BioOp::Write, Sector(0), BioLimits::default());
/// let _ = bio.add_page(Pfn::new(1), 4096, 0, Origin::Borrowed).unwrap();
/// let _ = bio.add_page(Pfn::new(9), 4096, 0, Origin::Borrowed).unwrap();
/// let full = bio.add_page(Pfn::new(20), 4096, 0, Origin::Borrowed).unwrap_err();
/// assert_eq!(full.error(), gupio::bio::BioError::TooManyVecs { max_vecs: 2 });
/// ```
#[derive(Clone, Debug, Default)]
pub struct OwnedBvecs {
    vecs: Vec<BioVec>,
    capacity: usize,
}

impl OwnedBvecs {
    /// Empty storage for up to `capacity` bvecs.
    ///
    /// ```
    /// use gupio::embed::BvecStorage;
    /// assert_eq!(gupio_host::OwnedBvecs::with_capacity(16).capacity(), 16);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            vecs: Vec::with_capacity(capacity),
            capacity,
        }
    }
}

impl BvecStorage for OwnedBvecs {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn as_slice(&self) -> &[BioVec] {
        &self.vecs
    }

    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        &mut self.vecs
    }

    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        if self.vecs.len() >= self.capacity {
            return Err(bvec);
        }
        self.vecs.push(bvec);
        Ok(())
    }

    fn clear(&mut self) {
        self.vecs.clear();
    }
}
