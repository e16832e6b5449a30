//! The counters a kernel embeds in each page: reference count, pin count,
//! flags and folio shape.

use core::fmt;

use gupio_pfn::FolioOrder;
use gupio_sync::atomic::{fence, AtomicU32, Ordering};
use gupio_sync::const_unless_loom;

use crate::PinError;

/// References one pin adds to a small page (Linux's `GUP_PIN_COUNTING_BIAS`).
///
/// A small page has no pin count of its own: each pin adds this many
/// references, so a refcount at or above it means "maybe pinned".
///
/// ```
/// assert_eq!(gupio_pin::GUP_PIN_COUNTING_BIAS, 1024);
/// ```
pub const GUP_PIN_COUNTING_BIAS: u32 = 1 << 10;

/// The highest reference count a get or pin may leave behind: `i32::MAX`.
///
/// Every increment checks this ceiling before it commits (a compare-and-swap
/// loop), so no number of racing pinners can push a count past it. The other
/// half of the `u32` range is headroom: it keeps the count from wrapping even
/// if an embedder adds references outside gupio without checking, and it keeps
/// the count positive when read as Linux's signed `atomic_t`. A small page
/// holds at most `REFCOUNT_MAX / GUP_PIN_COUNTING_BIAS` (about 2^21) pins.
///
/// ```
/// use gupio_pin::{GUP_PIN_COUNTING_BIAS, REFCOUNT_MAX};
/// assert_eq!(REFCOUNT_MAX, i32::MAX as u32);
/// assert_eq!(REFCOUNT_MAX / GUP_PIN_COUNTING_BIAS, (1 << 21) - 1);
/// ```
pub const REFCOUNT_MAX: u32 = u32::MAX >> 1;

bitflags::bitflags! {
    /// Per-folio state bits kept in [`PageCounters`] (on the folio's head).
    ///
    /// ```
    /// use gupio_pin::PageFlags;
    /// let f = PageFlags::DIRTY | PageFlags::UPTODATE;
    /// assert!(f.contains(PageFlags::DIRTY));
    /// assert!(!f.contains(PageFlags::LOCKED));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PageFlags: u32 {
        /// The contents differ from the backing store and must be written back.
        const DIRTY = 1 << 0;
        /// The folio lock is held (see [`PageCounters::try_lock`]).
        const LOCKED = 1 << 1;
        /// Writeback of the folio is in flight.
        const WRITEBACK = 1 << 2;
        /// The contents are valid (read from the backing store or written).
        const UPTODATE = 1 << 3;
    }
}

/// Where a page sits in its folio: the folio's order and the page's index in
/// it (0 for the head).
///
/// Every page of a folio records the shape, so the head of any page is its
/// frame number minus its index (Linux keeps `compound_head` in each tail).
///
/// ```
/// use gupio_pin::{FolioOrder, FolioShape};
/// let order = FolioOrder::try_new(2).unwrap();
/// let tail = FolioShape::new(order, 3).unwrap();
/// assert_eq!(tail.index(), 3);
/// assert!(FolioShape::new(order, 4).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FolioShape {
    order: FolioOrder,
    index: u32,
}

impl FolioShape {
    /// A small page: order 0, index 0.
    pub const SMALL: FolioShape = FolioShape {
        order: FolioOrder::SMALL,
        index: 0,
    };

    /// Page `index` of a folio of order `order`.
    ///
    /// # Errors
    /// [`PinError::InvalidFolioShape`] if `index >= 2^order`.
    ///
    /// ```
    /// use gupio_pin::{FolioOrder, FolioShape};
    /// assert!(FolioShape::new(FolioOrder::SMALL, 0).is_ok());
    /// ```
    pub const fn new(order: FolioOrder, index: u32) -> Result<Self, PinError> {
        if (index as usize) >= order.nr_pages() {
            return Err(PinError::InvalidFolioShape {
                order: order.get(),
                index,
            });
        }
        Ok(Self { order, index })
    }

    /// The head page of a folio of order `order`.
    ///
    /// ```
    /// use gupio_pin::{FolioOrder, FolioShape};
    /// assert!(FolioShape::head(FolioOrder::MAX).is_head());
    /// ```
    pub const fn head(order: FolioOrder) -> Self {
        Self { order, index: 0 }
    }

    /// The folio's order.
    #[inline]
    pub const fn order(self) -> FolioOrder {
        self.order
    }

    /// The page's index in its folio.
    #[inline]
    pub const fn index(self) -> u32 {
        self.index
    }

    /// Whether the page is its folio's head.
    #[inline]
    pub const fn is_head(self) -> bool {
        self.index == 0
    }

    /// The packed word: the order in bits 7..0, the index in bits 31..8
    /// (an index below 2^24 always fits, since the order is at most 24).
    const fn to_word(self) -> u32 {
        (self.index << 8) | self.order.get()
    }

    /// Unpacks a word written by [`to_word`](Self::to_word). Only
    /// `to_word` writes the word, so the order is valid; were it not, the
    /// shape reads as a tail no folio lookup accepts (index `u32::MAX`), and
    /// the lookup reports the page's counters as corrupt.
    const fn from_word(word: u32) -> Self {
        let bytes = word.to_le_bytes();
        match FolioOrder::try_new(bytes[0] as u32) {
            Ok(order) => Self {
                order,
                index: word >> 8,
            },
            Err(_) => Self {
                order: FolioOrder::SMALL,
                index: u32::MAX,
            },
        }
    }
}

/// Why a checked increment refused to commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddRefsError {
    /// The count is zero: the page is free, nobody may take a reference.
    Free,
    /// The count would pass [`REFCOUNT_MAX`]; carries the count seen.
    Overflow(u32),
}

/// Why a checked decrement refused to commit; nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubError {
    /// Fewer pins are held than the caller drops; carries both counts seen.
    Pins {
        /// The reference count seen.
        refcount: u32,
        /// The pin count seen.
        pincount: u32,
    },
    /// Fewer references are held than the caller drops (with its pins, if
    /// any, present); carries both counts seen.
    Refs {
        /// The reference count seen.
        refcount: u32,
        /// The pin count seen.
        pincount: u32,
    },
}

/// The counters a kernel embeds in each page's descriptor (its `struct page`).
///
/// Only a folio's head uses the reference count, the pin count and the flags;
/// every page records its [`FolioShape`]. Sixteen bytes: the reference count
/// and the exact pin count of a large folio (Linux keeps the latter in the
/// second page's descriptor; here every descriptor has room for it), the
/// [`PageFlags`] and the shape.
///
/// **Layout of the counts.** Where the target has 64-bit atomics, the
/// reference count (low half) and the pin count (high half) share one
/// 64-bit word, so a pin or unpin of any number of pages of a large folio
/// is one read-modify-write that checks both counts at once. Elsewhere
/// (thumbv7em, or any build with `--cfg gupio_split_counts`, which the test
/// suite uses to run this layout on the host) they are two 32-bit words: a
/// pin takes the references first, then the pins, and an unpin goes the
/// other way, so the pin count never exceeds the reference count and
/// [`maybe_dma_pinned`](crate::maybe_dma_pinned) never misses a pin. Small
/// pages cost one read-modify-write in both layouts (a pin is
/// [`GUP_PIN_COUNTING_BIAS`] references).
///
/// The counts change only through a [`Tracker`](crate::Tracker), which keeps
/// them consistent; the embedder's allocator sets them with
/// [`init`](Self::init) when it hands a page out.
///
/// ```
/// use gupio_pin::{FolioShape, PageCounters};
/// static PAGE: PageCounters = PageCounters::new();
/// assert_eq!(PAGE.refcount(), 0, "a new page is free");
/// PAGE.init(1, FolioShape::SMALL);
/// assert_eq!(PAGE.refcount(), 1);
/// ```
pub struct PageCounters {
    counts: Counts,
    flags: AtomicU32,
    shape: AtomicU32,
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(PageCounters, [u32; 4]);

impl PageCounters {
    /// Whether this build keeps a large folio's reference and pin counts in
    /// one 64-bit word (one read-modify-write per pin or unpin of a folio
    /// run), or in two 32-bit words (targets without 64-bit atomics, and
    /// `--cfg gupio_split_counts`).
    pub const COUNTS_IN_ONE_WORD: bool =
        cfg!(all(target_has_atomic = "64", not(gupio_split_counts)));

    const_unless_loom! {
        /// A free small page: every count zero, no flags.
        ///
        /// `const` (except under loom) so a kernel can keep its memory map in
        /// a `static`.
        ///
        /// ```
        /// let page = gupio_pin::PageCounters::new();
        /// assert_eq!((page.refcount(), page.pincount()), (0, 0));
        /// ```
        pub fn new() -> Self {
            Self {
                counts: Counts::new(),
                flags: AtomicU32::new(0),
                shape: AtomicU32::new(FolioShape::SMALL.to_word()),
            }
        }
    }

    /// Resets the page for the embedder's allocator: sets the reference
    /// count (1 for a folio's head when it is handed out, 0 for its tails and
    /// for free pages) and the shape, clears the pin count and the flags.
    ///
    /// Only for a page nobody else references: the allocator owns it.
    ///
    /// ```
    /// use gupio_pin::{FolioOrder, FolioShape, PageCounters};
    /// let tail = PageCounters::new();
    /// let order = FolioOrder::try_new(1).unwrap();
    /// tail.init(0, FolioShape::new(order, 1).unwrap());
    /// assert_eq!(tail.shape().index(), 1);
    /// ```
    pub fn init(&self, refcount: u32, shape: FolioShape) {
        // Relaxed: the allocator owns the page; the shape and flags reach
        // other threads through the Release store of the counts below.
        self.flags.store(0, Ordering::Relaxed);
        self.shape.store(shape.to_word(), Ordering::Relaxed);
        self.counts.init(refcount);
    }

    /// A snapshot of the reference count (a folio's count lives on its head).
    #[inline]
    pub fn refcount(&self) -> u32 {
        self.counts.refcount()
    }

    /// A snapshot of the exact pin count (meaningful on a large folio's head).
    #[inline]
    pub fn pincount(&self) -> u32 {
        self.counts.pincount()
    }

    /// The page's place in its folio.
    ///
    /// Stable while the caller holds a reference on the folio: only the
    /// allocator changes it, and only for a free page.
    #[inline]
    pub fn shape(&self) -> FolioShape {
        // Relaxed: written by the allocator before the page was published
        // (see `init`); the reference the caller holds orders it.
        FolioShape::from_word(self.shape.load(Ordering::Relaxed))
    }

    /// The folio's flags.
    #[inline]
    pub fn flags(&self) -> PageFlags {
        // Acquire: pairs with the AcqRel flag updates, so a thread that sees
        // DIRTY or UPTODATE also sees what the setter did before setting it.
        PageFlags::from_bits_retain(self.flags.load(Ordering::Acquire))
    }

    /// Sets `flags` and returns the flags as they were before.
    #[inline]
    pub fn set_flags(&self, flags: PageFlags) -> PageFlags {
        // AcqRel: fully ordered like Linux's test_and_set_bit; pairs with
        // the Acquire of `flags` and with other flag updates.
        PageFlags::from_bits_retain(self.flags.fetch_or(flags.bits(), Ordering::AcqRel))
    }

    /// Clears `flags` and returns the flags as they were before.
    #[inline]
    pub fn clear_flags(&self, flags: PageFlags) -> PageFlags {
        // AcqRel: fully ordered like Linux's test_and_clear_bit; pairs with
        // the Acquire of `flags` and with other flag updates.
        PageFlags::from_bits_retain(self.flags.fetch_and(!flags.bits(), Ordering::AcqRel))
    }

    /// Takes the folio lock bit if it is free.
    ///
    /// This is the lock the default [`PageOps::lock_folio`](crate::PageOps::lock_folio)
    /// spins on; a kernel with a scheduler sleeps instead.
    ///
    /// ```
    /// let page = gupio_pin::PageCounters::new();
    /// assert!(page.try_lock());
    /// assert!(!page.try_lock());
    /// page.unlock();
    /// assert!(page.try_lock());
    /// ```
    #[inline]
    pub fn try_lock(&self) -> bool {
        // Acquire: pairs with the Release in `unlock`, so the previous
        // holder's writes under the lock are visible to the new holder.
        let old = self
            .flags
            .fetch_or(PageFlags::LOCKED.bits(), Ordering::Acquire);
        old & PageFlags::LOCKED.bits() == 0
    }

    /// Releases the folio lock bit.
    #[inline]
    pub fn unlock(&self) {
        // Release: pairs with the Acquire in `try_lock` of the next holder.
        self.flags
            .fetch_and(!PageFlags::LOCKED.bits(), Ordering::Release);
    }

    /// The reference count, ordered after every earlier release of it.
    #[inline]
    pub(crate) fn refcount_acquire(&self) -> u32 {
        self.counts.refcount_acquire()
    }

    /// The pin count, ordered after every earlier unpin.
    #[inline]
    pub(crate) fn pincount_acquire(&self) -> u32 {
        self.counts.pincount_acquire()
    }

    /// Adds `refs` references and `pins` pins unless the page is free or
    /// the reference count would pass [`REFCOUNT_MAX`]; on refusal nothing
    /// changed. `pins` is at most `refs` (each pin holds a reference).
    #[inline]
    pub(crate) fn try_add(&self, refs: u32, pins: u32) -> Result<(), AddRefsError> {
        self.counts.try_add(refs, pins)
    }

    /// Drops `refs` references and `pins` pins unless fewer are held (or the
    /// pins left would exceed the references left); on refusal nothing
    /// changed. Returns the new reference count; when it is 0 the caller
    /// owns the last reference and must free the folio: the Acquire fence
    /// that freeing needs has already run.
    #[inline]
    pub(crate) fn try_sub(&self, refs: u32, pins: u32) -> Result<u32, SubError> {
        self.counts.try_sub(refs, pins)
    }

    /// Sets both counts as they are, consistent or not: for tests that
    /// need a corrupt page.
    #[cfg(test)]
    pub(crate) fn force_counts(&self, refcount: u32, pincount: u32) {
        self.counts.force(refcount, pincount);
    }
}

/// The reference and pin counts in one 64-bit word: the reference count in
/// bits 31..0, the pin count in bits 63..32.
#[cfg(all(target_has_atomic = "64", not(gupio_split_counts)))]
struct Counts {
    word: gupio_sync::atomic::AtomicU64,
}

#[cfg(all(target_has_atomic = "64", not(gupio_split_counts)))]
impl Counts {
    const_unless_loom! {
        fn new() -> Self {
            Self {
                word: gupio_sync::atomic::AtomicU64::new(0),
            }
        }
    }

    /// The reference count (low half) and the pin count (high half).
    #[inline(always)]
    const fn split(word: u64) -> (u32, u32) {
        let bytes = word.to_le_bytes();
        (
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        )
    }

    #[inline(always)]
    const fn join(refcount: u32, pincount: u32) -> u64 {
        ((pincount as u64) << 32) | refcount as u64
    }

    fn init(&self, refcount: u32) {
        // Release: pairs with the Acquire loads of `maybe_dma_pinned` and of
        // whoever receives the page, so they see the reset flags and shape.
        self.word.store(Self::join(refcount, 0), Ordering::Release);
    }

    #[cfg(test)]
    fn force(&self, refcount: u32, pincount: u32) {
        self.word
            .store(Self::join(refcount, pincount), Ordering::Release);
    }

    #[inline]
    fn refcount(&self) -> u32 {
        // Relaxed: a diagnostic snapshot; it orders nothing.
        Self::split(self.word.load(Ordering::Relaxed)).0
    }

    #[inline]
    fn pincount(&self) -> u32 {
        // Relaxed: a diagnostic snapshot; it orders nothing.
        Self::split(self.word.load(Ordering::Relaxed)).1
    }

    #[inline]
    fn refcount_acquire(&self) -> u32 {
        // Acquire: pairs with the Release decrement of an unpin or put, so a
        // caller who reads "not pinned" sees everything the unpinner did
        // before unpinning.
        Self::split(self.word.load(Ordering::Acquire)).0
    }

    #[inline]
    fn pincount_acquire(&self) -> u32 {
        // Acquire: pairs with the Release decrement of an unpin (`try_sub`).
        Self::split(self.word.load(Ordering::Acquire)).1
    }

    #[inline]
    fn try_add(&self, refs: u32, pins: u32) -> Result<(), AddRefsError> {
        // Relaxed: the value only seeds the compare-and-swap below.
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let (refcount, pincount) = Self::split(current);
            if refcount == 0 {
                return Err(AddRefsError::Free);
            }
            if refcount > REFCOUNT_MAX || refs > REFCOUNT_MAX - refcount {
                return Err(AddRefsError::Overflow(refcount));
            }
            // The pin count never exceeds the reference count, so it cannot
            // overflow where the references did not; a corrupt word that
            // says otherwise is refused like an overflow.
            let Some(pincount) = pincount.checked_add(pins) else {
                return Err(AddRefsError::Overflow(refcount));
            };
            // Relaxed on success: a new reference or pin is derived from one
            // the caller already holds (Arc::clone), so it publishes
            // nothing; a caller that needs other CPUs to see the pin before
            // it goes on issues a SeqCst fence (pin_user_pages does).
            // Relaxed on failure: the fresh value only feeds the next try.
            match self.word.compare_exchange_weak(
                current,
                Self::join(refcount + refs, pincount),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    probe::record_rmw();
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }

    #[inline]
    fn try_sub(&self, refs: u32, pins: u32) -> Result<u32, SubError> {
        // Relaxed: the value only seeds the compare-and-swap below.
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let (refcount, pincount) = Self::split(current);
            if pincount < pins {
                return Err(SubError::Pins { refcount, pincount });
            }
            if refcount < refs || refcount - refs < pincount - pins {
                return Err(SubError::Refs { refcount, pincount });
            }
            let new = refcount - refs;
            // Release on success: pairs with the Acquire fence below, run by
            // whoever drops the last reference, so this holder's accesses to
            // the page happen before it is freed; and with the Acquire load
            // of `maybe_dma_pinned`, so "not pinned" comes after the
            // unpinner's accesses. Relaxed on failure: feeds the next try.
            match self.word.compare_exchange_weak(
                current,
                Self::join(new, pincount - pins),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    probe::record_rmw();
                    if new == 0 {
                        // Acquire: pairs with the Release decrements of
                        // every other holder before the page is freed.
                        fence(Ordering::Acquire);
                    }
                    return Ok(new);
                }
                Err(seen) => current = seen,
            }
        }
    }
}

/// The reference and pin counts in two 32-bit words, for targets without
/// 64-bit atomics (and `--cfg gupio_split_counts`).
#[cfg(not(all(target_has_atomic = "64", not(gupio_split_counts))))]
struct Counts {
    refcount: AtomicU32,
    pincount: AtomicU32,
}

#[cfg(not(all(target_has_atomic = "64", not(gupio_split_counts))))]
impl Counts {
    const_unless_loom! {
        fn new() -> Self {
            Self {
                refcount: AtomicU32::new(0),
                pincount: AtomicU32::new(0),
            }
        }
    }

    fn init(&self, refcount: u32) {
        // Relaxed: published by the Release store of the refcount below.
        self.pincount.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire loads of `maybe_dma_pinned` and of
        // whoever receives the page, so they see the reset fields.
        self.refcount.store(refcount, Ordering::Release);
    }

    #[cfg(test)]
    fn force(&self, refcount: u32, pincount: u32) {
        self.pincount.store(pincount, Ordering::Relaxed);
        self.refcount.store(refcount, Ordering::Release);
    }

    #[inline]
    fn refcount(&self) -> u32 {
        // Relaxed: a diagnostic snapshot; it orders nothing.
        self.refcount.load(Ordering::Relaxed)
    }

    #[inline]
    fn pincount(&self) -> u32 {
        // Relaxed: a diagnostic snapshot; it orders nothing.
        self.pincount.load(Ordering::Relaxed)
    }

    #[inline]
    fn refcount_acquire(&self) -> u32 {
        // Acquire: pairs with the Release decrement of an unpin or put, so a
        // caller who reads "not pinned" sees everything the unpinner did
        // before unpinning.
        self.refcount.load(Ordering::Acquire)
    }

    #[inline]
    fn pincount_acquire(&self) -> u32 {
        // Acquire: pairs with the Release decrement of the pin count.
        self.pincount.load(Ordering::Acquire)
    }

    #[inline]
    fn try_add(&self, refs: u32, pins: u32) -> Result<(), AddRefsError> {
        // Relaxed: the value only seeds the compare-and-swap below.
        let mut current = self.refcount.load(Ordering::Relaxed);
        loop {
            if current == 0 {
                return Err(AddRefsError::Free);
            }
            if current > REFCOUNT_MAX || refs > REFCOUNT_MAX - current {
                return Err(AddRefsError::Overflow(current));
            }
            // Relaxed on success: a new reference is derived from one the
            // caller already holds (Arc::clone), so it publishes nothing.
            // Relaxed on failure: the fresh value only feeds the next try.
            match self.refcount.compare_exchange_weak(
                current,
                current + refs,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    probe::record_rmw();
                    break;
                }
                Err(seen) => current = seen,
            }
        }
        if pins > 0 {
            // The references are taken first, so the pin count never
            // exceeds the reference count and cannot overflow. Relaxed: as
            // the references above.
            self.pincount.fetch_add(pins, Ordering::Relaxed);
            probe::record_rmw();
        }
        Ok(())
    }

    #[inline]
    fn try_sub(&self, refs: u32, pins: u32) -> Result<u32, SubError> {
        if pins > 0 {
            self.try_sub_pins(pins)?;
        }
        // Relaxed: the value only seeds the compare-and-swap below.
        let mut current = self.refcount.load(Ordering::Relaxed);
        loop {
            if current < refs {
                if pins > 0 {
                    // The pins were there but their references are not:
                    // give the pins back, so nothing changed. Relaxed: the
                    // references they stand for are still held.
                    self.pincount.fetch_add(pins, Ordering::Relaxed);
                    probe::record_rmw();
                }
                return Err(SubError::Refs {
                    refcount: current,
                    pincount: self.pincount(),
                });
            }
            // Release on success: pairs with the Acquire fence below, run by
            // whoever drops the last reference, so this holder's accesses to
            // the page happen before it is freed; and with the Acquire load
            // of `maybe_dma_pinned`. Relaxed on failure: feeds the next try.
            match self.refcount.compare_exchange_weak(
                current,
                current - refs,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    probe::record_rmw();
                    let new = current - refs;
                    if new == 0 {
                        // Acquire: pairs with the Release decrements of
                        // every other holder before the page is freed.
                        fence(Ordering::Acquire);
                    }
                    return Ok(new);
                }
                Err(seen) => current = seen,
            }
        }
    }

    #[inline]
    fn try_sub_pins(&self, pins: u32) -> Result<(), SubError> {
        // Relaxed: the value only seeds the compare-and-swap below.
        let mut current = self.pincount.load(Ordering::Relaxed);
        loop {
            if current < pins {
                return Err(SubError::Pins {
                    refcount: self.refcount(),
                    pincount: current,
                });
            }
            // Release on success: pairs with the Acquire load of
            // `maybe_dma_pinned`, so "not pinned" comes after the unpinner's
            // accesses. Relaxed on failure: feeds the next try.
            match self.pincount.compare_exchange_weak(
                current,
                current - pins,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    probe::record_rmw();
                    return Ok(());
                }
                Err(seen) => current = seen,
            }
        }
    }
}

impl Default for PageCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PageCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageCounters")
            .field("refcount", &self.refcount())
            .field("pincount", &self.pincount())
            .field("flags", &self.flags())
            .field("shape", &self.shape())
            .finish()
    }
}

/// Counts the committed read-modify-writes on the reference and pin counts:
/// per thread in unit tests, globally with the `rmw-stats` feature (read by
/// [`rmw_stats`]); compiles to nothing otherwise.
pub(crate) mod probe {
    #[cfg(test)]
    std::thread_local! {
        static RMW_OPS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    }

    /// Every thread's committed read-modify-writes since the last take.
    #[cfg(all(feature = "rmw-stats", not(loom)))]
    pub(super) static RMW_TOTAL: gupio_sync::atomic::AtomicUsize =
        gupio_sync::atomic::AtomicUsize::new(0);

    /// Records one committed read-modify-write.
    #[inline(always)]
    pub(crate) fn record_rmw() {
        #[cfg(test)]
        RMW_OPS.with(|ops| ops.set(ops.get() + 1));
        // Relaxed: a statistic; it orders nothing.
        #[cfg(all(feature = "rmw-stats", not(loom)))]
        RMW_TOTAL.fetch_add(1, gupio_sync::atomic::Ordering::Relaxed);
    }

    /// Read-modify-writes a pin or unpin of a large folio run costs: one
    /// where both counts share a word, two where they are separate.
    #[cfg(test)]
    pub(crate) const LARGE_PIN_RMW: usize = if super::PageCounters::COUNTS_IN_ONE_WORD {
        1
    } else {
        2
    };

    /// Returns the count of this thread's read-modify-writes and resets it.
    #[cfg(test)]
    pub(crate) fn take_rmw() -> usize {
        RMW_OPS.with(|ops| ops.replace(0))
    }
}

/// How many atomic read-modify-writes gupio committed on reference and pin
/// counts (the `rmw-stats` feature, off by default; not under loom).
///
/// The benchmarks read it to report atomics per page. It counts the updates
/// of [`PageCounters`]' reference and pin counts that every get, put, pin
/// and unpin makes (one per folio run; two for a pin or unpin of a large
/// folio where the counts are two words, see [`PageCounters`]), not flag or
/// lock updates. The count is global, over every
/// thread, and costs one more atomic per counted one: count with it, never
/// time with it.
#[cfg(all(feature = "rmw-stats", not(loom)))]
pub mod rmw_stats {
    use gupio_sync::atomic::Ordering;

    /// The read-modify-writes committed since the last call (by every
    /// thread), resetting the count to zero.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{rmw_stats, ArrayMemoryMap, FolioOrder, PageRange, Tracker};
    /// let map = ArrayMemoryMap::<512>::new(Pfn::new(0));
    /// map.prepare_folio(Pfn::new(0), FolioOrder::try_new(9).unwrap()).unwrap();
    /// let tracker = Tracker::new(&map);
    /// let range = PageRange::new(Pfn::new(0), 512);
    /// // One folio run: one update of its counts word (two where the
    /// // reference and pin counts are separate words).
    /// let per_run = if gupio_pin::PageCounters::COUNTS_IN_ONE_WORD { 1 } else { 2 };
    /// rmw_stats::take();
    /// tracker.pin_range(range).unwrap();
    /// assert_eq!(rmw_stats::take(), per_run);
    /// tracker.unpin_range(range).unwrap();
    /// assert_eq!(rmw_stats::take(), per_run);
    /// ```
    pub fn take() -> usize {
        // Relaxed: a statistic; it orders nothing.
        super::probe::RMW_TOTAL.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
