//! What the kernel writes: each file's path, size and bytes, and the
//! sizes of the direct I/O on `DIRECT.BIN`.

use core::ops::Range;

use crate::checksum::Checksum;
use crate::mem::PAGE_SIZE;

/// Pages of `DIRECT.BIN`; the first half is mapped, the second written directly.
pub(super) const DIRECT_PAGES: usize = 8;
pub(super) const MAPPED_PAGES: usize = DIRECT_PAGES / 2;
/// Bytes of the direct write.
pub(super) const DIRECT_LEN: usize = MAPPED_PAGES * PAGE_SIZE;
/// Pages of `NOTES.TXT` a direct read brings into the mapped start of `DIRECT.BIN`.
pub(super) const READ_PAGES: usize = 2;
/// Bytes of the direct read.
pub(super) const READ_LEN: usize = READ_PAGES * PAGE_SIZE;

/// A file the kernel writes: its path and how each byte was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// `LOGS/EVENTS.TXT`: created, then appended to.
    Events,
    /// `NOTES.TXT`: written, then overwritten in the middle.
    Notes,
    /// `TRUNC.TXT`: written, truncated, written shorter.
    Trunc,
    /// `DIRECT.BIN`: written through the cache, then by mmap and direct I/O.
    Direct,
}

pub(super) const EVENTS_FIRST: usize = 3000;
pub(super) const EVENTS_APPENDED: usize = 5000;
pub(super) const NOTES_LEN: usize = 20_000;
/// Overwritten bytes of `NOTES.TXT`: across the cluster boundary at 8192.
pub(super) const NOTES_MIDDLE: Range<usize> = 6000..9000;
pub(super) const TRUNC_FIRST: usize = 12_000;
pub(super) const TRUNC_LEN: usize = 1000;
pub(super) const TEMP_LEN: usize = 5000;

/// What the generated text is made of.
const LETTERS: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";

/// Text bytes of the generator `seed`: lines of 63 letters and a newline.
pub(super) fn text(seed: usize, index: usize) -> u8 {
    let (line, column) = (index / 64, index % 64);
    if column == 63 {
        b'\n'
    } else {
        LETTERS[(line * 7 + column * 3 + seed * 11) % LETTERS.len()]
    }
}

impl Written {
    pub(super) const ALL: [Self; 4] = [Self::Events, Self::Notes, Self::Trunc, Self::Direct];

    /// The directory (`None`: root) and the name.
    pub(super) fn path(self) -> (Option<&'static str>, &'static str) {
        match self {
            Self::Events => (Some("LOGS"), "EVENTS.TXT"),
            Self::Notes => (None, "NOTES.TXT"),
            Self::Trunc => (None, "TRUNC.TXT"),
            Self::Direct => (None, "DIRECT.BIN"),
        }
    }

    /// The final size.
    pub(super) fn len(self) -> usize {
        match self {
            Self::Events => EVENTS_FIRST + EVENTS_APPENDED,
            Self::Notes => NOTES_LEN,
            Self::Trunc => TRUNC_LEN,
            Self::Direct => DIRECT_PAGES * PAGE_SIZE,
        }
    }

    /// Byte `index` of the final contents.
    fn final_byte(self, index: usize) -> u8 {
        match self {
            Self::Events if index < EVENTS_FIRST => text(1, index),
            Self::Events => text(2, index - EVENTS_FIRST),
            Self::Notes if NOTES_MIDDLE.contains(&index) => text(4, index - NOTES_MIDDLE.start),
            Self::Notes => text(3, index),
            Self::Trunc => text(6, index),
            // The direct read's bytes, then what the process stored
            // through its mapping, in both halves.
            Self::Direct if index < READ_LEN => Self::Notes.final_byte(index),
            Self::Direct => mapped_byte(index % DIRECT_LEN),
        }
    }

    /// The checksum of the final contents.
    pub(super) fn checksum(self) -> Checksum {
        let mut sum = Checksum::new();
        for index in 0..self.len() {
            sum.update(&[self.final_byte(index)]);
        }
        sum
    }
}

/// What the process stores through its mapping of `DIRECT.BIN`.
pub(super) fn mapped_byte(index: usize) -> u8 {
    text(9, index)
}

/// The file the kernel creates and deletes.
pub(super) const TEMP_NAME: &str = "TEMP.TXT";
