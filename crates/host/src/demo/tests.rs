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

#[test]
fn the_default_and_quick_configurations_differ_in_size() {
    assert_eq!(DemoConfig::default().pages, 1024);
    assert_eq!(DemoConfig::quick().pages, 128);
    assert!(DemoConfig::quick().ios < DemoConfig::default().ios);
}

#[test]
fn each_run_kind_has_a_name_for_the_table() {
    assert_eq!(RunKind::Untracked.name(), "untracked");
    assert_eq!(RunKind::Tracked(PinnedAction::Skip).name(), "tracked");
    assert_eq!(RunKind::Tracked(PinnedAction::Bounce).name(), "tracked");
}

#[test]
fn corruption_adds_unstable_and_lost_writes_and_imbalance_is_a_problem() {
    assert_eq!(RunReport::default().corruption(), 0);
    assert!(RunReport::default().problems().is_empty());
    let report = RunReport {
        unstable_writes: 2,
        lost_writes: 1,
        ..RunReport::default()
    };
    assert_eq!(report.corruption(), 3);
    let unbalanced = RunReport {
        pins_acquired: 2,
        ..RunReport::default()
    };
    assert_eq!(unbalanced.problems(), ["pins acquired 2 != released 0"]);
}

#[test]
fn the_layout_starts_with_a_2_mib_folio_and_mixes_smaller_ones() {
    let orders = file_layout(1024);
    assert_eq!(orders[0], 9);
    assert!(orders.contains(&4) && orders.contains(&2));
    assert!(file_layout(3).is_empty(), "small pages only");
}

#[test]
fn the_table_has_a_header_then_a_row_per_run() {
    let text = table(&[RunReport {
        name: "tracked",
        ios: 5,
        ..RunReport::default()
    }]);
    assert!(text.starts_with("run "), "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("tracked"),
        "{text}"
    );
}

#[test]
fn the_verdict_wants_corruption_without_tracking_and_none_with_it() {
    let untracked = RunReport {
        name: "untracked",
        unstable_writes: 3,
        ..RunReport::default()
    };
    let tracked = RunReport {
        name: "tracked",
        ..RunReport::default()
    };
    assert!(verdict(&untracked, &tracked).is_empty());
    assert_eq!(
        verdict(&tracked, &tracked).len(),
        1,
        "no corruption shown without tracking"
    );
    let cleaned = RunReport {
        cleaned_under_dma: 2,
        ..tracked.clone()
    };
    assert_eq!(
        verdict(&untracked, &cleaned),
        ["tracked run: writeback cleaned 2 folios under the DMA of a read"]
    );
    // A deferral whose folio was dirty again under the lock is no failure.
    let transient = RunReport {
        deferred_releases: 1,
        ..tracked.clone()
    };
    assert!(verdict(&untracked, &transient).is_empty());
}

#[test]
fn help_and_usage_name_the_options() {
    assert_eq!(parse_args(["--help".to_owned()]), Ok(Command::Help));
    assert!(USAGE.contains("--policy"));
    let parsed = parse_args(["--pages", "256", "--policy=skip"].map(String::from));
    let Ok(Command::Run(config)) = parsed else {
        panic!("{parsed:?}")
    };
    assert_eq!((config.pages, config.policy), (256, PinnedAction::Skip));
    let error = parse_args(["--ios", "x"].map(String::from)).unwrap_err();
    assert!(error.contains("--ios"), "{error}");
}

#[test]
fn printed_text_fits_78_columns() {
    assert!(EXPLANATION.lines().all(|line| line.len() <= 78));
    let text = describe(&DemoConfig::default());
    assert!(text.contains("2 MiB"), "{text}");
    assert!(text.lines().all(|line| line.len() <= 78), "{text}");
    assert_eq!(wrap("one two three", 7), "one two\nthree");
    assert_eq!(wrap("one", 7), "one");
}
