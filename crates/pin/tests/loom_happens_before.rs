//! Loom models of the happens-before gupio's counters promise, with the
//! page's data in loom-tracked memory (`TestMachine::write_data`: atomics
//! used as plain data, every access `Relaxed`), so a write is visible only
//! through the ordering of the counters themselves:
//!
//! - "not pinned" means the device is done: a device writes the page, then
//!   unpins; writeback, once `maybe_dma_pinned` says false, reads every
//!   word the device wrote (the Release of the unpin's decrement pairs with
//!   the Acquire load of `maybe_dma_pinned`).
//! - the free comes after every user: the owner and a device each write
//!   the folio, then put or unpin; whichever drops the last reference frees
//!   it, and `free_folio` reads every word (the Release decrements pair
//!   with the Acquire fence on the last reference).
//!
//! Small pages (pins counted in the reference count) and large folios
//! (an exact pin count) take different words, so each model runs on both.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_happens_before` (and a separate target dir).
//!
//! # The models fail when the ordering goes
//!
//! `cargo xtask mutants` applies each of these to a scratch copy of the
//! repository and checks that the model named fails (the failing assertion
//! is "not pinned, yet the device's write is not visible" or "the free
//! missed a user's write"); every other model passes:
//!
//! | mutation (`cargo xtask mutants NAME`) | model that fails |
//! |---|---|
//! | `small-query-relaxed`: the Acquire load behind small-page `maybe_dma_pinned` -> Relaxed | `unpinned_small_page_shows_the_device_writes` |
//! | `release-relaxed`: the Release of the unpin's and put's decrement (`try_sub`) -> Relaxed | `last_put_or_unpin_of_a_*_sees_every_write` (and the small-page visibility model) |
//! | `large-query-relaxed`: the Acquire load of the pin count behind large-folio `maybe_dma_pinned` -> Relaxed | `unpinned_large_folio_shows_the_device_writes` |
//! | `free-fence`: the Acquire fence on the last reference, dropped | `last_put_or_unpin_of_a_*_sees_every_write` |
//! | `split-unpin-relaxed`: two-word layout (`--cfg gupio_split_counts`), the Release of the pin count's decrement -> Relaxed | `unpinned_large_folio_shows_the_device_writes` |
#![cfg(loom)]

use gupio_pfn::Pfn;
use gupio_pin::testing::TestMachine;
use gupio_pin::{PageRange, Tracker};
use loom::sync::Arc;
use loom::thread;

/// Where the writeback thread reads the page's data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    /// After `maybe_dma_pinned` said false, as writeback must.
    AfterTheCheck,
    /// Before the check: the broken writeback.
    BeforeTheCheck,
}

/// What the device writes to word 0 of page `pfn`.
fn device_value(pfn: usize) -> u32 {
    u32::try_from(pfn + 1).expect("a small test machine")
}

/// A folio of order `order` at pfn 0 (one data word per page,
/// [`device_value`]), pinned at its last page before the threads start. The
/// device writes every page, then unpins; writeback waits until
/// `maybe_dma_pinned` says false (the wait policy), then checks it sees
/// every write.
///
/// Writeback waits rather than asking once: loom's DPOR remembers only
/// the last access to an atomic, so a lone load racing another thread's
/// load-then-CAS is explored in one order only, and the "not pinned"
/// answer would never be reached. A wait reaches it in every execution.
/// Writeback is a thread of its own, not the model's main thread: after a
/// `yield_now` loom lets a thread load only the newest value of a store it
/// had seen before yielding, and the main thread saw the data words' first
/// values when it built the machine; a fresh thread has seen nothing.
fn device_writes_then_unpins(order: u32, read: Read) {
    loom::model(move || {
        let pages = 1usize << order;
        let m = Arc::new(TestMachine::<2>::new(0));
        let head = m.prepare(0, order);
        let last = Pfn::new(pages - 1);
        Tracker::new(&*m).pin_page(last).unwrap();

        let device = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for pfn in 0..pages {
                    m.write_data(pfn, 0, device_value(pfn));
                }
                Tracker::new(&*m).unpin_page(last).unwrap();
            })
        };
        let writeback = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let snapshot = || {
                    (0..pages)
                        .map(|pfn| m.read_data(pfn, 0))
                        .collect::<Vec<_>>()
                };
                let early = (read == Read::BeforeTheCheck).then(snapshot);
                while Tracker::new(&*m).maybe_dma_pinned(head).unwrap() {
                    thread::yield_now();
                }
                let seen = early.unwrap_or_else(snapshot);
                let written: Vec<u32> = (0..pages).map(device_value).collect();
                assert_eq!(
                    seen, written,
                    "not pinned, yet the device's write is not visible"
                );
            })
        };
        device.join().unwrap();
        writeback.join().unwrap();
        assert_eq!(m.warnings(), 0);
    });
}

#[test]
fn unpinned_small_page_shows_the_device_writes() {
    device_writes_then_unpins(0, Read::AfterTheCheck);
}

#[test]
fn unpinned_large_folio_shows_the_device_writes() {
    device_writes_then_unpins(1, Read::AfterTheCheck);
}

/// The model has teeth: data read before `maybe_dma_pinned` said false can
/// be older than the device's writes.
#[test]
#[should_panic(expected = "not pinned, yet the device's write is not visible")]
fn reading_before_the_pin_check_can_miss_the_device_writes() {
    device_writes_then_unpins(0, Read::BeforeTheCheck);
}

/// When the device writes its word relative to its unpin.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceWrite {
    /// Before the unpin, as a device must.
    BeforeUnpin,
    /// After the unpin: a use after release.
    AfterUnpin,
}

/// A folio of order `order` at pfn 0, with a pin on its last page taken
/// before the threads start. Thread `owner` holds the allocation
/// reference: it writes word 0 of the head page (value 1), then puts.
/// Thread `device` holds the pin: it writes word 1 of the last page (value
/// 2) and unpins. Whoever drops last frees the folio, and the free must
/// read both words.
fn last_drop_frees_after_every_write(order: u32, device_write: DeviceWrite) {
    loom::model(move || {
        let m = Arc::new(TestMachine::<2>::new(0));
        let head = m.prepare(0, order);
        let last = (1usize << order) - 1;
        let pin = PageRange::single(Pfn::new(last));
        Tracker::new(&*m).pin_range(pin).unwrap();

        let owner = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                m.write_data(0, 0, 1);
                Tracker::new(&*m).put_page(head).unwrap();
            })
        };
        let device = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                if device_write == DeviceWrite::BeforeUnpin {
                    m.write_data(last, 1, 2);
                }
                Tracker::new(&*m).unpin_range(pin).unwrap();
                if device_write == DeviceWrite::AfterUnpin {
                    m.write_data(last, 1, 2);
                }
            })
        };
        owner.join().unwrap();
        device.join().unwrap();

        assert_eq!(m.frees(0), 1, "freed exactly once");
        assert_eq!(
            [m.data_seen_at_free(0, 0), m.data_seen_at_free(last, 1)],
            [1, 2],
            "the free missed a user's write"
        );
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), m.stats.released());
    });
}

#[test]
fn last_put_or_unpin_of_a_small_page_sees_every_write() {
    last_drop_frees_after_every_write(0, DeviceWrite::BeforeUnpin);
}

#[test]
fn last_put_or_unpin_of_a_large_folio_sees_every_write() {
    last_drop_frees_after_every_write(1, DeviceWrite::BeforeUnpin);
}

/// The model has teeth: a write after the writer dropped its pin is not
/// ordered before the free.
#[test]
#[should_panic(expected = "the free missed a user's write")]
fn a_write_after_the_unpin_can_be_missed_by_the_free() {
    last_drop_frees_after_every_write(0, DeviceWrite::AfterUnpin);
}
