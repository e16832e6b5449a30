use std::sync::Arc;

use gupio::bio::{Bio, BioLimits, BioStatus, Sector};
use gupio::pfn::Origin;
use gupio::pin::Tracker;
use gupio::release::SubmittedBio;

use super::*;
use crate::device::{DeviceConfig, OwnedBvecs};
use crate::Memory;

#[test]
fn an_unused_gate_lets_its_transfer_through() {
    let memory = Arc::new(Memory::new(4).unwrap());
    let device = Device::new(memory.clone(), 64, DeviceConfig::default());
    let gate = device.gate(BioOp::Read, 1);
    drop(gate);
    let page = memory.alloc_folio(0, true).unwrap();
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(1),
        BioOp::Read,
        Sector(8),
        BioLimits::default(),
    );
    let _ = bio.add_page(page, 4096, 0, Origin::Referenced).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let mem = memory.clone();
    device.submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        Box::new(move |bio| {
            let status = bio.status();
            let _ = bio.release(&Tracker::new(&*mem), false);
            done.send(status).unwrap();
        }),
    );
    assert_eq!(finished.recv().unwrap(), BioStatus::Ok);
    device.wait_idle();
    assert!(memory.allocated_folios().is_empty());
}
