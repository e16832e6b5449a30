//! The seeded files the kernel command line names.

use crate::checksum::SEED_KEY;

use super::error::FilesError;

/// Seeded files the command line may name.
pub(super) const MAX_SEEDS: usize = 8;
/// Longest 8.3 name, with its dot.
const MAX_NAME: usize = 12;

/// A seeded file named on the command line.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seed {
    pub(super) name: [u8; MAX_NAME],
    name_len: usize,
    pub(super) size: u32,
    pub(super) sum: u32,
}

impl Seed {
    pub(super) fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// The seeds of `gupio.seed=NAME:SIZE:SUM,...` in `bootargs`.
pub(super) fn parse_seeds(bootargs: &[u8]) -> Result<([Seed; MAX_SEEDS], usize), FilesError> {
    const STEP: &str = "command line";
    let bad = |what| FilesError::Check(STEP, what);
    let line = core::str::from_utf8(bootargs).map_err(|_| bad("not UTF-8"))?;
    let list = line
        .split_ascii_whitespace()
        .find_map(|word| word.strip_prefix(SEED_KEY))
        .ok_or(bad("no gupio.seed= argument"))?;
    let empty = Seed {
        name: [0; MAX_NAME],
        name_len: 0,
        size: 0,
        sum: 0,
    };
    let mut seeds = [empty; MAX_SEEDS];
    let mut count = 0;
    for item in list.split(',') {
        let mut fields = item.split(':');
        let (Some(name), Some(size), Some(sum), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("a seed is not NAME:SIZE:SUM"));
        };
        let slot = seeds.get_mut(count).ok_or(bad("too many seeds"))?;
        slot.name
            .get_mut(..name.len())
            .ok_or(bad("a seed name is longer than 8.3"))?
            .copy_from_slice(name.as_bytes());
        slot.name_len = name.len();
        slot.size = size
            .parse()
            .map_err(|_| bad("a seed size is not a number"))?;
        slot.sum = u32::from_str_radix(sum, 16).map_err(|_| bad("a seed sum is not hex"))?;
        count += 1;
    }
    Ok((seeds, count))
}
