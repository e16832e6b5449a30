use super::*;
use crate::testing::{Call, Machine, RecordingIo};
use crate::{Outcome, Writeback, WritebackReason, WritebackStats};
use gupio_pfn::Pfn;
use gupio_pin::{Folio, FolioRef, MemoryMap, PageCounters, PageFlags, Tracker};

#[test]
fn default_skips_in_the_background_and_bounces_for_integrity_on_every_attempt() {
    let c = PageCounters::new();
    let folio = FolioRef::new(Folio::single(Pfn::new(0)), &c);
    for attempt in [Attempt::First, Attempt::AfterWait] {
        let policy = ByReason::default();
        assert_eq!(
            policy.action_for(folio, attempt, WritebackReason::Background),
            PinnedAction::Skip
        );
        assert_eq!(
            policy.action_for(folio, attempt, WritebackReason::Integrity),
            PinnedAction::Bounce
        );
        assert_eq!(policy.action(folio, attempt), PinnedAction::Bounce);
    }
}

#[test]
fn engine_tells_the_policy_its_reason() {
    let m = Machine::new();
    let head = m.dirty_folio(8, 3);
    Tracker::new(&m).pin_page(Pfn::new(10)).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    let policy = ByReason::DEFAULT;
    let background = Writeback::new(&m, &io, &stats);
    assert_eq!(background.reason(), WritebackReason::Background);
    assert_eq!(
        background.writeback_folio(head, &policy),
        Ok(Outcome::Skipped)
    );
    assert_eq!(io.calls(), [Call::WriteProtect(head)]);
    let integrity = background.with_reason(WritebackReason::Integrity);
    assert_eq!(
        integrity.writeback_folio(head, &policy),
        Ok(Outcome::Bounced)
    );
    assert_eq!(
        io.calls(),
        [
            Call::WriteProtect(head),
            Call::WriteProtect(head),
            Call::Bounced(head)
        ]
    );
    let dirty = m.counters(head).unwrap().flags().contains(PageFlags::DIRTY);
    assert!(dirty, "bounced for integrity, still dirty");
    Tracker::new(&m).unpin_page(Pfn::new(10)).unwrap();
    assert_eq!(
        integrity.writeback_folio(head, &policy),
        Ok(Outcome::WrittenInPlace)
    );
    let dirty = m.counters(head).unwrap().flags().contains(PageFlags::DIRTY);
    assert!(!dirty, "the final contents written once unpinned");
}

#[test]
fn a_policy_that_ignores_the_reason_answers_the_same_for_both() {
    let m = Machine::new();
    let head = m.dirty_folio(0, 0);
    Tracker::new(&m).pin_page(head).unwrap();
    let io = RecordingIo::new(&m);
    let stats = WritebackStats::new();
    for reason in [WritebackReason::Background, WritebackReason::Integrity] {
        let wb = Writeback::new(&m, &io, &stats).with_reason(reason);
        assert_eq!(
            wb.writeback_folio(head, &PinnedAction::Skip),
            Ok(Outcome::Skipped)
        );
    }
    Tracker::new(&m).unpin_page(head).unwrap();
}
