//! The FAT scenario's image: seeded with `mkfs.fat` and mtools before the
//! boot, checked against the kernel's manifest with `fsck.fat -n` and
//! mtools after it.

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::cmd::Cmd;

/// The file checksum and the FAT scenario's command-line and manifest
/// formats, shared with the kernel (see the file's header).
mod checksum {
    include!("../../../crates/demo-kernel/src/checksum.rs");
}

/// Size of the FAT image in KiB: FAT32 with 4 KiB clusters needs at least
/// 65525 clusters (embedded-sdmmc, like the FAT specification, tells the
/// FAT type by the cluster count), so 300 MiB; the file is sparse.
const FAT_IMAGE_KIB: u64 = 300 * 1024;
/// Sectors per cluster: 4 KiB clusters, one page each, page aligned.
const FAT_CLUSTER_SECTORS: &str = "8";

/// A file `cargo xtask qemu` seeds the FAT image with.
pub(super) struct SeedFile {
    /// Its 8.3 name in the root directory.
    name: &'static str,
    /// Its contents.
    bytes: Vec<u8>,
}

/// Bytes from a xorshift generator started at `seed` (never zero).
///
/// By hand: three shifts give the seeded files bytes that differ from page
/// to page and are the same in every run; `rand` would add several crates
/// for it.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// The seeded files: text, binary across many clusters, a small binary,
/// and the one the kernel deletes.
fn seed_files() -> Vec<SeedFile> {
    let readme: String = (1..=40)
        .map(|line| format!("gupio demo kernel, seeded line {line:02}: the page cache keeps it\n"))
        .collect();
    let old: String = (1..=100)
        .map(|line| format!("old line {line:03}, deleted by the kernel\n"))
        .collect();
    vec![
        SeedFile {
            name: "README.TXT",
            bytes: readme.into_bytes(),
        },
        SeedFile {
            name: "BIG.BIN",
            bytes: noise(0x6775_7069_6f21, 200 * 1024 + 123),
        },
        SeedFile {
            name: "KEEP.DAT",
            bytes: noise(0x5eed, 9000),
        },
        SeedFile {
            name: checksum::DELETED_SEED,
            bytes: old.into_bytes(),
        },
    ]
}

/// The FNV-1a checksum of `bytes`.
fn checksum_of(bytes: &[u8]) -> u32 {
    let mut sum = checksum::Checksum::new();
    sum.update(bytes);
    sum.get()
}

/// Runs a FAT tool; its output, or an error naming the package to install.
fn fat_tool(command: Cmd, package: &str) -> Result<Output, String> {
    command
        .env("MTOOLS_SKIP_CHECK", "1")
        .capture()
        .map_err(|error| {
            format!(
                "qemu: {error}\n(install it with `apt-get install {package}`; see ci/install.sh)"
            )
        })
}

/// `path` as a command argument.
pub(super) fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Makes the FAT32 image with `mkfs.fat` and copies the seeded files into
/// its root with `mcopy` (staged in `staging`); returns them.
pub(super) fn write_fat_image(path: &Path, staging: &Path) -> Result<Vec<SeedFile>, String> {
    // mkfs.fat -C refuses to overwrite.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("qemu: cannot remove {}: {error}", path.display())),
    }
    let output = fat_tool(
        Cmd::new("mkfs.fat")
            .args(["-F", "32", "-s", FAT_CLUSTER_SECTORS, "-n", "GUPIO", "-C"])
            .arg(path_arg(path))
            .arg(FAT_IMAGE_KIB.to_string()),
        "dosfstools",
    )?;
    if !output.status.success() {
        return Err(format!(
            "qemu: mkfs.fat failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    fs::create_dir_all(staging)
        .map_err(|error| format!("qemu: cannot create {}: {error}", staging.display()))?;
    let seeds = seed_files();
    for seed in &seeds {
        let file = staging.join(seed.name);
        fs::write(&file, &seed.bytes)
            .map_err(|error| format!("qemu: cannot write {}: {error}", file.display()))?;
        let output = fat_tool(
            Cmd::new("mcopy")
                .arg("-i")
                .arg(path_arg(path))
                .arg(path_arg(&file))
                .arg(format!("::/{}", seed.name)),
            "mtools",
        )?;
        if !output.status.success() {
            return Err(format!(
                "qemu: mcopy of {} failed: {}",
                seed.name,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    println!(
        "qemu: {} is FAT32 ({} MiB, 4 KiB clusters) with {} seeded files",
        path.display(),
        FAT_IMAGE_KIB / 1024,
        seeds.len()
    );
    Ok(seeds)
}

/// The kernel command line naming the seeded files, their sizes and checksums.
pub(super) fn seed_bootargs(seeds: &[SeedFile]) -> String {
    let list: Vec<String> = seeds
        .iter()
        .map(|seed| {
            format!(
                "{}:{}:{:08x}",
                seed.name,
                seed.bytes.len(),
                checksum_of(&seed.bytes)
            )
        })
        .collect();
    format!("{}{}", checksum::SEED_KEY, list.join(","))
}

/// One line of the kernel's manifest.
#[derive(Debug, PartialEq, Eq)]
enum ManifestEntry {
    /// A file the kernel left: path, size, checksum.
    File(String, u64, u32),
    /// A file the kernel deleted.
    Gone(String),
}

/// The manifest lines of the UART log (a format of the kernel's own,
/// `src/checksum.rs`; read by hand).
fn parse_manifest(uart: &str) -> Result<Vec<ManifestEntry>, String> {
    uart.lines()
        .filter_map(|line| line.trim_end().strip_prefix(checksum::MANIFEST_PREFIX))
        .map(|entry| {
            let words: Vec<&str> = entry.split_whitespace().collect();
            match words.as_slice() {
                ["file", name, size, sum] => {
                    let size = size
                        .parse()
                        .map_err(|_| format!("manifest: bad size in `{entry}`"))?;
                    let sum = u32::from_str_radix(sum, 16)
                        .map_err(|_| format!("manifest: bad checksum in `{entry}`"))?;
                    Ok(ManifestEntry::File((*name).to_owned(), size, sum))
                }
                ["gone", name] => Ok(ManifestEntry::Gone((*name).to_owned())),
                _ => Err(format!("manifest: cannot parse `{entry}`")),
            }
        })
        .collect()
}

/// The oracle of the FAT scenario: `fsck.fat -n` finds no error, every
/// file of the kernel's manifest reads back from the image (mtools) with
/// its size and checksum, the seeded files are intact and the deleted
/// ones gone.
pub(super) fn check_fat_image(path: &Path, uart: &str, seeds: &[SeedFile]) -> Result<(), String> {
    let fsck = fat_tool(
        Cmd::new("fsck.fat").arg("-n").arg(path_arg(path)),
        "dosfstools",
    )?;
    let fsck_log = format!(
        "{}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    print!("{fsck_log}");
    if !fsck.status.success() {
        return Err(format!(
            "fsck.fat -n found errors in {} ({}):\n{fsck_log}",
            path.display(),
            fsck.status
        ));
    }
    let manifest = parse_manifest(uart)?;
    let mut problems = Vec::new();
    for entry in &manifest {
        match entry {
            ManifestEntry::File(name, size, sum) => {
                let output = fat_tool(
                    Cmd::new("mcopy")
                        .args(["-n", "-i"])
                        .arg(path_arg(path))
                        .arg(format!("::/{name}"))
                        .arg("-"),
                    "mtools",
                )?;
                if !output.status.success() {
                    problems.push(format!(
                        "{name}: mcopy failed: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                    continue;
                }
                let found = (output.stdout.len() as u64, checksum_of(&output.stdout));
                if found != (*size, *sum) {
                    problems.push(format!(
                        "{name}: the image holds {} bytes, sum {:08x}; the kernel's manifest says {size} bytes, sum {sum:08x}",
                        found.0, found.1
                    ));
                }
            }
            ManifestEntry::Gone(name) => {
                let output = fat_tool(
                    Cmd::new("mdir")
                        .arg("-i")
                        .arg(path_arg(path))
                        .arg(format!("::/{name}")),
                    "mtools",
                )?;
                if output.status.success() {
                    problems.push(format!(
                        "{name}: deleted by the kernel, but still in the image"
                    ));
                }
            }
        }
    }
    for seed in seeds {
        let expected = if seed.name == checksum::DELETED_SEED {
            ManifestEntry::Gone(seed.name.to_owned())
        } else {
            ManifestEntry::File(
                seed.name.to_owned(),
                seed.bytes.len() as u64,
                checksum_of(&seed.bytes),
            )
        };
        if !manifest.contains(&expected) {
            problems.push(format!(
                "seeded {}: not in the manifest as {expected:?}",
                seed.name
            ));
        }
    }
    let files = manifest
        .iter()
        .filter(|entry| matches!(entry, ManifestEntry::File(..)))
        .count();
    if files <= seeds.len() {
        problems.push(format!(
            "the manifest lists {files} files: the kernel's own are missing"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "the FAT image differs from the kernel's manifest:\n  {}\n----- fsck.fat -n -----\n{fsck_log}",
            problems.join("\n  ")
        ));
    }
    println!(
        "qemu: FAT check: fsck.fat -n clean; {files} files of the manifest match the image (mtools), \
         {} deleted files gone, seeded files intact",
        manifest.len() - files
    );
    Ok(())
}

#[cfg(test)]
mod tests;
