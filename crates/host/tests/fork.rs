//! Fork with pinned pages: a page that may be pinned stays the parent's and
//! the child gets a copy; everything else is shared copy-on-write (Linux's
//! selftest `cow.c`, for small pages and large folios).

mod common;

use gupio::pin::{HeldRun, PinError, UserAddr};
use gupio::prelude::*;
use gupio_host::{Machine, Memory, Process};

use common::assert_baseline;

fn page(addr: UserAddr, index: usize) -> UserAddr {
    UserAddr::new(addr.get() + index * 4096)
}

/// Pins `pages` pages from `addr` with `flags`, as runs.
fn pin<'m>(
    machine: &'m Machine,
    process: &Process,
    addr: UserAddr,
    pages: usize,
    flags: GupFlags,
) -> Vec<HeldRun<'m, Memory>> {
    let guard = process.gup();
    machine
        .tracker()
        .pin_user_pages(&guard, addr, pages, flags)
        .unwrap()
        .collect::<Result<_, PinError>>()
        .unwrap()
}

fn release(machine: &Machine, runs: Vec<HeldRun<'_, Memory>>) {
    for run in runs {
        machine.tracker().release_held(run, false).unwrap();
    }
}

/// A device (or anything holding the pin) writes `value` into word 0 of
/// the pinned page.
fn device_store(machine: &Machine, pfn: Pfn, value: u64) {
    machine.memory().frame(pfn).unwrap().store(0, value);
}

#[test]
fn unpinned_anonymous_pages_are_shared_copy_on_write() {
    let machine = common::synchronous(32);
    let parent = machine.spawn_process();
    let addr = parent.mmap_anonymous(2).unwrap();
    parent.store(addr, &[1]).unwrap();
    parent.store(page(addr, 1), &[5]).unwrap();
    let (shared, _) = parent.pte(addr).unwrap();
    let child = parent.fork().unwrap();
    assert_eq!(parent.pte(addr), Some((shared, false)), "write-protected");
    assert_eq!(child.pte(addr), Some((shared, false)), "the same page");
    assert_baseline(&machine);
    // The parent writes first: it gets a copy, the child keeps the page.
    parent.store(addr, &[2]).unwrap();
    let (copy, writable) = parent.pte(addr).unwrap();
    assert!(writable && copy != shared);
    assert_eq!(child.load(addr, 1).unwrap(), [1]);
    // The child is now the page's only user: its write reuses it.
    child.store(addr, &[3]).unwrap();
    assert_eq!(child.pte(addr), Some((shared, true)));
    assert_eq!(parent.load(addr, 1).unwrap(), [2]);
    // A write pin in the parent after fork breaks copy-on-write first, so
    // the child never sees what the device writes.
    let runs = pin(&machine, &parent, page(addr, 1), 1, GupFlags::WRITE);
    let pinned = runs[0].first();
    assert_ne!(Some(pinned), child.pte(page(addr, 1)).map(|(pfn, _)| pfn));
    device_store(&machine, pinned, 9);
    assert_eq!(parent.load(page(addr, 1), 1).unwrap(), [9]);
    assert_eq!(child.load(page(addr, 1), 1).unwrap(), [5]);
    release(&machine, runs);
    drop(child);
    assert_baseline(&machine);
}

/// Forks a process holding a pin with `flags` on a small anonymous page and
/// checks that the parent keeps the pinned page, writable, and the child
/// gets a copy that neither the device nor the parent can reach.
fn pinned_small_page_is_copied_for_the_child(flags: GupFlags) {
    let machine = common::synchronous(32);
    let parent = machine.spawn_process();
    let addr = parent.mmap_anonymous(1).unwrap();
    parent.store(addr, &[1]).unwrap();
    let runs = pin(&machine, &parent, addr, 1, flags);
    let pinned = runs[0].first();
    let child = parent.fork().unwrap();
    assert_eq!(parent.pte(addr), Some((pinned, true)), "untouched");
    let (copy, writable) = child.pte(addr).unwrap();
    assert!(writable && copy != pinned, "the child's own copy");
    assert_eq!(child.load(addr, 1).unwrap(), [1]);
    // The device and the parent share the pinned page, both ways.
    device_store(&machine, pinned, 7);
    assert_eq!(parent.load(addr, 1).unwrap(), [7]);
    parent.store(addr, &[8]).unwrap();
    assert_eq!(parent.pte(addr), Some((pinned, true)), "no copy-on-write");
    assert_eq!(machine.memory().frame(pinned).unwrap().load(0), 8);
    // The child sees none of it, and its writes do not reach the pin.
    assert_eq!(child.load(addr, 1).unwrap(), [1]);
    child.store(addr, &[2]).unwrap();
    assert_eq!(machine.memory().frame(pinned).unwrap().load(0), 8);
    release(&machine, runs);
    drop(child);
    assert_baseline(&machine);
}

#[test]
fn a_write_pinned_small_page_stays_with_the_parent_and_the_child_gets_a_copy() {
    pinned_small_page_is_copied_for_the_child(GupFlags::WRITE);
}

#[test]
fn a_read_pinned_small_page_stays_with_the_parent_and_the_child_gets_a_copy() {
    pinned_small_page_is_copied_for_the_child(GupFlags::empty());
}

#[test]
fn a_long_term_pinned_small_page_stays_with_the_parent_and_the_child_gets_a_copy() {
    pinned_small_page_is_copied_for_the_child(GupFlags::LONGTERM | GupFlags::WRITE);
}

#[test]
fn an_unpinned_large_folio_is_shared_and_copied_page_by_page_on_write() {
    let machine = common::synchronous(32);
    let parent = machine.spawn_process();
    let addr = parent.mmap_anonymous_folio(2).unwrap();
    parent.store(page(addr, 3), &[4]).unwrap();
    let (head, _) = parent.pte(addr).unwrap();
    let child = parent.fork().unwrap();
    for index in 0..4 {
        let expected = Some((Pfn::new(head.get() + index), false));
        assert_eq!(parent.pte(page(addr, index)), expected);
        assert_eq!(child.pte(page(addr, index)), expected);
    }
    let counters = machine.memory().frame(head).unwrap().counters();
    assert_eq!(counters.refcount(), 8, "one reference per entry");
    assert_baseline(&machine);
    // A write copies only the page written, into a small page.
    child.store(page(addr, 3), &[5]).unwrap();
    let (copy, writable) = child.pte(page(addr, 3)).unwrap();
    assert!(writable && copy.get() != head.get() + 3);
    assert_eq!(parent.load(page(addr, 3), 1).unwrap(), [4]);
    assert_eq!(counters.refcount(), 7);
    drop(child);
    assert_baseline(&machine);
    parent.munmap(addr).unwrap();
    assert!(machine.memory().allocated_folios().is_empty());
}

/// A pin with `flags` on one page of a large folio: the whole folio may be
/// pinned (its pin count is exact), so every page of it is copied for the
/// child and the parent's entries are left as they were.
fn pinned_large_folio_is_copied_for_the_child(flags: GupFlags) {
    let machine = common::synchronous(32);
    let parent = machine.spawn_process();
    let addr = parent.mmap_anonymous_folio(2).unwrap();
    let (head, _) = parent.pte(addr).unwrap();
    for index in 0..4 {
        parent
            .store(page(addr, index), &[10 + index as u64])
            .unwrap();
    }
    let runs = pin(&machine, &parent, page(addr, 1), 1, flags);
    assert_eq!(runs[0].first(), Pfn::new(head.get() + 1));
    let child = parent.fork().unwrap();
    for index in 0..4 {
        let frame = Pfn::new(head.get() + index);
        assert_eq!(parent.pte(page(addr, index)), Some((frame, true)));
        let (copy, writable) = child.pte(page(addr, index)).unwrap();
        assert!(writable && copy != frame);
        assert_eq!(
            child.load(page(addr, index), 1).unwrap(),
            [10 + index as u64]
        );
    }
    // The device's writes reach the parent only.
    device_store(&machine, runs[0].first(), 99);
    assert_eq!(parent.load(page(addr, 1), 1).unwrap(), [99]);
    assert_eq!(child.load(page(addr, 1), 1).unwrap(), [11]);
    parent.store(page(addr, 1), &[100]).unwrap();
    assert_eq!(
        machine.memory().frame(runs[0].first()).unwrap().load(0),
        100
    );
    release(&machine, runs);
    drop(child);
    assert_baseline(&machine);
}

#[test]
fn a_write_pinned_large_folio_stays_with_the_parent_and_the_child_gets_copies() {
    pinned_large_folio_is_copied_for_the_child(GupFlags::WRITE);
}

#[test]
fn a_read_pinned_large_folio_stays_with_the_parent_and_the_child_gets_copies() {
    pinned_large_folio_is_copied_for_the_child(GupFlags::empty());
}

#[test]
fn fork_keeps_zero_page_and_file_mappings_and_the_child_faults_files_afresh() {
    let machine = common::synchronous(32);
    let file = machine.cache().create_file(1, &[]).unwrap();
    let parent = machine.spawn_process();
    let zero = parent.mmap_zero_page(1).unwrap();
    let shared = parent.mmap_file(&file, 0, 1, true).unwrap();
    parent.load(zero, 1).unwrap();
    parent.store(shared, &[6]).unwrap();
    let child = parent.fork().unwrap();
    assert_eq!(child.pte(zero), parent.pte(zero));
    assert_eq!(child.pte(shared), None, "faulted in afresh");
    assert_eq!(child.load(shared, 1).unwrap(), [6], "the same file page");
    child.store(shared, &[7]).unwrap();
    assert_eq!(parent.load(shared, 1).unwrap(), [7]);
    drop(child);
    drop(parent);
    let (audit, _) = machine.evict_and_audit();
    assert!(audit.is_clean(), "{audit}");
}

/// The documented difference from Linux: a read pin taken after fork of a
/// page still shared with the child pins the shared page (gupio has no
/// anonymous-exclusive bit to unshare it), so the parent's next write moves
/// the parent away from the pinned page. A write pin breaks copy-on-write
/// first and stays coherent.
#[test]
fn a_read_pin_after_fork_pins_the_shared_page_and_a_write_pin_does_not() {
    let machine = common::synchronous(32);
    let parent = machine.spawn_process();
    let addr = parent.mmap_anonymous(2).unwrap();
    parent.store(addr, &[1]).unwrap();
    parent.store(page(addr, 1), &[1]).unwrap();
    let child = parent.fork().unwrap();
    let (shared, _) = child.pte(addr).unwrap();
    let read = pin(&machine, &parent, addr, 1, GupFlags::empty());
    assert_eq!(read[0].first(), shared, "the page the child maps too");
    parent.store(addr, &[2]).unwrap();
    assert_ne!(
        parent.pte(addr).unwrap().0,
        shared,
        "copied away from the pin"
    );
    assert_eq!(machine.memory().frame(shared).unwrap().load(0), 1);
    let write = pin(&machine, &parent, page(addr, 1), 1, GupFlags::WRITE);
    assert_eq!(parent.pte(page(addr, 1)), Some((write[0].first(), true)));
    assert_ne!(
        Some(write[0].first()),
        child.pte(page(addr, 1)).map(|(pfn, _)| pfn)
    );
    release(&machine, read);
    release(&machine, write);
    drop(child);
    assert_baseline(&machine);
}
