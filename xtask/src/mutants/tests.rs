use super::mutate;

#[test]
fn mutate_changes_only_inside_the_named_functions() {
    let text = "fn a() {\n    x(Acquire);\n}\nfn b() {\n    x(Acquire);\n}\n";
    let (out, changes) = mutate(text, "fn a(", "Acquire", "Relaxed");
    assert_eq!(changes, 1);
    assert_eq!(
        out,
        "fn a() {\n    x(Relaxed);\n}\nfn b() {\n    x(Acquire);\n}\n"
    );
}

#[test]
fn mutate_reports_nothing_to_change() {
    let (out, changes) = mutate("fn a() {}\n", "fn z(", "x", "y");
    assert_eq!((out.as_str(), changes), ("fn a() {}\n", 0));
}
