//! The C ABI's checks in `cargo xtask test`: the committed header matches
//! what cbindgen generates, the header compiles freestanding, the host
//! static library links into the C test program, which runs green, and the
//! static library builds for every bare-metal target (its size reported).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::layout;
use crate::step::StepLog;

/// The crate's directory and package.
const CAPI_DIR: &str = "crates/capi";
const CAPI_PACKAGE: &str = "gupio-capi";

/// The committed header, relative to the repository root.
pub const HEADER: &str = "crates/capi/include/gupio.h";

/// The cbindgen configuration.
const CBINDGEN_CONFIG: &str = "crates/capi/cbindgen.toml";

/// The C test program.
const C_TEST: &str = "crates/capi/tests/capi_test.c";

/// The warnings the C code compiles under, all errors.
const C_FLAGS: [&str; 5] = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The profile of the static library: `panic = "abort"`, LTO, small (see
/// the workspace's Cargo.toml).
const PROFILE: &str = "capi";

/// The header cbindgen generates now equals the committed one.
pub fn header_drift(log: &mut StepLog) -> Result<(), String> {
    let fresh = scratch_dir()?.join("gupio.h");
    Cmd::new("cbindgen")
        .args(["--config", CBINDGEN_CONFIG, "--crate", CAPI_PACKAGE])
        .args(["--output", &layout::display(&fresh), "--quiet"])
        .run()?;
    let committed = read(&layout::root().join(HEADER))?;
    let generated = read(&fresh)?;
    if committed != generated {
        let line = first_difference(&committed, &generated);
        return Err(format!(
            "{HEADER} differs from what cbindgen generates (first at line {line}); \
             regenerate it with `cbindgen --config {CBINDGEN_CONFIG} --crate {CAPI_PACKAGE} \
             --output {HEADER}` and commit it"
        ));
    }
    log.note(&format!("{} lines", committed.lines().count()));
    Ok(())
}

/// The 1-based number of the first line where `a` and `b` differ.
fn first_difference(a: &str, b: &str) -> usize {
    let mut lines = a.lines().zip(b.lines());
    let same = lines.by_ref().take_while(|(x, y)| x == y).count();
    same + 1
}

/// The header compiles on its own, freestanding; the host static library
/// (built with `panic = "abort"` and the panic hook) links into the C test
/// program, which runs and exits with 0.
pub fn c_tests(log: &mut StepLog) -> Result<(), String> {
    let scratch = scratch_dir()?;
    let include = format!("-I{CAPI_DIR}/include");
    let probe = scratch.join("header_only.c");
    fs::write(&probe, "#include \"gupio.h\"\n")
        .map_err(|e| format!("cannot write {}: {e}", probe.display()))?;
    Cmd::new("cc")
        .args(C_FLAGS)
        .args(["-ffreestanding", &include, "-c"])
        .arg(layout::display(&probe))
        .args(["-o", &layout::display(&scratch.join("header_only.o"))])
        .run()?;
    let library = static_library(None)?;
    let program = scratch.join("capi_test");
    Cmd::new("cc")
        .args(C_FLAGS)
        .args([include.as_str(), C_TEST])
        .arg(layout::display(&library))
        .args(["-lpthread", "-o", &layout::display(&program)])
        .run()?;
    let output = Cmd::new(&layout::display(&program)).read()?;
    print!("{output}");
    let verdict = output.lines().last().unwrap_or("").to_owned();
    if !verdict.ends_with(" 0 failed") {
        return Err(format!("the C tests did not all pass: {verdict}"));
    }
    log.note(&verdict);
    Ok(())
}

/// Builds the static library for `target` (the host when `None`) and
/// returns its path.
fn static_library(target: Option<&str>) -> Result<PathBuf, String> {
    let mut cmd = Cmd::cargo().args(["rustc", "-p", CAPI_PACKAGE, "--profile", PROFILE]);
    if let Some(target) = target {
        cmd = cmd.args(["--target", target]);
    }
    cmd.args(["--features", "panic-handler", "--crate-type", "staticlib"])
        .run()?;
    let mut dir = layout::target_dir();
    if let Some(target) = target {
        dir.push(target);
    }
    Ok(dir.join(PROFILE).join("libgupio_capi.a"))
}

/// The static library builds for each bare-metal target; notes its size
/// and the size of gupio's code in it (the executable sections of the
/// crate's own object, which LTO made hold all of gupio).
pub fn bare_metal(log: &mut StepLog, targets: &[&str]) -> Result<(), String> {
    let mut sizes = Vec::new();
    for target in targets {
        let library = static_library(Some(target))?;
        let archive =
            fs::read(&library).map_err(|e| format!("cannot read {}: {e}", library.display()))?;
        let code = gupio_code_bytes(&archive)
            .ok_or_else(|| format!("no gupio_capi object found in {}", library.display()))?;
        println!(
            "{target}: {} bytes, gupio's code {code} bytes",
            archive.len()
        );
        sizes.push(format!("{target} {} B (code {code} B)", archive.len()));
    }
    log.note(&sizes.join("; "));
    Ok(())
}

/// The bytes of executable sections in the archive member whose name starts
/// with `gupio_capi` (an ELF object of either word size).
fn gupio_code_bytes(archive: &[u8]) -> Option<u64> {
    let mut total = None;
    for (name, object) in archive_members(archive)? {
        if name.starts_with("gupio_capi") {
            *total.get_or_insert(0) += elf_code_bytes(object)?;
        }
    }
    total
}

/// The members of a System V / GNU `ar` archive, with their names (long
/// names resolved through the `//` table).
fn archive_members(archive: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let mut rest = archive.strip_prefix(b"!<arch>\n")?;
    let mut long_names: &[u8] = &[];
    let mut members = Vec::new();
    while rest.len() >= 60 {
        let header = &rest[..60];
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let data = rest.get(60..60 + size)?;
        let raw_name = std::str::from_utf8(&header[..16]).ok()?.trim_end();
        if raw_name == "//" {
            long_names = data;
        } else if let Some(offset) = raw_name.strip_prefix('/').and_then(|n| n.parse().ok()) {
            let tail: &[u8] = long_names.get(offset..)?;
            let end = tail.iter().position(|&b| b == b'\n').unwrap_or(tail.len());
            let name = String::from_utf8_lossy(&tail[..end]);
            members.push((name.trim_end_matches('/').to_owned(), data));
        } else if raw_name != "/" && raw_name != "/SYM64/" {
            members.push((raw_name.trim_end_matches('/').to_owned(), data));
        }
        // Members are aligned to even offsets.
        rest = rest.get(60 + size + size % 2..).unwrap_or(&[]);
    }
    Some(members)
}

/// The total size of the sections of a little-endian ELF object marked
/// executable (`SHF_EXECINSTR`).
fn elf_code_bytes(object: &[u8]) -> Option<u64> {
    const SHF_EXECINSTR: u64 = 0x4;
    if object.get(..4)? != b"\x7fELF" || *object.get(5)? != 1 {
        return None;
    }
    let wide = *object.get(4)? == 2;
    let int = |at: usize, bytes: usize| -> Option<u64> {
        let slice = object.get(at..at + bytes)?;
        Some(
            slice
                .iter()
                .rev()
                .fold(0, |acc, &b| acc << 8 | u64::from(b)),
        )
    };
    let word = if wide { 8 } else { 4 };
    let (shoff, shentsize, shnum) = if wide {
        (int(0x28, 8)?, int(0x3a, 2)?, int(0x3c, 2)?)
    } else {
        (int(0x20, 4)?, int(0x2e, 2)?, int(0x30, 2)?)
    };
    let mut total = 0;
    for index in 0..shnum {
        let at = usize::try_from(shoff + index * shentsize).ok()?;
        let flags = int(at + 8, word)?;
        // sh_size follows sh_flags, sh_addr and sh_offset.
        let size = int(at + 8 + 3 * word, word)?;
        if flags & SHF_EXECINSTR != 0 {
            total += size;
        }
    }
    Some(total)
}

/// `target/capi-check`, created.
fn scratch_dir() -> Result<PathBuf, String> {
    let dir = layout::target_dir().join("capi-check");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;
