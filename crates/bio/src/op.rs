//! The values that describe a bio: what it asks the device to do, how it
//! completed, and the origins of the pages it holds.

use core::fmt;

use gupio_pfn::Origin;

/// What a bio asks the device to do.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BioOp {
    /// Device to memory: the device writes into the bio's pages.
    Read,
    /// Memory to device.
    Write,
    /// Make earlier writes durable; carries no pages and no size.
    Flush,
    /// Discard a sector range; carries a size but no pages.
    Discard,
}

impl BioOp {
    /// Whether the bio carries data pages (read and write do).
    #[inline]
    pub const fn has_data(self) -> bool {
        matches!(self, Self::Read | Self::Write)
    }

    /// Whether the device writes into the pages, so the release path must dirty them.
    #[inline]
    pub const fn dirties_pages(self) -> bool {
        matches!(self, Self::Read)
    }
}

/// How a bio completed (Linux's `blk_status_t`). A new bio is `Ok`.
///
/// Each status has a fixed one-byte encoding ([`to_raw`](Self::to_raw),
/// [`from_raw`](Self::from_raw)) so a completion path can keep it in an
/// atomic word.
#[non_exhaustive]
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BioStatus {
    /// Success (or not completed yet).
    #[default]
    Ok = 0,
    /// The device does not support the operation.
    NotSupported = 1,
    /// The device did not answer in time.
    Timeout = 2,
    /// The device is out of space.
    NoSpace = 3,
    /// A transport (link) error.
    Transport = 4,
    /// The medium failed.
    Medium = 5,
    /// Integrity protection information did not match.
    Protection = 6,
    /// The device or driver ran out of a resource; may be retried.
    Resource = 7,
    /// Any other I/O error.
    IoError = 8,
    /// Would block (a non-blocking submission).
    Again = 9,
    /// The device is offline.
    Offline = 10,
    /// The request was invalid for the device.
    Invalid = 11,
}

impl BioStatus {
    /// Every status, in encoding order (`ALL[n].to_raw() == n`).
    pub const ALL: [BioStatus; 12] = [
        Self::Ok,
        Self::NotSupported,
        Self::Timeout,
        Self::NoSpace,
        Self::Transport,
        Self::Medium,
        Self::Protection,
        Self::Resource,
        Self::IoError,
        Self::Again,
        Self::Offline,
        Self::Invalid,
    ];

    /// The one-byte encoding.
    #[inline]
    pub const fn to_raw(self) -> u8 {
        self as u8
    }

    /// The status a byte encodes, or `None` for a byte no status has.
    #[inline]
    pub const fn from_raw(raw: u8) -> Option<Self> {
        if (raw as usize) < Self::ALL.len() {
            Some(Self::ALL[raw as usize])
        } else {
            None
        }
    }

    /// Whether the status is `Ok`.
    #[inline]
    pub const fn is_ok(self) -> bool {
        matches!(self, Self::Ok)
    }

    /// Whether the status is an error.
    #[inline]
    pub const fn is_err(self) -> bool {
        !self.is_ok()
    }
}

impl fmt::Display for BioStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok",
            Self::NotSupported => "operation not supported",
            Self::Timeout => "timeout",
            Self::NoSpace => "no space left on device",
            Self::Transport => "transport error",
            Self::Medium => "medium error",
            Self::Protection => "protection information mismatch",
            Self::Resource => "out of resources",
            Self::IoError => "I/O error",
            Self::Again => "would block",
            Self::Offline => "device offline",
            Self::Invalid => "invalid request",
        })
    }
}

bitflags::bitflags! {
    /// The origins of the pages a bio holds, kept up to date on every add so
    /// that completion knows in O(1) whether anything needs releasing.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct OriginSet: u8 {
        /// At least one page was pinned (released by unpinning).
        const PINNED = 1 << 0;
        /// At least one page holds a plain reference (released by a put).
        const REFERENCED = 1 << 1;
        /// At least one page is borrowed (released by nobody).
        const BORROWED = 1 << 2;
    }
}

impl OriginSet {
    /// The set holding only `origin`.
    #[inline]
    pub const fn of(origin: Origin) -> Self {
        match origin {
            Origin::Pinned => Self::PINNED,
            Origin::Referenced => Self::REFERENCED,
            Origin::Borrowed => Self::BORROWED,
        }
    }

    /// Whether the set holds `origin`.
    #[inline]
    pub const fn has(self, origin: Origin) -> bool {
        self.contains(Self::of(origin))
    }

    /// Whether any page in the set must be released (pinned or referenced).
    #[inline]
    pub const fn needs_release(self) -> bool {
        self.intersects(Self::PINNED.union(Self::REFERENCED))
    }
}

impl From<Origin> for OriginSet {
    fn from(origin: Origin) -> Self {
        Self::of(origin)
    }
}

#[cfg(test)]
mod tests;
