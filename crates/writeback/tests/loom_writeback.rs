//! Loom models: a pinner that pins a page and then dirties it, racing
//! writeback with the bounce policy. Writeback must either see the pin
//! (bounce) or leave the page dirty; never "written in place, clean, and
//! pinned". One model per way of dirtying (the crate docs' "Why a pin is
//! never missed"), including gupio-release's `set_pages_dirty`
//! (`Tracker::dirty_range_lock`), and two that show the `SeqCst` fence after
//! pinning is needed when the pinner checks `DIRTY` with a plain load. The
//! pinner of `GupThenCheck` and `ReleasePath` pins through the real
//! `Tracker::pin_user_pages` (over `Identity`, a one-line address space) and
//! relies on the fence it documents, so removing that fence (the `SeqCst`
//! fence `pin_user_pages` issues after taking each run's pins:
//! `cargo xtask mutants gup-fence`) fails both
//! `pin_user_pages_then_checked_dirty_*` models with "written in place,
//! clean, and pinned"; every other model passes (`dirty_range_lock` fences
//! for itself).
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-writeback
//! --release --test loom_writeback` (and a separate target dir).
#![cfg(loom)]

use std::cell::Cell;
use std::sync::atomic::AtomicBool;

use gupio_pfn::{PageGeometry, Pfn};
use gupio_pin::testing::TestMachine;
use gupio_pin::{
    AddressSpace, FaultKind, FolioRef, GupFlags, Mapping, MappingFlags, MemoryMap, PageFlags,
    PageOps, PageRange, Tracker, UserAddr,
};
use gupio_sync::atomic::{fence, Ordering};
use gupio_writeback::{Outcome, PinnedAction, Writeback, WritebackIo, WritebackStats};
use loom::sync::Arc;
use loom::thread;

/// A block device that counts what it writes (local to the writeback thread).
#[derive(Default)]
struct Disk {
    in_place: Cell<u32>,
    bounced: Cell<u32>,
}

impl WritebackIo for Disk {
    type Error = i32;

    fn write_protect(&self, _folio: FolioRef<'_>) {}

    fn write_in_place(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
        self.in_place.set(self.in_place.get() + 1);
        Ok(())
    }

    fn write_bounced(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
        self.bounced.set(self.bounced.get() + 1);
        Ok(())
    }

    fn wait_until_unpinned(&self, _folio: FolioRef<'_>) -> bool {
        false
    }
}

/// A process whose user page N maps frame N, writable and present.
struct Identity;

impl AddressSpace for Identity {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let pfn = Pfn::new(addr.get() / PageGeometry::FOUR_KIB.size());
        Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }
}

/// Pins frame `pin` through `Tracker::pin_user_pages` (for writing, as a
/// direct-I/O read does).
fn pin_user_page<M: PageOps>(m: &M, pin: Pfn) {
    let addr = UserAddr::new(pin.get() * PageGeometry::FOUR_KIB.size());
    let run = Tracker::new(m)
        .pin_user_pages(&Identity, addr, 1, GupFlags::WRITE)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((run.first(), run.pages()), (pin, 1));
    // The pin stays for the rest of the model, as a bio would hold it.
    let _ = run.into_raw();
}

/// How the pinner dirties the folio after pinning it.
#[derive(Clone, Copy)]
enum Dirtying {
    /// One read-modify-write of the flags word (`set_flags`).
    Rmw,
    /// Lock, mark dirty, unlock (Linux's `set_page_dirty_lock`).
    Locked,
    /// A `SeqCst` fence, then set only if a plain load says clean.
    FenceThenCheck,
    /// `pin_user_pages` (whose `SeqCst` fence after pinning pairs with
    /// writeback's), then set only if a plain load says clean.
    GupThenCheck,
    /// gupio-release's `set_pages_dirty` after `pin_user_pages`:
    /// `Tracker::dirty_range_lock` (a plain check, then lock, mark dirty,
    /// unlock).
    ReleasePath,
    /// As `ReleasePath` after a pin without the fence (`Tracker::pin_page`):
    /// safe since `dirty_range_lock` fences itself.
    ReleasePathWithoutFence,
    /// As `FenceThenCheck` without the fence: the broken pinner.
    CheckWithoutFence,
}

/// Two threads: A pins `pin` and dirties its folio as `dirtying` says; B
/// writes back the folio with the bounce policy. `N` pages, the folio at
/// 0 of order `order`, dirty at the start. Checks that the exploration
/// reached both outcomes (B first: written in place; A first: bounced).
fn model<const N: usize>(order: u32, pin: usize, dirtying: Dirtying) {
    // Outside the model (std atomics): which outcomes any execution reached.
    let seen = std::sync::Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let seen_in_model = std::sync::Arc::clone(&seen);
    loom::model(move || {
        let seen = &seen_in_model;
        let m = Arc::new(TestMachine::<N>::new(0));
        let head = m.prepare(0, order);
        m.page(0).set_flags(PageFlags::DIRTY);
        let pin = Pfn::new(pin);

        let pinner = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                match dirtying {
                    Dirtying::GupThenCheck | Dirtying::ReleasePath => pin_user_page(&*m, pin),
                    _ => Tracker::new(&*m).pin_page(pin).unwrap(),
                }
                let folio = m.folio(pin).unwrap();
                let counters = folio.counters();
                match dirtying {
                    Dirtying::Rmw => {
                        counters.set_flags(PageFlags::DIRTY);
                    }
                    Dirtying::Locked => {
                        m.lock_folio(folio);
                        if !counters.flags().contains(PageFlags::DIRTY) {
                            m.mark_folio_dirty(folio);
                        }
                        m.unlock_folio(folio);
                    }
                    Dirtying::ReleasePath | Dirtying::ReleasePathWithoutFence => {
                        Tracker::new(&*m)
                            .dirty_range_lock(PageRange::single(pin))
                            .unwrap();
                    }
                    Dirtying::GupThenCheck => {
                        // No fence here: pin_user_pages issued it.
                        if !counters.flags().contains(PageFlags::DIRTY) {
                            counters.set_flags(PageFlags::DIRTY);
                        }
                    }
                    Dirtying::FenceThenCheck | Dirtying::CheckWithoutFence => {
                        if matches!(dirtying, Dirtying::FenceThenCheck) {
                            // SeqCst: pairs with the fence writeback issues
                            // between clearing DIRTY and the pin check.
                            fence(Ordering::SeqCst);
                        }
                        if !counters.flags().contains(PageFlags::DIRTY) {
                            counters.set_flags(PageFlags::DIRTY);
                        }
                    }
                }
            })
        };
        let writer = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let disk = Disk::default();
                let stats = WritebackStats::new();
                let outcome = Writeback::new(&*m, &disk, &stats)
                    .writeback_folio(head, &PinnedAction::Bounce)
                    .unwrap();
                (outcome, disk.in_place.get(), disk.bounced.get())
            })
        };
        pinner.join().unwrap();
        let (outcome, in_place, bounced) = writer.join().unwrap();

        let flags = m.page(0).flags();
        let dirty = flags.contains(PageFlags::DIRTY);
        assert!(
            dirty || outcome != Outcome::WrittenInPlace,
            "written in place, clean, and pinned"
        );
        assert!(dirty, "a page the pinner dirtied ends dirty");
        assert!(!flags.contains(PageFlags::LOCKED | PageFlags::WRITEBACK));
        let index = match outcome {
            Outcome::Bounced => {
                assert_eq!((in_place, bounced), (0, 1));
                0
            }
            Outcome::WrittenInPlace => {
                assert_eq!((in_place, bounced), (1, 0));
                1
            }
            other => panic!("unexpected outcome {other:?}"),
        };
        seen[index].store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(m.folio(head).unwrap().maybe_dma_pinned());
        assert_eq!(m.warnings(), 0);
    });
    let reached = seen
        .each_ref()
        .map(|s| s.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(reached, [true, true], "[bounced, written in place] reached");
}

#[test]
fn pin_then_rmw_dirty_small_page_is_bounced_or_left_dirty() {
    model::<1>(0, 0, Dirtying::Rmw);
}

#[test]
fn pin_then_rmw_dirty_large_folio_is_bounced_or_left_dirty() {
    model::<2>(1, 1, Dirtying::Rmw);
}

#[test]
fn pin_then_dirty_under_the_folio_lock_is_bounced_or_left_dirty() {
    model::<1>(0, 0, Dirtying::Locked);
}

#[test]
fn pin_fence_then_checked_dirty_is_bounced_or_left_dirty() {
    model::<1>(0, 0, Dirtying::FenceThenCheck);
}

#[test]
fn pin_user_pages_then_checked_dirty_small_page_is_bounced_or_left_dirty() {
    model::<1>(0, 0, Dirtying::GupThenCheck);
}

#[test]
fn pin_user_pages_then_checked_dirty_large_folio_is_bounced_or_left_dirty() {
    model::<2>(1, 1, Dirtying::GupThenCheck);
}

#[test]
fn pin_then_release_path_set_pages_dirty_is_bounced_or_left_dirty() {
    model::<1>(0, 0, Dirtying::ReleasePath);
}

#[test]
fn pin_then_release_path_set_pages_dirty_on_a_large_folio_is_bounced_or_left_dirty() {
    model::<2>(1, 1, Dirtying::ReleasePath);
}

/// The model has teeth: a pinner that checks `DIRTY` with a plain load and
/// no fence can see the old dirty bit while writeback misses its pin.
#[test]
#[should_panic(expected = "written in place, clean, and pinned")]
fn check_without_a_fence_can_lose_the_dirty_bit() {
    model::<1>(0, 0, Dirtying::CheckWithoutFence);
}

/// Regression: `set_pages_dirty` after a pin taken without
/// `pin_user_pages`' fence (`Tracker::pin_range`, say) once lost the dirty
/// bit; `dirty_range_lock` now starts with a SeqCst fence that pairs with
/// writeback's.
#[test]
fn release_path_after_an_unfenced_pin_keeps_the_dirty_bit() {
    model::<1>(0, 0, Dirtying::ReleasePathWithoutFence);
}
