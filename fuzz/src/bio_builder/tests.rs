use super::*;

use crate::splitmix as next;

#[test]
fn random_inputs_agree_with_the_model() {
    let mut state = 0x0b10_b01d;
    for len in 0..400 {
        let input: Vec<u8> = (0..len % 160)
            .map(|_| next(&mut state).to_le_bytes()[0])
            .collect();
        run(&input);
    }
}

#[test]
fn contiguous_adds_with_every_header_agree_with_the_model() {
    for h0 in 0..=255u8 {
        for h1 in [0u8, 1, 4, 8, 12, 2, 3] {
            let mut input = vec![h0, h1, 0];
            for origin in [2u8, 2, 0, 0, 1] {
                input.extend_from_slice(&[0, 0, 0, origin, 0, 3, 0, 0, 0, 0]);
            }
            input.extend_from_slice(&[5, 0, 2, 0, 7, 6, 3, 0, 1, 0, 4, 2, 0, 0, 10]);
            run(&input);
        }
    }
}
