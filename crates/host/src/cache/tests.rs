use gupio::writeback::PinnedAction;

use gupio::embed::{MemoryMap, WritebackIo};

use super::*;
use crate::{Machine, MachineConfig};

#[test]
fn a_file_knows_its_number_and_size() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    let three = cache.create_file(3, &[]).unwrap();
    let one = cache.create_file(1, &[]).unwrap();
    assert_ne!(three.id(), one.id());
    assert_eq!(cache.file(three.id()).unwrap().id(), three.id());
    assert_eq!(cache.file(one.id()).unwrap().id(), one.id());
    assert_eq!((three.pages(), one.pages()), (3, 1));
    assert_eq!(three.id().to_string(), format!("#{}", three.id().0));
}

#[test]
fn a_file_check_is_ok_only_without_lost_writes_or_dirty_pages() {
    assert!(FileCheck::default().is_ok());
    let clean = FileCheck {
        pages: 4,
        lost_writes: 0,
        dirty: 0,
    };
    assert!(clean.is_ok());
    assert!(!FileCheck {
        lost_writes: 1,
        ..clean
    }
    .is_ok());
    assert!(!FileCheck { dirty: 1, ..clean }.is_ok());
}

#[test]
fn the_cache_counts_fills_and_each_kind_of_write() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    assert_eq!(cache.stats(), CacheStats::default());
    assert_eq!(cache.writeback_counts(), WritebackCounts::default());
    let file = cache.create_file(2, &[]).unwrap();
    cache.write(&file, 0, 0, &[1]).unwrap();
    assert_eq!(cache.stats().fills, 1);
    let _ = cache.writeback(&file, WritebackMode::Tracked(PinnedAction::Bounce));
    // gupio's engine wrote the one dirty page in place.
    let stats = cache.stats();
    assert_eq!(
        (stats.pages_written_in_place, stats.untracked_writes),
        (1, 0)
    );
    let counts = cache.writeback_counts();
    assert_eq!((counts.examined, counts.written_in_place), (1, 1));
    cache.write(&file, 1, 0, &[2]).unwrap();
    assert_eq!(cache.stats().fills, 2);
    let _ = cache.writeback(&file, WritebackMode::Untracked);
    // The untracked path writes in place too, but gupio's engine saw none of it.
    let stats = cache.stats();
    assert_eq!(
        (stats.pages_written_in_place, stats.untracked_writes),
        (2, 1)
    );
    assert_eq!(cache.writeback_counts(), counts);
    let folio = machine
        .memory()
        .folio(file.cached_page(0).unwrap())
        .unwrap();
    cache.io(&file).write_bounced(folio).unwrap();
    assert_eq!(cache.stats().pages_bounced, 1);
    assert_eq!(cache.writeback_counts(), counts, "a hook called directly");
}
