//! The deferred-release worker: direct-I/O read completions that found a
//! page cleaned meanwhile, re-dirtied and released in process context.

use std::sync::{Arc, Condvar, Mutex};

use gupio::pin::Tracker;
use gupio::release::{release_deferred, CompletedBio, DeferredList, DioRead, ReleaseError};
use gupio::sync::atomic::{AtomicUsize, Ordering};

use super::DEFERRED_SLOTS;
use crate::device::OwnedBvecs;
use crate::memory::lock;
use crate::{HostError, Memory};

/// Direct-I/O read completions the release path deferred, and the worker
/// that re-dirties and releases them in process context.
pub(super) struct Deferred {
    pub(super) memory: Arc<Memory>,
    pub(super) list: DeferredList<CompletedBio<OwnedBvecs>, DEFERRED_SLOTS>,
    /// Completions that found the list full; released by the worker too.
    pub(super) overflow: Mutex<Vec<CompletedBio<OwnedBvecs>>>,
    pub(super) state: Mutex<WorkerState>,
    pub(super) wake: Condvar,
    pub(super) idle: Condvar,
    pub(super) deferred: AtomicUsize,
    pub(super) errors: Mutex<Vec<ReleaseError>>,
    pub(super) stable_errors: Mutex<Vec<HostError>>,
}

#[derive(Default)]
pub(super) struct WorkerState {
    pub(super) kicks: usize,
    pub(super) draining: usize,
    pub(super) stopping: bool,
}

impl Deferred {
    fn kick(&self) {
        lock(&self.state).kicks += 1;
        self.wake.notify_all();
    }

    pub(super) fn record(&self, result: Result<gupio::release::ReleaseStats, ReleaseError>) {
        if let Err(error) = result {
            lock(&self.errors).push(error);
        }
    }

    /// A direct-I/O read's `end_io`: release now if every page is still
    /// dirty, otherwise defer to process context. Takes no page lock, as an
    /// interrupt handler may not.
    pub(super) fn complete_dio_read(&self, done: CompletedBio<OwnedBvecs>) {
        let tracker = Tracker::new(&*self.memory);
        match done.complete_dio_read(&tracker, &self.list) {
            Ok(DioRead::Released(released)) => self.record(released.result),
            Ok(DioRead::Deferred) => {
                // Relaxed: a statistic; it orders nothing.
                self.deferred.fetch_add(1, Ordering::Relaxed);
                self.kick();
            }
            Err(full) => {
                // Relaxed: a statistic; it orders nothing.
                self.deferred.fetch_add(1, Ordering::Relaxed);
                lock(&self.overflow).push(full.into_inner());
                self.kick();
            }
        }
    }

    /// Releases every deferred bio (re-dirtying its pages); returns how many.
    pub(super) fn drain(&self) -> usize {
        lock(&self.state).draining += 1;
        let tracker = Tracker::new(&*self.memory);
        let handled = self.memory.redirtying(|| {
            let mut handled = release_deferred(&self.list, &tracker, |released| {
                self.record(released.result);
            });
            let spilled = std::mem::take(&mut *lock(&self.overflow));
            handled += spilled.len();
            for bio in spilled {
                self.record(bio.release(&tracker, true).result);
            }
            handled
        });
        let mut state = lock(&self.state);
        state.draining -= 1;
        if state.draining == 0 {
            self.idle.notify_all();
        }
        handled
    }

    pub(super) fn pending(&self) -> bool {
        !self.list.is_empty() || !lock(&self.overflow).is_empty()
    }

    /// Waits until no drain is in progress.
    pub(super) fn wait_drained(&self) {
        let mut state = lock(&self.state);
        while state.draining > 0 {
            state = self
                .idle
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// The worker thread.
    pub(super) fn run(&self) {
        loop {
            let stopping = {
                let mut state = lock(&self.state);
                while state.kicks == 0 && !state.stopping {
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                state.kicks = 0;
                state.stopping
            };
            self.drain();
            if stopping {
                return;
            }
        }
    }
}
