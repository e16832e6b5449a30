//! `pin_user_pages` / `get_user_pages` over the embedder's address space.

use core::fmt;

use gupio_sync::atomic::{fence, Ordering};

use crate::{
    AddressSpace, GrabKind, HeldRun, MappedRun, MappingFlags, PageOps, PinAccount, PinError,
    Tracker, UserAddr,
};

/// How many times one page is faulted in before `pin_user_pages` gives up
/// with [`PinError::FaultNotResolved`]: a fault can be undone by a racing
/// writeback's write protection, so one retry is not always enough.
pub const FAULT_RETRIES: usize = 8;

bitflags::bitflags! {
    /// Flags for [`Tracker::get_user_pages`] and [`Tracker::pin_user_pages`]
    /// (Linux's `FOLL_*`).
    ///
    /// Callers pass [`WRITE`](Self::WRITE), [`LONGTERM`](Self::LONGTERM) and
    /// (to `get_user_pages`, where it is implied) [`GET`](Self::GET).
    /// [`PIN`](Self::PIN) is internal: `pin_user_pages` sets it and refuses
    /// it from callers, as Linux does with `FOLL_PIN`.
    ///
    /// ```
    /// use gupio_pin::{GrabKind, GupFlags};
    /// assert_eq!((GupFlags::PIN | GupFlags::LONGTERM).check(), Ok(GrabKind::Pin));
    /// assert!((GupFlags::GET | GupFlags::LONGTERM).check().is_err());
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GupFlags: u32 {
        /// The caller (or a device) will write to the pages.
        const WRITE = 1 << 0;
        /// Take a plain reference on each page (`FOLL_GET`).
        const GET = 1 << 1;
        /// The pin may be held indefinitely (RDMA, VFIO, io_uring fixed
        /// buffers): pins only, no movable pages, no write pins of
        /// dirty-tracked file mappings.
        const LONGTERM = 1 << 2;
        /// Take a pin on each page (`FOLL_PIN`). Internal.
        const PIN = 1 << 16;
    }
}

impl GupFlags {
    /// The flags only gupio may set.
    pub const INTERNAL: GupFlags = GupFlags::PIN;

    /// Checks a complete flag word (after the entry point added `GET` or
    /// `PIN`) against Linux's rules and says what the pages will hold.
    ///
    /// # Errors
    /// [`PinError::UnknownGupFlags`] for undefined bits,
    /// [`PinError::GetAndPin`], [`PinError::NeitherGetNorPin`],
    /// [`PinError::LongtermWithoutPin`].
    ///
    /// ```
    /// use gupio_pin::{GrabKind, GupFlags, PinError};
    /// assert_eq!((GupFlags::GET | GupFlags::WRITE).check(), Ok(GrabKind::Get));
    /// assert_eq!(
    ///     (GupFlags::GET | GupFlags::PIN).check(),
    ///     Err(PinError::GetAndPin { bits: (GupFlags::GET | GupFlags::PIN).bits() })
    /// );
    /// ```
    pub const fn check(self) -> Result<GrabKind, PinError> {
        let bits = self.bits();
        if bits & !Self::all().bits() != 0 {
            return Err(PinError::UnknownGupFlags { bits });
        }
        let get = self.contains(Self::GET);
        let pin = self.contains(Self::PIN);
        if get && pin {
            return Err(PinError::GetAndPin { bits });
        }
        if !get && !pin {
            return Err(PinError::NeitherGetNorPin { bits });
        }
        if self.contains(Self::LONGTERM) && !pin {
            return Err(PinError::LongtermWithoutPin { bits });
        }
        Ok(if pin { GrabKind::Pin } else { GrabKind::Get })
    }

    /// The flags a caller passed to an entry point that adds `entry`'s flag,
    /// checked in Linux's order: internal flags, then the combination.
    const fn for_entry(self, entry: GrabKind) -> Result<Self, PinError> {
        let bits = self.bits();
        if bits & !Self::all().bits() != 0 {
            return Err(PinError::UnknownGupFlags { bits });
        }
        if self.intersects(Self::INTERNAL) {
            return Err(PinError::InternalGupFlags { bits });
        }
        let flags = match entry {
            GrabKind::Get => self.union(Self::GET),
            GrabKind::Pin => self.union(Self::PIN),
        };
        match flags.check() {
            Ok(_) => Ok(flags),
            Err(e) => Err(e),
        }
    }
}

impl<'a, M: PageOps + ?Sized> Tracker<'a, M> {
    /// Pins the `nr_pages` user pages from `start` (rounded down to its
    /// page) run by run (Linux's `pin_user_pages`): the returned
    /// [`UserPages`] yields one [`HeldRun`] per folio run, each pinned with
    /// one update of its folio's counts as it is yielded. Consume each run:
    /// add it to a bio (gupio-release's `add_held_run`), or release it with
    /// [`Tracker::release_held`]. Stopping early pins nothing more.
    ///
    /// Pages not present are faulted in ([`AddressSpace::fault_in`], then
    /// translated again). With [`GupFlags::WRITE`] every page must be
    /// writable (read-only mappings fail, copy-on-write is broken by the
    /// fault). With [`GupFlags::LONGTERM`], movable pages and write pins of
    /// dirty-tracked shared file mappings are refused. What the mapping
    /// decides ([`AddressSpace::mapping_kind`]: a write to a read-only
    /// mapping, a long-term write pin of a dirty-tracked file) is refused
    /// before the page is faulted in or any count changes; only the
    /// refusals that depend on the frame (the zero page for a write, a
    /// movable page) can come after a fault. The zero page may be
    /// returned for reads; it is not pinned, and releasing it is a no-op.
    /// Before a pinned run is yielded, a `SeqCst` fence orders its pin
    /// before anything the caller does next (Linux's
    /// `smp_mb__after_atomic`), pairing with the fence a writeback path
    /// issues before it asks `maybe_dma_pinned`.
    ///
    /// Partial success is the iterator's shape: it yields the runs it
    /// pinned, then, if a page fails, that page's error once, then `None`.
    ///
    /// # Errors
    /// At once, before any page is touched: flag errors
    /// ([`PinError::InternalGupFlags`] for `PIN`, [`PinError::GetAndPin`]
    /// for `GET`, [`PinError::UnknownGupFlags`]) and
    /// [`PinError::AddressOverflow`] if the range wraps. From the iterator,
    /// a page's failure: [`PinError::Fault`], [`PinError::FaultNotResolved`],
    /// [`PinError::WriteToZeroPage`], [`PinError::LongtermDirtyTracked`],
    /// [`PinError::NotLongtermPinnable`], [`PinError::RefcountOverflow`],
    /// [`PinError::NotInMemoryMap`], [`PinError::PageFree`].
    ///
    /// ```
    /// # use gupio_pfn::{PageGeometry, Pfn};
    /// # use gupio_pin::*;
    /// # use gupio_pin::doc_fixtures::Identity;
    /// // `Identity` maps user address N * 4096 to pfn N; pfns 0-3 are one
    /// // order-2 folio, pfn 4 a small page.
    /// let m = ArrayMemoryMap::<5>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
    /// m.prepare_folio(Pfn::new(4), FolioOrder::SMALL).unwrap();
    /// let tracker = Tracker::new(&m);
    /// let mut runs = tracker.pin_user_pages(&Identity, UserAddr::new(0x1008), 4, GupFlags::WRITE)?;
    /// let run = runs.next().unwrap()?; // pages 1-3: one folio run, one update
    /// assert_eq!((run.first(), run.pages()), (Pfn::new(1), 3));
    /// assert_eq!(m.counters(Pfn::new(0)).unwrap().pincount(), 3);
    /// let small = runs.next().unwrap()?;
    /// assert!(runs.next().is_none());
    /// tracker.release_held(run, true)?; // unpin, dirtying the folio first
    /// tracker.release_held(small, true)?;
    /// assert_eq!(m.stats().in_flight(), 0);
    /// # Ok::<(), PinError>(())
    /// ```
    pub fn pin_user_pages<'s, A: AddressSpace + ?Sized>(
        &self,
        space: &'s A,
        start: UserAddr,
        nr_pages: usize,
        flags: GupFlags,
    ) -> Result<UserPages<'s, 'a, M, A>, PinError> {
        UserPages::new(*self, space, start, nr_pages, flags, GrabKind::Pin)
    }

    /// Takes a plain reference on the `nr_pages` user pages from `start`
    /// (rounded down to its page), run by run (Linux's `get_user_pages`):
    /// as [`pin_user_pages`](Self::pin_user_pages), with references
    /// ([`Origin::Referenced`](gupio_pfn::Origin::Referenced) runs, released
    /// by a put) instead of pins, and no fence.
    ///
    /// # Errors
    /// As [`pin_user_pages`](Self::pin_user_pages), with
    /// [`PinError::LongtermWithoutPin`] for [`GupFlags::LONGTERM`].
    ///
    /// ```
    /// # use gupio_pfn::{PageGeometry, Pfn};
    /// # use gupio_pin::*;
    /// # struct Identity;
    /// # impl AddressSpace for Identity {
    /// #     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    /// #     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
    /// #         Ok(Some(Mapping::new(Pfn::new(a.get() >> 12), MappingFlags::empty())))
    /// #     }
    /// #     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    /// # }
    /// let m = ArrayMemoryMap::<2>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(1), FolioOrder::SMALL).unwrap();
    /// let tracker = Tracker::new(&m);
    /// let run = tracker
    ///     .get_user_pages(&Identity, UserAddr::new(0x1000), 1, GupFlags::empty())?
    ///     .next()
    ///     .unwrap()?;
    /// assert_eq!(m.counters(Pfn::new(1)).unwrap().refcount(), 2);
    /// tracker.release_held(run, false)?;
    /// assert_eq!(m.counters(Pfn::new(1)).unwrap().refcount(), 1);
    /// # Ok::<(), PinError>(())
    /// ```
    pub fn get_user_pages<'s, A: AddressSpace + ?Sized>(
        &self,
        space: &'s A,
        start: UserAddr,
        nr_pages: usize,
        flags: GupFlags,
    ) -> Result<UserPages<'s, 'a, M, A>, PinError> {
        UserPages::new(*self, space, start, nr_pages, flags, GrabKind::Get)
    }

    /// Pins the `nr_pages` user pages from `start` long term
    /// ([`GupFlags::LONGTERM`] is added to `flags`) and charges them to
    /// `account`, the owner's [`PinAccount`] (Linux's `RLIMIT_MEMLOCK`
    /// accounting of RDMA memory regions, VFIO mappings and io_uring
    /// registered buffers), one [`ACCOUNT_UNIT`](crate::ACCOUNT_UNIT) per
    /// 4 KiB.
    ///
    /// The whole request is charged here, after the flag and range checks
    /// and before anything is faulted in or pinned: an owner over its limit
    /// is refused with nothing charged, faulted or counted. The walk then
    /// runs as [`pin_user_pages`](Self::pin_user_pages)'; each
    /// [`HeldRun`] carries its pages' charge (see [`HeldRun::account`]) and
    /// gives it back when released with [`Tracker::release_held`]. The
    /// charge of pages the walk does not yield (a failed page, or the
    /// iterator dropped early) is given back when it ends. The zero page,
    /// handed out for reads, is charged like any page: the owner holds it.
    ///
    /// # Errors
    /// As [`pin_user_pages`](Self::pin_user_pages), then
    /// [`PinError::PinLimitExceeded`] if the charge would pass the limit
    /// of an unprivileged owner.
    ///
    /// ```
    /// # use gupio_pfn::{PageGeometry, Pfn};
    /// # use gupio_pin::*;
    /// # use gupio_pin::doc_fixtures::Identity;
    /// let m = ArrayMemoryMap::<4>::new(Pfn::new(0));
    /// m.prepare_folio(Pfn::new(0), FolioOrder::try_new(2).unwrap()).unwrap();
    /// let t = Tracker::new(&m);
    /// let account = PinAccount::new(3); // room for three 4 KiB pages
    /// let start = UserAddr::new(0);
    /// assert_eq!(
    ///     t.pin_user_pages_longterm(&Identity, start, 4, GupFlags::WRITE, &account).err(),
    ///     Some(PinError::PinLimitExceeded { limit: 3, charged: 0, request: 4 })
    /// );
    /// assert_eq!(m.stats().acquired(), 0, "refused before any pin");
    /// let run = t
    ///     .pin_user_pages_longterm(&Identity, start, 3, GupFlags::WRITE, &account)?
    ///     .next()
    ///     .unwrap()?;
    /// assert_eq!((run.pages(), account.charged()), (3, 3));
    /// t.release_held(run, true)?;
    /// assert_eq!((account.charged(), account.peak(), account.refusals()), (0, 3, 1));
    /// # Ok::<(), PinError>(())
    /// ```
    pub fn pin_user_pages_longterm<'s, A: AddressSpace + ?Sized>(
        &self,
        space: &'s A,
        start: UserAddr,
        nr_pages: usize,
        flags: GupFlags,
        account: &'a PinAccount,
    ) -> Result<UserPages<'s, 'a, M, A>, PinError> {
        let flags = flags.union(GupFlags::LONGTERM);
        let mut pages = UserPages::new(*self, space, start, nr_pages, flags, GrabKind::Pin)?;
        let geometry = space.page_geometry();
        account.try_charge(geometry, nr_pages)?;
        // 1, 4 or 16 units per page: a power of two.
        let units_per_page = geometry.size() / crate::ACCOUNT_UNIT;
        pages.reservation = Reservation {
            tracker: *self,
            account: Some(account),
            shift: u8::try_from(units_per_page.trailing_zeros()).unwrap_or(0),
            // Cannot overflow: `try_charge` counted exactly this.
            units: nr_pages * units_per_page,
        };
        Ok(pages)
    }
}

/// The user pages [`Tracker::pin_user_pages`] or
/// [`Tracker::get_user_pages`] walk: an iterator that grabs one folio run
/// per step and yields it as a [`HeldRun`].
///
/// The address space is asked for runs ([`AddressSpace::translate_run`]),
/// so a huge mapping costs one translation; each folio run costs one update
/// of its folio's counts. After a page fails, the iterator yields that error
/// once and then ends.
pub struct UserPages<'s, 'a, M: PageOps + ?Sized, A: AddressSpace + ?Sized> {
    tracker: Tracker<'a, M>,
    space: &'s A,
    flags: GupFlags,
    kind: GrabKind,
    page_size: usize,
    /// The next page to grab (page aligned).
    next: UserAddr,
    /// Pages still to grab.
    remaining: usize,
    /// What the last translation said about `next` onwards, not yet grabbed.
    pending: Option<MappedRun>,
    /// The charge held for the `remaining` pages of a long-term walk.
    reservation: Reservation<'a, M>,
}

/// The charge a long-term walk holds for the pages it has not yielded yet:
/// each run takes its share as it is yielded, and what is left is given
/// back when the walk ends or is dropped.
///
/// A field of its own, so that the drop that gives the charge back borrows
/// only the tracker and the account: the address space (often a lock
/// guard) may still go before the walk does.
struct Reservation<'a, M: PageOps + ?Sized> {
    tracker: Tracker<'a, M>,
    account: Option<&'a PinAccount>,
    /// Each page is charged `1 << shift` units.
    shift: u8,
    /// The units held for pages not yielded yet.
    units: usize,
}

impl<'a, M: PageOps + ?Sized> Reservation<'a, M> {
    /// No account: nothing is charged.
    fn none(tracker: Tracker<'a, M>) -> Self {
        Self {
            tracker,
            account: None,
            shift: 0,
            units: 0,
        }
    }

    /// The account charged for a run of `pages` pages and its shift, its
    /// share moved out of the reservation.
    #[inline]
    fn take(&mut self, pages: usize) -> (Option<&'a PinAccount>, u8) {
        if self.account.is_some() {
            // At most what is left: the walk yields no more pages than it
            // reserved for.
            self.units -= (pages << self.shift).min(self.units);
        }
        (self.account, self.shift)
    }

    /// Gives back what is still held.
    fn release(&mut self) {
        if let (Some(account), units @ 1..) = (self.account, self.units) {
            self.units = 0;
            // This much was charged at the start: only a stray uncharge
            // elsewhere makes it fail, and the warn hook hears of it.
            let _ = self.tracker.uncharge(account, units);
        }
    }
}

impl<M: PageOps + ?Sized> Drop for Reservation<'_, M> {
    /// A walk stopped early gives back the charge of the pages it did not
    /// yield.
    fn drop(&mut self) {
        self.release();
    }
}

impl<'s, 'a, M: PageOps + ?Sized, A: AddressSpace + ?Sized> UserPages<'s, 'a, M, A> {
    fn new(
        tracker: Tracker<'a, M>,
        space: &'s A,
        start: UserAddr,
        nr_pages: usize,
        caller_flags: GupFlags,
        kind: GrabKind,
    ) -> Result<Self, PinError> {
        let flags = caller_flags.for_entry(kind)?;
        let geometry = space.page_geometry();
        let page_size = geometry.size();
        let first = start.align_down(geometry);
        if nr_pages > 0 {
            // The last byte of the last page must not wrap (Linux: -EINVAL).
            (nr_pages - 1)
                .checked_mul(page_size)
                .and_then(|offset| offset.checked_add(page_size - 1))
                .and_then(|offset| first.checked_add(offset))
                .ok_or(PinError::AddressOverflow { start, nr_pages })?;
        }
        Ok(Self {
            tracker,
            space,
            flags,
            kind,
            page_size,
            next: first,
            remaining: nr_pages,
            pending: None,
            reservation: Reservation::none(tracker),
        })
    }

    /// Grabs the next folio run.
    #[inline]
    fn step(&mut self) -> Result<HeldRun<'a, M>, PinError> {
        let mapped = match self.pending.take() {
            Some(run) => run,
            None => self.resolve()?,
        };
        let mapped = self.check_frame(mapped)?;
        let folio = self.tracker.lookup(mapped.pfn)?;
        let pages = folio.pages_from(mapped.pfn).min(mapped.pages);
        let pins = self.tracker.grab_run(folio, pages, self.kind)?;
        if pins > 0 {
            // SeqCst: pairs with the SeqCst fence a writeback path issues
            // between write-protecting (or cleaning) a page and asking
            // maybe_dma_pinned: either it sees this pin or the caller, after
            // this fence, sees its protection (and its cleared dirty bit).
            fence(Ordering::SeqCst);
            self.tracker.ops().pins_acquired(pins);
        }
        // Cannot wrap: the whole range was checked at construction.
        self.next = UserAddr::new(self.next.get() + pages * self.page_size);
        self.remaining -= pages;
        if mapped.pages > pages && self.remaining > 0 {
            // The translation ran past this folio: keep the rest for the
            // next step instead of translating it again.
            self.pending = mapped.pfn.checked_add(pages).map(|pfn| MappedRun {
                pfn,
                pages: (mapped.pages - pages).min(self.remaining),
                flags: mapped.flags,
            });
        }
        let (account, charge_shift) = self.reservation.take(pages);
        Ok(HeldRun::new(
            self.tracker,
            folio,
            mapped.pfn,
            pages,
            self.kind,
            account,
            charge_shift,
        ))
    }

    /// Translates the run at `next`, faulting it in as needed, and applies
    /// the refusals that need no page count change.
    #[inline]
    fn resolve(&self) -> Result<MappedRun, PinError> {
        let addr = self.next;
        let space = self.space;
        let write = self.flags.contains(GupFlags::WRITE);
        let longterm = self.flags.contains(GupFlags::LONGTERM);
        let fault = |kind| PinError::Fault { addr, kind };
        // What the mapping refuses is decided before any fault or count
        // change (Linux's check_vma_flags): at once for a long-term write
        // pin (a present writable page of a dirty-tracked file must be
        // refused too), otherwise just before the first fault.
        let describe = || match space.mapping_kind(addr) {
            Ok(kind) => kind.check(self.flags, addr),
            Err(kind) => Err(fault(kind)),
        };
        let mut described = longterm && write;
        if described {
            describe()?;
        }
        // The page-table flags say it too, for embedders that answer
        // `MappingKind::Unknown`.
        let refuse_mapping = |flags: MappingFlags| {
            if longterm && write && flags.contains(MappingFlags::DIRTY_TRACKED) {
                Err(PinError::LongtermDirtyTracked { addr })
            } else {
                Ok(())
            }
        };
        let usable = |flags: MappingFlags| !write || flags.contains(MappingFlags::WRITABLE);

        // As Linux's GUP, fault in and look again until the page is mapped
        // as asked: a racing writeback may write-protect it between the
        // fault and the look-up. Bounded, so an address space whose fault
        // never maps the page cannot hang the caller.
        let max_pages = self.remaining;
        let mut seen = space.translate_run(addr, max_pages).map_err(fault)?;
        let mut faults = 0;
        let run = loop {
            match seen {
                Some(run) if run.pages > 0 && usable(run.flags) => break run,
                _ => {
                    if let Some(run) = &seen {
                        refuse_mapping(run.flags)?;
                    }
                    if !described {
                        describe()?;
                        described = true;
                    }
                    if faults == FAULT_RETRIES {
                        return Err(PinError::FaultNotResolved { addr });
                    }
                    faults += 1;
                    space.fault_in(addr, write).map_err(fault)?;
                    seen = space.translate_run(addr, max_pages).map_err(fault)?;
                }
            }
        };
        refuse_mapping(run.flags)?;
        Ok(MappedRun {
            pages: run.pages.min(max_pages),
            ..run
        })
    }

    /// The refusals that depend on the frame, for each folio run: a write
    /// to the zero page, a long-term pin of movable memory. The zero page
    /// stands alone in its run (every page of a zero mapping maps the same
    /// frame, so it is never followed by the next one).
    #[inline]
    fn check_frame(&self, mapped: MappedRun) -> Result<MappedRun, PinError> {
        let ops = self.tracker.ops();
        let pfn = mapped.pfn;
        if !ops.is_zero_page(pfn) {
            if self.flags.contains(GupFlags::LONGTERM) && !ops.is_longterm_pinnable(pfn) {
                return Err(PinError::NotLongtermPinnable { pfn });
            }
            return Ok(mapped);
        }
        if self.flags.contains(GupFlags::WRITE) {
            // A device must never write the shared zero page.
            return Err(PinError::WriteToZeroPage { addr: self.next });
        }
        // The zero page counts as long-term pinnable (it is never pinned).
        Ok(MappedRun { pages: 1, ..mapped })
    }
}

impl<'a, M: PageOps + ?Sized, A: AddressSpace + ?Sized> Iterator for UserPages<'_, 'a, M, A> {
    type Item = Result<HeldRun<'a, M>, PinError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let step = self.step();
        if step.is_err() {
            // A failed page ends the walk: the error is reported once.
            self.end();
        }
        Some(step)
    }
}

impl<M: PageOps + ?Sized, A: AddressSpace + ?Sized> UserPages<'_, '_, M, A> {
    /// Ends the walk, giving back the charge of the pages not yielded.
    fn end(&mut self) {
        self.reservation.release();
        self.remaining = 0;
        self.pending = None;
    }
}

impl<M: PageOps + ?Sized, A: AddressSpace + ?Sized> fmt::Debug for UserPages<'_, '_, M, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPages")
            .field("next", &self.next)
            .field("remaining", &self.remaining)
            .field("kind", &self.kind)
            .finish()
    }
}

#[cfg(test)]
mod tests;
