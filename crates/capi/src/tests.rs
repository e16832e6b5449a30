//! The C ABI driven from Rust through its `extern "C"` entry points, with
//! Rust callbacks standing in for the kernel's (run under miri too, which
//! checks every raw-pointer step).

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use gupio::pin::PageCounters;

use super::*;
use gupio_error::*;

const BASE: usize = 0x100;
const PAGES: usize = 16;

/// Sixteen pages from pfn 0x100 and the kernel's counts.
struct Machine {
    pages: [PageCounters; PAGES],
    frees: AtomicUsize,
    warnings: AtomicUsize,
    last_warning: AtomicUsize,
    acquired: AtomicUsize,
    released: AtomicUsize,
}

impl Machine {
    fn new() -> Box<Self> {
        Box::new(Self {
            pages: core::array::from_fn(|_| PageCounters::new()),
            frees: AtomicUsize::new(0),
            warnings: AtomicUsize::new(0),
            last_warning: AtomicUsize::new(0),
            acquired: AtomicUsize::new(0),
            released: AtomicUsize::new(0),
        })
    }

    fn page(&self, pfn: usize) -> &PageCounters {
        &self.pages[pfn - BASE]
    }
}

fn machine(ctx: *mut c_void) -> &'static Machine {
    // SAFETY: every table below carries a pointer to a live boxed Machine.
    unsafe { &*ctx.cast::<Machine>() }
}

unsafe extern "C" fn counters(ctx: *mut c_void, pfn: usize) -> *mut gupio_page_counters {
    let m = machine(ctx);
    match pfn.checked_sub(BASE).and_then(|i| m.pages.get(i)) {
        Some(page) => (page as *const PageCounters).cast_mut().cast(),
        None => null_mut(),
    }
}

unsafe extern "C" fn free_folio(ctx: *mut c_void, _head: usize, _order: u32) {
    machine(ctx).frees.fetch_add(1, Ordering::Relaxed);
}

unsafe extern "C" fn warn(ctx: *mut c_void, warning: *const gupio_warning) {
    let m = machine(ctx);
    m.warnings.fetch_add(1, Ordering::Relaxed);
    // SAFETY: gupio passes a warning valid for the call.
    let kind = unsafe { (*warning).kind };
    m.last_warning.store(kind as usize, Ordering::Relaxed);
}

unsafe extern "C" fn acquired(ctx: *mut c_void, pages: usize) {
    machine(ctx).acquired.fetch_add(pages, Ordering::Relaxed);
}

unsafe extern "C" fn released(ctx: *mut c_void, pages: usize) {
    machine(ctx).released.fetch_add(pages, Ordering::Relaxed);
}

fn ops(m: &Machine) -> gupio_page_ops {
    gupio_page_ops {
        counters: Some(counters),
        is_zero_page: None,
        is_longterm_pinnable: None,
        free_folio: Some(free_folio),
        warn: Some(warn),
        pins_acquired: Some(acquired),
        pins_released: Some(released),
        lock_folio: None,
        try_lock_folio: None,
        unlock_folio: None,
        mark_folio_dirty: None,
        ctx: (m as *const Machine).cast_mut().cast(),
    }
}

/// A tracker over `m` with pages 0x100..0x104 small and an order-2 folio
/// at 0x104.
fn tracker(m: &Machine) -> Box<MaybeUninit<gupio_tracker>> {
    let mut t = Box::new(MaybeUninit::<gupio_tracker>::uninit());
    // SAFETY: the tracker storage is writable, the table valid; the machine
    // outlives every use in a test.
    unsafe {
        assert_eq!(gupio_tracker_init(t.as_mut_ptr(), &ops(m), null_mut()), 0);
        for pfn in BASE..BASE + 4 {
            assert_eq!(gupio_folio_prepare(t.as_ptr(), pfn, 0, null_mut()), 0);
        }
        assert_eq!(gupio_folio_prepare(t.as_ptr(), BASE + 4, 2, null_mut()), 0);
    }
    t
}

/// Runs `f` with a cause slot; returns its value and the cause.
fn call(f: impl FnOnce(*mut gupio_error) -> isize) -> (isize, gupio_error) {
    let mut cause = GUPIO_ERR_NULL_POINTER;
    let ret = f(&mut cause);
    (ret, cause)
}

fn err(cause: gupio_error) -> (isize, gupio_error) {
    (-(cause.errno() as isize), cause)
}

#[test]
fn every_cause_has_a_name_an_errno_and_its_number() {
    for (n, cause) in ALL.iter().enumerate() {
        let raw = u32::try_from(n).unwrap();
        assert_eq!(*cause as u32, raw);
        // SAFETY: a non-null result is a static NUL-terminated string.
        let name = unsafe { core::ffi::CStr::from_ptr(gupio_error_name(raw)) };
        assert_eq!(name.to_str().unwrap(), format!("{cause:?}"));
        assert_eq!(gupio_error_errno(raw), -cause.errno());
        assert_eq!(cause.errno() == 0, *cause == GUPIO_OK);
    }
    let past = u32::try_from(ALL.len()).unwrap();
    assert!(gupio_error_name(past).is_null());
    assert_eq!(gupio_error_errno(past), -GUPIO_EINVAL);
}

#[test]
fn a_tracker_refuses_missing_callbacks_and_half_the_lock_hooks() {
    let m = Machine::new();
    let mut t = MaybeUninit::<gupio_tracker>::uninit();
    let mut table = ops(&m);
    table.free_folio = None;
    // SAFETY: writable storage, a valid table, a writable cause.
    let got = call(|c| unsafe { gupio_tracker_init(t.as_mut_ptr(), &table, c) });
    assert_eq!(got, err(GUPIO_ERR_MISSING_CALLBACK));
    let mut table = ops(&m);
    table.unlock_folio = Some(free_folio);
    // SAFETY: as above.
    let got = call(|c| unsafe { gupio_tracker_init(t.as_mut_ptr(), &table, c) });
    assert_eq!(got, err(GUPIO_ERR_MISSING_CALLBACK));
    // SAFETY: as above, with a null table.
    let got = call(|c| unsafe { gupio_tracker_init(t.as_mut_ptr(), null(), c) });
    assert_eq!(got, err(GUPIO_ERR_NULL_POINTER));
}

#[test]
fn pins_count_in_the_counters_and_unbalanced_calls_are_refused() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = t.as_ptr();
    // SAFETY: a set-up tracker; the machine's counters for the reads.
    unsafe {
        assert_eq!(gupio_pin_range(t, BASE + 1, 1, null_mut()), 0);
        let page = (m.page(BASE + 1) as *const PageCounters).cast::<gupio_page_counters>();
        assert_eq!(gupio_counters_refcount(page, null_mut()), 1 + 1024);
        assert_eq!(gupio_maybe_dma_pinned(t, BASE + 1, null_mut()), 1);
        let pfns = [BASE + 4, BASE + 5, BASE + 7];
        assert_eq!(gupio_pin_pages(t, pfns.as_ptr(), 3, null_mut()), 0);
        assert_eq!(m.page(BASE + 4).pincount(), 3);
        assert_eq!(gupio_unpin_pages(t, pfns.as_ptr(), 3, null_mut()), 0);
        assert_eq!(gupio_unpin_range(t, BASE + 1, 1, null_mut()), 0);
        assert_eq!(gupio_maybe_dma_pinned(t, BASE + 1, null_mut()), 0);
        let got = call(|c| gupio_unpin_range(t, BASE + 1, 1, c));
        assert_eq!(got, err(GUPIO_ERR_NOT_PINNED));
        assert_eq!(m.warnings.load(Ordering::Relaxed), 1);
        assert_eq!(
            m.last_warning.load(Ordering::Relaxed),
            gupio_warning_kind::GUPIO_WARN_UNPIN_WITHOUT_PIN as usize
        );
        let got = call(|c| gupio_pin_pages(t, null(), 1, c));
        assert_eq!(got, err(GUPIO_ERR_NULL_POINTER));
        let bad = [BASE + 1, usize::MAX];
        let got = call(|c| gupio_pin_pages(t, bad.as_ptr(), 2, c));
        assert_eq!(got, err(GUPIO_ERR_PFN_OUT_OF_RANGE));
        assert_eq!(
            m.page(BASE + 1).refcount(),
            1,
            "a refused array takes nothing"
        );
        let got = call(|c| gupio_pin_range(t, BASE + PAGES, 1, c));
        assert_eq!(got, err(GUPIO_ERR_NOT_IN_MEMORY_MAP));
        let got = call(|c| gupio_pin_range(t.cast::<u8>().add(4).cast(), BASE, 1, c));
        assert_eq!(got, err(GUPIO_ERR_MISALIGNED_POINTER));
    }
    assert_eq!(m.acquired.load(Ordering::Relaxed), 4);
    assert_eq!(m.released.load(Ordering::Relaxed), 4);
    assert_eq!(m.frees.load(Ordering::Relaxed), 0);
}

#[test]
fn uninitialised_objects_are_refused_not_read() {
    let m = Machine::new();
    let t = tracker(&m);
    let zeroed = MaybeUninit::<gupio_tracker>::zeroed();
    let mut bio = MaybeUninit::<gupio_bio>::zeroed();
    let done = MaybeUninit::<gupio_completion>::zeroed();
    // SAFETY: zeroed storage of the right types.
    unsafe {
        let got = call(|c| gupio_pin_range(zeroed.as_ptr(), BASE, 1, c));
        assert_eq!(got, err(GUPIO_ERR_NOT_INITIALIZED));
        let got = call(|c| gupio_bio_submit(bio.as_mut_ptr(), c));
        assert_eq!(got, err(GUPIO_ERR_NOT_INITIALIZED));
        let got = call(|c| gupio_completion_start(done.as_ptr(), c));
        assert_eq!(got, err(GUPIO_ERR_NOT_INITIALIZED));
        let got = call(|c| gupio_completion_complete(done.as_ptr(), t.as_ptr(), 0, null_mut(), c));
        assert_eq!(got, err(GUPIO_ERR_NOT_INITIALIZED));
    }
}

/// User address 0x10000 + n pages maps pfn 0x104 + n for 4 pages.
unsafe extern "C" fn translate_run(
    _ctx: *mut c_void,
    addr: usize,
    max_pages: usize,
    run: *mut gupio_mapped_run,
) -> u32 {
    let page = addr.wrapping_sub(0x10000) / 4096;
    let out = if addr >= 0x10000 && page < 4 {
        gupio_mapped_run {
            pfn: BASE + 4 + page,
            pages: (4 - page).min(max_pages),
            flags: GUPIO_MAPPING_WRITABLE,
        }
    } else {
        gupio_mapped_run {
            pfn: 0,
            pages: 0,
            flags: 0,
        }
    };
    // SAFETY: gupio passes a run valid for the call.
    unsafe { run.write(out) };
    0
}

unsafe extern "C" fn fault_in(_ctx: *mut c_void, _addr: usize, _write: bool) -> u32 {
    gupio_fault::GUPIO_FAULT_UNMAPPED as u32
}

fn space() -> gupio_address_space {
    gupio_address_space {
        translate_run: Some(translate_run),
        fault_in: Some(fault_in),
        mapping_kind: None,
        ctx: null_mut(),
        page_shift: 12,
    }
}

#[test]
fn a_direct_io_read_runs_from_pin_to_release() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = t.as_ptr();
    let space = space();
    let mut table = [gupio_bvec {
        word: 0,
        len: 0,
        offset: 0,
    }; 4];
    let mut bio = MaybeUninit::<gupio_bio>::uninit();
    let bio = bio.as_mut_ptr();
    let mut done = MaybeUninit::<gupio_completion>::uninit();
    let done = done.as_mut_ptr();
    let mut list = Box::new(MaybeUninit::<gupio_deferred_list>::uninit());
    let list = list.as_mut_ptr();
    // SAFETY: every pointer is to live storage of its type; the bvec table
    // outlives the bio's use.
    unsafe {
        let read = gupio_op::GUPIO_OP_READ as u32;
        assert_eq!(
            gupio_bio_init(bio, table.as_mut_ptr(), 4, read, 8, null(), null_mut()),
            0
        );
        let added = gupio_bio_add_user_range(bio, t, &space, 0x10000, 3 * 4096, 1, null_mut());
        assert_eq!(added, 3 * 4096);
        assert_eq!(m.page(BASE + 4).pincount(), 3);
        let mut info = gupio_bio_info::default();
        assert_eq!(gupio_bio_get_info(bio, &mut info, null_mut()), 0);
        assert_eq!((info.vcnt, info.size, info.sector), (1, 3 * 4096, 8));
        let (mut pfn, mut origin) = (0, gupio_origin::GUPIO_ORIGIN_BORROWED);
        assert_eq!(
            gupio_bvec_decode(&table[0], &mut pfn, &mut origin, null_mut()),
            0
        );
        assert_eq!((pfn, origin), (BASE + 4, gupio_origin::GUPIO_ORIGIN_PINNED));
        assert_eq!(gupio_bio_set_pages_dirty(bio, t, null_mut()), 0);

        assert_eq!(gupio_completion_init(done, null_mut()), 0);
        assert_eq!(gupio_completion_start(done, null_mut()), 0);
        let got = call(|c| gupio_bio_complete(bio, 0, c));
        assert_eq!(got, err(GUPIO_ERR_WRONG_STATE));
        assert_eq!(gupio_bio_submit(bio, null_mut()), 0);
        let got = call(|c| gupio_bio_add_page(bio, t, BASE, 512, 0, 2, c));
        assert_eq!(got, err(GUPIO_ERR_WRONG_STATE));
        // Writeback cleans the folio while the device writes into it.
        m.page(BASE + 4).clear_flags(gupio::pin::PageFlags::DIRTY);
        let mut status = 99;
        assert_eq!(
            gupio_completion_complete(done, t, 0, &mut status, null_mut()),
            1
        );
        assert_eq!(status, 0);
        assert_eq!(gupio_bio_complete(bio, status, null_mut()), 0);
        assert_eq!(gupio_deferred_init(list, null_mut()), 0);
        assert_eq!(gupio_bio_complete_dio_read(bio, t, list, null_mut()), 1);
        let deferred = gupio_bio_state::GUPIO_BIO_DEFERRED as isize;
        assert_eq!(gupio_bio_get_state(bio, null_mut()), deferred);
        assert_eq!(m.page(BASE + 4).pincount(), 3, "held until drained");

        unsafe extern "C" fn done_cb(
            ctx: *mut c_void,
            _: *mut gupio_bio,
            ret: isize,
            _: gupio_error,
        ) {
            // SAFETY: the test passes a pointer to its counter.
            unsafe { *ctx.cast::<isize>() += 1 + ret };
        }
        let mut reported = 0isize;
        let ctx = (&mut reported as *mut isize).cast();
        assert_eq!(
            gupio_deferred_drain(list, t, Some(done_cb), ctx, null_mut()),
            1
        );
        assert_eq!(reported, 1);
        let released = gupio_bio_state::GUPIO_BIO_RELEASED as isize;
        assert_eq!(gupio_bio_get_state(bio, null_mut()), released);
        assert!(m
            .page(BASE + 4)
            .flags()
            .contains(gupio::pin::PageFlags::DIRTY));
        let got = call(|c| gupio_bio_release(bio, t, false, null_mut(), c));
        assert_eq!(got, err(GUPIO_ERR_WRONG_STATE));
    }
    assert_eq!(m.page(BASE + 4).pincount(), 0);
    assert_eq!(m.page(BASE + 4).refcount(), 1);
    assert_eq!(m.acquired.load(Ordering::Relaxed), 3);
    assert_eq!(m.released.load(Ordering::Relaxed), 3);
    assert_eq!(m.warnings.load(Ordering::Relaxed), 0);
}

#[test]
fn a_chained_child_finishes_its_parent_once() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = t.as_ptr();
    let mut parent = MaybeUninit::<gupio_completion>::uninit();
    let parent = parent.as_mut_ptr();
    let mut link = MaybeUninit::<gupio_chain_link>::uninit();
    let link = link.as_mut_ptr();
    // SAFETY: live storage of each type; the parent outlives the link.
    unsafe {
        assert_eq!(gupio_completion_init(parent, null_mut()), 0);
        let got = call(|c| gupio_completion_chain(parent, link, c));
        assert_eq!(got, err(GUPIO_ERR_CHAIN_REFUSED));
        assert_eq!(gupio_completion_start(parent, null_mut()), 0);
        assert_eq!(gupio_completion_chain(parent, link, null_mut()), 0);
        let mut status = 99;
        assert_eq!(
            gupio_completion_complete(parent, t, 0, &mut status, null_mut()),
            0
        );
        assert_eq!(status, 99, "a child is outstanding");
        let io_error = gupio_status::GUPIO_STATUS_IO_ERROR as u32;
        assert_eq!(
            gupio_chain_complete(link, t, io_error, &mut status, null_mut()),
            1
        );
        assert_eq!(status, io_error);
        let got = call(|c| gupio_chain_complete(link, t, 0, null_mut(), c));
        assert_eq!(got, err(GUPIO_ERR_DOUBLE_COMPLETION));
        let got = call(|c| gupio_completion_complete(parent, t, 0, null_mut(), c));
        assert_eq!(got, err(GUPIO_ERR_DOUBLE_COMPLETION));
    }
    assert_eq!(m.warnings.load(Ordering::Relaxed), 2);
}

#[test]
fn a_merged_duplicate_pin_is_released_at_once() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = t.as_ptr();
    let mut table = [gupio_bvec {
        word: 0,
        len: 0,
        offset: 0,
    }; 2];
    let mut bio = MaybeUninit::<gupio_bio>::uninit();
    let bio = bio.as_mut_ptr();
    let pinned = gupio_origin::GUPIO_ORIGIN_PINNED as u32;
    // SAFETY: live storage; the table outlives the bio's use.
    unsafe {
        assert_eq!(gupio_pin_range(t, BASE + 2, 1, null_mut()), 0);
        assert_eq!(gupio_pin_range(t, BASE + 2, 1, null_mut()), 0);
        assert_eq!(
            gupio_bio_init(bio, table.as_mut_ptr(), 2, 1, 0, null(), null_mut()),
            0
        );
        assert_eq!(
            gupio_bio_add_page(bio, t, BASE + 2, 512, 0, pinned, null_mut()),
            0
        );
        // The same page again, right after: merged, its second pin dropped.
        assert_eq!(
            gupio_bio_add_page(bio, t, BASE + 2, 512, 512, pinned, null_mut()),
            1
        );
        assert_eq!(m.page(BASE + 2).refcount(), 1 + 1024);
        assert_eq!(gupio_bio_submit(bio, null_mut()), 0);
        assert_eq!(gupio_bio_complete(bio, 0, null_mut()), 0);
        let mut stats = gupio_release_stats::default();
        assert_eq!(gupio_bio_release(bio, t, false, &mut stats, null_mut()), 0);
        assert_eq!((stats.unpinned, stats.bvecs), (1, 1));
    }
    assert_eq!(m.page(BASE + 2).refcount(), 1);
    assert_eq!(m.acquired.load(Ordering::Relaxed), 2);
    assert_eq!(m.released.load(Ordering::Relaxed), 2);
}

/// A submitted write of one pinned page (pfn 0x102) over `table`, and its
/// completion, initialised but not started.
///
/// # Safety
/// `bio` and `done` are writable storage of their types; `table` outlives
/// the bio's use.
unsafe fn pinned_write(
    t: *const gupio_tracker,
    table: &mut [gupio_bvec; 1],
    bio: *mut gupio_bio,
    done: *mut gupio_completion,
) {
    let pinned = gupio_origin::GUPIO_ORIGIN_PINNED as u32;
    let write = gupio_op::GUPIO_OP_WRITE as u32;
    // SAFETY: forwarded.
    unsafe {
        assert_eq!(gupio_pin_range(t, BASE + 2, 1, null_mut()), 0);
        assert_eq!(
            gupio_bio_init(bio, table.as_mut_ptr(), 1, write, 0, null(), null_mut()),
            0
        );
        assert_eq!(
            gupio_bio_add_page(bio, t, BASE + 2, 4096, 0, pinned, null_mut()),
            0
        );
        assert_eq!(gupio_bio_submit(bio, null_mut()), 0);
        assert_eq!(gupio_completion_init(done, null_mut()), 0);
    }
}

/// The bio's state and status.
///
/// # Safety
/// `bio` points to a set-up `gupio_bio`.
unsafe fn state_and_status(bio: *mut gupio_bio) -> (isize, u32) {
    let mut info = gupio_bio_info::default();
    // SAFETY: forwarded.
    unsafe {
        assert_eq!(gupio_bio_get_info(bio, &mut info, null_mut()), 0);
        (gupio_bio_get_state(bio, null_mut()), info.status)
    }
}

#[test]
fn bio_end_completes_a_lone_bio_in_every_outcome() {
    let io_error = gupio_status::GUPIO_STATUS_IO_ERROR as u32;
    let medium = gupio_status::GUPIO_STATUS_MEDIUM as u32;
    let completed = gupio_bio_state::GUPIO_BIO_COMPLETED as isize;
    // (how the completion is prepared, the device's status, what bio_end
    // returns, the status the bio is completed with)
    #[derive(Clone, Copy, Debug)]
    enum Prepared {
        Started,
        NeverStarted,
        AlreadyReported,
        ChildChained,
    }
    for (prepared, device, expected, final_status) in [
        (Prepared::Started, 0, (0, GUPIO_OK), 0),
        (Prepared::Started, medium, (0, GUPIO_OK), medium),
        (
            Prepared::NeverStarted,
            0,
            err(GUPIO_ERR_NOT_STARTED),
            io_error,
        ),
        (
            Prepared::AlreadyReported,
            0,
            err(GUPIO_ERR_DOUBLE_COMPLETION),
            io_error,
        ),
        (
            Prepared::ChildChained,
            0,
            err(GUPIO_ERR_UNFINISHED),
            io_error,
        ),
    ] {
        let m = Machine::new();
        let t = tracker(&m);
        let t = t.as_ptr();
        let mut table = [gupio_bvec {
            word: 0,
            len: 0,
            offset: 0,
        }; 1];
        let mut bio = MaybeUninit::<gupio_bio>::uninit();
        let bio = bio.as_mut_ptr();
        let mut done = MaybeUninit::<gupio_completion>::uninit();
        let done = done.as_mut_ptr();
        let mut link = MaybeUninit::<gupio_chain_link>::uninit();
        let link = link.as_mut_ptr();
        // SAFETY: live storage of each type; the table and the completion
        // outlive the bio's and the link's use.
        unsafe {
            pinned_write(t, &mut table, bio, done);
            match prepared {
                Prepared::Started => assert_eq!(gupio_completion_start(done, null_mut()), 0),
                Prepared::NeverStarted => {}
                Prepared::AlreadyReported => {
                    assert_eq!(gupio_completion_start(done, null_mut()), 0);
                    assert_eq!(
                        gupio_completion_complete(done, t, 0, null_mut(), null_mut()),
                        1
                    );
                }
                Prepared::ChildChained => {
                    assert_eq!(gupio_completion_start(done, null_mut()), 0);
                    assert_eq!(gupio_completion_chain(done, link, null_mut()), 0);
                }
            }
            let mut status = 99;
            let got = call(|c| gupio_bio_end(bio, done, t, device, &mut status, c));
            assert_eq!(got, expected, "{prepared:?}");
            assert_eq!(status, final_status, "{prepared:?}");
            assert_eq!(
                state_and_status(bio),
                (completed, final_status),
                "{prepared:?}"
            );
            // Completed whatever happened: the pin goes back.
            let mut stats = gupio_release_stats::default();
            assert_eq!(gupio_bio_release(bio, t, false, &mut stats, null_mut()), 0);
            assert_eq!(stats.unpinned, 1, "{prepared:?}");
            if let Prepared::ChildChained = prepared {
                assert_eq!(
                    gupio_chain_complete(link, t, 0, null_mut(), null_mut()),
                    1,
                    "the child finishes the completion"
                );
            }
        }
        let warned = matches!(prepared, Prepared::AlreadyReported);
        assert_eq!(m.warnings.load(Ordering::Relaxed), usize::from(warned));
        assert_eq!(m.page(BASE + 2).pincount(), 0);
        assert_eq!(
            m.acquired.load(Ordering::Relaxed),
            m.released.load(Ordering::Relaxed)
        );
    }
}

#[test]
fn bio_end_argument_errors_leave_the_bio_and_completion_as_they_were() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = t.as_ptr();
    let mut table = [gupio_bvec {
        word: 0,
        len: 0,
        offset: 0,
    }; 1];
    let mut bio = MaybeUninit::<gupio_bio>::uninit();
    let bio = bio.as_mut_ptr();
    let mut done = MaybeUninit::<gupio_completion>::uninit();
    let done = done.as_mut_ptr();
    let submitted = gupio_bio_state::GUPIO_BIO_SUBMITTED as isize;
    // SAFETY: live storage of each type; the table outlives the bio's use.
    unsafe {
        pinned_write(t, &mut table, bio, done);
        assert_eq!(gupio_completion_start(done, null_mut()), 0);
        let mut status = 99;
        for (got, expected) in [
            (
                call(|c| gupio_bio_end(bio, done, t, 200, &mut status, c)),
                GUPIO_ERR_INVALID_ARGUMENT,
            ),
            (
                call(|c| gupio_bio_end(bio, null(), t, 0, &mut status, c)),
                GUPIO_ERR_NULL_POINTER,
            ),
            (
                call(|c| gupio_bio_end(bio, done, null(), 0, &mut status, c)),
                GUPIO_ERR_NULL_POINTER,
            ),
            (
                call(|c| gupio_bio_end(null_mut(), done, t, 0, &mut status, c)),
                GUPIO_ERR_NULL_POINTER,
            ),
        ] {
            assert_eq!(got, err(expected));
            assert_eq!(gupio_bio_get_state(bio, null_mut()), submitted);
            assert_eq!(status, 99, "nothing stored");
        }
        // The completion was never reported to: the real end still works.
        assert_eq!(gupio_bio_end(bio, done, t, 0, &mut status, null_mut()), 0);
        assert_eq!(status, 0);
        let got = call(|c| gupio_bio_end(bio, done, t, 0, null_mut(), c));
        assert_eq!(got, err(GUPIO_ERR_WRONG_STATE), "completed already");
        assert_eq!(gupio_bio_release(bio, t, false, null_mut(), null_mut()), 0);
    }
    assert_eq!(m.warnings.load(Ordering::Relaxed), 0);
    assert_eq!(m.page(BASE + 2).pincount(), 0);
}

#[test]
fn release_warnings_reach_the_one_warn_hook_with_their_own_kinds() {
    use gupio::release::{AnyWarning, ReleaseWarning};
    let cases = [
        (
            ReleaseWarning::BvecWithoutPage { index: 3 },
            gupio_warning_kind::GUPIO_WARN_BVEC_WITHOUT_PAGE,
            3,
        ),
        (
            ReleaseWarning::DoubleCompletion,
            gupio_warning_kind::GUPIO_WARN_DOUBLE_COMPLETION,
            0,
        ),
        (
            ReleaseWarning::CorruptCompletionStatus { raw: 0x42 },
            gupio_warning_kind::GUPIO_WARN_CORRUPT_COMPLETION_STATUS,
            0x42,
        ),
    ];
    for (warning, kind, a) in cases {
        let c = gupio_warning::from(AnyWarning::from(warning));
        assert_eq!(
            (c.kind, c.pfn, c.a, c.b, c.c),
            (kind, 0, a, 0, 0),
            "{warning}"
        );
    }
    let pin = gupio::pin::Warning::CorruptFolio {
        pfn: gupio::pfn::Pfn::new(9),
    };
    let c = gupio_warning::from(AnyWarning::from(pin));
    assert_eq!(
        (c.kind, c.pfn),
        (gupio_warning_kind::GUPIO_WARN_CORRUPT_FOLIO, 9)
    );
    let added = gupio::pin::Warning::AddPinWithoutPin {
        pfn: gupio::pfn::Pfn::new(9),
        refcount: 1,
        pincount: 0,
    };
    let c = gupio_warning::from(AnyWarning::from(added));
    assert_eq!(
        (c.kind, c.pfn, c.a, c.b),
        (gupio_warning_kind::GUPIO_WARN_ADD_PIN_WITHOUT_PIN, 9, 1, 0)
    );
    let underflow = gupio::pin::Warning::AccountUnderflow {
        charged: 2,
        request: 5,
    };
    let c = gupio_warning::from(AnyWarning::from(underflow));
    assert_eq!(
        (c.kind, c.pfn, c.a, c.b),
        (gupio_warning_kind::GUPIO_WARN_ACCOUNT_UNDERFLOW, 0, 2, 5)
    );
}

/// A raw pointer handed to another test thread.
struct Shared<T>(*mut T);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Shared<T> {}

// SAFETY: the test threads use the pointees only through the C ABI, whose
// contract (one completer, drainers through the list) they keep.
unsafe impl<T> Send for Shared<T> {}

impl<T> Shared<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// The ordering `gupio_bio_complete_dio_read` documents: the bio's state
/// becomes "deferred" before the bio is pushed, since a drainer on another
/// CPU may take it the moment the push is visible. A drainer thread spins
/// on the list while the completer defers the bio. If the state were
/// written after the push, the drainer would find the bio not deferred
/// (and report it failed, its pins lost), and under miri the state write
/// races with the drainer's read.
#[test]
fn a_deferred_read_is_deferred_before_a_drainer_can_take_it() {
    let m = Machine::new();
    let t = tracker(&m);
    let t = Shared(t.as_ptr().cast_mut());
    let mut table = [gupio_bvec {
        word: 0,
        len: 0,
        offset: 0,
    }; 1];
    let mut bio = Box::new(MaybeUninit::<gupio_bio>::uninit());
    let bio = Shared(bio.as_mut_ptr());
    let mut list = Box::new(MaybeUninit::<gupio_deferred_list>::uninit());
    let list = Shared(list.as_mut_ptr());
    // SAFETY: every pointer is to live storage of its type, alive for the
    // whole test; the bvec table outlives the bio's use.
    unsafe {
        let read = gupio_op::GUPIO_OP_READ as u32;
        let pinned = gupio_origin::GUPIO_ORIGIN_PINNED as u32;
        assert_eq!(gupio_pin_range(t.get(), BASE, 1, null_mut()), 0);
        assert_eq!(
            gupio_bio_init(
                bio.get(),
                table.as_mut_ptr(),
                1,
                read,
                0,
                null(),
                null_mut()
            ),
            0
        );
        assert_eq!(
            gupio_bio_add_page(bio.get(), t.get(), BASE, 4096, 0, pinned, null_mut()),
            0
        );
        assert_eq!(gupio_bio_set_pages_dirty(bio.get(), t.get(), null_mut()), 0);
        assert_eq!(gupio_bio_submit(bio.get(), null_mut()), 0);
        assert_eq!(gupio_bio_complete(bio.get(), 0, null_mut()), 0);
        assert_eq!(gupio_deferred_init(list.get(), null_mut()), 0);
    }
    // Writeback cleaned the page while the device wrote into it: the
    // completion must defer the release.
    m.page(BASE).clear_flags(gupio::pin::PageFlags::DIRTY);

    unsafe extern "C" fn record(ctx: *mut c_void, _: *mut gupio_bio, ret: isize, _: gupio_error) {
        // SAFETY: the drainer passes a pointer to its own result slot.
        unsafe { *ctx.cast::<isize>() = ret };
    }
    std::thread::scope(|scope| {
        let drainer = scope.spawn(move || {
            let mut ret = isize::MIN;
            let ctx = (&mut ret as *mut isize).cast();
            // SAFETY: as above; the list and tracker outlive the scope.
            while unsafe {
                gupio_deferred_drain(list.get(), t.get(), Some(record), ctx, null_mut())
            } == 0
            {
                std::thread::yield_now();
            }
            ret
        });
        // SAFETY: as above; this thread is the bio's one completer.
        let deferred =
            unsafe { gupio_bio_complete_dio_read(bio.get(), t.get(), list.get(), null_mut()) };
        assert_eq!(deferred, 1, "a cleaned page defers the release");
        assert_eq!(drainer.join().unwrap(), 0, "the drainer released the bio");
    });
    // SAFETY: the drain reported the bio: it is this thread's again.
    let state = unsafe { gupio_bio_get_state(bio.get(), null_mut()) };
    assert_eq!(state, gupio_bio_state::GUPIO_BIO_RELEASED as isize);
    assert_eq!(m.page(BASE).pincount(), 0);
    assert_eq!(m.page(BASE).refcount(), 1);
    assert!(m.page(BASE).flags().contains(gupio::pin::PageFlags::DIRTY));
    assert_eq!(m.warnings.load(Ordering::Relaxed), 0);
}
