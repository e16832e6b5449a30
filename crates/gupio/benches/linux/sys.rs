//! The host side of the Linux group: an io_uring instance used only for
//! buffer registration, anonymous buffers with a chosen backing, and the
//! checks of what the kernel did (page backing through `/proc/self/pagemap`
//! and `/proc/kpageflags`, pins through `/proc/vmstat`).
//!
//! Raw syscalls through `libc`; nothing here reaches the no_std crates.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr;

/// Bytes per base page.
pub const PAGE: usize = 4096;
/// Bytes per PMD-mapped transparent huge page on x86-64 (and arm64 with 4 KiB pages).
pub const HUGE: usize = 2 << 20;
/// Base pages per 2 MiB folio.
const PAGES_PER_HUGE: usize = HUGE / PAGE;

/// `io_uring_register` opcodes (the kernel's uapi numbering).
const IORING_REGISTER_BUFFERS: libc::c_uint = 0;
const IORING_UNREGISTER_BUFFERS: libc::c_uint = 1;

/// `/proc/self/pagemap`: page present, and the frame number's mask.
const PAGEMAP_PRESENT: u64 = 1 << 63;
const PAGEMAP_PFN: u64 = (1 << 55) - 1;
/// `/proc/kpageflags` bits (Documentation/admin-guide/mm/pagemap.rst).
const KPF_COMPOUND_HEAD: u64 = 1 << 15;
const KPF_COMPOUND_TAIL: u64 = 1 << 16;
const KPF_HUGE: u64 = 1 << 17;
const KPF_THP: u64 = 1 << 22;

/// `struct io_uring_params`: 120 bytes, all zero in, filled in by the kernel.
/// Only the file descriptor is used, so the fields stay opaque.
#[repr(C, align(8))]
struct Params([u32; 30]);

/// What backs a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// 4 KiB pages: `MADV_NOHUGEPAGE` before the first touch.
    Small,
    /// 2 MiB transparent huge pages: a 2 MiB-aligned mapping with
    /// `MADV_HUGEPAGE`, every page touched.
    Huge,
}

/// An io_uring instance, for buffer registration only (its rings are never
/// mapped).
pub struct Ring {
    fd: OwnedFd,
}

impl Ring {
    /// Sets up a one-entry ring.
    ///
    /// # Errors
    ///
    /// Why io_uring cannot be used here: the errno of `io_uring_setup`
    /// (ENOSYS without io_uring, EPERM when disabled or filtered).
    pub fn new() -> Result<Self, String> {
        let mut params = Params([0; 30]);
        // SAFETY: io_uring_setup reads and writes the 120-byte
        // `io_uring_params` that `params` is, and returns a new descriptor
        // (or -1); no other memory is touched.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_io_uring_setup,
                1 as libc::c_uint,
                ptr::addr_of_mut!(params),
            )
        };
        if fd < 0 {
            return Err(format!("io_uring_setup: {}", io::Error::last_os_error()));
        }
        let fd = libc::c_int::try_from(fd).map_err(|_| "io_uring_setup: bad descriptor")?;
        // SAFETY: the kernel just handed out `fd`; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// Registers `len` bytes from `start` as the ring's one fixed buffer:
    /// the kernel pins the pages and builds the buffer's bvecs.
    ///
    /// # Errors
    ///
    /// The errno of `io_uring_register` (ENOMEM past RLIMIT_MEMLOCK,
    /// EFAULT, EOPNOTSUPP…).
    pub fn register(&self, buffer: &Buffer) -> io::Result<()> {
        let iovec = libc::iovec {
            iov_base: buffer.start.cast(),
            iov_len: buffer.len,
        };
        // SAFETY: the kernel reads one `iovec` from `&iovec`, which lives
        // across the call; the range it names is our own mapping, which
        // stays mapped while registered (`Buffer` outlives the ring's use
        // of it: every registration is undone before the buffer drops).
        let done = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.fd.as_raw_fd(),
                IORING_REGISTER_BUFFERS,
                ptr::addr_of!(iovec),
                1 as libc::c_uint,
            )
        };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Unregisters the fixed buffers: the kernel unpins their pages.
    ///
    /// # Errors
    ///
    /// The errno of `io_uring_register` (ENXIO when none is registered).
    pub fn unregister(&self) -> io::Result<()> {
        // SAFETY: no argument memory: the kernel drops its own table.
        let done = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.fd.as_raw_fd(),
                IORING_UNREGISTER_BUFFERS,
                ptr::null::<libc::c_void>(),
                0 as libc::c_uint,
            )
        };
        if done < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// An anonymous private mapping, every page written once, of the backing
/// asked for (not yet verified: see [`Buffer::verify`]).
pub struct Buffer {
    map: *mut u8,
    map_len: usize,
    start: *mut u8,
    len: usize,
    backing: Backing,
}

impl Buffer {
    /// `len` bytes (a multiple of 4 KiB) backed as `backing` asks.
    ///
    /// # Errors
    ///
    /// The failing call (mmap, munmap, madvise) and its errno.
    pub fn new(len: usize, backing: Backing) -> Result<Self, String> {
        assert!(len > 0 && len % PAGE == 0);
        let (map_len, slack) = match backing {
            Backing::Small => (len, 0),
            // Whole 2 MiB extents, plus room to align the start.
            Backing::Huge => (len.next_multiple_of(HUGE), HUGE),
        };
        // SAFETY: a fresh anonymous mapping; no existing memory is named.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len + slack,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(format!("mmap: {}", io::Error::last_os_error()));
        }
        let map = map.cast::<u8>();
        // Bytes before the first 2 MiB boundary (none for small pages).
        let head = match backing {
            Backing::Small => 0,
            Backing::Huge => (map as usize).next_multiple_of(HUGE) - map as usize,
        };
        // The aligned part only: give back the head and the tail.
        // SAFETY: both ranges lie inside the mapping just made, outside
        // the part kept.
        unsafe {
            if head > 0 {
                libc::munmap(map.cast(), head);
            }
            if slack > head {
                libc::munmap(map.add(head + map_len).cast(), slack - head);
            }
        }
        // SAFETY: `head <= slack`, so `map + head` lies in the mapping.
        let map = unsafe { map.add(head) };
        let buffer = Self {
            map,
            map_len,
            start: map,
            len,
            backing,
        };
        let advice = match backing {
            Backing::Small => libc::MADV_NOHUGEPAGE,
            Backing::Huge => libc::MADV_HUGEPAGE,
        };
        // SAFETY: advice on our own mapping, before any page exists.
        if unsafe { libc::madvise(map.cast(), map_len, advice) } != 0 {
            return Err(format!("madvise: {}", io::Error::last_os_error()));
        }
        // A write, not a read, to every page: a read would map the (huge)
        // zero page, which pins do not count.
        for offset in (0..map_len).step_by(PAGE) {
            // SAFETY: inside the mapping, which is readable and writable.
            unsafe { map.add(offset).write_volatile(1) };
        }
        Ok(buffer)
    }

    /// The 4 KiB pages registered.
    pub fn pages(&self) -> usize {
        self.len / PAGE
    }

    /// Checks that every page is present and backed as asked, through the
    /// frame numbers of `/proc/self/pagemap` and the flags of
    /// `/proc/kpageflags`. Returns what was seen, with the number of folios
    /// the buffer spans.
    ///
    /// # Errors
    ///
    /// What is not as asked, or why it cannot be seen.
    pub fn verify(&self) -> Result<Verified, String> {
        let pagemap = File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
        let kpageflags = File::open("/proc/kpageflags").map_err(|e| format!("kpageflags: {e}"))?;
        let mut entries = vec![0u8; self.pages() * 8];
        pagemap
            .read_exact_at(&mut entries, (self.start as u64 / PAGE as u64) * 8)
            .map_err(|e| format!("pagemap: {e}"))?;
        let pfns = entries
            .chunks_exact(8)
            .enumerate()
            .map(|(index, entry)| {
                let entry = u64::from_ne_bytes(entry.try_into().expect("8 bytes"));
                if entry & PAGEMAP_PRESENT == 0 {
                    return Err(format!("page {index} not present"));
                }
                match entry & PAGEMAP_PFN {
                    0 => Err("pagemap hides frame numbers (needs CAP_SYS_ADMIN)".into()),
                    pfn => Ok(pfn),
                }
            })
            .collect::<Result<Vec<u64>, String>>()?;
        let flags_of = |pfn: u64, count: usize| -> Result<Vec<u64>, String> {
            let mut raw = vec![0u8; count * 8];
            kpageflags
                .read_exact_at(&mut raw, pfn * 8)
                .map_err(|e| format!("kpageflags: {e}"))?;
            Ok(raw
                .chunks_exact(8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
                .collect())
        };
        match self.backing {
            Backing::Small => {
                for (index, &pfn) in pfns.iter().enumerate() {
                    let flags = flags_of(pfn, 1)?[0];
                    if flags & (KPF_THP | KPF_HUGE | KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL) != 0 {
                        return Err(format!(
                            "page {index} (pfn {pfn:#x}) is in a large folio (kpageflags {flags:#x})"
                        ));
                    }
                }
                Ok(Verified {
                    folios: pfns.len(),
                    what: format!(
                        "{} pages present, none in a large folio (pagemap + kpageflags)",
                        pfns.len()
                    ),
                })
            }
            Backing::Huge => {
                // The buffer starts 2 MiB-aligned: page `i` is page
                // `i % 512` of folio `i / 512`.
                let mut folios = 0;
                for (folio, chunk) in pfns.chunks(PAGES_PER_HUGE).enumerate() {
                    let head = chunk[0];
                    if head % PAGES_PER_HUGE as u64 != 0 {
                        return Err(format!(
                            "2 MiB extent {folio}: pfn {head:#x} not 2 MiB-aligned"
                        ));
                    }
                    let flags = flags_of(head, chunk.len())?;
                    for (index, (&pfn, &flags)) in chunk.iter().zip(&flags).enumerate() {
                        let role = if index == 0 {
                            KPF_COMPOUND_HEAD
                        } else {
                            KPF_COMPOUND_TAIL
                        };
                        if pfn != head + index as u64 || flags & (KPF_THP | role) != KPF_THP | role
                        {
                            return Err(format!(
                                "2 MiB extent {folio}, page {index} (pfn {pfn:#x}, kpageflags \
                                 {flags:#x}) is not in a 2 MiB THP"
                            ));
                        }
                    }
                    folios += 1;
                }
                Ok(Verified {
                    folios,
                    what: format!(
                        "{} pages in {folios} 2 MiB THP folio(s): head 2 MiB-aligned, tails \
                         contiguous (pagemap + kpageflags)",
                        pfns.len()
                    ),
                })
            }
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the part of the mapping `new` kept; no registration is
        // left (the ring unregisters after every registration).
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// What [`Buffer::verify`] saw.
pub struct Verified {
    /// The folios the buffer spans (pages, for small pages).
    pub folios: usize,
    /// A sentence for the report.
    pub what: String,
}

/// The kernel's pin counters (`/proc/vmstat`), per 4 KiB page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pins {
    /// `nr_foll_pin_acquired`.
    pub acquired: u64,
    /// `nr_foll_pin_released`.
    pub released: u64,
}

impl Pins {
    /// Reads the counters after folding every CPU's pending deltas into
    /// them (`/proc/sys/vm/stat_refresh`): without that, each CPU may hold
    /// back up to its stat threshold and a count is only approximate.
    ///
    /// # Errors
    ///
    /// Why the counters cannot be read exactly.
    pub fn read() -> Result<Self, String> {
        fs::write("/proc/sys/vm/stat_refresh", "1")
            .map_err(|e| format!("cannot fold per-CPU vmstat deltas (stat_refresh: {e})"))?;
        let text = fs::read_to_string("/proc/vmstat").map_err(|e| format!("vmstat: {e}"))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .ok_or_else(|| format!("/proc/vmstat has no {name}"))
        };
        Ok(Self {
            acquired: field("nr_foll_pin_acquired")?,
            released: field("nr_foll_pin_released")?,
        })
    }

    /// Pins acquired since `before`.
    pub fn acquired_since(self, before: Self) -> u64 {
        self.acquired.wrapping_sub(before.acquired)
    }

    /// Pins held now minus pins held at `before` (signed).
    pub fn held_since(self, before: Self) -> i64 {
        let held = |pins: Self| pins.acquired.wrapping_sub(pins.released);
        held(self).wrapping_sub(held(before)) as i64
    }
}

/// Raises RLIMIT_MEMLOCK to at least `bytes` (root may raise the hard limit
/// too). Returns a note when it could not.
pub fn raise_memlock(bytes: usize) -> Option<String> {
    let want = libc::rlim_t::try_from(bytes).unwrap_or(libc::RLIM_INFINITY);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Some(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= want {
        return None;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: if limit.rlim_max == libc::RLIM_INFINITY {
            limit.rlim_max
        } else {
            limit.rlim_max.max(want)
        },
    };
    // SAFETY: setrlimit reads one `rlimit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } != 0 {
        return Some(format!(
            "RLIMIT_MEMLOCK stays {} bytes (setrlimit: {})",
            limit.rlim_cur,
            io::Error::last_os_error()
        ));
    }
    None
}

/// Why io_uring is off by policy, if it is
/// (`/proc/sys/kernel/io_uring_disabled`: 0 on, 1 privileged only, 2 off).
pub fn io_uring_disabled() -> Option<String> {
    let text = fs::read_to_string("/proc/sys/kernel/io_uring_disabled").ok()?;
    (text.trim() == "2").then(|| "io_uring disabled (kernel.io_uring_disabled = 2)".into())
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> Option<String> {
    let text = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    Some(text.trim().to_owned())
}
