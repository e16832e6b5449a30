use super::*;
use gupio_bio::{Bio, BioLimits, BioOp, BioVec, Sector};
use gupio_pfn::{Origin, Pfn};
use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap, Tracker};

use crate::{AnyWarning, ReleaseWarning};

type Table = heapless::Vec<BioVec, 2>;

/// One small page at pfn 0.
fn machine() -> ArrayMemoryMap<1, AnyWarning> {
    let map = ArrayMemoryMap::new(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    map
}

/// A submitted read of the page at pfn 0, pinned for it.
fn in_flight<'t>(
    tracker: &Tracker<'_, ArrayMemoryMap<1, AnyWarning>>,
    table: &'t mut Table,
) -> SubmittedBio<&'t mut Table> {
    tracker.pin_page(Pfn::new(0)).unwrap();
    let mut bio = Bio::new(table, BioOp::Read, Sector(0), BioLimits::default());
    let _ = bio.add_page(Pfn::new(0), 4096, 0, Origin::Pinned).unwrap();
    SubmittedBio::submit(bio).unwrap()
}

/// Releases the ended bio and checks its page is back unpinned: every arm
/// must hand back a bio whose pages can still be released.
fn release_and_check(
    map: &ArrayMemoryMap<1, AnyWarning>,
    tracker: &Tracker<'_, ArrayMemoryMap<1, AnyWarning>>,
    bio: CompletedBio<&mut Table>,
) {
    let released = bio.release(tracker, false);
    assert_eq!(released.result.unwrap().unpinned, 1);
    assert_eq!(map.counters(Pfn::new(0)).unwrap().pincount(), 0);
    assert_eq!(map.stats().acquired(), map.stats().released());
}

#[test]
fn a_finished_completion_ends_the_bio_with_its_ok_status() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    completion.start().unwrap();
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Ok, &map);
    assert_eq!(ended.result, Ok(BioStatus::Ok));
    assert_eq!(ended.bio.status(), BioStatus::Ok);
    assert!(!completion.is_in_flight());
    assert_eq!(map.warnings(), 0);
    release_and_check(&map, &tracker, ended.bio);
}

#[test]
fn a_finished_completion_ends_the_bio_with_the_device_error() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    completion.start().unwrap();
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Medium, &map);
    // The device's own error, not the generic one the failure arms use.
    assert_eq!(ended.result, Ok(BioStatus::Medium));
    assert_eq!(ended.bio.status(), BioStatus::Medium);
    assert_eq!(map.warnings(), 0);
    release_and_check(&map, &tracker, ended.bio);
}

#[test]
fn a_completion_that_waits_for_a_child_ends_the_bio_with_an_error() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    completion.start().unwrap();
    let child = completion.chain().unwrap();
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Ok, &map);
    assert_eq!(
        ended.result,
        Err(ReleaseError::Unfinished { outstanding: 1 })
    );
    assert_eq!(ended.bio.status(), BioStatus::IoError);
    release_and_check(&map, &tracker, ended.bio);
    // The completion was left as it was: the child's report finishes it.
    assert!(completion.is_in_flight());
    assert_eq!(
        completion.child_complete(child, BioStatus::Ok, &map),
        Ok(Ending::Finished(BioStatus::Ok))
    );
    assert_eq!(map.warnings(), 0);
}

#[test]
fn a_completion_never_started_ends_the_bio_with_an_error() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Ok, &map);
    assert_eq!(ended.result, Err(ReleaseError::NotStarted));
    assert_eq!(ended.bio.status(), BioStatus::IoError);
    assert!(!completion.is_in_flight());
    assert_eq!(map.warnings(), 0);
    release_and_check(&map, &tracker, ended.bio);
}

#[test]
fn a_completion_already_reported_ends_the_bio_with_an_error_and_warns() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    completion.start().unwrap();
    assert_eq!(
        completion.complete(BioStatus::Ok, &map),
        Ok(Ending::Finished(BioStatus::Ok))
    );
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Ok, &map);
    assert_eq!(ended.result, Err(ReleaseError::DoubleCompletion));
    assert_eq!(ended.bio.status(), BioStatus::IoError);
    assert_eq!(map.warnings(), 1);
    assert_eq!(
        map.warning_log().last(),
        Some(AnyWarning::Release(ReleaseWarning::DoubleCompletion))
    );
    release_and_check(&map, &tracker, ended.bio);
}

#[test]
fn a_corrupt_status_word_ends_the_bio_with_an_error_and_warns() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let mut table = Table::new();
    let completion = Completion::new();
    completion.start().unwrap();
    let raw = 0xEE;
    assert_eq!(
        BioStatus::from_raw(raw),
        None,
        "the test needs an invalid word"
    );
    completion.corrupt_status(raw);
    let ended = in_flight(&tracker, &mut table).end(&completion, BioStatus::Ok, &map);
    // The device said Ok, but the word the completion finished with is
    // unreadable: the bio fails rather than claim success.
    assert_eq!(ended.result, Ok(BioStatus::IoError));
    assert_eq!(ended.bio.status(), BioStatus::IoError);
    assert!(!completion.is_in_flight());
    assert_eq!(map.warnings(), 1);
    assert_eq!(
        map.warning_log().last(),
        Some(AnyWarning::Release(
            ReleaseWarning::CorruptCompletionStatus { raw }
        ))
    );
    release_and_check(&map, &tracker, ended.bio);
}
