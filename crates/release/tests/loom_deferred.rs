//! Loom model: the deferred-release list filled from an interrupt-like
//! thread and drained by a worker.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-release
//! --release --test loom_deferred` (and a separate target dir).
#![cfg(loom)]

use gupio_bio::{Bio, BioLimits, BioOp, BioStatus, BioVec, Sector};
use gupio_pfn::Origin;
use gupio_pin::testing::TestMachine;
use gupio_pin::{PageFlags, Tracker};
use gupio_release::{release_deferred, CompletedBio, DeferredList, DioRead, SubmittedBio};
use loom::sync::Arc;
use loom::thread;

type Table = heapless::Vec<BioVec, 1>;

#[test]
fn every_deferred_bio_is_released_exactly_once() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<2>::new(0));
        let list: Arc<DeferredList<CompletedBio<Table>, 2>> = Arc::new(DeferredList::new());
        let pages = [m.prepare(0, 0), m.prepare(1, 0)];
        let t = Tracker::new(&*m);
        for page in pages {
            t.pin_page(page).unwrap();
        }

        // "Interrupt": two DIO reads complete; writeback cleaned their pages
        // (never dirtied here), so both are deferred.
        let irq = {
            let (m, list) = (Arc::clone(&m), Arc::clone(&list));
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                for page in pages {
                    let mut bio =
                        Bio::new(Table::new(), BioOp::Read, Sector(0), BioLimits::default());
                    let _ = bio.add_page(page, 4096, 0, Origin::Pinned).unwrap();
                    let done = SubmittedBio::submit(bio).unwrap().complete(BioStatus::Ok);
                    match done.complete_dio_read(&t, &list) {
                        Ok(DioRead::Deferred) => {}
                        _ => panic!("expected the bio to be deferred"),
                    }
                }
            })
        };
        // Worker: drains whatever is there, once, concurrently.
        let worker = {
            let (m, list) = (Arc::clone(&m), Arc::clone(&list));
            thread::spawn(move || {
                release_deferred(&list, &Tracker::new(&*m), |r| assert!(r.result.is_ok()))
            })
        };
        irq.join().unwrap();
        let early = worker.join().unwrap();
        // The worker runs again after the interrupt is done.
        let late = release_deferred(&list, &t, |r| assert!(r.result.is_ok()));
        assert_eq!(early + late, 2, "each bio handled exactly once");
        for pfn in [0, 1] {
            assert_eq!(m.page(pfn).refcount(), 1, "pfn {pfn} released once");
            assert!(m.page(pfn).flags().contains(PageFlags::DIRTY), "re-dirtied");
        }
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), m.stats.released());
    });
}
