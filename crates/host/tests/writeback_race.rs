//! Writeback of a page while a device DMAs into it, forced deterministically
//! with device gates (no sleeps): the untracked path writes a torn page and
//! cleans it; gupio's policies never write an unstable page and keep it
//! dirty until the final contents can be written.

mod common;

use std::cell::RefCell;
use std::sync::Arc;
use std::thread;

use gupio::pin::{FaultKind, Mapping, UserAddr};
use gupio::prelude::*;
use gupio::writeback::PinnedAction;
use gupio_host::data::WORDS_PER_PAGE;
use gupio_host::{File, GupGuard, Machine, OwnedBvecs, Process, WritebackMode};

/// A file of two small pages mapped shared, and a raw source region.
struct Setup {
    machine: Machine,
    file: Arc<File>,
    process: Process,
    map: UserAddr,
    source: u64,
}

fn setup() -> Setup {
    // Two device threads: one holds the read at its gate, the other writes.
    let machine = common::threaded(64, 2, false);
    let file = machine.cache().create_file(2, &[]).unwrap();
    machine.cache().populate(&file).unwrap();
    let process = machine.spawn_process();
    let map = process.mmap_file(&file, 0, 2, true).unwrap();
    let source = machine.cache().reserve_sectors(16).unwrap();
    Setup {
        machine,
        file,
        process,
        map,
        source,
    }
}

impl Setup {
    fn page(&self) -> Vec<u64> {
        let pfn = self.file.cached_page(0).unwrap();
        self.machine.memory().frame(pfn).unwrap().snapshot()
    }

    fn disk(&self) -> Vec<u64> {
        let disk = self.machine.device().disk();
        disk.read_words(self.file.sector(0), WORDS_PER_PAGE)
            .unwrap()
    }

    fn source_words(&self) -> Vec<u64> {
        let disk = self.machine.device().disk();
        disk.read_words(self.source, WORDS_PER_PAGE).unwrap()
    }

    /// A direct-I/O read of one page into the mapping, held by the device
    /// after its first 1 KiB chunk; then writeback in `mode`, whose write
    /// (if any) is held after 3 KiB; then the read finishes, then the
    /// write. Returns the writeback summary.
    fn writeback_during_dma(&self, mode: WritebackMode, writes: bool) -> WritebackSummary {
        let device = self.machine.device();
        let read_gate = device.gate(BioOp::Read, 1);
        let io = self
            .machine
            .submit_dio_read(&self.process, self.map, 4096, Sector(self.source))
            .unwrap();
        read_gate.wait_reached().unwrap();
        let write_gate = writes.then(|| device.gate(BioOp::Write, 3));
        thread::scope(|scope| {
            let writeback = scope.spawn(|| self.machine.cache().writeback(&self.file, mode));
            if let Some(gate) = &write_gate {
                gate.wait_reached().unwrap();
            } else {
                // Nothing to hold: writeback returns without writing.
                while !writeback.is_finished() {
                    thread::yield_now();
                }
            }
            read_gate.release();
            io.wait(&self.machine).unwrap();
            if let Some(gate) = write_gate {
                gate.release();
            }
            writeback.join().unwrap()
        })
    }

    /// Waits for all I/O and releases, writes the file back with no pin
    /// left, and checks every page against the disk and the audit.
    fn finish(&self, mode: WritebackMode) {
        self.machine.quiesce();
        let summary = self.machine.cache().writeback(&self.file, mode);
        assert!(summary.is_ok(), "{:?}", summary.first_error);
        let check = self.machine.cache().verify(&self.file);
        assert!(check.is_ok(), "{check:?}");
        common::assert_baseline(&self.machine);
    }
}

type WritebackSummary = gupio::writeback::WritebackSummary<gupio_host::IoError>;

#[test]
fn untracked_writeback_during_dma_writes_an_unstable_page_and_cleans_it() {
    let s = setup();
    let old = s.page();
    let new = s.source_words();
    let summary = s.writeback_during_dma(WritebackMode::Untracked, true);
    assert_eq!(summary.counts.written_in_place, 1);

    // The device saw the page change under the write.
    let device = s.machine.device().stats();
    assert_eq!(device.unstable_pages, 1);
    let unstable = s.machine.device().unstable_writes();
    assert_eq!(unstable[0].sector, s.file.sector(0));
    // The disk holds a torn page: the DMA's first chunk, the old middle
    // (copied while the DMA was held), the DMA's last chunk. Neither state.
    let disk = s.disk();
    assert_eq!(disk[..128], new[..128]);
    assert_eq!(disk[128..384], old[128..384]);
    assert_eq!(disk[384..], new[384..]);
    // Memory has the whole DMA, yet the page is clean: as far as the page
    // cache knows, the torn copy on disk is current.
    assert_eq!(s.page(), new);
    assert!(!s.machine.cache().is_dirty(&s.file, 0).unwrap());

    // The completion found the page cleaned under the DMA and deferred the
    // release (Linux's bio_check_pages_dirty); releasing it re-dirties the
    // page, so the final contents do reach the disk eventually.
    assert_eq!(s.machine.stats().deferred_releases, 1);
    assert_eq!(s.machine.run_deferred(), 1);
    assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
    // The deferred release found the folio clean under its lock: the
    // demo's measure of a page writeback cleaned under the DMA.
    assert_eq!(s.machine.stats().folios_cleaned_under_dma, 1);
    s.finish(WritebackMode::Untracked);
    assert_eq!(s.disk(), new);
    assert_eq!(
        s.machine.device().stats().unstable_pages,
        1,
        "only that one"
    );
}

#[test]
fn bounce_writes_a_stable_snapshot_and_keeps_the_page_dirty_until_after_the_unpin() {
    let s = setup();
    let old = s.page();
    let new = s.source_words();
    let mode = WritebackMode::Tracked(PinnedAction::Bounce);
    let summary = s.writeback_during_dma(mode, true);
    assert_eq!(
        (summary.counts.bounced, summary.counts.written_in_place),
        (1, 0)
    );

    // The copy was taken with one chunk of the DMA in: that snapshot, and
    // nothing else, is on disk, and its checksum matched.
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
    let disk = s.disk();
    assert_eq!(disk[..128], new[..128]);
    assert_eq!(disk[128..], old[128..]);
    // The page stayed dirty: the completion released at once.
    assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
    assert_eq!(s.machine.stats().deferred_releases, 0);
    assert_eq!(s.machine.stats().folios_cleaned_under_dma, 0);
    assert_eq!(s.machine.cache().stats().pages_bounced, 1);

    // After the unpin, the next pass writes the final contents in place.
    s.finish(mode);
    assert_eq!(s.disk(), new);
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
}

#[test]
fn skip_writes_nothing_while_pinned_and_the_final_pass_writes_the_page() {
    let s = setup();
    let mode = WritebackMode::Tracked(PinnedAction::Skip);
    let summary = s.writeback_during_dma(mode, false);
    assert_eq!(summary.counts.skipped, 1);
    assert_eq!(s.machine.device().stats().writes, 0);
    assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
    s.finish(mode);
    assert_eq!(s.disk(), s.source_words());
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
}

#[test]
fn wait_gives_up_while_the_dma_is_held_and_leaves_the_page_dirty() {
    let s = setup();
    let mode = WritebackMode::Tracked(PinnedAction::Wait);
    // The read is held until writeback returns, so the bounded wait can
    // only give up, however long it polls.
    let summary = s.writeback_during_dma(mode, false);
    assert_eq!(summary.counts.wait_gave_up, 1);
    assert_eq!(s.machine.device().stats().writes, 0);
    assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
    s.finish(mode);
    assert_eq!(s.disk(), s.source_words());
}

/// An address space that runs `hook` the first time the page at `on` is
/// faulted in, then faults it in: a window in the middle of
/// `pin_user_pages`, between translating the pages before `on` and
/// pinning them.
struct FaultHook<'a, F: FnOnce()> {
    guard: GupGuard<'a>,
    on: UserAddr,
    hook: RefCell<Option<F>>,
}

impl<F: FnOnce()> AddressSpace for FaultHook<'_, F> {
    fn page_geometry(&self) -> PageGeometry {
        self.guard.page_geometry()
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        self.guard.translate(addr)
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        if addr == self.on {
            if let Some(hook) = self.hook.borrow_mut().take() {
                hook();
            }
        }
        self.guard.fault_in(addr, write)
    }
}

/// gupio's `pin_user_pages` pins each run as soon as it is translated,
/// before it faults in the next page: a fault handler may not hold the
/// page-table lock while it waits for a folio lock, so writeback can run
/// inside that fault. It must then see the earlier page's pin and leave the
/// page dirty (bounce), never write it in place as unpinned. (Before runs,
/// the pin of page 0 came only after page 1's fault, and writeback wrote
/// page 0 in place; the direct-I/O path's dirtying under the folio lock
/// was what kept that safe.)
#[test]
fn writeback_inside_a_later_pages_fault_sees_the_earlier_run_pinned() {
    let s = setup();
    let tracker = s.machine.tracker();
    // Page 0 is mapped writable and dirty; page 1 is not mapped yet.
    s.process.store(s.map, &[1]).unwrap();
    assert!(s.process.pte(UserAddr::new(s.map.get() + 4096)).is_none());
    let write_gate = s.machine.device().gate(BioOp::Write, 1);
    let mode = WritebackMode::Tracked(PinnedAction::Bounce);
    let page0 = s.file.cached_page(0).unwrap();
    thread::scope(|scope| {
        let mut writeback = None;
        let space = FaultHook {
            guard: s.process.gup(),
            on: UserAddr::new(s.map.get() + 4096),
            hook: RefCell::new(Some(|| {
                // While page 1 faults: writeback of the file starts and is
                // in the middle of writing page 0 in place.
                writeback = Some(scope.spawn(|| s.machine.cache().writeback(&s.file, mode)));
                write_gate.wait_reached().unwrap();
            })),
        };
        let mut bio = Bio::new(
            OwnedBvecs::with_capacity(4),
            BioOp::Read,
            Sector(s.source),
            BioLimits::default(),
        );
        let added = add_user_range(&tracker, &space, &mut bio, s.map, 8192, GupFlags::WRITE);
        assert_eq!(added, Ok(8192));
        drop(space);
        // Writeback, started inside page 1's fault, found page 0 pinned:
        // it is writing a bounce copy and has left the page dirty.
        assert!(maybe_dma_pinned(&**s.machine.memory(), page0).unwrap());
        assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
        set_pages_dirty(&tracker, &bio).unwrap();
        write_gate.release();
        let summary = writeback.take().unwrap().join().unwrap();
        assert_eq!(summary.counts.written_in_place, 0);
        assert!(summary.counts.bounced >= 1);
        // Now the DMA: page 0 is dirty again; nothing tears.
        let (done, finished) = std::sync::mpsc::channel();
        let memory = s.machine.memory().clone();
        s.machine.device().submit(
            SubmittedBio::submit(bio).unwrap(),
            None,
            Box::new(move |completed| {
                let released = completed.release(&Tracker::new(&*memory), true);
                done.send(released.result.is_ok()).unwrap();
            }),
        );
        assert!(finished.recv().unwrap());
    });
    s.finish(mode);
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
    assert_eq!(s.page(), s.source_words());
}

/// Writeback by reason, default policy: background writeback skips the
/// pinned page (no I/O, still dirty), integrity writeback bounces a stable
/// copy (still dirty); the pass after the unpin writes the final contents.
#[test]
fn by_reason_skips_in_the_background_and_bounces_for_integrity() {
    use gupio::writeback::WritebackReason;
    let s = setup();
    let new = s.source_words();
    let background = WritebackMode::ByReason(WritebackReason::Background);
    let summary = s.writeback_during_dma(background, false);
    assert_eq!(
        (summary.counts.skipped, summary.counts.bounced),
        (1, 0),
        "{summary:?}"
    );
    assert_eq!(
        s.machine.device().stats().writes,
        0,
        "no I/O in the background"
    );
    assert!(s.machine.cache().is_dirty(&s.file, 0).unwrap());
    s.finish(background);
    assert_eq!(s.disk(), new, "the pass after the unpin writes it in place");

    let s = setup();
    let old = s.page();
    let integrity = WritebackMode::ByReason(WritebackReason::Integrity);
    let summary = s.writeback_during_dma(integrity, true);
    assert_eq!(
        (summary.counts.skipped, summary.counts.bounced),
        (0, 1),
        "{summary:?}"
    );
    // The copy was taken while the DMA was held after its first chunk: a
    // stable mix, written whole, checksum intact.
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
    let disk = s.disk();
    assert_eq!(disk[..128], new[..128]);
    assert_eq!(disk[128..], old[128..]);
    assert!(
        s.machine.cache().is_dirty(&s.file, 0).unwrap(),
        "the device may still change it: dirty"
    );
    s.finish(integrity);
    assert_eq!(s.disk(), new, "the final contents after the unpin");
    assert_eq!(s.machine.device().stats().unstable_pages, 0);
}
