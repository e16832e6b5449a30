//! Bios over caller-provided bvec arrays: build, submit, complete, release,
//! and the deferred-release list.

use core::ffi::c_void;

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, BioVec};
use gupio::embed::BvecStorage;
use gupio::pfn::{Origin, PageGeometry};
use gupio::pin::{GupFlags, PageRange, UserAddr};
use gupio::release::{check_pages_dirty, CompletedBio, DeferredList, SubmittedBio};

use crate::cell::{self, Opaque};
use crate::error::{finish, gupio_error, Fail};
use crate::ops::{gupio_tracker, kernel_of};
use crate::pages::to_pfn;
use crate::space::{gupio_address_space, Space};

/// One bvec: a page-frame number tagged with the page's origin, a length
/// and an offset (Linux's `struct bio_vec`, with the page pointer replaced
/// by the tagged word): 16 bytes on 64-bit targets, 12 on 32-bit ones. The
/// caller provides the array a bio fills; read it with
/// `gupio_bvec_decode`, never write it while the bio holds it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gupio_bvec {
    /// The tagged page-frame number: origin in the top bits.
    pub word: usize,
    /// Bytes.
    pub len: u32,
    /// Offset into the first page.
    pub offset: u32,
}

// The C bvec is gupio's `BioVec`, field for field.
const _: () = assert!(
    core::mem::size_of::<gupio_bvec>() == core::mem::size_of::<BioVec>()
        && core::mem::align_of::<gupio_bvec>() == core::mem::align_of::<BioVec>()
);
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<gupio_bvec>() == 16);
#[cfg(target_pointer_width = "32")]
const _: () = assert!(core::mem::size_of::<gupio_bvec>() == 12);

/// Where a page came from, which says how a bio's release gives it back.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_origin {
    /// A page reference (page cache, kernel page, `get_user_pages`): put.
    GUPIO_ORIGIN_REFERENCED = 0,
    /// A pin from `pin_user_pages`: unpinned.
    GUPIO_ORIGIN_PINNED = 1,
    /// The caller keeps ownership: nothing.
    GUPIO_ORIGIN_BORROWED = 2,
}

fn to_origin(raw: u32) -> Result<Origin, Fail> {
    match raw {
        0 => Ok(Origin::Referenced),
        1 => Ok(Origin::Pinned),
        2 => Ok(Origin::Borrowed),
        _ => Err(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into()),
    }
}

const fn origin_to_c(origin: Origin) -> gupio_origin {
    match origin {
        Origin::Referenced => gupio_origin::GUPIO_ORIGIN_REFERENCED,
        Origin::Pinned => gupio_origin::GUPIO_ORIGIN_PINNED,
        Origin::Borrowed => gupio_origin::GUPIO_ORIGIN_BORROWED,
    }
}

/// A bio's operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_op {
    /// Device to memory: release with `mark_dirty`.
    GUPIO_OP_READ = 0,
    /// Memory to device.
    GUPIO_OP_WRITE = 1,
}

/// How a bio completed (Linux's `blk_status_t`). Values are gupio's
/// one-byte status encoding.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_status {
    /// Success.
    GUPIO_STATUS_OK = 0,
    /// The device does not support the operation.
    GUPIO_STATUS_NOT_SUPPORTED = 1,
    /// The device did not answer in time.
    GUPIO_STATUS_TIMEOUT = 2,
    /// The device is out of space.
    GUPIO_STATUS_NO_SPACE = 3,
    /// A transport error.
    GUPIO_STATUS_TRANSPORT = 4,
    /// The medium failed.
    GUPIO_STATUS_MEDIUM = 5,
    /// Integrity information did not match.
    GUPIO_STATUS_PROTECTION = 6,
    /// Out of a resource; may be retried.
    GUPIO_STATUS_RESOURCE = 7,
    /// Any other I/O error.
    GUPIO_STATUS_IO_ERROR = 8,
    /// Would block.
    GUPIO_STATUS_AGAIN = 9,
    /// The device is offline.
    GUPIO_STATUS_OFFLINE = 10,
    /// The request was invalid for the device.
    GUPIO_STATUS_INVALID = 11,
}

pub(crate) fn to_status(raw: u32) -> Result<BioStatus, Fail> {
    u8::try_from(raw)
        .ok()
        .and_then(BioStatus::from_raw)
        .ok_or(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into())
}

/// Limits of the device a bio goes to; a zero field keeps gupio's default
/// (256 vecs, no segment limit, 512-byte blocks, no DMA alignment).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gupio_bio_limits {
    /// Page size as a shift: 12, 14 or 16; 0 for 12.
    pub page_shift: u32,
    /// Most bvecs (at most 256; the array's capacity also bounds it).
    pub max_vecs: u32,
    /// Largest bvec in bytes.
    pub max_segment_size: u32,
    /// The device's block size in bytes (a power of two, at least 512).
    pub logical_block_size: u32,
    /// Mask every offset and length must clear (a power of two minus one).
    pub dma_alignment: u32,
}

fn to_limits(raw: &gupio_bio_limits) -> Result<BioLimits, Fail> {
    let shift = if raw.page_shift == 0 {
        12
    } else {
        raw.page_shift
    };
    let mut limits = BioLimits::new(PageGeometry::try_from_shift(shift)?);
    if raw.max_vecs != 0 {
        let max = usize::try_from(raw.max_vecs).unwrap_or(usize::MAX);
        limits = limits.with_max_vecs(max)?;
    }
    if raw.max_segment_size != 0 {
        limits = limits.with_max_segment_size(raw.max_segment_size)?;
    }
    if raw.logical_block_size != 0 {
        limits = limits.with_logical_block_size(raw.logical_block_size)?;
    }
    if raw.dma_alignment != 0 {
        limits = limits.with_dma_alignment(raw.dma_alignment)?;
    }
    Ok(limits)
}

/// Where a bio is in its life.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_bio_state {
    /// Pages may be added.
    GUPIO_BIO_BUILDING = 1,
    /// Owned by the device until completed.
    GUPIO_BIO_SUBMITTED = 2,
    /// Completed, waiting for its release.
    GUPIO_BIO_COMPLETED = 3,
    /// On a deferred-release list, until drained.
    GUPIO_BIO_DEFERRED = 4,
    /// Released: its pages are given back and its bvec array is the
    /// caller's again; it may be set up anew.
    GUPIO_BIO_RELEASED = 5,
}

/// The caller's bvec array, kept as a raw pointer rather than a `&mut`
/// slice: the driver reads the array between calls (to program the DMA),
/// which a unique borrow held across calls would forbid. Each access
/// derives a fresh slice for the length of the call.
pub(crate) struct Storage {
    slots: *mut BioVec,
    capacity: usize,
    len: usize,
}

impl BvecStorage for Storage {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn as_slice(&self) -> &[BioVec] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `gupio_bio_init`'s contract: the array holds `capacity`
        // bvecs, valid until the bio is released, and nobody writes it
        // meanwhile; `len <= capacity`, and the first `len` were written.
        unsafe { core::slice::from_raw_parts(self.slots, self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [BioVec] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as in `as_slice`; the bio's `&mut self` makes this the
        // only Rust reference for the call, and the caller does not touch
        // the array during a call into the bio.
        unsafe { core::slice::from_raw_parts_mut(self.slots, self.len) }
    }

    fn push(&mut self, bvec: BioVec) -> Result<(), BioVec> {
        if self.len == self.capacity {
            return Err(bvec);
        }
        // SAFETY: `len < capacity`: a slot of the caller's array, writable
        // per `gupio_bio_init`'s contract.
        unsafe { self.slots.add(self.len).write(bvec) };
        self.len += 1;
        Ok(())
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The Rust value behind a `gupio_bio`.
pub(crate) enum Slot {
    Building(Bio<Storage>),
    Submitted(SubmittedBio<Storage>),
    Completed(CompletedBio<Storage>),
    Deferred(CompletedBio<Storage>),
    Released,
}

impl Slot {
    fn state(&self) -> gupio_bio_state {
        match self {
            Self::Building(_) => gupio_bio_state::GUPIO_BIO_BUILDING,
            Self::Submitted(_) => gupio_bio_state::GUPIO_BIO_SUBMITTED,
            Self::Completed(_) => gupio_bio_state::GUPIO_BIO_COMPLETED,
            Self::Deferred(_) => gupio_bio_state::GUPIO_BIO_DEFERRED,
            Self::Released => gupio_bio_state::GUPIO_BIO_RELEASED,
        }
    }

    fn bio(&self) -> Option<&Bio<Storage>> {
        match self {
            Self::Building(bio) => Some(bio),
            Self::Submitted(bio) => Some(bio.bio()),
            Self::Completed(bio) | Self::Deferred(bio) => Some(bio.bio()),
            Self::Released => None,
        }
    }
}

/// Words in a `gupio_bio`.
pub const GUPIO_BIO_WORDS: usize = 16;

/// A block I/O request over a caller-provided array of `gupio_bvec`s.
/// Opaque; set up by `gupio_bio_init`. One thread uses a bio at a time:
/// the builder, then (after `gupio_bio_submit`) the driver, then the
/// completion; the bvec array must stay valid and untouched until the bio
/// is released.
#[repr(C, align(8))]
pub struct gupio_bio {
    opaque: [u64; GUPIO_BIO_WORDS],
}

impl Opaque for gupio_bio {
    type Value = Slot;
    const MAGIC: u64 = 0x6775_7069_6f5f_4249; // "gupio_BI"
}

/// The slot behind a C bio, exclusive.
///
/// # Safety
/// `bio` is null or points to a `gupio_bio` nobody else uses during `'a`.
pub(crate) unsafe fn slot<'a>(bio: *mut gupio_bio) -> Result<&'a mut Slot, Fail> {
    // SAFETY: forwarded.
    unsafe { cell::get_mut::<gupio_bio>(bio) }
}

pub(crate) fn wrong_state() -> Fail {
    Fail::new(gupio_error::GUPIO_ERR_WRONG_STATE)
}

/// Sets up `bio` as an empty `op` (a `gupio_op`) bio at `sector` over the
/// array `bvecs` of `capacity` entries, with the device's `limits` (null:
/// defaults). Never reads what `bio` held (it may be uninitialised
/// memory): a bio that still holds pages must be released first, or their
/// pins and references leak.
///
/// Returns 0, or a negative errno: the pointer errors,
/// `GUPIO_ERR_INVALID_ARGUMENT` (an op or a limit that names nothing),
/// `GUPIO_ERR_BIO_REFUSED` (a limit gupio refuses).
///
/// # Safety
/// `bio` is null or valid for writes of a `gupio_bio` and not used by
/// another thread; `bvecs` is null or valid for reads and writes of
/// `capacity` bvecs until the bio is released, and used by nothing else
/// until then; `limits` is null or points to limits; `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_init(
    bio: *mut gupio_bio,
    bvecs: *mut gupio_bvec,
    capacity: usize,
    op: u32,
    sector: u64,
    limits: *const gupio_bio_limits,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        cell::check_ptr(bio)?;
        let op = match op {
            0 => BioOp::Read,
            1 => BioOp::Write,
            _ => return Err(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into()),
        };
        let limits = if limits.is_null() {
            BioLimits::default()
        } else {
            cell::check_ptr(limits)?;
            // SAFETY: non-null, aligned, points to limits.
            to_limits(unsafe { &*limits })?
        };
        if capacity != 0 {
            cell::check_ptr(bvecs)?;
        }
        // `gupio_bvec` has `BioVec`'s layout (asserted), and every bit
        // pattern is a valid `BioVec` (a word and two integers; decoding
        // checks the word).
        let storage = Storage {
            slots: bvecs.cast::<BioVec>(),
            capacity,
            len: 0,
        };
        let new = Bio::new(storage, op, gupio::bio::Sector(sector), limits);
        // SAFETY: `bio` is writable per the contract.
        unsafe { cell::init(bio, Slot::Building(new)) }?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Adds `len` bytes at `offset` of the page `pfn`, which the caller holds
/// as `origin` (a `gupio_origin`: a pin, a reference, or borrowed); the
/// bio now owns that pin or reference. A fragment physically contiguous
/// with the last bvec and of the same origin merges into it; when it merges
/// onto a page that bvec already holds, the extra pin or reference is
/// released at once through `tracker` (one per page per bio).
///
/// Returns 0 (a new bvec) or 1 (merged), or a negative errno (the caller
/// keeps the page): `GUPIO_ERR_BIO_FULL`, `GUPIO_ERR_BIO_REFUSED`,
/// `GUPIO_ERR_PFN_OUT_OF_RANGE`, `GUPIO_ERR_INVALID_ARGUMENT` (origin),
/// `GUPIO_ERR_WRONG_STATE` (not building), the pointer errors.
///
/// # Safety
/// `bio` is null or points to a `gupio_bio` nobody else uses during the
/// call; `tracker` is null or points to a `gupio_tracker`; `cause` is null
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_add_page(
    bio: *mut gupio_bio,
    tracker: *const gupio_tracker,
    pfn: usize,
    len: u32,
    offset: u32,
    origin: u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let Slot::Building(bio) = unsafe { slot(bio) }? else {
            return Err(wrong_state());
        };
        let added = bio
            .add_page(to_pfn(pfn)?, len, offset, to_origin(origin)?)
            .map_err(|e| Fail::from(e.error()))?;
        if let Some((page, duplicate)) = added.duplicate() {
            kernel
                .tracker()
                .release_range(PageRange::single(page), duplicate, false)?;
        }
        Ok(isize::from(added.merged()))
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Pins the user buffer of `len` bytes at `start` through `space` (with
/// `GUPIO_GUP_*` `flags`; a read from the device needs `GUPIO_GUP_WRITE`)
/// and adds it to the bio, one multi-page bvec per folio run, one pin per
/// page (Linux's `bio_iov_iter_get_pages`). Pins that did not fit are
/// released at once.
///
/// Returns the bytes added (fewer than `len` when the bio filled up or a
/// later page failed: submit and continue with a new bio), or a negative
/// errno when nothing was added: the errors of `gupio_pin_user_pages`,
/// `GUPIO_ERR_BIO_FULL`, `GUPIO_ERR_BIO_REFUSED`, `GUPIO_ERR_WRONG_STATE`,
/// and `GUPIO_ERR_INVALID_ARGUMENT` when the space's page size is not the
/// bio's.
///
/// # Safety
/// `bio` is null or points to a `gupio_bio` nobody else uses during the
/// call; `tracker` is null or points to a `gupio_tracker`; `space` is null
/// or points to an address space whose callbacks are safe to call during
/// the call; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_add_user_range(
    bio: *mut gupio_bio,
    tracker: *const gupio_tracker,
    space: *const gupio_address_space,
    start: usize,
    len: usize,
    flags: u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let space = unsafe { Space::from_c(space) }?;
        // SAFETY: forwarded.
        let Slot::Building(bio) = unsafe { slot(bio) }? else {
            return Err(wrong_state());
        };
        if space.geometry() != bio.geometry() {
            return Err(gupio_error::GUPIO_ERR_INVALID_ARGUMENT.into());
        }
        let flags = GupFlags::from_bits(flags).ok_or(Fail::from(
            gupio::pin::PinError::UnknownGupFlags { bits: flags },
        ))?;
        let added = gupio::release::add_user_range(
            &kernel.tracker(),
            &space,
            bio,
            UserAddr::new(start),
            len,
            flags,
        )?;
        Ok(isize::try_from(added).unwrap_or(isize::MAX))
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Marks every page of a building read bio dirty before submission (Linux's
/// `bio_set_pages_dirty`, for direct-I/O reads into user memory), taking
/// each folio's lock. Process context. Returns 0 or a negative errno.
///
/// # Safety
/// As `gupio_bio_add_page`.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_set_pages_dirty(
    bio: *mut gupio_bio,
    tracker: *const gupio_tracker,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let Slot::Building(bio) = unsafe { slot(bio) }? else {
            return Err(wrong_state());
        };
        gupio::release::set_pages_dirty(&kernel.tracker(), bio)?;
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Hands a building bio to the device: from now on only the driver reads
/// its bvecs, and only `gupio_bio_complete` moves it on. A bio the block
/// layer refuses (empty, not a block multiple) stays building.
///
/// Returns 0, or a negative errno: `GUPIO_ERR_BIO_REFUSED`,
/// `GUPIO_ERR_WRONG_STATE`, the pointer errors.
///
/// # Safety
/// `bio` is null or points to a `gupio_bio` nobody else uses during the
/// call; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_submit(bio: *mut gupio_bio, cause: *mut gupio_error) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        if !matches!(slot, Slot::Building(_)) {
            return Err(wrong_state());
        }
        let Slot::Building(built) = core::mem::replace(slot, Slot::Released) else {
            return Err(wrong_state());
        };
        match SubmittedBio::submit(built) {
            Ok(submitted) => {
                *slot = Slot::Submitted(submitted);
                Ok(0)
            }
            Err((built, error)) => {
                *slot = Slot::Building(built);
                Err(error.into())
            }
        }
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Records that the device finished a submitted bio with `status` (a
/// `gupio_status`); the bio is then completed, waiting for its release.
/// Call it once the bio's `gupio_completion`
/// says it finished. May run in interrupt context.
///
/// Returns 0, or a negative errno: `GUPIO_ERR_INVALID_ARGUMENT` (status),
/// `GUPIO_ERR_WRONG_STATE` (not submitted), the pointer errors.
///
/// # Safety
/// As `gupio_bio_submit`.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_complete(
    bio: *mut gupio_bio,
    status: u32,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        let status = to_status(status)?;
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        if !matches!(slot, Slot::Submitted(_)) {
            return Err(wrong_state());
        }
        let Slot::Submitted(submitted) = core::mem::replace(slot, Slot::Released) else {
            return Err(wrong_state());
        };
        *slot = Slot::Completed(submitted.complete(status));
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// What a release gave back, by origin.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct gupio_release_stats {
    /// Pages unpinned (pinned pages of the zero page are not: they were
    /// never pinned, and are counted in `zero_page`).
    pub unpinned: usize,
    /// Pages whose reference was put.
    pub put: usize,
    /// Borrowed pages left to their owner.
    pub borrowed: usize,
    /// Bvecs released (one batched tracker call each).
    pub bvecs: usize,
    /// Pages of the zero page in pinned bvecs: nothing to unpin, and not
    /// counted by `pins_released` either.
    pub zero_page: usize,
}

impl From<gupio::release::ReleaseStats> for gupio_release_stats {
    fn from(s: gupio::release::ReleaseStats) -> Self {
        Self {
            unpinned: s.unpinned,
            put: s.put,
            borrowed: s.borrowed,
            bvecs: s.bvecs,
            zero_page: s.zero_page,
        }
    }
}

/// Releases a completed bio's pages by origin (unpin, put, or nothing),
/// first locking and dirtying each folio not yet dirty when `mark_dirty` (a
/// direct-I/O read; process context then). The bio is released whatever
/// happens: every page is given back once, and the first failure is
/// reported after the rest were released. `stats` (may be null) receives
/// the counts. Without `mark_dirty` it may run in interrupt context.
///
/// Returns 0, or a negative errno: the count errors of the first page that
/// failed, `GUPIO_ERR_WRONG_STATE` (not completed), the pointer errors.
///
/// # Safety
/// As `gupio_bio_add_page`; `stats` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_release(
    bio: *mut gupio_bio,
    tracker: *const gupio_tracker,
    mark_dirty: bool,
    stats: *mut gupio_release_stats,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        if !stats.is_null() {
            cell::check_ptr(stats)?;
        }
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        if !matches!(slot, Slot::Completed(_)) {
            return Err(wrong_state());
        }
        let Slot::Completed(done) = core::mem::replace(slot, Slot::Released) else {
            return Err(wrong_state());
        };
        let released = done.release(&kernel.tracker(), mark_dirty);
        let counts = released.result?;
        if !stats.is_null() {
            // SAFETY: checked non-null and aligned; writable per contract.
            unsafe { stats.write(counts.into()) };
        }
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Capacity of a `gupio_deferred_list`.
pub const GUPIO_DEFERRED_CAPACITY: usize = 64;

/// A pointer to a deferred C bio.
pub(crate) struct Deferred(*mut gupio_bio);

/// Words in a `gupio_deferred_list`.
pub const GUPIO_DEFERRED_LIST_WORDS: usize = 72;

/// A list of completed direct-I/O read bios whose release waits for process
/// context (a page was cleaned while the device wrote into it: it must be
/// re-dirtied under its lock). Filled from interrupt context by
/// `gupio_bio_complete_dio_read`, drained by `gupio_deferred_drain`.
/// Opaque; set up by `gupio_deferred_init`; holds at most
/// `GUPIO_DEFERRED_CAPACITY` bios. Shared between threads once set up
/// (a short spin lock; disable interrupts around it where an interrupt
/// handler on the same CPU also pushes).
#[repr(C, align(8))]
pub struct gupio_deferred_list {
    opaque: [u64; GUPIO_DEFERRED_LIST_WORDS],
}

impl Opaque for gupio_deferred_list {
    type Value = DeferredList<Deferred, GUPIO_DEFERRED_CAPACITY>;
    const MAGIC: u64 = 0x6775_7069_6f5f_444c; // "gupio_DL"
}

/// Sets up an empty deferred list. Returns 0 or a negative errno (pointer
/// errors).
///
/// # Safety
/// `list` is null or valid for writes of a `gupio_deferred_list`, and not
/// in use (a list holding bios must be drained first); `cause` is null or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_deferred_init(
    list: *mut gupio_deferred_list,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { cell::init(list, DeferredList::new()) }.map(|()| 0);
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Completes a direct-I/O read at interrupt time (Linux's
/// `bio_check_pages_dirty`): if every page is still dirty, releases the
/// bio at once (returns 0; its bvec array is the caller's again);
/// otherwise queues it on `list` (returns 1) for `gupio_deferred_drain`,
/// which re-dirties and releases it and then reports it.
///
/// Returns 0, 1, or a negative errno: `GUPIO_ERR_DEFERRED_FULL` (the bio
/// stays completed: release it with `mark_dirty` from process context),
/// `GUPIO_ERR_WRONG_STATE` (not completed), the count errors of an
/// immediate release, the pointer errors.
///
/// # Safety
/// As `gupio_bio_add_page`; `list` is null or points to a
/// `gupio_deferred_list`; a queued bio must stay valid, and be used by
/// nothing else, until the drain reports it.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_complete_dio_read(
    bio: *mut gupio_bio,
    tracker: *const gupio_tracker,
    list: *const gupio_deferred_list,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded; a set-up list is only ever shared.
        let list = unsafe { cell::get::<gupio_deferred_list>(list) }?;
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        let Slot::Completed(done) = &*slot else {
            return Err(wrong_state());
        };
        let tracker = kernel.tracker();
        if matches!(check_pages_dirty(&tracker, done.bio()), Ok(true)) {
            let Slot::Completed(done) = core::mem::replace(slot, Slot::Released) else {
                return Err(wrong_state());
            };
            done.release(&tracker, false).result?;
            return Ok(0);
        }
        // Some page was cleaned (or could not be checked): defer. The state
        // changes before the push, after which a drainer may take the bio
        // (proven by a_deferred_read_is_deferred_before_a_drainer_can_take_it
        // under miri, and the mutant capi-deferred-state-after-push).
        let Slot::Completed(done) = core::mem::replace(slot, Slot::Released) else {
            return Err(wrong_state());
        };
        *slot = Slot::Deferred(done);
        let pushed = list.push(Deferred(bio));
        if let Err(full) = pushed {
            let error = full.error();
            // SAFETY: the push failed, so nothing else holds the bio.
            let slot = unsafe { self::slot(bio) }?;
            if let Slot::Deferred(done) = core::mem::replace(slot, Slot::Released) {
                *slot = Slot::Completed(done);
            }
            return Err(error.into());
        }
        Ok(1)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Releases every bio on `list` in process context: re-dirties each folio
/// under its lock, releases by origin, and calls `done(ctx, bio, ret,
/// cause)` for each, with `ret` 0 or the negative errno of its release;
/// after the call the bio and its bvec array are the caller's again.
/// `done` may be null.
///
/// Returns the number of bios released, or a negative errno (pointer
/// errors).
///
/// # Safety
/// `list` is null or points to a `gupio_deferred_list`; `tracker` is null
/// or points to a `gupio_tracker`; `done` is null or safe to call with
/// `ctx`; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_deferred_drain(
    list: *const gupio_deferred_list,
    tracker: *const gupio_tracker,
    done: Option<
        unsafe extern "C" fn(ctx: *mut c_void, bio: *mut gupio_bio, ret: isize, cause: gupio_error),
    >,
    ctx: *mut c_void,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        // SAFETY: forwarded.
        let kernel = unsafe { kernel_of(tracker) }?;
        // SAFETY: forwarded.
        let list = unsafe { cell::get::<gupio_deferred_list>(list) }?;
        let tracker = kernel.tracker();
        let drained = list.drain(|Deferred(bio)| {
            // SAFETY: a queued bio stays valid and unused until reported.
            let outcome = match unsafe { slot(bio) } {
                Ok(slot) => match core::mem::replace(slot, Slot::Released) {
                    Slot::Deferred(deferred) => {
                        deferred.release(&tracker, true).result.map_err(Fail::from)
                    }
                    other => {
                        *slot = other;
                        Err(wrong_state())
                    }
                },
                Err(fail) => Err(fail),
            };
            if let Some(done) = done {
                let (ret, why) = match outcome {
                    Ok(_) => (0, gupio_error::GUPIO_OK),
                    Err(fail) => (-(fail.errno as isize), fail.cause),
                };
                // SAFETY: the caller's callback with its own context.
                unsafe { done(ctx, bio, ret, why) };
            }
        });
        Ok(isize::try_from(drained).unwrap_or(isize::MAX))
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// The bio's `gupio_bio_state`, or a negative errno (pointer errors,
/// `GUPIO_ERR_NOT_INITIALIZED`).
///
/// # Safety
/// As `gupio_bio_submit`.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_get_state(
    bio: *mut gupio_bio,
    cause: *mut gupio_error,
) -> isize {
    // SAFETY: forwarded.
    let result = unsafe { slot(bio) }.map(|s| s.state() as isize);
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Facts about a live bio.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct gupio_bio_info {
    /// Bvecs used in the array.
    pub vcnt: usize,
    /// Bytes of I/O.
    pub size: u32,
    /// The `gupio_status` (meaningful once completed).
    pub status: u32,
    /// The first sector.
    pub sector: u64,
}

/// Writes the bio's bvec count, size, status and sector into `info`.
/// Returns 0 or a negative errno (`GUPIO_ERR_WRONG_STATE` once released,
/// pointer errors).
///
/// # Safety
/// As `gupio_bio_submit`; `info` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bio_get_info(
    bio: *mut gupio_bio,
    info: *mut gupio_bio_info,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        cell::check_ptr(info)?;
        // SAFETY: forwarded.
        let slot = unsafe { slot(bio) }?;
        let bio = slot.bio().ok_or(wrong_state())?;
        let facts = gupio_bio_info {
            vcnt: bio.vcnt(),
            size: bio.size(),
            status: u32::from(bio.status().to_raw()),
            sector: bio.sector().0,
        };
        // SAFETY: checked non-null and aligned; writable per contract.
        unsafe { info.write(facts) };
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}

/// Decodes a bvec's tagged word: writes its page-frame number and its
/// `gupio_origin` (either pointer may be null). Returns 0, or a negative
/// errno: `GUPIO_ERR_PFN_OUT_OF_RANGE` for a word that names no page
/// (the no-page sentinel, or an invalid tag), pointer errors.
///
/// # Safety
/// `bvec` is null or points to a bvec; `pfn` and `origin` are null or
/// writable; `cause` is null or writable.
#[no_mangle]
pub unsafe extern "C" fn gupio_bvec_decode(
    bvec: *const gupio_bvec,
    pfn_out: *mut usize,
    origin_out: *mut gupio_origin,
    cause: *mut gupio_error,
) -> isize {
    let result = (|| {
        cell::check_ptr(bvec)?;
        // SAFETY: non-null, aligned, points to a bvec.
        let word = unsafe { bvec.read() }.word;
        let (page, origin) = gupio::pfn::TaggedPfn::from_raw(word)?
            .decode()
            .ok_or(gupio_error::GUPIO_ERR_PFN_OUT_OF_RANGE)?;
        if !pfn_out.is_null() {
            cell::check_ptr(pfn_out)?;
            // SAFETY: non-null, aligned, writable per contract.
            unsafe { pfn_out.write(page.get()) };
        }
        if !origin_out.is_null() {
            cell::check_ptr(origin_out)?;
            // SAFETY: non-null, aligned, writable per contract.
            unsafe { origin_out.write(origin_to_c(origin)) };
        }
        Ok(0)
    })();
    // SAFETY: `cause` is null or writable.
    unsafe { finish(result, cause) }
}
