use super::*;

#[test]
fn counting_and_timing_are_separate_builds() {
    assert_eq!(
        atomics().to_string(),
        "cargo bench -p gupio --features rmw-stats --bench atomics"
    );
    assert_eq!(
        report(None, &[]).to_string(),
        "cargo bench -p gupio --bench report"
    );
    assert!(!report(Some(5), &[]).to_string().contains("rmw-stats"));
}

#[test]
fn samples_reach_the_report_and_micro_is_time_limited() {
    assert_eq!(
        report(Some(5), &[]).to_string(),
        "cargo bench -p gupio --bench report -- --samples 5"
    );
    assert_eq!(
        micro().to_string(),
        "cargo bench -p gupio --bench micro -- --max-time 0.5"
    );
}

#[test]
fn options_parse_samples_and_no_micro() {
    let options = parse(cli::from_list(&["--samples", "7", "--no-micro"])).unwrap();
    assert_eq!(
        options,
        Options {
            samples: Some(7),
            micro: false,
            instructions: false,
            only: Vec::new(),
        }
    );
    let defaults = parse(cli::from_list(&[])).unwrap();
    assert_eq!((defaults.samples, defaults.micro), (None, true));
    assert!(!defaults.instructions);
    assert!(
        parse(cli::from_list(&["--instructions"]))
            .unwrap()
            .instructions
    );
    assert!(matches!(
        parse(cli::from_list(&["--samples", "0"])),
        Err(Failure::Usage(_))
    ));
    assert!(matches!(
        parse(cli::from_list(&["--fast"])),
        Err(Failure::Usage(_))
    ));
}

#[test]
fn the_instructions_binary_is_found_in_cargos_messages() {
    let messages = concat!(
        r#"{"reason":"compiler-artifact","target":{"name":"gupio"},"executable":null}"#,
        "\n",
        r#"{"reason":"compiler-artifact","target":{"name":"instructions"},"#,
        r#""executable":"/t/release/deps/instructions-0a1b"}"#,
        "\n",
        r#"{"reason":"build-finished","success":true}"#,
    );
    assert_eq!(
        instructions_binary(messages).as_deref(),
        Some("/t/release/deps/instructions-0a1b")
    );
    assert_eq!(instructions_binary("not json"), None);
}

#[test]
fn only_groups_reach_the_report_in_order() {
    let options = parse(cli::from_list(&["--only", "pbr", "--only=gup"])).unwrap();
    assert_eq!(options.only, ["pbr", "gup"]);
    assert_eq!(
        report(Some(3), &options.only).to_string(),
        "cargo bench -p gupio --bench report -- --samples 3 --only pbr --only gup"
    );
}
