use super::*;

use crate::splitmix as next;

#[test]
fn random_inputs_keep_every_invariant() {
    let mut state = 0x91e0_ba5e;
    for len in 0..240 {
        let input: Vec<u8> = (0..len % 200)
            .map(|_| next(&mut state).to_le_bytes()[0])
            .collect();
        run(&input);
    }
}

#[test]
fn gup_walks_ending_early_or_released_at_once_keep_every_invariant() {
    // Every flag combination (write, long-term, release at once,
    // dirty) from the first page and from near the end of each region,
    // so a walk runs off the mapping after yielding runs. The second
    // walk of each input finds the pages the first faulted in present,
    // so the folios' pages come back as multi-page runs. Then the first
    // held page goes into a read bio that runs and is released, or is
    // released on its own.
    for region in 0..4u8 {
        for first in [0u8, 3, 6, 14] {
            for bits in 0..16u8 {
                let (walk, again) = ([0, region, first, 3, bits], [0, region, first, 3, bits ^ 4]);
                let bio = [2, 0, 0, 0, 0, 6, 7, 8, 0, 0];
                run(&[&walk[..], &again, &bio].concat());
                let (walk, again) = ([1, region, first, 3, bits], [1, region, first, 3, bits ^ 4]);
                run(&[&walk[..], &again, &[10, 0, bits >> 3]].concat());
            }
        }
    }
}

/// The argument byte of opcode 15 that runs owner operation `k`.
const fn owner(k: u8) -> u8 {
    0x84 + 12 * k
}

#[test]
fn owner_operation_bytes_are_the_ones_that_injected_nothing() {
    for k in 0..=10 {
        let b = owner(k);
        assert!(b & 0x80 != 0);
        assert!(BioStatus::ALL[usize::from(b) % BioStatus::ALL.len()].is_ok());
        assert_eq!(usize::from(b - 0x80) / BioStatus::ALL.len(), usize::from(k));
    }
}

#[test]
fn forks_and_exits_with_pins_outstanding_keep_every_invariant() {
    // Anonymous pages 0-1 pinned for writing and held, page 3 written
    // (present, unpinned), a zero-page read, a registered buffer; then
    // every owner operation, twice, between a read bio of the held
    // pages being queued and the device running it.
    let setup = [
        0, 2, 0, 2, 1, // pin anonymous pages 0-1 for writing
        14, 2, 3, 7, // store into anonymous page 3
        14, 3, 1, 0, // ... and zero-page page 1 (copy-on-write)
        1, 3, 4, 1, 0, // get zero-page page 4 (the zero page)
        15, 0xe4, // register anonymous pages 0-1
    ];
    let queue = [2, 0, 0, 0, 0, 2, 0, 0, 0, 6];
    let finish = [7, 8, 0, 0, 9, 12, 1];
    for first in 0..=10 {
        for second in 0..=10 {
            let ops = [15, owner(first), 15, owner(second)];
            run(&[&setup[..], &queue, &ops, &finish].concat());
            run(&[&setup[..], &ops, &queue, &finish].concat());
        }
    }
}

/// Regression (found by cargo fuzz): a child carrying on after its
/// parent exits maps the regions where the parent had them when it
/// forked, not where a later remap in the parent put them.
#[test]
fn a_child_carries_on_with_the_regions_it_inherited() {
    for region in 0..4 {
        // Fork, remap a region in the parent, the parent exits; then
        // the child remaps it too and pins and stores into every region.
        let input = [
            15,
            owner(0),
            15,
            region,
            15,
            owner(3),
            15,
            region,
            0,
            0,
            0,
            3,
            1,
            0,
            2,
            0,
            3,
            1,
            14,
            2,
            1,
            9,
            14,
            3,
            1,
            9,
        ];
        run(&input);
    }
}

#[test]
fn direct_io_cycles_with_every_writeback_mode_keep_every_invariant() {
    for mode in 0..4u8 {
        for first in 0..FILE_PAGES as u8 {
            // Pin, build a read bio, submit, write back under the queued
            // DMA, let the device run, release, write back again.
            let input = [
                0, 0, first, 1, 1, 2, 0, 0, 0, 0, 2, 0, 0, 0, 6, 12, mode, 7, 8, 0, 0, 9, 12, mode,
            ];
            run(&input);
        }
    }
}
