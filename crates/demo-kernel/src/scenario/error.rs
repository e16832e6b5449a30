//! What the scenario reports when a check does not hold.

use core::fmt;

use gupio::bio::{BioError, BioStatus};

use crate::mem::MemError;
use crate::pagemap::{CounterMismatch, MapError};
use crate::selftest::Mismatch;
use crate::userspace::UserError;
use crate::virtio::OpenError;

/// A check of the scenario that did not hold.
#[derive(Clone, Copy, Debug)]
pub enum ScenarioError {
    /// The managed region could not be carved out of free RAM.
    Memory(MemError),
    /// The memory map could not be set up, or a page not allocated.
    Map(&'static str, MapError),
    /// The block device could not be opened.
    Open(OpenError),
    /// The device's limits do not make gupio limits.
    Limits(BioError),
    /// User memory could not be mapped or reached, or held the wrong byte.
    User(&'static str, UserError),
    /// A gupio call of this step failed.
    Gupio(&'static str, gupio::Error),
    /// A bio completed with an error status.
    Io(&'static str, BioStatus),
    /// A byte in a kernel page differs from the disk's.
    Data(Mismatch),
    /// A page's counters are not what they should be.
    Counters(&'static str, CounterMismatch),
    /// A count differs: (step, what, found, expected).
    Count(&'static str, &'static str, usize, usize),
    /// A check of this step did not hold: (step, what).
    Check(&'static str, &'static str),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(error) => write!(f, "managed region: {error}"),
            Self::Map(step, error) => write!(f, "{step}: memory map: {error}"),
            Self::Open(error) => write!(f, "virtio-blk: {error}"),
            Self::Limits(error) => write!(f, "queue limits: {error}"),
            Self::User(step, error) => write!(f, "{step}: user memory: {error}"),
            Self::Gupio(step, error) => write!(f, "{step}: {error}"),
            Self::Io(step, status) => write!(f, "{step}: bio completed with {status}"),
            Self::Data(m) => write!(
                f,
                "{}: sector {} byte {} at {:#x}: expected {:#04x}, found {:#04x}",
                m.step, m.sector, m.offset, m.address, m.expected, m.found
            ),
            Self::Counters(step, mismatch) => write!(f, "{step}: counters off: {mismatch}"),
            Self::Count(step, what, found, expected) => {
                write!(f, "{step}: {what}: {found}, expected {expected}")
            }
            Self::Check(step, what) => write!(f, "{step}: {what}"),
        }
    }
}

/// Maps any gupio error of `step` into a [`ScenarioError`].
pub(super) fn gupio_error<E: Into<gupio::Error>>(
    step: &'static str,
) -> impl FnOnce(E) -> ScenarioError {
    move |error| ScenarioError::Gupio(step, error.into())
}
