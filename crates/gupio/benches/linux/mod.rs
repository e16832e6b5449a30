//! Linux's own pin path, timed on this host in the same run as gupio's.
//!
//! Registering a buffer with io_uring (`IORING_REGISTER_BUFFERS`) makes the
//! kernel pin the buffer's pages with `pin_user_pages_fast` and build the
//! bvecs a fixed-buffer I/O uses; unregistering unpins them. That pair is
//! the host kernel's pin + build + release, reachable without debugfs or a
//! test kernel. Each size is one group sampled round-robin: Linux over 4 KiB
//! pages, gupio's direct-I/O write of the same size over 4 KiB pages, Linux
//! over 2 MiB THP, gupio over 2 MiB folios. gupio's rows carry the ratio
//! gupio / Linux.
//!
//! Nothing is printed as measured unless it was checked first: the backing
//! (every page present; no large folio for 4 KiB pages; 2 MiB THP folios
//! otherwise, from the frame numbers and page flags the kernel reports)
//! and the pins (`nr_foll_pin_acquired` in `/proc/vmstat` rises by the
//! pages registered, the pins held while registered are one per page or
//! one per folio, and unregistering releases them all). A row that fails a
//! check, or a host without io_uring, is skipped with the reason.

#[cfg(target_os = "linux")]
mod sys;

use crate::sampling::Report;

/// The buffer sizes in 4 KiB pages: 1, 16 and 256 MiB.
pub const SIZES: [usize; 3] = [256, 4096, 65536];
/// The group `--only` selects.
pub const GROUP_ID: &str = "linux";
/// The README's performance targets: gupio over 2 MiB folios at least this many times
/// faster than Linux's THP registration.
const THP_TARGET: f64 = 4.0;
/// The README's performance targets: the same for 4 KiB pages.
const SMALL_TARGET: f64 = 5.0;

/// Times Linux's pin path beside gupio's, or says why it cannot.
pub fn host_pin_path(report: &mut Report) {
    #[cfg(target_os = "linux")]
    measure::run(report);
    #[cfg(not(target_os = "linux"))]
    report.skip(
        GROUP_ID,
        "io_uring buffer registration is Linux-only".into(),
    );
}

/// The running kernel's release, on Linux.
pub fn kernel_release() -> Option<String> {
    #[cfg(target_os = "linux")]
    return sys::kernel_release();
    #[cfg(not(target_os = "linux"))]
    None
}

/// The README's performance targets against Linux, where both rows of a
/// size were measured.
pub fn verdicts(report: &Report) -> Vec<(String, bool, String)> {
    let mut verdicts = Vec::new();
    for (kind, memory, target) in [
        ("thp", "2 MiB folios", THP_TARGET),
        ("small", "4 KiB pages", SMALL_TARGET),
    ] {
        for pages in SIZES {
            let linux = report.row(&format!("linux.{kind}.{pages}"));
            let gupio = report.row(&format!("linux.gupio.{kind}.{pages}"));
            if let (Some(linux), Some(gupio)) = (linux, gupio) {
                let faster = linux.stats.median / gupio.stats.median;
                verdicts.push((
                    format!(
                        "{memory}, pin + build + release of {}: at least {target}x faster than \
                         Linux's io_uring registration in this run",
                        mib(pages)
                    ),
                    faster >= target,
                    format!(
                        "{faster:.2}x (gupio {:.2}, Linux {:.2} ns/page)",
                        gupio.stats.median, linux.stats.median
                    ),
                ));
            }
        }
    }
    verdicts
}

/// `pages` 4 KiB pages as "N MiB".
fn mib(pages: usize) -> String {
    format!("{} MiB", pages / 256)
}

#[cfg(target_os = "linux")]
mod measure {
    use std::cell::{Cell, RefCell};

    use gupio::pin::Tracker;
    use gupio::release::Completion;

    use super::sys::{self, Backing, Buffer, Pins, Ring};
    use super::{mib, GROUP_ID, SIZES};
    use crate::common::{dio_write, Cpu, DioMemory, Table};
    use crate::sampling::{Atomics, Member, Report, Row, Stats};

    /// The group's title in the table.
    const GROUP: &str = "Linux's pin path on this host (io_uring register + unregister) and \
                         gupio beside it; x floor = gupio / Linux";
    /// Tries of the untimed pin check: another process's pins (direct I/O
    /// elsewhere) move the same global counters.
    const PIN_CHECK_TRIES: usize = 3;

    pub fn run(report: &mut Report) {
        if let Some(why) = sys::io_uring_disabled() {
            report.skip(GROUP_ID, why);
            return;
        }
        let largest = SIZES.iter().max().copied().unwrap_or(0) * sys::PAGE;
        let memlock = sys::raise_memlock(largest + sys::HUGE);
        let ring = match Ring::new() {
            Ok(ring) => ring,
            Err(why) => {
                report.skip(GROUP_ID, why);
                return;
            }
        };
        for pages in SIZES {
            compare(report, &ring, pages, memlock.as_deref());
        }
    }

    /// A Linux buffer ready to time: mapped, backing and pins checked.
    struct Prepared {
        id: String,
        kind: &'static str,
        buffer: Buffer,
        note: String,
    }

    fn kind_of(backing: Backing) -> (&'static str, &'static str) {
        match backing {
            Backing::Small => ("small", "4 KiB pages"),
            Backing::Huge => ("thp", "2 MiB THP"),
        }
    }

    /// Maps and checks a buffer of `pages` pages, or says why not.
    fn prepare(
        ring: &Ring,
        pages: usize,
        backing: Backing,
        memlock: Option<&str>,
    ) -> Result<Prepared, String> {
        let buffer = Buffer::new(pages * sys::PAGE, backing)?;
        let seen = buffer.verify().map_err(|why| format!("backing: {why}"))?;
        let mut last = String::new();
        for _ in 0..PIN_CHECK_TRIES {
            match check_pins(ring, &buffer, seen.folios) {
                Ok(pins) => {
                    let (kind, _) = kind_of(backing);
                    return Ok(Prepared {
                        id: format!("linux.{kind}.{pages}"),
                        kind,
                        note: format!("{}; {pins}", seen.what),
                        buffer,
                    });
                }
                Err(Check::Fatal(why)) => {
                    return Err(match memlock {
                        Some(note) => format!("{why} ({note})"),
                        None => why,
                    })
                }
                Err(Check::Mismatch(why)) => last = why,
            }
        }
        Err(format!("pins, {PIN_CHECK_TRIES} tries: {last}"))
    }

    enum Check {
        /// A syscall or the counters failed: trying again will not help.
        Fatal(String),
        /// The counters moved otherwise than expected (maybe by another
        /// process).
        Mismatch(String),
    }

    /// One registration with the pin counters read around it.
    fn check_pins(ring: &Ring, buffer: &Buffer, folios: usize) -> Result<String, Check> {
        let pages = buffer.pages();
        let before = Pins::read().map_err(Check::Fatal)?;
        ring.register(buffer)
            .map_err(|e| Check::Fatal(format!("IORING_REGISTER_BUFFERS: {e}")))?;
        let registered = Pins::read();
        ring.unregister()
            .map_err(|e| Check::Fatal(format!("IORING_UNREGISTER_BUFFERS: {e}")))?;
        let registered = registered.map_err(Check::Fatal)?;
        let after = Pins::read().map_err(Check::Fatal)?;
        let acquired = registered.acquired_since(before);
        let held = registered.held_since(before);
        let left = after.held_since(before);
        if acquired != pages as u64 {
            return Err(Check::Mismatch(format!(
                "nr_foll_pin_acquired rose by {acquired} for {pages} pages registered"
            )));
        }
        let held_as = if held == pages as i64 {
            "one per page"
        } else if held == folios as i64 {
            "one per 2 MiB folio: io_uring keeps one pin and one bvec per folio"
        } else {
            return Err(Check::Mismatch(format!(
                "{held} pins held while registered: neither the {pages} pages nor the {folios} \
                 folios"
            )));
        };
        if left != 0 {
            return Err(Check::Mismatch(format!(
                "{left} pins still held after unregistering"
            )));
        }
        Ok(format!(
            "nr_foll_pin_acquired +{acquired} per registration, {held} held while registered \
             ({held_as}), all released by unregistering"
        ))
    }

    /// One size: Linux and gupio over 4 KiB pages and over 2 MiB folios,
    /// sampled round-robin.
    fn compare(report: &mut Report, ring: &Ring, pages: usize, memlock: Option<&str>) {
        let size = mib(pages);
        let mut linux = Vec::new();
        for backing in [Backing::Small, Backing::Huge] {
            match prepare(ring, pages, backing, memlock) {
                Ok(prepared) => linux.push(prepared),
                Err(why) => {
                    let (kind, _) = kind_of(backing);
                    report.skip(&format!("linux.{kind}.{pages}"), why);
                }
            }
        }

        // gupio's side: the same memories as the pin + build + release group.
        let small_map = DioMemory::SmallPages.map(pages);
        let small_cpu = Cpu::new(&small_map);
        let small = Tracker::new(&small_cpu);
        let small_buffer = DioMemory::SmallPages.buffer(&small_map, pages);
        let mut small_table = Table::new();
        let small_completion = Completion::new();

        let thp_map = DioMemory::Folios2M.map(pages);
        let thp_cpu = Cpu::new(&thp_map);
        let thp = Tracker::new(&thp_cpu);
        let thp_buffer = DioMemory::Folios2M.buffer(&thp_map, pages);
        let mut thp_table = Table::new();
        let thp_completion = Completion::new();

        let calls: Vec<Cell<u64>> = linux.iter().map(|_| Cell::new(0)).collect();
        let failure = RefCell::new(None::<String>);
        let linux_member = |kind: &str| {
            let index = linux.iter().position(|prepared| prepared.kind == kind)?;
            let (prepared, calls, failure) = (&linux[index], &calls[index], &failure);
            let memory = if kind == "small" {
                "4 KiB pages"
            } else {
                "2 MiB THP"
            };
            let buffer = &prepared.buffer;
            Some((
                true,
                Member::new(
                    prepared.id.clone(),
                    format!("Linux io_uring register + unregister, {memory}, {size}"),
                    move || {
                        let cycle = ring.register(buffer).and_then(|()| ring.unregister());
                        if let Err(error) = cycle {
                            failure.borrow_mut().get_or_insert(error.to_string());
                        }
                        calls.set(calls.get() + 1);
                        buffer.pages()
                    },
                ),
            ))
        };
        // Linux 4 KiB, gupio 4 KiB, Linux THP, gupio THP.
        let mut members = Vec::new();
        members.extend(linux_member("small"));
        members.push((
            false,
            Member::new(
                format!("linux.gupio.small.{pages}"),
                format!("gupio DIO write, 4 KiB pages, {size}"),
                || {
                    dio_write(
                        &small,
                        &small_buffer,
                        &mut small_table,
                        &small_completion,
                        |_| {},
                    )
                },
            ),
        ));
        members.extend(linux_member("thp"));
        members.push((
            false,
            Member::new(
                format!("linux.gupio.thp.{pages}"),
                format!("gupio DIO write, 2 MiB folios, {size}"),
                || dio_write(&thp, &thp_buffer, &mut thp_table, &thp_completion, |_| {}),
            ),
        ));

        let before = Pins::read();
        for (_, member) in &mut members {
            member.warm_up();
        }
        for _ in 0..report.samples {
            for (_, member) in &mut members {
                member.sample();
            }
        }
        let timed: Vec<(bool, String, String, usize, Stats)> = members
            .into_iter()
            .map(|(is_linux, member)| {
                let stats = Stats::of(&member.samples);
                (is_linux, member.id, member.scenario, member.pages, stats)
            })
            .collect();
        small_map.assert_baseline();
        thp_map.assert_baseline();
        assert_eq!(
            (small_cpu.pins_in_flight(), thp_cpu.pins_in_flight()),
            (0, 0)
        );

        // The timed registrations must have pinned what the checked one did.
        let expected: u64 = linux
            .iter()
            .zip(&calls)
            .map(|(prepared, calls)| calls.get() * prepared.buffer.pages() as u64)
            .sum();
        let timed_check = match (failure.into_inner(), before) {
            (Some(error), _) => Err(format!("a timed registration failed: {error}")),
            (None, Err(why)) => Err(why),
            (None, Ok(before)) => timed_pins(before, expected),
        };

        let mut linux_medians = Vec::new();
        for (is_linux, id, scenario, pages, stats) in timed {
            let kind = if id.contains(".small.") {
                "small"
            } else {
                "thp"
            };
            if is_linux {
                let prepared = linux
                    .iter()
                    .find(|prepared| prepared.id == id)
                    .expect("every Linux member was prepared");
                // The backing again: a long-term pin may migrate pages.
                let backing = prepared.buffer.verify().map(|_| ());
                match (&timed_check, backing) {
                    (Ok(pins), Ok(())) => {
                        linux_medians.push((kind, id.clone(), stats.median));
                        report.push(Row {
                            id,
                            group: GROUP,
                            scenario,
                            pages,
                            stats,
                            floor: None,
                            ratio: None,
                            atomics: Atomics::default(),
                            note: format!(
                                "verified before timing: {}; after timing: backing unchanged, \
                                 {pins}",
                                prepared.note
                            ),
                        });
                    }
                    (Err(why), _) => report.skip(&id, format!("after timing: {why}")),
                    (Ok(_), Err(why)) => {
                        report.skip(&id, format!("after timing, backing: {why}"));
                    }
                }
                continue;
            }
            let linux = linux_medians
                .iter()
                .find(|(linux_kind, _, _)| *linux_kind == kind);
            report.push(Row {
                id,
                group: GROUP,
                scenario,
                pages,
                stats,
                floor: linux.map(|(_, id, _)| id.clone()),
                ratio: linux.map(|&(_, _, median)| stats.median / median),
                // The same scenario as the pin + build + release row.
                atomics: report.atomics_of(&format!("pbr.{kind}.{pages}")),
                note: format!(
                    "dio_write as pbr.{kind}.{pages}, sampled round-robin with Linux's row; \
                     ratio = gupio / Linux"
                ),
            });
        }
    }

    /// Checks the pin counters after the timed registrations: at least
    /// `expected` pins acquired since `before` (other processes may add),
    /// and none left held.
    fn timed_pins(before: Pins, expected: u64) -> Result<String, String> {
        let mut last = String::new();
        for _ in 0..PIN_CHECK_TRIES {
            let after = Pins::read()?;
            let acquired = after.acquired_since(before);
            let held = after.held_since(before);
            if acquired < expected {
                return Err(format!(
                    "nr_foll_pin_acquired rose by {acquired}, below the {expected} pages registered"
                ));
            }
            if held == 0 {
                return Ok(format!(
                    "nr_foll_pin_acquired +{acquired} over the timed registrations of this size \
                     ({expected} pages registered), all released"
                ));
            }
            last = format!("{held} pins still held");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(last)
    }
}
