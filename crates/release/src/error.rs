//! The release path's error type.

use core::fmt;

use gupio_bio::{BioError, BioStatus};
use gupio_pfn::Pfn;
use gupio_pin::PinError;

/// Everything that can go wrong on the completion and release path.
///
/// Release never stops half way: when one bvec fails, the others are still
/// released and the first failure is returned.
///
/// ```
/// use gupio_release::ReleaseError;
/// let e = ReleaseError::DoubleCompletion;
/// assert_eq!(e.to_string(), "the bio was already completed");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseError {
    /// Releasing or dirtying the pages of bvec `index` failed in the pin tracker.
    Pin {
        /// The bvec's index in the bio's table.
        index: usize,
        /// What the tracker reported.
        error: PinError,
    },
    /// Bvec `index` of a bio that holds pages has no page (its word is the
    /// "no page" sentinel): nothing could be released for it; also warned.
    NoPage {
        /// The bvec's index in the bio's table.
        index: usize,
    },
    /// The bio was refused at submission.
    Invalid {
        /// Why the bio layer refused it.
        error: BioError,
    },
    /// A completion arrived for a bio that had already completed; also warned.
    DoubleCompletion,
    /// A completion arrived for a bio that was never started.
    NotStarted,
    /// A bio ended as a lone bio ([`SubmittedBio::end`](crate::SubmittedBio::end))
    /// whose completion still waits for other parts: a child was chained to it.
    Unfinished {
        /// The parts still outstanding after the bio's own report.
        outstanding: u32,
    },
    /// A completion was started again while its I/O was still in flight.
    AlreadyStarted,
    /// A child was chained to a completion that is not in flight.
    ChainNotInFlight,
    /// Chaining another child would overflow the count of outstanding parts.
    TooManyChildren {
        /// The parts outstanding when the chain was refused.
        remaining: u32,
    },
    /// The deferred-release list is full; the bio was handed back.
    DeferredListFull {
        /// The list's capacity.
        capacity: usize,
    },
    /// The status word of a completion holds no valid status (a bug); also warned.
    CorruptStatus {
        /// The raw value found.
        raw: u8,
    },
    /// A user page could not be pinned while building a bio.
    Extract {
        /// The first page-frame number or user page that failed, if known.
        pfn: Option<Pfn>,
        /// What the tracker reported.
        error: PinError,
    },
    /// Adding extracted pages to the bio failed.
    Build {
        /// What the bio layer reported.
        error: BioError,
    },
    /// The bio completed with an error status (reported by `end_io`).
    Io {
        /// The status the device reported.
        status: BioStatus,
    },
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Pin { index, error } => write!(f, "releasing bvec {index}: {error}"),
            Self::NoPage { index } => write!(f, "bvec {index} of a bio holding pages has no page"),
            Self::Invalid { error } => write!(f, "bio refused at submission: {error}"),
            Self::DoubleCompletion => f.write_str("the bio was already completed"),
            Self::NotStarted => f.write_str("the bio's completion was never started"),
            Self::Unfinished { outstanding } => write!(
                f,
                "a bio ended alone did not finish: {outstanding} chained parts outstanding"
            ),
            Self::AlreadyStarted => f.write_str("the bio's completion is already in flight"),
            Self::ChainNotInFlight => f.write_str("chaining to a completion that is not in flight"),
            Self::TooManyChildren { remaining } => {
                write!(
                    f,
                    "cannot chain another child: {remaining} parts outstanding"
                )
            }
            Self::DeferredListFull { capacity } => {
                write!(f, "the deferred-release list is full ({capacity} bios)")
            }
            Self::CorruptStatus { raw } => write!(f, "completion status word {raw:#x} is invalid"),
            Self::Extract {
                pfn: Some(pfn),
                error,
            } => write!(f, "extracting pages at pfn {pfn:#x}: {error}"),
            Self::Extract { pfn: None, error } => write!(f, "extracting pages: {error}"),
            Self::Build { error } => write!(f, "adding extracted pages: {error}"),
            Self::Io { status } => write!(f, "the device completed the bio with {status:?}"),
        }
    }
}

impl core::error::Error for ReleaseError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Pin { error, .. } | Self::Extract { error, .. } => Some(error),
            Self::Invalid { error } | Self::Build { error } => Some(error),
            _ => None,
        }
    }
}

impl From<BioError> for ReleaseError {
    fn from(error: BioError) -> Self {
        Self::Invalid { error }
    }
}
