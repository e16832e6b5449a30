//! Target `pin_release`: arbitrary sequences of map, pin, get, build, split,
//! submit, complete, release and writeback operations on gupio-host's
//! simulated machine, checked against the machine's invariants.
//!
//! The machine is synchronous (no device thread, no worker), so every run is
//! deterministic: the device transfers a request only when an operation asks
//! it to. The fuzzer owns what it takes: pins and references from GUP and
//! the tracker (`held`, one entry per page: GUP's runs are handed over with
//! `into_raw`), a bio being built (whose pages it handed over), the
//! submitted and completed bios. After the operations it releases all of it
//! the right way (a read bio always with its pages dirtied, as a device
//! wrote into them), writes the file back and checks:
//!
//! - pins acquired == pins released, and every counter at baseline;
//! - the registered buffers' account is back at zero once they are
//!   unregistered, and held exactly their runs' charge before;
//! - after each exit, every page held by the fuzzer or the table is still
//!   allocated (and still pinned if it was pinned);
//! - no leak (nothing allocated once the process and the cache are gone),
//!   no refused (double) free;
//! - the file's pages are clean and equal to the disk, and, unless an
//!   untracked writeback ran, no write was unstable (with a synchronous
//!   device a page changes during a write only when a queued read into it
//!   runs first, which gupio's pin check prevents);
//! - the warnings are exactly those the sequence provoked on purpose (an
//!   unpin of an unpinned page, a put of a free page, a double completion).
//!
//! Typed errors from any call are expected and fine; a panic, or a broken
//! invariant, is the finding.
//!
//! Input layout: operations until the input ends (at most [`MAX_OPS`]),
//! each an opcode byte (modulo 16) and its argument bytes (a missing byte
//! reads as 0):
//!
//! - 0 pin user pages, 1 get user pages: region, first page, count, flags
//!   (bit 0 write, bit 1 long-term, bit 2 give each run back at once with
//!   `Tracker::release_held`, dirtying it if bit 3; otherwise each run is
//!   handed over with `HeldRun::into_raw` and held page by page);
//! - 2 add a held page to the bio being built (starting one if none: op
//!   and limits from a byte): pick, length selector, offset selector;
//! - 3 add the kernel buffer to the bio (borrowed): length selector;
//! - 4 split the bio: sectors byte; 5 advance it: sectors byte;
//! - 6 submit the bio; 7 the device processes one request;
//! - 8 release a completed bio: pick, mode;
//! - 9 run the deferred releases;
//! - 10 release a held page: pick, dirty;
//! - 11 misuse on purpose: kind (unpin an unpinned page, put a free page,
//!   inject a double completion);
//! - 12 writeback of the file: mode (untracked, bounce, skip, wait);
//! - 13 buffered write: page, value; 14 CPU store: region, page, value;
//! - 15 unmap and map again a region (argument below 0x80), inject a
//!   device error (0x80 and up: status `ALL[b % 12]`), or, for the
//!   arguments that name `Ok` there and so injected nothing before
//!   (`0x80 + 4 + 12 k`, k = 0..=10, no further byte), an owner operation:
//!   k 0-2 fork the process (the child's view checked against the fork
//!   rule, the child kept), 3-5 the process exits with whatever it has
//!   outstanding (its oldest child, if any, carries on as the process, else
//!   a fresh one maps the regions again), 6-7 the oldest child exits, 8-10
//!   register a buffer: long-term pin private pages into a table of
//!   registered buffers whose [`PinAccount`] (limited to
//!   [`REGISTERED_LIMIT`]) outlives every process. An argument
//!   `0x40..=0x7f` (before stable writes, a remap of region `b % 4`) is a
//!   stable direct-I/O write in one of the four modes with a CPU store into
//!   the buffer while it is in flight (`State::stable_write`); after the
//!   run, no block on disk may fail its recorded checksum unless a
//!   zero-copy write's page changed in flight, an untracked writeback ran,
//!   or the block's last stable write reported an error (a verified
//!   write whose reissue failed leaves its torn block behind).
//!
//! The owner operations take their arguments from that one byte, so the
//! bytes after them decode as they always did.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use gupio::bio::{Bio, BioLimits, BioOp, BioStatus, Sector, SectorCount};
use gupio::pfn::{Origin, Pfn};
use gupio::pin::{
    fork_action, maybe_dma_pinned, AddressSpace, ForkAction, GupFlags, HeldRun, PageRange,
    PinAccount, Tracker, UserAddr, Warning,
};
use gupio::release::{
    release_deferred, release_pages, set_pages_dirty, AnyWarning, CompletedBio, DeferredList,
    DioRead, FaultChoice, ReleaseWarning, StableMode, SubmittedBio,
};
use gupio::writeback::PinnedAction;
use gupio_host::{Fault, File, Machine, MachineConfig, Memory, OwnedBvecs, Process, WritebackMode};

/// The most operations one input runs.
pub const MAX_OPS: usize = 256;

/// Pages of the file, laid out as an order-3 folio, an order-2 folio and
/// four small pages.
const FILE_PAGES: usize = 16;
/// Pages of the anonymous and the zero-page mappings.
const PRIVATE_PAGES: usize = 8;
/// Sectors of the raw disk region bios are submitted to.
const RAW_SECTORS: u64 = 1024;
/// Sectors of the disk: the file and the raw region.
const DISK_SECTORS: u64 = FILE_PAGES as u64 * 8 + RAW_SECTORS;
/// The registered buffers' limit, in 4 KiB units: a few registrations fit.
pub const REGISTERED_LIMIT: usize = 6;
/// The most children kept at once; a fork past it ends the oldest first.
const MAX_CHILDREN: usize = 2;

/// The input cursor: a missing byte reads as 0.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        b
    }

    fn is_done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// A region of the process's address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Shared,
    ReadOnly,
    Anonymous,
    ZeroPage,
}

impl Region {
    fn of(b: u8) -> Self {
        [
            Self::Shared,
            Self::ReadOnly,
            Self::Anonymous,
            Self::ZeroPage,
        ][usize::from(b % 4)]
    }

    fn pages(self) -> usize {
        match self {
            Self::Shared | Self::ReadOnly => FILE_PAGES,
            Self::Anonymous | Self::ZeroPage => PRIVATE_PAGES,
        }
    }
}

/// A page reference or pin the fuzzer owns.
#[derive(Clone, Copy, Debug)]
struct Held {
    pfn: Pfn,
    origin: Origin,
    /// Taken for writing: a device may write into it (a read bio's page).
    writable: bool,
}

/// A bio being built.
struct Building {
    bio: Bio<OwnedBvecs>,
}

type Completed = Arc<Mutex<Vec<CompletedBio<OwnedBvecs>>>>;

struct State<'m> {
    machine: &'m Machine,
    tracker: Tracker<'m, gupio_host::Memory>,
    file: Arc<File>,
    process: Process,
    /// Forked children, oldest first, each with its regions' addresses
    /// (the parent's when it forked: a later remap in the parent moves
    /// only the parent's).
    children: Vec<(Process, [UserAddr; 4])>,
    /// A table of registered buffers: long-term pinned runs charged to
    /// `account`, which outlives every process.
    registered: Vec<HeldRun<'m, Memory>>,
    account: &'m PinAccount,
    maps: [UserAddr; 4],
    kernel: Pfn,
    raw: u64,
    held: Vec<Held>,
    building: Option<Building>,
    completed: Completed,
    deferred: DeferredList<CompletedBio<OwnedBvecs>, 4>,
    provoked: Vec<AnyWarning>,
    double_completions: usize,
    /// Whether an untracked writeback ran: the only way to an unstable
    /// write, with the two below.
    untracked: bool,
    /// Whether a zero-copy or verified stable write's page changed in
    /// flight (the device sees a mismatch; verify then reissues).
    unstable_expected: bool,
    /// Whether a zero-copy write's page changed in flight: the only stable
    /// write that may leave a block on disk that fails its checksum, bar
    /// those in `failed_blocks`.
    zero_copy_changed: bool,
    /// The first sectors of the blocks whose last stable write reported an
    /// error: a verified write whose first transfer tore and whose reissue
    /// then failed leaves the torn block on disk, and tells its caller so.
    failed_blocks: BTreeSet<u64>,
}

/// Runs the operations in `data`; panics on a broken invariant.
///
/// ```
/// // Pin two pages of the shared file mapping for writing, build a read
/// // bio of them, submit it, let the device run it, release it.
/// let input = [
///     0, 0, 2, 2, 1, // pin: shared, page 2, 2 pages, write
///     2, 0, 0, 1, 0, // add held page 0 (a read bio), a whole page
///     2, 0, 0, 1, 0, // add the next held page
///     6, 7, 8, 0, 0, // submit, process, release
/// ];
/// gupio_fuzz::pin_release::run(&input);
/// ```
pub fn run(data: &[u8]) {
    let machine = Machine::new(MachineConfig::synchronous(160, DISK_SECTORS)).expect("machine");
    let account = PinAccount::new(REGISTERED_LIMIT);
    let cache = machine.cache();
    let file = cache.create_file(FILE_PAGES, &[3, 2]).expect("file");
    let raw = cache.reserve_sectors(RAW_SECTORS).expect("raw region");
    let process = machine.spawn_process();
    let maps = map_regions(&process, &file);
    let kernel = machine
        .memory()
        .alloc_folio(0, true)
        .expect("kernel buffer");
    let mut state = State {
        machine: &machine,
        tracker: machine.tracker(),
        file,
        process,
        children: Vec::new(),
        registered: Vec::new(),
        account: &account,
        maps,
        kernel,
        raw,
        held: Vec::new(),
        building: None,
        completed: Arc::new(Mutex::new(Vec::new())),
        deferred: DeferredList::new(),
        provoked: Vec::new(),
        double_completions: 0,
        untracked: false,
        unstable_expected: false,
        zero_copy_changed: false,
        failed_blocks: BTreeSet::new(),
    };
    let mut input = Input { data, at: 0 };
    for _ in 0..MAX_OPS {
        if input.is_done() {
            break;
        }
        state.step(&mut input);
    }
    state.finish();
}

/// Maps the four regions into `process`.
fn map_regions(process: &Process, file: &File) -> [UserAddr; 4] {
    [
        process.mmap_file(file, 0, FILE_PAGES, true).expect("map"),
        process.mmap_file(file, 0, FILE_PAGES, false).expect("map"),
        process.mmap_anonymous(PRIVATE_PAGES).expect("map"),
        process.mmap_zero_page(PRIVATE_PAGES).expect("map"),
    ]
}

impl State<'_> {
    fn step(&mut self, input: &mut Input<'_>) {
        match input.byte() % 16 {
            0 => self.gup(input, true),
            1 => self.gup(input, false),
            2 => self.add_held(input),
            3 => self.add_kernel(input),
            4 => self.split(input),
            5 => self.advance(input),
            6 => self.submit(),
            7 => {
                self.machine.device().process_one();
            }
            8 => self.release_completed(input),
            9 => self.run_deferred(),
            10 => self.release_held(input),
            11 => self.misuse(input),
            12 => self.writeback(input),
            13 => self.buffered_write(input),
            14 => self.store(input),
            _ => self.remap_or_inject(input),
        }
    }

    fn addr(&self, region: Region, page: usize) -> UserAddr {
        let base = self.maps[region as usize];
        UserAddr::new(base.get() + page * 4096)
    }

    /// 0 and 1: pin or get user pages.
    fn gup(&mut self, input: &mut Input<'_>, pin: bool) {
        let region = Region::of(input.byte());
        let first = usize::from(input.byte()) % region.pages();
        let count = 1 + usize::from(input.byte()) % 4;
        let bits = input.byte();
        let mut flags = GupFlags::empty();
        if bits & 1 != 0 {
            flags |= GupFlags::WRITE;
        }
        if bits & 2 != 0 {
            flags |= GupFlags::LONGTERM;
        }
        let release_now = bits & 4 != 0;
        let dirty = bits & 8 != 0;
        let origin = if pin {
            Origin::Pinned
        } else {
            Origin::Referenced
        };
        let guard = self.process.gup();
        let addr = self.addr(region, first);
        let runs = if pin {
            self.tracker.pin_user_pages(&guard, addr, count, flags)
        } else {
            self.tracker.get_user_pages(&guard, addr, count, flags)
        };
        // A typed error at once pins nothing. Otherwise the walk yields runs
        // of consecutive user pages from `addr`, each holding what it says,
        // then at most one error, then ends.
        let Ok(runs) = runs else {
            return;
        };
        let mut next = addr;
        let mut taken = 0;
        let mut failed = false;
        for run in runs {
            assert!(!failed, "the walk went on after an error");
            let run = match run {
                Ok(run) => run,
                Err(_) => {
                    failed = true;
                    continue;
                }
            };
            assert!(run.pages() >= 1, "an empty run");
            assert_eq!(run.origin(), origin, "a run of the wrong origin");
            taken += run.pages();
            assert!(taken <= count, "GUP yielded {taken} of {count} pages");
            // The run is what the page table maps there now (the guard
            // keeps it so until dropped).
            for i in 0..run.pages() {
                let mapped = guard.translate(next).expect("a pinned page is mapped");
                let want = run.first().checked_add(i).expect("a run's pages exist");
                assert_eq!(mapped.map(|m| m.pfn), Some(want), "run page {i} at {next}");
                next = UserAddr::new(next.get() + 4096);
            }
            if release_now {
                self.tracker
                    .release_held(run, dirty)
                    .expect("releasing a held run");
                continue;
            }
            let (range, raw_origin) = run.into_raw();
            assert_eq!(raw_origin, origin);
            for i in 0..range.len() {
                self.held.push(Held {
                    pfn: range.first().checked_add(i).expect("a run's pages exist"),
                    origin,
                    writable: flags.contains(GupFlags::WRITE),
                });
            }
        }
        drop(guard);
    }

    fn bio(&mut self, input: &mut Input<'_>) -> &mut Bio<OwnedBvecs> {
        if self.building.is_none() {
            let b = input.byte();
            let op = if b & 1 == 0 {
                BioOp::Read
            } else {
                BioOp::Write
            };
            let max_vecs = [256, 1, 2, 4][usize::from((b >> 1) & 3)];
            let block = if b & 8 == 0 { 512 } else { 4096 };
            let limits = BioLimits::default()
                .with_max_vecs(max_vecs)
                .and_then(|l| l.with_logical_block_size(block))
                .expect("valid limits");
            let sector = Sector(self.raw + u64::from(b >> 4) * 64);
            self.building = Some(Building {
                bio: Bio::new(OwnedBvecs::with_capacity(16), op, sector, limits),
            });
        }
        match &mut self.building {
            Some(building) => &mut building.bio,
            None => unreachable!("just built"),
        }
    }

    /// 2: a held page into the bio; ownership moves only if it is added.
    fn add_held(&mut self, input: &mut Input<'_>) {
        let bio_op = self.bio(input).op();
        let pick = usize::from(input.byte());
        let len_sel = input.byte();
        let off_sel = input.byte();
        if self.held.is_empty() {
            return;
        }
        let index = pick % self.held.len();
        let held = self.held[index];
        if bio_op == BioOp::Read && !(held.writable && held.origin == Origin::Pinned) {
            // A device may only write into pages pinned for writing: a page
            // with a plain reference (FOLL_GET) is invisible to writeback's
            // pin check, the hazard FOLL_PIN exists to close.
            return;
        }
        let len = fragment_length(len_sel);
        let offset = fragment_offset(off_sel);
        let tracker = self.tracker;
        match self.bio(input).add_page(held.pfn, len, offset, held.origin) {
            Ok(added) => {
                self.held.swap_remove(index);
                if let Some((pfn, origin)) = added.duplicate() {
                    tracker
                        .release_range(PageRange::single(pfn), origin, false)
                        .expect("dropping a duplicate reference");
                }
            }
            Err(refused) => {
                // Handed back as passed.
                assert_eq!(refused.rejected().decode(), Some((held.pfn, held.origin)));
            }
        }
    }

    /// 3: the kernel buffer, borrowed (the caller keeps ownership).
    fn add_kernel(&mut self, input: &mut Input<'_>) {
        let len = fragment_length(input.byte());
        let kernel = self.kernel;
        let _ = self.bio(input).add_page(kernel, len, 0, Origin::Borrowed);
    }

    /// 4: split the bio; the split part is looked at and dropped.
    fn split(&mut self, input: &mut Input<'_>) {
        let sectors = u32::from(input.byte());
        if let Some(building) = &self.building {
            if let Ok(front) = building.bio.split(SectorCount(sectors)) {
                let bytes: u32 = front.pages().map(|piece| piece.len()).sum();
                assert_eq!(bytes, front.size());
            }
        }
    }

    /// 5: advance the bio's iterator.
    fn advance(&mut self, input: &mut Input<'_>) {
        let bytes = u32::from(input.byte()) * 512;
        if let Some(building) = &mut self.building {
            let _ = building.bio.advance(bytes);
        }
    }

    /// 6: submit the bio (dirtying a read's pages first), or release it if
    /// submission refuses it.
    fn submit(&mut self) {
        let Some(Building { bio }) = self.building.take() else {
            return;
        };
        if bio.op() == BioOp::Read {
            set_pages_dirty(&self.tracker, &bio).expect("dirtying a read bio's pages");
        }
        match SubmittedBio::submit(bio) {
            Ok(submitted) => {
                let completed = self.completed.clone();
                self.machine.device().submit(
                    submitted,
                    None,
                    Box::new(move |bio| completed.lock().expect("completed list").push(bio)),
                );
            }
            Err((bio, _)) => {
                release_pages(&self.tracker, &bio, bio.op() == BioOp::Read)
                    .expect("releasing a refused bio");
            }
        }
    }

    /// 8: release a completed bio: a read always dirties its pages.
    fn release_completed(&mut self, input: &mut Input<'_>) {
        let pick = usize::from(input.byte());
        let mode = input.byte();
        let done = {
            let mut completed = self.completed.lock().expect("completed list");
            if completed.is_empty() {
                return;
            }
            let index = pick % completed.len();
            completed.swap_remove(index)
        };
        let read = done.bio().op() == BioOp::Read;
        if read && mode & 1 == 0 {
            match done.complete_dio_read(&self.tracker, &self.deferred) {
                Ok(DioRead::Released(released)) => {
                    released.result.expect("releasing a read");
                }
                Ok(DioRead::Deferred) => {}
                Err(full) => {
                    let released = full.into_inner().release(&self.tracker, true);
                    released.result.expect("releasing a deferred read");
                }
            }
        } else {
            let dirty = read || mode & 2 != 0;
            done.release(&self.tracker, dirty)
                .result
                .expect("releasing a completed bio");
        }
    }

    /// 9: the deferred releases, in process context.
    fn run_deferred(&mut self) {
        release_deferred(&self.deferred, &self.tracker, |released| {
            released.result.expect("releasing a deferred read");
        });
    }

    /// 10: give back a held page the way it was taken.
    fn release_held(&mut self, input: &mut Input<'_>) {
        let pick = usize::from(input.byte());
        let dirty = input.byte() & 1 != 0;
        if self.held.is_empty() {
            return;
        }
        let held = self.held.swap_remove(pick % self.held.len());
        self.tracker
            .release_range(PageRange::single(held.pfn), held.origin, dirty)
            .expect("releasing a held page");
    }

    /// 11: misuse on purpose; each must be refused and warned, not obeyed.
    fn misuse(&mut self, input: &mut Input<'_>) {
        match input.byte() % 3 {
            0 => {
                // The kernel buffer is never pinned.
                assert!(self.tracker.unpin_page(self.kernel).is_err());
                self.provoked
                    .push(AnyWarning::Pin(Warning::UnpinWithoutPin {
                        pfn: self.kernel,
                        pages: 1,
                        refcount: 1,
                        pincount: 0,
                    }));
            }
            1 => {
                let memory = self.machine.memory();
                let Ok(page) = memory.alloc_folio(0, true) else {
                    return;
                };
                self.tracker
                    .put_page(page)
                    .expect("the allocation reference");
                assert!(self.tracker.put_page(page).is_err());
                self.provoked
                    .push(AnyWarning::Pin(Warning::PutWithoutReference {
                        pfn: page,
                        refcount: 0,
                        dropping: 1,
                    }));
            }
            _ => {
                self.machine.device().inject(Fault::CompleteTwice);
                self.double_completions += 1;
            }
        }
    }

    /// 12: write the file back.
    fn writeback(&mut self, input: &mut Input<'_>) {
        let mode = match input.byte() % 4 {
            0 => WritebackMode::Untracked,
            1 => WritebackMode::Tracked(PinnedAction::Bounce),
            2 => WritebackMode::Tracked(PinnedAction::Skip),
            _ => WritebackMode::Tracked(PinnedAction::Wait),
        };
        self.untracked |= mode == WritebackMode::Untracked;
        // Errors (an injected device error) leave the folio dirty.
        let _ = self.machine.cache().writeback(&self.file, mode);
    }

    /// 13: a buffered write.
    fn buffered_write(&mut self, input: &mut Input<'_>) {
        let page = usize::from(input.byte()) % FILE_PAGES;
        let value = u64::from(input.byte());
        // A failed read-in (an injected error) is a typed error.
        let _ = self.machine.cache().write(&self.file, page, 0, &[value; 4]);
    }

    /// 14: a CPU store through a mapping.
    fn store(&mut self, input: &mut Input<'_>) {
        let region = Region::of(input.byte());
        let page = usize::from(input.byte()) % region.pages();
        let value = u64::from(input.byte());
        let result = self.process.store(self.addr(region, page), &[value; 2]);
        if region == Region::ReadOnly {
            assert!(result.is_err(), "a store to a read-only mapping");
        }
    }

    /// 15: unmap and map a region again (pinned pages outlive the
    /// mapping), or inject a device error into the next request.
    fn remap_or_inject(&mut self, input: &mut Input<'_>) {
        let b = input.byte();
        if b & 0xc0 == 0x40 {
            self.stable_write(b);
            return;
        }
        if b & 0x80 != 0 {
            let status = BioStatus::ALL[usize::from(b) % BioStatus::ALL.len()];
            if status.is_err() {
                self.machine.device().inject(Fault::Fail(status));
            } else {
                self.owner_operation(usize::from(b - 0x80) / BioStatus::ALL.len());
            }
            return;
        }
        let region = Region::of(b);
        let index = region as usize;
        self.process
            .munmap(self.maps[index])
            .expect("unmapping a region");
        self.maps[index] = match region {
            Region::Shared => self.process.mmap_file(&self.file, 0, FILE_PAGES, true),
            Region::ReadOnly => self.process.mmap_file(&self.file, 0, FILE_PAGES, false),
            Region::Anonymous => self.process.mmap_anonymous(PRIVATE_PAGES),
            Region::ZeroPage => self.process.mmap_zero_page(PRIVATE_PAGES),
        }
        .expect("mapping a region again");
    }

    /// 15 with an argument `0x40..=0x7f`: a stable direct-I/O write from
    /// a region, a CPU store into its first page while it is in flight,
    /// then the wait. Bits 0-1 the mode ([`StableMode::ALL`]), bit 2 copy
    /// on write (else wait) for a write-protect fault, bits 3-4 the region
    /// (anonymous, shared file, zero page, read-only file), bit 5 two pages.
    fn stable_write(&mut self, b: u8) {
        let mode = StableMode::ALL[usize::from(b % 4)];
        let fault = if b & 4 != 0 {
            FaultChoice::CopyOnWrite
        } else {
            FaultChoice::Wait
        };
        let region = [
            Region::Anonymous,
            Region::Shared,
            Region::ZeroPage,
            Region::ReadOnly,
        ][usize::from((b >> 3) & 3)];
        let pages = 1 + usize::from((b >> 5) & 1);
        let addr = self.addr(region, 0);
        let sector = Sector(self.raw + u64::from(b % 8) * 8);
        let submitted = self.machine.submit_stable_dio_write(
            &self.process,
            addr,
            pages * 4096,
            sector,
            &mode,
            fault,
        );
        // Typed errors (a page that cannot be pinned) are fine.
        let Ok(io) = submitted else { return };
        let stored = self.process.store(addr, &[0x5ab1e; 2]);
        if region == Region::ReadOnly {
            assert!(stored.is_err(), "a store to a read-only mapping");
        }
        if stored.is_ok() && matches!(mode, StableMode::ZeroCopy | StableMode::Verify) {
            // The device reads the page after the store: a zero-copy write
            // is unstable (and stays so on disk), a verified one is torn
            // then reissued.
            self.unstable_expected = true;
            self.zero_copy_changed |= mode == StableMode::ZeroCopy;
        }
        // An injected device error is a typed error too; the blocks it
        // failed may then hold anything (the write said so).
        let failed = io.wait(self.machine).is_err();
        for page in 0..pages {
            let block = sector.0 + 8 * page as u64;
            if failed {
                self.failed_blocks.insert(block);
            } else {
                self.failed_blocks.remove(&block);
            }
        }
    }

    /// 15 with an `Ok` status byte: fork, exit or register, by `k`.
    fn owner_operation(&mut self, k: usize) {
        match k {
            0..=2 => self.fork(),
            3..=5 => {
                // The parent exits; its oldest child carries on with the
                // regions it inherited, or a fresh process maps them again.
                let (next, maps) = if self.children.is_empty() {
                    let fresh = self.machine.spawn_process();
                    let maps = map_regions(&fresh, &self.file);
                    (fresh, maps)
                } else {
                    self.children.remove(0)
                };
                self.maps = maps;
                std::mem::replace(&mut self.process, next).exit();
                self.check_outstanding();
            }
            6 | 7 => {
                if !self.children.is_empty() {
                    self.children.remove(0).0.exit();
                    self.check_outstanding();
                }
            }
            _ => self.register(k - 8),
        }
    }

    /// Forks the process and checks the child against the fork rule: a
    /// present anonymous page that may be pinned stays the parent's and the
    /// child gets a copy of it; any other one is shared read-only in both;
    /// the zero page is mapped as it was; file pages are faulted afresh.
    fn fork(&mut self) {
        if self.children.len() >= MAX_CHILDREN {
            self.children.remove(0).0.exit();
            self.check_outstanding();
        }
        let memory = &**self.machine.memory();
        let private = [Region::Anonymous, Region::ZeroPage];
        let before: Vec<_> = private
            .iter()
            .flat_map(|&region| (0..region.pages()).map(move |page| (region, page)))
            .map(|(region, page)| {
                let addr = self.addr(region, page);
                let pte = self.process.pte(addr);
                let action = pte
                    .filter(|&(pfn, _)| pfn != memory.zero_page())
                    .map(|(pfn, _)| fork_action(memory, pfn).expect("a mapped page"));
                let words = pte.map(|(pfn, _)| memory.frame(pfn).expect("a frame").snapshot());
                (addr, pte, action, words)
            })
            .collect();
        // A copy that finds no free frame fails the fork, typed; the child
        // is gone and gave back all it had.
        let Ok(child) = self.process.fork() else {
            return;
        };
        for (addr, pte, action, words) in before {
            let (parent, seen) = (self.process.pte(addr), child.pte(addr));
            match (pte, action) {
                (None, _) => assert_eq!(seen, None, "{addr}: not present"),
                (Some(zero), None) => {
                    assert_eq!(
                        (parent, seen),
                        (Some(zero), Some(zero)),
                        "{addr}: zero page"
                    );
                }
                (Some(pte), Some(ForkAction::Copy)) => {
                    assert_eq!(
                        parent,
                        Some(pte),
                        "{addr}: a pinned page stays the parent's"
                    );
                    let (copy, writable) = seen.expect("the child's copy");
                    assert!(writable && copy != pte.0, "{addr}: the child gets a copy");
                    let copied = memory.frame(copy).expect("a frame").snapshot();
                    assert_eq!(Some(copied), words, "{addr}: the copy's contents");
                }
                (Some((pfn, _)), Some(_)) => {
                    let shared = Some((pfn, false));
                    assert_eq!((parent, seen), (shared, shared), "{addr}: shared read-only");
                }
            }
        }
        for region in [Region::Shared, Region::ReadOnly] {
            for page in 0..region.pages() {
                let addr = self.addr(region, page);
                assert_eq!(
                    child.pte(addr),
                    None,
                    "{addr}: file pages are faulted afresh"
                );
            }
        }
        self.children.push((child, self.maps));
    }

    /// Long-term pins two or three private pages into the table of
    /// registered buffers, charged to its account.
    fn register(&mut self, which: usize) {
        let (region, first, count) = match which {
            0 => (Region::Anonymous, 0, 2),
            1 => (Region::Anonymous, 5, 3),
            _ => (Region::ZeroPage, 2, 2),
        };
        let addr = self.addr(region, first);
        let guard = self.process.gup();
        let Ok(runs) = self.tracker.pin_user_pages_longterm(
            &guard,
            addr,
            count,
            GupFlags::WRITE,
            self.account,
        ) else {
            return;
        };
        // The runs before an error stay registered.
        self.registered.extend(runs.map_while(Result::ok));
        drop(guard);
        self.check_charge();
    }

    /// The account holds exactly the registered runs' charge.
    fn check_charge(&self) {
        let charged: usize = self.registered.iter().map(HeldRun::charged).sum();
        assert_eq!(self.account.charged(), charged, "the table's charge");
    }

    /// After an exit: whatever the fuzzer or the table holds is still
    /// allocated (and pinned, if pinned), and the table keeps its charge.
    fn check_outstanding(&self) {
        let memory = &**self.machine.memory();
        let folios = memory.allocated_folios();
        let allocated = |pfn: Pfn| {
            folios.iter().any(|folio| {
                pfn.get() >= folio.head.get() && pfn.get() - folio.head.get() < 1 << folio.order
            })
        };
        let registered = self
            .registered
            .iter()
            .flat_map(|run| (0..run.pages()).map(|i| run.first().checked_add(i)));
        for pfn in registered {
            let pfn = pfn.expect("a run's pages exist");
            assert!(allocated(pfn), "registered page {pfn:#x} freed at exit");
            assert!(maybe_dma_pinned(memory, pfn).expect("a page"));
        }
        // The zero page is never freed, nor pinned.
        let zero = memory.zero_page();
        for held in self.held.iter().filter(|held| held.pfn != zero) {
            assert!(
                allocated(held.pfn),
                "held page {:#x} freed at exit",
                held.pfn
            );
            if held.origin == Origin::Pinned {
                assert!(maybe_dma_pinned(memory, held.pfn).expect("a page"));
            }
        }
        self.check_charge();
    }

    /// Releases everything, writes the file back, and checks the machine.
    fn finish(mut self) {
        let machine = self.machine;
        self.check_charge();
        for run in std::mem::take(&mut self.registered) {
            self.tracker
                .release_held(run, true)
                .expect("unregistering a buffer");
        }
        assert_eq!(self.account.charged(), 0, "the table's charge");
        if let Some(Building { bio }) = self.building.take() {
            release_pages(&self.tracker, &bio, false).expect("releasing the unsubmitted bio");
        }
        machine.device().wait_idle();
        let completed: Vec<_> = std::mem::take(&mut *self.completed.lock().expect("list"));
        for done in completed {
            let read = done.bio().op() == BioOp::Read;
            done.release(&self.tracker, read)
                .result
                .expect("releasing a completed bio");
        }
        self.run_deferred();
        for held in std::mem::take(&mut self.held) {
            self.tracker
                .release_range(PageRange::single(held.pfn), held.origin, false)
                .expect("releasing a held page");
        }
        let stats = machine.memory().pin_stats();
        assert_eq!(stats.acquired(), stats.released(), "pins balance");
        // The last writeback; an injected error still queued fails a write
        // (the folio stays dirty), so pass again until one pass is clean:
        // each failure consumes one injected fault.
        let bounce = WritebackMode::Tracked(PinnedAction::Bounce);
        let mut passes = 0;
        while !machine.cache().writeback(&self.file, bounce).is_ok() {
            passes += 1;
            assert!(passes <= MAX_OPS, "writeback keeps failing");
        }
        let check = machine.cache().verify(&self.file);
        assert!(check.is_ok(), "{check:?}");
        // Tracked writeback never writes a page a queued read may change;
        // untracked writeback may (the read runs first when the write waits).
        if !self.untracked && !self.unstable_expected {
            assert_eq!(machine.device().stats().unstable_pages, 0);
        }
        // Every stable mode leaves the disk consistent with the checksums
        // recorded with its blocks, except where a write reported failure.
        if !self.untracked && !self.zero_copy_changed {
            let scrub = machine.device().scrub();
            assert!(
                scrub
                    .iter()
                    .all(|torn| self.failed_blocks.contains(&torn.sector)),
                "{scrub:?} (failed writes: {:?})",
                self.failed_blocks
            );
        }

        // Warnings: exactly the provoked ones (double completions included
        // only if a request consumed the injected fault).
        let doubles = machine.device().stats().double_completions;
        assert!(doubles <= self.double_completions);
        let mut expected = self.provoked.clone();
        expected.extend(std::iter::repeat_n(
            AnyWarning::Release(ReleaseWarning::DoubleCompletion),
            doubles,
        ));
        let mut seen = machine.memory().take_warnings();
        let key = |w: &AnyWarning| format!("{w:?}");
        expected.sort_by_key(key);
        seen.sort_by_key(key);
        assert_eq!(seen, expected, "warnings");
        let refused = machine.device().take_completion_errors();
        assert_eq!(refused.len(), doubles, "{refused:?}");

        self.tracker
            .put_page(self.kernel)
            .expect("the kernel buffer");
        self.children.clear();
        drop(self.process);
        let (audit, _) = machine.evict_and_audit();
        assert!(audit.is_clean(), "{audit}");
        assert!(machine.memory().allocated_folios().is_empty());
    }
}

/// A fragment length from a selector byte: whole pages mostly, sector
/// multiples, and lengths the builder refuses (zero, unaligned, too long).
fn fragment_length(sel: u8) -> u32 {
    match sel % 8 {
        0..=2 => 4096,
        3 => 512 * (1 + u32::from(sel >> 3) % 8),
        4 => 0,
        5 => 100,
        6 => 8192,
        _ => 2048,
    }
}

/// A fragment offset from a selector byte.
fn fragment_offset(sel: u8) -> u32 {
    match sel % 4 {
        0 | 1 => 0,
        2 => 512 * u32::from(sel >> 2 & 7),
        _ => 4096,
    }
}

#[cfg(test)]
mod tests;
