//! The release path's own warnings, and the hook they go through.

use core::fmt;

use gupio_pin::{ArrayMemoryMap, Warning};

/// An invariant of the completion path that broke, with the values that
/// show it: what [`Warn::warn`] receives. Only a bug (in the caller, the
/// driver or the embedder) causes one; the operation that saw it also
/// fails with a [`ReleaseError`](crate::ReleaseError) and releases nothing
/// twice.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseWarning {
    /// A bio that holds pages has a bvec without a page.
    BvecWithoutPage {
        /// The bvec's index in the bio's table.
        index: u32,
    },
    /// A bio, or a chained child, reported completion a second time; the
    /// report was refused.
    DoubleCompletion,
    /// A completion's status word holds no valid status.
    CorruptCompletionStatus {
        /// The raw value found.
        raw: u8,
    },
}

impl fmt::Display for ReleaseWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BvecWithoutPage { index } => {
                write!(f, "bvec {index} of a bio holding pages has no page")
            }
            Self::DoubleCompletion => f.write_str("a bio was completed twice"),
            Self::CorruptCompletionStatus { raw } => {
                write!(f, "completion status word {raw:#x} is invalid")
            }
        }
    }
}

/// A warning from either layer a bio's pages pass through: the pin
/// tracker's ([`Warning`]) or the release path's ([`ReleaseWarning`]).
/// What an embedder's one warn function takes; both convert into it.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnyWarning {
    /// A warning of the pin tracker (counters, pins, runs, accounts).
    Pin(Warning),
    /// A warning of the release path (bvecs, completions).
    Release(ReleaseWarning),
}

impl From<Warning> for AnyWarning {
    fn from(warning: Warning) -> Self {
        Self::Pin(warning)
    }
}

impl From<ReleaseWarning> for AnyWarning {
    fn from(warning: ReleaseWarning) -> Self {
        Self::Release(warning)
    }
}

impl fmt::Display for AnyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pin(warning) => warning.fmt(f),
            Self::Release(warning) => warning.fmt(f),
        }
    }
}

/// Where the completion path reports a [`ReleaseWarning`] (Linux's
/// `WARN_ON_ONCE`).
///
/// Each crate names its own events: gupio-pin reports what goes wrong with
/// counters through [`PageOps::warn`](gupio_pin::PageOps::warn) as a
/// [`Warning`], and this crate what goes wrong with bios and completions,
/// here. The pin tracker sits below the release path and knows nothing of
/// bios, so it cannot carry these for it. A kernel, though, has one place
/// where warnings end up, and already implements gupio's hooks on its
/// memory-map type. So implement `Warn` on that same type and let both
/// hooks forward, with `into()`, to one function of yours that takes an
/// [`AnyWarning`]: two one-line doors, one warn hook.
/// [`ArrayMemoryMap`] is built that way ([`ArrayMemoryMap::report`]).
///
/// ```
/// use gupio_pin::{FolioRef, MemoryMap, PageCounters, PageOps, Warning};
/// use gupio_pfn::Pfn;
/// use gupio_release::{AnyWarning, ReleaseWarning, Warn};
///
/// struct Kernel;
/// impl Kernel {
///     /// The one warn hook: every gupio warning ends here.
///     fn report(&self, warning: AnyWarning) {
///         eprintln!("WARNING: {warning}");
///     }
/// }
/// impl PageOps for Kernel {
///     fn warn(&self, warning: Warning) {
///         self.report(warning.into());
///     }
///     # fn free_folio(&self, _: FolioRef<'_>) {}
///     # fn pins_acquired(&self, _: usize) {}
///     # fn pins_released(&self, _: usize) {}
/// }
/// impl Warn for Kernel {
///     fn warn(&self, warning: ReleaseWarning) {
///         self.report(warning.into());
///     }
/// }
/// # impl MemoryMap for Kernel {
/// #     fn counters(&self, _: Pfn) -> Option<&PageCounters> { None }
/// #     fn is_zero_page(&self, _: Pfn) -> bool { false }
/// # }
/// Warn::warn(&Kernel, ReleaseWarning::DoubleCompletion);
/// ```
pub trait Warn {
    /// Reports `warning`. It may run in interrupt context: it must not block.
    fn warn(&self, warning: ReleaseWarning);
}

/// The test embedder reports the release path's warnings through the same
/// hook as the tracker's, so its log holds both, in order; a map whose log
/// type cannot hold a [`ReleaseWarning`] is not a `Warn`.
impl<const N: usize, W> Warn for ArrayMemoryMap<N, W>
where
    W: From<Warning> + From<ReleaseWarning> + Copy,
{
    fn warn(&self, warning: ReleaseWarning) {
        self.report(warning.into());
    }
}

/// The loom models run the release path over gupio-pin's test machine,
/// which counts the release path's warnings with its own.
#[cfg(loom)]
impl<const N: usize> Warn for gupio_pin::testing::TestMachine<N> {
    fn warn(&self, _: ReleaseWarning) {
        self.count_warning();
    }
}

#[cfg(test)]
mod tests;
