use super::*;
use gupio_bio::{Added, Bio, BioLimits, BioOp, BioStatus, Sector};
use gupio_pfn::{Origin, PageGeometry, Pfn};
use gupio_pin::{
    AddressSpace, ArrayMemoryMap, FaultKind, FolioOrder, GupFlags, Mapping, MappingFlags,
    MemoryMap, PageFlags, PinError, Tracker, UserAddr, GUP_PIN_COUNTING_BIAS,
};

const PAGE: u32 = 4096;

/// A machine of 64 small pages from pfn 0, plus an order-3 folio at 64..72.
fn machine() -> ArrayMemoryMap<72, AnyWarning> {
    let map = ArrayMemoryMap::new(Pfn::new(0));
    for pfn in 0..64 {
        map.prepare_folio(Pfn::new(pfn), FolioOrder::SMALL).unwrap();
    }
    map.prepare_folio(Pfn::new(64), FolioOrder::try_new(3).unwrap())
        .unwrap();
    map
}

fn refcount(map: &ArrayMemoryMap<72, AnyWarning>, pfn: usize) -> u32 {
    map.counters(Pfn::new(pfn)).unwrap().refcount()
}

fn pincount(map: &ArrayMemoryMap<72, AnyWarning>, pfn: usize) -> u32 {
    map.counters(Pfn::new(pfn)).unwrap().pincount()
}

fn dirty(map: &ArrayMemoryMap<72, AnyWarning>, pfn: usize) -> bool {
    map.counters(Pfn::new(pfn))
        .unwrap()
        .flags()
        .contains(PageFlags::DIRTY)
}

/// Every page back at its allocation reference, no pins, no warnings.
fn assert_baseline(map: &ArrayMemoryMap<72, AnyWarning>) {
    for pfn in 0..64 {
        assert_eq!(refcount(map, pfn), 1, "pfn {pfn}");
    }
    assert_eq!(refcount(map, 64), 1, "folio head");
    assert_eq!(pincount(map, 64), 0, "folio pins");
    assert_eq!(map.stats().acquired(), map.stats().released());
    assert_eq!(map.warnings(), 0);
}

fn new_bio(
    table: &mut heapless::Vec<gupio_bio::BioVec, 16>,
    op: BioOp,
) -> Bio<&mut heapless::Vec<gupio_bio::BioVec, 16>> {
    Bio::new(table, op, Sector(0), BioLimits::default())
}

struct Quiet;
impl Warn for Quiet {
    fn warn(&self, warning: ReleaseWarning) {
        panic!("unexpected warning: {warning}");
    }
}

/// A map of no pages, whose log records the warnings a completion reports.
fn warning_log() -> ArrayMemoryMap<0, AnyWarning> {
    ArrayMemoryMap::new(Pfn::new(0))
}

const DOUBLE: AnyWarning = AnyWarning::Release(ReleaseWarning::DoubleCompletion);

#[test]
fn release_unpins_puts_and_leaves_borrowed_pages_by_origin() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_page(Pfn::new(1)).unwrap();
    t.get_page(Pfn::new(3)).unwrap();
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    let _ = bio.add_page(Pfn::new(1), PAGE, 0, Origin::Pinned).unwrap();
    let _ = bio
        .add_page(Pfn::new(3), PAGE, 0, Origin::Referenced)
        .unwrap();
    let _ = bio
        .add_page(Pfn::new(5), PAGE, 0, Origin::Borrowed)
        .unwrap();
    assert_eq!(refcount(&map, 1), 1 + GUP_PIN_COUNTING_BIAS);
    let stats = release_pages(&t, &bio, false).unwrap();
    assert_eq!(
        stats,
        ReleaseStats {
            unpinned: 1,
            zero_page: 0,
            put: 1,
            borrowed: 1,
            bvecs: 3
        }
    );
    assert!(!dirty(&map, 1) && !dirty(&map, 3) && !dirty(&map, 5));
    assert_baseline(&map);
}

#[test]
fn release_with_mark_dirty_dirties_pinned_and_referenced_pages_only() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_range(gupio_pin::PageRange::new(Pfn::new(10), 3))
        .unwrap();
    t.get_page(Pfn::new(20)).unwrap();
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    for pfn in 10..13 {
        let _ = bio
            .add_page(Pfn::new(pfn), PAGE, 0, Origin::Pinned)
            .unwrap();
    }
    let _ = bio
        .add_page(Pfn::new(20), PAGE, 0, Origin::Referenced)
        .unwrap();
    let _ = bio
        .add_page(Pfn::new(30), PAGE, 0, Origin::Borrowed)
        .unwrap();
    assert_eq!(bio.vcnt(), 3, "three contiguous pinned pages are one bvec");
    release_pages(&t, &bio, true).unwrap();
    for pfn in [10, 11, 12, 20] {
        assert!(dirty(&map, pfn), "pfn {pfn}");
    }
    assert!(!dirty(&map, 30), "a borrowed page is its owner's to dirty");
    assert_baseline(&map);
}

#[test]
fn large_folio_bvec_releases_every_page_pin_on_the_head() {
    let map = machine();
    let t = Tracker::new(&map);
    // 5 pages of the order-3 folio at 64, from its second page.
    let range = gupio_pin::PageRange::new(Pfn::new(65), 5);
    t.pin_range(range).unwrap();
    assert_eq!(pincount(&map, 64), 5);
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let folio =
        gupio_bio::Folio::new(Pfn::new(64), gupio_bio::FolioOrder::try_new(3).unwrap()).unwrap();
    let _ = bio
        .add_folio(folio, 5 * PAGE, PAGE, Origin::Pinned)
        .unwrap();
    assert_eq!(bio.vcnt(), 1);
    let stats = release_pages(&t, &bio, true).unwrap();
    assert_eq!(stats.unpinned, 5);
    assert_eq!(stats.bvecs, 1);
    assert!(dirty(&map, 64), "the folio is dirtied once, on its head");
    assert_baseline(&map);
}

#[test]
fn a_bio_with_nothing_to_release_never_touches_the_memory_map() {
    let map = machine();
    let t = Tracker::new(&map);
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    // Borrowed pages far outside the map: a lookup would fail.
    let _ = bio
        .add_page(Pfn::new(1 << 24), PAGE, 0, Origin::Borrowed)
        .unwrap();
    assert!(!bio.needs_release());
    assert_eq!(release_pages(&t, &bio, true), Ok(ReleaseStats::default()));
    assert_eq!(set_pages_dirty(&t, &bio), Ok(()));
    assert_eq!(check_pages_dirty(&t, &bio), Ok(true));
    assert_baseline(&map);
}

#[test]
fn release_continues_past_a_failing_bvec_and_reports_the_first_error() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_page(Pfn::new(2)).unwrap();
    t.pin_page(Pfn::new(8)).unwrap();
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    let _ = bio.add_page(Pfn::new(2), PAGE, 0, Origin::Pinned).unwrap();
    let outside = Pfn::new(500);
    let _ = bio.add_page(outside, PAGE, 0, Origin::Pinned).unwrap();
    let _ = bio.add_page(Pfn::new(8), PAGE, 0, Origin::Pinned).unwrap();
    assert_eq!(
        release_pages(&t, &bio, false),
        Err(ReleaseError::Pin {
            index: 1,
            error: PinError::NotInMemoryMap { pfn: outside }
        })
    );
    // Both good pages were still released.
    assert_eq!(refcount(&map, 2), 1);
    assert_eq!(refcount(&map, 8), 1);
}

#[test]
fn unpinning_a_page_the_bio_never_pinned_is_warned_and_never_wraps() {
    let map = machine();
    let t = Tracker::new(&map);
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    let _ = bio.add_page(Pfn::new(4), PAGE, 0, Origin::Pinned).unwrap();
    let result = release_pages(&t, &bio, false);
    assert!(
        matches!(
            result,
            Err(ReleaseError::Pin {
                index: 0,
                error: PinError::NotPinned { .. }
            })
        ),
        "{result:?}"
    );
    assert!(
        matches!(
            map.warning_log().collect::<Vec<_>>()[..],
            [AnyWarning::Pin(gupio_pin::Warning::UnpinWithoutPin {
                pages: 1,
                ..
            })]
        ),
        "{:?}",
        map.warning_log().collect::<Vec<_>>()
    );
    assert_eq!(refcount(&map, 4), 1, "the allocation reference is intact");
    assert_eq!(map.folios_freed(), 0, "nothing was freed early");
}

#[test]
fn two_bios_sharing_a_pinned_page_free_it_once_after_the_last_reference() {
    let map = machine();
    let t = Tracker::new(&map);
    let page = Pfn::new(6);
    t.pin_page(page).unwrap();
    t.pin_page(page).unwrap();
    let (mut a, mut b) = (heapless::Vec::new(), heapless::Vec::new());
    let mut first = new_bio(&mut a, BioOp::Read);
    let mut second = new_bio(&mut b, BioOp::Read);
    let _ = first.add_page(page, 2048, 0, Origin::Pinned).unwrap();
    let _ = second.add_page(page, 2048, 2048, Origin::Pinned).unwrap();
    release_pages(&t, &first, true).unwrap();
    assert!(
        t.maybe_dma_pinned(page).unwrap(),
        "the second bio still pins it"
    );
    release_pages(&t, &second, true).unwrap();
    assert!(!t.maybe_dma_pinned(page).unwrap());
    assert_eq!(map.folios_freed(), 0);
    t.put_page(page).unwrap(); // the allocation reference
    assert_eq!(map.folios_freed(), 1);
}

#[test]
fn dio_read_released_at_once_when_every_page_stayed_dirty() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_range(gupio_pin::PageRange::new(Pfn::new(40), 2))
        .unwrap();
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let _ = bio.add_page(Pfn::new(40), PAGE, 0, Origin::Pinned).unwrap();
    let _ = bio.add_page(Pfn::new(41), PAGE, 0, Origin::Pinned).unwrap();
    set_pages_dirty(&t, &bio).unwrap();
    assert!(dirty(&map, 40) && dirty(&map, 41));
    let deferred: DeferredList<_, 2> = DeferredList::new();
    let done = SubmittedBio::submit(bio).unwrap().complete(BioStatus::Ok);
    match done.complete_dio_read(&t, &deferred) {
        Ok(DioRead::Released(released)) => assert_eq!(released.result.unwrap().unpinned, 2),
        other => panic!("expected an immediate release, got {other:?}"),
    }
    assert!(deferred.is_empty());
    assert_baseline(&map);
}

#[test]
fn dio_read_with_a_page_cleaned_meanwhile_is_deferred_then_redirtied() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_range(gupio_pin::PageRange::new(Pfn::new(40), 2))
        .unwrap();
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let _ = bio.add_page(Pfn::new(40), PAGE, 0, Origin::Pinned).unwrap();
    let _ = bio.add_page(Pfn::new(41), PAGE, 0, Origin::Pinned).unwrap();
    set_pages_dirty(&t, &bio).unwrap();
    let submitted = SubmittedBio::submit(bio).unwrap();
    // Writeback cleans page 41 while the device is writing into it.
    map.counters(Pfn::new(41))
        .unwrap()
        .clear_flags(PageFlags::DIRTY);
    let done = submitted.complete(BioStatus::Ok);
    assert_eq!(check_pages_dirty(&t, done.bio()), Ok(false));
    let deferred: DeferredList<_, 2> = DeferredList::new();
    assert!(matches!(
        done.complete_dio_read(&t, &deferred),
        Ok(DioRead::Deferred)
    ));
    assert!(
        t.maybe_dma_pinned(Pfn::new(41)).unwrap(),
        "not released yet"
    );
    let mut results = Vec::new();
    assert_eq!(
        release_deferred(&deferred, &t, |r| results.push(r.result)),
        1
    );
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].unwrap().unpinned, 2);
    assert!(dirty(&map, 41), "re-dirtied before release");
    assert_baseline(&map);
}

#[test]
fn a_full_deferred_list_hands_the_bio_back_and_nothing_leaks() {
    let map = machine();
    let t = Tracker::new(&map);
    t.pin_range(gupio_pin::PageRange::new(Pfn::new(50), 2))
        .unwrap();
    let (mut a, mut b) = (heapless::Vec::new(), heapless::Vec::new());
    let deferred: DeferredList<_, 1> = DeferredList::new();
    let mut completed = Vec::new();
    for (pfn, table) in [(50, &mut a), (51, &mut b)] {
        let mut bio = new_bio(table, BioOp::Read);
        let _ = bio
            .add_page(Pfn::new(pfn), PAGE, 0, Origin::Pinned)
            .unwrap();
        completed.push(SubmittedBio::submit(bio).unwrap().complete(BioStatus::Ok));
    }
    let second = completed.pop().unwrap();
    let first = completed.pop().unwrap();
    // Never dirtied, so both must be deferred; the list has room for one.
    assert!(matches!(
        first.complete_dio_read(&t, &deferred),
        Ok(DioRead::Deferred)
    ));
    let full = match second.complete_dio_read(&t, &deferred) {
        Err(full) => full,
        Ok(other) => panic!("expected DeferredListFull, got {other:?}"),
    };
    assert_eq!(full.error(), ReleaseError::DeferredListFull { capacity: 1 });
    let released = full.into_inner().release(&t, true);
    assert_eq!(released.result.unwrap().unpinned, 1);
    assert_eq!(
        release_deferred(&deferred, &t, |r| assert!(r.result.is_ok())),
        1
    );
    assert!(dirty(&map, 50) && dirty(&map, 51));
    assert_baseline(&map);
}

#[test]
fn submit_refuses_an_invalid_bio_and_hands_it_back() {
    let mut table = heapless::Vec::new();
    let bio = new_bio(&mut table, BioOp::Read);
    let (bio, error) = SubmittedBio::submit(bio).unwrap_err();
    assert!(
        matches!(error, gupio_bio::BioError::ZeroLength),
        "{error:?}"
    );
    assert_eq!(bio.vcnt(), 0);
    assert_eq!(ReleaseError::from(error), ReleaseError::Invalid { error });
}

#[test]
fn completion_runs_end_io_once_with_the_first_error() {
    let c = Completion::new();
    c.start().unwrap();
    let a = c.chain().unwrap();
    let b = c.chain().unwrap();
    assert_eq!(c.outstanding(), 3);
    assert_eq!(
        c.child_complete(a, BioStatus::Medium, &Quiet),
        Ok(Ending::Pending)
    );
    assert_eq!(c.complete(BioStatus::Ok, &Quiet), Ok(Ending::Pending));
    assert_eq!(
        c.child_complete(b, BioStatus::Timeout, &Quiet),
        Ok(Ending::Finished(BioStatus::Medium)),
        "the first error is kept"
    );
    assert!(!c.is_in_flight());
    assert_eq!(c.outstanding(), 0);
}

#[test]
fn a_second_completion_is_warned_and_changes_nothing() {
    let warn = warning_log();
    let c = Completion::new();
    c.start().unwrap();
    let child = c.chain().unwrap();
    assert_eq!(c.complete(BioStatus::Ok, &warn), Ok(Ending::Pending));
    assert_eq!(
        c.complete(BioStatus::IoError, &warn),
        Err(ReleaseError::DoubleCompletion)
    );
    assert_eq!(warn.warning_log().collect::<Vec<_>>(), [DOUBLE]);
    assert_eq!(c.outstanding(), 1, "the child is still outstanding");
    assert_eq!(
        c.child_complete(child, BioStatus::Ok, &warn),
        Ok(Ending::Finished(BioStatus::Ok)),
        "the refused completion's error was not recorded"
    );
    assert_eq!(
        c.complete(BioStatus::Ok, &warn),
        Err(ReleaseError::DoubleCompletion)
    );
    assert_eq!(warn.warning_log().collect::<Vec<_>>(), [DOUBLE, DOUBLE]);
}

#[test]
fn a_stale_child_token_after_finish_is_a_double_completion() {
    let warn = warning_log();
    let c = Completion::new();
    c.start().unwrap();
    let other = Completion::new();
    other.start().unwrap();
    let stray = other.chain().unwrap();
    assert_eq!(
        c.complete(BioStatus::Ok, &warn),
        Ok(Ending::Finished(BioStatus::Ok))
    );
    // A token from another completion reported here finds nothing outstanding.
    assert_eq!(
        c.child_complete(stray, BioStatus::Ok, &warn),
        Err(ReleaseError::DoubleCompletion)
    );
    assert_eq!(warn.warning_log().collect::<Vec<_>>(), [DOUBLE]);
}

#[test]
fn completion_state_machine_refuses_out_of_order_calls() {
    let c = Completion::new();
    assert_eq!(
        c.complete(BioStatus::Ok, &Quiet),
        Err(ReleaseError::NotStarted)
    );
    assert!(matches!(c.chain(), Err(ReleaseError::ChainNotInFlight)));
    c.start().unwrap();
    assert_eq!(c.start(), Err(ReleaseError::AlreadyStarted));
    assert_eq!(
        c.complete(BioStatus::Again, &Quiet),
        Ok(Ending::Finished(BioStatus::Again))
    );
    assert!(matches!(c.chain(), Err(ReleaseError::ChainNotInFlight)));
    // A finished completion can be reused, with a fresh status.
    c.start().unwrap();
    assert_eq!(
        c.complete(BioStatus::Ok, &Quiet),
        Ok(Ending::Finished(BioStatus::Ok))
    );
}

#[test]
fn every_status_survives_the_status_word() {
    for status in BioStatus::ALL {
        let c = Completion::new();
        c.start().unwrap();
        assert_eq!(c.complete(status, &Quiet), Ok(Ending::Finished(status)));
    }
}

/// User address N * 4096 maps pfn N, writable, for pages below `limit`.
struct Identity {
    limit: usize,
}

impl AddressSpace for Identity {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }
    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let pfn = addr.get() >> 12;
        if pfn >= self.limit {
            return Err(FaultKind::Unmapped);
        }
        Ok(Some(Mapping::new(Pfn::new(pfn), MappingFlags::WRITABLE)))
    }
    fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> {
        Err(FaultKind::Unmapped)
    }
}

#[test]
fn user_range_is_added_with_one_pin_per_page() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 64 };
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    // Two sub-page ranges in the same page: the second merges and its pin is dropped.
    let first = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(0x5000),
        1024,
        GupFlags::WRITE,
    );
    assert_eq!(first, Ok(1024));
    let second = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(0x5400),
        3072 + 4096,
        GupFlags::WRITE,
    );
    assert_eq!(second, Ok(7168));
    assert_eq!(bio.vcnt(), 1);
    assert_eq!(
        refcount(&map, 5),
        1 + GUP_PIN_COUNTING_BIAS,
        "exactly one pin on page 5"
    );
    assert_eq!(refcount(&map, 6), 1 + GUP_PIN_COUNTING_BIAS);
    release_pages(&t, &bio, true).unwrap();
    assert_baseline(&map);
}

#[test]
fn user_range_that_overflows_the_bio_returns_a_short_count_and_drops_extra_pins() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 64 };
    let mut table = heapless::Vec::<gupio_bio::BioVec, 16>::new();
    let limits = BioLimits::default().with_max_vecs(2).unwrap();
    let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), limits);
    // Pages 0, 2, 4, ... are not contiguous with each other, so each is a bvec:
    // add page 10 and page 20 and then try a 3-page range at 30.
    assert_eq!(
        add_user_range(
            &t,
            &space,
            &mut bio,
            UserAddr::new(10 << 12),
            4096,
            GupFlags::WRITE
        ),
        Ok(4096)
    );
    assert_eq!(
        add_user_range(
            &t,
            &space,
            &mut bio,
            UserAddr::new(20 << 12),
            4096,
            GupFlags::WRITE
        ),
        Ok(4096)
    );
    let full = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(30 << 12),
        3 * 4096,
        GupFlags::WRITE,
    );
    assert!(matches!(full, Err(ReleaseError::Build { .. })), "{full:?}");
    for pfn in 30..33 {
        assert_eq!(refcount(&map, pfn), 1, "pfn {pfn}: pin dropped");
    }
    // Page 21 merges with the bvec at 20, then 22 merges too: a short count
    // would only come from a limit, so the whole range fits here.
    assert_eq!(
        add_user_range(
            &t,
            &space,
            &mut bio,
            UserAddr::new(21 << 12),
            2 * 4096,
            GupFlags::WRITE
        ),
        Ok(8192)
    );
    release_pages(&t, &bio, true).unwrap();
    assert_baseline(&map);
}

#[test]
fn user_range_pins_no_more_pages_than_the_bio_has_room_for() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 64 };
    let mut table = heapless::Vec::<gupio_bio::BioVec, 16>::new();
    // One page per bvec, four bvecs: ten pages cannot all fit.
    let limits = BioLimits::default()
        .with_max_vecs(4)
        .unwrap()
        .with_max_segment_size(PAGE)
        .unwrap();
    let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), limits);
    let added = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(10 << 12),
        10 * 4096,
        GupFlags::empty(),
    );
    assert_eq!(added, Ok(4 * 4096));
    // Four pins for the four free bvecs, then one page to see whether the
    // full bio merges it (it does not): not the ten of one batch.
    assert_eq!(map.stats().acquired(), 5);
    assert_eq!(map.stats().released(), 1);
    for pfn in 14..20 {
        assert_eq!(refcount(&map, pfn), 1, "pfn {pfn}: never kept");
    }
    release_pages(&t, &bio, false).unwrap();
    assert_baseline(&map);
}

#[test]
fn user_range_stops_short_at_a_fault_after_the_first_page() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 62 };
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let added = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(60 << 12),
        4 * 4096,
        GupFlags::WRITE,
    );
    assert_eq!(added, Ok(2 * 4096), "pages 60 and 61 only");
    let mut table2 = heapless::Vec::new();
    let mut bio2 = new_bio(&mut table2, BioOp::Read);
    let first = add_user_range(
        &t,
        &space,
        &mut bio2,
        UserAddr::new(62 << 12),
        4096,
        GupFlags::WRITE,
    );
    assert!(
        matches!(
            first,
            Err(ReleaseError::Extract {
                error: PinError::Fault { .. },
                ..
            })
        ),
        "{first:?}"
    );
    assert_eq!(bio2.vcnt(), 0);
    release_pages(&t, &bio, true).unwrap();
    assert_baseline(&map);
}

#[test]
fn merged_duplicate_reference_is_reported_by_the_builder() {
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    let _ = bio
        .add_page(Pfn::new(9), 512, 0, Origin::Referenced)
        .unwrap();
    assert_eq!(
        bio.add_page(Pfn::new(9), 512, 512, Origin::Referenced),
        Ok(Added::MergedDuplicateRef { pfn: Pfn::new(9) })
    );
}

#[test]
fn errors_name_what_went_wrong() {
    let e = ReleaseError::Pin {
        index: 3,
        error: PinError::NotInMemoryMap {
            pfn: Pfn::new(0x42),
        },
    };
    assert!(
        e.to_string().contains("bvec 3") && e.to_string().contains("0x42"),
        "{e}"
    );
    assert!(ReleaseError::DeferredListFull { capacity: 8 }
        .to_string()
        .contains('8'));
}

#[test]
fn a_folio_run_is_one_bvec_and_one_pin_per_page() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 72 };
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    // Pages 63 (small) and 64..72 (the order-3 folio), 1 KiB into page 63.
    let added = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new((63 << 12) + 1024),
        3072 + 8 * 4096,
        GupFlags::WRITE,
    );
    assert_eq!(added, Ok(3072 + 8 * 4096));
    assert_eq!(bio.vcnt(), 1, "frames 63..72 are contiguous: one bvec");
    assert_eq!(refcount(&map, 63), 1 + GUP_PIN_COUNTING_BIAS);
    assert_eq!((refcount(&map, 64), pincount(&map, 64)), (9, 8));
    assert_eq!(map.stats().acquired(), 9);
    release_pages(&t, &bio, true).unwrap();
    assert!(dirty(&map, 64));
    assert_baseline(&map);
}

#[test]
fn a_folio_run_longer_than_a_segment_is_split_at_page_boundaries() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 72 };
    let mut table = heapless::Vec::<gupio_bio::BioVec, 16>::new();
    let limits = BioLimits::default()
        .with_max_segment_size(3 * PAGE)
        .unwrap();
    let mut bio = Bio::new(&mut table, BioOp::Read, Sector(0), limits);
    let added = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new((64 << 12) + 512),
        8 * 4096 - 512,
        GupFlags::WRITE,
    );
    assert_eq!(added, Ok(8 * 4096 - 512));
    let lens: Vec<_> = bio.bvecs().iter().map(|b| (b.offset(), b.len())).collect();
    assert_eq!(lens, [(512, 3 * PAGE - 512), (0, 3 * PAGE), (0, 2 * PAGE)]);
    assert_eq!(pincount(&map, 64), 8, "one pin per page, none duplicated");
    release_pages(&t, &bio, false).unwrap();
    assert_baseline(&map);
}

#[test]
fn a_bio_that_fills_inside_a_folio_run_keeps_only_the_pins_it_took() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 72 };
    let mut table = heapless::Vec::<gupio_bio::BioVec, 16>::new();
    let limits = BioLimits::default()
        .with_max_vecs(2)
        .unwrap()
        .with_max_segment_size(2 * PAGE)
        .unwrap();
    let mut bio = Bio::new(&mut table, BioOp::Write, Sector(0), limits);
    let added = add_user_range(
        &t,
        &space,
        &mut bio,
        UserAddr::new(64 << 12),
        8 * 4096,
        GupFlags::empty(),
    );
    assert_eq!(added, Ok(4 * 4096), "two bvecs of two pages");
    assert_eq!((refcount(&map, 64), pincount(&map, 64)), (5, 4));
    assert_eq!(map.stats().in_flight(), 4);
    release_pages(&t, &bio, false).unwrap();
    assert_baseline(&map);
}

#[test]
fn add_held_run_hands_back_a_run_it_cannot_take() {
    let map = machine();
    let t = Tracker::new(&map);
    let space = Identity { limit: 72 };
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let run = t
        .pin_user_pages(&space, UserAddr::new(64 << 12), 2, GupFlags::WRITE)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    // One page of bytes leaves the run's second page untouched: refused.
    let refused = add_held_run(&mut bio, run, 0, PAGE).unwrap_err();
    assert!(matches!(
        refused.error,
        gupio_bio::BioError::PastPageRun { .. }
    ));
    assert_eq!(bio.vcnt(), 0);
    assert_eq!(pincount(&map, 64), 2, "the run still holds its pins");
    add_held_run(&mut bio, refused.run, 0, 2 * PAGE).unwrap();
    release_pages(&t, &bio, false).unwrap();
    assert_baseline(&map);
}

#[test]
fn release_and_pin_statistics_agree_that_a_zero_page_pin_is_no_pin() {
    let map = ArrayMemoryMap::<4, AnyWarning>::new(Pfn::new(0)).with_zero_page(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), FolioOrder::SMALL).unwrap();
    map.prepare_folio(Pfn::new(2), FolioOrder::try_new(1).unwrap())
        .unwrap();
    let t = Tracker::new(&map);
    // A user buffer of the zero page (a never-written anonymous page)
    // and two pages of a real folio, pinned as pin_user_pages would.
    t.pin_page(Pfn::new(0)).unwrap();
    t.pin_range(gupio_pin::PageRange::new(Pfn::new(2), 2))
        .unwrap();
    assert_eq!(
        map.stats().acquired(),
        2,
        "the zero page's pin is not counted"
    );
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Read);
    let _ = bio.add_page(Pfn::new(0), PAGE, 0, Origin::Pinned).unwrap();
    for pfn in [2, 3] {
        let _ = bio
            .add_page(Pfn::new(pfn), PAGE, 0, Origin::Pinned)
            .unwrap();
    }
    let stats = release_pages(&t, &bio, false).unwrap();
    assert_eq!(stats.unpinned, map.stats().released());
    assert_eq!((stats.unpinned, stats.zero_page, stats.pages()), (2, 1, 3));
    assert_eq!(map.stats().acquired(), map.stats().released());
    let zero = map.counters(Pfn::new(0)).unwrap();
    assert_eq!(zero.refcount(), 1, "the zero page was never touched");
    assert_eq!(map.warnings(), 0);
}

#[test]
fn a_completion_is_in_flight_from_start_to_finish_and_counts_its_parts() {
    let c = Completion::new();
    assert!(!c.is_in_flight());
    assert_eq!(c.outstanding(), 0);
    c.start().unwrap();
    assert!(c.is_in_flight());
    assert_eq!(c.outstanding(), 1);
    let child = c.chain().unwrap();
    assert_eq!(c.outstanding(), 2);
    assert_eq!(c.complete(BioStatus::Ok, &Quiet), Ok(Ending::Pending));
    assert_eq!(
        c.child_complete(child, BioStatus::Ok, &Quiet),
        Ok(Ending::Finished(BioStatus::Ok))
    );
    assert!(!c.is_in_flight());
}

#[test]
fn a_deferred_list_reports_its_length_and_capacity_and_a_full_push() {
    let list: DeferredList<u8, 1> = DeferredList::new();
    assert_eq!((list.len(), list.is_empty(), list.capacity()), (0, true, 1));
    list.push(1).unwrap();
    assert_eq!((list.len(), list.is_empty()), (1, false));
    let full = list.push(2).unwrap_err();
    assert_eq!(full.error(), ReleaseError::DeferredListFull { capacity: 1 });
    assert_eq!(full.into_inner(), 2);
}

#[test]
fn release_stats_count_every_page_whatever_its_origin() {
    let s = ReleaseStats {
        unpinned: 2,
        zero_page: 1,
        put: 1,
        borrowed: 1,
        bvecs: 4,
    };
    assert_eq!(s.pages(), 5);
    assert_eq!(ReleaseStats::default().pages(), 0);
}

#[test]
fn a_bio_in_flight_and_completed_shows_its_bio_and_status() {
    let mut table = heapless::Vec::new();
    let mut bio = new_bio(&mut table, BioOp::Write);
    let _ = bio.add_page(Pfn::new(1), 512, 0, Origin::Borrowed).unwrap();
    let submitted = SubmittedBio::submit(bio).unwrap();
    assert_eq!(submitted.bio().vcnt(), 1);
    let done = submitted.complete(BioStatus::IoError);
    assert_eq!(done.status(), BioStatus::IoError);
    assert_eq!(done.bio().size(), 512);
}
