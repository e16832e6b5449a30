use gupio::bio::Sector;

use super::*;
use gupio::pfn::Pfn;
use gupio::pin::PageFlags;
use gupio::release::ReleaseError;

use crate::memory::{AllocatedFolio, BadFree, BadFreeKind};

#[test]
fn accessors_reach_the_parts_the_configuration_built() {
    let config = MachineConfig::small();
    let machine = Machine::new(config).unwrap();
    assert_eq!(machine.memory().nr_frames(), config.frames);
    assert_eq!(machine.device().disk().sectors(), config.disk_sectors);
    assert_eq!(machine.device().config(), config.device);
    let file = machine.cache().create_file(1, &[]).unwrap();
    assert!(machine.cache().file(file.id()).is_some());
    // The tracker works on the machine's own memory.
    let page = machine.memory().alloc_folio(0, true).unwrap();
    machine.tracker().pin_page(page).unwrap();
    assert_eq!(machine.memory().pin_stats().acquired(), 1);
    machine.tracker().unpin_page(page).unwrap();
    machine.tracker().put_page(page).unwrap();
    assert!(machine.memory().allocated_folios().is_empty());
}

#[test]
fn a_pending_io_is_complete_once_the_device_ran_it_and_stats_count_it() {
    let machine = Machine::new(MachineConfig::synchronous(64, 1024)).unwrap();
    assert_eq!(machine.stats(), MachineStats::default());
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    let pending = machine
        .submit_dio_read(&process, buffer, 8192, Sector(0))
        .unwrap();
    assert!(
        !pending.is_complete(),
        "a synchronous device waits to be run"
    );
    machine.device().wait_idle();
    assert!(pending.is_complete());
    assert_eq!(pending.wait(&machine).unwrap().pages, 2);
    let stats = machine.stats();
    assert_eq!((stats.dio_reads, stats.dio_writes), (1, 0));
    assert_eq!(stats.pages_pinned, 2);
    machine.quiesce();
    assert!(machine.audit().is_clean());
}

#[test]
fn an_audit_is_clean_only_when_every_check_passes() {
    assert!(Audit::default().is_clean());
    let page = Pfn::new(7);
    let unclean = [
        Audit {
            pins_acquired: 1,
            ..Audit::default()
        },
        Audit {
            bad_frees: vec![BadFree {
                pfn: page,
                kind: BadFreeKind::AlreadyFree,
            }],
            ..Audit::default()
        },
        Audit {
            off_baseline: vec![OffBaseline {
                head: page,
                refcount: 2,
                expected: 1,
                pincount: 0,
                flags: PageFlags::empty(),
            }],
            ..Audit::default()
        },
        Audit {
            leaks: vec![AllocatedFolio {
                head: page,
                order: 0,
                refcount: 1,
                pincount: 0,
            }],
            ..Audit::default()
        },
        Audit {
            release_errors: vec![ReleaseError::NotStarted],
            ..Audit::default()
        },
        Audit {
            completion_errors: vec![ReleaseError::DoubleCompletion],
            ..Audit::default()
        },
        Audit {
            stable_errors: vec![HostError::DeviceGone],
            ..Audit::default()
        },
    ];
    for audit in &unclean {
        assert!(!audit.is_clean(), "{audit:?}");
    }
    // A warning, raised the real way: an unpin without a pin.
    let machine = Machine::new(MachineConfig::synchronous(16, 64)).unwrap();
    let page = machine.memory().alloc_folio(0, true).unwrap();
    assert!(machine.tracker().unpin_page(page).is_err());
    let audit = machine.audit();
    assert!(!audit.warnings.is_empty());
    assert!(!audit.is_clean());
    machine.tracker().put_page(page).unwrap();
}

#[test]
fn the_small_configuration_has_threads_and_a_worker_the_synchronous_none() {
    let small = MachineConfig::small();
    assert!(small.deferred_worker);
    assert!(small.device.threads > 0);
    let synchronous = MachineConfig::synchronous(64, 1024);
    assert!(!synchronous.deferred_worker);
    assert_eq!(synchronous.device, DeviceConfig::synchronous());
    assert_eq!((synchronous.frames, synchronous.disk_sectors), (64, 1024));
}

#[test]
fn a_sub_page_direct_read_reports_its_bytes_and_one_page() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(1).unwrap();
    let done = machine.dio_read(&process, buffer, 512, Sector(3)).unwrap();
    assert_eq!(
        done,
        DioDone {
            bytes: 512,
            pages: 1
        }
    );
    let disk = machine.device().disk().read_words(3, 64).unwrap();
    assert_eq!(process.load(buffer, 64).unwrap(), disk);
    machine.quiesce();
    assert!(machine.audit().is_clean());
}

#[test]
fn without_a_worker_nothing_is_deferred_unless_writeback_cleaned_a_page() {
    let machine = Machine::new(MachineConfig::synchronous(16, 256)).unwrap();
    assert_eq!(machine.run_deferred(), 0);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(1).unwrap();
    machine.dio_read(&process, buffer, 4096, Sector(0)).unwrap();
    // An anonymous page stays dirty: the completion releases it at once.
    assert_eq!(machine.stats().deferred_releases, 0);
    assert_eq!(machine.run_deferred(), 0);
    machine.quiesce();
    machine.quiesce();
    assert!(machine.audit().is_clean());
}
