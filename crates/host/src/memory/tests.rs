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

#[test]
fn memory_starts_at_the_zero_page_and_counts_its_frames() {
    let memory = Memory::new(5).unwrap();
    assert_eq!(memory.nr_frames(), 5);
    assert_eq!(memory.zero_page(), BASE_PFN);
    assert!(memory.is_zero_page(memory.zero_page()));
    assert!(memory.frame(memory.zero_page()).is_some());
    assert!(memory.frame(Pfn::new(1)).is_none(), "below BASE_PFN");
    assert!(
        memory.frame(Pfn::new(BASE_PFN.get() + 5)).is_none(),
        "past the end"
    );
    assert_eq!(memory.free_pages(), 4);
    assert!(
        memory.allocated_folios().is_empty(),
        "the zero page is not listed"
    );
}

#[test]
fn the_largest_order_allocates_and_one_more_does_not() {
    let memory = Memory::new(1024).unwrap();
    let head = memory.alloc_folio(MAX_ORDER, false).unwrap();
    assert_eq!(memory.folio(head).unwrap().nr_pages(), 1 << MAX_ORDER);
    assert!(memory.alloc_folio(MAX_ORDER + 1, false).is_err());
}

#[test]
fn frame_accessors_see_the_words_a_store_wrote() {
    let memory = Memory::new(4).unwrap();
    let page = memory.alloc_folio(0, true).unwrap();
    let frame = memory.frame(page).unwrap();
    assert_eq!(frame.counters().refcount(), 1, "the caller's reference");
    assert_eq!(frame.words().len(), WORDS_PER_PAGE);
    assert!(frame.snapshot().iter().all(|&w| w == 0), "zeroed");
    assert_eq!(
        frame.checksum(),
        crate::data::fnv1a(vec![0; WORDS_PER_PAGE])
    );
    frame.store(3, 7);
    frame.store(WORDS_PER_PAGE - 1, 1);
    assert_eq!((frame.load(3), frame.load(WORDS_PER_PAGE - 1)), (7, 1));
    assert_eq!(frame.words()[3].load(Ordering::Relaxed), 7);
    let snapshot = frame.snapshot();
    assert_eq!(snapshot.len(), WORDS_PER_PAGE);
    assert_eq!((snapshot[3], snapshot[WORDS_PER_PAGE - 1]), (7, 1));
    assert_eq!(frame.checksum(), crate::data::fnv1a(snapshot));
    // Past the page: a load reads 0, a store changes nothing.
    frame.store(WORDS_PER_PAGE, 9);
    assert_eq!(frame.load(WORDS_PER_PAGE), 0);
    assert_eq!(frame.snapshot().iter().filter(|&&w| w != 0).count(), 2);
}

#[test]
fn a_frame_can_be_written_and_read_from_two_threads_at_once() {
    let memory = Memory::new(2).unwrap();
    let frame = memory.frame(memory.alloc_folio(0, true).unwrap()).unwrap();
    let seen = thread::scope(|s| {
        let device = s.spawn(|| {
            for i in 0..WORDS_PER_PAGE {
                frame.store(i, 1);
            }
        });
        // Writeback racing the "device": each word is 0 or 1, never torn.
        let seen: Vec<u64> = (0..WORDS_PER_PAGE).map(|i| frame.load(i)).collect();
        device.join().unwrap();
        seen
    });
    assert!(seen.iter().all(|&w| w <= 1));
    assert!(frame.snapshot().iter().all(|&w| w == 1));
}

#[test]
fn a_refused_free_names_its_frame_and_kind() {
    let pfn = Pfn::new(0x41);
    let text = |kind| BadFree { pfn, kind }.to_string();
    assert_eq!(text(BadFreeKind::AlreadyFree), "double free of pfn 0x41");
    assert_eq!(text(BadFreeKind::NotAHead), "free of tail page 0x41");
    assert_eq!(
        text(BadFreeKind::OrderMismatch {
            allocated: 2,
            freed: 1
        }),
        "free of folio 0x41 as order 1, allocated as order 2"
    );
    assert!(text(BadFreeKind::NotFreeable).contains("not freeable"));
    assert_ne!(BadFreeKind::AlreadyFree, BadFreeKind::NotAHead);
}

#[test]
fn allocated_folios_and_stats_follow_allocation_and_free() {
    let memory = Memory::new(8).unwrap();
    assert_eq!(memory.stats(), MemoryStats::default());
    let head = memory.alloc_folio(1, true).unwrap();
    let small = memory.alloc_folio(0, false).unwrap();
    assert_eq!(memory.free_pages(), 4);
    assert_eq!(memory.stats().folios_allocated, 2);
    let tracker = Tracker::new(&memory);
    tracker.pin_page(head).unwrap();
    // The order-1 folio is aligned to two frames, so the small page,
    // allocated after it, comes first. A pin on a large folio takes one
    // reference and counts in the pin count.
    assert_eq!(
        memory.allocated_folios(),
        [
            AllocatedFolio {
                head: small,
                order: 0,
                refcount: 1,
                pincount: 0
            },
            AllocatedFolio {
                head,
                order: 1,
                refcount: 2,
                pincount: 1
            }
        ],
        "in frame order"
    );
    assert_eq!(memory.pin_stats().in_flight(), 1);
    tracker.unpin_page(head).unwrap();
    assert_eq!(memory.pin_stats().in_flight(), 0);
    tracker.put_page(small).unwrap();
    assert_eq!(memory.stats().folios_freed, 1);
    assert_eq!(memory.free_pages(), 5);
    assert_eq!(memory.allocated_folios().len(), 1);
}

#[test]
fn warnings_and_refused_frees_are_recorded_until_taken() {
    let memory = Memory::new(2).unwrap();
    assert!(memory.warnings().is_empty() && memory.bad_frees().is_empty());
    Warn::warn(&memory, ReleaseWarning::DoubleCompletion);
    let expected = [AnyWarning::Release(ReleaseWarning::DoubleCompletion)];
    assert_eq!(memory.warnings(), expected, "reading leaves them");
    assert_eq!(memory.take_warnings(), expected);
    assert!(memory.warnings().is_empty());
    let zero = memory.zero_page();
    let counters = memory.frame(zero).unwrap().counters();
    memory.free_folio(FolioRef::new(Folio::single(zero), counters));
    let refused = [BadFree {
        pfn: zero,
        kind: BadFreeKind::NotFreeable,
    }];
    assert_eq!(memory.bad_frees(), refused, "reading leaves them");
    assert_eq!(memory.take_bad_frees(), refused);
    assert!(memory.take_bad_frees().is_empty());
}
