use super::*;

const FOUR_KIB: PageGeometry = PageGeometry::FOUR_KIB;

#[test]
fn a_charge_that_fits_is_taken_and_the_peak_follows_it() {
    let account = PinAccount::new(10);
    account.try_charge(FOUR_KIB, 4).unwrap();
    account.try_charge(FOUR_KIB, 6).unwrap();
    assert_eq!((account.charged(), account.peak()), (10, 10));
    account.uncharge(FOUR_KIB, 7).unwrap();
    account.try_charge(FOUR_KIB, 2).unwrap();
    assert_eq!((account.charged(), account.peak()), (5, 10));
    assert_eq!(account.refusals(), 0);
}

#[test]
fn a_charge_past_the_limit_is_refused_whole_and_counted() {
    let account = PinAccount::new(10);
    account.try_charge(FOUR_KIB, 8).unwrap();
    assert_eq!(
        account.try_charge(FOUR_KIB, 3),
        Err(PinError::PinLimitExceeded {
            limit: 10,
            charged: 8,
            request: 3
        })
    );
    assert_eq!(
        (account.charged(), account.peak(), account.refusals()),
        (8, 8, 1),
        "no partial charge"
    );
    account.try_charge(FOUR_KIB, 2).unwrap();
    assert_eq!(account.charged(), 10, "exactly the limit fits");
}

#[test]
fn large_pages_are_charged_in_four_kib_units() {
    let account = PinAccount::new(32);
    account.try_charge(PageGeometry::SIXTY_FOUR_KIB, 2).unwrap();
    assert_eq!(account.charged(), 32);
    assert_eq!(
        account.try_charge(PageGeometry::SIXTEEN_KIB, 1),
        Err(PinError::PinLimitExceeded {
            limit: 32,
            charged: 32,
            request: 4
        })
    );
    account.uncharge(PageGeometry::SIXTY_FOUR_KIB, 2).unwrap();
    assert_eq!(account.charged(), 0);
}

#[test]
fn a_privileged_owner_passes_its_limit_and_is_still_counted() {
    let account = PinAccount::privileged(2);
    account.try_charge(FOUR_KIB, 5).unwrap();
    assert_eq!((account.charged(), account.peak()), (5, 5));
    account.set_privileged(false);
    assert!(account.try_charge(FOUR_KIB, 1).is_err());
    assert_eq!(account.refusals(), 1);
    account.uncharge(FOUR_KIB, 5).unwrap();
    assert_eq!(account.charged(), 0);
}

#[test]
fn a_lowered_limit_keeps_what_is_charged_and_refuses_more() {
    let account = PinAccount::new(8);
    account.try_charge(FOUR_KIB, 6).unwrap();
    account.set_limit(4);
    assert_eq!(account.charged(), 6);
    assert_eq!(
        account.try_charge(FOUR_KIB, 1),
        Err(PinError::PinLimitExceeded {
            limit: 4,
            charged: 6,
            request: 1
        })
    );
    account.uncharge(FOUR_KIB, 6).unwrap();
}

#[test]
fn an_uncharge_without_its_charge_is_refused_and_never_wraps() {
    let account = PinAccount::new(8);
    account.try_charge(FOUR_KIB, 2).unwrap();
    assert_eq!(
        account.uncharge(FOUR_KIB, 3),
        Err(PinError::AccountUnderflow {
            charged: 2,
            request: 3
        })
    );
    assert_eq!(account.charged(), 2);
}

#[test]
fn a_request_too_large_to_count_is_refused_even_when_privileged() {
    let account = PinAccount::privileged(0);
    account.try_charge(FOUR_KIB, 1).unwrap();
    assert!(matches!(
        account.try_charge(FOUR_KIB, usize::MAX),
        Err(PinError::PinLimitExceeded { charged: 1, .. })
    ));
    assert!(account
        .try_charge(PageGeometry::SIXTY_FOUR_KIB, usize::MAX)
        .is_err());
    assert_eq!((account.charged(), account.refusals()), (1, 2));
}
