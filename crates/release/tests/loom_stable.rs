//! Loom models of the write-protect handshake of a stable direct-I/O
//! write: the submitter opens the window, write-protects the page,
//! checksums it and lets the device read it; a writer that stores into the
//! page meanwhile faults and waits; at completion the mapping is restored
//! and the window closed. The device must read exactly what was
//! checksummed, and the writer's store must come after the device's read.
//!
//! The page's word lives in a loom `UnsafeCell`, so a store not ordered
//! after the device's read is reported as a data race. The page-table
//! entry is a loom mutex: a CPU store checks the entry's write permission
//! and writes under it, as the MMU's permission check is atomic with the
//! store it allows.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p gupio-release
//! --release --test loom_stable` (and a separate target dir).
#![cfg(loom)]

use gupio_release::{FaultChoice, FaultResolution, ProtectWindow};
use loom::cell::UnsafeCell;
use loom::sync::{Arc, Mutex};
use loom::thread;

const OLD: u64 = 1;
const NEW: u64 = 2;

struct Page {
    word: UnsafeCell<u64>,
    /// The PTE's write permission, under the page-table lock.
    writable: Mutex<bool>,
    window: ProtectWindow,
}

/// How the submitter and its completion order their steps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Open, protect; restore, close (the documented order).
    Documented,
    /// Protect before opening the window.
    ProtectThenOpen,
    /// Close the window before restoring the mapping.
    CloseThenRestore,
}

/// How the writer's fault handler treats a protected page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Asks the window and waits while it is open.
    AsksTheWindow,
    /// An ordinary fault: makes the anonymous page writable.
    Ordinary,
}

/// The CPU store of `NEW`, faulting until the PTE allows it.
fn store(page: &Page, fault: Fault) {
    loop {
        {
            let writable = page.writable.lock().unwrap();
            if *writable {
                page.word.with_mut(|word| unsafe { *word = NEW });
                return;
            }
        }
        let resolution = match fault {
            Fault::AsksTheWindow => page.window.on_write_fault(FaultChoice::Wait),
            Fault::Ordinary => FaultResolution::NotProtected,
        };
        match resolution {
            FaultResolution::Wait => {
                while page.window.is_open() {
                    thread::yield_now();
                }
            }
            FaultResolution::NotProtected => *page.writable.lock().unwrap() = true,
            FaultResolution::CopyOnWrite => unreachable!("the model waits"),
        }
    }
}

/// Submission, the device's read and the completion, on one thread.
fn write_out(page: &Page, order: Order) {
    let open = || page.window.open::<()>().unwrap();
    let protect = || *page.writable.lock().unwrap() = false;
    let restore = || *page.writable.lock().unwrap() = true;
    let close = || page.window.close::<()>().unwrap();
    if order == Order::ProtectThenOpen {
        protect();
        open();
    } else {
        open();
        protect();
    }
    // The filesystem's checksum at submission, then the device's DMA read.
    let checksummed = page.word.with(|word| unsafe { *word });
    thread::yield_now();
    let read = page.word.with(|word| unsafe { *word });
    assert_eq!(read, checksummed, "the page changed under the device");
    if order == Order::CloseThenRestore {
        close();
        restore();
    } else {
        restore();
        close();
    }
}

fn model(order: Order, fault: Fault) {
    loom::model(move || {
        let page = Arc::new(Page {
            word: UnsafeCell::new(OLD),
            writable: Mutex::new(true),
            window: ProtectWindow::new(),
        });
        let writer = {
            let page = Arc::clone(&page);
            thread::spawn(move || store(&page, fault))
        };
        write_out(&page, order);
        writer.join().unwrap();
        assert_eq!(page.word.with(|word| unsafe { *word }), NEW);
        assert!(!page.window.is_open());
    });
}

#[test]
fn a_writer_faulting_on_a_protected_page_waits_for_the_completion() {
    model(Order::Documented, Fault::AsksTheWindow);
}

/// Closing first is also safe, but only through the window's own
/// ordering: the close's Release and the waiting writer's Acquire order
/// the device's read before the writer's store.
#[test]
fn closing_before_restoring_orders_the_device_read_before_the_writer() {
    model(Order::CloseThenRestore, Fault::AsksTheWindow);
}

/// Without the window check the fault makes the page writable again and
/// the store lands while the device reads.
#[test]
#[should_panic(expected = "Causality violation")]
fn a_fault_that_ignores_the_window_lets_the_page_change_under_the_device() {
    model(Order::Documented, Fault::Ordinary);
}

/// Protecting before opening leaves a moment where a fault finds the page
/// protected but the window closed, and makes the page writable.
#[test]
#[should_panic(expected = "Causality violation")]
fn protecting_before_opening_lets_a_fault_through() {
    model(Order::ProtectThenOpen, Fault::AsksTheWindow);
}
