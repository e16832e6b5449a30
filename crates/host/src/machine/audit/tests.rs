use super::*;
use crate::MachineConfig;

#[test]
fn an_off_baseline_folio_prints_its_counters() {
    let off = OffBaseline {
        head: Pfn::new(0x85),
        refcount: 3,
        expected: 2,
        pincount: 1,
        flags: PageFlags::empty(),
    };
    let text = off.to_string();
    assert!(text.starts_with("folio 0x85:"), "{text}");
    assert!(text.contains("refcount 3 (owners hold 2)"), "{text}");
    assert!(text.contains("pincount 1"), "{text}");
}

#[test]
fn a_fresh_machine_audits_clean_and_a_stray_folio_is_a_leak() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let audit = machine.audit();
    assert!(audit.is_clean(), "{audit}");
    assert_eq!(audit, Audit::default());
    assert!(machine.leak_check().is_empty());
    let stray = machine.memory().alloc_folio(0, true).unwrap();
    let leaks = machine.leak_check();
    assert_eq!(leaks.len(), 1);
    assert_eq!((leaks[0].head, leaks[0].refcount), (stray, 1));
    assert!(!machine.audit().is_clean());
    machine.tracker().put_page(stray).unwrap();
    assert!(machine.leak_check().is_empty());
}

#[test]
fn evicting_the_cache_frees_every_folio_and_counts_the_dirty_ones() {
    let machine = Machine::new(MachineConfig::small()).unwrap();
    let file = machine.cache().create_file(4, &[2]).unwrap();
    machine.cache().write(&file, 0, 0, &[1]).unwrap();
    assert_eq!(machine.memory().allocated_folios().len(), 1);
    let (audit, dirty) = machine.evict_and_audit();
    assert!(audit.is_clean(), "{audit}");
    assert!(machine.memory().allocated_folios().is_empty());
    assert_eq!(dirty, 1, "evicted without writeback");
}
