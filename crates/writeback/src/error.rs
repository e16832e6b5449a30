//! What a writeback call can report instead of an outcome.

use core::fmt;

use gupio_pfn::Pfn;

/// Why writeback of a folio did not produce an [`Outcome`](crate::Outcome).
///
/// `E` is the embedder's I/O error ([`WritebackIo::Error`](crate::WritebackIo::Error)).
/// Every variant leaves the folio's dirty state as the caller found it, or
/// dirty: a folio is never marked clean unless its contents were written.
/// The lookup variants carry the frame number the caller passed; the others
/// carry the folio's head.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_writeback::WritebackError;
///
/// let e: WritebackError<i32> = WritebackError::WriteInPlace { pfn: Pfn::new(0x40), error: -5 };
/// assert_eq!(e.pfn(), Pfn::new(0x40));
/// assert_eq!(e.to_string(), "writing folio 0x40 in place failed (-5); it stays dirty");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WritebackError<E> {
    /// The frame number has no counters in the memory map.
    NotInMemoryMap {
        /// The frame number passed in.
        pfn: Pfn,
    },
    /// The memory map's folio for the frame contradicts itself (also warned).
    CorruptFolio {
        /// The frame number passed in.
        pfn: Pfn,
    },
    /// The folio lock is held by someone else ([`LockMode::NonBlocking`](crate::LockMode::NonBlocking) only).
    Locked {
        /// The folio's head.
        pfn: Pfn,
    },
    /// Writeback of the folio is already in flight outside this engine.
    UnderWriteback {
        /// The folio's head.
        pfn: Pfn,
    },
    /// Writing the folio in place failed; the folio was re-dirtied.
    WriteInPlace {
        /// The folio's head.
        pfn: Pfn,
        /// The embedder's error.
        error: E,
    },
    /// Writing the folio's bounce copy failed; the folio stays dirty.
    WriteBounced {
        /// The folio's head.
        pfn: Pfn,
        /// The embedder's error.
        error: E,
    },
}

impl<E> WritebackError<E> {
    /// The frame the error is about: the one looked up, or the folio's head.
    pub const fn pfn(&self) -> Pfn {
        match *self {
            Self::NotInMemoryMap { pfn }
            | Self::CorruptFolio { pfn }
            | Self::Locked { pfn }
            | Self::UnderWriteback { pfn }
            | Self::WriteInPlace { pfn, .. }
            | Self::WriteBounced { pfn, .. } => pfn,
        }
    }

    /// Whether the folio was busy (locked, or under writeback elsewhere):
    /// nothing was looked at or changed, and a later pass may succeed.
    pub const fn is_busy(&self) -> bool {
        matches!(self, Self::Locked { .. } | Self::UnderWriteback { .. })
    }
}

impl<E: fmt::Display> fmt::Display for WritebackError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInMemoryMap { pfn } => write!(f, "pfn {pfn:#x} is not in the memory map"),
            Self::CorruptFolio { pfn } => {
                write!(f, "the folio of pfn {pfn:#x} contradicts the memory map")
            }
            Self::Locked { pfn } => write!(f, "folio {pfn:#x} is locked by someone else"),
            Self::UnderWriteback { pfn } => {
                write!(f, "folio {pfn:#x} is already under writeback")
            }
            Self::WriteInPlace { pfn, error } => write!(
                f,
                "writing folio {pfn:#x} in place failed ({error}); it stays dirty"
            ),
            Self::WriteBounced { pfn, error } => write!(
                f,
                "writing the bounce copy of folio {pfn:#x} failed ({error}); it stays dirty"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
