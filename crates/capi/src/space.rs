//! The kernel's address space (its page tables) as a callback table.

use core::ffi::c_void;

use gupio::pfn::{PageGeometry, Pfn};
use gupio::pin::{
    AddressSpace, FaultKind, MappedRun, Mapping, MappingFlags, MappingKind, UserAddr,
};

use crate::cell;
use crate::error::{gupio_error, Fail};

/// What an address-space callback returns: 0 for success, or why the
/// address cannot be mapped.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_fault {
    /// No fault.
    GUPIO_FAULT_NONE = 0,
    /// No mapping covers the address.
    GUPIO_FAULT_UNMAPPED = 1,
    /// The mapping forbids the access.
    GUPIO_FAULT_ACCESS_DENIED = 2,
    /// No memory to resolve the fault.
    GUPIO_FAULT_OUT_OF_MEMORY = 3,
    /// The memory behind the address is broken.
    GUPIO_FAULT_HARDWARE_ERROR = 4,
}

/// What kind of mapping covers an address (for the refusals decided before
/// any fault: a write pin of a read-only mapping, a long-term write pin of
/// a dirty-tracked shared file mapping).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gupio_mapping_kind {
    /// Not known: only the page-table flags decide.
    GUPIO_MAPPING_UNKNOWN = 0,
    /// Anonymous memory.
    GUPIO_MAPPING_ANONYMOUS = 1,
    /// A private file mapping.
    GUPIO_MAPPING_PRIVATE_FILE = 2,
    /// A shared file mapping whose filesystem does not track dirtying.
    GUPIO_MAPPING_SHARED_FILE = 3,
    /// A shared file mapping whose filesystem tracks dirtying.
    GUPIO_MAPPING_SHARED_FILE_DIRTY_TRACKED = 4,
    /// Shared memory.
    GUPIO_MAPPING_SHMEM = 5,
    /// Read-only.
    GUPIO_MAPPING_READ_ONLY = 6,
}

/// Mapping flag: the page is mapped writable.
pub const GUPIO_MAPPING_WRITABLE: u32 = 1;
/// Mapping flag: the page belongs to a dirty-tracked file mapping.
pub const GUPIO_MAPPING_DIRTY_TRACKED: u32 = 2;

const _: () = assert!(
    GUPIO_MAPPING_WRITABLE == MappingFlags::WRITABLE.bits()
        && GUPIO_MAPPING_DIRTY_TRACKED == MappingFlags::DIRTY_TRACKED.bits()
);

/// A run of consecutive user pages mapped to consecutive frames with the
/// same flags, as `translate_run` reports it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct gupio_mapped_run {
    /// The frame of the first page.
    pub pfn: usize,
    /// How many pages (at most the `max_pages` asked; 0: not mapped).
    pub pages: usize,
    /// `GUPIO_MAPPING_*` flags.
    pub flags: u32,
}

/// The kernel's address space for one process, filled in by the kernel and
/// passed to each call that pins user memory. Required: `translate_run`,
/// `fault_in`. Each callback gets `ctx` first and returns a `gupio_fault`
/// value (0 on success).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct gupio_address_space {
    /// Translates the page at `addr` and as many following pages (up to
    /// `max_pages`) as map to consecutive frames with the same flags into
    /// `*run`; `run->pages = 0` when the page is not mapped (gupio then
    /// faults it in). Answering whole runs lets a large folio be pinned in
    /// one step.
    pub translate_run: Option<
        unsafe extern "C" fn(
            ctx: *mut c_void,
            addr: usize,
            max_pages: usize,
            run: *mut gupio_mapped_run,
        ) -> u32,
    >,
    /// Makes the page at `addr` present (writable if `write`).
    pub fault_in: Option<unsafe extern "C" fn(ctx: *mut c_void, addr: usize, write: bool) -> u32>,
    /// Stores the `gupio_mapping_kind` of the mapping covering `addr` in
    /// `*kind` (even where no page is present yet). Null: unknown.
    pub mapping_kind:
        Option<unsafe extern "C" fn(ctx: *mut c_void, addr: usize, kind: *mut u32) -> u32>,
    /// Passed to every callback.
    pub ctx: *mut c_void,
    /// The page size as a shift: 12, 14 or 16 (4, 16 or 64 KiB).
    pub page_shift: u32,
}

/// A validated copy of the kernel's address space.
pub(crate) struct Space {
    table: gupio_address_space,
    translate_run: unsafe extern "C" fn(*mut c_void, usize, usize, *mut gupio_mapped_run) -> u32,
    fault_in: unsafe extern "C" fn(*mut c_void, usize, bool) -> u32,
    geometry: PageGeometry,
}

impl Space {
    /// Copies and checks the table behind `space`.
    ///
    /// # Safety
    /// `space` is null or points to a `gupio_address_space`.
    pub(crate) unsafe fn from_c(space: *const gupio_address_space) -> Result<Self, Fail> {
        cell::check_ptr(space)?;
        // SAFETY: non-null, aligned, and a table per the contract.
        let table = unsafe { space.read() };
        let missing = Fail::new(gupio_error::GUPIO_ERR_MISSING_CALLBACK);
        Ok(Self {
            translate_run: table.translate_run.ok_or(missing)?,
            fault_in: table.fault_in.ok_or(missing)?,
            geometry: PageGeometry::try_from_shift(table.page_shift)?,
            table,
        })
    }

    /// The page geometry the table names.
    pub(crate) fn geometry(&self) -> PageGeometry {
        self.geometry
    }
}

fn fault(raw: u32) -> Result<(), FaultKind> {
    match raw {
        0 => Ok(()),
        1 => Err(FaultKind::Unmapped),
        2 => Err(FaultKind::AccessDenied),
        3 => Err(FaultKind::OutOfMemory),
        // A hardware error, or a value that names no fault: either way the
        // address cannot be used.
        _ => Err(FaultKind::HardwareError),
    }
}

impl AddressSpace for Space {
    fn page_geometry(&self) -> PageGeometry {
        self.geometry
    }

    fn translate(&self, addr: UserAddr) -> Result<Option<Mapping>, FaultKind> {
        Ok(self
            .translate_run(addr, 1)?
            .map(|run| Mapping::new(run.pfn, run.flags)))
    }

    fn translate_run(
        &self,
        addr: UserAddr,
        max_pages: usize,
    ) -> Result<Option<MappedRun>, FaultKind> {
        let mut run = gupio_mapped_run {
            pfn: 0,
            pages: 0,
            flags: 0,
        };
        // SAFETY: the kernel's callback with its own context and a run it
        // may write for the call.
        fault(unsafe { (self.translate_run)(self.table.ctx, addr.get(), max_pages, &mut run) })?;
        if run.pages == 0 {
            return Ok(None);
        }
        // A frame that cannot be encoded, or flags that name nothing, are a
        // broken page table: the address cannot be used.
        let pfn = Pfn::try_new(run.pfn).map_err(|_| FaultKind::HardwareError)?;
        let flags = MappingFlags::from_bits(run.flags).ok_or(FaultKind::HardwareError)?;
        Ok(Some(MappedRun {
            pfn,
            pages: run.pages.min(max_pages),
            flags,
        }))
    }

    fn fault_in(&self, addr: UserAddr, write: bool) -> Result<(), FaultKind> {
        // SAFETY: the kernel's callback with its own context.
        fault(unsafe { (self.fault_in)(self.table.ctx, addr.get(), write) })
    }

    fn mapping_kind(&self, addr: UserAddr) -> Result<MappingKind, FaultKind> {
        let Some(f) = self.table.mapping_kind else {
            return Ok(MappingKind::Unknown);
        };
        let mut kind = 0u32;
        // SAFETY: the kernel's callback with its own context and a word it
        // may write for the call.
        fault(unsafe { f(self.table.ctx, addr.get(), &mut kind) })?;
        Ok(match kind {
            1 => MappingKind::Anonymous,
            2 => MappingKind::PrivateFile,
            3 => MappingKind::SharedFile {
                dirty_tracked: false,
            },
            4 => MappingKind::SharedFile {
                dirty_tracked: true,
            },
            5 => MappingKind::Shmem,
            6 => MappingKind::ReadOnly,
            _ => MappingKind::Unknown,
        })
    }
}
