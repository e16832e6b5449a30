//! One error type for the whole core.

use core::convert::Infallible;
use core::fmt;

use gupio_bio::{AddError, BioError};
use gupio_pfn::PfnError;
use gupio_pin::PinError;
use gupio_release::ReleaseError;
use gupio_writeback::WritebackError;

/// Any error gupio can return: each crate's error converts into it with
/// `?`. `E` is the embedder's writeback I/O error
/// ([`WritebackIo::Error`](gupio_writeback::WritebackIo::Error)); code that
/// does not run writeback keeps the default.
///
/// A rejected [`AddError`] keeps the fragment it refused, so the caller can
/// still release the page reference it names.
///
/// ```
/// use gupio::pfn::{Pfn, PfnError};
/// fn encode(raw: usize) -> Result<Pfn, gupio::Error> {
///     Ok(Pfn::try_new(raw)?)
/// }
/// assert!(matches!(encode(usize::MAX), Err(gupio::Error::Pfn(PfnError::PfnOutOfRange { .. }))));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E = Infallible> {
    /// From the encoding ([`gupio_pfn`]).
    Pfn(PfnError),
    /// From the bio layer ([`gupio_bio`]).
    Bio(BioError),
    /// A fragment the bio builder refused, with the fragment.
    Add(AddError),
    /// From the pin tracker ([`gupio_pin`]).
    Pin(PinError),
    /// From the completion path ([`gupio_release`]).
    Release(ReleaseError),
    /// From writeback ([`gupio_writeback`]).
    Writeback(WritebackError<E>),
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pfn(e) => write!(f, "gupio: {e}"),
            Self::Bio(e) => write!(f, "gupio: {e}"),
            Self::Add(e) => write!(f, "gupio: {e}"),
            Self::Pin(e) => write!(f, "gupio: {e}"),
            Self::Release(e) => write!(f, "gupio: {e}"),
            Self::Writeback(e) => write!(f, "gupio: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

impl<E> From<PfnError> for Error<E> {
    fn from(e: PfnError) -> Self {
        Self::Pfn(e)
    }
}

impl<E> From<BioError> for Error<E> {
    fn from(e: BioError) -> Self {
        Self::Bio(e)
    }
}

impl<E> From<AddError> for Error<E> {
    fn from(e: AddError) -> Self {
        Self::Add(e)
    }
}

impl<E> From<PinError> for Error<E> {
    fn from(e: PinError) -> Self {
        Self::Pin(e)
    }
}

impl<E> From<ReleaseError> for Error<E> {
    fn from(e: ReleaseError) -> Self {
        Self::Release(e)
    }
}

impl<E> From<WritebackError<E>> for Error<E> {
    fn from(e: WritebackError<E>) -> Self {
        Self::Writeback(e)
    }
}

#[cfg(test)]
mod tests;
