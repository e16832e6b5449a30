use super::*;

#[test]
fn rmw_stats_test_is_built_with_its_feature() {
    assert_eq!(
        rmw_stats_test().to_string(),
        "cargo test -p gupio-pin --features rmw-stats --test rmw_stats"
    );
}
