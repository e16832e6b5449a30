//! Waiting: the gates that hold a transfer half done for a test, and the
//! one-shot slot a bio's submitter waits on.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use gupio::bio::BioOp;

use super::Device;
use crate::memory::lock;
use crate::HostError;

/// The test's side of a gate: the device stops in the middle of its next
/// transfer of one kind until the test releases it. Lets tests force an
/// interleaving (a DMA half done while writeback runs) with no sleeps.
#[derive(Debug)]
pub struct Gate {
    pub(super) reached: Receiver<()>,
    pub(super) release: Sender<()>,
}

impl Gate {
    /// Blocks until the device reaches the gate.
    ///
    /// # Errors
    /// [`HostError::DeviceGone`] if the device dropped the gate unreached
    /// (it shut down).
    ///
    /// ```
    /// use gupio::bio::BioOp;
    /// use gupio_host::{Machine, MachineConfig};
    /// let machine = Machine::new(MachineConfig::small()).unwrap();
    /// let file = machine.cache().create_file(1, &[]).unwrap();
    /// let gate = machine.device().gate(BioOp::Read, 0); // before the first chunk
    /// std::thread::scope(|s| {
    ///     let reader = s.spawn(|| machine.cache().read(&file, 0));
    ///     gate.wait_reached().unwrap(); // the fill is held at the gate
    ///     gate.release();
    ///     assert!(reader.join().unwrap().is_ok());
    /// });
    /// ```
    pub fn wait_reached(&self) -> Result<(), HostError> {
        self.reached.recv().map_err(|_| HostError::DeviceGone)
    }

    /// Lets the device go on with the transfer (see
    /// [`wait_reached`](Self::wait_reached)).
    pub fn release(self) {
        // The device may have gone: then there is nothing to release.
        let _ = self.release.send(());
    }
}

pub(super) struct GateSpec {
    pub(super) op: BioOp,
    pub(super) after_chunks: usize,
    pub(super) reached: Sender<()>,
    pub(super) release: Receiver<()>,
}

impl GateSpec {
    pub(super) fn stop(&self) {
        // The test may have dropped its side: then it does not care.
        if self.reached.send(()).is_ok() {
            let _ = self.release.recv();
        }
    }
}

/// A one-shot slot that a bio's `end_io` fills and its submitter waits on.
pub(crate) struct Waiter<T> {
    slot: Arc<(Mutex<Option<T>>, Condvar)>,
}

/// The `end_io` side of a [`Waiter`].
pub(crate) struct WaiterSet<T> {
    slot: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Waiter<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    pub(crate) fn setter(&self) -> WaiterSet<T> {
        WaiterSet {
            slot: self.slot.clone(),
        }
    }

    fn try_take(&self) -> Option<T> {
        lock(&self.slot.0).take()
    }

    /// Whether the value is there (without taking it).
    pub(crate) fn is_set(&self) -> bool {
        lock(&self.slot.0).is_some()
    }

    /// Waits for the value; a synchronous device runs its queue meanwhile.
    pub(crate) fn wait(&self, device: &Device) -> Result<T, HostError> {
        if device.is_synchronous() {
            loop {
                if let Some(value) = self.try_take() {
                    return Ok(value);
                }
                if !device.process_one() {
                    return self.try_take().ok_or(HostError::DeviceGone);
                }
            }
        }
        let (slot, filled) = &*self.slot;
        let mut value = lock(slot);
        loop {
            if let Some(value) = value.take() {
                return Ok(value);
            }
            value = filled
                .wait(value)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl<T> WaiterSet<T> {
    pub(crate) fn set(self, value: T) {
        *lock(&self.slot.0) = Some(value);
        self.slot.1.notify_all();
    }
}

#[cfg(test)]
mod tests;
