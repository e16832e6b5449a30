//! Stable direct-I/O writes, forced deterministically with device gates (no
//! sleeps): a write is held by the device after its first 1 KiB chunk while
//! the application stores into the buffer; each stable mode keeps what
//! reaches the disk consistent with the checksum recorded with it, and
//! zero-copy does not.

mod common;

use std::thread;

use gupio::pin::UserAddr;
use gupio::prelude::*;
use gupio::release::{FaultChoice, StableMode};
use gupio_host::data::WORDS_PER_PAGE;
use gupio_host::{Fault, HostError, Machine, PendingIo, Process};

/// A word past the first chunk: the device has not copied it yet when it
/// stops at the gate.
const LATE_WORD: usize = 300;

struct Setup {
    machine: Machine,
    process: Process,
    buffer: UserAddr,
    sector: u64,
    old: Vec<u64>,
}

fn setup() -> Setup {
    let machine = common::threaded(64, 2, true);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(2).unwrap();
    let old: Vec<u64> = (0..2 * WORDS_PER_PAGE as u64).map(|i| 0x1000 + i).collect();
    process.store(buffer, &old).unwrap();
    let sector = machine.cache().reserve_sectors(16).unwrap();
    Setup {
        machine,
        process,
        buffer,
        sector,
        old,
    }
}

impl Setup {
    /// Submits the 8 KiB write in `mode`, held after its first chunk.
    fn held_write(&self, mode: StableMode, fault: FaultChoice) -> (gupio_host::Gate, PendingIo) {
        let gate = self.machine.device().gate(BioOp::Write, 1);
        let io = self
            .machine
            .submit_stable_dio_write(
                &self.process,
                self.buffer,
                8192,
                Sector(self.sector),
                &mode,
                fault,
            )
            .unwrap();
        gate.wait_reached().unwrap();
        (gate, io)
    }

    fn late_addr(&self) -> UserAddr {
        UserAddr::new(self.buffer.get() + LATE_WORD * 8)
    }

    fn disk(&self) -> Vec<u64> {
        self.machine
            .device()
            .disk()
            .read_words(self.sector, 2 * WORDS_PER_PAGE)
            .unwrap()
    }

    fn finish(&self) {
        self.machine.quiesce();
        common::assert_baseline(&self.machine);
    }
}

#[test]
fn zero_copy_write_of_a_changing_buffer_leaves_a_checksum_mismatch_on_disk() {
    let s = setup();
    let (gate, io) = s.held_write(StableMode::ZeroCopy, FaultChoice::Wait);
    s.process.store(s.late_addr(), &[7]).unwrap();
    gate.release();
    io.wait(&s.machine).unwrap();
    let scrub = s.machine.device().scrub();
    assert_eq!(scrub.len(), 1, "{scrub:?}");
    assert_eq!(scrub[0].sector, s.sector, "the first page");
    assert_eq!(s.disk()[LATE_WORD], 7, "the store reached the disk");
    s.finish();
}

#[test]
fn bounce_unpins_at_submission_and_writes_the_snapshot() {
    let s = setup();
    let pins = s.machine.memory().pin_stats();
    let (gate, io) = s.held_write(StableMode::Bounce, FaultChoice::Wait);
    // The device holds copies: the user's pages are no longer pinned.
    assert_eq!(pins.acquired(), pins.released());
    s.process.store(s.late_addr(), &[7]).unwrap();
    gate.release();
    io.wait(&s.machine).unwrap();
    assert!(s.machine.device().scrub().is_empty());
    assert_eq!(s.disk(), s.old, "the bytes at submission");
    let counts = s.machine.stable_stats().counts();
    assert_eq!(counts.pages_copied, 2);
    assert_eq!(counts.writes_in(StableMode::Bounce), 1);
    s.finish();
}

#[test]
fn write_protect_makes_a_writer_wait_for_the_completion() {
    let s = setup();
    let (gate, io) = s.held_write(StableMode::WriteProtect, FaultChoice::Wait);
    let (_, writable) = s.process.pte(s.buffer).unwrap();
    assert!(!writable, "protected while in flight");
    thread::scope(|scope| {
        let writer = scope.spawn(|| s.process.store(s.late_addr(), &[7]));
        // The writer faults and waits on the window: wait for its fault to
        // be counted (a condition, not a sleep).
        while s.machine.stable_stats().counts().faults_waited == 0 && !writer.is_finished() {
            thread::yield_now();
        }
        assert!(!writer.is_finished(), "the window is open: it must wait");
        assert_eq!(
            s.process.load(s.late_addr(), 1).unwrap(),
            [s.old[LATE_WORD]]
        );
        gate.release();
        io.wait(&s.machine).unwrap();
        writer.join().unwrap().unwrap();
    });
    assert!(s.machine.device().scrub().is_empty());
    assert_eq!(s.disk(), s.old, "the device read the buffer unchanged");
    assert_eq!(s.process.load(s.late_addr(), 1).unwrap(), [7]);
    let (_, writable) = s.process.pte(s.buffer).unwrap();
    assert!(writable, "restored at completion");
    let counts = s.machine.stable_stats().counts();
    assert_eq!((counts.faults_taken, counts.faults_waited), (1, 1));
    assert_eq!(counts.pages_copied, 0);
    s.finish();
}

#[test]
fn write_protect_with_copy_on_write_lets_the_writer_go_on_in_a_copy() {
    let s = setup();
    let (pinned, _) = s.process.pte(s.buffer).unwrap();
    let (gate, io) = s.held_write(StableMode::WriteProtect, FaultChoice::CopyOnWrite);
    // Does not wait: the fault gives the mapping a copy.
    s.process.store(s.late_addr(), &[7]).unwrap();
    let (copy, writable) = s.process.pte(s.buffer).unwrap();
    assert!(writable && copy != pinned, "a new page");
    gate.release();
    io.wait(&s.machine).unwrap();
    assert!(s.machine.device().scrub().is_empty());
    assert_eq!(s.disk(), s.old);
    assert_eq!(s.process.load(s.late_addr(), 1).unwrap(), [7]);
    let counts = s.machine.stable_stats().counts();
    assert_eq!((counts.faults_taken, counts.faults_copied), (1, 1));
    assert_eq!(counts.pages_copied, 1);
    // The second page was never written: still protected until completion,
    // writable again now.
    let second = UserAddr::new(s.buffer.get() + 4096);
    assert!(s.process.pte(second).unwrap().1);
    s.finish();
}

#[test]
fn write_protect_of_a_page_a_device_may_write_bounces_instead() {
    let s = setup();
    // Someone else holds a pin on the buffer's first page, as a direct-I/O
    // read into the same buffer would: its device may write the page at
    // any moment, which no write protection holds off.
    let (page, _) = s.process.pte(s.buffer).unwrap();
    let tracker = s.machine.tracker();
    tracker.pin_page(page).unwrap();
    let (gate, io) = s.held_write(StableMode::WriteProtect, FaultChoice::Wait);
    // That device's DMA lands while the write is held mid-transfer.
    s.machine
        .memory()
        .frame(page)
        .unwrap()
        .store(LATE_WORD, 0xd3a);
    gate.release();
    io.wait(&s.machine).unwrap();
    assert!(s.machine.device().scrub().is_empty());
    assert_eq!(s.disk(), s.old, "the bytes at submission");
    let counts = s.machine.stable_stats().counts();
    assert_eq!(counts.protect_bounced, 1);
    assert_eq!(counts.writes_in(StableMode::Bounce), 1);
    assert_eq!(counts.writes_in(StableMode::WriteProtect), 0);
    assert_eq!(counts.pages_copied, 2);
    // Nothing was write-protected: a CPU store goes straight in.
    assert!(s.process.pte(s.buffer).unwrap().1);
    tracker.unpin_page(page).unwrap();
    s.finish();
}

#[test]
fn verify_reissues_the_changed_page_and_nothing_else() {
    let s = setup();
    let (gate, io) = s.held_write(StableMode::Verify, FaultChoice::Wait);
    s.process.store(s.late_addr(), &[7]).unwrap();
    gate.release();
    io.wait(&s.machine).unwrap();
    // The first write was torn (the device saw it), the reissue fixed it.
    assert_eq!(s.machine.device().stats().unstable_pages, 1);
    assert!(s.machine.device().scrub().is_empty());
    let mut expected = s.old.clone();
    expected[LATE_WORD] = 7;
    assert_eq!(s.disk(), expected, "the buffer as it was after the change");
    let counts = s.machine.stable_stats().counts();
    assert_eq!((counts.reissues, counts.pages_reissued), (1, 1));
    assert_eq!(counts.pages_verified, 2);
    assert_eq!(counts.pages_copied, 1);
    assert_eq!(s.machine.device().stats().writes, 2);
    s.finish();
}

#[test]
fn verify_whose_reissue_fails_reports_the_error_and_releases_everything() {
    let s = setup();
    let (gate, io) = s.held_write(StableMode::Verify, FaultChoice::Wait);
    s.process.store(s.late_addr(), &[7]).unwrap();
    // The first transfer took its (empty) fault when it started: the next
    // request the device runs, the reissue, fails.
    s.machine.device().inject(Fault::Fail(BioStatus::Medium));
    gate.release();
    let result = io.wait(&s.machine);
    assert!(
        matches!(
            result,
            Err(HostError::Io {
                status: BioStatus::Medium
            })
        ),
        "{result:?}"
    );
    // The torn first page stays on disk, and the caller was told.
    let scrub = s.machine.device().scrub();
    assert_eq!(scrub.len(), 1, "{scrub:?}");
    assert_eq!(scrub[0].sector, s.sector);
    let counts = s.machine.stable_stats().counts();
    assert_eq!((counts.reissues, counts.pages_reissued), (1, 1));
    assert_eq!(s.machine.device().stats().failed, 1);
    // The user's pins and the bounce page are all given back.
    s.finish();
}

#[test]
fn verify_of_an_unchanged_buffer_reissues_nothing() {
    let s = setup();
    let (gate, io) = s.held_write(StableMode::Verify, FaultChoice::Wait);
    gate.release();
    io.wait(&s.machine).unwrap();
    let counts = s.machine.stable_stats().counts();
    assert_eq!((counts.reissues, counts.pages_verified), (0, 2));
    assert_eq!(s.disk(), s.old);
    s.finish();
}

#[test]
fn write_protect_of_a_range_not_mapped_is_refused_and_releases_the_pins() {
    let s = setup();
    let guard = s.process.gup();
    let outside = UserAddr::new(s.buffer.get() + 3 * 4096);
    let refused = guard.write_protect(outside, 4096);
    assert!(matches!(
        refused,
        Err(gupio::pin::ProtectError::Fault { .. })
    ));
    assert!(
        matches!(
            guard.restore_write(s.buffer, 4096),
            Err(gupio::pin::ProtectError::Fault { .. })
        ),
        "never protected"
    );
    drop(guard);
    s.finish();
}

#[test]
fn stable_writes_on_a_synchronous_device_complete_in_every_mode() {
    let machine = common::synchronous(64);
    let process = machine.spawn_process();
    let buffer = process.mmap_anonymous(1).unwrap();
    process.store(buffer, &[3; 512]).unwrap();
    let sector = machine.cache().reserve_sectors(8).unwrap();
    for mode in StableMode::ALL {
        for fault in [FaultChoice::Wait, FaultChoice::CopyOnWrite] {
            let done = machine
                .stable_dio_write(&process, buffer, 4096, Sector(sector), &mode, fault)
                .unwrap();
            assert_eq!(done.pages, 1);
        }
    }
    assert!(machine.device().scrub().is_empty());
    common::assert_baseline(&machine);
}

/// Found by the fuzzer: a copy-on-write fault must not copy a page the
/// mapping does not allow writing, or a shared file page (which must stay
/// the page every mapping sees); the first fails, the second waits.
#[test]
fn copy_on_write_applies_to_private_pages_only() {
    let machine = common::threaded(64, 2, true);
    let file = machine.cache().create_file(2, &[]).unwrap();
    machine.cache().populate(&file).unwrap();
    let process = machine.spawn_process();
    let read_only = process.mmap_file(&file, 0, 1, false).unwrap();
    let shared = process.mmap_file(&file, 1, 1, true).unwrap();
    let sector = machine.cache().reserve_sectors(16).unwrap();
    let page = file.cached_page(1).unwrap();
    process.store(shared, &[1]).unwrap();

    let gate = machine.device().gate(BioOp::Write, 1);
    let io = machine
        .submit_stable_dio_write(
            &process,
            read_only,
            4096,
            Sector(sector),
            &StableMode::WriteProtect,
            FaultChoice::CopyOnWrite,
        )
        .unwrap();
    gate.wait_reached().unwrap();
    assert!(process.store(read_only, &[7]).is_err(), "still read-only");
    gate.release();
    io.wait(&machine).unwrap();

    let gate = machine.device().gate(BioOp::Write, 1);
    let io = machine
        .submit_stable_dio_write(
            &process,
            shared,
            4096,
            Sector(sector + 8),
            &StableMode::WriteProtect,
            FaultChoice::CopyOnWrite,
        )
        .unwrap();
    gate.wait_reached().unwrap();
    thread::scope(|scope| {
        let writer = scope.spawn(|| process.store(shared, &[7]));
        while machine.stable_stats().counts().faults_waited == 0 && !writer.is_finished() {
            thread::yield_now();
        }
        assert!(!writer.is_finished(), "a shared page waits");
        gate.release();
        io.wait(&machine).unwrap();
        writer.join().unwrap().unwrap();
    });
    assert_eq!(
        process.pte(shared).unwrap().0,
        page,
        "still the file's page"
    );
    assert_eq!(machine.stable_stats().counts().faults_copied, 0);
    assert!(machine.device().scrub().is_empty());
    drop(process);
    machine.quiesce();
    let (audit, _) = machine.evict_and_audit();
    assert!(audit.is_clean(), "{audit}");
}

#[test]
fn a_policy_chooses_the_mode_per_write_by_size() {
    use gupio::release::BySize;
    let s = setup();
    let policy = BySize {
        threshold_bytes: 8192,
        small: StableMode::Bounce,
        large: StableMode::Verify,
    };
    for len in [4096, 8192] {
        s.machine
            .stable_dio_write(
                &s.process,
                s.buffer,
                len,
                Sector(s.sector),
                &policy,
                FaultChoice::Wait,
            )
            .unwrap();
    }
    let counts = s.machine.stable_stats().counts();
    assert_eq!(counts.writes_in(StableMode::Bounce), 1);
    assert_eq!(counts.writes_in(StableMode::Verify), 1);
    assert_eq!((counts.pages_copied, counts.pages_verified), (1, 2));
    s.finish();
}
