//! Record blocks: the 64-byte aligned allocations that hold a page's records.
//!
//! Blocks carry no header: what describes a page (its length, capacity, bitmaps) lives in its
//! slot in the page tree, so a block is exactly `capacity * record_size` bytes. Freed blocks
//! are kept in a bounded cache for reuse, because copy-on-write allocates one block for every
//! page a commit touches and frees one for every page a dropped snapshot no longer needs.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Alignment of every block, so a record of any supported type is aligned within it.
pub const BLOCK_ALIGN: usize = 64;

/// The most bytes of free blocks kept for reuse.
pub const CACHE_MAX_BYTES: usize = 64 << 20;
/// The most distinct block sizes kept.
const CLASSES_MAX: usize = 32;

static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static CACHED_BYTES: AtomicUsize = AtomicUsize::new(0);

struct Class {
    size: usize,
    free: Vec<usize>,
}

static CACHE: Mutex<Vec<Class>> = Mutex::new(Vec::new());

fn cache() -> std::sync::MutexGuard<'static, Vec<Class>> {
    // Every update is one push or pop, so the vectors are consistent even after a panic.
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters of record blocks over every database in this process.
pub mod counters {
    use super::*;

    /// Blocks currently holding records of some snapshot.
    pub fn live_blocks() -> usize {
        LIVE_BLOCKS.load(Ordering::Relaxed)
    }

    /// Bytes of those blocks.
    pub fn live_block_bytes() -> usize {
        LIVE_BYTES.load(Ordering::Relaxed)
    }

    /// Bytes of freed blocks kept for reuse in the shared cache (at most 64 MiB;
    /// each thread also keeps a few of each size).
    pub fn cached_bytes() -> usize {
        CACHED_BYTES.load(Ordering::Relaxed)
    }
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, BLOCK_ALIGN).expect("block sizes are bounded far below isize::MAX")
}

/// Blocks each thread keeps per size before it returns some to the shared cache; moving them
/// in batches keeps threads that copy pages in parallel off the shared lock.
const LOCAL_MAX: usize = 64;
const LOCAL_BATCH: usize = 32;

/// A thread's own free blocks, by size.
struct Local {
    classes: Vec<(usize, Vec<usize>)>,
}

impl Local {
    fn class(&mut self, size: usize) -> &mut Vec<usize> {
        let i = match self.classes.iter().position(|c| c.0 == size) {
            Some(i) => i,
            None => {
                self.classes.push((size, Vec::with_capacity(LOCAL_MAX)));
                self.classes.len() - 1
            }
        };
        &mut self.classes[i].1
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for (size, free) in std::mem::take(&mut self.classes) {
            // SAFETY: every address in a thread's stash is a block of `size` bytes taken from
            // the shared cache or the allocator, and not in use.
            unsafe { give_shared_many(&free, size) };
        }
    }
}

thread_local! {
    static LOCAL: std::cell::RefCell<Local> = const { std::cell::RefCell::new(Local { classes: Vec::new() }) };
}

/// Takes `size` bytes (64-byte aligned, uninitialized): from this thread's stash, else a batch
/// from the shared cache, else the allocator.
fn take(size: usize) -> NonNull<u8> {
    let local = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let stash = l.class(size);
        if stash.is_empty() {
            let mut classes = cache();
            if let Some(class) = classes.iter_mut().find(|c| c.size == size) {
                let n = class.free.len().min(LOCAL_BATCH);
                let from = class.free.len() - n;
                stash.extend(class.free.drain(from..));
                CACHED_BYTES.fetch_sub(n * size, Ordering::Relaxed);
            }
        }
        stash.pop()
    });
    if let Ok(Some(addr)) = local {
        return NonNull::new(addr as *mut u8).expect("cached blocks are non-null");
    }
    let layout = layout(size);
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { alloc(layout) };
    NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout))
}

/// Returns `size` bytes taken by [`take`]: to this thread's stash, moving a batch to the
/// shared cache when the stash is full.
///
/// # Safety
///
/// `block` must come from `take(size)`, must not be given back before, and nothing may use it
/// afterwards.
unsafe fn give(block: NonNull<u8>, size: usize) {
    let overflow = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let stash = l.class(size);
        stash.push(block.as_ptr() as usize);
        if stash.len() > LOCAL_MAX { stash.drain(..LOCAL_BATCH).collect::<Vec<_>>() } else { Vec::new() }
    });
    match overflow {
        // SAFETY: blocks in a stash are unused blocks of `size` bytes from `take`.
        Ok(moved) => unsafe { give_shared_many(&moved, size) },
        // The thread is exiting and its stash is gone: give the block to the shared cache.
        // SAFETY: per the caller.
        Err(_) => unsafe { give_shared(block, size) },
    }
}

/// Puts a block in the shared cache, or frees it when the cache is full.
///
/// # Safety
///
/// As for [`give`].
unsafe fn give_shared(block: NonNull<u8>, size: usize) {
    // SAFETY: per the caller.
    unsafe { give_shared_many(&[block.as_ptr() as usize], size) };
}

/// Puts blocks of `size` bytes (by address) in the shared cache under one lock, and frees
/// those that do not fit.
///
/// # Safety
///
/// As for [`give`], for every block.
unsafe fn give_shared_many(blocks: &[usize], size: usize) {
    let mut kept = 0;
    {
        let mut classes = cache();
        let index = match classes.iter().position(|c| c.size == size) {
            Some(i) => Some(i),
            None if classes.len() < CLASSES_MAX => {
                classes.push(Class { size, free: Vec::new() });
                Some(classes.len() - 1)
            }
            None => None,
        };
        if let Some(i) = index {
            let room = CACHE_MAX_BYTES.saturating_sub(CACHED_BYTES.load(Ordering::Relaxed)) / size;
            kept = blocks.len().min(room);
            classes[i].free.extend_from_slice(&blocks[..kept]);
            CACHED_BYTES.fetch_add(kept * size, Ordering::Relaxed);
        }
    }
    for &addr in &blocks[kept..] {
        // SAFETY: the caller guarantees each block came from `take(size)`, which allocated it
        // with this layout, and is given back once.
        unsafe { dealloc(addr as *mut u8, layout(size)) };
    }
}

/// Allocates a record block of `size` bytes (not zeroed). `size` must be positive.
pub fn allocate(size: usize) -> NonNull<u8> {
    count_allocated(1, size);
    allocate_uncounted(size)
}

/// Allocates like [`allocate`] but leaves the block out of the [`counters`] until the caller
/// calls [`count_allocated`] for it: the counters are shared atomics, and a locked update
/// after every block would also wait for the streaming stores of [`stream_copy`] to drain.
pub fn allocate_uncounted(size: usize) -> NonNull<u8> {
    debug_assert!(size > 0);
    take(size)
}

/// Allocates `n` blocks of `size` bytes like [`allocate_uncounted`], appending their addresses
/// to `out`: with one look at this thread's stash and one lock of the shared cache for all of
/// them, in the order [`take`] would hand them out (the shared cache is a stack).
pub fn allocate_many_uncounted(size: usize, n: usize, out: &mut Vec<usize>) {
    debug_assert!(size > 0);
    let want = out.len() + n;
    let _ = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let stash = l.class(size);
        let k = stash.len().min(n);
        out.extend(stash.drain(stash.len() - k..).rev());
    });
    if out.len() < want {
        let mut classes = cache();
        if let Some(class) = classes.iter_mut().find(|c| c.size == size) {
            let k = class.free.len().min(want - out.len());
            let from = class.free.len() - k;
            out.extend(class.free.drain(from..).rev());
            CACHED_BYTES.fetch_sub(k * size, Ordering::Relaxed);
        }
    }
    while out.len() < want {
        out.push(take(size).as_ptr() as usize);
    }
}

/// Takes cached blocks of `size` bytes from the shared cache, as many as it holds up to
/// `out.len()`, into `out` from its start in the order the cache hands them out (a stack: the
/// last given first, so blocks given back in bulk in reverse, as the reclaimer and
/// [`give_back_in_order_uncounted`] do, come out in their order); returns how many. Like
/// [`allocate_uncounted`], the blocks are not counted yet.
pub fn take_cached_uncounted(size: usize, out: &mut [usize]) -> usize {
    let mut classes = cache();
    let Some(class) = classes.iter_mut().find(|c| c.size == size) else { return 0 };
    let k = class.free.len().min(out.len());
    let from = class.free.len() - k;
    for (slot, addr) in out.iter_mut().zip(class.free.drain(from..).rev()) {
        *slot = addr;
    }
    CACHED_BYTES.fetch_sub(k * size, Ordering::Relaxed);
    k
}

/// Gives back uncounted blocks (taken by [`take_cached_uncounted`] and not used) to the shared
/// cache under one lock, so that it hands them out again in the order given; frees those that
/// do not fit.
///
/// # Safety
///
/// As for [`give_back_uncounted`], for every block.
pub unsafe fn give_back_in_order_uncounted(blocks: &mut [usize], size: usize) {
    // The cache is a stack: the block to come out first goes in last.
    blocks.reverse();
    // SAFETY: per the caller, unused blocks of `size` bytes from `take`.
    unsafe { give_shared_many(blocks, size) };
}

/// Gives back blocks made by [`allocate_uncounted`] or [`allocate_many_uncounted`] and never
/// counted (not used after all).
///
/// # Safety
///
/// As for [`free`], for every block.
pub unsafe fn give_back_uncounted(blocks: &[usize], size: usize) {
    for &addr in blocks {
        // SAFETY: per the caller, each is an unused block of `size` bytes from `take`.
        unsafe { give(NonNull::new(addr as *mut u8).expect("blocks are non-null"), size) };
    }
}

/// Counts `blocks` blocks of `bytes` bytes in all, made by [`allocate_uncounted`].
pub fn count_allocated(blocks: usize, bytes: usize) {
    LIVE_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
}

/// Frees many counted blocks of `size` bytes (by address) like [`free`], into the shared
/// cache under one lock, and leaves the [`counters`] to the caller, who calls [`count_freed`]
/// for them (once, instead of two locked updates per block).
///
/// # Safety
///
/// As for [`free`], for every block.
pub unsafe fn free_many_uncounted(blocks: &[usize], size: usize) {
    // SAFETY: per the caller.
    unsafe { give_shared_many(blocks, size) };
}

/// Counts `blocks` blocks of `bytes` bytes in all as freed by [`free_many_uncounted`].
pub fn count_freed(blocks: usize, bytes: usize) {
    LIVE_BLOCKS.fetch_sub(blocks, Ordering::Relaxed);
    LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// Frees a record block of `size` bytes made by [`allocate`].
///
/// # Safety
///
/// `block` must come from `allocate(size)`, must not be freed before, and nothing may use it
/// afterwards.
pub unsafe fn free(block: NonNull<u8>, size: usize) {
    count_freed(1, size);
    // SAFETY: per the caller.
    unsafe { give(block, size) };
}

/// Copies `src` into `dst` (of the same length) with the processor's string copy
/// (`rep movsb`) where it is fast. A plain copy uses wide vector stores, and reading a field
/// back out of a line so written stalls until the stores complete (store-to-load forwarding
/// fails); reading right after a string copy does not. Elsewhere a plain copy.
pub fn copy_for_reading(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a copy between slices of the same length");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ermsb") {
        // SAFETY: `rep movsb` copies `rcx` bytes from `rsi` to `rdi`, forwards (the ABI keeps
        // the direction flag clear at every call); both slices hold that many bytes and cannot
        // overlap (one is borrowed mutably). It touches no stack and only the registers named.
        unsafe {
            std::arch::asm!(
                "rep movsb",
                inout("rcx") src.len() => _,
                inout("rdi") dst.as_mut_ptr() => _,
                inout("rsi") src.as_ptr() => _,
                options(nostack, preserves_flags)
            )
        };
        return;
    }
    dst.copy_from_slice(src);
}

/// Copies `src` to `dst` with streaming (non-temporal) stores where the processor has them:
/// a block written once and not read again soon need not be fetched into the cache first nor
/// displace what is cached. Call [`stream_fence`] before another thread may read `dst`.
///
/// # Safety
///
/// `dst` must be 16-byte aligned (blocks are), valid for writing `src.len()` bytes, and not
/// overlap `src`.
pub unsafe fn stream_copy(dst: NonNull<u8>, src: &[u8]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        debug_assert_eq!(dst.as_ptr() as usize % 16, 0);
        if (dst.as_ptr() as usize).is_multiple_of(32) && std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is present; per the caller.
            done = unsafe { stream_copy_avx(dst, src) };
        }
        let whole = src.len() / 16 * 16;
        while done < whole {
            // SAFETY: `done + 16 <= src.len()`, so both 16-byte accesses are in bounds (per
            // the caller for `dst`); `dst + done` is 16-byte aligned as `_mm_stream_si128`
            // requires; SSE2 is part of every x86_64 processor.
            unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(done).cast::<__m128i>());
                _mm_stream_si128(dst.as_ptr().add(done).cast::<__m128i>(), v);
            }
            done += 16;
        }
    }
    // SAFETY: per the caller, `dst` has room for `src.len()` bytes and does not overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr().add(done), dst.as_ptr().add(done), src.len() - done)
    };
}

/// The whole 32-byte chunks of [`stream_copy`], with 32-byte streaming stores; returns the
/// bytes copied.
///
/// # Safety
///
/// As for [`stream_copy`], with `dst` 32-byte aligned, on a processor with AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn stream_copy_avx(dst: NonNull<u8>, src: &[u8]) -> usize {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_stream_si256};
    let whole = src.len() / 32 * 32;
    let mut done = 0;
    while done < whole {
        // SAFETY: `done + 32 <= src.len()`, so both accesses are in bounds (per the caller for
        // `dst`), and `dst + done` is 32-byte aligned as `_mm256_stream_si256` requires.
        unsafe {
            let v = _mm256_loadu_si256(src.as_ptr().add(done).cast::<__m256i>());
            _mm256_stream_si256(dst.as_ptr().add(done).cast::<__m256i>(), v);
        }
        done += 32;
    }
    done
}

/// Orders the streaming stores of [`stream_copy`] before every later store, so a thread that
/// sees a later store (such as a block's address being handed over) sees the block's bytes.
pub fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SFENCE only orders stores; SSE is part of every x86_64 processor.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// Allocates room for one `T` (a tree node) from the same cache.
pub fn allocate_for<T>() -> NonNull<T> {
    const { assert!(std::mem::align_of::<T>() <= BLOCK_ALIGN) };
    take(std::mem::size_of::<T>()).cast::<T>()
}

/// Frees room made by [`allocate_for`]; the value must have been dropped or moved out.
///
/// # Safety
///
/// `ptr` must come from `allocate_for::<T>()`, must not be freed before, and nothing may use
/// it afterwards.
pub unsafe fn free_for<T>(ptr: NonNull<T>) {
    // SAFETY: per the caller.
    unsafe { give(ptr.cast::<u8>(), std::mem::size_of::<T>()) };
}

/// Frees many rooms made by [`allocate_for`] (by address) at once, into the shared cache
/// under one lock.
///
/// # Safety
///
/// As for [`free_for`], for every address.
pub unsafe fn free_many_for<T>(addrs: &[usize]) {
    // SAFETY: per the caller, rooms of `size_of::<T>()` bytes from `take`.
    unsafe { give_shared_many(addrs, std::mem::size_of::<T>()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_exact_at_every_length_and_offset() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in [0, 1, 15, 64] {
            for len in [0, 1, 15, 16, 17, 63, 64, 65, 200] {
                let s = &src[start..start + len];
                let mut dst = vec![0xAAu8; len];
                copy_for_reading(&mut dst, s);
                assert_eq!(dst, s, "copy_for_reading of {len} bytes from offset {start}");
                // Destinations aligned to 64, to 16 only, and to 32 only.
                for at in [0, 16, 32] {
                    let block = allocate(len + 64);
                    // SAFETY: the block is new and 64-byte aligned, so `at` bytes in it is
                    // 16-byte aligned with `len` bytes of room after it.
                    let dst = unsafe { block.add(at) };
                    // SAFETY: as above.
                    unsafe { stream_copy(dst, s) };
                    stream_fence();
                    // SAFETY: `len` bytes were just written there, in a block nothing else holds.
                    let copied = unsafe { std::slice::from_raw_parts(dst.as_ptr(), len) };
                    assert_eq!(copied, s, "stream_copy of {len} bytes from offset {start} to {at}");
                    // SAFETY: allocated above with this size, freed once.
                    unsafe { free(block, len + 64) };
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "same length")]
    fn a_copy_between_slices_of_different_lengths_is_refused() {
        copy_for_reading(&mut [0u8; 3], &[1u8; 4]);
    }
}
