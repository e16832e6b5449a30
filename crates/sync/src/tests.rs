use super::*;
use std::sync::Arc;

#[test]
fn lock_excludes_other_threads() {
    // Miri interprets every step: a shorter run still interleaves.
    const ROUNDS: u64 = if cfg!(miri) { 100 } else { 10_000 };
    let m = Arc::new(Mutex::new(0u64));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*m.lock(), 4 * ROUNDS);
}

#[test]
fn try_lock_fails_while_held() {
    let m = Mutex::new(5);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 5);
}

#[test]
fn atomics_are_reexported() {
    let a = atomic::AtomicUsize::new(1);
    a.fetch_add(1, atomic::Ordering::Relaxed);
    atomic::fence(atomic::Ordering::SeqCst);
    spin_loop();
    assert_eq!(a.load(atomic::Ordering::Relaxed), 2);
}
