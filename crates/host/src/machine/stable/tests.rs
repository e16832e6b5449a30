use super::*;
use crate::data::{fnv1a, WORDS_PER_PAGE};
use crate::MachineConfig;

#[test]
fn host_stable_io_copies_and_checksums_the_range_it_is_given() {
    let memory = Memory::new(4).unwrap();
    let io = HostStableIo::new(&memory);
    let from = io.alloc_bounce_page().unwrap();
    let to = io.alloc_bounce_page().unwrap();
    assert_ne!(from, to);
    let (source, target) = (memory.frame(from).unwrap(), memory.frame(to).unwrap());
    for i in 0..WORDS_PER_PAGE {
        source.store(i, i as u64 + 1);
        target.store(i, 0);
    }
    // Bytes 512..1024: words 64..128 only.
    io.copy_page(from, to, 512, 512);
    let copied = target.snapshot();
    assert!(copied[..64].iter().all(|&w| w == 0));
    assert_eq!(copied[64..128], source.snapshot()[64..128]);
    assert!(copied[128..].iter().all(|&w| w == 0));
    assert_eq!(io.checksum(from, 512, 512), io.checksum(to, 512, 512));
    assert_eq!(io.checksum(to, 512, 512), fnv1a(copied[64..128].to_vec()));
    assert_ne!(io.checksum(from, 0, 4096), io.checksum(to, 0, 4096));
    io.copy_page(from, to, 0, 4096);
    assert_eq!(io.checksum(from, 0, 4096), io.checksum(to, 0, 4096));
    assert_eq!(io.checksum(from, 4096, 8), 0, "past the page");
}

#[test]
fn stable_stats_start_at_zero() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let counts = machine.stable_stats().counts();
    assert_eq!((counts.reissues, counts.pages_copied), (0, 0));
}
