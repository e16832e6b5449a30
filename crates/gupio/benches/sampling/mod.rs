//! How a group of scenarios is sampled, and the report its rows go into.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long one sample of a closure scenario runs (it repeats the closure).
const SAMPLE_TIME: Duration = Duration::from_millis(4);
/// How long each closure scenario runs before it is sampled.
const WARM_UP: Duration = Duration::from_millis(60);

/// ns per page over the samples of one scenario.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Stats {
    pub(crate) fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Atomic read-modify-writes per page, at pin and at release.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Atomics {
    pub(crate) pin: Option<f64>,
    pub(crate) release: Option<f64>,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) group: &'static str,
    pub(crate) scenario: String,
    pub(crate) pages: usize,
    pub(crate) stats: Stats,
    /// The row this one is a ratio to, if any.
    pub(crate) floor: Option<String>,
    pub(crate) ratio: Option<f64>,
    pub(crate) atomics: Atomics,
    pub(crate) note: String,
}

/// A scenario of a closure group: a name, the closure (returns pages
/// moved), and its samples.
pub(crate) struct Member<'a> {
    pub(crate) id: String,
    pub(crate) scenario: String,
    run: Box<dyn FnMut() -> usize + 'a>,
    pub(crate) pages: usize,
    iterations: u32,
    pub(crate) samples: Vec<f64>,
}

impl<'a> Member<'a> {
    pub(crate) fn new(
        id: impl Into<String>,
        scenario: impl Into<String>,
        run: impl FnMut() -> usize + 'a,
    ) -> Self {
        Self {
            id: id.into(),
            scenario: scenario.into(),
            run: Box::new(run),
            pages: 0,
            iterations: 1,
            samples: Vec::new(),
        }
    }

    /// Runs the closure for [`WARM_UP`] and sets the iterations per sample.
    pub(crate) fn warm_up(&mut self) {
        let started = Instant::now();
        let mut calls = 0u32;
        while calls == 0 || started.elapsed() < WARM_UP {
            self.pages = (self.run)();
            calls += 1;
        }
        let per_call = started.elapsed() / calls;
        let iterations = SAMPLE_TIME.as_nanos() / per_call.as_nanos().max(1);
        self.iterations = u32::try_from(iterations.clamp(1, 1 << 20)).unwrap_or(1);
    }

    pub(crate) fn sample(&mut self) {
        let started = Instant::now();
        let mut pages = 0usize;
        for _ in 0..self.iterations {
            pages += black_box((self.run)());
        }
        let elapsed = started.elapsed();
        self.samples.push(ns_per_page(elapsed, pages));
    }
}

pub(crate) fn ns_per_page(elapsed: Duration, pages: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / pages.max(1) as f64
}

/// The report being built.
pub(crate) struct Report {
    pub(crate) samples: usize,
    pub(crate) rows: Vec<Row>,
    pub(crate) atomics: Vec<(String, Atomics)>,
    pub(crate) atomics_source: Option<PathBuf>,
    /// Rows or groups not measured, and why.
    pub(crate) skipped: Vec<(String, String)>,
}

impl Report {
    pub(crate) fn atomics_of(&self, id: &str) -> Atomics {
        self.atomics
            .iter()
            .find(|(known, _)| known == id)
            .map(|&(_, atomics)| atomics)
            .unwrap_or_default()
    }

    /// Samples `members` round-robin and adds a row for each; the first
    /// member is the floor of the others when `first_is_floor`.
    pub(crate) fn group(
        &mut self,
        group: &'static str,
        mut members: Vec<Member<'_>>,
        first_is_floor: bool,
    ) {
        for member in &mut members {
            member.warm_up();
        }
        for _ in 0..self.samples {
            for member in &mut members {
                member.sample();
            }
        }
        let floor = first_is_floor.then(|| (members[0].id.clone(), Stats::of(&members[0].samples)));
        for (index, member) in members.iter().enumerate() {
            let stats = Stats::of(&member.samples);
            let (floor_id, ratio) = match &floor {
                Some((id, floor)) if index > 0 => {
                    (Some(id.clone()), Some(stats.median / floor.median))
                }
                _ => (None, None),
            };
            self.push(Row {
                id: member.id.clone(),
                group,
                scenario: member.scenario.clone(),
                pages: member.pages,
                stats,
                floor: floor_id,
                ratio,
                atomics: Atomics::default(),
                note: String::new(),
            });
        }
    }

    /// Adds a row, filling its atomics from the counted run.
    pub(crate) fn push(&mut self, mut row: Row) {
        let counted = self.atomics_of(&row.id);
        if counted.pin.is_some() || counted.release.is_some() {
            row.atomics = counted;
        }
        self.rows.push(row);
    }

    pub(crate) fn row(&self, id: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.id == id)
    }

    /// Records that `what` (a row id or a group) was not measured, and why.
    pub(crate) fn skip(&mut self, what: &str, why: String) {
        println!("skipped {what}: {why}");
        self.skipped.push((what.to_owned(), why));
    }

    pub(crate) fn note(&mut self, id: &str, note: &str) {
        if let Some(row) = self.rows.iter_mut().find(|row| row.id == id) {
            row.note = note.to_owned();
        }
    }
}
