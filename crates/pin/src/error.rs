//! The crate's error type and the warnings reported through the warn hook.

use core::fmt;

use gupio_pfn::{Pfn, PfnError};

use crate::space::{FaultKind, UserAddr};

/// Everything a caller of gupio-pin can get wrong, and every refusal.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::PinError;
/// let e = PinError::NotInMemoryMap { pfn: Pfn::new(0x42) };
/// assert_eq!(e.to_string(), "pfn 0x42 is not in the memory map");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PinError {
    /// The page-frame number has no counters in the embedder's memory map.
    NotInMemoryMap {
        /// The page-frame number looked up.
        pfn: Pfn,
    },
    /// A page range whose last page-frame number is not encodable.
    RangeOverflow {
        /// The range's first page-frame number.
        first: Pfn,
        /// The number of pages asked for.
        count: usize,
    },
    /// A folio order or head that does not make a folio (from
    /// [`Folio::new`](crate::Folio::new) or [`FolioOrder::try_new`](crate::FolioOrder::try_new)).
    InvalidFolio {
        /// What was wrong.
        error: PfnError,
    },
    /// A page index outside its folio.
    InvalidFolioShape {
        /// The order given.
        order: u32,
        /// The page index given.
        index: u32,
    },
    /// Taking the references would push the folio's count past `REFCOUNT_MAX`.
    RefcountOverflow {
        /// The folio's head page.
        pfn: Pfn,
        /// The reference count seen.
        refcount: u32,
        /// The references the operation needed to add.
        adding: u64,
    },
    /// A get or pin of a free page (reference count zero); also warned.
    PageFree {
        /// The folio's head page.
        pfn: Pfn,
    },
    /// An unpin of a folio that holds fewer pins than released, or a pin
    /// added ([`Tracker::add_pin`](crate::Tracker::add_pin)) to a folio
    /// that holds none; also warned.
    NotPinned {
        /// The folio's head page.
        pfn: Pfn,
    },
    /// A put of a folio that holds fewer references than dropped; also warned.
    NoReference {
        /// The folio's head page.
        pfn: Pfn,
    },
    /// The folio's counters contradict each other (a bug); also warned.
    CorruptCounters {
        /// The page whose counters are inconsistent.
        pfn: Pfn,
    },
    /// A page that must be free to be prepared is still in use.
    PageInUse {
        /// The page found in use.
        pfn: Pfn,
    },
    /// GUP flags with bits gupio does not define.
    UnknownGupFlags {
        /// The flag bits passed.
        bits: u32,
    },
    /// GUP flags with an internal flag that only gupio may set (`PIN`).
    InternalGupFlags {
        /// The flag bits passed.
        bits: u32,
    },
    /// GUP flags with both `GET` and `PIN`.
    GetAndPin {
        /// The flag bits after the entry point added its own.
        bits: u32,
    },
    /// GUP flags with neither `GET` nor `PIN`.
    NeitherGetNorPin {
        /// The flag bits checked.
        bits: u32,
    },
    /// GUP flags with `LONGTERM` but not `PIN` (long-term pins only).
    LongtermWithoutPin {
        /// The flag bits checked.
        bits: u32,
    },
    /// The user range wraps around the end of the address space.
    AddressOverflow {
        /// The start address passed.
        start: UserAddr,
        /// The number of pages asked for.
        nr_pages: usize,
    },
    /// The address space could not fault the page in.
    Fault {
        /// The page's user address.
        addr: UserAddr,
        /// Why, as the address space reported it.
        kind: FaultKind,
    },
    /// The fault-in succeeded but the page is still not mapped as asked.
    FaultNotResolved {
        /// The page's user address.
        addr: UserAddr,
    },
    /// A write access resolved to the shared zero page.
    WriteToZeroPage {
        /// The page's user address.
        addr: UserAddr,
    },
    /// A long-term write pin of a shared file mapping that needs dirty tracking.
    LongtermDirtyTracked {
        /// The page's user address.
        addr: UserAddr,
    },
    /// A long-term pin of a page the embedder keeps movable.
    NotLongtermPinnable {
        /// The page refused.
        pfn: Pfn,
    },
    /// Charging a long-term pin would pass its owner's limit
    /// ([`PinAccount`](crate::PinAccount)); nothing was charged or pinned.
    PinLimitExceeded {
        /// The owner's limit, in 4 KiB units.
        limit: usize,
        /// What the owner had charged when refused, in 4 KiB units.
        charged: usize,
        /// What the request needed, in 4 KiB units.
        request: usize,
    },
    /// An uncharge of more than the account holds (a bug); nothing changed.
    AccountUnderflow {
        /// What the account held, in 4 KiB units.
        charged: usize,
        /// What the uncharge gave back, in 4 KiB units.
        request: usize,
    },
}

impl From<PfnError> for PinError {
    fn from(error: PfnError) -> Self {
        Self::InvalidFolio { error }
    }
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotInMemoryMap { pfn } => write!(f, "pfn {pfn:#x} is not in the memory map"),
            Self::RangeOverflow { first, count } => write!(
                f,
                "{count} pages from pfn {first:#x} run past the largest pfn"
            ),
            Self::InvalidFolio { error } => write!(f, "not a folio: {error}"),
            Self::InvalidFolioShape { order, index } => {
                write!(
                    f,
                    "page {index} of a folio of order {order} is not a valid shape"
                )
            }
            Self::RefcountOverflow {
                pfn,
                refcount,
                adding,
            } => write!(
                f,
                "adding {adding} references to folio {pfn:#x} (refcount {refcount}) would overflow"
            ),
            Self::PageFree { pfn } => write!(f, "folio {pfn:#x} is free (refcount 0)"),
            Self::NotPinned { pfn } => {
                write!(f, "folio {pfn:#x} holds fewer pins than released")
            }
            Self::NoReference { pfn } => {
                write!(f, "folio {pfn:#x} holds fewer references than dropped")
            }
            Self::CorruptCounters { pfn } => {
                write!(f, "the counters of pfn {pfn:#x} contradict each other")
            }
            Self::PageInUse { pfn } => write!(f, "pfn {pfn:#x} is still in use"),
            Self::UnknownGupFlags { bits } => write!(f, "GUP flags {bits:#x} hold unknown bits"),
            Self::InternalGupFlags { bits } => {
                write!(f, "GUP flags {bits:#x} hold an internal flag")
            }
            Self::GetAndPin { bits } => write!(f, "GUP flags {bits:#x} ask for both GET and PIN"),
            Self::NeitherGetNorPin { bits } => {
                write!(f, "GUP flags {bits:#x} ask for neither GET nor PIN")
            }
            Self::LongtermWithoutPin { bits } => {
                write!(f, "GUP flags {bits:#x} ask for LONGTERM without PIN")
            }
            Self::AddressOverflow { start, nr_pages } => write!(
                f,
                "{nr_pages} pages from user address {start} wrap the address space"
            ),
            Self::Fault { addr, kind } => write!(f, "fault at user address {addr}: {kind}"),
            Self::FaultNotResolved { addr } => write!(
                f,
                "user address {addr} is still not mapped as asked after fault-in"
            ),
            Self::WriteToZeroPage { addr } => {
                write!(f, "write access to user address {addr} maps the zero page")
            }
            Self::LongtermDirtyTracked { addr } => write!(
                f,
                "long-term write pin of dirty-tracked file mapping at {addr}"
            ),
            Self::NotLongtermPinnable { pfn } => {
                write!(f, "pfn {pfn:#x} may not be pinned long term")
            }
            Self::PinLimitExceeded {
                limit,
                charged,
                request,
            } => write!(
                f,
                "pinning {request} more 4 KiB pages over the {charged} charged \
                 passes the owner's limit of {limit}"
            ),
            Self::AccountUnderflow { charged, request } => write!(
                f,
                "uncharging {request} 4 KiB pages from an account holding {charged}"
            ),
        }
    }
}

/// An invariant that broke, with the values that show it: what the
/// embedder's [`PageOps::warn`](crate::PageOps::warn) hook receives (Linux's
/// `WARN_ON_ONCE`). Only a bug (in gupio's caller or in the embedder) causes
/// one; the operation that saw it also fails with a [`PinError`] and changes
/// no counter.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::Warning;
/// let w = Warning::PutWithoutReference { pfn: Pfn::new(3), refcount: 0, dropping: 1 };
/// assert!(w.to_string().contains("put"));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Warning {
    /// An unpin found fewer pins than it releases (large folio: pin count;
    /// small page: reference count below pages × `GUP_PIN_COUNTING_BIAS`).
    UnpinWithoutPin {
        /// The folio's head page.
        pfn: Pfn,
        /// Pages being unpinned.
        pages: u64,
        /// The reference count seen.
        refcount: u32,
        /// The pin count seen (0 for small pages, which have none).
        pincount: u32,
    },
    /// A pin was added ([`Tracker::add_pin`](crate::Tracker::add_pin)) to
    /// a folio that holds no pin; it was refused.
    AddPinWithoutPin {
        /// The folio's head page.
        pfn: Pfn,
        /// The reference count seen.
        refcount: u32,
        /// The pin count seen (0 for small pages, which have none).
        pincount: u32,
    },
    /// A put found fewer references than it drops.
    PutWithoutReference {
        /// The folio's head page.
        pfn: Pfn,
        /// The reference count seen.
        refcount: u32,
        /// References being dropped.
        dropping: u64,
    },
    /// A get or pin found the folio free: its caller held no reference.
    GrabOfFreePage {
        /// The folio's head page.
        pfn: Pfn,
    },
    /// A large folio's reference count is below its pin count.
    RefcountBelowPincount {
        /// The folio's head page.
        pfn: Pfn,
        /// The reference count seen.
        refcount: u32,
        /// The pin count seen.
        pincount: u32,
    },
    /// A folio's last reference dropped while it still had pins; the folio
    /// is leaked rather than freed under its pinners.
    FreedWhilePinned {
        /// The folio's head page.
        pfn: Pfn,
        /// The pin count left.
        pincount: u32,
    },
    /// A [`HeldRun`](crate::HeldRun) was dropped without being released
    /// or handed to a bio; its references or pins are leaked (never freed
    /// under a possible device), so the folio stays allocated.
    HeldRunDropped {
        /// The run's first page.
        pfn: Pfn,
        /// Pages in the run.
        pages: u64,
        /// What the run holds on each page.
        origin: gupio_pfn::Origin,
    },
    /// A [`PinAccount`](crate::PinAccount) was asked to give back more
    /// than it holds; it changed nothing.
    AccountUnderflow {
        /// What the account held, in 4 KiB units.
        charged: u64,
        /// What was given back, in 4 KiB units.
        request: u64,
    },
    /// The memory map's folio shape for a page contradicts its head's.
    CorruptFolio {
        /// The page looked up.
        pfn: Pfn,
    },
}

impl core::error::Error for PinError {}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnpinWithoutPin {
                pfn,
                pages,
                refcount,
                pincount,
            } => write!(
                f,
                "unpin of {pages} pages of folio {pfn:#x} without pins \
                 (refcount {refcount}, pincount {pincount})"
            ),
            Self::PutWithoutReference {
                pfn,
                refcount,
                dropping,
            } => write!(
                f,
                "put of {dropping} references on folio {pfn:#x} holding {refcount}"
            ),
            Self::AddPinWithoutPin {
                pfn,
                refcount,
                pincount,
            } => write!(
                f,
                "pin added to folio {pfn:#x}, which holds none \
                 (refcount {refcount}, pincount {pincount})"
            ),
            Self::GrabOfFreePage { pfn } => write!(f, "get or pin of free folio {pfn:#x}"),
            Self::RefcountBelowPincount {
                pfn,
                refcount,
                pincount,
            } => write!(
                f,
                "folio {pfn:#x} has refcount {refcount} below pincount {pincount}"
            ),
            Self::FreedWhilePinned { pfn, pincount } => write!(
                f,
                "folio {pfn:#x} lost its last reference with {pincount} pins left (leaked)"
            ),
            Self::HeldRunDropped { pfn, pages, origin } => write!(
                f,
                "a run of {pages} {origin:?} pages from {pfn:#x} was dropped unreleased (leaked)"
            ),
            Self::CorruptFolio { pfn } => {
                write!(f, "the folio shape of pfn {pfn:#x} contradicts its head")
            }
            Self::AccountUnderflow { charged, request } => write!(
                f,
                "a pin account holding {charged} 4 KiB pages was asked to give back {request}"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
