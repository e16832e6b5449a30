use super::*;
use crate::testing::{Call, Machine, RecordingIo};
use gupio_pin::{FolioShape, MemoryMap, Tracker, GUP_PIN_COUNTING_BIAS};

const ALL: [PinnedAction; 3] = [PinnedAction::Bounce, PinnedAction::Skip, PinnedAction::Wait];

fn pfn(raw: usize) -> Pfn {
    Pfn::new(raw)
}

/// Neither locked nor under writeback: the protocol left no trace.
fn assert_settled(m: &Machine, head: usize) {
    let flags = m.page(head).flags();
    assert!(!flags.contains(PageFlags::LOCKED), "{flags:?}");
    assert!(!flags.contains(PageFlags::WRITEBACK), "{flags:?}");
}

fn is_dirty(m: &Machine, head: usize) -> bool {
    m.page(head).flags().contains(PageFlags::DIRTY)
}

#[test]
fn unpinned_small_page_is_written_in_place_and_cleaned_under_every_policy() {
    for policy in ALL {
        let m = Machine::new();
        let page = m.dirty_page(1);
        let io = RecordingIo::new(&m);
        let stats = WritebackStats::new();
        let wb = Writeback::new(&m, &io, &stats);
        assert_eq!(
            wb.writeback_folio(page, &policy),
            Ok(Outcome::WrittenInPlace)
        );
        assert!(!is_dirty(&m, 1));
        assert_settled(&m, 1);
        assert_eq!(io.calls(), [Call::WriteProtect(page), Call::InPlace(page)]);
        assert_eq!(stats.snapshot().written_in_place, 1);
    }
}

#[test]
fn in_place_write_runs_locked_under_writeback_after_the_dirty_bit_is_taken() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    Writeback::new(&m, &io, &stats)
        .writeback_folio(page, &PinnedAction::Skip)
        .unwrap();
    let seen = io.flags_at_writes();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains(PageFlags::LOCKED | PageFlags::WRITEBACK));
    assert!(!seen[0].contains(PageFlags::DIRTY));
}

#[test]
fn large_folio_is_written_once_whole_from_any_of_its_pages() {
    let m = Machine::new();
    let head = m.dirty_folio(8, 3);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let outcome = wb.writeback_folio(pfn(13), &PinnedAction::Bounce);
    assert_eq!(outcome, Ok(Outcome::WrittenInPlace));
    assert_eq!(io.calls(), [Call::WriteProtect(head), Call::InPlace(head)]);
    assert!(!is_dirty(&m, 8));
    assert_settled(&m, 8);
}

#[test]
fn clean_folio_is_left_alone_without_write_protection() {
    let m = Machine::new();
    let page = m.prepare(2, 0);
    m.prepare(4, 2);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    for policy in ALL {
        assert_eq!(wb.writeback_folio(page, &policy), Ok(Outcome::Clean));
        assert_eq!(wb.writeback_folio(pfn(6), &policy), Ok(Outcome::Clean));
    }
    assert!(io.calls().is_empty());
    assert_settled(&m, 2);
    assert_settled(&m, 4);
    assert!(!is_dirty(&m, 2) && !is_dirty(&m, 4));
    assert_eq!(stats.snapshot().clean, 6);
}

#[test]
fn pinned_small_page_is_bounced_kept_dirty_then_written_after_unpin() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    let t = Tracker::new(&m);
    t.pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);

    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Bounce),
        Ok(Outcome::Bounced)
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
    assert_eq!(io.calls(), [Call::WriteProtect(page), Call::Bounced(page)]);
    // Still pinned: the next pass bounces again.
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Bounce),
        Ok(Outcome::Bounced)
    );

    t.unpin_page(page).unwrap();
    io.clear();
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Bounce),
        Ok(Outcome::WrittenInPlace)
    );
    assert!(!is_dirty(&m, 1));
    assert_eq!(io.calls(), [Call::WriteProtect(page), Call::InPlace(page)]);
    let counts = stats.snapshot();
    assert_eq!((counts.bounced, counts.written_in_place), (2, 1));
    assert!(counts.is_balanced());
}

#[test]
fn pinned_large_folio_is_bounced_whole_then_written_after_unpin() {
    let m = Machine::new();
    let head = m.dirty_folio(8, 3);
    let t = Tracker::new(&m);
    let tail = pfn(11);
    t.pin_page(tail).unwrap();
    assert_eq!(m.page(8).pincount(), 1);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);

    assert_eq!(
        wb.writeback_folio(pfn(15), &PinnedAction::Bounce),
        Ok(Outcome::Bounced)
    );
    assert!(is_dirty(&m, 8));
    assert_eq!(io.calls(), [Call::WriteProtect(head), Call::Bounced(head)]);

    t.unpin_page(tail).unwrap();
    assert_eq!(
        wb.writeback_folio(head, &PinnedAction::Bounce),
        Ok(Outcome::WrittenInPlace)
    );
    assert!(!is_dirty(&m, 8));
    assert_settled(&m, 8);
}

#[test]
fn bounce_copy_is_written_with_the_folio_dirty_locked_and_under_writeback() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    Writeback::new(&m, &io, &stats)
        .writeback_folio(page, &PinnedAction::Bounce)
        .unwrap();
    let seen = io.flags_at_writes();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains(PageFlags::LOCKED | PageFlags::WRITEBACK | PageFlags::DIRTY));
}

#[test]
fn pinned_folio_is_skipped_without_io_and_stays_dirty() {
    for order in [0, 2] {
        let m = Machine::new();
        let head = m.dirty_folio(4, order);
        Tracker::new(&m).pin_page(head).unwrap();
        let io = RecordingIo::new(&m);
        let stats = WritebackStats::new();
        let wb = Writeback::new(&m, &io, &stats);
        assert_eq!(
            wb.writeback_folio(head, &PinnedAction::Skip),
            Ok(Outcome::Skipped)
        );
        assert!(is_dirty(&m, 4));
        assert_settled(&m, 4);
        assert_eq!(io.calls(), [Call::WriteProtect(head)]);
        assert_eq!(stats.snapshot().skipped, 1);
    }
}

#[test]
fn wait_that_sees_the_unpin_writes_in_place_and_cleans() {
    for order in [0, 3] {
        let m = Machine::new();
        let head = m.dirty_folio(8, order);
        let t = Tracker::new(&m);
        t.pin_page(head).unwrap();
        let io = RecordingIo::new(&m);
        io.on_wait(|folio| {
            // The completion runs while writeback waits: the folio is
            // unlocked, dirty and not under writeback.
            let flags = folio.counters().flags();
            assert!(!flags.contains(PageFlags::LOCKED));
            assert!(!flags.contains(PageFlags::WRITEBACK));
            assert!(flags.contains(PageFlags::DIRTY));
            Tracker::new(&m).unpin_page(folio.head()).unwrap();
            true
        });
        let stats = WritebackStats::new();
        let wb = Writeback::new(&m, &io, &stats);
        assert_eq!(
            wb.writeback_folio(head, &PinnedAction::Wait),
            Ok(Outcome::WaitedThenWritten)
        );
        assert!(!is_dirty(&m, 8));
        assert_settled(&m, 8);
        assert_eq!(
            io.calls(),
            [
                Call::WriteProtect(head),
                Call::Wait(head),
                Call::WriteProtect(head),
                Call::InPlace(head)
            ]
        );
        assert_eq!(stats.snapshot().waited_then_written, 1);
        assert!(!t.maybe_dma_pinned(head).unwrap());
    }
}

#[test]
fn wait_that_gives_up_leaves_the_folio_dirty_without_io() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.on_wait(|_| false);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Wait),
        Ok(Outcome::WaitGaveUp)
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
    assert_eq!(io.calls(), [Call::WriteProtect(page), Call::Wait(page)]);
    assert_eq!(stats.snapshot().wait_gave_up, 1);
}

#[test]
fn wait_that_claims_unpin_is_rechecked_and_gives_up_if_still_pinned() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.on_wait(|_| true); // wrong: the pin is still there
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Wait),
        Ok(Outcome::WaitGaveUp)
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
    assert_eq!(
        io.calls(),
        [
            Call::WriteProtect(page),
            Call::Wait(page),
            Call::WriteProtect(page)
        ]
    );
}

#[test]
fn policy_can_bounce_after_a_wait_gives_up() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.on_wait(|_| false);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let wait_then_bounce = |_: FolioRef<'_>, attempt: Attempt| match attempt {
        Attempt::First => PinnedAction::Wait,
        Attempt::AfterWait => PinnedAction::Bounce,
    };
    assert_eq!(
        wb.writeback_folio(page, &wait_then_bounce),
        Ok(Outcome::Bounced)
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
    assert_eq!(
        io.calls(),
        [
            Call::WriteProtect(page),
            Call::Wait(page),
            Call::WriteProtect(page),
            Call::Bounced(page)
        ]
    );
}

#[test]
fn bounce_after_a_failed_wait_writes_in_place_if_the_pin_went_away_meanwhile() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    // Gives up, but the pin goes just after: the locked re-check sees it.
    io.on_wait(|folio| {
        Tracker::new(&m).unpin_page(folio.head()).unwrap();
        false
    });
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let wait_then_bounce = |_: FolioRef<'_>, attempt: Attempt| match attempt {
        Attempt::First => PinnedAction::Wait,
        Attempt::AfterWait => PinnedAction::Bounce,
    };
    let outcome = wb.writeback_folio(page, &wait_then_bounce);
    assert_eq!(outcome, Ok(Outcome::WaitedThenWritten));
    assert!(!is_dirty(&m, 1));
}

#[test]
fn folio_cleaned_by_someone_else_during_the_wait_is_clean() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.on_wait(|folio| {
        let t = Tracker::new(&m);
        t.unpin_page(folio.head()).unwrap();
        // Another writeback thread writes it meanwhile.
        let (other_io, other_stats) = (RecordingIo::new(&m), WritebackStats::new());
        let other = Writeback::new(&m, &other_io, &other_stats);
        assert_eq!(
            other.writeback_folio(folio.head(), &PinnedAction::Skip),
            Ok(Outcome::WrittenInPlace)
        );
        true
    });
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Wait),
        Ok(Outcome::Clean)
    );
    assert_eq!(io.calls(), [Call::WriteProtect(page), Call::Wait(page)]);
}

#[test]
fn policy_sees_the_folio_and_can_choose_by_size() {
    let m = Machine::new();
    let small = m.dirty_page(1);
    let large = m.dirty_folio(8, 3);
    let t = Tracker::new(&m);
    t.pin_page(small).unwrap();
    t.pin_page(large).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let by_size = |folio: FolioRef<'_>, _: Attempt| {
        if folio.nr_pages() > 1 {
            PinnedAction::Bounce
        } else {
            PinnedAction::Skip
        }
    };
    assert_eq!(wb.writeback_folio(small, &by_size), Ok(Outcome::Skipped));
    assert_eq!(wb.writeback_folio(large, &by_size), Ok(Outcome::Bounced));
}

#[test]
fn policy_is_not_asked_about_unpinned_or_clean_folios() {
    let m = Machine::new();
    let dirty = m.dirty_page(1);
    let clean = m.prepare(2, 0);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let never = |_: FolioRef<'_>, _: Attempt| -> PinnedAction { panic!("policy asked") };
    assert_eq!(
        wb.writeback_folio(dirty, &never),
        Ok(Outcome::WrittenInPlace)
    );
    assert_eq!(wb.writeback_folio(clean, &never), Ok(Outcome::Clean));
}

#[test]
fn failed_in_place_write_redirties_and_reports_the_head() {
    let m = Machine::new();
    let head = m.dirty_folio(4, 2);
    let io = RecordingIo::new(&m);
    io.fail_in_place(-5);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(pfn(6), &PinnedAction::Bounce),
        Err(WritebackError::WriteInPlace {
            pfn: head,
            error: -5
        })
    );
    assert!(is_dirty(&m, 4));
    assert_settled(&m, 4);
    let counts = stats.snapshot();
    assert_eq!((counts.write_errors, counts.examined), (1, 1));
    assert!(counts.is_balanced());
}

#[test]
fn failed_bounce_write_keeps_the_folio_dirty_and_reports_it() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.fail_bounced(-12);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Bounce),
        Err(WritebackError::WriteBounced {
            pfn: page,
            error: -12
        })
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
    assert_eq!(stats.snapshot().write_errors, 1);
}

#[test]
fn failed_write_after_a_wait_redirties() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    Tracker::new(&m).pin_page(page).unwrap();
    let io = RecordingIo::new(&m);
    io.on_wait(|folio| {
        Tracker::new(&m).unpin_page(folio.head()).unwrap();
        true
    });
    io.fail_in_place(-5);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Wait),
        Err(WritebackError::WriteInPlace {
            pfn: page,
            error: -5
        })
    );
    assert!(is_dirty(&m, 1));
    assert_settled(&m, 1);
}

#[test]
fn many_plain_references_read_as_a_pin_and_are_bounced_not_lost() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    let t = Tracker::new(&m);
    for _ in 1..GUP_PIN_COUNTING_BIAS {
        t.get_page(page).unwrap();
    }
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Bounce),
        Ok(Outcome::Bounced)
    );
    assert!(is_dirty(&m, 1));
}

#[test]
fn dirty_zero_page_is_never_treated_as_pinned() {
    let m = Machine::with_zero_page(0);
    let zero = m.prepare(0, 0);
    let t = Tracker::new(&m);
    for _ in 1..GUP_PIN_COUNTING_BIAS {
        t.get_page(zero).unwrap();
    }
    m.page(0).set_flags(PageFlags::DIRTY);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(zero, &PinnedAction::Skip),
        Ok(Outcome::WrittenInPlace)
    );
}

#[test]
fn non_blocking_mode_reports_a_locked_folio_and_leaves_it_untouched() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    assert!(m.page(1).try_lock());
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats).with_lock_mode(LockMode::NonBlocking);
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Skip),
        Err(WritebackError::Locked { pfn: page })
    );
    assert_eq!(m.page(1).flags(), PageFlags::DIRTY | PageFlags::LOCKED);
    assert!(io.calls().is_empty());
    assert_eq!(stats.snapshot().busy, 1);
    m.page(1).unlock();
    assert_eq!(
        wb.writeback_folio(page, &PinnedAction::Skip),
        Ok(Outcome::WrittenInPlace)
    );
    assert_settled(&m, 1);
}

#[test]
fn folio_under_writeback_elsewhere_is_reported_and_untouched() {
    for mode in [LockMode::Blocking, LockMode::NonBlocking] {
        let m = Machine::new();
        let head = m.dirty_folio(4, 1);
        m.page(4).set_flags(PageFlags::WRITEBACK);
        let io = RecordingIo::new(&m);
        let stats = WritebackStats::new();
        let wb = Writeback::new(&m, &io, &stats).with_lock_mode(mode);
        assert_eq!(
            wb.writeback_folio(pfn(5), &PinnedAction::Bounce),
            Err(WritebackError::UnderWriteback { pfn: head })
        );
        assert_eq!(m.page(4).flags(), PageFlags::DIRTY | PageFlags::WRITEBACK);
        assert!(io.calls().is_empty());
        assert_eq!(stats.snapshot().busy, 1);
    }
}

#[test]
fn frame_outside_the_map_is_a_lookup_error_not_an_examined_folio() {
    let m = Machine::new();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let end = Machine::BASE + Machine::PAGES;
    for raw in [end, end + 1, Pfn::MAX.get()] {
        assert_eq!(
            wb.writeback_folio(pfn(raw), &PinnedAction::Bounce),
            Err(WritebackError::NotInMemoryMap { pfn: pfn(raw) })
        );
    }
    let counts = stats.snapshot();
    assert_eq!((counts.lookup_errors, counts.examined), (3, 0));
    assert_eq!(m.warnings(), 0);
}

#[test]
fn corrupt_folio_shape_is_warned_and_reported() {
    let m = Machine::new();
    m.dirty_page(4);
    // Page 5 claims to be page 1 of an order-1 folio headed by page 4,
    // but page 4 says it is a small page.
    let order = gupio_pin::FolioOrder::try_new(1).unwrap();
    m.page(5).init(0, FolioShape::new(order, 1).unwrap());
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(
        wb.writeback_folio(pfn(5), &PinnedAction::Bounce),
        Err(WritebackError::CorruptFolio { pfn: pfn(5) })
    );
    assert_eq!(m.warnings(), 1);
    assert_eq!(
        m.last_warning(),
        Some(Warning::CorruptFolio { pfn: pfn(5) })
    );
    assert!(io.calls().is_empty());
    assert_eq!(stats.snapshot().lookup_errors, 1);
}

#[test]
fn folios_batch_writes_each_run_once_and_continues_past_errors() {
    let m = Machine::new();
    let small = m.dirty_page(1);
    let clean = m.prepare(2, 0);
    let large = m.dirty_folio(8, 3);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let pfns = [pfn(9), pfn(10), pfn(15), small, pfn(500), clean, small];
    let summary = wb.writeback_folios(&pfns, &PinnedAction::Bounce);
    assert_eq!(
        summary.counts,
        WritebackCounts {
            examined: 4,
            clean: 2,
            written_in_place: 2,
            lookup_errors: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        summary.first_error,
        Some(WritebackError::NotInMemoryMap { pfn: pfn(500) })
    );
    assert_eq!(
        io.calls(),
        [
            Call::WriteProtect(large),
            Call::InPlace(large),
            Call::WriteProtect(small),
            Call::InPlace(small)
        ]
    );
    assert_eq!(stats.snapshot(), summary.counts);
    assert!(wb.writeback_folios(&[], &PinnedAction::Bounce).is_ok());
}

#[test]
fn range_batch_visits_each_touched_folio_once() {
    let m = Machine::new();
    m.dirty_page(3);
    let mid = m.dirty_folio(4, 2); // 4..8
    let large = m.dirty_folio(8, 3); // 8..16
    let t = Tracker::new(&m);
    t.pin_page(pfn(6)).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    // Starts mid-folio and ends mid-folio.
    let summary = wb.writeback_range(PageRange::new(pfn(5), 5), &PinnedAction::Skip);
    assert!(summary.is_ok());
    assert_eq!(
        summary.counts,
        WritebackCounts {
            examined: 2,
            skipped: 1,
            written_in_place: 1,
            ..Default::default()
        }
    );
    assert_eq!(
        io.calls(),
        [
            Call::WriteProtect(mid),
            Call::WriteProtect(large),
            Call::InPlace(large)
        ]
    );
    assert!(is_dirty(&m, 3), "outside the range");
    assert!(is_dirty(&m, 4), "pinned: skipped");
}

#[test]
fn range_batch_steps_over_unmapped_frames_one_by_one() {
    let m = Machine::new();
    let last = m.dirty_page(Machine::BASE + Machine::PAGES - 1);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    let range = PageRange::new(last, 3);
    let summary = wb.writeback_range(range, &PinnedAction::Skip);
    assert_eq!(summary.counts.written_in_place, 1);
    assert_eq!(summary.counts.lookup_errors, 2);
    assert_eq!(
        summary.into_result(),
        Err(WritebackError::NotInMemoryMap {
            pfn: last.checked_add(1).unwrap()
        })
    );
    assert!(wb
        .writeback_range(PageRange::new(last, 0), &PinnedAction::Skip)
        .is_ok());
    // A range ending at the largest frame number stops without overflow.
    let top = wb.writeback_range(PageRange::new(Pfn::MAX, 1), &PinnedAction::Skip);
    assert_eq!(top.counts.lookup_errors, 1);
}

/// Tiny deterministic generator (splitmix64) for the property test.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn no_pass_ever_cleans_a_pinned_folio_and_the_counts_add_up() {
    let mut rng = SplitMix(0x5eed);
    let rounds = if cfg!(miri) { 20 } else { 200 };
    for round in 0..rounds {
        let m = Machine::new();
        let t = Tracker::new(&m);
        // Folios of random orders tiling the map.
        let mut heads = Vec::new();
        let mut next = Machine::BASE;
        while next < Machine::BASE + Machine::PAGES {
            let room = Machine::BASE + Machine::PAGES - next;
            let mut order = u32::try_from(rng.below(4)).unwrap();
            while (1usize << order) > room || next % (1 << order) != 0 {
                order -= 1;
            }
            let head = m.prepare(next, order);
            if rng.below(2) == 0 {
                m.page(next).set_flags(PageFlags::DIRTY);
            }
            if rng.below(3) == 0 {
                let offset = usize::try_from(rng.below(1 << order)).unwrap();
                let page = head.checked_add(offset).unwrap();
                t.pin_page(page).unwrap();
            }
            heads.push((head, 1usize << order));
            next += 1 << order;
        }
        let before: Vec<(bool, bool)> = heads
            .iter()
            .map(|&(h, _)| {
                let c = m.counters(h).unwrap();
                (
                    c.flags().contains(PageFlags::DIRTY),
                    t.maybe_dma_pinned(h).unwrap(),
                )
            })
            .collect();
        let io = RecordingIo::new(&m);
        if rng.below(2) == 0 {
            io.fail_in_place(-5);
        }
        io.on_wait(|_| false);
        let policy = ALL[usize::try_from(rng.below(3)).unwrap()];
        let stats = WritebackStats::new();
        let wb = Writeback::new(&m, &io, &stats);
        let range = PageRange::new(pfn(Machine::BASE), Machine::PAGES);
        let summary = wb.writeback_range(range, &policy);

        assert!(summary.counts.is_balanced(), "round {round}");
        assert_eq!(summary.counts.examined, heads.len(), "round {round}");
        assert_eq!(stats.snapshot(), summary.counts, "round {round}");
        for (&(head, _), &(was_dirty, pinned)) in heads.iter().zip(&before) {
            let raw = head.get();
            assert_settled(&m, raw);
            if pinned && was_dirty {
                assert!(is_dirty(&m, raw), "round {round}: pinned {head:?} cleaned");
            }
            if !was_dirty {
                assert!(!is_dirty(&m, raw), "round {round}: clean {head:?} dirtied");
            }
        }
        let dirty_now = heads
            .iter()
            .filter(|&&(h, _)| is_dirty(&m, h.get()))
            .count();
        assert_eq!(dirty_now, summary.counts.left_dirty(), "round {round}");
    }
}

#[test]
fn outcomes_say_whether_they_wrote_and_whether_the_folio_stays_dirty() {
    assert!(Outcome::Skipped.left_dirty() && Outcome::WaitGaveUp.left_dirty());
    assert!(Outcome::Bounced.left_dirty());
    assert!(!Outcome::Clean.left_dirty() && !Outcome::WaitedThenWritten.left_dirty());
    assert!(Outcome::WaitedThenWritten.wrote() && Outcome::Bounced.wrote());
    assert!(Outcome::WrittenInPlace.wrote());
    assert!(!Outcome::Skipped.wrote() && !Outcome::Clean.wrote());
}

#[test]
fn a_summary_with_a_failure_is_not_ok() {
    let failed = WritebackSummary::<i32> {
        counts: WritebackCounts {
            lookup_errors: 1,
            ..Default::default()
        },
        first_error: Some(WritebackError::NotInMemoryMap { pfn: pfn(7) }),
    };
    assert!(!failed.is_ok());
    let fine = WritebackSummary::<i32> {
        counts: WritebackCounts::default(),
        first_error: None,
    };
    assert!(fine.is_ok());
}

#[test]
fn an_engine_blocks_on_locks_by_default_and_adds_to_its_stats() {
    let m = Machine::new();
    let page = m.dirty_page(1);
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let wb = Writeback::new(&m, &io, &stats);
    assert_eq!(wb.lock_mode(), LockMode::Blocking);
    assert_eq!(
        wb.with_lock_mode(LockMode::NonBlocking).lock_mode(),
        LockMode::NonBlocking
    );
    assert!(core::ptr::eq(wb.stats(), &stats));
    assert_eq!(wb.stats().snapshot().examined, 0);
    wb.writeback_folio(page, &PinnedAction::Bounce).unwrap();
    assert_eq!(wb.stats().snapshot().examined, 1);
}
