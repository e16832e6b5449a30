//! `pin_user_pages` / `get_user_pages` over the embedder's address space.

use core::fmt;

use gupio_pfn::{PageGeometry, Pfn};
use gupio_sync::atomic::{fence, Ordering};

use crate::{GrabKind, HeldRun, PageOps, PinAccount, PinError, Tracker};

/// How many times one page is faulted in before `pin_user_pages` gives up
/// with [`PinError::FaultNotResolved`]: a fault can be undone by a racing
/// writeback's write protection, so one retry is not always enough.
pub const FAULT_RETRIES: usize = 8;

/// A user virtual address.
///
/// ```
/// use gupio_pfn::PageGeometry;
/// use gupio_pin::UserAddr;
/// let addr = UserAddr::new(0x7fff_1234);
/// assert_eq!(addr.align_down(PageGeometry::FOUR_KIB), UserAddr::new(0x7fff_1000));
/// assert_eq!(addr.to_string(), "0x7fff1234");
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UserAddr(usize);

impl UserAddr {
    /// The address `raw`.
    ///
    /// ```
    /// assert_eq!(gupio_pin::UserAddr::new(4096).get(), 4096);
    /// ```
    pub const fn new(raw: usize) -> Self {
        Self(raw)
    }

    /// The raw address.
    ///
    /// ```
    /// assert_eq!(gupio_pin::UserAddr::new(1).get(), 1);
    /// ```
    pub const fn get(self) -> usize {
        self.0
    }

    /// The start of the page holding this address.
    ///
    /// ```
    /// use gupio_pfn::PageGeometry;
    /// use gupio_pin::UserAddr;
    /// let a = UserAddr::new(0x1_ffff);
    /// assert_eq!(a.align_down(PageGeometry::SIXTY_FOUR_KIB), UserAddr::new(0x1_0000));
    /// ```
    pub const fn align_down(self, geometry: PageGeometry) -> Self {
        Self(self.0 & !(geometry.size() - 1))
    }

    /// The address `bytes` further on, if it does not wrap.
    ///
    /// ```
    /// use gupio_pin::UserAddr;
    /// assert_eq!(UserAddr::new(1).checked_add(2), Some(UserAddr::new(3)));
    /// assert_eq!(UserAddr::new(usize::MAX).checked_add(1), None);
    /// ```
    pub const fn checked_add(self, bytes: usize) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(raw) => Some(Self(raw)),
            None => None,
        }
    }
}

impl fmt::Display for UserAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for UserAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// Why an address space could not map a page (what Linux turns into
/// `-EFAULT` or `-ENOMEM`).
///
/// ```
/// use gupio_pin::FaultKind;
/// assert_eq!(FaultKind::AccessDenied.to_string(), "access denied");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// No mapping covers the address (or it is a kind GUP refuses, such as
    /// an I/O mapping).
    Unmapped,
    /// The mapping does not allow the access (a write to a read-only mapping).
    AccessDenied,
    /// Memory for the page or its page tables could not be allocated.
    OutOfMemory,
    /// The backing store failed (Linux's `SIGBUS`/hardware poison).
    HardwareError,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unmapped => "not mapped",
            Self::AccessDenied => "access denied",
            Self::OutOfMemory => "out of memory",
            Self::HardwareError => "hardware error",
        })
    }
}

bitflags::bitflags! {
    /// What a page-table entry allows, as [`AddressSpace::translate`] reports it.
    ///
    /// ```
    /// use gupio_pin::MappingFlags;
    /// let shared_file = MappingFlags::WRITABLE | MappingFlags::DIRTY_TRACKED;
    /// assert!(shared_file.contains(MappingFlags::DIRTY_TRACKED));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct MappingFlags: u32 {
        /// The entry allows writes now (no copy-on-write or dirty fault pending).
        const WRITABLE = 1 << 0;
        /// A shared mapping of a file whose filesystem needs dirty tracking
        /// (ext4, xfs, btrfs; not tmpfs or hugetlbfs): never pinned for
        /// writing long term.
        const DIRTY_TRACKED = 1 << 1;
    }
}

/// What backs the mapping (Linux's VMA) that covers a user address, as
/// [`AddressSpace::mapping_kind`] describes it whether or not a page is
/// present there: what GUP needs to refuse an access before it faults
/// anything in or takes any count (Linux's `check_vma_flags`).
///
/// ```
/// use gupio_pin::{FaultKind, GupFlags, MappingKind, PinError, UserAddr};
/// let addr = UserAddr::new(0x1000);
/// let file = MappingKind::SharedFile { dirty_tracked: true };
/// let longterm_write = GupFlags::PIN | GupFlags::LONGTERM | GupFlags::WRITE;
/// assert_eq!(file.check(longterm_write, addr), Err(PinError::LongtermDirtyTracked { addr }));
/// assert_eq!(MappingKind::Shmem.check(longterm_write, addr), Ok(()));
/// assert_eq!(
///     MappingKind::ReadOnly.check(GupFlags::PIN | GupFlags::WRITE, addr),
///     Err(PinError::Fault { addr, kind: FaultKind::AccessDenied })
/// );
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MappingKind {
    /// The address space does not say (the trait's default): gupio decides
    /// from the page-table entries, so a refusal of a page not yet present
    /// comes only after its fault.
    Unknown,
    /// Private anonymous memory (including what maps the zero page until
    /// written).
    Anonymous,
    /// A private, writable mapping of a file: a write fault makes an
    /// anonymous copy, so the file never sees it.
    PrivateFile,
    /// A shared, writable mapping of a file. `dirty_tracked` when its
    /// filesystem must see every write to write it back (ext4, xfs, btrfs):
    /// such a mapping is never pinned for writing long term.
    SharedFile {
        /// Writes must be seen by the filesystem's writeback.
        dirty_tracked: bool,
    },
    /// Shared memory with no writeback to keep in step (tmpfs, memfd,
    /// hugetlbfs, SysV shared memory): any pin is allowed.
    Shmem,
    /// A mapping that allows no writes, whatever backs it: every write
    /// access is refused, reads are allowed.
    ReadOnly,
}

impl MappingKind {
    /// The refusal a GUP call with the complete `flags` gets from a mapping
    /// of this kind at `addr`, if any: a write to a read-only mapping
    /// ([`PinError::Fault`] with [`FaultKind::AccessDenied`], Linux's
    /// `-EFAULT`), a long-term write pin of a dirty-tracked shared file
    /// mapping ([`PinError::LongtermDirtyTracked`]). [`Unknown`](Self::Unknown)
    /// refuses nothing.
    ///
    /// # Errors
    /// The refusal, as above.
    ///
    /// ```
    /// use gupio_pin::{GupFlags, MappingKind, UserAddr};
    /// let all = GupFlags::PIN | GupFlags::LONGTERM | GupFlags::WRITE;
    /// assert!(MappingKind::Unknown.check(all, UserAddr::new(0)).is_ok());
    /// ```
    pub const fn check(self, flags: GupFlags, addr: UserAddr) -> Result<(), PinError> {
        let write = flags.contains(GupFlags::WRITE);
        let longterm = flags.contains(GupFlags::LONGTERM);
        match self {
            Self::ReadOnly if write => Err(PinError::Fault {
                addr,
                kind: FaultKind::AccessDenied,
            }),
            Self::SharedFile {
                dirty_tracked: true,
            } if write && longterm => Err(PinError::LongtermDirtyTracked { addr }),
            _ => Ok(()),
        }
    }
}

/// A present page-table entry: the page it maps and what it allows.
///
/// ```
/// use gupio_pfn::Pfn;
/// use gupio_pin::{Mapping, MappingFlags};
/// let m = Mapping::new(Pfn::new(7), MappingFlags::WRITABLE);
/// assert_eq!(m.pfn, Pfn::new(7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// The mapped page.
    pub pfn: Pfn,
    /// What the entry allows.
    pub flags: MappingFlags,
}

impl Mapping {
    /// The entry mapping `pfn` with `flags`.
    ///
    /// ```
    /// use gupio_pfn::Pfn;
    /// use gupio_pin::{Mapping, MappingFlags};
    /// assert!(Mapping::new(Pfn::new(1), MappingFlags::empty()).flags.is_empty());
    /// ```
    pub const fn new(pfn: Pfn, flags: MappingFlags) -> Self {
        Self { pfn, flags }
    }
}

/// The embedder's view of one process's address space, for
/// [`Tracker::pin_user_pages`] and [`Tracker::get_user_pages`].
///
/// Implement it on a guard that holds the lock keeping translations valid
/// (Linux's mmap read lock): every page it translates must stay mapped, and
/// so keep its reference, until the [`UserPages`] walk that asked is
/// dropped (it borrows the guard for that long), since the tracker grabs a
/// run of pages after translating them and may grab the rest of one
/// translated stretch a step later. `fault_in` may be called with that
/// guard held; an embedder whose fault handler must drop the lock re-takes it
/// before returning.
///
/// ```
/// use gupio_pfn::{PageGeometry, Pfn};
/// use gupio_pin::{AddressSpace, FaultKind, Mapping, MappingFlags, UserAddr};
///
/// /// One writable page at 0x1000 mapping pfn 5.
/// struct OnePage;
/// impl AddressSpace for OnePage {
///     fn page_geometry(&self) -> PageGeometry {
///         PageGeometry::FOUR_KIB
///     }
///     fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
///         match addr.get() {
///             0x1000 => Ok(Some(Mapping::new(Pfn::new(5), MappingFlags::WRITABLE))),
///             _ => Err(FaultKind::Unmapped),
///         }
///     }
///     fn fault_in(&self, _addr: UserAddr, _write: bool) -> Result<(), FaultKind> {
///         Err(FaultKind::Unmapped)
///     }
/// }
/// assert!(OnePage.translate(UserAddr::new(0x1000)).unwrap().is_some());
/// ```
pub trait AddressSpace {
    /// The page size of this address space.
    fn page_geometry(&self) -> PageGeometry;

    /// The entry mapping the page at `addr` (page aligned), without faulting:
    /// `Ok(None)` if a mapping covers the address but the page is not
    /// present (a fault can bring it in), `Err` if no fault can help.
    ///
    /// # Errors
    /// Why the address cannot be mapped at all (usually
    /// [`FaultKind::Unmapped`]).
    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind>;

    /// Faults in the page at `addr` (page aligned), for writing if `write`
    /// (breaking copy-on-write, replacing a zero-page mapping, marking a
    /// file page dirty). The tracker translates again afterwards, once.
    ///
    /// # Errors
    /// Why the page cannot be faulted in ([`FaultKind::AccessDenied`] for a
    /// write to a read-only mapping).
    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind>;

    /// The kind of the mapping covering `addr` (page aligned), whether or
    /// not a page is present there, without faulting or changing anything.
    /// gupio asks it before it faults a page in for GUP, and once per
    /// translated run for long-term write pins, and refuses what
    /// [`MappingKind::check`] refuses before any fault, count change or
    /// dirtying.
    ///
    /// The default answers [`MappingKind::Unknown`]: gupio then decides from
    /// the entries [`translate`](Self::translate) reports, as before this
    /// method existed, which for a page not yet present means after its
    /// fault. An embedder that answers must keep
    /// [`translate_run`](Self::translate_run) from returning a run that
    /// crosses into a mapping of another kind.
    ///
    /// # Errors
    /// As [`translate`](Self::translate): why no mapping covers `addr`.
    ///
    /// ```
    /// use gupio_pfn::{PageGeometry, Pfn};
    /// use gupio_pin::{AddressSpace, FaultKind, Mapping, MappingKind, UserAddr};
    /// /// Nothing present yet; everything is a dirty-tracked shared file.
    /// struct FileOnly;
    /// impl AddressSpace for FileOnly {
    ///     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    ///     fn translate(&self, _: UserAddr) -> Result<Option<Mapping>, FaultKind> { Ok(None) }
    ///     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    ///     fn mapping_kind(&self, _: UserAddr) -> Result<MappingKind, FaultKind> {
    ///         Ok(MappingKind::SharedFile { dirty_tracked: true })
    ///     }
    /// }
    /// assert!(FileOnly.mapping_kind(UserAddr::new(0)).is_ok());
    /// ```
    fn mapping_kind(&self, addr: UserAddr) -> Result<MappingKind, FaultKind> {
        let _ = addr;
        Ok(MappingKind::Unknown)
    }

    /// The longest run of pages from `addr` (page aligned), at most
    /// `max_pages` (at least 1), that map consecutive frames with the same
    /// flags, without faulting: a PMD-mapped huge page, or a contiguous part
    /// of a large folio, answers in one call. `Ok(None)` and `Err` as for
    /// [`translate`](Self::translate), about the first page.
    ///
    /// The tracker splits the run at folio boundaries itself, so a run may
    /// span several folios. The default asks [`translate`](Self::translate)
    /// page by page and stops at the first page that is not the next frame
    /// with the same flags (or fails); an embedder with large mappings
    /// answers natively, which is what makes pinning a 2 MiB folio one step.
    ///
    /// # Errors
    /// As [`translate`](Self::translate), for the first page only.
    ///
    /// ```
    /// use gupio_pfn::{PageGeometry, Pfn};
    /// use gupio_pin::{AddressSpace, FaultKind, Mapping, MappingFlags, UserAddr};
    /// /// User page N maps frame 100 + N, up to page 8.
    /// struct Linear;
    /// impl AddressSpace for Linear {
    ///     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    ///     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
    ///         let page = a.get() >> 12;
    ///         if page >= 8 { return Err(FaultKind::Unmapped) }
    ///         Ok(Some(Mapping::new(Pfn::new(100 + page), MappingFlags::WRITABLE)))
    ///     }
    ///     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    /// }
    /// let run = Linear.translate_run(UserAddr::new(0x6000), 16).unwrap().unwrap();
    /// assert_eq!((run.pfn, run.pages), (Pfn::new(106), 2), "stops at the unmapped page 8");
    /// ```
    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        let Some(first) = self.translate(addr)? else {
            return Ok(None);
        };
        let size = self.page_geometry().size();
        let mut pages = 1;
        while pages < max_pages {
            let next = pages
                .checked_mul(size)
                .and_then(|offset| addr.checked_add(offset));
            let expected = first.pfn.checked_add(pages);
            let (Some(next), Some(expected)) = (next, expected) else {
                break;
            };
            match self.translate(next) {
                Ok(Some(mapping)) if mapping == Mapping::new(expected, first.flags) => pages += 1,
                _ => break,
            }
        }
        Ok(Some(MappedRun {
            pfn: first.pfn,
            pages,
            flags: first.flags,
        }))
    }
}

/// A run of user pages mapping consecutive frames with the same flags: what
/// [`AddressSpace::translate_run`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappedRun {
    /// The frame of the run's first page.
    pub pfn: Pfn,
    /// How many pages (at least 1).
    pub pages: usize,
    /// The flags every page of the run is mapped with.
    pub flags: MappingFlags,
}

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
    /// # struct Identity;
    /// # impl AddressSpace for Identity {
    /// #     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    /// #     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
    /// #         let pfn = Pfn::try_new(a.get() >> 12).map_err(|_| FaultKind::Unmapped)?;
    /// #         Ok(Some(Mapping::new(pfn, MappingFlags::WRITABLE)))
    /// #     }
    /// #     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    /// # }
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
    /// # struct Identity;
    /// # impl AddressSpace for Identity {
    /// #     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    /// #     fn translate(&self, a: UserAddr) -> Result<Option<Mapping>, FaultKind> {
    /// #         Ok(Some(Mapping::new(Pfn::new(a.get() >> 12), MappingFlags::WRITABLE)))
    /// #     }
    /// #     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Ok(()) }
    /// # }
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
