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
            latency: Duration::ZERO,
            progress: false,
        }
    );
    assert_eq!(parse_args(["-h".to_owned()]), Ok(Command::Help));
    for (args, needle) in [
        (vec!["--pages", "8"], "at least 16"),
        (vec!["--policy", "never"], "never"),
        (vec!["--bogus"], "--bogus"),
        (vec!["--threads", "0"], "at least 1"),
    ] {
        let error = parse_args(args.into_iter().map(String::from)).unwrap_err();
        assert!(error.contains(needle), "{error}");
    }
}
