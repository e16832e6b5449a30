use super::*;

#[test]
fn workload_is_deterministic_per_seed_and_stays_inside_the_file() {
    let config = DemoConfig {
        pages: 40,
        ios: 101,
        threads: 3,
        ..DemoConfig::quick()
    };
    let a = workload(&config);
    assert_eq!(a, workload(&config));
    let other = workload(&DemoConfig { seed: 8, ..config });
    assert_ne!(a, other);
    let reads: usize = a
        .iter()
        .flatten()
        .filter(|op| matches!(op, Op::DioRead { .. }))
        .count();
    assert_eq!(reads, 101);
    for op in a.iter().flatten() {
        match *op {
            Op::DioRead {
                page,
                pages,
                source,
            } => {
                assert!((1..=MAX_IO_PAGES).contains(&pages));
                assert!(page + pages <= 40 && source + pages <= 40);
            }
            Op::BufferedWrite { page, word, .. } | Op::MappedStore { page, word, .. } => {
                assert!(page < 40 && word + 8 <= WORDS_PER_PAGE);
            }
        }
    }
}

#[test]
fn layout_folios_are_aligned_and_fit() {
    for pages in [8, 16, 100, 128, 1000, 1024, 1500] {
        let mut index = 0;
        for order in file_layout(pages) {
            let size = 1usize << order;
            assert_eq!(index % size, 0, "{pages}");
            index += size;
        }
        assert!(index <= pages);
    }
}

#[test]
fn table_columns_line_up() {
    let rows = [
        RunReport {
            name: "untracked",
            ios: 2000,
            unstable_writes: 123,
            ..RunReport::default()
        },
        RunReport {
            name: "tracked",
            ios: 2000,
            pages_bounced: 4567,
            ..RunReport::default()
        },
    ];
    let text = table(&rows);
    let widths: Vec<usize> = text.lines().map(str::len).collect();
    assert_eq!(widths.len(), 3);
    assert!(widths.iter().all(|&w| w == widths[0]), "{text}");
}

#[test]
fn options_parse_and_bad_ones_are_named() {
    let parsed = parse_args(
        [
            "--pages=64",
            "--ios",
            "9",
            "--threads",
            "2",
            "--seed",
            "5",
            "--latency-us",
            "0",
            "--policy",
            "wait",
            "--quiet",
        ]
        .map(String::from),
    );
    let Ok(Command::Run(config)) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!(
        config,
        DemoConfig {
            pages: 64,
            ios: 9,
            threads: 2,
            seed: 5,
            policy: PinnedAction::Wait,
            by_reason: false,
            latency: Duration::ZERO,
            progress: false,
        }
    );
    assert_eq!(parse_args(["-h".to_owned()]), Ok(Command::Help));
    for (args, needle) in [
        (vec!["--pages", "8"], "at least 16"),
        (vec!["--policy", "never"], "never"),
        (vec!["--policy", "always"], "by-reason"),
        (vec!["--bogus"], "--bogus"),
        (vec!["--threads", "0"], "at least 1"),
    ] {
        let error = parse_args(args.into_iter().map(String::from)).unwrap_err();
        assert!(error.contains(needle), "{error}");
    }
}

#[test]
fn by_reason_policy_parses_and_alternates_background_and_integrity_passes() {
    let parsed = parse_args(["--policy", "by-reason"].map(String::from));
    let Ok(Command::Run(config)) = parsed else {
        panic!("{parsed:?}")
    };
    assert!(config.by_reason);
    assert!(describe(&config).contains("tracked policy: by reason"));
    let background = WritebackMode::ByReason(WritebackReason::Background);
    let integrity = WritebackMode::ByReason(WritebackReason::Integrity);
    let modes: Vec<_> = (0..2 * INTEGRITY_EVERY)
        .map(|pass| RunKind::ByReason.mode(pass))
        .collect();
    assert_eq!(
        modes.iter().filter(|&&mode| mode == integrity).count(),
        2,
        "one pass in {INTEGRITY_EVERY}"
    );
    assert!(modes[..INTEGRITY_EVERY - 1]
        .iter()
        .all(|&mode| mode == background));
    assert_eq!(RunKind::ByReason.final_mode(), integrity);
    let tracked = RunKind::Tracked(PinnedAction::Skip);
    assert_eq!(tracked.final_mode(), tracked.mode(3));
}
