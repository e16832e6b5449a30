//! Device errors and memory exhaustion: every failed I/O still releases
//! its pages exactly once, and writeback keeps a folio it failed to write
//! dirty.

mod common;

use gupio::pin::UserAddr;
use gupio::prelude::*;
use gupio::writeback::{PinnedAction, WritebackError};
use gupio_host::{Fault, HostError, IoError, WritebackMode};

use common::assert_baseline;

#[test]
fn a_failed_direct_io_read_still_releases_its_pins() {
    let machine = common::threaded(64, 2, true);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(3).unwrap();
    machine.device().inject(Fault::Fail(BioStatus::Medium));
    let error = machine
        .dio_read(&process, buffer, 3 * 4096, Sector(0))
        .unwrap_err();
    assert_eq!(
        error,
        HostError::Io {
            status: BioStatus::Medium
        }
    );
    assert_eq!(machine.device().stats().failed, 1);
    assert_eq!(machine.stats().pages_pinned, 3);
    assert_baseline(&machine);
    // The next read works.
    machine.dio_read(&process, buffer, 4096, Sector(0)).unwrap();
    assert_baseline(&machine);
}

#[test]
fn a_failed_direct_io_write_still_releases_its_pins() {
    let machine = common::threaded(64, 2, true);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    process.store(buffer, &[1; 1024]).unwrap();
    let region = machine.cache().reserve_sectors(16).unwrap();
    machine.device().inject(Fault::Fail(BioStatus::Timeout));
    let error = machine
        .dio_write(&process, buffer, 8192, Sector(region))
        .unwrap_err();
    assert_eq!(
        error,
        HostError::Io {
            status: BioStatus::Timeout
        }
    );
    assert_ne!(
        machine.device().disk().read_words(region, 1).unwrap(),
        [1],
        "nothing was written"
    );
    assert_baseline(&machine);
}

#[test]
fn a_failed_write_in_place_leaves_the_folio_dirty_and_the_next_pass_writes_it() {
    for mode in [
        WritebackMode::Untracked,
        WritebackMode::Tracked(PinnedAction::Bounce),
    ] {
        let machine = common::threaded(64, 1, true);
        let cache = machine.cache();
        let file = cache.create_file(8, &[3]).unwrap(); // one order-3 folio
        cache.write(&file, 5, 0, &[9; 4]).unwrap();
        machine.device().inject(Fault::Fail(BioStatus::Medium));
        let summary = cache.writeback(&file, mode);
        let head = file.cached_page(0).unwrap();
        assert_eq!(
            summary.first_error,
            Some(WritebackError::WriteInPlace {
                pfn: head,
                error: IoError::Device {
                    status: BioStatus::Medium
                }
            }),
            "{mode:?}"
        );
        assert!(cache.is_dirty(&file, 5).unwrap());
        assert!(cache.writeback(&file, mode).is_ok());
        assert!(cache.verify(&file).is_ok());
        assert_baseline(&machine);
    }
}

#[test]
fn a_failed_bounce_write_frees_the_copy_and_leaves_the_folio_dirty() {
    let machine = common::threaded(64, 1, true);
    let cache = machine.cache();
    let tracker = machine.tracker();
    let file = cache.create_file(4, &[2]).unwrap();
    cache.write(&file, 1, 0, &[3; 8]).unwrap();
    let head = file.cached_page(0).unwrap();
    // A device holds a pin on the folio (as a direct I/O would).
    tracker.pin_page(head).unwrap();
    machine.device().inject(Fault::Fail(BioStatus::NoSpace));
    let mode = WritebackMode::Tracked(PinnedAction::Bounce);
    let summary = cache.writeback(&file, mode);
    assert_eq!(
        summary.first_error,
        Some(WritebackError::WriteBounced {
            pfn: head,
            error: IoError::Device {
                status: BioStatus::NoSpace
            }
        })
    );
    assert!(cache.is_dirty(&file, 1).unwrap());
    tracker.unpin_page(head).unwrap();
    // The bounce copy went back to the allocator: only the file is left.
    assert_baseline(&machine);
    assert!(cache.writeback(&file, mode).is_ok());
    assert!(cache.verify(&file).is_ok());
    assert_baseline(&machine);
}

#[test]
fn no_memory_for_a_bounce_copy_is_a_typed_error_and_loses_nothing() {
    // Memory for the zero page and the file's order-2 folio only.
    let machine = gupio_host::Machine::new(gupio_host::MachineConfig {
        frames: 8,
        disk_sectors: 1024,
        device: gupio_host::DeviceConfig::threaded(1, std::time::Duration::ZERO),
        deferred_worker: true,
    })
    .unwrap();
    let cache = machine.cache();
    let file = cache.create_file(4, &[2]).unwrap();
    cache.write(&file, 0, 0, &[7]).unwrap();
    let head = file.cached_page(0).unwrap();
    machine.tracker().pin_page(head).unwrap();
    let summary = cache.writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
    assert_eq!(
        summary.first_error,
        Some(WritebackError::WriteBounced {
            pfn: head,
            error: IoError::OutOfMemory { order: 2 }
        })
    );
    assert!(cache.is_dirty(&file, 0).unwrap());
    machine.tracker().unpin_page(head).unwrap();
    assert!(cache
        .writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce))
        .is_ok());
    assert!(cache.verify(&file).is_ok());
    assert_baseline(&machine);
}

#[test]
fn a_failed_read_of_a_file_page_frees_the_folio_and_a_retry_works() {
    let machine = common::threaded(64, 1, true);
    let cache = machine.cache();
    let file = cache.create_file(4, &[1]).unwrap();
    machine.device().inject(Fault::Fail(BioStatus::Medium));
    assert_eq!(
        cache.read(&file, 1),
        Err(HostError::Io {
            status: BioStatus::Medium
        })
    );
    assert!(file.cached_page(1).is_none());
    assert!(machine.memory().allocated_folios().is_empty());
    // Through a mapping the same failure is a hardware-error fault.
    let process = machine.spawn_process();
    let map = process.mmap_file(&file, 0, 4, true).unwrap();
    machine.device().inject(Fault::Fail(BioStatus::Medium));
    assert_eq!(
        process.load(map, 1),
        Err(HostError::Fault {
            addr: map,
            kind: gupio::pin::FaultKind::HardwareError
        })
    );
    assert_eq!(
        cache.read(&file, 1).unwrap(),
        machine
            .device()
            .disk()
            .read_words(file.sector(1), 512)
            .unwrap()
    );
    assert_eq!(
        process
            .load(UserAddr::new(map.get() + 4096), 1)
            .unwrap()
            .len(),
        1
    );
    assert_baseline(&machine);
}
