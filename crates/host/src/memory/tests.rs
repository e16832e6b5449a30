use super::*;
use gupio::pin::Folio;
use gupio::pin::{PageRange, Tracker};

#[test]
fn allocator_aligns_every_order_and_refuses_when_full() {
    let memory = Memory::new(64).unwrap();
    let big = memory.alloc_folio(5, true).unwrap();
    assert_eq!(big.get() % 32, 0);
    assert_ne!(big, memory.zero_page());
    let small = memory.alloc_folio(0, true).unwrap();
    assert_eq!(memory.free_pages(), 64 - 1 - 32 - 1);
    assert_eq!(
        memory.alloc_folio(5, true),
        Err(HostError::OutOfMemory { order: 5 })
    );
    assert_eq!(
        memory.alloc_folio(MAX_ORDER + 1, true),
        Err(HostError::OutOfMemory { order: 10 })
    );
    let folio = memory.folio(big).unwrap();
    assert_eq!(folio.nr_pages(), 32);
    assert_eq!(memory.folio(Pfn::new(big.get() + 31)).unwrap().head(), big);
    assert_eq!(memory.folio(small).unwrap().nr_pages(), 1);
}

#[test]
fn last_put_frees_and_poisons_and_a_second_free_is_recorded() {
    let memory = Memory::new(4).unwrap();
    let page = memory.alloc_folio(0, true).unwrap();
    let tracker = Tracker::new(&memory);
    tracker.put_page(page).unwrap();
    assert_eq!(memory.stats().folios_freed, 1);
    assert_eq!(memory.frame(page).unwrap().load(0), POISON);
    assert!(memory.allocated_folios().is_empty());
    // Free it again behind gupio's back: recorded, not a panic.
    let folio = FolioRef::new(Folio::single(page), memory.frame(page).unwrap().counters());
    memory.free_folio(folio);
    assert_eq!(
        memory.take_bad_frees(),
        [BadFree {
            pfn: page,
            kind: BadFreeKind::AlreadyFree
        }]
    );
    assert_eq!(memory.free_pages(), 3);
}

#[test]
fn frees_of_tails_wrong_orders_and_the_zero_page_are_refused() {
    let memory = Memory::new(8).unwrap();
    let head = memory.alloc_folio(2, true).unwrap();
    let counters = memory.frame(head).unwrap().counters();
    let tail = Pfn::new(head.get() + 1);
    memory.free_folio(FolioRef::new(Folio::single(tail), counters));
    memory.free_folio(FolioRef::new(
        Folio::new(head, FolioOrder::try_new(1).unwrap()).unwrap(),
        counters,
    ));
    let zero = memory.zero_page();
    memory.free_folio(FolioRef::new(Folio::single(zero), counters));
    let kinds: Vec<_> = memory.take_bad_frees().iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BadFreeKind::NotAHead,
            BadFreeKind::OrderMismatch {
                allocated: 2,
                freed: 1
            },
            BadFreeKind::NotFreeable
        ]
    );
    assert_eq!(memory.allocated_folios().len(), 1, "nothing was freed");
}

#[test]
fn pins_on_a_large_folio_are_accounted_and_the_zero_page_is_never_pinned() {
    let memory = Memory::new(16).unwrap();
    let head = memory.alloc_folio(3, true).unwrap();
    let tracker = Tracker::new(&memory);
    let range = PageRange::new(Pfn::new(head.get() + 2), 4);
    tracker.pin_range(range).unwrap();
    assert_eq!(memory.frame(head).unwrap().counters().pincount(), 4);
    tracker.pin_page(memory.zero_page()).unwrap();
    assert!(!gupio::pin::maybe_dma_pinned(&memory, memory.zero_page()).unwrap());
    tracker.unpin_range(range).unwrap();
    assert_eq!(memory.pin_stats().acquired(), 4);
    assert_eq!(memory.pin_stats().released(), 4);
    assert!(memory.warnings().is_empty());
}

#[test]
fn contended_folio_lock_waits_for_the_holder() {
    let memory = Memory::new(4).unwrap();
    let page = memory.alloc_folio(0, true).unwrap();
    let frame = memory.frame(page).unwrap();
    let folio = memory.folio(page).unwrap();
    memory.lock_folio(folio);
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            memory.lock_folio(memory.folio(page).unwrap());
            // The holder stored before unlocking: the lock orders it.
            let seen = frame.load(0);
            memory.unlock_folio(memory.folio(page).unwrap());
            seen
        });
        frame.store(0, 42);
        memory.unlock_folio(folio);
        assert_eq!(waiter.join().unwrap(), 42);
    });
    assert!(!frame
        .counters()
        .flags()
        .contains(gupio::pin::PageFlags::LOCKED));
}
