//! The embedder's side of writeback: page tables, the block device, waiting.

use core::fmt;

use gupio_pin::FolioRef;

/// What the embedder does for writeback: write-protect a folio's user
/// mappings, write it (in place or through a bounce copy), and wait for a
/// pin to go away.
///
/// Every hook runs with the folio locked and [`PageFlags::WRITEBACK`] set,
/// except [`wait_until_unpinned`](Self::wait_until_unpinned), which runs
/// with neither (see [`PinnedAction::Wait`](crate::PinnedAction::Wait) for
/// why). The writes are synchronous: a hook returns when the I/O finished
/// (or failed). The engine owns the folio's `DIRTY` bit; the hooks never
/// touch it.
///
/// [`PageFlags::WRITEBACK`]: gupio_pin::PageFlags::WRITEBACK
///
/// ```
/// use core::cell::Cell;
/// use gupio_pin::FolioRef;
/// use gupio_writeback::WritebackIo;
///
/// /// A block device that counts what it was asked to write.
/// #[derive(Default)]
/// struct Disk {
///     in_place: Cell<usize>,
///     bounced: Cell<usize>,
/// }
///
/// impl WritebackIo for Disk {
///     type Error = i32; // an errno
///     fn write_protect(&self, _folio: FolioRef<'_>) {
///         // Clear the writable bit in every PTE mapping the folio, flush TLBs.
///     }
///     fn write_in_place(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
///         self.in_place.set(self.in_place.get() + 1);
///         Ok(())
///     }
///     fn write_bounced(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
///         // Copy the folio into a bounce buffer, write the buffer.
///         self.bounced.set(self.bounced.get() + 1);
///         Ok(())
///     }
///     fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool {
///         !folio.maybe_dma_pinned() // this disk never sleeps: a quick look
///     }
/// }
/// # let _ = Disk::default();
/// ```
pub trait WritebackIo {
    /// The embedder's I/O error (an errno, a block status); the engine hands
    /// it back inside a [`WritebackError`](crate::WritebackError).
    type Error: Copy + fmt::Debug + fmt::Display;

    /// Makes every user mapping of `folio` read-only (Linux's
    /// `folio_mkclean`), so a later CPU store faults, waits for the folio
    /// lock and marks the folio dirty again.
    ///
    /// It must also pair with pinners that read the page tables without the
    /// page-table lock (GUP-fast): either take that lock, or issue nothing
    /// special and rely on the `SeqCst` fence the engine issues right after
    /// this hook, which pairs with the fence `pin_user_pages` issues after
    /// pinning and before it re-checks the PTE. Cannot fail: it only removes
    /// permissions. The engine assumes the embedder keeps the mappings of a
    /// clean folio read-only (write-notify), so `DIRTY` is the whole truth
    /// about whether a folio needs writing.
    ///
    /// ```
    /// # use gupio_pin::FolioRef;
    /// # struct NoMappings;
    /// # impl gupio_writeback::WritebackIo for NoMappings {
    /// #     type Error = i32;
    /// fn write_protect(&self, _folio: FolioRef<'_>) {
    ///     // A kernel without user mappings of page-cache folios has nothing to do.
    /// }
    /// #     fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> { Ok(()) }
    /// #     fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> { Ok(()) }
    /// #     fn wait_until_unpinned(&self, _: FolioRef<'_>) -> bool { false }
    /// # }
    /// ```
    fn write_protect(&self, folio: FolioRef<'_>);

    /// Writes `folio`'s pages to the backing store straight from the folio.
    /// Called only when no device may be writing into it; on success the
    /// engine leaves the folio clean, on failure dirty.
    ///
    /// # Errors
    /// The embedder's I/O error.
    ///
    /// ```
    /// # use gupio_pin::FolioRef;
    /// # struct ReadOnlyMedium;
    /// # impl gupio_writeback::WritebackIo for ReadOnlyMedium {
    /// #     type Error = i32;
    /// #     fn write_protect(&self, _: FolioRef<'_>) {}
    /// fn write_in_place(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
    ///     const EROFS: i32 = 30;
    ///     Err(EROFS)
    /// }
    /// #     fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> { Err(30) }
    /// #     fn wait_until_unpinned(&self, _: FolioRef<'_>) -> bool { false }
    /// # }
    /// ```
    fn write_in_place(&self, folio: FolioRef<'_>) -> Result<(), Self::Error>;

    /// Copies `folio`'s pages into a bounce buffer and writes the copy, so
    /// the bytes the device (and any checksum or parity computed on the way)
    /// sees cannot change under it. A device may still be writing into the
    /// folio while it is copied, so the copy is stable, not final: the
    /// engine keeps the folio dirty, and a pass after the unpin writes the
    /// final contents.
    ///
    /// # Errors
    /// The embedder's I/O error (including running out of bounce buffers).
    ///
    /// ```
    /// # use gupio_pin::FolioRef;
    /// # struct NoBounceBuffers;
    /// # impl gupio_writeback::WritebackIo for NoBounceBuffers {
    /// #     type Error = i32;
    /// #     fn write_protect(&self, _: FolioRef<'_>) {}
    /// #     fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> { Ok(()) }
    /// fn write_bounced(&self, _folio: FolioRef<'_>) -> Result<(), i32> {
    ///     const ENOMEM: i32 = 12;
    ///     Err(ENOMEM)
    /// }
    /// #     fn wait_until_unpinned(&self, _: FolioRef<'_>) -> bool { false }
    /// # }
    /// ```
    fn write_bounced(&self, folio: FolioRef<'_>) -> Result<(), Self::Error>;

    /// Waits, within the embedder's own bound, until `folio` is no longer
    /// pinned ([`FolioRef::maybe_dma_pinned`] turns false); returns whether it
    /// saw that happen. `false` means it gave up.
    ///
    /// Runs with the folio unlocked: the completion that will unpin may need
    /// the folio lock first, to mark the folio dirty. The engine re-checks
    /// the pin itself afterwards, so a `true` is a hint, never trusted.
    ///
    /// ```
    /// # use gupio_pin::FolioRef;
    /// # struct Impatient;
    /// # impl gupio_writeback::WritebackIo for Impatient {
    /// #     type Error = i32;
    /// #     fn write_protect(&self, _: FolioRef<'_>) {}
    /// #     fn write_in_place(&self, _: FolioRef<'_>) -> Result<(), i32> { Ok(()) }
    /// #     fn write_bounced(&self, _: FolioRef<'_>) -> Result<(), i32> { Ok(()) }
    /// fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool {
    ///     // Poll a bounded number of times; a kernel sleeps on a wait queue.
    ///     (0..100).any(|_| !folio.maybe_dma_pinned())
    /// }
    /// # }
    /// ```
    fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool;
}
