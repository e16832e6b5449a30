use super::*;

#[test]
fn sector_arithmetic_is_checked_at_both_ends() {
    assert_eq!(Sector(0).checked_sub(SectorCount(1)), None);
    assert_eq!(
        Sector(u64::MAX - 1).checked_add(SectorCount(1)),
        Some(Sector(u64::MAX))
    );
    assert_eq!(
        Sector(u64::MAX).checked_add(SectorCount(0)),
        Some(Sector(u64::MAX))
    );
    assert_eq!(
        Sector(u64::MAX >> 9).byte_address(),
        Some((u64::MAX >> 9) << 9)
    );
    assert_eq!(Sector((u64::MAX >> 9) + 1).byte_address(), None);
}

#[test]
fn sector_count_converts_bytes_both_ways() {
    assert_eq!(SectorCount::from_bytes(511), SectorCount(0));
    assert_eq!(
        SectorCount::from_bytes(u32::MAX),
        SectorCount(u32::MAX >> 9)
    );
    assert_eq!(
        SectorCount(u32::MAX >> 9).bytes(),
        Some((u32::MAX >> 9) << 9)
    );
    assert_eq!(SectorCount((u32::MAX >> 9) + 1).bytes(), None);
}

#[test]
fn sectors_are_512_bytes() {
    assert_eq!((SECTOR_SIZE, 4096 >> SECTOR_SHIFT), (512, 8));
    assert_eq!(Sector(8).checked_add(SectorCount(2)), Some(Sector(10)));
    assert_eq!(Sector(3).checked_sub(SectorCount(3)), Some(Sector(0)));
    assert_eq!(Sector(3).checked_sub(SectorCount(4)), None);
    assert_eq!(Sector(u64::MAX).checked_add(SectorCount(1)), None);
    assert_eq!(Sector(1).byte_address(), Some(512));
    assert_eq!(Sector(8).byte_address(), Some(4096));
    assert_eq!(SectorCount::from_bytes(4096), SectorCount(8));
    assert_eq!(SectorCount::from_bytes(1023), SectorCount(1));
    assert_eq!(SectorCount(8).bytes(), Some(4096));
    assert_eq!(SectorCount(u32::MAX).bytes(), None);
    assert_eq!(
        (Sector(3).to_string(), SectorCount(2).to_string()),
        ("sector 3".to_owned(), "2 sectors".to_owned())
    );
}
