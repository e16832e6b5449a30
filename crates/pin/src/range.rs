//! `PageRange`: a run of physically contiguous pages.

use gupio_pfn::Pfn;

use crate::PinError;

/// A run of physically contiguous pages: a first frame and a page count.
///
/// The whole run is encodable (its last frame is at most [`Pfn::MAX`]).
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::PageRange;
/// let range = PageRange::try_new(Pfn::new(8), 4).unwrap();
/// assert_eq!(range.last(), Some(Pfn::new(11)));
/// assert!(PageRange::try_new(Pfn::MAX, 2).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRange {
    first: Pfn,
    count: usize,
}

impl PageRange {
    /// The `count` pages from `first`.
    ///
    /// # Panics
    /// If the last page would be above [`Pfn::MAX`]. For constants; use
    /// [`PageRange::try_new`] on values that come from a caller.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::new(Pfn::new(1), 3).len(), 3);
    /// ```
    #[track_caller]
    pub const fn new(first: Pfn, count: usize) -> Self {
        match Self::try_new(first, count) {
            Ok(range) => range,
            Err(_) => panic!("page range runs past Pfn::MAX"),
        }
    }

    /// The `count` pages from `first`, if the last one is encodable.
    ///
    /// # Errors
    /// [`PinError::RangeOverflow`] if the last page would be above [`Pfn::MAX`].
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{PageRange, PinError};
    /// assert!(PageRange::try_new(Pfn::MAX, 1).is_ok());
    /// assert_eq!(
    ///     PageRange::try_new(Pfn::MAX, 2),
    ///     Err(PinError::RangeOverflow { first: Pfn::MAX, count: 2 })
    /// );
    /// ```
    pub const fn try_new(first: Pfn, count: usize) -> Result<Self, PinError> {
        if count > 0 && first.checked_add(count - 1).is_none() {
            return Err(PinError::RangeOverflow { first, count });
        }
        Ok(Self { first, count })
    }

    /// The single page `pfn`.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// assert_eq!(gupio_pin::PageRange::single(Pfn::new(5)).len(), 1);
    /// ```
    pub const fn single(pfn: Pfn) -> Self {
        Self {
            first: pfn,
            count: 1,
        }
    }

    /// The first page.
    pub const fn first(&self) -> Pfn {
        self.first
    }

    /// The last page, or `None` for an empty range.
    pub const fn last(&self) -> Option<Pfn> {
        if self.count == 0 {
            None
        } else {
            Some(Pfn::new_truncate(self.first.get() + (self.count - 1)))
        }
    }

    /// The number of pages.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether the range has no pages.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `pfn` is in the range.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// let r = gupio_pin::PageRange::new(Pfn::new(5), 2);
    /// assert!(r.contains(Pfn::new(6)) && !r.contains(Pfn::new(7)));
    /// ```
    pub const fn contains(&self, pfn: Pfn) -> bool {
        match pfn.get().checked_sub(self.first.get()) {
            Some(offset) => offset < self.count,
            None => false,
        }
    }

    /// The page `offset` pages into the range (`offset < len`).
    pub(crate) const fn nth(&self, offset: usize) -> Pfn {
        // first + offset <= first + (count - 1), checked encodable in try_new.
        Pfn::new_truncate(self.first.get() + offset)
    }

    /// The `count` pages from `first`, known to lie inside one folio of a
    /// memory map (so every one is encodable).
    #[inline]
    pub(crate) const fn inside_folio(first: Pfn, count: usize) -> Self {
        Self { first, count }
    }

    /// The first `count` pages of the range (`count <= len`).
    pub(crate) const fn prefix(&self, count: usize) -> Self {
        Self {
            first: self.first,
            count,
        }
    }
}

#[cfg(test)]
mod tests;
