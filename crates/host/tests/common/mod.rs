//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::time::Duration;

use gupio_host::{DeviceConfig, Machine, MachineConfig};

/// A threaded machine with `frames` frames and no device latency; deferred
/// releases wait for `run_deferred`/`quiesce` unless `worker`.
pub fn threaded(frames: usize, device_threads: usize, worker: bool) -> Machine {
    Machine::new(MachineConfig {
        frames,
        disk_sectors: 16384,
        device: DeviceConfig::threaded(device_threads, Duration::ZERO),
        deferred_worker: worker,
    })
    .expect("machine")
}

/// A machine with no threads at all.
pub fn synchronous(frames: usize) -> Machine {
    Machine::new(MachineConfig::synchronous(frames, 16384)).expect("machine")
}

/// Waits for all I/O and asserts the machine is at baseline.
#[track_caller]
pub fn assert_baseline(machine: &Machine) {
    machine.quiesce();
    let audit = machine.audit();
    assert!(audit.is_clean(), "{audit}");
}

/// Pins (or, with `get`, references) `out.len()` pages from `start`
/// through `pin_user_pages` and hands the runs over into `out` page by
/// page: the pages before a failure, or the failure if there are none
/// (the array shape these tests check; release with `unpin_pages`).
pub fn grab_into<M, A>(
    tracker: &gupio::pin::Tracker<'_, M>,
    space: &A,
    start: gupio::pin::UserAddr,
    flags: gupio::pin::GupFlags,
    out: &mut [gupio::pfn::Pfn],
    get: bool,
) -> Result<usize, gupio::pin::PinError>
where
    M: gupio::embed::PageOps + ?Sized,
    A: gupio::embed::AddressSpace + ?Sized,
{
    let runs = if get {
        tracker.get_user_pages(space, start, out.len(), flags)?
    } else {
        tracker.pin_user_pages(space, start, out.len(), flags)?
    };
    let mut n = 0;
    for run in runs {
        match run {
            Ok(run) => {
                let (range, _) = run.into_raw();
                for i in 0..range.len() {
                    out[n] = range.first().checked_add(i).expect("inside the folio");
                    n += 1;
                }
            }
            Err(e) if n == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(n)
}

/// [`grab_into`] with pins.
pub fn pin_into<M, A>(
    tracker: &gupio::pin::Tracker<'_, M>,
    space: &A,
    start: gupio::pin::UserAddr,
    flags: gupio::pin::GupFlags,
    out: &mut [gupio::pfn::Pfn],
) -> Result<usize, gupio::pin::PinError>
where
    M: gupio::embed::PageOps + ?Sized,
    A: gupio::embed::AddressSpace + ?Sized,
{
    grab_into(tracker, space, start, flags, out, false)
}
