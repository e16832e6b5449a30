//! Page-frame numbers and the origin-tagged word a `bio_vec` stores.
//!
//! A block I/O descriptor in gupio does not hold a page pointer: it holds a
//! [`TaggedPfn`], one machine word carrying the page-frame number ([`Pfn`]) of
//! the page in its low bits and the page's [`Origin`] in its two highest bits.
//! The highest bit is the pin bit of the 2019 proposal (`BVEC_PFN_GUP`): set,
//! the page was pinned by `pin_user_pages` and must be released by unpinning.
//! The next bit marks a borrowed page (the caller keeps ownership, release does
//! nothing); neither bit set is a plain page reference released by `put_page`.
//! The all-ones word is the "no page" sentinel ([`TaggedPfn::NONE`]); it is
//! recognised before any masking, since it also has the pin bit set.
//!
//! | bits (64-bit word) | meaning |
//! |---|---|
//! | 63 | pin bit: [`Origin::Pinned`] |
//! | 62 | borrow bit: [`Origin::Borrowed`] |
//! | 61..0 | the page-frame number, at most [`Pfn::MAX`] |
//!
//! Both tag bits set is not an origin: a word with that tag (other than the
//! sentinel) is rejected by [`TaggedPfn::from_raw`] with
//! [`PfnError::InvalidTag`]. On 64-bit the encodable range covers 74-bit
//! physical addresses with 4 KiB pages; on 32-bit (30-bit PFNs) it covers
//! 42-bit physical addresses, more than PAE's 36. Page sizes of 4, 16 and
//! 64 KiB are described by a [`PageGeometry`] the embedder picks once.
//!
//! ```
//! use gupio_pfn::{Origin, Pfn, TaggedPfn};
//!
//! let word = TaggedPfn::new(Pfn::new(0x1234), Origin::Pinned);
//! assert_eq!(word.decode(), Some((Pfn::new(0x1234), Origin::Pinned)));
//! assert_eq!(word.to_raw() >> (usize::BITS - 1), 1, "the pin bit is the highest bit");
//! assert_eq!(TaggedPfn::NONE.decode(), None);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;

mod folio;

pub use folio::{Folio, FolioOrder};

/// Number of high bits of the word spent on the origin tag.
pub const TAG_BITS: u32 = 2;
/// The pin bit (the highest bit): the page came from `pin_user_pages`.
pub const PIN_BIT: usize = 1 << (usize::BITS - 1);
/// The borrow bit (the next one down): the caller keeps the page.
pub const BORROW_BIT: usize = 1 << (usize::BITS - 2);
/// Both tag bits.
pub const TAG_MASK: usize = PIN_BIT | BORROW_BIT;
/// The bits that hold the page-frame number.
pub const PFN_MASK: usize = !TAG_MASK;
/// Shift that brings the tag down to bits 1..0.
const TAG_SHIFT: u32 = usize::BITS - TAG_BITS;

/// Everything a caller can get wrong when building or decoding these values.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PfnError {
    /// The page-frame number would overlap the tag bits (is above [`Pfn::MAX`]).
    PfnOutOfRange {
        /// The rejected page-frame number.
        pfn: u64,
    },
    /// The word's tag bits are both set but the word is not the sentinel.
    InvalidTag {
        /// The rejected word.
        word: usize,
    },
    /// A physical address is not aligned to the page size.
    UnalignedAddress {
        /// The rejected address.
        addr: u64,
        /// The page size it was checked against.
        page_size: u64,
    },
    /// A physical address does not fit the physical address type (`u64`).
    AddressOverflow {
        /// The page-frame number whose address overflowed.
        pfn: usize,
        /// The page shift used.
        page_shift: u32,
    },
    /// A page shift that is not 12, 14 or 16 (4, 16 or 64 KiB).
    UnsupportedPageShift {
        /// The rejected shift.
        shift: u32,
    },
    /// A tag value that names no origin.
    UnknownOrigin {
        /// The rejected tag value.
        tag: u8,
    },
    /// A folio order above [`FolioOrder::MAX`].
    OrderTooLarge {
        /// The rejected order.
        order: u32,
    },
    /// A folio head that is not a multiple of the folio's page count.
    UnalignedFolio {
        /// The rejected head page-frame number.
        head: usize,
        /// The folio's order.
        order: u32,
    },
}

impl fmt::Display for PfnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::PfnOutOfRange { pfn } => write!(
                f,
                "pfn {pfn:#x} overlaps the origin tag bits (max {:#x})",
                Pfn::MAX.0
            ),
            Self::InvalidTag { word } => {
                write!(
                    f,
                    "word {word:#x} has an invalid origin tag (both bits set)"
                )
            }
            Self::UnalignedAddress { addr, page_size } => write!(
                f,
                "physical address {addr:#x} is not aligned to the page size {page_size:#x}"
            ),
            Self::AddressOverflow { pfn, page_shift } => write!(
                f,
                "pfn {pfn:#x} with page shift {page_shift} overflows a 64-bit physical address"
            ),
            Self::UnsupportedPageShift { shift } => {
                write!(f, "page shift {shift} is not 12, 14 or 16")
            }
            Self::UnknownOrigin { tag } => write!(f, "tag {tag:#x} names no origin"),
            Self::OrderTooLarge { order } => write!(
                f,
                "folio order {order} is above the largest, {}",
                FolioOrder::MAX.get()
            ),
            Self::UnalignedFolio { head, order } => write!(
                f,
                "folio head {head:#x} is not a multiple of 2^{order} pages"
            ),
        }
    }
}

impl core::error::Error for PfnError {}

/// A page-frame number: a physical address with the page offset bits removed,
/// guaranteed to fit below the tag bits.
///
/// ```
/// use gupio_pfn::Pfn;
/// let pfn = Pfn::try_new(42).unwrap();
/// assert_eq!(pfn.get(), 42);
/// assert!(Pfn::try_new(usize::MAX).is_err());
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(usize);

impl Pfn {
    /// The largest encodable page-frame number: every bit below the tag.
    pub const MAX: Pfn = Pfn(PFN_MASK);
    /// Page-frame number zero.
    pub const ZERO: Pfn = Pfn(0);

    /// A page-frame number from its raw value.
    ///
    /// # Panics
    /// If `raw` is above [`Pfn::MAX`]. Use [`Pfn::try_new`] on values that
    /// come from a caller; gupio never uses this form on caller data.
    ///
    /// ```
    /// assert_eq!(gupio_pfn::Pfn::new(7).get(), 7);
    /// ```
    #[inline]
    #[track_caller]
    pub const fn new(raw: usize) -> Self {
        match Self::try_new(raw) {
            Ok(pfn) => pfn,
            Err(_) => panic!("pfn overlaps the origin tag bits"),
        }
    }

    /// A page-frame number, or [`PfnError::PfnOutOfRange`] if `raw` would
    /// overlap the tag bits.
    ///
    /// # Errors
    /// [`PfnError::PfnOutOfRange`] when `raw > Pfn::MAX`.
    ///
    /// ```
    /// use gupio_pfn::{Pfn, PfnError};
    /// assert_eq!(Pfn::try_new(Pfn::MAX.get()), Ok(Pfn::MAX));
    /// assert_eq!(
    ///     Pfn::try_new(Pfn::MAX.get() + 1),
    ///     Err(PfnError::PfnOutOfRange { pfn: (Pfn::MAX.get() + 1) as u64 })
    /// );
    /// ```
    #[inline]
    pub const fn try_new(raw: usize) -> Result<Self, PfnError> {
        if raw & TAG_MASK == 0 {
            Ok(Self(raw))
        } else {
            Err(PfnError::PfnOutOfRange {
                pfn: usize_to_u64(raw),
            })
        }
    }

    /// A page-frame number from `raw` with the tag bits cleared.
    ///
    /// ```
    /// use gupio_pfn::{Pfn, PIN_BIT};
    /// assert_eq!(Pfn::new_truncate(PIN_BIT | 5), Pfn::new(5));
    /// ```
    #[inline]
    pub const fn new_truncate(raw: usize) -> Self {
        Self(raw & PFN_MASK)
    }

    /// The raw page-frame number.
    #[inline]
    pub const fn get(self) -> usize {
        self.0
    }

    /// The page-frame number `count` pages after this one, if it is encodable.
    #[inline]
    pub const fn checked_add(self, count: usize) -> Option<Self> {
        match self.0.checked_add(count) {
            Some(raw) if raw & TAG_MASK == 0 => Some(Self(raw)),
            _ => None,
        }
    }

    /// The page-frame number `count` pages before this one, if there is one.
    #[inline]
    pub const fn checked_sub(self, count: usize) -> Option<Self> {
        match self.0.checked_sub(count) {
            Some(raw) => Some(Self(raw)),
            None => None,
        }
    }

    /// The page-frame number of the page holding physical address `addr`,
    /// which must be page aligned.
    ///
    /// # Errors
    /// [`PfnError::UnalignedAddress`] if `addr` is not page aligned,
    /// [`PfnError::PfnOutOfRange`] if its frame number is not encodable.
    ///
    /// ```
    /// use gupio_pfn::{PageGeometry, Pfn};
    /// let g = PageGeometry::FOUR_KIB;
    /// assert_eq!(Pfn::from_phys_addr(0x8000_3000, g), Ok(Pfn::new(0x80003)));
    /// assert!(Pfn::from_phys_addr(0x8000_3001, g).is_err());
    /// ```
    #[inline]
    pub const fn from_phys_addr(addr: u64, geometry: PageGeometry) -> Result<Self, PfnError> {
        if addr & geometry.offset_mask() != 0 {
            return Err(PfnError::UnalignedAddress {
                addr,
                page_size: geometry.size_u64(),
            });
        }
        Self::containing_phys_addr(addr, geometry)
    }

    /// The page-frame number of the page holding physical address `addr`
    /// (any byte of the page).
    ///
    /// # Errors
    /// [`PfnError::PfnOutOfRange`] if the frame number is not encodable.
    ///
    /// ```
    /// use gupio_pfn::{PageGeometry, Pfn};
    /// let g = PageGeometry::SIXTEEN_KIB;
    /// assert_eq!(Pfn::containing_phys_addr(0x4_5678, g), Ok(Pfn::new(0x11)));
    /// ```
    #[inline]
    pub const fn containing_phys_addr(addr: u64, geometry: PageGeometry) -> Result<Self, PfnError> {
        let frame = addr >> geometry.shift();
        // The frame must fit a usize and stay below the tag bits.
        if frame > usize_to_u64(PFN_MASK) {
            return Err(PfnError::PfnOutOfRange { pfn: frame });
        }
        #[allow(clippy::cast_possible_truncation)] // checked above: frame <= PFN_MASK
        Ok(Self(frame as usize))
    }

    /// The physical address of the first byte of this page.
    ///
    /// # Errors
    /// [`PfnError::AddressOverflow`] if the address does not fit a `u64`
    /// (possible only on 64-bit with frame numbers above 2^48 or so).
    #[inline]
    pub const fn phys_addr(self, geometry: PageGeometry) -> Result<u64, PfnError> {
        let raw = usize_to_u64(self.0);
        let shift = geometry.shift();
        if raw > (u64::MAX >> shift) {
            return Err(PfnError::AddressOverflow {
                pfn: self.0,
                page_shift: shift,
            });
        }
        Ok(raw << shift)
    }
}

impl fmt::LowerHex for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl TryFrom<usize> for Pfn {
    type Error = PfnError;
    fn try_from(raw: usize) -> Result<Self, PfnError> {
        Self::try_new(raw)
    }
}

impl From<Pfn> for usize {
    fn from(pfn: Pfn) -> usize {
        pfn.0
    }
}

/// A `usize` widened to `u64` (lossless on every supported target).
#[inline]
const fn usize_to_u64(value: usize) -> u64 {
    // usize is at most 64 bits wide on every target gupio builds for
    // (asserted below), so this widening never truncates.
    value as u64
}

static_assertions::const_assert!(usize::BITS <= u64::BITS);

/// Where a page in an I/O request came from, and so how it must be released.
///
/// The discriminant is the value of the two tag bits.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A plain page reference (page cache, `FOLL_GET` GUP, kernel page):
    /// released with `put_page`.
    Referenced = 0b00,
    /// The caller keeps ownership (kernel bvec/kvec iterators): release does
    /// nothing.
    Borrowed = 0b01,
    /// Pinned by `pin_user_pages` (`FOLL_PIN`): released by unpinning. A device
    /// may be writing into such a page.
    Pinned = 0b10,
}

impl Origin {
    /// Every origin, in tag order.
    pub const ALL: [Origin; 3] = [Origin::Referenced, Origin::Borrowed, Origin::Pinned];

    /// The origin with tag value `tag` (the word's two highest bits).
    ///
    /// # Errors
    /// [`PfnError::UnknownOrigin`] for tag `0b11` and anything above.
    #[inline]
    pub const fn from_tag(tag: u8) -> Result<Self, PfnError> {
        match tag {
            0b00 => Ok(Self::Referenced),
            0b01 => Ok(Self::Borrowed),
            0b10 => Ok(Self::Pinned),
            _ => Err(PfnError::UnknownOrigin { tag }),
        }
    }

    /// The tag value (0..=2).
    #[inline]
    pub const fn tag(self) -> u8 {
        self as u8
    }

    /// The tag bits as they sit in the word.
    #[inline]
    pub const fn tag_bits(self) -> usize {
        (self as usize) << TAG_SHIFT
    }

    /// Whether the page was pinned (a device may DMA into it).
    #[inline]
    pub const fn is_pinned(self) -> bool {
        matches!(self, Self::Pinned)
    }

    /// Whether completing I/O on such a page must release something.
    #[inline]
    pub const fn needs_release(self) -> bool {
        !matches!(self, Self::Borrowed)
    }
}

/// The tagged word stored in a `bio_vec`: a [`Pfn`] and its [`Origin`], or
/// the "no page" sentinel [`TaggedPfn::NONE`].
///
/// A `TaggedPfn` is always valid: every way to build one checks the word, so
/// [`decode`](Self::decode) is a shift and a mask behind the sentinel test.
///
/// ```
/// use gupio_pfn::{Origin, Pfn, TaggedPfn};
/// let w = TaggedPfn::new(Pfn::new(3), Origin::Borrowed);
/// assert_eq!(w.pfn(), Some(Pfn::new(3)));
/// assert_eq!(w.origin(), Some(Origin::Borrowed));
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaggedPfn(usize);

impl TaggedPfn {
    /// The "no page" sentinel: the all-ones word (the 2019 proposal's `-1UL`).
    pub const NONE: TaggedPfn = TaggedPfn(usize::MAX);

    /// Encodes `pfn` with `origin`. Infallible: a [`Pfn`] always fits.
    ///
    /// ```
    /// use gupio_pfn::{Origin, Pfn, TaggedPfn, PIN_BIT};
    /// assert_eq!(TaggedPfn::new(Pfn::new(1), Origin::Pinned).to_raw(), PIN_BIT | 1);
    /// ```
    #[inline]
    pub const fn new(pfn: Pfn, origin: Origin) -> Self {
        Self(pfn.0 | origin.tag_bits())
    }

    /// Encodes a raw page-frame number with `origin`.
    ///
    /// # Errors
    /// [`PfnError::PfnOutOfRange`] if `raw_pfn` would overlap the tag bits.
    ///
    /// ```
    /// use gupio_pfn::{Origin, TaggedPfn};
    /// assert!(TaggedPfn::try_encode(5, Origin::Referenced).is_ok());
    /// assert!(TaggedPfn::try_encode(usize::MAX, Origin::Referenced).is_err());
    /// ```
    #[inline]
    pub const fn try_encode(raw_pfn: usize, origin: Origin) -> Result<Self, PfnError> {
        match Pfn::try_new(raw_pfn) {
            Ok(pfn) => Ok(Self::new(pfn, origin)),
            Err(e) => Err(e),
        }
    }

    /// Checks an arbitrary machine word (read from a descriptor, say).
    ///
    /// # Errors
    /// [`PfnError::InvalidTag`] if both tag bits are set and the word is not
    /// the sentinel.
    ///
    /// ```
    /// use gupio_pfn::{TaggedPfn, TAG_MASK};
    /// assert_eq!(TaggedPfn::from_raw(usize::MAX), Ok(TaggedPfn::NONE));
    /// assert!(TaggedPfn::from_raw(TAG_MASK).is_err());
    /// assert!(TaggedPfn::from_raw(12).is_ok());
    /// ```
    #[inline]
    pub const fn from_raw(word: usize) -> Result<Self, PfnError> {
        if word != usize::MAX && word & TAG_MASK == TAG_MASK {
            Err(PfnError::InvalidTag { word })
        } else {
            Ok(Self(word))
        }
    }

    /// The raw machine word.
    #[inline]
    pub const fn to_raw(self) -> usize {
        self.0
    }

    /// Whether this is the "no page" sentinel.
    #[inline]
    pub const fn is_none(self) -> bool {
        self.0 == usize::MAX
    }

    /// The page and its origin, or `None` for the sentinel.
    #[inline]
    pub const fn decode(self) -> Option<(Pfn, Origin)> {
        if self.is_none() {
            return None;
        }
        Some((Pfn(self.0 & PFN_MASK), self.origin_unchecked()))
    }

    /// The page-frame number, or `None` for the sentinel.
    #[inline]
    pub const fn pfn(self) -> Option<Pfn> {
        if self.is_none() {
            None
        } else {
            Some(Pfn(self.0 & PFN_MASK))
        }
    }

    /// The origin, or `None` for the sentinel.
    #[inline]
    pub const fn origin(self) -> Option<Origin> {
        if self.is_none() {
            None
        } else {
            Some(self.origin_unchecked())
        }
    }

    /// Whether the word carries the pin bit (never the sentinel): "came from GUP".
    #[inline]
    pub const fn is_pinned(self) -> bool {
        !self.is_none() && self.0 & PIN_BIT != 0
    }

    /// The same page with another origin; the sentinel stays the sentinel.
    #[inline]
    pub const fn with_origin(self, origin: Origin) -> Self {
        if self.is_none() {
            self
        } else {
            Self((self.0 & PFN_MASK) | origin.tag_bits())
        }
    }

    /// The word for the page `count` frames further on, keeping the origin:
    /// the single-page view of a multi-page bvec. `None` for the sentinel or
    /// when the frame number would leave the encodable range.
    #[inline]
    pub const fn nth_page(self, count: usize) -> Option<Self> {
        match self.decode() {
            Some((pfn, origin)) => match pfn.checked_add(count) {
                Some(next) => Some(Self::new(next, origin)),
                None => None,
            },
            None => None,
        }
    }

    /// The origin of a non-sentinel word: one shift and a table load (the
    /// shifted tag is at most 3, so the index needs no bounds check).
    #[inline]
    const fn origin_unchecked(self) -> Origin {
        ORIGIN_BY_TAG[self.0 >> TAG_SHIFT]
    }
}

/// Origins by tag value. Tag `0b11` occurs only in the sentinel, which every
/// caller excludes first; it maps to `Pinned`, the origin whose bit it has.
const ORIGIN_BY_TAG: [Origin; 4] = [
    Origin::Referenced,
    Origin::Borrowed,
    Origin::Pinned,
    Origin::Pinned,
];

impl Default for TaggedPfn {
    /// The "no page" sentinel.
    fn default() -> Self {
        Self::NONE
    }
}

impl fmt::Debug for TaggedPfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            None => f.write_str("TaggedPfn::NONE"),
            Some((pfn, origin)) => write!(f, "TaggedPfn({pfn:#x}, {origin:?})"),
        }
    }
}

impl TryFrom<usize> for TaggedPfn {
    type Error = PfnError;
    fn try_from(word: usize) -> Result<Self, PfnError> {
        Self::from_raw(word)
    }
}

impl From<TaggedPfn> for usize {
    fn from(word: TaggedPfn) -> usize {
        word.0
    }
}

/// The page size the embedder chose: 4, 16 or 64 KiB, picked once.
///
/// ```
/// use gupio_pfn::PageGeometry;
/// let g = PageGeometry::try_from_shift(14).unwrap();
/// assert_eq!(g.size(), 16 * 1024);
/// assert!(PageGeometry::try_from_shift(13).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageGeometry {
    shift: u32,
}

impl PageGeometry {
    /// 4 KiB pages (shift 12).
    pub const FOUR_KIB: PageGeometry = PageGeometry { shift: 12 };
    /// 16 KiB pages (shift 14).
    pub const SIXTEEN_KIB: PageGeometry = PageGeometry { shift: 14 };
    /// 64 KiB pages (shift 16).
    pub const SIXTY_FOUR_KIB: PageGeometry = PageGeometry { shift: 16 };

    /// The geometry for pages of `1 << shift` bytes.
    ///
    /// # Errors
    /// [`PfnError::UnsupportedPageShift`] unless `shift` is 12, 14 or 16.
    ///
    /// ```
    /// use gupio_pfn::PageGeometry;
    /// assert_eq!(PageGeometry::try_from_shift(16), Ok(PageGeometry::SIXTY_FOUR_KIB));
    /// ```
    #[inline]
    pub const fn try_from_shift(shift: u32) -> Result<Self, PfnError> {
        match shift {
            12 | 14 | 16 => Ok(Self { shift }),
            _ => Err(PfnError::UnsupportedPageShift { shift }),
        }
    }

    /// log2 of the page size.
    #[inline]
    pub const fn shift(self) -> u32 {
        self.shift
    }

    /// The page size in bytes.
    #[inline]
    pub const fn size(self) -> usize {
        1 << self.shift
    }

    /// The page size in bytes, as a `u32` (what a `bio_vec` length holds).
    #[inline]
    pub const fn size_u32(self) -> u32 {
        1 << self.shift
    }

    /// The page size in bytes, as a `u64`.
    #[inline]
    pub const fn size_u64(self) -> u64 {
        1 << self.shift
    }

    /// The mask of the in-page offset bits of an address.
    #[inline]
    pub const fn offset_mask(self) -> u64 {
        self.size_u64() - 1
    }

    /// The highest physical address whose page is encodable (at most `u64::MAX`).
    #[inline]
    pub const fn max_phys_addr(self) -> u64 {
        let max = usize_to_u64(Pfn::MAX.0);
        if max > (u64::MAX >> self.shift) {
            u64::MAX
        } else {
            ((max + 1) << self.shift) - 1
        }
    }
}

// The word is exactly one machine word, so a bio_vec keeps its size.
static_assertions::assert_eq_size!(TaggedPfn, usize);
static_assertions::assert_eq_size!(Pfn, usize);
// 52-bit physical addresses with 4 KiB pages need 40-bit frame numbers.
#[cfg(target_pointer_width = "64")]
static_assertions::const_assert!(Pfn::MAX.0 >= (1 << 40) - 1);
// 36-bit (PAE) physical addresses with 4 KiB pages need 24-bit frame numbers.
#[cfg(target_pointer_width = "32")]
static_assertions::const_assert!(Pfn::MAX.0 >= (1 << 24) - 1);
// The sentinel is not any valid origin's encoding.
static_assertions::const_assert!(usize::MAX & TAG_MASK == TAG_MASK);

#[cfg(test)]
mod tests;
