//! The demo kernel's ELF sections and its `.text` by crate, read with
//! `object`; symbol names demangled with `rustc-demangle`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use crate::step::StepLog;

/// The crate a Rust symbol belongs to, or a bucket for others.
///
/// Both manglings in the kernel demangle to a path: legacy (`_ZN`, the
/// kernel and its dependencies) and v0 (`_R`, the precompiled `core` and
/// `compiler_builtins`). The crate is the path's first segment; for a
/// `<T as Trait>` impl it is T's crate, or the trait's when T is generic
/// (a bare name without `::`).
fn crate_of(symbol: &str) -> String {
    let Ok(demangled) = rustc_demangle::try_demangle(symbol) else {
        let rust = symbol.starts_with("_ZN") || symbol.starts_with("_R");
        return if rust { "(unknown Rust)" } else { "(not Rust)" }.to_owned();
    };
    // `{:#}` leaves out the legacy mangling's hash.
    let path = format!("{demangled:#}");
    let Some(qualified) = path.strip_prefix('<') else {
        return first_segment(&path);
    };
    // `<&mut T as Trait>`, `<[T]>` and the like: look through references,
    // pointers, slices and tuples to the type's path.
    let mut subject = qualified;
    while let Some(rest) = ["&", "mut ", "*const ", "*mut ", "dyn ", "[", "("]
        .iter()
        .find_map(|prefix| subject.strip_prefix(prefix))
    {
        subject = rest;
    }
    let (subject, trait_path) = subject.split_once(" as ").unwrap_or((subject, ""));
    // The type's own path ends where its brackets or the impl's `>` close.
    let subject = subject
        .split([']', ';', ')', ',', '>'])
        .next()
        .unwrap_or(subject);
    if subject.contains("::") || trait_path.is_empty() {
        first_segment(subject)
    } else {
        first_segment(trait_path)
    }
}

/// Rust's primitive types: an inherent impl on one is `core`'s.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f32", "f64",
];

/// The first `::`-separated segment of a demangled path.
fn first_segment(path: &str) -> String {
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    match &path[..end] {
        "" => "(unknown Rust)".to_owned(),
        primitive if PRIMITIVES.contains(&primitive) => "core".to_owned(),
        name => name.to_owned(),
    }
}

/// Whether `krate` is one of gupio's crates (the demo kernel is not).
fn is_gupio_crate(krate: &str) -> bool {
    krate == "gupio" || (krate.starts_with("gupio_") && krate != "gupio_demo_kernel")
}

/// Prints the kernel's section sizes and its `.text` by crate, and notes
/// gupio's share in the step's summary.
pub(super) fn report_sizes(kernel: &Path, log: &mut StepLog) -> Result<(), String> {
    let bytes = fs::read(kernel)
        .map_err(|error| format!("qemu: cannot read {}: {error}", kernel.display()))?;
    let elf = object::File::parse(bytes.as_slice())
        .map_err(|error| format!("qemu: {}: {error}", kernel.display()))?;
    let mut line = String::from("qemu: kernel sections:");
    for section in elf.sections().filter(|s| s.address() != 0 && s.size() != 0) {
        let name = section.name().unwrap_or("?");
        let _ = write!(line, " {name} {} B", section.size());
    }
    println!("{line}");

    let Some(text) = elf.section_by_name(".text") else {
        return Err("qemu: the kernel has no .text section".to_owned());
    };
    if elf.symbol_table().is_none() {
        println!("qemu: kernel has no symbol table; no per-crate .text breakdown");
        return Ok(());
    }
    let mut by_crate: Vec<(String, u64)> = Vec::new();
    // Identical-code folding and aliases (memcpy) give one address several names.
    let mut seen = std::collections::HashSet::new();
    for symbol in elf.symbols() {
        let function = symbol.kind() == SymbolKind::Text
            && symbol.section_index() == Some(text.index())
            && symbol.size() != 0;
        if !function || !seen.insert(symbol.address()) {
            continue;
        }
        let krate = crate_of(symbol.name().unwrap_or(""));
        match by_crate.iter_mut().find(|(name, _)| *name == krate) {
            Some((_, total)) => *total += symbol.size(),
            None => by_crate.push((krate, symbol.size())),
        }
    }
    by_crate.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let counted: u64 = by_crate.iter().map(|(_, size)| size).sum();
    let text_size = text.size();
    println!("qemu: kernel .text is {text_size} B; functions by crate (they cover {counted} B):");
    for (krate, size) in &by_crate {
        // Display only: the lossy float conversion cannot matter.
        #[allow(clippy::cast_precision_loss)]
        let percent = 100.0 * *size as f64 / text_size as f64;
        println!("  {krate:<24} {size:>7} B {percent:>5.1}%");
    }
    let gupio: u64 = by_crate
        .iter()
        .filter(|(krate, _)| is_gupio_crate(krate))
        .map(|(_, size)| size)
        .sum();
    // Display only: the lossy float conversion cannot matter.
    #[allow(clippy::cast_precision_loss)]
    let percent = 100.0 * gupio as f64 / text_size as f64;
    println!(
        "qemu: gupio's crates are {gupio} B of the kernel's {text_size} B of .text ({percent:.1}%)"
    );
    log.note(&format!(
        ".text {text_size} B, gupio {gupio} B ({percent:.1}%)"
    ));
    Ok(())
}

#[cfg(test)]
mod tests;
