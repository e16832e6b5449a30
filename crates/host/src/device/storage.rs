//! Owned bvec storage: a bio that can travel to a device thread and back.

use gupio::bio::{BioVec, BvecStorage};

/// A bio's bvec table in owned, heap-backed storage with a fixed capacity,
/// so a bio can travel to a device thread and back.
#[derive(Clone, Debug, Default)]
pub struct OwnedBvecs {
    vecs: Vec<BioVec>,
    capacity: usize,
}

impl OwnedBvecs {
    /// Empty storage for up to `capacity` bvecs.
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

#[cfg(test)]
mod tests;
