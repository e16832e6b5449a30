use super::*;

#[test]
fn a_user_address_gives_back_its_raw_value() {
    assert_eq!(UserAddr::new(1).get(), 1);
    assert_eq!(UserAddr::new(0x7fff_1234).get(), 0x7fff_1234);
}
