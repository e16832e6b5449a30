//! Loom model: concurrent long-term pinners charging one owner's
//! `PinAccount`.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-pin
//! --release --test loom_account` (and a separate target dir).
//!
//! The last model is the proof that the others can fail: the same scenario
//! over a deliberately racy check-then-add account, which loom drives past
//! the limit.
#![cfg(loom)]

use gupio_pfn::{PageGeometry, Pfn};
use gupio_pin::testing::TestMachine;
use gupio_pin::{
    AddressSpace, FaultKind, GupFlags, Mapping, MappingFlags, PinAccount, PinError, Tracker,
    UserAddr,
};
use gupio_sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

const FOUR_KIB: PageGeometry = PageGeometry::FOUR_KIB;

/// Charges `pages` and says whether it was allowed; a refusal must name
/// the limit and the request.
fn charge(account: &PinAccount, pages: usize) -> bool {
    match account.try_charge(FOUR_KIB, pages) {
        Ok(()) => {
            assert!(account.charged() <= account.limit(), "over the limit");
            true
        }
        Err(PinError::PinLimitExceeded { limit, request, .. }) => {
            assert_eq!((limit, request), (account.limit(), pages));
            false
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn three_chargers_never_pass_the_limit_and_the_charge_ends_exact() {
    loom::model(|| {
        let account = Arc::new(PinAccount::new(4));
        // Two hold their charge, one charges and gives it back.
        let spawn = |pages: usize, keep: bool| {
            let account = Arc::clone(&account);
            thread::spawn(move || {
                let charged = charge(&account, pages);
                if charged && !keep {
                    account.uncharge(FOUR_KIB, pages).unwrap();
                }
                charged.then_some(pages).filter(|_| keep)
            })
        };
        let threads = [spawn(2, true), spawn(2, true), spawn(1, false)];
        let kept: usize = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap_or(0))
            .sum();
        assert_eq!(account.charged(), kept, "exact");
        assert!(account.peak() <= 4, "the peak never passed the limit");
        assert!(kept >= 2, "the first charger always fits");
        account.uncharge(FOUR_KIB, kept).unwrap();
        assert_eq!(account.charged(), 0);
    });
}

/// User page N maps frame N, writable.
struct Identity;

impl AddressSpace for Identity {
    fn page_geometry(&self) -> PageGeometry {
        FOUR_KIB
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        let pfn = Pfn::new(addr.get() / FOUR_KIB.size());
        Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    }

    fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
        Ok(())
    }
}

#[test]
fn two_long_term_pinners_of_one_owner_pin_only_what_was_charged() {
    loom::model(|| {
        let m = Arc::new(TestMachine::<4>::new(0));
        for page in 0..4 {
            m.prepare(page, 0);
        }
        // Room for three pages: one pinner of two fits, not both.
        let account = Arc::new(PinAccount::new(3));
        let spawn = |first: usize| {
            let (m, account) = (Arc::clone(&m), Arc::clone(&account));
            thread::spawn(move || {
                let t = Tracker::new(&*m);
                let start = UserAddr::new(first * FOUR_KIB.size());
                let Ok(runs) =
                    t.pin_user_pages_longterm(&Identity, start, 2, GupFlags::WRITE, &account)
                else {
                    // Refused before any pin.
                    assert_eq!(m.page(first).refcount(), 1);
                    return 0;
                };
                let runs: Vec<_> = runs.map(Result::unwrap).collect();
                let held: usize = runs.iter().map(|run| run.charged()).sum();
                assert!(account.charged() <= 3, "over the limit");
                for run in runs {
                    t.release_held(run, false).unwrap();
                }
                held
            })
        };
        let (a, b) = (spawn(0), spawn(2));
        let pinned = a.join().unwrap() + b.join().unwrap();
        assert!(pinned == 2 || pinned == 4, "{pinned}");
        assert_eq!(account.charged(), 0, "every release uncharged");
        assert!(account.peak() <= 3);
        assert_eq!(account.refusals(), usize::from(pinned == 2));
        assert_eq!(m.stats.acquired(), m.stats.released());
        for page in 0..4 {
            assert_eq!(m.page(page).refcount(), 1);
        }
    });
}

/// The mutation the account's compare-and-swap loop guards against: a
/// load, a check and a separate add.
struct RacyAccount {
    charged: AtomicUsize,
    limit: usize,
}

impl RacyAccount {
    fn try_charge(&self, units: usize) -> bool {
        // Relaxed, as the real account: the bug is the split, not the order.
        let charged = self.charged.load(Ordering::Relaxed);
        if charged + units > self.limit {
            return false;
        }
        self.charged.fetch_add(units, Ordering::Relaxed);
        true
    }
}

#[test]
#[should_panic(expected = "over the limit")]
fn a_check_then_add_account_is_driven_past_its_limit() {
    loom::model(|| {
        let account = Arc::new(RacyAccount {
            charged: AtomicUsize::new(0),
            limit: 3,
        });
        let spawn = || {
            let account = Arc::clone(&account);
            thread::spawn(move || account.try_charge(2))
        };
        let (a, b) = (spawn(), spawn());
        let _ = (a.join().unwrap(), b.join().unwrap());
        assert!(
            account.charged.load(Ordering::Relaxed) <= account.limit,
            "over the limit"
        );
    });
}
