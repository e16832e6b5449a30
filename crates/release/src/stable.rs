//! Stable direct-I/O writes: the device reads pinned user pages that the
//! application may keep changing.
//!
//! A direct-I/O write pins the user's buffer and lets the device read it in
//! place. If the application (or a VM guest) writes into the buffer while the
//! device reads it, a checksum, parity or protection tag computed at
//! submission no longer matches what reached the disk. A device that needs
//! stable pages can be given them four ways, one [`StableMode`] per bio:
//!
//! | mode | at submission | while in flight | at completion |
//! |---|---|---|---|
//! | [`StableMode::ZeroCopy`] | nothing | the buffer may change: unstable | release |
//! | [`StableMode::Bounce`] | copy into kernel pages ([`bounce_bio`]); unpin the user pages at once | nothing to protect | put the copies |
//! | [`StableMode::WriteProtect`] | [`ProtectWindow::open`], then the address space's [`write_protect`](gupio_pin::AddressSpace::write_protect); a write with a page [`pinned_elsewhere`] (a device may write it) is bounced instead | a CPU write faults and waits ([`ProtectWindow::on_write_fault`]) or copies on write | restore the mappings, then [`ProtectWindow::close`] and wake the waiters |
//! | [`StableMode::Verify`] | a checksum per page ([`for_each_checksum`]) | the buffer may change | recompute ([`verify_pages`]); reissue each changed range from a bounce copy |
//!
//! Which one is cheapest depends on the write size and on how often the
//! buffer changes: bouncing costs a copy of every byte, write protection two
//! page-table updates per page and a wait for each writer that hits a
//! protected page, verification a second checksum pass and a second write
//! for each page that changed. A [`StablePolicy`] chooses per bio; the
//! ready-made ones are a constant [`StableMode`] and [`BySize`].
//!
//! The embedder supplies the page copies and checksums ([`StableIo`]); the
//! counts of what each mode did go to a [`StableStats`].
//!
//! # The write-protect handshake
//!
//! The order is what makes the pages stable:
//!
//! 1. the submitter opens the I/O's [`ProtectWindow`] **before** it
//!    write-protects the mappings, so a fault that finds a protected page
//!    always finds the window open (a fault that found it closed would
//!    treat the write as an ordinary one and make the page writable);
//! 2. write protection happens under the page-table lock, which every CPU
//!    store's permission check also holds, so the checksum taken after it
//!    sees every store made before;
//! 3. a write fault on a protected page asks the window: while it is open
//!    the writer waits (or copies the page on write), it does not make the
//!    page writable;
//! 4. at completion the device has read every byte: the mappings are
//!    restored, then the window is closed with `Release`, which pairs with
//!    the waiting writer's `Acquire` load, so the writer's store comes after
//!    the device's reads.
//!
//! `tests/loom_stable.rs` models it, and fails when a step is dropped.

use core::fmt;

use gupio_bio::{AddError, Bio, BioError, BioOp, BvecStorage, Origin};
use gupio_pfn::Pfn;
use gupio_pin::{PageOps, ProtectError, Tracker};
use gupio_sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{release_pages, ReleaseError, Warn};

/// How one direct-I/O write keeps the pages the device reads stable.
///
/// ```
/// use gupio_release::StableMode;
/// assert_eq!(StableMode::ALL.len(), 4);
/// assert!(!StableMode::ZeroCopy.is_stable());
/// assert!(StableMode::Verify.is_stable());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StableMode {
    /// The device reads the pinned user pages as they are: no copy, no
    /// protection. Right when the device does not checksum the data.
    ZeroCopy,
    /// Copy the data into kernel pages at submission ([`bounce_bio`]) and
    /// release the user pages at once. Costs a copy of every byte.
    Bounce,
    /// Make the user's mappings read-only for the length of the I/O; a CPU
    /// write faults and waits for the completion (or copies on write).
    WriteProtect,
    /// Submit zero-copy, checksum the pages again after completion, and
    /// reissue each range that changed from a bounce copy.
    Verify,
}

impl StableMode {
    /// Every mode, zero-copy first.
    pub const ALL: [Self; 4] = [
        Self::ZeroCopy,
        Self::Bounce,
        Self::WriteProtect,
        Self::Verify,
    ];

    /// Whether the mode gives the device stable pages.
    pub const fn is_stable(self) -> bool {
        !matches!(self, Self::ZeroCopy)
    }

    /// The mode's name, as the demo and the README spell it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ZeroCopy => "zero-copy",
            Self::Bounce => "bounce",
            Self::WriteProtect => "write-protect",
            Self::Verify => "verify",
        }
    }

    /// The mode named `name` (as [`name`](Self::name) spells it).
    ///
    /// ```
    /// use gupio_release::StableMode;
    /// assert_eq!(StableMode::from_name("bounce"), Some(StableMode::Bounce));
    /// assert_eq!(StableMode::from_name("copy"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    const fn index(self) -> usize {
        match self {
            Self::ZeroCopy => 0,
            Self::Bounce => 1,
            Self::WriteProtect => 2,
            Self::Verify => 3,
        }
    }
}

impl fmt::Display for StableMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a [`StablePolicy`] is told about a direct-I/O write.
///
/// ```
/// use gupio_release::StableWrite;
/// let write = StableWrite { bytes: 4096, pages: 1, stable_required: true };
/// assert!(write.stable_required);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StableWrite {
    /// The bytes the bio writes.
    pub bytes: u64,
    /// The user pages it pins.
    pub pages: usize,
    /// Whether the device (or the filesystem above it) needs stable pages:
    /// it checksums, computes parity or protection information.
    pub stable_required: bool,
}

/// Chooses the [`StableMode`] of a direct-I/O write.
///
/// A [`StableMode`] is the constant policy; [`BySize`] chooses by the write's
/// size; a closure `Fn(StableWrite) -> StableMode` does anything else.
///
/// ```
/// use gupio_release::{StableMode, StablePolicy, StableWrite};
/// let policy = |w: StableWrite| if w.stable_required { StableMode::Bounce } else { StableMode::ZeroCopy };
/// let write = StableWrite { bytes: 4096, pages: 1, stable_required: false };
/// assert_eq!(policy.mode(write), StableMode::ZeroCopy);
/// ```
pub trait StablePolicy {
    /// The mode for `write`.
    fn mode(&self, write: StableWrite) -> StableMode;
}

impl StablePolicy for StableMode {
    /// `self` when the device needs stable pages, zero-copy otherwise.
    fn mode(&self, write: StableWrite) -> StableMode {
        if write.stable_required {
            *self
        } else {
            StableMode::ZeroCopy
        }
    }
}

impl<F: Fn(StableWrite) -> StableMode> StablePolicy for F {
    fn mode(&self, write: StableWrite) -> StableMode {
        self(write)
    }
}

/// One mode for small writes and another from `threshold_bytes` up, for a
/// device that needs stable pages (zero-copy for one that does not): what
/// a measured cost table suggests, since a copy is cheap next to a small
/// I/O and dear next to a large one.
///
/// ```
/// use gupio_release::{BySize, StableMode, StablePolicy, StableWrite};
/// let policy = BySize { threshold_bytes: 64 << 10, small: StableMode::Bounce, large: StableMode::WriteProtect };
/// let small = StableWrite { bytes: 4096, pages: 1, stable_required: true };
/// let large = StableWrite { bytes: 1 << 20, pages: 256, stable_required: true };
/// assert_eq!(policy.mode(small), StableMode::Bounce);
/// assert_eq!(policy.mode(large), StableMode::WriteProtect);
/// assert_eq!(policy.mode(StableWrite { stable_required: false, ..large }), StableMode::ZeroCopy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BySize {
    /// Writes of at least this many bytes are large.
    pub threshold_bytes: u64,
    /// The mode of smaller writes.
    pub small: StableMode,
    /// The mode of large writes.
    pub large: StableMode,
}

impl StablePolicy for BySize {
    fn mode(&self, write: StableWrite) -> StableMode {
        if !write.stable_required {
            StableMode::ZeroCopy
        } else if write.bytes >= self.threshold_bytes {
            self.large
        } else {
            self.small
        }
    }
}

/// The embedder's side of stable writes: kernel pages for bounce copies,
/// copying into them, and the checksum the device needs stable.
pub trait StableIo {
    /// Why a bounce page could not be had.
    type Error: Copy + fmt::Debug;

    /// A fresh kernel page holding one reference, which the bounce bio
    /// takes over ([`Origin::Referenced`]: the release puts it).
    ///
    /// # Errors
    /// The embedder's, when no page is free.
    fn alloc_bounce_page(&self) -> Result<Pfn, Self::Error>;

    /// Copies bytes `offset..offset + len` of page `from` to the same bytes
    /// of page `to`.
    fn copy_page(&self, from: Pfn, to: Pfn, offset: u32, len: u32);

    /// The checksum of bytes `offset..offset + len` of page `pfn`, as the
    /// device's protection information or the filesystem computes it.
    fn checksum(&self, pfn: Pfn, offset: u32, len: u32) -> u64;
}

/// What went wrong making a direct-I/O write stable.
///
/// ```
/// use gupio_release::StableError;
/// let e: StableError<()> = StableError::NotAWrite;
/// assert_eq!(e.to_string(), "stable pages are for writes: the bio does not write");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StableError<E> {
    /// The bio is not a write (a device writing into the pages is the
    /// writeback side's hazard, not this one).
    NotAWrite,
    /// The bounce bio was not empty, or not a write to the same sector.
    BadBounceBio,
    /// A bvec without a page.
    NoPage {
        /// The page piece's index.
        index: usize,
    },
    /// The embedder could not supply a bounce page.
    Alloc(E),
    /// A bounce page could not be added to the bounce bio.
    Build(BioError),
    /// Releasing pages failed.
    Release(ReleaseError),
    /// The number of checksums given does not match the bio's page pieces.
    ChecksumCount {
        /// Page pieces in the bio.
        pieces: usize,
        /// Checksums given.
        checksums: usize,
    },
    /// The address space could not write-protect the range.
    Protect(ProtectError),
    /// The window was opened twice, or closed when not open.
    WindowState {
        /// Whether it was open.
        open: bool,
    },
}

impl<E: fmt::Debug> fmt::Display for StableError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAWrite => f.write_str("stable pages are for writes: the bio does not write"),
            Self::BadBounceBio => {
                f.write_str("the bounce bio must be an empty write to the same sector")
            }
            Self::NoPage { index } => write!(f, "page piece {index} has no page"),
            Self::Alloc(error) => write!(f, "no bounce page: {error:?}"),
            Self::Build(error) => write!(f, "cannot add a bounce page: {error}"),
            Self::Release(error) => write!(f, "releasing the pages failed: {error}"),
            Self::ChecksumCount { pieces, checksums } => {
                write!(f, "{checksums} checksums for {pieces} page pieces")
            }
            Self::Protect(error) => write!(f, "write protection failed: {error}"),
            Self::WindowState { open: true } => f.write_str("the window is already open"),
            Self::WindowState { open: false } => f.write_str("the window is not open"),
        }
    }
}

/// Copies one page piece into a fresh bounce page and adds it to `into` as
/// [`Origin::Referenced`]. Returns the bounce page.
///
/// # Errors
/// [`StableError::Alloc`] (nothing changed), [`StableError::Build`] (the
/// bounce page was released again).
pub fn bounce_piece<S, M, I>(
    tracker: &Tracker<'_, M>,
    io: &I,
    into: &mut Bio<S>,
    page: Pfn,
    offset: u32,
    len: u32,
) -> Result<Pfn, StableError<I::Error>>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
    I: StableIo + ?Sized,
{
    let bounce = io.alloc_bounce_page().map_err(StableError::Alloc)?;
    io.copy_page(page, bounce, offset, len);
    match into.add_page(bounce, len, offset, Origin::Referenced) {
        Ok(_) => Ok(bounce),
        Err(refused) => {
            drop_bounce(tracker, refused);
            Err(StableError::Build(refused.error()))
        }
    }
}

fn drop_bounce<M: PageOps + Warn + ?Sized>(tracker: &Tracker<'_, M>, refused: AddError) {
    if let Some(page) = refused.rejected().page() {
        // The reference the allocation gave us: a failure is a bug the
        // tracker already warned about.
        let _ = tracker.put_page(page);
    }
}

/// The bounce of a direct-I/O write: `into`, now holding a kernel copy of
/// every byte `bio` had left to write, and what releasing `bio` did.
#[derive(Debug)]
pub struct Bounced<T: BvecStorage> {
    /// The bio to submit in place of the user's: copies, [`Origin::Referenced`].
    pub bio: Bio<T>,
    /// Pages copied.
    pub pages_copied: usize,
    /// The release of the user's bio (its pins dropped at once).
    pub released: crate::ReleaseStats,
}

/// Whether a device may be writing into a page the write `bio` reads: some
/// pinned page of it holds pins beyond the bio's own (a direct-I/O read
/// into the same buffer, a registered buffer). Write protection stops the
/// CPU's writers only, never a device's, so [`StableMode::WriteProtect`]
/// must bounce such a write instead ([`bounce_bio`]).
///
/// The bio's own pins are counted per bvec (one per page), so a folio that
/// several bvecs pin reads as pinned elsewhere: a false positive, costing
/// a copy that was not needed, never the reverse. The zero page never
/// changes and is never counted.
///
/// # Errors
/// [`ReleaseError::NoPage`] for a bvec without a page (warned, as by the
/// release), [`ReleaseError::Pin`] for a page outside the memory map.
pub fn pinned_elsewhere<S, M>(tracker: &Tracker<'_, M>, bio: &Bio<S>) -> Result<bool, ReleaseError>
where
    S: BvecStorage,
    M: PageOps + Warn + ?Sized,
{
    let map = tracker.ops();
    let mut elsewhere = false;
    crate::release::for_each_range(map, bio, |range, origin| {
        if origin != Origin::Pinned || elsewhere {
            return Ok(());
        }
        let mut left = range.len();
        let mut pfn = range.first();
        while left > 0 && !elsewhere {
            let folio = map.folio(pfn)?;
            let own = folio.pages_from(pfn).min(left);
            if !map.is_zero_page(folio.head()) {
                elsewhere = folio.pinned_beyond(u32::try_from(own).unwrap_or(u32::MAX));
            }
            left -= own;
            match pfn.checked_add(own) {
                Some(next) => pfn = next,
                None => break,
            }
        }
        Ok(())
    })?;
    Ok(elsewhere)
}

/// [`StableMode::Bounce`]: copies every page piece of the write `bio` (the
/// bytes it has left) into fresh kernel pages added to `into` (an empty
/// write bio for the same sector), then releases `bio`'s pages (unpins the
/// user's buffer at once) and consumes it.
///
/// # Errors
/// Hands `bio` back untouched, still holding its pins, with
/// [`StableError::NotAWrite`], [`StableError::BadBounceBio`],
/// [`StableError::NoPage`], [`StableError::Alloc`] or
/// [`StableError::Build`]; the bounce pages made so far are released. A
/// failure releasing `bio` once the copies are made does not undo them:
/// its pages are released as far as possible, the copies are returned, and
/// the release error goes to `release_error`.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, Tracker};
/// use gupio_release::AnyWarning;
/// use gupio_bio::{Bio, BioLimits, BioOp, Origin, Sector};
/// use gupio_release::{bounce_bio, StableIo};
/// # use core::cell::Cell;
/// struct Io<'m> { map: &'m ArrayMemoryMap<8, AnyWarning>, next: Cell<usize> }
/// impl StableIo for Io<'_> {
///     type Error = ();
///     fn alloc_bounce_page(&self) -> Result<Pfn, ()> {
///         let pfn = Pfn::new(self.next.get());
///         self.next.set(self.next.get() + 1);
///         self.map.prepare_folio(pfn, FolioOrder::SMALL).map_err(|_| ())?;
///         Ok(pfn)
///     }
///     fn copy_page(&self, _: Pfn, _: Pfn, _: u32, _: u32) {}
///     fn checksum(&self, _: Pfn, _: u32, _: u32) -> u64 { 0 }
/// }
/// let map = ArrayMemoryMap::<8, AnyWarning>::new(Pfn::new(0));
/// map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap(); // the user's page
/// let tracker = Tracker::new(&map);
/// tracker.pin_page(Pfn::new(0)).unwrap();
/// let mut user = Bio::new(heapless::Vec::<_, 2>::new(), BioOp::Write, Sector(0), BioLimits::default());
/// let _ = user.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
/// let into = Bio::new(heapless::Vec::<_, 2>::new(), BioOp::Write, Sector(0), BioLimits::default());
/// let io = Io { map: &map, next: Cell::new(4) };
/// let bounced = bounce_bio(&tracker, &io, user, into, &mut |_| {}).unwrap();
/// assert_eq!(bounced.pages_copied, 1);
/// assert_eq!(gupio_pin::maybe_dma_pinned(&map, Pfn::new(0)), Ok(false), "unpinned at once");
/// assert_eq!(bounced.bio.bvecs()[0].origin(), Some(Origin::Referenced));
/// ```
#[allow(clippy::type_complexity)]
pub fn bounce_bio<S, T, M, I>(
    tracker: &Tracker<'_, M>,
    io: &I,
    bio: Bio<S>,
    mut into: Bio<T>,
    release_error: &mut dyn FnMut(ReleaseError),
) -> Result<Bounced<T>, (Bio<S>, StableError<I::Error>)>
where
    S: BvecStorage,
    T: BvecStorage,
    M: PageOps + Warn + ?Sized,
    I: StableIo + ?Sized,
{
    if bio.op() != BioOp::Write {
        return Err((bio, StableError::NotAWrite));
    }
    if into.op() != BioOp::Write || into.vcnt() != 0 || into.sector() != bio.sector() {
        return Err((bio, StableError::BadBounceBio));
    }
    let mut pages_copied = 0;
    let mut failure = None;
    for (index, piece) in bio.pages().enumerate() {
        let Some(page) = piece.page() else {
            failure = Some(StableError::NoPage { index });
            break;
        };
        match bounce_piece(tracker, io, &mut into, page, piece.offset(), piece.len()) {
            Ok(_) => pages_copied += 1,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    if let Some(error) = failure {
        if let Err(release) = release_pages(tracker, &into, false) {
            release_error(release);
        }
        return Err((bio, error));
    }
    let released = match release_pages(tracker, &bio, false) {
        Ok(stats) => stats,
        Err(error) => {
            release_error(error);
            crate::ReleaseStats::default()
        }
    };
    Ok(Bounced {
        bio: into,
        pages_copied,
        released,
    })
}

/// Calls `each(index, sum)` with the checksum ([`StableIo::checksum`]) of
/// each page piece `bio` has left, in order: what a filesystem or the
/// protection information computes at submission.
///
/// # Errors
/// [`StableError::NoPage`] for a bvec without a page (no later piece is
/// visited).
pub fn for_each_checksum<S, I>(
    io: &I,
    bio: &Bio<S>,
    mut each: impl FnMut(usize, u64),
) -> Result<usize, StableError<I::Error>>
where
    S: BvecStorage,
    I: StableIo + ?Sized,
{
    let mut count = 0;
    for (index, piece) in bio.pages().enumerate() {
        let page = piece.page().ok_or(StableError::NoPage { index })?;
        each(index, io.checksum(page, piece.offset(), piece.len()));
        count += 1;
    }
    Ok(count)
}

/// A page piece whose contents changed while the device read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mismatch {
    /// The piece's index among the bio's page pieces.
    pub index: usize,
    /// Its page.
    pub page: Pfn,
    /// Its offset in the page.
    pub offset: u32,
    /// Its length.
    pub len: u32,
    /// Its byte offset from the start of the write.
    pub byte_offset: u64,
}

/// [`StableMode::Verify`] at completion: recomputes the checksum of every
/// page piece of the completed write `bio` (all of it: the pages are still
/// pinned) and calls `mismatch` for each one that differs from the
/// checksum taken at submission (`expected`, one per piece in order, as
/// [`for_each_checksum`] gave them). Returns how many differed: those
/// ranges may have reached the disk torn, and must be written again from a
/// stable copy ([`bounce_piece`]) before the pages are released.
///
/// A piece changed and changed back to the same bytes while the device
/// read it is not seen: verification is for writers that do not restore
/// old contents (choose bounce or write-protect otherwise).
///
/// # Errors
/// [`StableError::ChecksumCount`] if `expected` does not have one checksum
/// per piece; [`StableError::NoPage`]. Nothing is reported then.
pub fn verify_pages<S, I>(
    io: &I,
    bio: &Bio<S>,
    expected: &[u64],
    mut mismatch: impl FnMut(Mismatch),
) -> Result<usize, StableError<I::Error>>
where
    S: BvecStorage,
    I: StableIo + ?Sized,
{
    if bio.op() != BioOp::Write {
        return Err(StableError::NotAWrite);
    }
    let pieces = bio.all_pages().count();
    if pieces != expected.len() {
        return Err(StableError::ChecksumCount {
            pieces,
            checksums: expected.len(),
        });
    }
    if let Some(index) = bio.all_pages().position(|piece| piece.page().is_none()) {
        return Err(StableError::NoPage { index });
    }
    let mut changed = 0;
    let mut byte_offset = 0u64;
    for (index, (piece, &sum)) in bio.all_pages().zip(expected).enumerate() {
        if let Some(page) = piece.page() {
            if io.checksum(page, piece.offset(), piece.len()) != sum {
                changed += 1;
                mismatch(Mismatch {
                    index,
                    page,
                    offset: piece.offset(),
                    len: piece.len(),
                    byte_offset,
                });
            }
        }
        byte_offset += u64::from(piece.len());
    }
    Ok(changed)
}

/// What a write fault on a page of an open [`ProtectWindow`] does.
///
/// ```
/// use gupio_release::FaultChoice;
/// assert_ne!(FaultChoice::Wait, FaultChoice::CopyOnWrite);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultChoice {
    /// Sleep until the window closes, then retry the write.
    Wait,
    /// Give the faulting mapping a copy of the page and write there; the
    /// device keeps reading the pinned original.
    CopyOnWrite,
}

/// The answer to a write fault on a page a stable write may protect.
///
/// ```
/// use gupio_release::{FaultChoice, FaultResolution, ProtectWindow};
/// let window = ProtectWindow::new();
/// assert_eq!(window.on_write_fault(FaultChoice::Wait), FaultResolution::NotProtected);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultResolution {
    /// The window is closed: handle the fault as an ordinary one.
    NotProtected,
    /// Wait until [`ProtectWindow::is_open`] turns false, then retry.
    Wait,
    /// Copy the page on write.
    CopyOnWrite,
}

/// The state of one write-protected direct-I/O write, shared by the
/// submitter, the completion and every fault on its pages (see the
/// [module docs](crate::stable) for the order of the steps).
///
/// ```
/// use gupio_release::{FaultChoice, FaultResolution, ProtectWindow};
/// let window = ProtectWindow::new();
/// window.open::<()>().unwrap();           // then write-protect, checksum, submit
/// assert_eq!(window.on_write_fault(FaultChoice::Wait), FaultResolution::Wait);
/// window.close::<()>().unwrap();          // after the device read it and the mappings are back
/// assert!(!window.is_open());
/// assert!(window.close::<()>().is_err(), "closed twice");
/// ```
#[derive(Debug, Default)]
pub struct ProtectWindow {
    open: AtomicBool,
}

impl ProtectWindow {
    /// A closed window.
    pub fn new() -> Self {
        Self {
            open: AtomicBool::new(false),
        }
    }

    /// Opens the window: call before write-protecting the mappings.
    ///
    /// # Errors
    /// [`StableError::WindowState`] if it is already open.
    pub fn open<E>(&self) -> Result<(), StableError<E>> {
        // Relaxed would do for the faulting thread (the page-table lock the
        // protection takes next orders this before any fault that sees a
        // protected page); Release documents that pairing.
        self.open
            .compare_exchange(false, true, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| StableError::WindowState { open: true })
    }

    /// What a write fault on one of the window's pages does, given what the
    /// embedder chose for such faults.
    pub fn on_write_fault(&self, choice: FaultChoice) -> FaultResolution {
        if !self.is_open() {
            return FaultResolution::NotProtected;
        }
        match choice {
            FaultChoice::Wait => FaultResolution::Wait,
            FaultChoice::CopyOnWrite => FaultResolution::CopyOnWrite,
        }
    }

    /// Whether the I/O is still in flight: a waiting writer's loop test.
    pub fn is_open(&self) -> bool {
        // Acquire: pairs with close's Release, so a writer that sees the
        // window closed writes after the device's last read.
        self.open.load(Ordering::Acquire)
    }

    /// Closes the window: call once the device has read every byte and the
    /// mappings are restored, then wake the waiters.
    ///
    /// # Errors
    /// [`StableError::WindowState`] if it was not open.
    pub fn close<E>(&self) -> Result<(), StableError<E>> {
        // Release: the device's reads (sequenced before, through the
        // completion) happen before any write of a woken writer.
        self.open
            .compare_exchange(true, false, Ordering::Release, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| StableError::WindowState { open: false })
    }
}

/// Counts of what the stable modes did, kept by the embedder's submit and
/// completion paths.
///
/// ```
/// use gupio_release::{StableMode, StableStats};
/// let stats = StableStats::new();
/// stats.count_write(StableMode::Bounce, 3);
/// stats.count_copied(3);
/// let counts = stats.counts();
/// assert_eq!((counts.writes[1], counts.pages[1], counts.pages_copied), (1, 3, 3));
/// ```
#[derive(Debug, Default)]
pub struct StableStats {
    writes: [AtomicUsize; 4],
    pages: [AtomicUsize; 4],
    pages_copied: AtomicUsize,
    faults_taken: AtomicUsize,
    faults_waited: AtomicUsize,
    faults_copied: AtomicUsize,
    pages_verified: AtomicUsize,
    reissues: AtomicUsize,
    pages_reissued: AtomicUsize,
    protect_bounced: AtomicUsize,
}

/// A snapshot of [`StableStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StableCounts {
    /// Writes per mode, in [`StableMode::ALL`] order.
    pub writes: [usize; 4],
    /// Pages written per mode, in [`StableMode::ALL`] order.
    pub pages: [usize; 4],
    /// Pages copied into bounce pages (bounces, reissues, copies on write).
    pub pages_copied: usize,
    /// Write faults on protected pages.
    pub faults_taken: usize,
    /// Of those, faults that waited for the completion.
    pub faults_waited: usize,
    /// Of those, faults that copied the page on write.
    pub faults_copied: usize,
    /// Pages checksummed again at completion.
    pub pages_verified: usize,
    /// Ranges written again because they changed in flight.
    pub reissues: usize,
    /// Pages in those ranges.
    pub pages_reissued: usize,
    /// Writes that asked for write protection but were bounced, because a
    /// page was pinned elsewhere ([`pinned_elsewhere`]); counted as
    /// bounces in `writes` and `pages`.
    pub protect_bounced: usize,
}

impl StableCounts {
    /// The writes made in `mode`.
    pub const fn writes_in(&self, mode: StableMode) -> usize {
        self.writes[mode.index()]
    }
}

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        pub fn $name(&self, n: usize) {
            // Relaxed: statistics; they order nothing.
            self.$field.fetch_add(n, Ordering::Relaxed);
        }
    };
}

impl StableStats {
    /// All zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one write of `pages` pages in `mode`.
    pub fn count_write(&self, mode: StableMode, pages: usize) {
        // Relaxed: statistics; they order nothing.
        self.writes[mode.index()].fetch_add(1, Ordering::Relaxed);
        self.pages[mode.index()].fetch_add(pages, Ordering::Relaxed);
    }

    counter!(
        /// Counts `n` pages copied.
        count_copied, pages_copied
    );
    counter!(
        /// Counts `n` pages verified at completion.
        count_verified, pages_verified
    );
    counter!(
        /// Counts `n` writes bounced instead of write-protected.
        count_protect_bounced, protect_bounced
    );

    /// Counts a write fault on a protected page and how it resolved.
    pub fn count_fault(&self, resolution: FaultResolution) {
        // Relaxed: statistics; they order nothing.
        self.faults_taken.fetch_add(1, Ordering::Relaxed);
        match resolution {
            FaultResolution::Wait => self.faults_waited.fetch_add(1, Ordering::Relaxed),
            FaultResolution::CopyOnWrite => self.faults_copied.fetch_add(1, Ordering::Relaxed),
            FaultResolution::NotProtected => 0,
        };
    }

    /// Counts one reissued range of `pages` pages.
    pub fn count_reissue(&self, pages: usize) {
        // Relaxed: statistics; they order nothing.
        self.reissues.fetch_add(1, Ordering::Relaxed);
        self.pages_reissued.fetch_add(pages, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn counts(&self) -> StableCounts {
        let load = |counter: &AtomicUsize| counter.load(Ordering::Relaxed);
        StableCounts {
            writes: [0, 1, 2, 3].map(|i| self.writes.get(i).map_or(0, load)),
            pages: [0, 1, 2, 3].map(|i| self.pages.get(i).map_or(0, load)),
            pages_copied: load(&self.pages_copied),
            faults_taken: load(&self.faults_taken),
            faults_waited: load(&self.faults_waited),
            faults_copied: load(&self.faults_copied),
            pages_verified: load(&self.pages_verified),
            reissues: load(&self.reissues),
            pages_reissued: load(&self.pages_reissued),
            protect_bounced: load(&self.protect_bounced),
        }
    }
}

#[cfg(test)]
mod tests;
