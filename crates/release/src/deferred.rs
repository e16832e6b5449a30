//! The deferred-release list: bios whose pages must be re-dirtied in
//! process context before release.

use gupio_sync::const_unless_loom;
use gupio_sync::Mutex;
use heapless::Deque;

use crate::ReleaseError;

/// A bounded list of bios waiting for process context (Linux's
/// `bio_dirty_list` and its work item).
///
/// A direct-I/O read completes in interrupt context; if writeback cleaned
/// one of its pages while the device was writing into it
/// ([`check_pages_dirty`](crate::check_pages_dirty) said `false`), the page
/// must be dirtied again, which takes the page lock and may sleep in a
/// real kernel. The completion therefore [`push`](Self::push)es the bio
/// here and a worker [`drain`](Self::drain)s the list, re-dirtying and
/// releasing each bio.
///
/// The list is a spin lock around a `heapless::Deque` of capacity `N`; under
/// loom the lock is loom's. The lock is held only to move one bio in or
/// out, never while pages are released. In a kernel, take it with local
/// interrupts disabled (`spin_lock_irqsave`), since the pusher runs in
/// interrupt context. A full list never loses a bio: `push` hands it back
/// inside the error, and the caller releases it another way (for example
/// synchronously with `mark_dirty` where it may block) or retries.
///
/// ```
/// use gupio_release::{DeferredList, ReleaseError};
/// let list: DeferredList<&str, 2> = DeferredList::new();
/// list.push("a").unwrap();
/// list.push("b").unwrap();
/// let full = list.push("c").unwrap_err();
/// assert_eq!(full.error(), ReleaseError::DeferredListFull { capacity: 2 });
/// assert_eq!(full.into_inner(), "c", "the bio is handed back");
/// let mut seen = Vec::new();
/// assert_eq!(list.drain(|bio| seen.push(bio)), 2);
/// assert_eq!(seen, ["a", "b"]);
/// ```
pub struct DeferredList<T, const N: usize> {
    queue: Mutex<Deque<T, N>>,
}

/// A bio [`DeferredList::push`] could not take, handed back with the reason.
///
/// ```
/// use gupio_release::DeferredList;
/// let list: DeferredList<u8, 1> = DeferredList::new();
/// list.push(1).unwrap();
/// assert_eq!(list.push(2).unwrap_err().into_inner(), 2);
/// ```
#[derive(Debug)]
pub struct DeferredFull<T> {
    item: T,
    capacity: usize,
}

impl<T> DeferredFull<T> {
    /// The error: [`ReleaseError::DeferredListFull`] with the list's capacity.
    pub fn error(&self) -> ReleaseError {
        ReleaseError::DeferredListFull {
            capacity: self.capacity,
        }
    }

    /// The bio that was not queued: the caller still owns it.
    ///
    /// ```
    /// use gupio_release::DeferredList;
    /// let list: DeferredList<u8, 1> = DeferredList::new();
    /// list.push(1).unwrap();
    /// assert_eq!(list.push(9).unwrap_err().into_inner(), 9);
    /// ```
    pub fn into_inner(self) -> T {
        self.item
    }
}

impl<T, const N: usize> DeferredList<T, N> {
    const_unless_loom! {
        /// An empty list.
        ///
        /// ```
        /// let list: gupio_release::DeferredList<u32, 4> = gupio_release::DeferredList::new();
        /// assert!(list.is_empty());
        /// ```
        pub fn new() -> Self {
            Self {
                queue: Mutex::new(Deque::new()),
            }
        }
    }

    /// Queues `item` for the worker.
    ///
    /// # Errors
    /// [`DeferredFull`] (its [`error`](DeferredFull::error) is
    /// [`ReleaseError::DeferredListFull`]) holding `item` when the list is
    /// full.
    ///
    /// ```
    /// let list: gupio_release::DeferredList<u32, 1> = gupio_release::DeferredList::new();
    /// assert!(list.push(5).is_ok());
    /// assert_eq!(list.len(), 1);
    /// ```
    pub fn push(&self, item: T) -> Result<(), DeferredFull<T>> {
        self.queue
            .lock()
            .push_back(item)
            .map_err(|item| DeferredFull { item, capacity: N })
    }

    /// Takes the oldest queued item, if any.
    ///
    /// ```
    /// let list: gupio_release::DeferredList<u32, 2> = gupio_release::DeferredList::new();
    /// list.push(1).unwrap();
    /// assert_eq!(list.pop(), Some(1));
    /// assert_eq!(list.pop(), None);
    /// ```
    pub fn pop(&self) -> Option<T> {
        self.queue.lock().pop_front()
    }

    /// Takes queued items one at a time, oldest first, and hands each to
    /// `each` with the lock released, until the list is empty. Returns how
    /// many were handled. Items pushed meanwhile are handled too.
    ///
    /// ```
    /// let list: gupio_release::DeferredList<u32, 4> = gupio_release::DeferredList::new();
    /// list.push(1).unwrap();
    /// list.push(2).unwrap();
    /// let mut sum = 0;
    /// assert_eq!(list.drain(|n| sum += n), 2);
    /// assert_eq!(sum, 3);
    /// ```
    pub fn drain<F: FnMut(T)>(&self, mut each: F) -> usize {
        let mut handled = 0;
        while let Some(item) = self.pop() {
            each(item);
            handled += 1;
        }
        handled
    }

    /// How many items are queued (a snapshot).
    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Whether nothing is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.queue.lock().is_empty()
    }

    /// The list's capacity, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<T, const N: usize> Default for DeferredList<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> core::fmt::Debug for DeferredList<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DeferredList")
            .field("capacity", &N)
            .finish_non_exhaustive()
    }
}
