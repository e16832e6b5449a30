//! The filesystem library's side: its volume manager over the page
//! cache, its clock, and whole-file reads and writes through it.

use embedded_sdmmc::{TimeSource, Timestamp, VolumeManager};

use crate::checksum::Checksum;
use crate::pagecache::FatDisk;
use crate::pattern::SECTOR_SIZE;

/// A fixed clock for file timestamps: the kernel has no calendar.
pub(super) struct FixedTime;

impl TimeSource for FixedTime {
    fn get_timestamp(&self) -> Timestamp {
        Timestamp {
            year_since_1970: 56,
            zero_indexed_month: 0,
            zero_indexed_day: 0,
            hours: 12,
            minutes: 0,
            seconds: 0,
        }
    }
}

pub(super) type Manager<'c, 'm, 'u> = VolumeManager<FatDisk<'c, 'm, 'u>, FixedTime, 4, 4, 1>;

/// Writes `len` bytes of `byte_at(offset + i)` to `file` in sector-sized pieces.
pub(super) fn write_generated<D, T, const A: usize, const B: usize, const C: usize>(
    file: &embedded_sdmmc::File<'_, D, T, A, B, C>,
    len: usize,
    byte_at: impl Fn(usize) -> u8,
) -> Result<(), embedded_sdmmc::Error<D::Error>>
where
    D: embedded_sdmmc::BlockDevice,
    T: TimeSource,
{
    let mut buffer = [0u8; SECTOR_SIZE];
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(SECTOR_SIZE);
        for (index, byte) in buffer[..piece].iter_mut().enumerate() {
            *byte = byte_at(done + index);
        }
        file.write(&buffer[..piece])?;
        done += piece;
    }
    Ok(())
}

/// Reads `file` to its end: (size, checksum).
pub(super) fn read_all<D, T, const A: usize, const B: usize, const C: usize>(
    file: &embedded_sdmmc::File<'_, D, T, A, B, C>,
) -> Result<(u32, Checksum), embedded_sdmmc::Error<D::Error>>
where
    D: embedded_sdmmc::BlockDevice,
    T: TimeSource,
{
    let mut buffer = [0u8; SECTOR_SIZE];
    let mut sum = Checksum::new();
    let mut size = 0u32;
    while !file.is_eof() {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        sum.update(&buffer[..read]);
        size += u32::try_from(read).unwrap_or(u32::MAX);
    }
    Ok((size, sum))
}
