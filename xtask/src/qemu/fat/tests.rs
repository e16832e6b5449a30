use super::*;

#[test]
fn manifest_lines_parse_and_other_lines_are_ignored() {
    let uart = "boot\nfs manifest: file LOGS/EVENTS.TXT 8000 6654bbab\r\n\
                fs manifest: gone OLD.TXT\nsummary\n";
    assert_eq!(
        parse_manifest(uart).unwrap(),
        vec![
            ManifestEntry::File("LOGS/EVENTS.TXT".to_owned(), 8000, 0x6654_bbab),
            ManifestEntry::Gone("OLD.TXT".to_owned()),
        ]
    );
    assert!(parse_manifest("fs manifest: file X.TXT ten 0").is_err());
    assert!(parse_manifest("fs manifest: renamed X.TXT").is_err());
}

#[test]
fn seed_bootargs_name_every_seed_with_size_and_checksum() {
    let seeds = seed_files();
    let line = seed_bootargs(&seeds);
    let list = line.strip_prefix(checksum::SEED_KEY).unwrap();
    assert!(!line.contains(' '), "one word on the command line");
    assert_eq!(list.split(',').count(), seeds.len());
    assert!(list.contains(&format!("{}:", checksum::DELETED_SEED)));
    // FNV-1a's published test vector.
    assert_eq!(checksum_of(b"a"), 0xe40c_292c);
}
