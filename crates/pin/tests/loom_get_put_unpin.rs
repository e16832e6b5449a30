//! Loom model: gets and puts racing an unpin on one small page.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_get_put_unpin` (and a separate target dir).
#![cfg(loom)]

use gupio_pin::testing::TestMachine;
use gupio_pin::{PinError, Tracker, Warning};
use loom::sync::Arc;
use loom::thread;

#[test]
fn get_put_racing_the_last_unpin_frees_once() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<1>::new(0));
        let page = m.prepare(0, 0);
        Tracker::new(&*m).pin_page(page).unwrap();

        // Thread a owns the allocation reference; thread b owns the pin.
        let a = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                t.get_page(page).unwrap();
                t.put_page(page).unwrap();
                t.put_page(page).unwrap();
            })
        };
        let b = {
            let m = Arc::clone(&m);
            thread::spawn(move || Tracker::new(&*m).unpin_page(page).unwrap())
        };
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(m.frees(0), 1);
        assert_eq!(m.page(0).refcount(), 0);
        assert_eq!(m.warnings(), 0);
        assert_eq!(m.stats.acquired(), m.stats.released());
    });
}

#[test]
fn a_stray_unpin_racing_get_put_is_refused_without_damage() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<1>::new(0));
        let page = m.prepare(0, 0);

        let a = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                t.get_page(page).unwrap();
                t.put_page(page).unwrap();
            })
        };
        let b = {
            let m = Arc::clone(&m);
            thread::spawn(move || Tracker::new(&*m).unpin_page(page))
        };
        a.join().unwrap();
        assert_eq!(b.join().unwrap(), Err(PinError::NotPinned { pfn: page }));

        assert_eq!(m.page(0).refcount(), 1, "never wrapped, never freed");
        assert_eq!(m.frees(0), 0);
        assert_eq!(m.warnings(), 1);
        assert!(matches!(
            m.last_warning(),
            Some(Warning::UnpinWithoutPin { pincount: 0, .. })
        ));
        assert_eq!(m.stats.released(), 0);
    });
}
