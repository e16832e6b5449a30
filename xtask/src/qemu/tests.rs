use super::*;

#[test]
fn written_ranges_are_disjoint_inside_the_image_and_visible() {
    let ranges = &pattern::WRITTEN_SECTORS;
    for (index, range) in ranges.iter().enumerate() {
        assert!(range.start < range.end && range.end <= pattern::IMAGE_SECTORS);
        for other in &ranges[index + 1..] {
            assert!(range.end <= other.start || other.end <= range.start);
        }
    }
    for sector in 0..pattern::IMAGE_SECTORS {
        let written = ranges.iter().any(|range| range.contains(&sector));
        assert_eq!(pattern::is_written(sector), written, "sector {sector}");
        for offset in [0, 1, 255, pattern::SECTOR_SIZE - 1] {
            let image = pattern::image_byte(sector, offset);
            assert_ne!(pattern::written_byte(sector, offset), image);
            let expected = if written {
                pattern::written_byte(sector, offset)
            } else {
                image
            };
            assert_eq!(pattern::expected_final_byte(sector, offset), expected);
        }
    }
}

#[test]
fn exit_statuses_are_explained_with_the_kernel_failure_codes() {
    use std::os::unix::process::ExitStatusExt;
    let status = |code: i32| ExitStatus::from_raw(code << 8);
    assert_eq!(describe_status(status(0)), "status 0 (pass)");
    assert_eq!(describe_status(status(2)), "status 2 (the kernel panicked)");
    assert!(describe_status(ExitStatus::from_raw(9)).contains("signal"));
}
