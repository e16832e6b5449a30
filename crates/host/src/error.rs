//! The harness's error types: one for the simulated machine, one for the
//! page cache's writeback I/O.

use std::fmt;

use gupio::bio::{AddError, BioError, BioStatus};
use gupio::pfn::{Pfn, PfnError};
use gupio::pin::{FaultKind, PinError, UserAddr};
use gupio::release::ReleaseError;
use gupio::writeback::WritebackError;

use crate::cache::FileId;

/// Why the page cache could not write a folio back: the
/// [`WritebackIo::Error`](gupio::embed::WritebackIo::Error) of the harness.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoError {
    /// The device completed the bio with an error status.
    Device {
        /// The status it reported.
        status: BioStatus,
    },
    /// No free folio of this order for a bounce buffer.
    OutOfMemory {
        /// The order asked for.
        order: u32,
    },
    /// The folio is not a page of the file being written back.
    NotInFile {
        /// The folio's head.
        pfn: Pfn,
    },
    /// The bio builder refused the folio.
    Bio {
        /// Why.
        error: BioError,
    },
    /// The bounce copy or the folio is not a folio of the order written
    /// (an allocator handing out unaligned folios).
    Folio {
        /// Why.
        error: PfnError,
    },
    /// The device shut down before it completed the bio.
    DeviceGone,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Device { status } => write!(f, "the device failed the write: {status}"),
            Self::OutOfMemory { order } => {
                write!(f, "no free folio of order {order} for a bounce buffer")
            }
            Self::NotInFile { pfn } => write!(f, "folio {pfn:#x} is not in the file's cache"),
            Self::Bio { error } => write!(f, "building the write bio: {error}"),
            Self::Folio { error } => write!(f, "building the write bio: {error}"),
            Self::DeviceGone => f.write_str("the device shut down before completing the bio"),
        }
    }
}

impl std::error::Error for IoError {}

/// Anything the simulated machine can refuse: gupio's typed errors, and the
/// harness's own (memory, mappings, files, the device).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// gupio refused the operation.
    Core(gupio::Error<IoError>),
    /// The page allocator has no free folio of this order.
    OutOfMemory {
        /// The order asked for.
        order: u32,
    },
    /// A mapping of this many pages cannot be made (zero, or no room left).
    BadMapping {
        /// The pages asked for.
        pages: usize,
    },
    /// No mapping starts at this user address.
    NotMapped {
        /// The address given.
        addr: UserAddr,
    },
    /// A CPU access to user memory faulted.
    Fault {
        /// The faulting address.
        addr: UserAddr,
        /// Why.
        kind: FaultKind,
    },
    /// A file page index past the end of the file.
    PastEndOfFile {
        /// The file.
        file: FileId,
        /// The index asked for.
        index: usize,
    },
    /// A file layout puts a folio at an index not aligned to its size.
    MisalignedFolio {
        /// The folio's first index.
        index: usize,
        /// Its order.
        order: u32,
    },
    /// A range past the end of the disk.
    PastEndOfDisk {
        /// The first sector.
        sector: u64,
        /// The sectors asked for.
        sectors: u64,
    },
    /// The device completed a bio with an error status.
    Io {
        /// The status it reported.
        status: BioStatus,
    },
    /// The page cache could not read or write a file page.
    Storage {
        /// Why.
        error: IoError,
    },
    /// The device shut down before it completed a bio.
    DeviceGone,
    /// A stable direct-I/O write could not be made stable (a bounce page
    /// that could not be allocated is [`HostError::OutOfMemory`]).
    Stable {
        /// Why.
        error: gupio::release::StableError<()>,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Core(e) => write!(f, "{e}"),
            Self::OutOfMemory { order } => write!(f, "no free folio of order {order}"),
            Self::BadMapping { pages } => write!(f, "cannot map {pages} pages"),
            Self::NotMapped { addr } => write!(f, "no mapping starts at {addr}"),
            Self::Fault { addr, kind } => write!(f, "CPU access to {addr} faulted: {kind}"),
            Self::PastEndOfFile { file, index } => {
                write!(f, "page {index} is past the end of file {file}")
            }
            Self::MisalignedFolio { index, order } => {
                write!(
                    f,
                    "a folio of order {order} cannot start at file index {index}"
                )
            }
            Self::PastEndOfDisk { sector, sectors } => {
                write!(
                    f,
                    "{sectors} sectors from sector {sector} run past the disk"
                )
            }
            Self::Io { status } => write!(f, "the device completed the bio with: {status}"),
            Self::Storage { error } => write!(f, "page cache I/O: {error}"),
            Self::DeviceGone => f.write_str("the device shut down before completing the bio"),
            Self::Stable { error } => write!(f, "stable write: {error}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<gupio::release::StableError<HostError>> for HostError {
    /// An allocation failure is the allocator's error; the rest keep their
    /// kind.
    fn from(error: gupio::release::StableError<HostError>) -> Self {
        use gupio::release::StableError as E;
        let error = match error {
            E::Alloc(error) => return error,
            E::Release(error) => return Self::Core(error.into()),
            E::NotAWrite => E::NotAWrite,
            E::BadBounceBio => E::BadBounceBio,
            E::NoPage { index } => E::NoPage { index },
            E::Build(error) => E::Build(error),
            E::ChecksumCount { pieces, checksums } => E::ChecksumCount { pieces, checksums },
            E::Protect(error) => E::Protect(error),
            E::WindowState { open } => E::WindowState { open },
            _ => E::Alloc(()),
        };
        Self::Stable { error }
    }
}

impl From<gupio::Error<IoError>> for HostError {
    fn from(e: gupio::Error<IoError>) -> Self {
        Self::Core(e)
    }
}

/// Converts each crate's error through [`gupio::Error`].
macro_rules! via_core {
    ($($error:ty),*) => {$(
        impl From<$error> for HostError {
            fn from(e: $error) -> Self {
                Self::Core(e.into())
            }
        }
    )*};
}

via_core!(
    PfnError,
    BioError,
    AddError,
    PinError,
    ReleaseError,
    WritebackError<IoError>
);

impl From<IoError> for HostError {
    fn from(error: IoError) -> Self {
        Self::Storage { error }
    }
}

#[cfg(test)]
mod tests;
