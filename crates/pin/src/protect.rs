//! Write-protecting a user range for the length of a stable direct-I/O
//! write: the address-space side of the write-protect mode.

use core::fmt;

use crate::space::{FaultKind, UserAddr};

/// Why an address space could not write-protect (or restore) a user range.
///
/// ```
/// use gupio_pin::ProtectError;
/// assert_eq!(ProtectError::Unsupported.to_string(), "the address space cannot write-protect user pages");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtectError {
    /// The address space does not implement write protection (the
    /// default of [`AddressSpace::write_protect`](crate::AddressSpace::write_protect)):
    /// choose a stable mode that needs nothing from it (bounce or verify).
    Unsupported,
    /// The range is not (wholly) mapped, or the mapping cannot be protected.
    Fault {
        /// The first page that failed.
        addr: UserAddr,
        /// Why.
        kind: FaultKind,
    },
    /// The range is empty, unaligned or wraps around the address space.
    BadRange {
        /// Its start.
        addr: UserAddr,
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for ProtectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported => f.write_str("the address space cannot write-protect user pages"),
            Self::Fault { addr, kind } => write!(f, "cannot protect {addr}: {kind}"),
            Self::BadRange { addr, len } => {
                write!(f, "bad range to protect: {len} bytes at {addr}")
            }
        }
    }
}
