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

#[test]
fn mutate_moves_a_statement_past_the_next_one() {
    let text = "fn a() {\n    set();\n    push();\n}\nfn b() {\n    set();\n    push();\n}\n";
    let (out, changes) = mutate(text, "fn a(", "set();\n    push();", "push();\n    set();");
    assert_eq!(changes, 1);
    assert_eq!(
        out,
        "fn a() {\n    push();\n    set();\n}\nfn b() {\n    set();\n    push();\n}\n"
    );
}

#[test]
fn mutate_keeps_text_without_a_trailing_newline() {
    let (out, changes) = mutate("fn a() {\n    x(1);\n}", "fn a(", "x(1)", "x(2)");
    assert_eq!((out.as_str(), changes), ("fn a() {\n    x(2);\n}", 1));
}
