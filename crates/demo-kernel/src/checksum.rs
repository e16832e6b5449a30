// The checksum of the files in the demo kernel's FAT scenario, shared with
// `cargo xtask qemu`.
//
// Compiled twice, like `pattern.rs`: as the kernel's `checksum` module and
// inside xtask's `qemu` module through `include!`. xtask passes the seeded
// files' checksums to the kernel on its command line, the kernel prints one
// for every file it leaves behind, and xtask recomputes them from the image
// with mtools. Pure `core` code without `use` items, inner attributes or
// `//!` docs (`include!` takes items only).

/// FNV-1a, 32 bits: a running checksum of a file's bytes.
///
/// By hand: the `fnv` crate is a 64-bit `Hasher` for hash maps, and this
/// file must stay plain `core` code that both builds `include!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum(u32);

impl Checksum {
    /// FNV-1a's offset basis.
    const BASIS: u32 = 0x811c_9dc5;
    /// FNV-1a's prime.
    const PRIME: u32 = 0x0100_0193;

    /// The checksum of no bytes.
    pub const fn new() -> Self {
        Self(Self::BASIS)
    }

    /// Adds `bytes` to the checksum.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u32::from(byte)).wrapping_mul(Self::PRIME);
        }
    }

    /// The checksum as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel command-line key that carries the seeded files:
/// `gupio.seed=NAME:SIZE:SUM,NAME:SIZE:SUM,...`, sizes in decimal, sums in
/// eight hex digits.
pub const SEED_KEY: &str = "gupio.seed=";

/// The seeded file the kernel deletes (xtask seeds it and checks it is gone).
pub const DELETED_SEED: &str = "OLD.TXT";

/// How the kernel's UART manifest lines begin: `fs manifest: file NAME SIZE
/// SUM` for a file it leaves behind (NAME a path like `LOGS/EVENTS.TXT`,
/// SUM eight hex digits), `fs manifest: gone NAME` for one it deleted.
pub const MANIFEST_PREFIX: &str = "fs manifest: ";
