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

#[test]
fn a_file_lays_out_its_folios_then_small_pages_on_consecutive_sectors() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    assert!(cache.file(FileId(0)).is_none(), "no file yet");
    let file = cache.create_file(8, &[2, 1]).unwrap(); // 4 + 2 + 2 small
    assert_eq!(file.folio_span(0), Some((0, 2)));
    assert_eq!(file.folio_span(3), Some((0, 2)));
    assert_eq!(file.folio_span(5), Some((4, 1)));
    assert_eq!(file.folio_span(6), Some((6, 0)));
    assert_eq!(file.folio_span(7), Some((7, 0)));
    assert_eq!(file.folio_span(8), None, "past the end");
    assert_eq!(file.sector(2) - file.sector(0), 2 * SECTORS_PER_PAGE);
    assert!(file.cached_page(4).is_none(), "not read in yet");
    cache.populate(&file).unwrap();
    assert_eq!(cache.stats().fills, 4, "one fill per folio");
    let head = file.cached_page(4).unwrap();
    assert_eq!(file.cached_page(5).unwrap().get(), head.get() + 1);
    assert_eq!(
        machine.memory().folio(head).unwrap().nr_pages(),
        2,
        "the order-1 folio"
    );
}

#[test]
fn reserved_sector_ranges_follow_each_other_and_files_use_them() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    let a = cache.reserve_sectors(8).unwrap();
    let b = cache.reserve_sectors(8).unwrap();
    assert_eq!(b, a + 8);
    let file = cache.create_file(1, &[]).unwrap();
    assert_eq!(file.sector(0), b + 8);
}

#[test]
fn create_file_refuses_a_folio_not_aligned_to_its_size() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    assert!(cache.create_file(16, &[3, 2, 2]).is_ok());
    assert_eq!(
        cache.create_file(16, &[2, 3]).err(),
        Some(HostError::MisalignedFolio { index: 4, order: 3 })
    );
}

#[test]
fn get_page_reads_in_and_takes_a_reference() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let file = machine.cache().create_file(2, &[]).unwrap();
    let page = machine.cache().get_page(&file, 1).unwrap();
    assert_eq!(file.cached_page(1), Some(page));
    let counters = machine.memory().frame(page).unwrap().counters();
    assert_eq!(counters.refcount(), 2, "the cache's and the caller's");
    machine.tracker().put_page(page).unwrap();
    assert_eq!(counters.refcount(), 1);
}

#[test]
fn buffered_reads_see_the_disk_and_writes_are_clipped_and_dirty() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let cache = machine.cache();
    let file = cache.create_file(2, &[]).unwrap();
    let disk = machine
        .device()
        .disk()
        .read_words(file.sector(0), WORDS_PER_PAGE)
        .unwrap();
    assert_eq!(cache.read(&file, 0).unwrap(), disk);
    assert!(!cache.is_dirty(&file, 0).unwrap());
    cache.write(&file, 0, 510, &[1, 2, 3]).unwrap(); // the 3 is clipped
    let words = cache.read(&file, 0).unwrap();
    assert_eq!(words[510..], [1, 2]);
    assert_eq!(words[..510], disk[..510]);
    assert!(cache.is_dirty(&file, 0).unwrap());
    assert!(!cache.is_dirty(&file, 1).unwrap());
    // One page cached, written, not written back: a lost write, dirty.
    let check = cache.verify(&file);
    assert_eq!((check.pages, check.lost_writes, check.dirty), (1, 1, 1));
    let _ = cache.writeback(&file, WritebackMode::Untracked);
    let check = cache.verify(&file);
    assert_eq!((check.pages, check.lost_writes, check.dirty), (1, 0, 0));
}

#[test]
fn writeback_modes_compare_by_policy() {
    assert_ne!(
        WritebackMode::Untracked,
        WritebackMode::Tracked(PinnedAction::Bounce)
    );
    assert_ne!(
        WritebackMode::Tracked(PinnedAction::Skip),
        WritebackMode::Tracked(PinnedAction::Bounce)
    );
    assert_eq!(
        WritebackMode::Tracked(PinnedAction::Skip),
        WritebackMode::Tracked(PinnedAction::Skip)
    );
}
