//! Time from the CLINT's free-running `mtime` counter.
//!
//! Used for the block driver's completion timeout and to time the self test.
//! The tick rate comes from the device tree (`/cpus/timebase-frequency`,
//! 10 MHz on QEMU `virt`).
//!
//! By hand: reading the counter is one volatile load of a fixed register,
//! where the `riscv` crate's `time` CSR read would bring that crate and its
//! dependencies in for one instruction.

use core::num::NonZeroU64;
use core::time::Duration;

/// Address of `mtime` on QEMU `virt` (CLINT base 0x0200_0000 + 0xbff8).
const MTIME: usize = 0x0200_bff8;

/// Nanoseconds per second.
const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Reads `mtime` at a known tick rate.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    ticks_per_second: NonZeroU64,
}

/// A reading of `mtime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Clock {
    /// A clock whose counter advances `ticks_per_second` times a second.
    pub const fn new(ticks_per_second: NonZeroU64) -> Self {
        Self { ticks_per_second }
    }

    /// The counter's current value.
    pub fn now(self) -> Instant {
        // SAFETY: MTIME is the CLINT's 64-bit, 8-byte-aligned `mtime` register
        // on QEMU `virt` (M-mode, no paging); reading it has no side effect.
        Instant(unsafe { core::ptr::read_volatile(MTIME as *const u64) })
    }

    /// Time from `earlier` to `later` (zero if `later` is not after it).
    pub fn between(self, earlier: Instant, later: Instant) -> Duration {
        let ticks = u128::from(later.0.saturating_sub(earlier.0));
        let nanos = ticks * NANOS_PER_SECOND / u128::from(self.ticks_per_second.get());
        Duration::new(
            u64::try_from(nanos / NANOS_PER_SECOND).unwrap_or(u64::MAX),
            u32::try_from(nanos % NANOS_PER_SECOND).unwrap_or(0),
        )
    }

    /// Time since `earlier`.
    pub fn since(self, earlier: Instant) -> Duration {
        self.between(earlier, self.now())
    }

    /// The instant `timeout` from now (saturating far in the future).
    pub fn deadline(self, timeout: Duration) -> Instant {
        let ticks = timeout.as_nanos() * u128::from(self.ticks_per_second.get()) / NANOS_PER_SECOND;
        let ticks = u64::try_from(ticks).unwrap_or(u64::MAX);
        Instant(self.now().0.saturating_add(ticks))
    }

    /// Whether `deadline` has passed.
    pub fn has_passed(self, deadline: Instant) -> bool {
        self.now() >= deadline
    }
}
