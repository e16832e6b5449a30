use super::*;
use crate::AnyWarning;
use gupio_bio::{BioLimits, Sector};
use gupio_pin::{ArrayMemoryMap, FolioOrder, MemoryMap};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

const PAGE: u32 = 4096;

/// 32 small pages from pfn 0: the user's at 0..16, bounce pages from 16.
fn machine() -> ArrayMemoryMap<32, AnyWarning> {
    let map = ArrayMemoryMap::new(Pfn::new(0));
    for pfn in 0..16 {
        map.prepare_folio(Pfn::new(pfn), FolioOrder::SMALL).unwrap();
    }
    map
}

/// Page contents as one word per page; the checksum mixes in the range.
struct Io<'m> {
    map: &'m ArrayMemoryMap<32, AnyWarning>,
    next: Cell<usize>,
    limit: usize,
    words: RefCell<HashMap<Pfn, u64>>,
}

impl<'m> Io<'m> {
    fn new(map: &'m ArrayMemoryMap<32, AnyWarning>, limit: usize) -> Self {
        Self {
            map,
            next: Cell::new(16),
            limit,
            words: RefCell::new(HashMap::new()),
        }
    }

    fn set(&self, pfn: usize, word: u64) {
        self.words.borrow_mut().insert(Pfn::new(pfn), word);
    }

    fn get(&self, pfn: Pfn) -> u64 {
        self.words.borrow().get(&pfn).copied().unwrap_or(0)
    }
}

impl StableIo for Io<'_> {
    type Error = &'static str;

    fn alloc_bounce_page(&self) -> Result<Pfn, &'static str> {
        let next = self.next.get();
        if next >= self.limit {
            return Err("no page");
        }
        self.next.set(next + 1);
        self.map
            .prepare_folio(Pfn::new(next), FolioOrder::SMALL)
            .map_err(|_| "bad page")?;
        Ok(Pfn::new(next))
    }

    fn copy_page(&self, from: Pfn, to: Pfn, _offset: u32, _len: u32) {
        let word = self.get(from);
        self.words.borrow_mut().insert(to, word);
    }

    fn checksum(&self, pfn: Pfn, offset: u32, len: u32) -> u64 {
        self.get(pfn) ^ (u64::from(offset) << 32) ^ u64::from(len)
    }
}

fn refcount(map: &ArrayMemoryMap<32, AnyWarning>, pfn: usize) -> u32 {
    map.counters(Pfn::new(pfn)).unwrap().refcount()
}

fn pinned(map: &ArrayMemoryMap<32, AnyWarning>, pfn: usize) -> bool {
    gupio_pin::maybe_dma_pinned(map, Pfn::new(pfn)).unwrap()
}

type Table = heapless::Vec<gupio_bio::BioVec, 8>;

fn write_bio(sector: u64) -> Bio<Table> {
    Bio::new(
        Table::new(),
        BioOp::Write,
        Sector(sector),
        BioLimits::default(),
    )
}

/// A write of user pages 0, 2 and 4 (whole) and 512 bytes of page 6, pinned.
fn user_write(map: &ArrayMemoryMap<32, AnyWarning>) -> Bio<Table> {
    let tracker = Tracker::new(map);
    let mut bio = write_bio(8);
    for pfn in [0, 2, 4] {
        tracker.pin_page(Pfn::new(pfn)).unwrap();
        let _ = bio
            .add_page(Pfn::new(pfn), PAGE, 0, Origin::Pinned)
            .unwrap();
    }
    tracker.pin_page(Pfn::new(6)).unwrap();
    let _ = bio.add_page(Pfn::new(6), 512, 0, Origin::Pinned).unwrap();
    bio
}

#[test]
fn bounce_copies_every_piece_and_unpins_the_user_pages_at_once() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let io = Io::new(&map, 32);
    for (pfn, word) in [(0, 10), (2, 12), (4, 14), (6, 16)] {
        io.set(pfn, word);
    }
    let bio = user_write(&map);
    let mut errors = Vec::new();
    let bounced = bounce_bio(&tracker, &io, bio, write_bio(8), &mut |e| errors.push(e))
        .map_err(|(_, e)| e)
        .unwrap();
    assert!(errors.is_empty());
    assert_eq!(bounced.pages_copied, 4);
    assert_eq!(bounced.released.unpinned, 4);
    for pfn in [0, 2, 4, 6] {
        assert!(!pinned(&map, pfn), "user page {pfn} unpinned at submission");
        assert_eq!(refcount(&map, pfn), 1);
    }
    let pieces: Vec<_> = bounced
        .bio
        .pages()
        .map(|p| (p.page().unwrap(), p.origin(), p.len()))
        .collect();
    let copies: Vec<_> = pieces.iter().map(|p| p.0).collect();
    assert_eq!(
        copies.iter().map(|&pfn| io.get(pfn)).collect::<Vec<_>>(),
        [10, 12, 14, 16],
        "each copy holds its page's bytes"
    );
    assert!(pieces.iter().all(|p| p.1 == Some(Origin::Referenced)));
    assert_eq!(pieces.last().unwrap().2, 512);
    assert_eq!(bounced.bio.size(), 3 * PAGE + 512);
    // The completion puts the copies: their allocation reference goes.
    let released = release_pages(&tracker, &bounced.bio, false).unwrap();
    assert_eq!(released.put, 4);
    for copy in copies {
        assert_eq!(map.counters(copy).unwrap().refcount(), 0, "copy freed");
    }
}

#[test]
fn bounce_that_runs_out_of_pages_frees_its_copies_and_hands_the_pins_back() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let io = Io::new(&map, 18); // two bounce pages for four pieces
    let bio = user_write(&map);
    let (bio, error) = bounce_bio(&tracker, &io, bio, write_bio(8), &mut |_| {}).unwrap_err();
    assert_eq!(error, StableError::Alloc("no page"));
    for pfn in [16, 17] {
        assert_eq!(refcount(&map, pfn), 0, "copy {pfn} released");
    }
    for pfn in [0, 2, 4, 6] {
        assert!(pinned(&map, pfn), "the caller still holds page {pfn}");
    }
    assert_eq!(release_pages(&tracker, &bio, false).unwrap().unpinned, 4);
}

#[test]
fn bounce_refuses_a_read_and_a_bounce_bio_it_cannot_fill() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let io = Io::new(&map, 32);
    let mut read = Bio::new(Table::new(), BioOp::Read, Sector(0), BioLimits::default());
    let _ = read
        .add_page(Pfn::new(1), PAGE, 0, Origin::Borrowed)
        .unwrap();
    let (_, error) = bounce_bio(&tracker, &io, read, write_bio(0), &mut |_| {}).unwrap_err();
    assert_eq!(error, StableError::NotAWrite);
    let bio = user_write(&map);
    let (bio, error) = bounce_bio(&tracker, &io, bio, write_bio(9), &mut |_| {}).unwrap_err();
    assert_eq!(error, StableError::BadBounceBio, "another sector");
    let mut full = write_bio(8);
    let _ = full
        .add_page(Pfn::new(9), PAGE, 0, Origin::Borrowed)
        .unwrap();
    let (bio, error) = bounce_bio(&tracker, &io, bio, full, &mut |_| {}).unwrap_err();
    assert_eq!(error, StableError::BadBounceBio, "not empty");
    assert_eq!(io.next.get(), 16, "nothing allocated");
    assert_eq!(release_pages(&tracker, &bio, false).unwrap().unpinned, 4);
}

#[test]
fn verify_reports_exactly_the_pieces_that_changed_with_their_offsets() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let io = Io::new(&map, 32);
    let bio = user_write(&map);
    let mut sums = Vec::new();
    assert_eq!(for_each_checksum(&io, &bio, |_, sum| sums.push(sum)), Ok(4));
    io.set(2, 99);
    io.set(6, 98);
    let mut changed = Vec::new();
    assert_eq!(verify_pages(&io, &bio, &sums, |m| changed.push(m)), Ok(2));
    assert_eq!(
        changed,
        [
            Mismatch {
                index: 1,
                page: Pfn::new(2),
                offset: 0,
                len: PAGE,
                byte_offset: 4096
            },
            Mismatch {
                index: 3,
                page: Pfn::new(6),
                offset: 0,
                len: 512,
                byte_offset: 3 * 4096
            },
        ]
    );
    let mut calls = 0;
    assert_eq!(
        verify_pages(&io, &bio, &sums[..3], |_| calls += 1),
        Err(StableError::ChecksumCount {
            pieces: 4,
            checksums: 3
        })
    );
    assert_eq!(calls, 0);
    let _ = release_pages(&tracker, &bio, false).unwrap();
}

#[test]
fn reissue_of_a_changed_piece_writes_a_copy_of_its_current_bytes() {
    let map = machine();
    let tracker = Tracker::new(&map);
    let io = Io::new(&map, 32);
    io.set(4, 7);
    let mut reissue = write_bio(8 + 16);
    let copy = bounce_piece(&tracker, &io, &mut reissue, Pfn::new(4), 0, PAGE).unwrap();
    io.set(4, 8); // the user goes on writing: the copy does not change
    assert_eq!(io.get(copy), 7);
    assert_eq!(reissue.bvecs()[0].origin(), Some(Origin::Referenced));
    assert_eq!(release_pages(&tracker, &reissue, false).unwrap().put, 1);
}

#[test]
fn window_opens_once_closes_once_and_answers_faults_by_choice() {
    let window = ProtectWindow::new();
    assert_eq!(
        window.on_write_fault(FaultChoice::CopyOnWrite),
        FaultResolution::NotProtected
    );
    assert_eq!(
        window.close::<()>(),
        Err(StableError::WindowState { open: false })
    );
    window.open::<()>().unwrap();
    assert_eq!(
        window.open::<()>(),
        Err(StableError::WindowState { open: true })
    );
    assert_eq!(
        window.on_write_fault(FaultChoice::Wait),
        FaultResolution::Wait
    );
    assert_eq!(
        window.on_write_fault(FaultChoice::CopyOnWrite),
        FaultResolution::CopyOnWrite
    );
    window.close::<()>().unwrap();
    assert!(!window.is_open());
    assert_eq!(
        window.on_write_fault(FaultChoice::Wait),
        FaultResolution::NotProtected
    );
}

#[test]
fn constant_policy_gives_zero_copy_to_a_device_that_needs_no_stable_pages() {
    let write = StableWrite {
        bytes: 4096,
        pages: 1,
        stable_required: true,
    };
    for mode in StableMode::ALL {
        assert_eq!(mode.mode(write), mode);
        let relaxed = StableWrite {
            stable_required: false,
            ..write
        };
        assert_eq!(mode.mode(relaxed), StableMode::ZeroCopy);
        assert_eq!(StableMode::from_name(mode.name()), Some(mode));
    }
}

#[test]
fn stats_count_faults_by_resolution_and_reissues_by_range() {
    let stats = StableStats::new();
    stats.count_fault(FaultResolution::Wait);
    stats.count_fault(FaultResolution::CopyOnWrite);
    stats.count_fault(FaultResolution::Wait);
    stats.count_reissue(3);
    stats.count_write(StableMode::Verify, 5);
    stats.count_verified(5);
    let counts = stats.counts();
    assert_eq!(
        (
            counts.faults_taken,
            counts.faults_waited,
            counts.faults_copied
        ),
        (3, 2, 1)
    );
    assert_eq!((counts.reissues, counts.pages_reissued), (1, 3));
    assert_eq!(counts.writes_in(StableMode::Verify), 1);
    assert_eq!(counts.pages_verified, 5);
}

#[test]
fn a_mode_is_named_as_the_demo_spells_it() {
    assert_eq!(StableMode::WriteProtect.name(), "write-protect");
    assert_eq!(StableMode::ZeroCopy.name(), "zero-copy");
}

#[test]
fn a_write_whose_pages_only_it_pins_is_not_pinned_elsewhere() {
    let map = machine();
    let bio = user_write(&map);
    let tracker = Tracker::new(&map);
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(false));
    // A plain reference (the page cache's, a mapping's) is no pin.
    tracker.get_page(Pfn::new(2)).unwrap();
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(false));
    tracker.put_page(Pfn::new(2)).unwrap();
    // Another pinner of one page (a direct-I/O read into the buffer).
    tracker.pin_page(Pfn::new(6)).unwrap();
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(true));
    tracker.unpin_page(Pfn::new(6)).unwrap();
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(false));
    release_pages(&tracker, &bio, false).unwrap();
}

#[test]
fn pinned_elsewhere_counts_a_large_folios_pins_per_page_and_skips_borrowed_pages() {
    let map = ArrayMemoryMap::<8, AnyWarning>::new(Pfn::new(0));
    map.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap())
        .unwrap();
    map.prepare_folio(Pfn::new(4), FolioOrder::SMALL).unwrap();
    let tracker = Tracker::new(&map);
    // Pages 1 and 2 of the folio, in one bvec: two pins of the bio's own.
    let range = gupio_pin::PageRange::try_new(Pfn::new(1), 2).unwrap();
    tracker.pin_range(range).unwrap();
    let mut bio = write_bio(0);
    let folio = gupio_pfn::Folio::new(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
    let _ = bio
        .add_folio(folio, 2 * PAGE, PAGE, Origin::Pinned)
        .unwrap();
    // A borrowed kernel page: its pins are not the bio's business.
    tracker.pin_page(Pfn::new(4)).unwrap();
    let _ = bio
        .add_page(Pfn::new(4), PAGE, 0, Origin::Borrowed)
        .unwrap();
    assert_eq!(bio.vcnt(), 2);
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(false));
    // A third page of the folio pinned by someone else.
    tracker.pin_page(Pfn::new(3)).unwrap();
    assert_eq!(pinned_elsewhere(&tracker, &bio), Ok(true));
    tracker.unpin_page(Pfn::new(3)).unwrap();
    tracker.unpin_page(Pfn::new(4)).unwrap();
    release_pages(&tracker, &bio, false).unwrap();
    assert_eq!(map.warnings(), 0);
}

#[test]
fn stats_count_writes_bounced_instead_of_write_protected() {
    let stats = StableStats::new();
    stats.count_protect_bounced(1);
    stats.count_write(StableMode::Bounce, 2);
    let counts = stats.counts();
    assert_eq!(counts.protect_bounced, 1);
    assert_eq!(counts.writes_in(StableMode::Bounce), 1);
    assert_eq!(counts.writes_in(StableMode::WriteProtect), 0);
}
