use super::*;

#[test]
fn options_are_passed_on_to_the_demo_in_order() {
    let args = cli::rest(&mut cli::from_list(&[
        "--pages",
        "256",
        "--policy=skip",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(
        command(&args).to_string(),
        "cargo run --release -p gupio-host --bin gupio-demo -- --pages 256 --policy=skip --quiet"
    );
    assert_eq!(
        command(&[]).to_string(),
        "cargo run --release -p gupio-host --bin gupio-demo --"
    );
}
