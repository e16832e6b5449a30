use super::*;

#[test]
fn first_difference_names_the_first_differing_line() {
    assert_eq!(first_difference("a\nb\nc\n", "a\nB\nc\n"), 2);
    assert_eq!(first_difference("a\n", "b\n"), 1);
    assert_eq!(first_difference("a\nb\n", "a\n"), 2);
}

/// An `ar` member header: name, then size in its field.
fn member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        0,
        0,
        0,
        644,
        data.len()
    )
    .into_bytes();
    assert_eq!(out.len(), 60);
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(b'\n');
    }
    out
}

/// A 64-bit little-endian ELF object with one executable section of
/// `code` bytes and one data section of 100 bytes.
fn elf64(code: u64) -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    let shoff = 64u64;
    elf[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    elf[0x3c..0x3e].copy_from_slice(&2u16.to_le_bytes());
    for (flags, size) in [(0x6u64, code), (0x3u64, 100)] {
        let mut header = vec![0u8; 64];
        header[8..16].copy_from_slice(&flags.to_le_bytes());
        header[32..40].copy_from_slice(&size.to_le_bytes());
        elf.extend_from_slice(&header);
    }
    elf
}

#[test]
fn gupio_code_is_the_executable_sections_of_its_object() {
    let long_name = "gupio_capi-0123456789abcdef.gupio_capi.cgu.0.rcgu.o";
    let names = format!("{long_name}/\n");
    let mut archive = b"!<arch>\n".to_vec();
    archive.extend(member("/", b"symbol table"));
    archive.extend(member("//", names.as_bytes()));
    archive.extend(member("/0", &elf64(1234)));
    archive.extend(member("other.o/", &elf64(99)));
    let members = archive_members(&archive).unwrap();
    let listed: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(listed, [long_name, "other.o"]);
    assert_eq!(gupio_code_bytes(&archive), Some(1234));
}

#[test]
fn an_archive_without_gupio_or_a_broken_object_has_no_size() {
    let mut archive = b"!<arch>\n".to_vec();
    archive.extend(member("other.o/", &elf64(99)));
    assert_eq!(gupio_code_bytes(&archive), None);
    assert_eq!(elf_code_bytes(b"not an object"), None);
    assert!(archive_members(b"not an archive").is_none());
}
