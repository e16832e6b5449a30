//! What phase 3 reports when a check does not hold.

use core::fmt;

use gupio::writeback::WritebackError;

use crate::mem::MemError;
use crate::pagecache::CacheError;
use crate::pagemap::{CounterMismatch, MapError};
use crate::userspace::UserError;
use crate::virtio::OpenError;

/// A check of phase 3 that did not hold.
#[derive(Clone, Debug)]
pub enum FilesError {
    /// The managed region could not be carved out of free RAM.
    Memory(MemError),
    /// The memory map could not be set up.
    Map(MapError),
    /// The FAT drive could not be opened.
    Open(OpenError),
    /// The page cache failed: (step, error).
    Cache(&'static str, CacheError),
    /// The filesystem failed: (step, error).
    Fs(&'static str, embedded_sdmmc::Error<CacheError>),
    /// Writeback failed: (step, the first error).
    Writeback(&'static str, WritebackError<CacheError>),
    /// User memory could not be mapped or reached.
    User(&'static str, UserError),
    /// A file read back differs: (name, size found, sum found, size expected, sum expected).
    File(&'static str, u32, u32, u32, u32),
    /// A page's counters are not what they should be.
    Counters(CounterMismatch),
    /// A count differs: (step, what, found, expected).
    Count(&'static str, &'static str, usize, usize),
    /// A check of this step did not hold: (step, what).
    Check(&'static str, &'static str),
}

impl fmt::Display for FilesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(error) => write!(f, "managed region: {error}"),
            Self::Map(error) => write!(f, "memory map: {error}"),
            Self::Open(error) => write!(f, "FAT drive: {error}"),
            Self::Cache(step, error) => write!(f, "{step}: {error}"),
            Self::Fs(step, error) => write!(f, "{step}: filesystem: {error:?}"),
            Self::Writeback(step, error) => write!(f, "{step}: writeback: {error}"),
            Self::User(step, error) => write!(f, "{step}: user memory: {error}"),
            Self::File(name, size, sum, want_size, want_sum) => write!(
                f,
                "{name}: read back {size} bytes, sum {sum:08x}; expected {want_size} bytes, sum {want_sum:08x}"
            ),
            Self::Counters(mismatch) => write!(f, "accounting: counters off: {mismatch}"),
            Self::Count(step, what, found, expected) => {
                write!(f, "{step}: {what}: {found}, expected {expected}")
            }
            Self::Check(step, what) => write!(f, "{step}: {what}"),
        }
    }
}

pub(super) fn fs(step: &'static str) -> impl Fn(embedded_sdmmc::Error<CacheError>) -> FilesError {
    move |error| FilesError::Fs(step, error)
}

pub(super) fn cache_error(step: &'static str) -> impl Fn(CacheError) -> FilesError {
    move |error| FilesError::Cache(step, error)
}
