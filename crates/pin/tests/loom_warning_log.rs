//! Loom model: `ArrayMemoryMap`'s warn hook, reported from two threads at
//! once, logs both warnings, each in a slot of its own.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_warning_log` (and a separate target dir).
//!
//! A report claims its slot with one atomic increment; were the claim a
//! load and a store, both reporters could take the same slot and one
//! warning would be lost, which this model would catch.
#![cfg(loom)]

use gupio_pfn::Pfn;
use gupio_pin::{ArrayMemoryMap, PageOps, Warning};
use loom::sync::Arc;
use loom::thread;

#[test]
fn two_reporters_at_once_both_land_in_the_log() {
    loom::model(|| {
        let map = Arc::new(ArrayMemoryMap::<1>::new(Pfn::new(0)));
        let warning = |pfn| Warning::CorruptFolio { pfn: Pfn::new(pfn) };
        let other = {
            let map = Arc::clone(&map);
            thread::spawn(move || map.warn(warning(1)))
        };
        map.warn(warning(2));
        other.join().unwrap();
        let mut logged: Vec<_> = map.warning_log().collect();
        logged.sort_by_key(|w| format!("{w:?}"));
        assert_eq!(logged, [warning(1), warning(2)]);
        assert_eq!(map.warnings(), 2);
    });
}
