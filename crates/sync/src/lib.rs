//! The one place gupio's atomics, fences, `spin_loop` and locks come from.
//!
//! Every other gupio crate takes its synchronisation primitives from here and
//! never names `core::sync::atomic` directly. In a normal build the items are
//! `core`'s atomics and a `spin` mutex; built with `RUSTFLAGS="--cfg loom"`
//! they are the loom crate's, so loom models explore every
//! interleaving of the real code paths. The lock has one API in both builds:
//! [`Mutex::new`], [`Mutex::lock`], [`Mutex::try_lock`] and
//! [`Mutex::into_inner`].
//!
//! Loom's atomics cannot be built in a `const` context, so a constructor
//! that is `const` in a normal build (for a `static` memory map, say) is
//! declared once with [`const_unless_loom!`], which makes it a plain `fn`
//! under loom.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Declares a function `const` in a normal build and plain under loom,
/// whose atomics cannot be built in a `const` context: write the function
/// once, without the `const` keyword, inside the macro.
///
/// ```
/// use gupio_sync::atomic::AtomicU32;
///
/// pub struct Counter(AtomicU32);
///
/// impl Counter {
///     gupio_sync::const_unless_loom! {
///         /// A counter at zero.
///         pub fn new() -> Self {
///             Self(AtomicU32::new(0))
///         }
///     }
/// }
///
/// static HITS: Counter = Counter::new();
/// # let _ = &HITS;
/// ```
#[macro_export]
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $($rest)*

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $($rest)*
    };
}

/// Atomic integer types, [`Ordering`](atomic::Ordering) and [`fence`](atomic::fence).
pub mod atomic {
    #[cfg(all(not(loom), target_has_atomic = "64"))]
    pub use core::sync::atomic::AtomicU64;
    #[cfg(not(loom))]
    pub use core::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering,
    };

    #[cfg(loom)]
    pub use loom::sync::atomic::{
        fence, AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

/// Processor hints.
pub mod hint {
    /// Tells the processor (or, under loom, the scheduler) that this thread is
    /// spinning while it waits for another one.
    #[inline]
    pub fn spin_loop() {
        #[cfg(not(loom))]
        core::hint::spin_loop();
        #[cfg(loom)]
        loom::thread::yield_now();
    }
}

pub use hint::spin_loop;

#[cfg(not(loom))]
type Inner<T> = spin::Mutex<T>;
#[cfg(not(loom))]
type InnerGuard<'a, T> = spin::MutexGuard<'a, T>;
#[cfg(loom)]
type Inner<T> = loom::sync::Mutex<T>;
#[cfg(loom)]
type InnerGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A mutual-exclusion lock: a spin lock normally, loom's mutex under loom.
///
/// Never take it on a path an interrupt-context completion can run: a spin
/// lock held by the interrupted thread would deadlock.
///
/// ```
/// let counter = gupio_sync::Mutex::new(0u32);
/// *counter.lock() += 1;
/// assert_eq!(counter.into_inner(), 1);
/// ```
pub struct Mutex<T> {
    inner: Inner<T>,
}

/// Holds a [`Mutex`] locked; unlocks when dropped.
pub struct MutexGuard<'a, T> {
    inner: InnerGuard<'a, T>,
}

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    ///
    /// ```
    /// let m = gupio_sync::Mutex::new([0u8; 4]);
    /// assert_eq!(m.lock()[0], 0);
    /// ```
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }

    /// A new unlocked mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks the mutex, spinning (or, under loom, blocking) until it is free.
    ///
    /// ```
    /// let m = gupio_sync::Mutex::new(1);
    /// let mut guard = m.lock();
    /// *guard = 2;
    /// drop(guard);
    /// assert_eq!(*m.lock(), 2);
    /// ```
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        let inner = self.inner.lock();
        // A loom mutex is poisoned only when a holder panicked, which already
        // failed the model; the data is still consistent for our users.
        #[cfg(loom)]
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        MutexGuard { inner }
    }

    /// Locks the mutex if it is free right now.
    ///
    /// ```
    /// let m = gupio_sync::Mutex::new(());
    /// let held = m.lock();
    /// assert!(m.try_lock().is_none());
    /// drop(held);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        let inner = self.inner.try_lock()?;
        #[cfg(loom)]
        let inner = self.inner.try_lock().ok()?;
        Some(MutexGuard { inner })
    }

    /// Consumes the mutex and returns the value it held.
    ///
    /// ```
    /// assert_eq!(gupio_sync::Mutex::new(7).into_inner(), 7);
    /// ```
    pub fn into_inner(self) -> T {
        #[cfg(not(loom))]
        return self.inner.into_inner();
        #[cfg(loom)]
        return self
            .inner
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mutex").finish_non_exhaustive()
    }
}

impl<T> core::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests;
