use super::*;

#[test]
fn plain_words_are_not_quoted() {
    let cmd = Cmd::cargo().args(["test", "-p", "gupio-pfn", "--target=x86_64-unknown-none"]);
    assert_eq!(
        cmd.to_string(),
        "cargo test -p gupio-pfn --target=x86_64-unknown-none"
    );
}

#[test]
fn environment_and_special_words_are_quoted() {
    let cmd = Cmd::cargo().env("RUSTFLAGS", "--cfg loom").args([
        "doc",
        "--config",
        r#"build.rustdocflags=["-D","warnings"]"#,
    ]);
    assert_eq!(
        cmd.to_string(),
        r#"RUSTFLAGS='--cfg loom' cargo doc --config 'build.rustdocflags=["-D","warnings"]'"#
    );
}

#[test]
fn a_working_directory_is_shown_as_a_cd() {
    let cmd = Cmd::cargo()
        .in_dir("crates/demo-kernel")
        .args(["fmt", "--check"]);
    assert_eq!(
        cmd.to_string(),
        "cd crates/demo-kernel && cargo fmt --check"
    );
}

#[test]
fn single_quotes_and_empty_words_survive_quoting() {
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
    assert_eq!(shell_quote(""), "''");
}

#[test]
fn run_reports_a_failing_command() {
    let error = Cmd::new("false").run().unwrap_err();
    assert!(error.contains("`false` failed"), "{error}");
}

#[test]
fn probe_reads_output_and_spots_missing_programs() {
    assert_eq!(Cmd::new("echo").arg("hi").probe().as_deref(), Some("hi\n"));
    assert_eq!(Cmd::new("gupio-no-such-program").probe(), None);
}
