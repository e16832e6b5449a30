//! Folios: naturally aligned runs of `2^order` physically contiguous pages,
//! the unit both the bio builder (`add_folio`) and the pin tracker (one
//! counter word per folio) work in.

use core::fmt;

use crate::{PageGeometry, Pfn, PfnError};

/// The order of a folio: it spans `2^order` physically contiguous pages.
///
/// Order 0 is a small page. Orders above [`FolioOrder::MAX`] are refused.
///
/// ```
/// use gupio_pfn::FolioOrder;
/// let pmd = FolioOrder::try_new(9).unwrap();
/// assert_eq!(pmd.nr_pages(), 512);
/// assert!(pmd.is_large());
/// assert!(FolioOrder::try_new(25).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FolioOrder(u8);

impl FolioOrder {
    /// A small page (one page).
    pub const SMALL: FolioOrder = FolioOrder(0);
    /// The largest order: 2^24 pages (64 GiB of 4 KiB pages). It keeps a
    /// folio's page count below the pin tracker's exact pin-count limit and
    /// every aligned folio inside the encodable frame range on 32-bit too.
    pub const MAX: FolioOrder = FolioOrder(24);

    /// The order `order`.
    ///
    /// # Errors
    /// [`PfnError::OrderTooLarge`] if `order > FolioOrder::MAX`.
    pub const fn try_new(order: u32) -> Result<Self, PfnError> {
        if order > Self::MAX.0 as u32 {
            return Err(PfnError::OrderTooLarge { order });
        }
        let bytes = order.to_le_bytes();
        Ok(Self(bytes[0]))
    }

    /// The order as a number.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0 as u32
    }

    /// How many pages a folio of this order spans.
    #[inline]
    pub const fn nr_pages(self) -> usize {
        1 << self.0
    }

    /// Whether the folio is large (more than one page).
    #[inline]
    pub const fn is_large(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for FolioOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order {}", self.0)
    }
}

/// A naturally aligned run of `2^order` physically contiguous pages: its head
/// frame is a multiple of its page count.
///
/// ```
/// use gupio_pfn::{Folio, FolioOrder, PageGeometry, Pfn};
/// let pmd = FolioOrder::try_new(9)?;
/// let folio = Folio::new(Pfn::new(0x200), pmd)?; // a 2 MiB folio of 4 KiB pages
/// assert_eq!(folio.nr_pages(), 512);
/// assert_eq!(folio.size(PageGeometry::FOUR_KIB), 2 << 20);
/// assert!(folio.contains(Pfn::new(0x3ff)));
/// assert!(Folio::new(Pfn::new(0x201), pmd).is_err()); // head not aligned
/// # Ok::<(), gupio_pfn::PfnError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Folio {
    head: Pfn,
    order: FolioOrder,
}

impl Folio {
    /// The folio of `2^order` pages starting at `head`.
    ///
    /// # Errors
    /// [`PfnError::UnalignedFolio`] if `head` is not a multiple of `2^order`.
    /// (An aligned head at or below [`Pfn::MAX`] always has its last page
    /// below it too: `Pfn::MAX` is all ones below the tag bits.)
    #[inline]
    pub const fn new(head: Pfn, order: FolioOrder) -> Result<Self, PfnError> {
        if head.get() & (order.nr_pages() - 1) != 0 {
            return Err(PfnError::UnalignedFolio {
                head: head.get(),
                order: order.get(),
            });
        }
        Ok(Self { head, order })
    }

    /// The one-page folio at `pfn`: any page is one.
    #[inline]
    pub const fn single(pfn: Pfn) -> Self {
        Self {
            head: pfn,
            order: FolioOrder::SMALL,
        }
    }

    /// The first page.
    #[inline]
    pub const fn head(&self) -> Pfn {
        self.head
    }

    /// The order.
    #[inline]
    pub const fn order(&self) -> FolioOrder {
        self.order
    }

    /// The number of pages, `2^order`.
    #[inline]
    pub const fn nr_pages(&self) -> usize {
        self.order.nr_pages()
    }

    /// Whether the folio is large (more than one page).
    #[inline]
    pub const fn is_large(&self) -> bool {
        self.order.is_large()
    }

    /// The size in bytes with pages of `geometry`.
    #[inline]
    pub const fn size(&self, geometry: PageGeometry) -> u64 {
        // order <= 24 and shift <= 16: at most 2^40, no overflow.
        1 << (self.order.get() + geometry.shift())
    }

    /// Whether `pfn` is one of the folio's pages.
    #[inline]
    pub const fn contains(&self, pfn: Pfn) -> bool {
        self.pages_from(pfn) > 0
    }

    /// How many of the folio's pages lie at or after `pfn` (0 if `pfn` is
    /// not in the folio).
    #[inline]
    pub const fn pages_from(&self, pfn: Pfn) -> usize {
        match pfn.get().checked_sub(self.head.get()) {
            Some(index) if index < self.nr_pages() => self.nr_pages() - index,
            _ => 0,
        }
    }

    /// The folio of order `order` that contains `pfn`: its head is `pfn`
    /// rounded down to a multiple of `2^order`.
    #[inline]
    pub const fn containing(pfn: Pfn, order: FolioOrder) -> Self {
        Self {
            head: Pfn::new_truncate(pfn.get() & !(order.nr_pages() - 1)),
            order,
        }
    }
}

#[cfg(test)]
mod tests;
