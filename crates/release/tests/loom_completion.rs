//! Loom models of completion: chained bios and double completions.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-release
//! --release --test loom_completion` (and a separate target dir).
#![cfg(loom)]

use gupio_bio::BioStatus;

use gupio_release::{Completion, Ending, ReleaseError, ReleaseWarning, Warn};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

#[derive(Default)]
struct Warnings(AtomicUsize);

impl Warn for Warnings {
    fn warn(&self, warning: ReleaseWarning) {
        assert_eq!(warning, ReleaseWarning::DoubleCompletion);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn chained_parent_ends_once_after_both_children() {
    loom::model(|| {
        let parent = Arc::new(Completion::new());
        let warn = Arc::new(Warnings::default());
        parent.start().unwrap();
        let children_done = Arc::new(AtomicUsize::new(0));
        let tokens = [parent.chain().unwrap(), parent.chain().unwrap()];
        let statuses = [BioStatus::Ok, BioStatus::Medium];
        let threads: Vec<_> = tokens
            .into_iter()
            .zip(statuses)
            .map(|(token, status)| {
                let (parent, warn, done) = (
                    Arc::clone(&parent),
                    Arc::clone(&warn),
                    Arc::clone(&children_done),
                );
                thread::spawn(move || {
                    // Relaxed: only read after a Finished, which the
                    // completion's AcqRel count orders after this.
                    done.fetch_add(1, Ordering::Relaxed);
                    let ending = parent.child_complete(token, status, &*warn).unwrap();
                    if let Ending::Finished(_) = ending {
                        assert_eq!(
                            done.load(Ordering::Relaxed),
                            2,
                            "end_io before a child finished"
                        );
                    }
                    ending
                })
            })
            .collect();
        let own = parent.complete(BioStatus::Ok, &*warn).unwrap();
        let mut endings = vec![own];
        for th in threads {
            endings.push(th.join().unwrap());
        }
        let finished: Vec<_> = endings
            .iter()
            .filter_map(|e| match e {
                Ending::Finished(s) => Some(*s),
                Ending::Pending => None,
            })
            .collect();
        assert_eq!(
            finished,
            [BioStatus::Medium],
            "end_io exactly once, with the error"
        );
        assert_eq!(warn.0.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn double_completion_racing_a_single_one_ends_once() {
    loom::model(|| {
        let c = Arc::new(Completion::new());
        let warn = Arc::new(Warnings::default());
        c.start().unwrap();
        let threads: Vec<_> = [BioStatus::Ok, BioStatus::IoError]
            .into_iter()
            .map(|status| {
                let (c, warn) = (Arc::clone(&c), Arc::clone(&warn));
                thread::spawn(move || c.complete(status, &*warn))
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let finished = results
            .iter()
            .filter(|r| matches!(r, Ok(Ending::Finished(_))))
            .count();
        let refused = results
            .iter()
            .filter(|r| **r == Err(ReleaseError::DoubleCompletion))
            .count();
        assert_eq!((finished, refused), (1, 1));
        assert_eq!(warn.0.load(Ordering::Relaxed), 1);
        assert!(!c.is_in_flight());
    });
}
