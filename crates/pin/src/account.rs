//! Long-term pin accounting: [`PinAccount`], what an owner may hold pinned.

use core::fmt;

use gupio_pfn::PageGeometry;
use gupio_sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use gupio_sync::const_unless_loom;

use crate::PinError;

/// The unit a [`PinAccount`] counts in: 4 KiB, whatever the page size (a
/// 64 KiB page is charged 16), so limits mean the same on every geometry.
pub const ACCOUNT_UNIT: usize = 4096;

/// What one owner (a process's address space, or a subsystem context such
/// as a table of registered I/O buffers) holds long-term pinned, against a
/// limit the embedder sets: Linux's `RLIMIT_MEMLOCK` charge of `pinned_vm`
/// or `locked_vm`, counted in [`ACCOUNT_UNIT`]s.
///
/// - [`try_charge`](Self::try_charge) adds a request all or nothing: if the
///   owner's charge would pass its limit, the request is refused with
///   [`PinError::PinLimitExceeded`] (naming the limit, the charge seen and
///   the request), counted in [`refusals`](Self::refusals), and nothing is
///   charged. Concurrent chargers of one owner stay exact: the check and the
///   add are one compare-and-swap.
/// - [`uncharge`](Self::uncharge) gives a charge back; more than is charged
///   is refused ([`PinError::AccountUnderflow`]), never wraps.
/// - A **privileged** owner (Linux's `CAP_IPC_LOCK`) is charged and counted
///   like any other, but never refused for its limit.
///
/// Long-term pins charge an account through
/// [`Tracker::pin_user_pages_longterm`](crate::Tracker::pin_user_pages_longterm),
/// which charges the whole request before it faults or pins anything and
/// has each [`HeldRun`](crate::HeldRun) uncharge its pages when released;
/// an embedder that accounts a registration as a whole can call
/// `try_charge`/`uncharge` itself instead.
///
/// **An owner torn down with pins outstanding.** The charge follows the
/// runs, not the address space: each charged [`HeldRun`](crate::HeldRun)
/// borrows its account, so the account outlives every run charged to it.
/// Whatever holds the runs keeps the account (a table of registered
/// buffers keeps it beside its runs, as io_uring's context keeps the user
/// it charged). An embedder's
/// exit path unmaps the process and releases only what the process itself
/// holds: pages pinned by a bio or by such a table stay allocated, and the
/// charge stays, until the holder releases its runs with
/// [`Tracker::release_held`](crate::Tracker::release_held), which unpins,
/// frees each page on its last unpin and brings the charge back to zero. A
/// holder torn down itself releases its runs first; a run dropped unreleased
/// leaks its pages and its charge, and warns
/// ([`Warning::HeldRunDropped`](crate::Warning::HeldRunDropped)).
///
/// ```
/// use gupio_pfn::PageGeometry;
/// use gupio_pin::{PinAccount, PinError};
/// let account = PinAccount::new(8); // 8 × 4 KiB = 32 KiB
/// let four_kib = PageGeometry::FOUR_KIB;
/// account.try_charge(four_kib, 6)?;
/// assert_eq!(
///     account.try_charge(four_kib, 3),
///     Err(PinError::PinLimitExceeded { limit: 8, charged: 6, request: 3 })
/// );
/// account.uncharge(four_kib, 6)?;
/// assert_eq!((account.charged(), account.peak(), account.refusals()), (0, 6, 1));
/// # Ok::<(), PinError>(())
/// ```
pub struct PinAccount {
    /// Units charged now.
    charged: AtomicUsize,
    /// The most ever charged at once.
    peak: AtomicUsize,
    /// Requests refused for the limit.
    refusals: AtomicUsize,
    /// The limit, in units.
    limit: AtomicUsize,
    /// Whether the limit is waived.
    privileged: AtomicBool,
}

impl PinAccount {
    const_unless_loom! {
        /// An empty account whose owner may hold `limit` [`ACCOUNT_UNIT`]s
        /// pinned.
        ///
        /// ```
        /// assert_eq!(gupio_pin::PinAccount::new(16).limit(), 16);
        /// ```
        pub fn new(limit: usize) -> Self {
            Self {
                charged: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                refusals: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                privileged: AtomicBool::new(false),
            }
        }
    }

    const_unless_loom! {
        /// An empty account of a privileged owner: charged and counted,
        /// never refused for `limit`.
        ///
        /// ```
        /// let account = gupio_pin::PinAccount::privileged(0);
        /// account.try_charge(gupio_pfn::PageGeometry::FOUR_KIB, 3).unwrap();
        /// assert_eq!(account.charged(), 3);
        /// ```
        pub fn privileged(limit: usize) -> Self {
            Self {
                charged: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                refusals: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                privileged: AtomicBool::new(true),
            }
        }
    }

    /// The units `pages` pages of `geometry` are charged, if it fits a `usize`.
    ///
    /// ```
    /// use gupio_pfn::PageGeometry;
    /// use gupio_pin::PinAccount;
    /// assert_eq!(PinAccount::units(PageGeometry::SIXTY_FOUR_KIB, 2), Some(32));
    /// ```
    pub const fn units(geometry: PageGeometry, pages: usize) -> Option<usize> {
        pages.checked_mul(geometry.size() / ACCOUNT_UNIT)
    }

    /// Charges `pages` pages of `geometry`, all or nothing.
    ///
    /// # Errors
    /// [`PinError::PinLimitExceeded`] if the charge would pass the limit of
    /// an unprivileged owner (or could not be counted at all); nothing is
    /// charged and the refusal is counted.
    pub fn try_charge(&self, geometry: PageGeometry, pages: usize) -> Result<(), PinError> {
        match Self::units(geometry, pages) {
            Some(units) => self.try_charge_units(units),
            None => Err(self.refuse(self.charged(), usize::MAX)),
        }
    }

    /// Gives back the charge of `pages` pages of `geometry`.
    ///
    /// # Errors
    /// [`PinError::AccountUnderflow`] if fewer units are charged (a bug in
    /// the caller: an uncharge without its charge); nothing changes.
    pub fn uncharge(&self, geometry: PageGeometry, pages: usize) -> Result<(), PinError> {
        let units = Self::units(geometry, pages).ok_or(PinError::AccountUnderflow {
            charged: self.charged(),
            request: usize::MAX,
        })?;
        self.uncharge_units(units)
    }

    /// Charges `units`, all or nothing (see [`try_charge`](Self::try_charge)).
    pub(crate) fn try_charge_units(&self, units: usize) -> Result<(), PinError> {
        // Relaxed throughout: the charge publishes no other memory; the CAS
        // alone makes check-and-add atomic, and the pins themselves are
        // ordered by the page counts.
        let limit = self.limit.load(Ordering::Relaxed);
        let privileged = self.privileged.load(Ordering::Relaxed);
        let mut charged = self.charged.load(Ordering::Relaxed);
        loop {
            let fits = match charged.checked_add(units) {
                Some(total) if privileged || total <= limit => Some(total),
                _ => None,
            };
            let Some(total) = fits else {
                return Err(self.refuse(charged, units));
            };
            match self.charged.compare_exchange_weak(
                charged,
                total,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.peak.fetch_max(total, Ordering::Relaxed);
                    return Ok(());
                }
                Err(seen) => charged = seen,
            }
        }
    }

    /// Gives back `units`, refusing to go below zero.
    pub(crate) fn uncharge_units(&self, units: usize) -> Result<(), PinError> {
        // Relaxed: as in `try_charge_units`. The closure fails (and nothing
        // is stored) when fewer units are charged.
        self.charged
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |charged| {
                charged.checked_sub(units)
            })
            .map(|_| ())
            .map_err(|charged| PinError::AccountUnderflow {
                charged,
                request: units,
            })
    }

    /// Counts a refusal and builds its error.
    fn refuse(&self, charged: usize, request: usize) -> PinError {
        // Relaxed: a statistic.
        self.refusals.fetch_add(1, Ordering::Relaxed);
        PinError::PinLimitExceeded {
            limit: self.limit(),
            charged,
            request,
        }
    }

    /// Sets the limit, in units (Linux's `setrlimit`); what is charged
    /// already stays charged, even above the new limit.
    pub fn set_limit(&self, limit: usize) {
        // Relaxed: a charge racing this uses the old limit or the new one.
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Grants or withdraws the privilege of passing the limit.
    pub fn set_privileged(&self, privileged: bool) {
        // Relaxed: as `set_limit`.
        self.privileged.store(privileged, Ordering::Relaxed);
    }

    /// The limit, in units.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Whether the owner may pass its limit.
    pub fn is_privileged(&self) -> bool {
        self.privileged.load(Ordering::Relaxed)
    }

    /// The units charged now.
    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Relaxed)
    }

    /// The most units ever charged at once (a long-term walk's whole
    /// request counts from its start).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// The requests refused for the limit.
    pub fn refusals(&self) -> usize {
        self.refusals.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for PinAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinAccount")
            .field("charged", &self.charged())
            .field("peak", &self.peak())
            .field("refusals", &self.refusals())
            .field("limit", &self.limit())
            .field("privileged", &self.is_privileged())
            .finish()
    }
}

#[cfg(test)]
mod tests;
