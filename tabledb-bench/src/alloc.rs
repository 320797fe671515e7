//! The benchmarks' global allocator: mimalloc (as `tabledb-server` uses), counting the bytes
//! requested while counting is switched on, so memory figures are measured rather than
//! estimated. Counting is off outside measurements: a counter shared by every thread would
//! otherwise tax every allocation of the timed workloads.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

pub struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn counting() -> bool {
    COUNTING.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to the system allocator with the same arguments and only adds
// bookkeeping on an atomic counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() && counting() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        if counting() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() && counting() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's arguments.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() && counting() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Net bytes allocated through the global allocator while `f` runs, with its result.
pub fn measure<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATED.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (ALLOCATED.load(Ordering::Relaxed).wrapping_sub(before), out)
}
