use super::*;
use gupio::prelude::*;

fn machine(config: DeviceConfig) -> (Arc<Memory>, Device) {
    let memory = Arc::new(Memory::new(8).unwrap());
    let device = Device::new(memory.clone(), 128, config);
    (memory, device)
}

fn bio_of(op: BioOp, sector: u64, pages: &[Pfn], origin: Origin) -> Bio<OwnedBvecs> {
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(pages.len()),
        op,
        Sector(sector),
        BioLimits::default(),
    );
    for &page in pages {
        let _ = bio.add_page(page, 4096, 0, origin).unwrap();
    }
    bio
}

fn release_into(memory: &Arc<Memory>, results: &Arc<Mutex<Vec<BioStatus>>>) -> EndIo {
    let (memory, results) = (memory.clone(), results.clone());
    Box::new(move |done: CompletedBio<OwnedBvecs>| {
        let status = done.status();
        let released = done.release(&Tracker::new(&*memory), false);
        assert!(released.result.is_ok());
        lock(&results).push(status);
    })
}

#[test]
fn read_then_write_round_trips_through_the_disk() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let page = memory.alloc_folio(0, true).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let bio = bio_of(BioOp::Read, 16, &[page], Origin::Borrowed);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    assert_eq!(device.queued(), 1);
    assert!(device.process_one());
    let frame = memory.frame(page).unwrap();
    assert_eq!(frame.snapshot(), device.disk().read_words(16, 512).unwrap());
    frame.store(0, 42);
    let bio = bio_of(BioOp::Write, 64, &[page], Origin::Borrowed);
    let sums = bio_checksums(&memory, &bio);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        Some(sums),
        release_into(&memory, &results),
    );
    device.wait_idle();
    assert_eq!(device.disk().read_words(64, 1).unwrap(), [42]);
    assert_eq!(*lock(&results), [BioStatus::Ok, BioStatus::Ok]);
    let stats = device.stats();
    assert_eq!((stats.reads, stats.writes, stats.unstable_pages), (1, 1, 0));
    assert_eq!(stats.bytes_read + stats.bytes_written, 8192);
}

#[test]
fn a_wrong_checksum_is_counted_as_an_unstable_write() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let page = memory.alloc_folio(0, true).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let bio = bio_of(BioOp::Write, 8, &[page], Origin::Borrowed);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        Some(vec![1]),
        release_into(&memory, &results),
    );
    device.wait_idle();
    assert_eq!(device.stats().unstable_pages, 1);
    assert_eq!(device.unstable_writes()[0].sector, 8);
}

#[test]
fn a_write_without_checksums_drops_the_checksums_of_the_blocks_it_overwrites() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let (first, second) = (
        memory.alloc_folio(0, true).unwrap(),
        memory.alloc_folio(0, true).unwrap(),
    );
    let results = Arc::new(Mutex::new(Vec::new()));
    let submit = |bio: Bio<OwnedBvecs>, checksummed: bool| {
        let sums = checksummed.then(|| bio_checksums(&memory, &bio));
        device.submit(
            SubmittedBio::submit(bio).unwrap(),
            sums,
            release_into(&memory, &results),
        );
        device.wait_idle();
    };
    // Two checksummed blocks, 8 sectors apart: both scrub clean.
    memory.frame(first).unwrap().store(0, 7);
    submit(
        bio_of(BioOp::Write, 16, &[first, first], Origin::Borrowed),
        true,
    );
    assert!(device.scrub().is_empty());
    // New bytes over the first block, without a checksum: the device no
    // longer holds one for it, so a scrub has nothing to compare...
    memory.frame(second).unwrap().store(0, 9);
    submit(bio_of(BioOp::Write, 16, &[second], Origin::Borrowed), false);
    assert!(device.scrub().is_empty(), "{:?}", device.scrub());
    // ...while the second block keeps its checksum: change it behind the
    // device's back and the scrub reports it.
    device.disk().write_words(24, &[1]).unwrap();
    let scrub = device.scrub();
    assert_eq!(scrub.len(), 1, "{scrub:?}");
    assert_eq!(scrub[0].sector, 24);
}

#[test]
fn injected_failure_and_out_of_range_sectors_complete_with_errors_and_release() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let results = Arc::new(Mutex::new(Vec::new()));
    let a = memory.alloc_folio(0, true).unwrap();
    let b = memory.alloc_folio(0, true).unwrap();
    device.inject(Fault::Fail(BioStatus::Medium));
    let bio = bio_of(BioOp::Read, 0, &[a], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    let bio = bio_of(BioOp::Read, 127, &[b], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    device.wait_idle();
    assert_eq!(*lock(&results), [BioStatus::Medium, BioStatus::Invalid]);
    assert_eq!(device.stats().failed, 2);
    assert!(memory.allocated_folios().is_empty(), "both released");
}

#[test]
fn a_second_completion_is_refused_and_nothing_is_released_twice() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let results = Arc::new(Mutex::new(Vec::new()));
    let page = memory.alloc_folio(0, true).unwrap();
    device.inject(Fault::CompleteTwice);
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    device.wait_idle();
    assert_eq!(lock(&results).len(), 1);
    assert_eq!(
        device.take_completion_errors(),
        [ReleaseError::DoubleCompletion]
    );
    assert_eq!(
        memory.take_warnings(),
        [AnyWarning::Release(ReleaseWarning::DoubleCompletion)]
    );
    assert!(memory.bad_frees().is_empty());
}

#[test]
fn a_gate_holds_a_threaded_transfer_half_done() {
    let (memory, device) = machine(DeviceConfig::threaded(1, Duration::ZERO));
    let page = memory.alloc_folio(0, true).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let gate = device.gate(BioOp::Read, 2); // 2 KiB of 4
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Borrowed);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    gate.wait_reached().unwrap();
    let frame = memory.frame(page).unwrap();
    let disk = device.disk().read_words(0, 512).unwrap();
    assert_eq!(frame.snapshot()[..256], disk[..256], "first half copied");
    assert!(
        frame.snapshot()[256..].iter().all(|&w| w == 0),
        "second half not yet"
    );
    gate.release();
    device.wait_idle();
    assert_eq!(frame.snapshot(), disk);
}

#[test]
fn accessors_show_the_configuration_the_disk_the_queue_and_the_counts() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    assert!(device.is_synchronous());
    assert_eq!(device.config(), DeviceConfig::synchronous());
    assert_eq!(device.disk().sectors(), 128);
    assert_eq!(Disk::new(3).sectors(), 3);
    assert_eq!(device.stats(), DeviceStats::default());
    assert!(device.unstable_writes().is_empty());
    assert!(device.completion_errors().is_empty());
    let page = memory.alloc_folio(0, true).unwrap();
    let results = Arc::new(Mutex::new(Vec::new()));
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    assert_eq!(device.queued(), 1, "a synchronous device waits to be run");
    assert_eq!(device.stats().reads, 0);
    assert!(device.process_one());
    assert_eq!(device.queued(), 0);
    let stats = device.stats();
    assert_eq!((stats.reads, stats.writes, stats.bytes_read), (1, 0, 4096));
    assert_eq!(*lock(&results), [BioStatus::Ok]);
    let (_, threaded) = machine(DeviceConfig::default());
    assert!(!threaded.is_synchronous());
}

#[test]
fn completion_errors_are_listed_until_taken() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let results = Arc::new(Mutex::new(Vec::new()));
    let page = memory.alloc_folio(0, true).unwrap();
    device.inject(Fault::CompleteTwice);
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    device.wait_idle();
    let errors = [ReleaseError::DoubleCompletion];
    assert_eq!(device.completion_errors(), errors);
    assert_eq!(device.completion_errors(), errors, "listing takes nothing");
    assert_eq!(device.take_completion_errors(), errors);
    assert!(device.completion_errors().is_empty());
    assert!(device.take_completion_errors().is_empty());
}

#[test]
fn configurations_name_their_threads_and_latency() {
    let synchronous = DeviceConfig::synchronous();
    assert_eq!(synchronous.threads, 0);
    assert!(synchronous.latency.is_zero());
    let threaded = DeviceConfig::threaded(2, Duration::from_micros(5));
    assert_eq!(threaded.threads, 2);
    assert_eq!(threaded.latency, Duration::from_micros(5));
    assert_eq!(
        (threaded.chunk_bytes, threaded.max_chunks),
        (synchronous.chunk_bytes, synchronous.max_chunks)
    );
    assert_eq!(DeviceConfig::default().threads, 2);
}

#[test]
fn faults_and_unstable_writes_compare_and_print_their_values() {
    assert_ne!(Fault::Fail(BioStatus::Medium), Fault::CompleteTwice);
    assert_ne!(
        Fault::Fail(BioStatus::Medium),
        Fault::Fail(BioStatus::Timeout)
    );
    let write = UnstableWrite {
        sector: 8,
        expected: 1,
        written: 2,
    };
    assert_eq!(
        write.to_string(),
        "unstable write at sector 8: checksum 0x0000000000000001 at submission, \
         0x0000000000000002 on disk"
    );
}

#[test]
fn an_end_io_closure_owns_the_completed_bio_and_releases_it() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    let page = memory.alloc_folio(0, true).unwrap();
    let mem = memory.clone();
    let end_io: EndIo = Box::new(move |bio| {
        let released = bio.release(&Tracker::new(&*mem), false);
        assert!(released.result.is_ok());
    });
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Referenced);
    device.submit(SubmittedBio::submit(bio).unwrap(), None, end_io);
    assert_eq!(memory.allocated_folios().len(), 1, "not run yet");
    device.wait_idle();
    assert!(memory.allocated_folios().is_empty(), "the release freed it");
}

#[test]
fn a_synchronous_device_runs_requests_one_at_a_time_when_asked() {
    let (memory, device) = machine(DeviceConfig::synchronous());
    assert!(!device.process_one(), "nothing queued");
    let results = Arc::new(Mutex::new(Vec::new()));
    let pages = [
        memory.alloc_folio(0, true).unwrap(),
        memory.alloc_folio(0, true).unwrap(),
    ];
    for (i, &page) in pages.iter().enumerate() {
        let bio = bio_of(BioOp::Read, 8 * i as u64, &[page], Origin::Referenced);
        device.submit(
            SubmittedBio::submit(bio).unwrap(),
            None,
            release_into(&memory, &results),
        );
    }
    assert_eq!(device.queued(), 2);
    assert!(device.process_one());
    assert_eq!((device.queued(), lock(&results).len()), (1, 1));
    device.wait_idle();
    assert_eq!(device.queued(), 0);
    assert_eq!(*lock(&results), [BioStatus::Ok, BioStatus::Ok]);
}

#[test]
fn shutdown_is_idempotent_and_later_requests_run_on_the_submitter() {
    let (memory, device) = machine(DeviceConfig::default());
    device.wait_idle(); // idle already: returns
    device.shutdown();
    device.shutdown();
    let results = Arc::new(Mutex::new(Vec::new()));
    let page = memory.alloc_folio(0, true).unwrap();
    let bio = bio_of(BioOp::Read, 0, &[page], Origin::Referenced);
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        release_into(&memory, &results),
    );
    device.wait_idle();
    assert_eq!(*lock(&results), [BioStatus::Ok]);
    assert!(memory.allocated_folios().is_empty());
}
