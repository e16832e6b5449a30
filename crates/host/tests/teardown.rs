//! An owner torn down with pins outstanding: a process exits while a device
//! still writes into its pages, or while a table of registered buffers
//! still holds them long-term pinned. The pages stay allocated (and intact)
//! until the last unpin, the charge stays until the holder releases, and
//! then everything is freed: no leak, no early or double free.

mod common;

use std::sync::mpsc;

use gupio::pin::{HeldRun, PinAccount, PinError, UserAddr};
use gupio::prelude::*;
use gupio_host::data::WORDS_PER_PAGE;
use gupio_host::{Machine, Memory, OwnedBvecs, Process};

use common::assert_baseline;

fn page(addr: UserAddr, index: usize) -> UserAddr {
    UserAddr::new(addr.get() + index * 4096)
}

/// Fills each of `pages` pages from `addr` with a word naming it.
fn fill(process: &Process, addr: UserAddr, pages: usize) -> Vec<Pfn> {
    (0..pages)
        .map(|i| {
            let at = page(addr, i);
            process
                .store(at, &[0xa0 + i as u64; WORDS_PER_PAGE])
                .unwrap();
            process.pte(at).unwrap().0
        })
        .collect()
}

fn snapshot(machine: &Machine, pfn: Pfn) -> Vec<u64> {
    machine.memory().frame(pfn).unwrap().snapshot()
}

fn allocated(machine: &Machine) -> Vec<Pfn> {
    let folios = machine.memory().allocated_folios();
    folios.iter().map(|folio| folio.head).collect()
}

#[test]
fn a_process_exiting_under_a_direct_io_read_leaves_its_pages_to_the_dma() {
    let machine = common::threaded(64, 1, false);
    let tracker = machine.tracker();
    let process = machine.spawn_process();
    let addr = process.mmap_anonymous(2).unwrap();
    let pages = fill(&process, addr, 2);
    let source = machine.cache().reserve_sectors(16).unwrap();
    let disk = machine.device().disk();
    let want = disk.read_words(source, 2 * WORDS_PER_PAGE).unwrap();

    // The read, pinned as direct I/O pins it; the completion looks at the
    // pages before it releases them.
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(4),
        BioOp::Read,
        Sector(source),
        BioLimits::default(),
    );
    let added = add_user_range(
        &tracker,
        &process.gup(),
        &mut bio,
        addr,
        8192,
        GupFlags::WRITE,
    );
    assert_eq!(added, Ok(8192));
    set_pages_dirty(&tracker, &bio).unwrap();
    let gate = machine.device().gate(BioOp::Read, 1);
    let (done, finished) = mpsc::channel();
    let memory = machine.memory().clone();
    let watched = pages.clone();
    machine.device().submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        Box::new(move |completed| {
            let seen: Vec<Vec<u64>> = watched
                .iter()
                .map(|&pfn| memory.frame(pfn).unwrap().snapshot())
                .collect();
            let released = completed.release(&Tracker::new(&*memory), true);
            done.send((released.result.is_ok(), seen)).unwrap();
        }),
    );
    gate.wait_reached().unwrap();

    // The process exits with the device one chunk into its pages.
    process.exit();
    assert_eq!(allocated(&machine), pages, "the pins keep both pages");
    for &pfn in &pages {
        assert!(maybe_dma_pinned(&**machine.memory(), pfn).unwrap());
    }
    // Intact: the DMA's first 1 KiB chunk, then what the process wrote.
    let first = snapshot(&machine, pages[0]);
    assert_eq!(first[..128], want[..128]);
    assert!(first[128..].iter().all(|&word| word == 0xa0));
    assert_eq!(snapshot(&machine, pages[1]), [0xa1; WORDS_PER_PAGE]);
    // Mapped by nobody now, so the audit calls them leaks; nothing was
    // freed, twice or early, and nobody was warned.
    let audit = machine.audit();
    let leaks: Vec<Pfn> = audit.leaks.iter().map(|leak| leak.head).collect();
    assert_eq!(leaks, pages);
    assert!(audit.bad_frees.is_empty() && audit.warnings.is_empty());

    // The DMA completes into the pages; the release frees them.
    gate.release();
    let (released, seen) = finished.recv().unwrap();
    assert!(released);
    assert_eq!(seen.concat(), want);
    assert!(allocated(&machine).is_empty());
    let stats = machine.memory().pin_stats();
    assert_eq!((stats.acquired(), stats.released()), (2, 2));
    assert_baseline(&machine);
}

/// A subsystem's table of registered buffers: long-term pinned runs,
/// charged to an account the table (not the process) keeps.
struct RegisteredBuffers<'m> {
    account: &'m PinAccount,
    runs: Vec<HeldRun<'m, Memory>>,
}

impl<'m> RegisteredBuffers<'m> {
    fn register(
        machine: &'m Machine,
        account: &'m PinAccount,
        process: &Process,
        addr: UserAddr,
        pages: usize,
    ) -> Result<Self, PinError> {
        let runs = machine
            .tracker()
            .pin_user_pages_longterm(&process.gup(), addr, pages, GupFlags::WRITE, account)?
            .collect::<Result<_, _>>()?;
        Ok(Self { account, runs })
    }

    /// The registered pages, in order.
    fn pages(&self) -> Vec<Pfn> {
        self.runs
            .iter()
            .flat_map(|run| (0..run.pages()).map(|i| run.first().checked_add(i).unwrap()))
            .collect()
    }

    /// Unregisters every buffer: the unpins and the uncharge.
    fn unregister(self, machine: &Machine) {
        for run in self.runs {
            machine.tracker().release_held(run, true).unwrap();
        }
    }
}

#[test]
fn registered_buffers_outlive_their_process_and_keep_its_charge_until_unregistered() {
    let machine = common::synchronous(32);
    let account = PinAccount::new(8);
    let process = machine.spawn_process();
    let small = process.mmap_anonymous(2).unwrap();
    let large = process.mmap_anonymous_folio(2).unwrap();
    fill(&process, small, 2);
    let large_pages = fill(&process, large, 4);
    let table = RegisteredBuffers::register(&machine, &account, &process, small, 2).unwrap();
    let more = RegisteredBuffers::register(&machine, &account, &process, large, 4).unwrap();
    assert_eq!(account.charged(), 6);
    let pages = [table.pages(), more.pages()].concat();
    assert_eq!(pages[2..], large_pages);

    drop(process);
    // Everything registered is still allocated, pinned and intact; the
    // charge is the table's, and stays.
    let mut heads = allocated(&machine);
    heads.sort();
    let mut want = vec![pages[0], pages[1], large_pages[0]];
    want.sort();
    assert_eq!(heads, want);
    for (i, &pfn) in pages.iter().enumerate() {
        assert!(maybe_dma_pinned(&**machine.memory(), pfn).unwrap());
        let value = if i < 2 { 0xa0 + i } else { 0xa0 + i - 2 };
        assert_eq!(snapshot(&machine, pfn), [value as u64; WORDS_PER_PAGE]);
    }
    assert_eq!(table.account.charged(), 6);

    // The device still reads into a registered buffer after the exit: the
    // table keeps its pins and lends the page to the bio.
    let source = machine.cache().reserve_sectors(8).unwrap();
    let mut bio = Bio::new(
        OwnedBvecs::with_capacity(1),
        BioOp::Read,
        Sector(source),
        BioLimits::default(),
    );
    let added = bio.add_page(pages[2], 4096, 0, Origin::Borrowed).unwrap();
    assert!(added.duplicate().is_none());
    let (done, finished) = mpsc::channel();
    machine.device().submit(
        SubmittedBio::submit(bio).unwrap(),
        None,
        Box::new(move |completed| done.send(completed).unwrap()),
    );
    assert!(machine.device().process_one());
    let completed = finished.recv().unwrap();
    assert!(completed.status().is_ok());
    let released = completed.release(&machine.tracker(), false);
    assert!(released.result.is_ok());
    let disk = machine.device().disk();
    assert_eq!(
        snapshot(&machine, pages[2]),
        disk.read_words(source, WORDS_PER_PAGE).unwrap()
    );
    assert_eq!(allocated(&machine).len(), 3, "borrowed: still the table's");

    // Unregistering unpins and uncharges; the last unpin frees each folio.
    table.unregister(&machine);
    assert_eq!(account.charged(), 4);
    assert_eq!(allocated(&machine), [large_pages[0]]);
    more.unregister(&machine);
    assert_eq!((account.charged(), account.peak()), (0, 6));
    assert!(allocated(&machine).is_empty());
    assert_baseline(&machine);
}
