use super::*;

fn report(size: usize, row: Row, mismatches: usize) -> RowReport {
    RowReport {
        size,
        row,
        writes: 10,
        pages: 10,
        stores: 20,
        elapsed: Duration::from_millis(100),
        cpu: Some(Duration::from_millis(50)),
        pages_copied: 0,
        faults_taken: 0,
        faults_waited: 0,
        reissues: 0,
        torn_at_write: mismatches,
        mismatches_on_disk: mismatches,
        problems: Vec::new(),
    }
}

#[test]
fn verdict_requires_the_hazard_without_protection_and_none_with_it() {
    let good: Vec<_> = Row::ALL
        .iter()
        .map(|&row| report(4096, row, usize::from(!row.is_stable())))
        .collect();
    assert!(verdict(&good).is_empty(), "{:?}", verdict(&good));
    let mut no_hazard = good.clone();
    no_hazard[0].mismatches_on_disk = 0;
    assert_eq!(verdict(&no_hazard).len(), 1);
    assert!(verdict(&no_hazard)[0].contains("zero-copy"));
    let mut unstable = good.clone();
    unstable[2].mismatches_on_disk = 3;
    let failures = verdict(&unstable);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("write-protect (wait): 3 blocks"));
    let mut leaky = good;
    leaky[4].problems.push("leak".to_owned());
    assert!(verdict(&leaky)[0].contains("verify: leak"));
}

#[test]
fn table_gives_ratios_to_zero_copy_at_the_same_size() {
    let mut zero = report(4096, Row::Mode(StableMode::ZeroCopy), 1);
    zero.elapsed = Duration::from_millis(100);
    let mut bounce = report(4096, Row::Mode(StableMode::Bounce), 0);
    bounce.elapsed = Duration::from_millis(200);
    bounce.cpu = Some(Duration::from_millis(150));
    let text = table(&[zero, bounce]);
    let line = text.lines().nth(2).unwrap();
    assert!(line.contains("0.50x"), "{line}");
    assert!(line.contains("3.00x"), "{line}");
}

#[test]
fn every_stable_row_leaves_the_disk_consistent_with_its_checksums() {
    let config = DioWriteConfig {
        sizes: vec![16 << 10],
        max_writes: 16,
        ..DioWriteConfig::quick()
    };
    for row in Row::ALL.into_iter().filter(|row| row.is_stable()) {
        let report = run_row(&config, 16 << 10, row).unwrap();
        assert_eq!(report.mismatches_on_disk, 0, "{}", row.name());
        assert_eq!(report.writes, 2 * 16);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[test]
fn options_parse_and_bad_ones_are_named() {
    let config = parse_args(
        [
            "--stores=5",
            "--max-writes",
            "7",
            "--latency-us",
            "3",
            "--seed",
            "9",
        ]
        .map(String::from),
    )
    .unwrap()
    .unwrap();
    assert_eq!(config.stores_per_page, 5);
    assert_eq!(config.max_writes, 7);
    assert_eq!(config.latency, Duration::from_micros(3));
    assert_eq!(config.seed, 9);
    for (args, named) in [
        (vec!["--bogus"], "--bogus"),
        (vec!["--writers"], "--writers"),
        (vec!["--sizes", "0"], "0 KiB"),
        (vec!["--seed", "x"], "`x`"),
    ] {
        let error = parse_args(args.into_iter().map(String::from)).unwrap_err();
        assert!(error.contains(named), "{error}");
    }
}

#[test]
fn the_default_sizes_are_a_page_and_a_mebibyte_and_quick_is_smaller() {
    assert_eq!(DioWriteConfig::default().sizes, vec![4096, 1 << 20]);
    assert_eq!(DioWriteConfig::quick().max_writes, 64);
    assert!(DioWriteConfig::quick().max_writes < DioWriteConfig::default().max_writes);
}

#[test]
fn rows_are_named_and_only_zero_copy_is_unstable() {
    assert_eq!(
        Row::WriteProtect(FaultChoice::CopyOnWrite).name(),
        "write-protect (copy)"
    );
    assert!(!Row::Mode(StableMode::ZeroCopy).is_stable());
    let unstable: Vec<_> = Row::ALL
        .into_iter()
        .filter(|row| !row.is_stable())
        .collect();
    assert_eq!(unstable, [Row::Mode(StableMode::ZeroCopy)]);
}

#[test]
fn sizes_are_given_in_kib_and_help_asks_for_the_usage() {
    let config = parse_args(["--sizes", "4,64", "--writers=3"].map(String::from))
        .unwrap()
        .unwrap();
    assert_eq!((config.sizes, config.writers), (vec![4096, 65536], 3));
    assert_eq!(parse_args(["--help".to_owned()]), Ok(None));
    assert!(parse_args(["--sizes", "3"].map(String::from)).is_err());
}
