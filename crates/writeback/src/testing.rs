//! Unit-test support: a small machine whose hooks record warnings, and a
//! `WritebackIo` that records what it was asked to do.

use std::cell::{Cell, RefCell};
use std::vec::Vec;

use gupio_pfn::Pfn;
use gupio_pin::{
    ArrayMemoryMap, FolioOrder, FolioRef, MemoryMap, PageCounters, PageFlags, PageOps, Warning,
};

use crate::WritebackIo;

/// `PAGES` pages from frame `BASE`, all free until prepared.
pub(crate) struct Machine {
    map: ArrayMemoryMap<{ Machine::PAGES }>,
    warnings: Cell<u32>,
    last_warning: Cell<Option<Warning>>,
}

impl Machine {
    pub(crate) const BASE: usize = 0;
    pub(crate) const PAGES: usize = 32;

    pub(crate) fn new() -> Self {
        Self::with_map(ArrayMemoryMap::new(Pfn::new(Self::BASE)))
    }

    /// A machine whose frame `zero` is the zero page.
    pub(crate) fn with_zero_page(zero: usize) -> Self {
        Self::with_map(ArrayMemoryMap::new(Pfn::new(Self::BASE)).with_zero_page(Pfn::new(zero)))
    }

    fn with_map(map: ArrayMemoryMap<{ Machine::PAGES }>) -> Self {
        Self {
            map,
            warnings: Cell::new(0),
            last_warning: Cell::new(None),
        }
    }

    /// Allocates a clean folio of order `order` at frame `head`.
    pub(crate) fn prepare(&self, head: usize, order: u32) -> Pfn {
        let head = Pfn::new(head);
        let order = FolioOrder::try_new(order).expect("test folio order");
        self.map
            .prepare_folio(head, order)
            .expect("test folio fits");
        head
    }

    /// Allocates a dirty folio of order `order` at frame `head`.
    pub(crate) fn dirty_folio(&self, head: usize, order: u32) -> Pfn {
        let head = self.prepare(head, order);
        self.counters(head)
            .expect("prepared")
            .set_flags(PageFlags::DIRTY);
        head
    }

    /// Allocates a dirty small page at frame `pfn`.
    pub(crate) fn dirty_page(&self, pfn: usize) -> Pfn {
        self.dirty_folio(pfn, 0)
    }

    /// The counters of frame `pfn`.
    pub(crate) fn page(&self, pfn: usize) -> &PageCounters {
        self.counters(Pfn::new(pfn)).expect("test pfn in map")
    }

    pub(crate) fn warnings(&self) -> u32 {
        self.warnings.get()
    }

    pub(crate) fn last_warning(&self) -> Option<Warning> {
        self.last_warning.get()
    }
}

impl MemoryMap for Machine {
    fn counters(&self, pfn: Pfn) -> Option<&PageCounters> {
        self.map.counters(pfn)
    }

    fn is_zero_page(&self, pfn: Pfn) -> bool {
        self.map.is_zero_page(pfn)
    }
}

impl PageOps for Machine {
    fn free_folio(&self, folio: FolioRef<'_>) {
        panic!(
            "test folio {:?} freed: the tests keep a reference",
            folio.head()
        );
    }

    fn warn(&self, warning: Warning) {
        self.warnings.set(self.warnings.get() + 1);
        self.last_warning.set(Some(warning));
    }

    fn pins_acquired(&self, _pages: usize) {}

    fn pins_released(&self, _pages: usize) {}

    fn lock_folio(&self, folio: FolioRef<'_>) {
        // Single-threaded tests: a held lock here would spin forever.
        assert!(folio.counters().try_lock(), "test folio already locked");
    }
}

/// One request the engine made of the embedder, by folio head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    WriteProtect(Pfn),
    InPlace(Pfn),
    Bounced(Pfn),
    Wait(Pfn),
}

type WaitHook<'a> = Box<dyn FnMut(FolioRef<'_>) -> bool + 'a>;

/// Records every call; writes succeed unless told to fail; the wait calls
/// a hook (by default: gives up at once).
pub(crate) struct RecordingIo<'a> {
    calls: RefCell<Vec<Call>>,
    flags_at_writes: RefCell<Vec<PageFlags>>,
    fail_in_place: Cell<Option<i32>>,
    fail_bounced: Cell<Option<i32>>,
    on_wait: RefCell<WaitHook<'a>>,
}

impl<'a> RecordingIo<'a> {
    /// A recorder for the folios of `_machine` (ties the hooks' lifetime).
    pub(crate) fn new(_machine: &'a Machine) -> Self {
        Self {
            calls: RefCell::new(Vec::new()),
            flags_at_writes: RefCell::new(Vec::new()),
            fail_in_place: Cell::new(None),
            fail_bounced: Cell::new(None),
            on_wait: RefCell::new(Box::new(|_| false)),
        }
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    pub(crate) fn clear(&self) {
        self.calls.borrow_mut().clear();
        self.flags_at_writes.borrow_mut().clear();
    }

    /// The folio flags seen by each write, in order.
    pub(crate) fn flags_at_writes(&self) -> Vec<PageFlags> {
        self.flags_at_writes.borrow().clone()
    }

    pub(crate) fn fail_in_place(&self, error: i32) {
        self.fail_in_place.set(Some(error));
    }

    pub(crate) fn fail_bounced(&self, error: i32) {
        self.fail_bounced.set(Some(error));
    }

    pub(crate) fn on_wait(&self, hook: impl FnMut(FolioRef<'_>) -> bool + 'a) {
        *self.on_wait.borrow_mut() = Box::new(hook);
    }

    fn write(&self, call: Call, folio: FolioRef<'_>, fail: Option<i32>) -> Result<(), i32> {
        self.calls.borrow_mut().push(call);
        self.flags_at_writes
            .borrow_mut()
            .push(folio.counters().flags());
        fail.map_or(Ok(()), Err)
    }
}

impl WritebackIo for RecordingIo<'_> {
    type Error = i32;

    fn write_protect(&self, folio: FolioRef<'_>) {
        self.calls
            .borrow_mut()
            .push(Call::WriteProtect(folio.head()));
    }

    fn write_in_place(&self, folio: FolioRef<'_>) -> Result<(), i32> {
        self.write(Call::InPlace(folio.head()), folio, self.fail_in_place.get())
    }

    fn write_bounced(&self, folio: FolioRef<'_>) -> Result<(), i32> {
        self.write(Call::Bounced(folio.head()), folio, self.fail_bounced.get())
    }

    fn wait_until_unpinned(&self, folio: FolioRef<'_>) -> bool {
        self.calls.borrow_mut().push(Call::Wait(folio.head()));
        (self.on_wait.borrow_mut())(folio)
    }
}
