use super::*;

#[test]
fn a_new_disk_holds_the_pattern_of_each_word_address() {
    let disk = Disk::new(2);
    assert_eq!(disk.sectors(), 2);
    let words = disk.read_words(1, 2).unwrap();
    let first = u64::try_from(WORDS_PER_SECTOR).unwrap();
    assert_eq!(words, [disk_pattern(first), disk_pattern(first + 1)]);
}

#[test]
fn written_words_read_back_and_checksum_like_the_filesystem() {
    let disk = Disk::new(16);
    disk.write_words(3, &[7; 64]).unwrap();
    assert_eq!(disk.read_words(3, 64).unwrap(), vec![7; 64]);
    disk.write_words(0, &[1, 2]).unwrap();
    assert_eq!(disk.read_words(0, 2).unwrap(), [1, 2]);
    assert_eq!(
        disk.checksum(3, 64).unwrap(),
        crate::data::fnv1a(vec![7; 64])
    );
    assert_eq!(disk.checksum(0, 2).unwrap(), crate::data::fnv1a([1, 2]));
}

#[test]
fn a_range_past_the_end_is_refused_and_writes_nothing() {
    let disk = Disk::new(16);
    let past = HostError::PastEndOfDisk {
        sector: 16,
        sectors: 1,
    };
    assert_eq!(disk.read_words(16, 1), Err(past));
    assert_eq!(disk.checksum(16, 1), Err(past));
    // The last sector, one word too many: nothing is written.
    let before = disk.read_words(15, WORDS_PER_SECTOR).unwrap();
    assert!(disk.write_words(15, &[0; WORDS_PER_SECTOR + 1]).is_err());
    assert_eq!(disk.read_words(15, WORDS_PER_SECTOR).unwrap(), before);
}
