//! `BioVec`, the 16-byte descriptor of one physically contiguous byte range.

use core::fmt;

use gupio_pfn::{Origin, PageGeometry, Pfn, TaggedPfn};

/// One physically contiguous byte range and where its pages came from: the
/// 2019 proposal's `struct bio_vec { bv_pfn; bv_len; bv_offset }`.
///
/// The first field is a [`TaggedPfn`], so the page and its [`Origin`] are
/// reachable only through [`page`](Self::page), [`origin`](Self::origin) and
/// [`decode`](Self::decode). A bvec may span several physically contiguous
/// pages (a multi-page bvec): its bytes start `offset` bytes into page
/// `page` and run for `len` bytes, across page boundaries.
/// [`pages`](Self::pages) gives the single-page view, each piece clipped to
/// a page and carrying the bvec's origin.
///
/// A `BioVec` is a plain descriptor and holds no reference by itself; a
/// [`Bio`](crate::Bio) keeps the rules (non-empty, offset inside the first
/// page, every page encodable) for the bvecs it stores. The no-page bvec
/// [`BioVec::NONE`] is representable, always has length 0, and is handled
/// everywhere: it has no pages, iteration skips it, and adding it to a bio is
/// [`BioError::NoPage`](crate::BioError::NoPage).
///
/// ```
/// use gupio_bio::{BioVec, Origin, PageGeometry, Pfn};
/// let bv = BioVec::new(Pfn::new(0x100), Origin::Pinned, 6000, 3000);
/// let g = PageGeometry::FOUR_KIB;
/// assert_eq!(bv.page_count(g), 3); // bytes 3000..9000 touch pages 0x100..=0x102
/// let pieces: Vec<_> = bv.pages(g).map(|p| (p.page(), p.offset(), p.len())).collect();
/// assert_eq!(pieces, [
///     (Some(Pfn::new(0x100)), 3000, 1096),
///     (Some(Pfn::new(0x101)), 0, 4096),
///     (Some(Pfn::new(0x102)), 0, 808),
/// ]);
/// assert!(bv.pages(g).all(|p| p.origin() == Some(Origin::Pinned)));
/// ```
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BioVec {
    word: TaggedPfn,
    len: u32,
    offset: u32,
}

// Same size as Linux's `struct bio_vec`: one word and two 32-bit fields.
#[cfg(target_pointer_width = "64")]
static_assertions::assert_eq_size!(BioVec, [u8; 16]);
#[cfg(target_pointer_width = "32")]
static_assertions::assert_eq_size!(BioVec, [u8; 12]);
// Page indices inside a bvec are computed from u32 offsets as usize.
static_assertions::const_assert!(usize::BITS >= u32::BITS);

impl BioVec {
    /// The no-page bvec: the sentinel word, length 0, offset 0.
    pub const NONE: BioVec = BioVec {
        word: TaggedPfn::NONE,
        len: 0,
        offset: 0,
    };

    /// A bvec of `len` bytes starting `offset` bytes into page `pfn`.
    ///
    /// Any values are accepted; a bio checks them when the bvec is added.
    ///
    /// ```
    /// use gupio_bio::{BioVec, Origin, Pfn};
    /// let bv = BioVec::new(Pfn::new(7), Origin::Referenced, 512, 1024);
    /// assert_eq!(bv.decode(), Some((Pfn::new(7), Origin::Referenced)));
    /// assert_eq!((bv.len(), bv.offset()), (512, 1024));
    /// ```
    #[inline]
    pub const fn new(pfn: Pfn, origin: Origin, len: u32, offset: u32) -> Self {
        Self {
            word: TaggedPfn::new(pfn, origin),
            len,
            offset,
        }
    }

    /// A bvec from an already tagged word. The sentinel gives
    /// [`BioVec::NONE`], whatever `len` and `offset` say: a bvec without a
    /// page has no bytes.
    #[inline]
    pub const fn from_tagged(word: TaggedPfn, len: u32, offset: u32) -> Self {
        if word.is_none() {
            Self::NONE
        } else {
            Self { word, len, offset }
        }
    }

    /// The tagged word, as a descriptor stores it.
    #[inline]
    pub const fn tagged(&self) -> TaggedPfn {
        self.word
    }

    /// The page `offset` counts from, or `None` for [`BioVec::NONE`].
    #[inline]
    pub const fn page(&self) -> Option<Pfn> {
        self.word.pfn()
    }

    /// Where the bvec's pages came from, or `None` for [`BioVec::NONE`].
    #[inline]
    pub const fn origin(&self) -> Option<Origin> {
        self.word.origin()
    }

    /// The page and the origin, or `None` for [`BioVec::NONE`].
    #[inline]
    pub const fn decode(&self) -> Option<(Pfn, Origin)> {
        self.word.decode()
    }

    /// Whether this is the no-page bvec.
    #[inline]
    pub const fn is_none(&self) -> bool {
        self.word.is_none()
    }

    /// The length in bytes (`bv_len`).
    #[inline]
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Whether the bvec covers no bytes ([`BioVec::NONE`] never does).
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first byte's offset into [`page`](Self::page) (`bv_offset`).
    #[inline]
    pub const fn offset(&self) -> u32 {
        self.offset
    }

    /// The page holding the first byte; `None` if empty, without a page, or not encodable.
    #[inline]
    pub fn first_page(&self, geometry: PageGeometry) -> Option<Pfn> {
        if self.is_empty() {
            return None;
        }
        self.pfn_at(self.offset_u64(), geometry)
    }

    /// The page holding the last byte; `None` as for [`first_page`](Self::first_page).
    #[inline]
    pub fn last_page(&self, geometry: PageGeometry) -> Option<Pfn> {
        if self.is_empty() {
            return None;
        }
        self.pfn_at(self.end_u64() - 1, geometry)
    }

    /// How many pages the bytes touch: 0 for an empty or no-page bvec.
    #[inline]
    pub fn page_count(&self, geometry: PageGeometry) -> usize {
        if self.is_empty() {
            return 0;
        }
        let shift = geometry.shift();
        let pages = ((self.end_u64() - 1) >> shift) - (self.offset_u64() >> shift) + 1;
        // At most (2^32 + 2^32) >> 12 = 2^21 pages: fits every usize.
        usize::try_from(pages).unwrap_or(usize::MAX)
    }

    /// The bytes `skip .. skip + len` of this bvec as a bvec whose offset is
    /// below the page size. `None` for the no-page bvec or an unencodable
    /// page; the caller keeps `skip + len` within the bvec.
    #[inline]
    pub(crate) fn window(&self, skip: u32, len: u32, geometry: PageGeometry) -> Option<Self> {
        let start = self.offset_u64() + u64::from(skip);
        let word = self.word.nth_page(page_index(start, geometry)?)?;
        Some(Self {
            word,
            len,
            offset: in_page(start, geometry),
        })
    }

    /// The position just past the last byte: (page, offset in that page),
    /// with the offset below the page size. `None` for the no-page bvec or
    /// when that page is not encodable.
    #[inline]
    pub(crate) fn end(&self, geometry: PageGeometry) -> Option<(Pfn, u32)> {
        let end = self.end_u64();
        Some((self.pfn_at(end, geometry)?, in_page(end, geometry)))
    }

    /// The page holding byte `at` (counted from the start of `page()`).
    #[inline]
    fn pfn_at(&self, at: u64, geometry: PageGeometry) -> Option<Pfn> {
        self.page()?.checked_add(page_index(at, geometry)?)
    }

    #[inline]
    const fn offset_u64(&self) -> u64 {
        self.offset as u64
    }

    #[inline]
    const fn end_u64(&self) -> u64 {
        self.offset as u64 + self.len as u64
    }
}

/// The page index of byte `at` counted from a page boundary.
#[inline]
pub(crate) fn page_index(at: u64, geometry: PageGeometry) -> Option<usize> {
    usize::try_from(at >> geometry.shift()).ok()
}

/// The offset of byte `at` inside its page (below the page size, so a u32).
#[inline]
pub(crate) fn in_page(at: u64, geometry: PageGeometry) -> u32 {
    // Pages are at most 64 KiB: the masked value always fits.
    u32::try_from(at & geometry.offset_mask()).unwrap_or(0)
}

impl Default for BioVec {
    /// The no-page bvec.
    fn default() -> Self {
        Self::NONE
    }
}

impl fmt::Debug for BioVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decode() {
            None => f.write_str("BioVec::NONE"),
            Some((pfn, origin)) => write!(
                f,
                "BioVec {{ page: {pfn:#x}, origin: {origin:?}, len: {}, offset: {} }}",
                self.len, self.offset
            ),
        }
    }
}

#[cfg(test)]
mod tests;
