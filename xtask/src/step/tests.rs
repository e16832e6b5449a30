use super::*;

#[test]
fn durations_read_as_seconds_then_minutes() {
    assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
    assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
}

#[test]
fn passing_steps_are_recorded_with_their_notes() {
    let mut runner = Runner::new();
    assert_eq!(runner.step("first", &[], |_| Ok(())), Ok(()));
    assert_eq!(
        runner.step("second", &[], |log| {
            log.note("no models yet");
            Ok(())
        }),
        Ok(())
    );
    let summary = runner.summary("test", Duration::from_secs(3));
    assert!(summary.contains("ok: no models yet"), "{summary}");
    assert!(
        summary.ends_with("steps: 2 passed, 0 failed, 0 skipped\n"),
        "{summary}"
    );
}

#[test]
fn a_failing_step_stops_the_caller_and_is_counted() {
    let mut runner = Runner::new();
    assert_eq!(
        runner.step("broken", &[], |_| Err("exit status 1".to_owned())),
        Err(Failure::StepFailed)
    );
    let summary = runner.summary("test", Duration::ZERO);
    assert!(
        summary.contains("FAILED broken: exit status 1\n"),
        "{summary}"
    );
    assert!(
        summary.ends_with("steps: 0 passed, 1 failed, 0 skipped\n"),
        "{summary}"
    );
}

#[test]
fn a_missing_tool_fails_unless_skipping_is_allowed() {
    let missing = Tool::Program {
        name: "gupio-no-such-program",
        package: "none",
    };
    let mut runner = Runner::new();
    let mut ran = false;
    assert_eq!(
        runner.step("needs tool", &[missing], |_| {
            ran = true;
            Ok(())
        }),
        Err(Failure::StepFailed)
    );
    assert!(!ran, "the body must not run without its tool");

    runner.set_allow_skip(true);
    assert_eq!(runner.step("needs tool", &[missing], |_| Ok(())), Ok(()));
    let summary = runner.summary("test", Duration::ZERO);
    assert!(
        summary.contains("SKIPPED: gupio-no-such-program missing"),
        "{summary}"
    );
    assert!(
        summary.ends_with("steps: 0 passed, 1 failed, 1 skipped\n"),
        "{summary}"
    );
}
