use crate::{Machine, MachineConfig};

use super::*;

#[test]
fn a_guard_translates_only_what_a_fault_mapped() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_zero_page(1).unwrap();
    let guard = process.gup();
    assert!(
        guard.translate(addr).unwrap().is_none(),
        "not faulted in yet"
    );
    guard.fault_in(addr, false).unwrap();
    let mapping = guard.translate(addr).unwrap().unwrap();
    assert_eq!(mapping.pfn, machine.memory().zero_page());
    drop(guard);
    assert_eq!(
        process.pte(addr),
        Some((machine.memory().zero_page(), false))
    );
}

#[test]
fn a_pte_appears_on_the_first_access_and_loads_read_zeroes() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(1).unwrap();
    assert!(process.pte(addr).is_none(), "not faulted in yet");
    assert_eq!(process.load(addr, 4).unwrap(), [0; 4]);
    let (page, _) = process.pte(addr).unwrap();
    assert_eq!(machine.memory().frame(page).unwrap().load(0), 0);
    process.store(addr, &[6]).unwrap();
    let (written, writable) = process.pte(addr).unwrap();
    assert!(writable);
    assert_eq!(machine.memory().frame(written).unwrap().load(0), 6);
    assert_eq!(process.load(addr, 1).unwrap(), [6]);
}

#[test]
fn munmap_frees_the_pages_and_a_second_munmap_is_refused() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(2).unwrap();
    process.store(addr, &[1]).unwrap();
    assert_eq!(machine.memory().allocated_folios().len(), 1);
    process.munmap(addr).unwrap();
    assert!(machine.memory().allocated_folios().is_empty());
    assert_eq!(process.munmap(addr), Err(HostError::NotMapped { addr }));
    assert!(process.pte(addr).is_none());
    assert!(machine.audit().is_clean());
}
