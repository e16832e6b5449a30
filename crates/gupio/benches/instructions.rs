//! Instructions per page of the pin + build + release scenarios, for
//! `cargo xtask bench --instructions`, which runs this binary under
//! valgrind's callgrind and counts only inside the scenario functions
//! (`dio_write`, `Floor::pin_build_release`): set-up is not counted.
//!
//! Usage: `instructions SCENARIO PAGES REPETITIONS`, SCENARIO one of
//! `floor`, `small` (4 KiB pages, every page its own bvec) or `thp` (2 MiB
//! folios). Prints the pages it moved.

mod common;

use common::{dio_write, Cpu, DioMemory, Floor, Layout, Table, UserBuffer};
use gupio::pfn::Pfn;
use gupio::pin::Tracker;
use gupio::release::Completion;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: instructions floor|small|thp PAGES REPETITIONS";
    let [scenario, pages, repetitions] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(pages), Ok(repetitions)) = (pages.parse::<usize>(), repetitions.parse::<usize>())
    else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let mut moved = 0;
    match scenario.as_str() {
        "floor" => {
            let mut floor = Floor::new(pages);
            let buffer = UserBuffer::new(Pfn::new(0), pages, Layout::Descending);
            for _ in 0..repetitions {
                moved += floor.pin_build_release(&buffer);
            }
        }
        "small" | "thp" => {
            let memory = if scenario == "small" {
                DioMemory::SmallPages
            } else {
                DioMemory::Folios2M
            };
            let map = memory.map(pages);
            let cpu = Cpu::new(&map);
            let tracker = Tracker::new(&cpu);
            let buffer = memory.buffer(&map, pages);
            let mut table = Table::new();
            let completion = Completion::new();
            for _ in 0..repetitions {
                moved += dio_write(&tracker, &buffer, &mut table, &completion, |_| {});
            }
            map.assert_baseline();
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
    println!("{moved}");
}
