use super::*;
use crate::counters::probe::{self, LARGE_PIN_RMW};
use crate::space::*;
use crate::testing::space::{pfn, ro, rw, user, Entry, TestSpace, BASE, PAGE};
use crate::testing::TestMachine;
use crate::{ArrayMemoryMap, FolioShape, PageRange, GUP_PIN_COUNTING_BIAS, REFCOUNT_MAX};
use core::cell::Cell;
use gupio_pfn::{PageGeometry, Pfn};

/// The runs of `pages`, handed over into `out` page by page, with the
/// old array interface's partial success: the pages before a failure,
/// or the failure if there are none.
fn collect<M: PageOps, A: AddressSpace + ?Sized>(
    pages: Result<UserPages<'_, '_, M, A>, PinError>,
    out: &mut [Pfn],
) -> Result<usize, PinError> {
    let mut n = 0;
    for run in pages? {
        match run {
            Ok(run) => {
                let (range, _) = run.into_raw();
                for i in 0..range.len() {
                    out[n] = range.first().checked_add(i).unwrap();
                    n += 1;
                }
            }
            Err(e) if n == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(n)
}

fn pin_into<M: PageOps, A: AddressSpace + ?Sized>(
    t: &Tracker<'_, M>,
    space: &A,
    start: UserAddr,
    flags: GupFlags,
    out: &mut [Pfn],
) -> Result<usize, PinError> {
    collect(t.pin_user_pages(space, start, out.len(), flags), out)
}

fn get_into<M: PageOps, A: AddressSpace + ?Sized>(
    t: &Tracker<'_, M>,
    space: &A,
    start: UserAddr,
    flags: GupFlags,
    out: &mut [Pfn],
) -> Result<usize, PinError> {
    collect(t.get_user_pages(space, start, out.len(), flags), out)
}

/// Small pages 0..4 (page 0 is the zero page), an order-2 folio 4..8,
/// an order-3 folio 8..16, small movable pages 16..20, each holding one
/// reference (the mapping's).
fn machine() -> TestMachine<20> {
    let map = ArrayMemoryMap::new(pfn(0))
        .with_zero_page(pfn(0))
        .with_movable(PageRange::new(pfn(16), 4));
    let m = TestMachine::with_map(map);
    for small in [0, 1, 2, 3, 16, 17, 18, 19] {
        m.prepare(small, 0);
    }
    m.prepare(4, 2);
    m.prepare(8, 3);
    m
}

fn assert_baseline(m: &TestMachine<20>) {
    for head in [0, 1, 2, 3, 4, 8, 16, 17, 18, 19] {
        assert_eq!(m.page(head).refcount(), 1, "refcount of {head}");
        assert_eq!(m.page(head).pincount(), 0, "pincount of {head}");
    }
    assert_eq!(m.stats.acquired(), m.stats.released());
    assert_eq!(m.total_frees(), 0);
    assert_eq!(m.warnings(), 0);
}

#[test]
fn flag_check_matrix_follows_linux() {
    use GupFlags as F;
    for bits in 0..16u32 {
        let mut flags = F::empty();
        for (bit, flag) in [F::WRITE, F::GET, F::LONGTERM, F::PIN]
            .into_iter()
            .enumerate()
        {
            if bits & (1 << bit) != 0 {
                flags |= flag;
            }
        }
        let (get, pin) = (flags.contains(F::GET), flags.contains(F::PIN));
        let expected = if get && pin {
            Err(PinError::GetAndPin { bits: flags.bits() })
        } else if !get && !pin {
            Err(PinError::NeitherGetNorPin { bits: flags.bits() })
        } else if flags.contains(F::LONGTERM) && !pin {
            Err(PinError::LongtermWithoutPin { bits: flags.bits() })
        } else if pin {
            Ok(GrabKind::Pin)
        } else {
            Ok(GrabKind::Get)
        };
        assert_eq!(flags.check(), expected, "{flags:?}");
    }
    let unknown = F::from_bits_retain(1 << 9) | F::PIN;
    assert_eq!(
        unknown.check(),
        Err(PinError::UnknownGupFlags {
            bits: unknown.bits()
        })
    );
}

#[test]
fn entry_points_refuse_internal_and_conflicting_flags_before_touching_pages() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(1))]);
    let mut out = [Pfn::ZERO; 1];
    let pin = |flags| pin_into(&t, &space, user(0), flags, &mut [Pfn::ZERO; 1]);
    assert_eq!(
        pin(GupFlags::PIN),
        Err(PinError::InternalGupFlags {
            bits: GupFlags::PIN.bits()
        })
    );
    assert_eq!(
        pin(GupFlags::GET),
        Err(PinError::GetAndPin {
            bits: (GupFlags::GET | GupFlags::PIN).bits()
        })
    );
    let stray = GupFlags::from_bits_retain(1 << 30);
    assert_eq!(pin(stray), Err(PinError::UnknownGupFlags { bits: 1 << 30 }));
    assert_eq!(
        get_into(&t, &space, user(0), GupFlags::PIN, &mut out),
        Err(PinError::InternalGupFlags {
            bits: GupFlags::PIN.bits()
        })
    );
    assert_eq!(
        get_into(
            &t,
            &space,
            user(0),
            GupFlags::LONGTERM | GupFlags::WRITE,
            &mut out
        ),
        Err(PinError::LongtermWithoutPin {
            bits: (GupFlags::LONGTERM | GupFlags::WRITE | GupFlags::GET).bits()
        })
    );
    // Empty output: flags are still checked, then nothing to do.
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::PIN, &mut []),
        Err(PinError::InternalGupFlags {
            bits: GupFlags::PIN.bits()
        })
    );
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut []),
        Ok(0)
    );
    assert_eq!(space.faults.get(), 0);
    // GET is implied by get_user_pages and may be repeated.
    assert_eq!(
        get_into(&t, &space, user(0), GupFlags::GET, &mut out),
        Ok(1)
    );
    t.put_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn pinning_rounds_the_start_down_and_batches_each_folio_run() {
    let m = machine();
    let t = Tracker::new(&m);
    let entries: Vec<Entry> = (8..16)
        .map(|p| Entry::Present(rw(p)))
        .chain([Entry::Present(rw(2))])
        .collect();
    let space = TestSpace::new(&entries);
    let mut out = [Pfn::ZERO; 9];
    probe::take_rmw();
    let start = UserAddr::new(BASE + 123);
    assert_eq!(
        pin_into(&t, &space, start, GupFlags::WRITE, &mut out),
        Ok(9)
    );
    assert_eq!(
        probe::take_rmw(),
        LARGE_PIN_RMW + 1,
        "one large run, one small"
    );
    let expected: Vec<Pfn> = (8..16).chain([2]).map(pfn).collect();
    assert_eq!(out.to_vec(), expected);
    assert_eq!((m.page(8).refcount(), m.page(8).pincount()), (9, 8));
    assert_eq!(m.page(2).refcount(), 1 + GUP_PIN_COUNTING_BIAS);
    assert_eq!(m.stats.acquired(), 9);
    for p in out {
        assert_eq!(t.maybe_dma_pinned(p), Ok(true));
    }
    t.unpin_pages(&out).unwrap();
    assert_eq!(probe::take_rmw(), LARGE_PIN_RMW + 1);
    assert_baseline(&m);
}

#[test]
fn one_small_page_mapped_twice_is_pinned_once_per_mapping() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(3)), Entry::Present(rw(3))]);
    let mut out = [Pfn::ZERO; 2];
    probe::take_rmw();
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Ok(2)
    );
    // Two runs (the second page is not the next frame), two updates.
    assert_eq!(probe::take_rmw(), 2);
    assert_eq!(m.page(3).refcount(), 1 + 2 * GUP_PIN_COUNTING_BIAS);
    t.unpin_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn get_user_pages_takes_plain_references() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Present(rw(5)),
        Entry::Present(rw(6)),
        Entry::Present(ro(0)),
    ]);
    let mut out = [Pfn::ZERO; 3];
    assert_eq!(
        get_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Ok(3)
    );
    assert_eq!((m.page(4).refcount(), m.page(4).pincount()), (3, 0));
    assert_eq!(m.page(0).refcount(), 2, "the zero page gets a reference");
    assert_eq!(m.stats.acquired(), 0);
    t.put_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn partial_success_returns_the_pages_pinned_before_the_failure() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Present(rw(4)),
        Entry::Present(rw(5)),
        Entry::Present(rw(1)),
        Entry::Unmapped,
        Entry::Present(rw(2)),
    ]);
    let mut out = [Pfn::ZERO; 5];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Ok(3)
    );
    assert_eq!(m.page(4).pincount(), 2);
    assert_eq!(m.page(1).refcount(), 1 + GUP_PIN_COUNTING_BIAS);
    assert_eq!(m.page(2).refcount(), 1, "nothing past the failure");
    assert_eq!(m.stats.acquired(), 3);
    t.unpin_pages(&out[..3]).unwrap();
    assert_baseline(&m);
}

#[test]
fn failure_on_the_first_page_returns_the_error_and_pins_nothing() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Unmapped, Entry::Present(rw(1))]);
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Err(PinError::Fault {
            addr: user(0),
            kind: FaultKind::Unmapped
        })
    );
    let space = TestSpace::new(&[Entry::FaultFails(FaultKind::OutOfMemory)]);
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out[..1]),
        Err(PinError::Fault {
            addr: user(0),
            kind: FaultKind::OutOfMemory
        })
    );
    assert_baseline(&m);
}

#[test]
fn absent_pages_are_faulted_in_once_then_pinned() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Absent(rw(1)),
        Entry::Present(rw(2)),
        Entry::Absent(rw(3)),
    ]);
    let mut out = [Pfn::ZERO; 3];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Ok(3)
    );
    assert_eq!(space.faults.get(), 2);
    assert_eq!(out, [pfn(1), pfn(2), pfn(3)]);
    t.unpin_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn a_fault_that_maps_nothing_is_reported_after_bounded_retries() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::BrokenFault]);
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Err(PinError::FaultNotResolved { addr: user(0) })
    );
    assert_eq!(space.faults.get(), FAULT_RETRIES);
    assert_baseline(&m);
}

/// Regression (found by gupio-host's demo): a fault undone before the
/// look-up (writeback write-protected the page) is retried, not failed.
#[test]
fn a_fault_undone_by_a_racing_write_protect_is_retried() {
    struct Flaky {
        faults: Cell<usize>,
    }
    impl AddressSpace for Flaky {
        fn page_geometry(&self) -> PageGeometry {
            PageGeometry::FOUR_KIB
        }
        fn translate(&self, _: UserAddr) -> Result<Option<Mapping>, FaultKind> {
            // Read-only until the third fault: the first two are undone.
            let flags = if self.faults.get() >= 3 {
                MappingFlags::WRITABLE
            } else {
                MappingFlags::empty()
            };
            Ok(Some(Mapping::new(Pfn::new(1), flags)))
        }
        fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> {
            self.faults.set(self.faults.get() + 1);
            Ok(())
        }
    }
    let m = machine();
    let t = Tracker::new(&m);
    let space = Flaky {
        faults: Cell::new(0),
    };
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Ok(1)
    );
    assert_eq!((space.faults.get(), out[0]), (3, pfn(1)));
    t.unpin_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn write_to_a_read_only_mapping_is_refused_read_is_allowed() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::ReadOnlyRegion(ro(1))]);
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Err(PinError::Fault {
            addr: user(0),
            kind: FaultKind::AccessDenied
        })
    );
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Ok(1)
    );
    t.unpin_pages(&out).unwrap();
    assert_baseline(&m);
}

#[test]
fn zero_page_is_returned_unpinned_for_reads_and_replaced_for_writes() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::CopyOnWrite(ro(0), rw(3)), Entry::Present(ro(0))]);
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::LONGTERM, &mut out),
        Ok(2)
    );
    assert_eq!(out, [pfn(0), pfn(0)]);
    assert_eq!(m.page(0).refcount(), 1, "the zero page is never pinned");
    assert_eq!(m.stats.acquired(), 0);
    assert_eq!(t.maybe_dma_pinned(pfn(0)), Ok(false));
    t.unpin_pages(&out).unwrap();
    assert_eq!(space.faults.get(), 0);
    // A write faults the copy-on-write zero page into a private page.
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out[..1]),
        Ok(1)
    );
    assert_eq!(out[0], pfn(3));
    assert_eq!(space.faults.get(), 1);
    t.unpin_page(pfn(3)).unwrap();
    assert_baseline(&m);
}

#[test]
fn a_writable_zero_page_mapping_is_refused_for_writes() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(0))]);
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Err(PinError::WriteToZeroPage { addr: user(0) })
    );
    assert_eq!(
        get_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Err(PinError::WriteToZeroPage { addr: user(0) })
    );
    assert_baseline(&m);
}

#[test]
fn longterm_refuses_write_pins_of_dirty_tracked_file_mappings_only() {
    let m = machine();
    let t = Tracker::new(&m);
    let file = Mapping::new(pfn(2), MappingFlags::WRITABLE | MappingFlags::DIRTY_TRACKED);
    let file_ro = Mapping::new(pfn(3), MappingFlags::DIRTY_TRACKED);
    let space = TestSpace::new(&[Entry::Present(file), Entry::CopyOnWrite(file_ro, file)]);
    let mut out = [Pfn::ZERO; 1];
    let longterm_write = GupFlags::LONGTERM | GupFlags::WRITE;
    assert_eq!(
        pin_into(&t, &space, user(0), longterm_write, &mut out),
        Err(PinError::LongtermDirtyTracked { addr: user(0) })
    );
    // Refused before faulting anything in.
    assert_eq!(
        pin_into(&t, &space, user(1), longterm_write, &mut out),
        Err(PinError::LongtermDirtyTracked { addr: user(1) })
    );
    assert_eq!(space.faults.get(), 0);
    // Long-term read pins and short-term write pins are allowed.
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::LONGTERM, &mut out),
        Ok(1)
    );
    t.unpin_pages(&out).unwrap();
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Ok(1)
    );
    t.unpin_pages(&out).unwrap();
    assert_baseline(&m);
}

/// Pins `flags` at entry 0 of `space` and checks the refusal changed
/// nothing: no fault, the same entries, no count, no dirty bit, no
/// pin accounted.
#[track_caller]
fn assert_refused_untouched(space: &TestSpace, flags: GupFlags, expected: PinError) {
    let m = machine();
    let t = Tracker::new(&m);
    let before = space.entries.borrow().clone();
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(pin_into(&t, space, user(0), flags, &mut out), Err(expected));
    assert_eq!(space.faults.get(), 0, "refused before any fault");
    assert_eq!(*space.entries.borrow(), before, "page table unchanged");
    for raw in 0..20 {
        let flags = m.page(raw).flags();
        assert!(
            !flags.contains(crate::PageFlags::DIRTY),
            "pfn {raw} dirtied"
        );
    }
    assert_eq!((m.stats.acquired(), m.stats.released()), (0, 0));
    assert_baseline(&m);
}

#[test]
fn a_longterm_write_pin_of_an_absent_dirty_tracked_page_is_refused_before_its_fault() {
    let file = Mapping::new(pfn(2), MappingFlags::WRITABLE | MappingFlags::DIRTY_TRACKED);
    let dirty_tracked = MappingKind::SharedFile {
        dirty_tracked: true,
    };
    let space = TestSpace::new(&[Entry::Absent(file), Entry::Absent(file)]);
    let space = space.with_kind(dirty_tracked);
    let longterm_write = GupFlags::LONGTERM | GupFlags::WRITE;
    assert_refused_untouched(
        &space,
        longterm_write,
        PinError::LongtermDirtyTracked { addr: user(0) },
    );
    // Without a description (the default), the refusal comes only after
    // the page was faulted in: what the description is for.
    let space = TestSpace::new(&[Entry::Absent(file)]);
    let m = machine();
    let t = Tracker::new(&m);
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), longterm_write, &mut out),
        Err(PinError::LongtermDirtyTracked { addr: user(0) })
    );
    assert_eq!(space.faults.get(), 1);
    assert_baseline(&m);
}

#[test]
fn the_description_refuses_a_present_page_the_entry_flags_do_not_mark() {
    // A writable, present page whose entry lacks DIRTY_TRACKED: the
    // mapping kind alone refuses the long-term write pin.
    let space = TestSpace::new(&[Entry::Present(rw(1))]).with_kind(MappingKind::SharedFile {
        dirty_tracked: true,
    });
    assert_refused_untouched(
        &space,
        GupFlags::LONGTERM | GupFlags::WRITE,
        PinError::LongtermDirtyTracked { addr: user(0) },
    );
}

#[test]
fn a_write_pin_of_an_absent_page_of_a_read_only_mapping_is_refused_before_its_fault() {
    let space = TestSpace::new(&[Entry::Absent(rw(1))]).with_kind(MappingKind::ReadOnly);
    let denied = PinError::Fault {
        addr: user(0),
        kind: FaultKind::AccessDenied,
    };
    assert_refused_untouched(&space, GupFlags::WRITE, denied);
    assert_refused_untouched(&space, GupFlags::WRITE | GupFlags::LONGTERM, denied);
}

#[test]
fn a_mapping_kind_error_is_the_fault_and_nothing_is_faulted_in() {
    struct NoVma(TestSpace);
    impl AddressSpace for NoVma {
        fn page_geometry(&self) -> PageGeometry {
            PageGeometry::FOUR_KIB
        }
        fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
            self.0.translate(addr)
        }
        fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
            self.0.fault_in(addr, write)
        }
        fn mapping_kind(&self, _: UserAddr) -> Result<MappingKind, FaultKind> {
            Err(FaultKind::HardwareError)
        }
    }
    let m = machine();
    let t = Tracker::new(&m);
    let space = NoVma(TestSpace::new(&[Entry::Absent(rw(1))]));
    let mut out = [Pfn::ZERO; 1];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Err(PinError::Fault {
            addr: user(0),
            kind: FaultKind::HardwareError
        })
    );
    assert_eq!(space.0.faults.get(), 0);
    assert_baseline(&m);
}

#[test]
fn described_mappings_allow_what_linux_allows() {
    let m = machine();
    let t = Tracker::new(&m);
    let mut out = [Pfn::ZERO; 1];
    let cases = [
        // Reads of a read-only mapping, long term or not.
        (MappingKind::ReadOnly, GupFlags::LONGTERM, ro(1)),
        // Long-term reads and short-term writes of a dirty-tracked file.
        (
            MappingKind::SharedFile {
                dirty_tracked: true,
            },
            GupFlags::LONGTERM,
            ro(1),
        ),
        (
            MappingKind::SharedFile {
                dirty_tracked: true,
            },
            GupFlags::WRITE,
            rw(1),
        ),
        // Long-term writes of everything not dirty-tracked.
        (
            MappingKind::SharedFile {
                dirty_tracked: false,
            },
            GupFlags::LONGTERM | GupFlags::WRITE,
            rw(1),
        ),
        (
            MappingKind::Shmem,
            GupFlags::LONGTERM | GupFlags::WRITE,
            rw(1),
        ),
        (
            MappingKind::Anonymous,
            GupFlags::LONGTERM | GupFlags::WRITE,
            rw(1),
        ),
        (
            MappingKind::PrivateFile,
            GupFlags::LONGTERM | GupFlags::WRITE,
            rw(1),
        ),
    ];
    for (kind, flags, mapping) in cases {
        let space = TestSpace::new(&[Entry::Absent(mapping)]).with_kind(kind);
        assert_eq!(
            pin_into(&t, &space, user(0), flags, &mut out),
            Ok(1),
            "{kind:?} {flags:?}"
        );
        assert_eq!(space.faults.get(), 1);
        t.unpin_pages(&out).unwrap();
    }
    assert_baseline(&m);
}

#[test]
fn a_charged_pin_over_the_limit_is_refused_before_any_fault_or_count() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Absent(rw(1)), Entry::Absent(rw(2))]);
    let account = PinAccount::new(3);
    account.try_charge(PageGeometry::FOUR_KIB, 2).unwrap();
    let refused = t.pin_user_pages_longterm(&space, user(0), 2, GupFlags::WRITE, &account);
    assert_eq!(
        refused.err(),
        Some(PinError::PinLimitExceeded {
            limit: 3,
            charged: 2,
            request: 2
        })
    );
    assert_eq!(space.faults.get(), 0);
    assert_eq!(space.entries.borrow()[0], Entry::Absent(rw(1)));
    assert_eq!(
        (account.charged(), account.peak(), account.refusals()),
        (2, 2, 1)
    );
    // Flag errors come first and charge nothing.
    let internal = t.pin_user_pages_longterm(&space, user(0), 1, GupFlags::PIN, &account);
    assert!(matches!(
        internal.err(),
        Some(PinError::InternalGupFlags { .. })
    ));
    assert_eq!((account.charged(), account.refusals()), (2, 1));
    account.uncharge(PageGeometry::FOUR_KIB, 2).unwrap();
    assert_baseline(&m);
}

#[test]
fn charged_runs_carry_their_pages_charge_through_split_and_release() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Present(rw(4)),
        Entry::Present(rw(5)),
        Entry::Present(rw(6)),
        Entry::Present(rw(1)),
    ]);
    let account = PinAccount::new(4);
    let mut runs = t
        .pin_user_pages_longterm(&space, user(0), 4, GupFlags::WRITE, &account)
        .unwrap();
    assert_eq!(account.charged(), 4, "the whole request, up front");
    let mut large = runs.next().unwrap().unwrap();
    let small = runs.next().unwrap().unwrap();
    assert!(runs.next().is_none());
    drop(runs);
    assert_eq!((large.charged(), small.charged()), (3, 1));
    assert!(core::ptr::eq(large.account().unwrap(), &account));
    let tail = large.split_off(1).unwrap();
    assert_eq!((large.charged(), tail.charged()), (1, 2));
    t.release_held(tail, false).unwrap();
    assert_eq!(account.charged(), 2);
    // A hand-over to a bio ends the charge; the pins go with the range.
    let (range, _) = small.into_raw();
    assert_eq!(account.charged(), 1);
    t.unpin_range(range).unwrap();
    t.release_held(large, false).unwrap();
    assert_eq!((account.charged(), account.peak()), (0, 4));
    assert_eq!(m.page(4).pincount(), 0);
    assert_baseline(&m);
}

#[test]
fn a_failed_page_or_an_early_stop_gives_back_the_charge_not_yielded() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Present(rw(1)),
        Entry::Present(rw(2)),
        Entry::Unmapped,
    ]);
    let account = PinAccount::new(8);
    let mut runs = t
        .pin_user_pages_longterm(&space, user(0), 3, GupFlags::empty(), &account)
        .unwrap();
    let first = runs.next().unwrap().unwrap();
    let second = runs.next().unwrap().unwrap();
    assert!(matches!(runs.next(), Some(Err(PinError::Fault { .. }))));
    assert_eq!(account.charged(), 2, "the failed page's charge is back");
    drop(runs);
    assert_eq!(account.charged(), 2);
    t.release_held(first, false).unwrap();
    t.release_held(second, false).unwrap();
    // An early stop: one run taken of three pages.
    let mut runs = t
        .pin_user_pages_longterm(&space, user(0), 2, GupFlags::empty(), &account)
        .unwrap();
    let first = runs.next().unwrap().unwrap();
    drop(runs);
    assert_eq!(account.charged(), 1);
    t.release_held(first, false).unwrap();
    // A mapping refusal on the first page: nothing stays charged.
    let file = TestSpace::new(&[Entry::Absent(rw(1))]).with_kind(MappingKind::SharedFile {
        dirty_tracked: true,
    });
    let mut runs = t
        .pin_user_pages_longterm(&file, user(0), 1, GupFlags::WRITE, &account)
        .unwrap();
    assert_eq!(
        runs.next().unwrap().err(),
        Some(PinError::LongtermDirtyTracked { addr: user(0) })
    );
    assert_eq!((account.charged(), file.faults.get()), (0, 0));
    assert_eq!(account.peak(), 3, "the whole first request was charged");
    assert_baseline(&m);
}

#[test]
fn pages_larger_than_four_kib_are_charged_in_four_kib_units() {
    /// User page N (64 KiB pages) maps frame N.
    struct Big;
    impl AddressSpace for Big {
        fn page_geometry(&self) -> PageGeometry {
            PageGeometry::SIXTY_FOUR_KIB
        }
        fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
            Ok(Some(Mapping::new(
                pfn(addr.get() >> 16),
                MappingFlags::WRITABLE,
            )))
        }
        fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> {
            Ok(())
        }
    }
    let m = machine();
    let t = Tracker::new(&m);
    let account = PinAccount::new(48);
    let at = UserAddr::new(4 << 16);
    assert_eq!(
        t.pin_user_pages_longterm(&Big, at, 4, GupFlags::WRITE, &account)
            .err(),
        Some(PinError::PinLimitExceeded {
            limit: 48,
            charged: 0,
            request: 64
        })
    );
    let mut run = t
        .pin_user_pages_longterm(&Big, at, 3, GupFlags::WRITE, &account)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!((run.pages(), run.charged(), account.charged()), (3, 48, 48));
    let tail = run.split_off(1).unwrap();
    assert_eq!((run.charged(), tail.charged()), (16, 32));
    t.release_held(tail, false).unwrap();
    assert_eq!(account.charged(), 16);
    t.release_held(run, false).unwrap();
    assert_eq!(account.charged(), 0);
    assert_baseline(&m);
}

/// Regression (found by the fuzz crate): the address space, often a
/// lock guard, may be dropped while a stopped walk is still in scope.
#[test]
fn the_address_space_may_go_before_a_charged_walk() {
    let m = machine();
    let t = Tracker::new(&m);
    let account = PinAccount::new(2);
    let space = TestSpace::new(&[Entry::Present(rw(1)), Entry::Present(rw(2))]);
    let run = {
        let mut runs = t
            .pin_user_pages_longterm(&space, user(0), 2, GupFlags::empty(), &account)
            .unwrap();
        let run = runs.next().unwrap().unwrap();
        drop(space); // `runs` is still in scope, holding one page's charge
        assert_eq!(account.charged(), 2);
        run
    };
    assert_eq!(account.charged(), 1, "the walk's drop gave its share back");
    t.release_held(run, false).unwrap();
    assert_eq!(account.charged(), 0);
    assert_baseline(&m);
}

#[test]
fn a_privileged_owner_pins_past_its_limit_and_is_counted() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(1)), Entry::Present(rw(2))]);
    let account = PinAccount::privileged(1);
    let runs: Vec<_> = t
        .pin_user_pages_longterm(&space, user(0), 2, GupFlags::empty(), &account)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!((account.charged(), account.refusals()), (2, 0));
    for run in runs {
        t.release_held(run, false).unwrap();
    }
    assert_eq!((account.charged(), account.peak()), (0, 2));
    assert_baseline(&m);
}

#[test]
fn a_stray_uncharge_is_refused_and_warned_when_a_run_is_released() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(1))]);
    let account = PinAccount::new(1);
    let run = t
        .pin_user_pages_longterm(&space, user(0), 1, GupFlags::empty(), &account)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    account.uncharge(PageGeometry::FOUR_KIB, 1).unwrap(); // the bug
    assert_eq!(
        t.release_held(run, false),
        Err(PinError::AccountUnderflow {
            charged: 0,
            request: 1
        })
    );
    assert_eq!(m.page(1).refcount(), 1, "the pin itself was released");
    assert_eq!(m.warnings(), 1);
}

#[test]
fn longterm_refuses_movable_pages() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(1)), Entry::Present(rw(17))]);
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::LONGTERM, &mut out),
        Ok(1)
    );
    t.unpin_pages(&out[..1]).unwrap();
    assert_eq!(
        pin_into(&t, &space, user(1), GupFlags::LONGTERM, &mut out[..1]),
        Err(PinError::NotLongtermPinnable { pfn: pfn(17) })
    );
    assert_eq!(
        pin_into(&t, &space, user(1), GupFlags::empty(), &mut out[..1]),
        Ok(1)
    );
    t.unpin_pages(&out[..1]).unwrap();
    assert_baseline(&m);
}

#[test]
fn address_wrap_is_refused_and_the_top_page_is_not() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[]);
    let top = UserAddr::new(usize::MAX - 5);
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(
        pin_into(&t, &space, top, GupFlags::empty(), &mut out),
        Err(PinError::AddressOverflow {
            start: top,
            nr_pages: 2
        })
    );
    // One page at the very top does not wrap; it is simply not mapped.
    assert_eq!(
        pin_into(&t, &space, top, GupFlags::empty(), &mut out[..1]),
        Err(PinError::Fault {
            addr: top.align_down(PageGeometry::FOUR_KIB),
            kind: FaultKind::Unmapped
        })
    );
    // Three pages below the top plus one more wraps.
    let high = UserAddr::new(usize::MAX - 3 * PAGE + 1);
    let mut four = [Pfn::ZERO; 4];
    assert_eq!(
        pin_into(&t, &space, high, GupFlags::empty(), &mut four),
        Err(PinError::AddressOverflow {
            start: high,
            nr_pages: 4
        })
    );
    assert!(matches!(
        pin_into(&t, &space, high, GupFlags::empty(), &mut four[..3]),
        Err(PinError::Fault { .. })
    ));
    assert_baseline(&m);
}

#[test]
fn overflow_mid_way_returns_the_pages_before_it() {
    let m = machine();
    let t = Tracker::new(&m);
    let near = REFCOUNT_MAX - GUP_PIN_COUNTING_BIAS + 1;
    m.page(3).init(near, FolioShape::SMALL);
    let space = TestSpace::new(&[
        Entry::Present(rw(1)),
        Entry::Present(rw(2)),
        Entry::Present(rw(3)),
    ]);
    let mut out = [Pfn::ZERO; 3];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Ok(2)
    );
    assert_eq!(m.page(3).refcount(), near, "no partial increment");
    assert_eq!(
        pin_into(&t, &space, user(2), GupFlags::empty(), &mut out[2..]),
        Err(PinError::RefcountOverflow {
            pfn: pfn(3),
            refcount: near,
            adding: u64::from(GUP_PIN_COUNTING_BIAS)
        })
    );
    t.unpin_pages(&out[..2]).unwrap();
    m.page(3).init(1, FolioShape::SMALL);
    assert_baseline(&m);
}

#[test]
fn a_pending_large_run_is_pinned_before_a_later_fault_is_reported() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[
        Entry::Present(rw(8)),
        Entry::Present(rw(9)),
        Entry::Present(rw(10)),
        Entry::FaultFails(FaultKind::HardwareError),
    ]);
    let mut out = [Pfn::ZERO; 4];
    probe::take_rmw();
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::WRITE, &mut out),
        Ok(3)
    );
    assert_eq!(probe::take_rmw(), LARGE_PIN_RMW);
    assert_eq!(m.page(8).pincount(), 3);
    t.unpin_pages(&out[..3]).unwrap();
    assert_baseline(&m);
}

#[test]
fn a_page_outside_the_memory_map_stops_the_walk() {
    let m = machine();
    let t = Tracker::new(&m);
    let space = TestSpace::new(&[Entry::Present(rw(1)), Entry::Present(rw(500))]);
    let mut out = [Pfn::ZERO; 2];
    assert_eq!(
        pin_into(&t, &space, user(0), GupFlags::empty(), &mut out),
        Ok(1)
    );
    assert_eq!(
        pin_into(&t, &space, user(1), GupFlags::empty(), &mut out[1..]),
        Err(PinError::NotInMemoryMap { pfn: pfn(500) })
    );
    t.unpin_page(pfn(1)).unwrap();
    assert_baseline(&m);
}

/// User page N maps frame 8 + N (two order-2 folios from 8), answered
/// natively in one run; counts the calls.
struct NativeRuns {
    calls: Cell<usize>,
}

impl AddressSpace for NativeRuns {
    fn page_geometry(&self) -> PageGeometry {
        PageGeometry::FOUR_KIB
    }

    fn translate(&self, _addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        panic!("the tracker asks for runs");
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }

    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        self.calls.set(self.calls.get() + 1);
        let page = (addr.get() - BASE) / PAGE;
        Ok(Some(MappedRun {
            pfn: pfn(8 + page),
            pages: (8 - page).min(max_pages),
            flags: MappingFlags::WRITABLE,
        }))
    }
}

#[test]
fn one_translation_serves_every_folio_run_it_spans() {
    let m = TestMachine::<16>::new(0);
    m.prepare(8, 2);
    m.prepare(12, 2);
    let t = Tracker::new(&m);
    let space = NativeRuns {
        calls: Cell::new(0),
    };
    probe::take_rmw();
    let runs: Vec<_> = t
        .pin_user_pages(&space, user(1), 6, GupFlags::WRITE)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        space.calls.get(),
        1,
        "the second folio run came from the first answer"
    );
    let shape: Vec<_> = runs.iter().map(|r| (r.first(), r.pages())).collect();
    assert_eq!(shape, [(pfn(9), 3), (pfn(12), 3)]);
    assert_eq!(
        probe::take_rmw(),
        2 * LARGE_PIN_RMW,
        "one update per folio run"
    );
    assert_eq!((m.page(8).pincount(), m.page(12).pincount()), (3, 3));
    for run in runs {
        t.release_held(run, false).unwrap();
    }
    assert_eq!(probe::take_rmw(), 2 * LARGE_PIN_RMW);
    assert_eq!((m.page(8).refcount(), m.page(12).refcount()), (1, 1));
    assert_eq!(m.stats.acquired(), m.stats.released());
}
