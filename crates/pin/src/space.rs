//! The embedder's user address space as `pin_user_pages` sees it: user
//! addresses, mappings, faults, and the `AddressSpace` trait.

use core::fmt;

use gupio_pfn::{PageGeometry, Pfn};

use crate::{GupFlags, PinError, ProtectError};

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
/// [`Tracker::pin_user_pages`](crate::Tracker::pin_user_pages) and [`Tracker::get_user_pages`](crate::Tracker::get_user_pages).
///
/// Implement it on a guard that holds the lock keeping translations valid
/// (Linux's mmap read lock): every page it translates must stay mapped, and
/// so keep its reference, until the [`UserPages`](crate::UserPages) walk that asked is
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

    /// Makes every user mapping of the `len` bytes at `addr` (page
    /// aligned) read-only for the length of a stable direct-I/O write, as
    /// writeback does for a page-cache folio: a CPU write to them then
    /// faults, and the embedder's fault handler waits for the write's
    /// completion (or copies the page on write) instead of making the
    /// mapping writable. Protections nest: each call is undone by one
    /// [`restore_write`](Self::restore_write) of the same range, and a page
    /// becomes writable again only when the last one is undone (and only if
    /// it was writable before the first).
    ///
    /// The default says [`ProtectError::Unsupported`]: an address space
    /// that cannot do this still works with the other stable modes.
    ///
    /// # Errors
    /// [`ProtectError::Unsupported`] by default; an implementation reports
    /// a range it cannot protect, having protected nothing.
    ///
    /// ```
    /// use gupio_pfn::PageGeometry;
    /// use gupio_pin::{AddressSpace, FaultKind, Mapping, ProtectError, UserAddr};
    /// struct Empty;
    /// impl AddressSpace for Empty {
    ///     fn page_geometry(&self) -> PageGeometry { PageGeometry::FOUR_KIB }
    ///     fn translate(&self, _: UserAddr) -> Result<Option<Mapping>, FaultKind> { Ok(None) }
    ///     fn fault_in(&self, _: UserAddr, _: bool) -> Result<(), FaultKind> { Err(FaultKind::Unmapped) }
    /// }
    /// let addr = UserAddr::new(0x1000);
    /// assert_eq!(Empty.write_protect(addr, 4096), Err(ProtectError::Unsupported));
    /// assert_eq!(Empty.restore_write(addr, 4096), Err(ProtectError::Unsupported));
    /// ```
    fn write_protect(&self, addr: UserAddr, len: usize) -> Result<(), ProtectError> {
        let _ = (addr, len);
        Err(ProtectError::Unsupported)
    }

    /// Undoes one [`write_protect`](Self::write_protect) of the same range
    /// once the device has read the pages.
    ///
    /// # Errors
    /// [`ProtectError::Unsupported`] by default; an implementation reports
    /// a range it never protected.
    fn restore_write(&self, addr: UserAddr, len: usize) -> Result<(), ProtectError> {
        let _ = (addr, len);
        Err(ProtectError::Unsupported)
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

#[cfg(test)]
mod tests;
