//! Every error path a caller can cause, driven from the outside through the
//! simulated machine: each returns its typed error, and afterwards nothing
//! is leaked, pinned or off baseline.

mod common;

use gupio::bio::{BioError, Folio, SectorCount};
use gupio::pfn::{PfnError, TAG_MASK};
use gupio::pin::{FaultKind, PinError, UserAddr, REFCOUNT_MAX};
use gupio::prelude::*;
use gupio::release::ReleaseError;
use gupio_host::{Fault, HostError, Machine, OwnedBvecs};

use common::assert_baseline;

fn bio(op: BioOp, limits: BioLimits) -> Bio<OwnedBvecs> {
    Bio::new(OwnedBvecs::with_capacity(16), op, Sector(0), limits)
}

/// The typed gupio error inside a harness error.
fn core(error: HostError) -> gupio::Error<gupio_host::IoError> {
    match error {
        HostError::Core(error) => error,
        other => panic!("not a gupio error: {other}"),
    }
}

fn folio(head: Pfn, order: u32) -> Folio {
    Folio::new(head, FolioOrder::try_new(order).unwrap()).unwrap()
}

#[test]
fn a_pfn_out_of_range_is_refused_by_the_encoding_the_builder_and_the_tracker() {
    let machine = common::synchronous(32);
    assert_eq!(
        Pfn::try_new(usize::MAX),
        Err(PfnError::PfnOutOfRange { pfn: u64::MAX })
    );
    let too_big = Pfn::MAX.get() + 1;
    assert!(matches!(
        TaggedPfn::try_encode(too_big, Origin::Pinned),
        Err(PfnError::PfnOutOfRange { .. })
    ));
    // A two-page bvec starting at the largest pfn runs out of the range.
    let mut b = bio(BioOp::Write, BioLimits::default());
    let refused = b
        .add_bvec(BioVec::new(Pfn::MAX, Origin::Pinned, 8192, 0))
        .unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::PfnOutOfRange {
            pfn: Pfn::MAX.get(),
            pages: 2
        }
    );
    assert_eq!(refused.rejected().page(), Some(Pfn::MAX), "handed back");
    assert_eq!(b.vcnt(), 0);
    // A frame the machine does not have.
    let outside = Pfn::new(3);
    assert_eq!(
        machine.tracker().pin_page(outside),
        Err(PinError::NotInMemoryMap { pfn: outside })
    );
    assert_baseline(&machine);
}

#[test]
fn a_word_with_an_invalid_tag_is_refused() {
    let machine = common::synchronous(8);
    let word = TAG_MASK | 0x1234;
    assert_eq!(
        TaggedPfn::from_raw(word),
        Err(PfnError::InvalidTag { word })
    );
    assert_eq!(
        Origin::from_tag(0b11),
        Err(PfnError::UnknownOrigin { tag: 0b11 })
    );
    // The sentinel is the one word with both tag bits that is valid.
    assert_eq!(TaggedPfn::from_raw(usize::MAX), Ok(TaggedPfn::NONE));
    let mut b = bio(BioOp::Write, BioLimits::default());
    let refused = b.add_bvec(BioVec::NONE).unwrap_err();
    assert_eq!(refused.error(), BioError::NoPage);
    assert_baseline(&machine);
}

#[test]
fn zero_length_is_refused_and_pins_nothing() {
    let machine = common::synchronous(32);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(1).unwrap();
    let error = machine
        .dio_read(&process, buffer, 0, Sector(0))
        .unwrap_err();
    assert_eq!(core(error), gupio::Error::Bio(BioError::ZeroLength));
    assert_eq!(machine.memory().pin_stats().acquired(), 0);
    let page = machine.memory().alloc_folio(0, true).unwrap();
    let refused = bio(BioOp::Read, BioLimits::default())
        .add_page(page, 0, 0, Origin::Referenced)
        .unwrap_err();
    assert_eq!(refused.error(), BioError::ZeroLength);
    machine.tracker().put_page(page).unwrap();
    assert_baseline(&machine);
}

#[test]
fn an_offset_or_length_past_the_page_run_is_refused_and_the_reference_handed_back() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let page = machine.memory().alloc_folio(0, true).unwrap();
    let mut b = bio(BioOp::Write, BioLimits::default());
    let refused = b.add_page(page, 4096, 512, Origin::Referenced).unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::PastPageRun {
            offset: 512,
            len: 4096,
            run_bytes: 4096
        }
    );
    // The caller still owns the reference the fragment names.
    let (pfn, origin) = refused.rejected().decode().unwrap();
    assert_eq!((pfn, origin), (page, Origin::Referenced));
    tracker
        .release_range(PageRange::single(pfn), origin, false)
        .unwrap();

    let head = machine.memory().alloc_folio(2, true).unwrap();
    let folio = folio(head, 2);
    let refused = b
        .add_folio(folio, 16384, 4096, Origin::Referenced)
        .unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::PastPageRun {
            offset: 4096,
            len: 16384,
            run_bytes: 16384
        }
    );
    tracker.put_page(head).unwrap();
    assert_eq!(b.vcnt(), 0);
    assert_baseline(&machine);
}

#[test]
fn a_full_bio_names_the_limit_and_hands_back_the_pins_it_did_not_take() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(4).unwrap();
    // Fault the pages in backwards: their frames descend, so no two merge.
    for page in (0..4).rev() {
        process
            .store(UserAddr::new(buffer.get() + page * 4096), &[page as u64])
            .unwrap();
    }
    let limits = BioLimits::default().with_max_vecs(2).unwrap();
    let mut b = Bio::new(
        OwnedBvecs::with_capacity(16),
        BioOp::Read,
        Sector(0),
        limits,
    );
    let guard = process.gup();
    let added = add_user_range(&tracker, &guard, &mut b, buffer, 4 * 4096, GupFlags::WRITE);
    drop(guard);
    assert_eq!(added, Ok(2 * 4096), "two vecs fit; the rest is a short I/O");
    // Every pin the bio did not take was handed back.
    let stats = machine.memory().pin_stats();
    assert_eq!(stats.in_flight(), 2);
    let (third, _) = process.pte(UserAddr::new(buffer.get() + 2 * 4096)).unwrap();
    let refused = b.add_page(third, 4096, 0, Origin::Pinned).unwrap_err();
    assert_eq!(refused.error(), BioError::TooManyVecs { max_vecs: 2 });
    // The storage's own capacity is a limit too.
    let mut tiny = Bio::new(
        OwnedBvecs::with_capacity(1),
        BioOp::Write,
        Sector(0),
        BioLimits::default(),
    );
    let _ = tiny.add_page(third, 512, 0, Origin::Borrowed).unwrap();
    let refused = tiny
        .add_page(Pfn::new(third.get() + 7), 512, 0, Origin::Borrowed)
        .unwrap_err();
    assert_eq!(refused.error(), BioError::TooManyVecs { max_vecs: 1 });
    // The segment-size and alignment limits.
    let head = machine.memory().alloc_folio(1, true).unwrap();
    let small_segments = BioLimits::default().with_max_segment_size(4096).unwrap();
    let refused = bio(BioOp::Write, small_segments)
        .add_folio(folio(head, 1), 8192, 0, Origin::Borrowed)
        .unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::SegmentTooLarge {
            len: 8192,
            max_segment_size: 4096
        }
    );
    let refused = bio(BioOp::Write, BioLimits::default())
        .add_page(head, 100, 0, Origin::Borrowed)
        .unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::Misaligned {
            offset: 0,
            len: 100,
            dma_alignment: 511
        }
    );
    tracker.put_page(head).unwrap();
    release_pages(&tracker, &b, false).unwrap();
    assert_baseline(&machine);
}

#[test]
fn a_bio_growing_past_u32_max_bytes_is_refused() {
    let machine = common::synchronous(8);
    let mut b = bio(BioOp::Write, BioLimits::default());
    // Two 2 GiB folios (borrowed: nothing to release, nothing to map).
    let half = 1u32 << 31;
    let first = folio(Pfn::new(1 << 20), 19);
    let second = folio(Pfn::new(3 << 20), 19);
    assert_eq!(
        b.add_folio(first, half, 0, Origin::Borrowed),
        Ok(Added::NewVec)
    );
    let refused = b.add_folio(second, half, 0, Origin::Borrowed).unwrap_err();
    assert_eq!(
        refused.error(),
        BioError::SizeOverflow {
            size: half,
            len: half
        }
    );
    assert_eq!(b.size(), half, "unchanged");
    assert_baseline(&machine);
}

#[test]
fn advancing_past_the_end_is_refused_and_the_pages_are_still_released() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let page = machine.memory().alloc_folio(0, true).unwrap();
    tracker.get_page(page).unwrap(); // the bio's reference
    let mut b = bio(BioOp::Write, BioLimits::default());
    let _ = b.add_page(page, 4096, 0, Origin::Referenced).unwrap();
    let mut submitted = SubmittedBio::submit(b).map_err(|(_, e)| e).unwrap();
    assert_eq!(
        submitted.advance(100),
        Err(BioError::NotSectorMultiple { bytes: 100 })
    );
    assert_eq!(
        submitted.advance(8192),
        Err(BioError::AdvancePastEnd {
            requested: 8192,
            remaining: 4096
        })
    );
    assert_eq!(submitted.bio().iter().size(), 0, "left empty");
    // Release walks every bvec, wherever the iterator stands.
    let released = submitted.complete(BioStatus::Ok).release(&tracker, false);
    assert_eq!(released.result.unwrap().put, 1);
    tracker.put_page(page).unwrap();
    assert_baseline(&machine);
}

#[test]
fn splitting_outside_the_bio_or_off_a_block_boundary_is_refused() {
    let machine = common::synchronous(32);
    let head = machine.memory().alloc_folio(1, true).unwrap();
    let limits = BioLimits::default().with_logical_block_size(4096).unwrap();
    let mut b = bio(BioOp::Write, limits);
    let _ = b
        .add_folio(folio(head, 1), 8192, 0, Origin::Borrowed)
        .unwrap();
    for sectors in [0, 16, 17] {
        assert_eq!(
            b.split(SectorCount(sectors)).map(|_| ()),
            Err(BioError::SplitOutOfRange {
                sectors,
                bio_sectors: 16
            })
        );
    }
    assert_eq!(
        b.split(SectorCount(3)).map(|_| ()),
        Err(BioError::SplitUnaligned {
            sectors: 3,
            block_sectors: 8
        })
    );
    assert_eq!(b.size(), 8192, "nothing was split off");
    // A bio that is not a whole number of logical blocks is refused at
    // submission and handed back.
    let mut short = bio(BioOp::Write, limits);
    let _ = short.add_page(head, 512, 0, Origin::Borrowed).unwrap();
    let (_, error) = SubmittedBio::submit(short).unwrap_err();
    assert_eq!(
        error,
        BioError::NotBlockMultiple {
            bytes: 512,
            logical_block_size: 4096
        }
    );
    machine.tracker().put_page(head).unwrap();
    assert_baseline(&machine);
}

#[test]
fn direct_io_at_an_unaligned_address_is_refused_and_pins_nothing() {
    let machine = common::synchronous(32);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    let error = machine
        .dio_read(&process, UserAddr::new(buffer.get() + 100), 4096, Sector(0))
        .unwrap_err();
    assert_eq!(
        core(error),
        gupio::Error::Release(ReleaseError::Build {
            error: BioError::Misaligned {
                offset: 100,
                len: 3996,
                dma_alignment: 511
            }
        })
    );
    let stats = machine.memory().pin_stats();
    assert_eq!(stats.acquired(), stats.released());
    assert_baseline(&machine);
}

#[test]
fn a_pin_that_would_overflow_the_count_fails_whole_and_changes_nothing() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(1).unwrap();
    process.store(buffer, &[1]).unwrap();
    let (page, _) = process.pte(buffer).unwrap();
    let counters = machine.memory().frame(page).unwrap().counters();
    assert_eq!(counters.refcount(), 1, "the PTE's reference");
    // A small page holds (REFCOUNT_MAX - 1) / 1024 pins on top of it. Pin
    // it 1024 times per call (one atomic per call) up to the last batch
    // that fits.
    let batch = [page; 1024];
    let room = usize::try_from((REFCOUNT_MAX - 1) / 1024).unwrap();
    for _ in 0..room / 1024 {
        tracker.pin_pages(&batch).unwrap();
    }
    let before = counters.refcount();
    assert_eq!(
        tracker.pin_pages(&batch),
        Err(PinError::RefcountOverflow {
            pfn: page,
            refcount: before,
            adding: 1024 * 1024
        })
    );
    assert_eq!(counters.refcount(), before, "no partial increment");
    let rest = &batch[..room % 1024];
    tracker.pin_pages(rest).unwrap();
    let full = counters.refcount();
    // Now even one more pin through GUP fails, typed, with nothing changed.
    let error = machine
        .dio_read(&process, buffer, 4096, Sector(0))
        .unwrap_err();
    assert!(matches!(
        core(error),
        gupio::Error::Release(ReleaseError::Extract {
            error: PinError::RefcountOverflow { .. },
            ..
        })
    ));
    assert_eq!(counters.refcount(), full);
    for _ in 0..room / 1024 {
        tracker.unpin_pages(&batch).unwrap();
    }
    tracker.unpin_pages(rest).unwrap();
    assert_eq!(counters.refcount(), 1);
    assert_baseline(&machine);
}

#[test]
fn faults_in_the_address_space_are_typed_errors() {
    let machine = common::synchronous(32);
    let process = machine.spawn_process();
    let unmapped = UserAddr::new(0x7000_0000);
    let error = machine
        .dio_read(&process, unmapped, 4096, Sector(0))
        .unwrap_err();
    assert_eq!(
        core(error),
        gupio::Error::Release(ReleaseError::Extract {
            pfn: None,
            error: PinError::Fault {
                addr: unmapped,
                kind: FaultKind::Unmapped
            }
        })
    );
    // A read into a read-only mapping needs a write pin: denied.
    let file = machine.cache().create_file(2, &[]).unwrap();
    let read_only = process.mmap_file(&file, 0, 2, false).unwrap();
    let error = machine
        .dio_read(&process, read_only, 4096, Sector(0))
        .unwrap_err();
    assert!(matches!(
        core(error),
        gupio::Error::Release(ReleaseError::Extract {
            error: PinError::Fault {
                kind: FaultKind::AccessDenied,
                ..
            },
            ..
        })
    ));
    assert_eq!(
        process.store(read_only, &[1]),
        Err(HostError::Fault {
            addr: read_only,
            kind: FaultKind::AccessDenied
        })
    );
    // No memory left for the page a fault needs.
    let tiny = Machine::new(gupio_host::MachineConfig::synchronous(1, 64)).unwrap();
    let starving = tiny.spawn_process();
    let buffer = starving.mmap_anonymous(1).unwrap();
    let error = tiny
        .dio_read(&starving, buffer, 4096, Sector(0))
        .unwrap_err();
    assert!(matches!(
        core(error),
        gupio::Error::Release(ReleaseError::Extract {
            error: PinError::Fault {
                kind: FaultKind::OutOfMemory,
                ..
            },
            ..
        })
    ));
    assert_baseline(&tiny);
    assert_baseline(&machine);
}

/// An address space whose fault handler claims success and maps nothing.
struct BrokenFaults<'a>(gupio_host::GupGuard<'a>);

impl AddressSpace for BrokenFaults<'_> {
    fn page_geometry(&self) -> PageGeometry {
        self.0.page_geometry()
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<gupio::pin::Mapping>, FaultKind> {
        self.0.translate(addr)
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }
}

#[test]
fn a_fault_that_maps_nothing_is_a_typed_error_and_pins_nothing() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    process.store(buffer, &[1]).unwrap(); // page 0 present, page 1 not
    let space = BrokenFaults(process.gup());
    let mut b = bio(BioOp::Read, BioLimits::default());
    let second = UserAddr::new(buffer.get() + 4096);
    assert_eq!(
        add_user_range(&tracker, &space, &mut b, second, 4096, GupFlags::WRITE),
        Err(ReleaseError::Extract {
            pfn: None,
            error: PinError::FaultNotResolved { addr: second }
        })
    );
    // Past the first page, it stops the range short instead.
    assert_eq!(
        add_user_range(&tracker, &space, &mut b, buffer, 8192, GupFlags::WRITE),
        Ok(4096)
    );
    drop(space);
    release_pages(&tracker, &b, false).unwrap();
    assert_baseline(&machine);
}

#[test]
fn invalid_gup_flag_combinations_are_refused_before_anything_is_pinned() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let anon = process.mmap_anonymous(1).unwrap();
    let file = machine.cache().create_file(1, &[]).unwrap();
    let shared = process.mmap_file(&file, 0, 1, true).unwrap();
    let mut pages = [Pfn::ZERO; 1];
    let guard = process.gup();
    let pin = |flags: GupFlags, addr: UserAddr, pages: &mut [Pfn]| {
        common::pin_into(&tracker, &guard, addr, flags, pages)
    };
    let internal = GupFlags::PIN | GupFlags::WRITE;
    assert_eq!(
        pin(internal, anon, &mut pages),
        Err(PinError::InternalGupFlags {
            bits: internal.bits()
        })
    );
    let unknown = GupFlags::from_bits_retain(1 << 9);
    assert_eq!(
        pin(unknown, anon, &mut pages),
        Err(PinError::UnknownGupFlags { bits: 1 << 9 })
    );
    assert_eq!(
        common::grab_into(&tracker, &guard, anon, GupFlags::LONGTERM, &mut pages, true),
        Err(PinError::LongtermWithoutPin {
            bits: (GupFlags::LONGTERM | GupFlags::GET).bits()
        })
    );
    assert_eq!(
        (GupFlags::GET | GupFlags::PIN).check(),
        Err(PinError::GetAndPin {
            bits: (GupFlags::GET | GupFlags::PIN).bits()
        })
    );
    assert_eq!(
        GupFlags::WRITE.check(),
        Err(PinError::NeitherGetNorPin {
            bits: GupFlags::WRITE.bits()
        })
    );
    // A long-term write pin of a dirty-tracked shared file mapping.
    process.store(shared, &[1]).unwrap();
    assert_eq!(
        pin(GupFlags::LONGTERM | GupFlags::WRITE, shared, &mut pages),
        Err(PinError::LongtermDirtyTracked { addr: shared })
    );
    drop(guard);
    assert_eq!(machine.memory().pin_stats().acquired(), 0);
    assert_baseline(&machine);
}

#[test]
fn unpinning_without_a_pin_is_refused_warned_and_never_wraps() {
    let machine = common::synchronous(32);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let file = machine.cache().create_file(4, &[2]).unwrap();
    let map = process.mmap_file(&file, 0, 4, true).unwrap();
    process.store(map, &[1]).unwrap();
    let anon = process.mmap_anonymous(1).unwrap();
    process.store(anon, &[1]).unwrap();
    let (small, _) = process.pte(anon).unwrap();
    let (large, _) = process.pte(map).unwrap();
    assert_eq!(
        tracker.unpin_page(small),
        Err(PinError::NotPinned { pfn: small })
    );
    assert_eq!(
        tracker.unpin_page(large),
        Err(PinError::NotPinned { pfn: large })
    );
    let warnings = machine.memory().take_warnings();
    assert_eq!(warnings.len(), 2);
    assert!(warnings
        .iter()
        .all(|w| matches!(w, AnyWarning::Pin(Warning::UnpinWithoutPin { .. }))));
    assert_eq!(
        machine.memory().frame(small).unwrap().counters().refcount(),
        1
    );
    assert_eq!(machine.memory().pin_stats().released(), 0);
    assert_baseline(&machine);
}

#[test]
fn a_double_completion_is_refused_warned_and_releases_once() {
    let machine = common::synchronous(32);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    machine.device().inject(Fault::CompleteTwice);
    let done = machine.dio_read(&process, buffer, 8192, Sector(0)).unwrap();
    assert_eq!(done.pages, 2);
    assert_eq!(
        machine.device().take_completion_errors(),
        [ReleaseError::DoubleCompletion]
    );
    assert_eq!(
        machine.memory().take_warnings(),
        [AnyWarning::Release(ReleaseWarning::DoubleCompletion)]
    );
    assert_eq!(machine.device().stats().double_completions, 1);
    // Released exactly once: pins balance, nothing freed twice.
    assert_baseline(&machine);

    let completion = Completion::new();
    assert_eq!(
        completion.complete(BioStatus::Ok, &**machine.memory()),
        Err(ReleaseError::NotStarted)
    );
    completion.start().unwrap();
    assert_eq!(completion.start(), Err(ReleaseError::AlreadyStarted));
    assert_eq!(
        completion.complete(BioStatus::Ok, &**machine.memory()),
        Ok(Ending::Finished(BioStatus::Ok))
    );
    assert_eq!(
        completion.complete(BioStatus::Ok, &**machine.memory()),
        Err(ReleaseError::DoubleCompletion)
    );
    assert_eq!(
        machine.memory().take_warnings(),
        [AnyWarning::Release(ReleaseWarning::DoubleCompletion)]
    );
    assert_baseline(&machine);
}

#[test]
fn a_double_free_is_recorded_and_frees_nothing() {
    let machine = common::synchronous(8);
    let memory = machine.memory();
    let page = memory.alloc_folio(0, true).unwrap();
    machine.tracker().put_page(page).unwrap();
    let free_pages = memory.free_pages();
    let folio =
        gupio::pin::FolioRef::new(Folio::single(page), memory.frame(page).unwrap().counters());
    memory.free_folio(folio);
    let refused = memory.take_bad_frees();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].kind, gupio_host::BadFreeKind::AlreadyFree);
    assert_eq!(memory.free_pages(), free_pages);
    // And a put on the freed page is refused by the tracker, not wrapped.
    assert_eq!(
        machine.tracker().put_page(page),
        Err(PinError::NoReference { pfn: page })
    );
    assert!(matches!(
        memory.take_warnings()[..],
        [AnyWarning::Pin(Warning::PutWithoutReference { .. })]
    ));
    assert_baseline(&machine);
}
