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
