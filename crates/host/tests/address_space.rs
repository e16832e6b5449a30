//! The address spaces gupio's GUP walks: anonymous, zero-page, shared file
//! and read-only file mappings, faults, copy-on-write, write-protection by
//! writeback, and the references mappings and pins hold.

mod common;

use gupio::pin::{PinError, UserAddr, GUP_PIN_COUNTING_BIAS};
use gupio::prelude::*;
use gupio::writeback::PinnedAction;
use gupio_host::{HostError, WritebackMode};

use common::assert_baseline;

fn page(addr: UserAddr, index: usize) -> UserAddr {
    UserAddr::new(addr.get() + index * 4096)
}

#[test]
fn anonymous_faults_allocate_zeroed_pages_that_munmap_frees() {
    let machine = common::synchronous(32);
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(3).unwrap();
    assert!(process.pte(addr).is_none());
    assert_eq!(process.load(page(addr, 1), 4).unwrap(), [0; 4]);
    process.store(page(addr, 2), &[5, 6]).unwrap();
    assert_eq!(machine.memory().allocated_folios().len(), 2);
    let (pfn, writable) = process.pte(page(addr, 2)).unwrap();
    assert!(writable);
    assert_eq!(machine.memory().frame(pfn).unwrap().load(1), 6);
    assert_baseline(&machine);
    process.munmap(addr).unwrap();
    assert!(machine.memory().allocated_folios().is_empty());
    assert_eq!(process.munmap(addr), Err(HostError::NotMapped { addr }));
    assert_baseline(&machine);
}

#[test]
fn the_zero_page_is_mapped_for_reads_never_pinned_and_copied_on_write() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let addr = process.mmap_zero_page(2).unwrap();
    let zero = machine.memory().zero_page();
    // A read pin maps the zero page and does not pin it.
    let mut pages = [Pfn::ZERO; 2];
    let guard = process.gup();
    assert_eq!(
        common::pin_into(&tracker, &guard, addr, GupFlags::empty(), &mut pages),
        Ok(2)
    );
    assert_eq!(pages, [zero, zero]);
    assert!(!maybe_dma_pinned(&**machine.memory(), zero).unwrap());
    tracker.unpin_pages(&pages).unwrap();
    // A write pin breaks copy-on-write: a fresh zeroed page, pinned.
    assert_eq!(
        common::pin_into(&tracker, &guard, addr, GupFlags::WRITE, &mut pages[..1]),
        Ok(1)
    );
    drop(guard);
    assert_ne!(pages[0], zero);
    let counters = machine.memory().frame(pages[0]).unwrap().counters();
    assert_eq!(counters.refcount(), 1 + GUP_PIN_COUNTING_BIAS);
    assert_eq!(process.pte(addr), Some((pages[0], true)));
    assert_eq!(process.pte(page(addr, 1)), Some((zero, false)));
    tracker.unpin_pages(&pages[..1]).unwrap();
    // A CPU store copies the second page too.
    process.store(page(addr, 1), &[1]).unwrap();
    assert_ne!(process.pte(page(addr, 1)).unwrap().0, zero);
    assert!(machine
        .memory()
        .frame(zero)
        .unwrap()
        .snapshot()
        .iter()
        .all(|&w| w == 0));
    assert_eq!(
        machine.memory().pin_stats().acquired(),
        1,
        "the zero page never counted"
    );
    assert_baseline(&machine);
}

#[test]
fn shared_file_write_faults_dirty_and_writeback_write_protects_until_the_next_store() {
    let machine = common::synchronous(64);
    let cache = machine.cache();
    let file = cache.create_file(8, &[2]).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_file(&file, 0, 8, true).unwrap();
    // A read maps the page read-only (write-notify): still clean.
    assert_eq!(process.load(page(addr, 5), 1).unwrap().len(), 1);
    assert_eq!(process.pte(page(addr, 5)).map(|p| p.1), Some(false));
    assert!(!cache.is_dirty(&file, 5).unwrap());
    // A store write-faults: dirty, writable.
    process.store(page(addr, 5), &[42]).unwrap();
    assert!(cache.is_dirty(&file, 5).unwrap());
    assert_eq!(process.pte(page(addr, 5)).map(|p| p.1), Some(true));
    // Writeback write-protects and cleans.
    let summary = cache.writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
    assert_eq!(summary.counts.written_in_place, 1);
    assert_eq!(process.pte(page(addr, 5)).map(|p| p.1), Some(false));
    assert!(!cache.is_dirty(&file, 5).unwrap());
    assert_eq!(
        machine
            .device()
            .disk()
            .read_words(file.sector(5), 1)
            .unwrap(),
        [42]
    );
    // The next store faults again and re-dirties.
    process.store(page(addr, 5), &[43]).unwrap();
    assert!(cache.is_dirty(&file, 5).unwrap());
    // The order-2 folio's pages are one folio: one PTE reference per page.
    process.store(page(addr, 1), &[1]).unwrap();
    process.store(page(addr, 2), &[1]).unwrap();
    let head = file.cached_page(0).unwrap();
    assert_eq!(
        machine.memory().frame(head).unwrap().counters().refcount(),
        3
    );
    assert_baseline(&machine);
    drop(process);
    assert_baseline(&machine);
    let (audit, dirty) = machine.evict_and_audit();
    assert!(audit.is_clean(), "{audit}");
    assert_eq!(dirty, 2, "evicted dirty: the folio and page 5");
    assert!(machine.memory().allocated_folios().is_empty());
}

#[test]
fn read_only_mappings_refuse_write_pins_and_allow_read_pins() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let file = machine.cache().create_file(2, &[]).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_file(&file, 0, 2, false).unwrap();
    let mut pages = [Pfn::ZERO; 2];
    let guard = process.gup();
    assert!(matches!(
        common::pin_into(&tracker, &guard, addr, GupFlags::WRITE, &mut pages),
        Err(PinError::Fault { .. })
    ));
    assert_eq!(
        common::pin_into(&tracker, &guard, addr, GupFlags::empty(), &mut pages),
        Ok(2)
    );
    drop(guard);
    assert_eq!(pages[0], file.cached_page(0).unwrap());
    tracker.unpin_pages(&pages).unwrap();
    assert_baseline(&machine);
}

#[test]
fn long_term_write_pins_are_refused_on_shared_files_and_allowed_on_anonymous_memory() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let file = machine.cache().create_file(1, &[]).unwrap();
    let process = machine.spawn_process();
    let shared = process.mmap_file(&file, 0, 1, true).unwrap();
    let anon = process.mmap_anonymous(1).unwrap();
    let flags = GupFlags::WRITE | GupFlags::LONGTERM;
    let mut pages = [Pfn::ZERO; 1];
    let guard = process.gup();
    assert_eq!(
        common::pin_into(&tracker, &guard, shared, flags, &mut pages),
        Err(PinError::LongtermDirtyTracked { addr: shared })
    );
    assert_eq!(
        common::pin_into(&tracker, &guard, anon, flags, &mut pages),
        Ok(1)
    );
    drop(guard);
    tracker.unpin_pages(&pages).unwrap();
    assert_baseline(&machine);
}

#[test]
fn a_page_unmapped_while_pinned_lives_until_the_unpin() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(1).unwrap();
    let mut pages = [Pfn::ZERO; 1];
    let guard = process.gup();
    assert_eq!(
        common::pin_into(&tracker, &guard, addr, GupFlags::WRITE, &mut pages),
        Ok(1)
    );
    drop(guard);
    process.munmap(addr).unwrap();
    // Only the pin holds it now: not freed, still pinned.
    let counters = machine.memory().frame(pages[0]).unwrap().counters();
    assert_eq!(counters.refcount(), GUP_PIN_COUNTING_BIAS);
    assert_eq!(machine.memory().allocated_folios().len(), 1);
    tracker.unpin_pages_dirty_lock(&pages, true).unwrap();
    assert!(
        machine.memory().allocated_folios().is_empty(),
        "freed by the unpin"
    );
    assert_baseline(&machine);
}

#[test]
fn mappings_refuse_zero_pages_and_ranges_past_the_file() {
    let machine = common::synchronous(32);
    let file = machine.cache().create_file(4, &[]).unwrap();
    let process = machine.spawn_process();
    assert_eq!(
        process.mmap_anonymous(0),
        Err(HostError::BadMapping { pages: 0 })
    );
    assert_eq!(
        process.mmap_file(&file, 2, 3, true),
        Err(HostError::PastEndOfFile {
            file: file.id(),
            index: 4
        })
    );
    // Mappings do not touch: a guard page separates them.
    let a = process.mmap_anonymous(1).unwrap();
    let b = process.mmap_anonymous(1).unwrap();
    assert!(b.get() >= a.get() + 2 * 4096);
    assert_eq!(
        process.load(page(a, 1), 1),
        Err(HostError::Fault {
            addr: page(a, 1),
            kind: gupio::pin::FaultKind::Unmapped
        })
    );
    assert_baseline(&machine);
}

/// What a refused GUP call must leave alone in `process`: every PTE of
/// `pages` pages from `addr`, the file's cache and dirty bits, the
/// machine's allocations and counts, the pin accounting.
#[derive(Debug, PartialEq)]
struct Snapshot {
    ptes: Vec<Option<(Pfn, bool)>>,
    cached: Vec<Option<Pfn>>,
    dirty: Vec<bool>,
    refcounts: Vec<u32>,
    allocated: usize,
    pins: (usize, usize),
}

fn snapshot(
    machine: &gupio_host::Machine,
    process: &gupio_host::Process,
    file: &gupio_host::File,
    addr: UserAddr,
    pages: usize,
) -> Snapshot {
    let cached: Vec<_> = (0..pages).map(|i| file.cached_page(i)).collect();
    let refcounts = cached
        .iter()
        .flatten()
        .map(|&pfn| machine.memory().frame(pfn).unwrap().counters().refcount())
        .collect();
    let stats = machine.memory().pin_stats();
    Snapshot {
        ptes: (0..pages).map(|i| process.pte(page(addr, i))).collect(),
        dirty: (0..pages)
            .map(|i| machine.cache().is_dirty(file, i).unwrap())
            .collect(),
        cached,
        refcounts,
        allocated: machine.memory().allocated_folios().len(),
        pins: (stats.acquired(), stats.released()),
    }
}

#[test]
fn a_long_term_write_pin_of_a_shared_file_is_refused_before_any_fault_or_dirtying() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let file = machine.cache().create_file(3, &[]).unwrap();
    let process = machine.spawn_process();
    let shared = process.mmap_file(&file, 0, 3, true).unwrap();
    // Page 0 untouched (not even cached), page 1 mapped clean and
    // read-only by a load, page 2 dirty and writable after a store.
    process.load(page(shared, 1), 1).unwrap();
    process.store(page(shared, 2), &[3]).unwrap();
    let before = snapshot(&machine, &process, &file, shared, 3);
    assert_eq!(before.ptes[0], None);
    assert_eq!(before.cached[0], None);
    assert!(!before.ptes[1].unwrap().1 && before.ptes[2].unwrap().1);
    let flags = GupFlags::WRITE | GupFlags::LONGTERM;
    let guard = process.gup();
    for index in 0..3 {
        let addr = page(shared, index);
        let mut pages = [Pfn::ZERO; 1];
        assert_eq!(
            common::pin_into(&tracker, &guard, addr, flags, &mut pages),
            Err(PinError::LongtermDirtyTracked { addr })
        );
        let runs = tracker
            .pin_user_pages(&guard, addr, 3 - index, flags)
            .unwrap();
        assert_eq!(runs.count(), 1, "the refusal, nothing before it");
    }
    drop(guard);
    assert_eq!(
        snapshot(&machine, &process, &file, shared, 3),
        before,
        "nothing changed"
    );
    assert_eq!(machine.memory().take_warnings(), []);
    assert_baseline(&machine);
}

#[test]
fn a_write_pin_of_a_read_only_file_mapping_is_refused_before_any_fault() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let file = machine.cache().create_file(2, &[]).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_file(&file, 0, 2, false).unwrap();
    process.load(page(addr, 1), 1).unwrap();
    let before = snapshot(&machine, &process, &file, addr, 2);
    let guard = process.gup();
    for flags in [GupFlags::WRITE, GupFlags::WRITE | GupFlags::LONGTERM] {
        for index in 0..2 {
            let at = page(addr, index);
            let mut pages = [Pfn::ZERO; 1];
            assert_eq!(
                common::pin_into(&tracker, &guard, at, flags, &mut pages),
                Err(PinError::Fault {
                    addr: at,
                    kind: gupio::pin::FaultKind::AccessDenied
                })
            );
        }
    }
    drop(guard);
    assert_eq!(snapshot(&machine, &process, &file, addr, 2), before);
    assert_baseline(&machine);
}

#[test]
fn long_term_pins_are_charged_to_their_owner_and_refused_past_its_limit() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(4).unwrap();
    let account = gupio::pin::PinAccount::new(3);
    let guard = process.gup();
    // Four pages do not fit: refused before any fault or pin.
    assert_eq!(
        tracker
            .pin_user_pages_longterm(&guard, addr, 4, GupFlags::WRITE, &account)
            .err(),
        Some(PinError::PinLimitExceeded {
            limit: 3,
            charged: 0,
            request: 4
        })
    );
    assert!((0..4).all(|i| process.pte(page(addr, i)).is_none()));
    assert!(machine.memory().allocated_folios().is_empty());
    // Three do; each run carries its charge until released.
    let runs: Vec<_> = tracker
        .pin_user_pages_longterm(&guard, addr, 3, GupFlags::WRITE, &account)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(guard);
    assert_eq!(account.charged(), 3);
    assert_eq!(runs.iter().map(|run| run.charged()).sum::<usize>(), 3);
    for run in runs {
        tracker.release_held(run, true).unwrap();
    }
    assert_eq!(
        (account.charged(), account.peak(), account.refusals()),
        (0, 3, 1)
    );
    assert_baseline(&machine);
}
