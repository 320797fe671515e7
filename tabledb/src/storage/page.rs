//! Pages: fixed-capacity, 64-byte aligned blocks of records, shared between snapshots and
//! copied on write.
//!
//! A page covers `ids_per_page` consecutive record positions. One allocation holds a 32-byte
//! header, the live bitmap (one bit per position), for sparse pages a present bitmap, and the
//! record data starting at a 64-byte boundary:
//!
//! ```text
//! +--------+-------------+----------------+--------+----------------------------+
//! | header | live bitmap | present bitmap | (pad)  | records: cap * record_size |
//! | 32 B   | words * 8 B | sparse only    | to 64  |                            |
//! +--------+-------------+----------------+--------+----------------------------+
//! ```
//!
//! A *dense* page stores the record of position `i` in slot `i`, for `i < len`. A *sparse*
//! page (made by compaction) stores only the positions whose present bit is set, in order, so
//! the slot of position `i` is the number of present bits below `i`. The live bit says whether
//! the record at a position exists; a soft-deleted record keeps its bytes until compaction.
//!
//! A page is reference counted by hand (like `Arc`, but with the count inside the one
//! allocation). While it is shared it is immutable; a writer that holds the only reference may
//! change it in place, which is how a commit that touches a page twice copies it once.

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use crate::types::MAX_RECORD_SIZE;

/// Alignment of every page allocation and of the record data within it.
pub const PAGE_ALIGN: usize = 64;

/// The size a page's record data aims for; pages hold the largest power-of-two number of
/// records that fits (at least one).
pub const PAGE_TARGET_BYTES: usize = 4096;

/// The most record positions one page covers, which bounds the bitmaps at 512 bytes each.
pub const MAX_IDS_PER_PAGE: usize = 4096;

const HEADER_SIZE: usize = 32;
const SPARSE: u16 = 1;

/// How records of one table map onto pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per record.
    pub record_size: usize,
    /// log2 of the number of record positions per page.
    pub shift: u32,
    /// 64-bit words per bitmap.
    pub words: usize,
}

impl Geometry {
    pub fn new(record_size: usize) -> Geometry {
        assert!(record_size > 0, "record size must be positive");
        assert!(record_size <= MAX_RECORD_SIZE, "record size over the limit");
        let fit = (PAGE_TARGET_BYTES / record_size).max(1);
        let ids = (1usize << fit.ilog2()).min(MAX_IDS_PER_PAGE);
        Geometry { record_size, shift: ids.trailing_zeros(), words: ids.div_ceil(64) }
    }

    /// Record positions per page.
    pub fn ids_per_page(&self) -> usize {
        1 << self.shift
    }

    /// The page index and position within the page of record position `pos`.
    #[inline]
    pub fn split(&self, pos: u64) -> (u64, usize) {
        (pos >> self.shift, (pos & ((1u64 << self.shift) - 1)) as usize)
    }
}

/// Bytes of live page allocations in this process, and their number: what snapshots hold.
pub mod counters {
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) static PAGES: AtomicUsize = AtomicUsize::new(0);
    pub(super) static BYTES: AtomicUsize = AtomicUsize::new(0);

    /// Pages currently allocated by every database in this process.
    pub fn live_pages() -> usize {
        PAGES.load(Ordering::Relaxed)
    }

    /// Bytes of the pages currently allocated by every database in this process.
    pub fn live_page_bytes() -> usize {
        BYTES.load(Ordering::Relaxed)
    }
}

#[repr(C)]
struct Header {
    refs: AtomicUsize,
    /// Storage slots in use.
    len: u32,
    /// Storage slots allocated.
    cap: u32,
    /// Live records.
    live: u32,
    record_size: u32,
    /// Words per bitmap.
    words: u16,
    flags: u16,
    _reserved: u32,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);

fn data_offset(words: usize, sparse: bool) -> usize {
    let bitmaps = if sparse { 2 } else { 1 };
    (HEADER_SIZE + 8 * words * bitmaps).next_multiple_of(PAGE_ALIGN)
}

fn block_layout(geom: &Geometry, cap: usize, sparse: bool) -> Layout {
    let size = data_offset(geom.words, sparse) + cap * geom.record_size;
    Layout::from_size_align(size, PAGE_ALIGN).expect("page sizes are bounded far below isize::MAX")
}

/// A reference-counted page.
pub struct PageRef {
    ptr: NonNull<Header>,
}

// SAFETY: a page is shared only while immutable (mutation needs `&mut PageRef` and a reference
// count of one), and the count is atomic, so references may cross threads.
unsafe impl Send for PageRef {}
// SAFETY: as above; `&PageRef` only reads.
unsafe impl Sync for PageRef {}

impl Clone for PageRef {
    fn clone(&self) -> Self {
        let old = self.header().refs.fetch_add(1, Ordering::Relaxed);
        // Like `Arc`: a count this large means references are being leaked; stop rather than
        // overflow into a use-after-free.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        PageRef { ptr: self.ptr }
    }
}

impl Drop for PageRef {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Pairs with the Release decrements of other owners, so their reads of the page
        // happen before it is freed.
        fence(Ordering::Acquire);
        let layout = self.layout();
        counters::PAGES.fetch_sub(1, Ordering::Relaxed);
        counters::BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: this was the last reference; the block was allocated with this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
    }
}

impl std::fmt::Debug for PageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRef")
            .field("len", &self.len())
            .field("cap", &self.capacity())
            .field("live", &self.live_count())
            .field("sparse", &self.is_sparse())
            .finish()
    }
}

impl PageRef {
    /// A new page with no records, room for `cap` slots.
    pub fn new(geom: &Geometry, cap: usize, sparse: bool) -> PageRef {
        let page = Self::alloc_uninit(geom, cap, sparse);
        let off = data_offset(geom.words, sparse);
        // SAFETY: the block is `off + cap * record_size` bytes; the bitmaps and data after the
        // header are zeroed here, the header was written by `alloc_uninit`.
        unsafe {
            std::ptr::write_bytes(
                page.base().add(HEADER_SIZE),
                0,
                off - HEADER_SIZE + cap * geom.record_size,
            );
        }
        page
    }

    /// Allocates a block and writes its header; bitmaps and data are left uninitialized.
    fn alloc_uninit(geom: &Geometry, cap: usize, sparse: bool) -> PageRef {
        assert!(cap <= geom.ids_per_page(), "page capacity over its positions");
        let layout = block_layout(geom, cap, sparse);
        // SAFETY: the layout has a non-zero size (at least the header).
        let raw = unsafe { alloc(layout) };
        let Some(base) = NonNull::new(raw) else { handle_alloc_error(layout) };
        let header = Header {
            refs: AtomicUsize::new(1),
            len: 0,
            cap: cap as u32,
            live: 0,
            record_size: geom.record_size as u32,
            words: geom.words as u16,
            flags: if sparse { SPARSE } else { 0 },
            _reserved: 0,
        };
        let ptr = base.cast::<Header>();
        // SAFETY: the block is at least HEADER_SIZE bytes and 64-byte aligned.
        unsafe { ptr.as_ptr().write(header) };
        counters::PAGES.fetch_add(1, Ordering::Relaxed);
        counters::BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        PageRef { ptr }
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: `ptr` points at the initialized header of a live block (we hold a reference).
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn header_mut(&mut self) -> &mut Header {
        debug_assert!(self.is_unique());
        // SAFETY: callers hold the only reference (checked by `is_unique` before any mutation
        // path), so no other reference to the header exists.
        unsafe { self.ptr.as_mut() }
    }

    #[inline]
    fn base(&self) -> *mut u8 {
        self.ptr.as_ptr().cast::<u8>()
    }

    fn geometry(&self) -> Geometry {
        let h = self.header();
        let ids = h.words as usize * 64;
        Geometry { record_size: h.record_size as usize, shift: ids.trailing_zeros(), words: h.words as usize }
    }

    fn layout(&self) -> Layout {
        block_layout(&self.geometry(), self.capacity(), self.is_sparse())
    }

    /// Bytes this page's allocation holds.
    pub fn alloc_bytes(&self) -> usize {
        self.layout().size()
    }

    /// Storage slots in use.
    #[inline]
    pub fn len(&self) -> usize {
        self.header().len as usize
    }

    /// Storage slots allocated.
    pub fn capacity(&self) -> usize {
        self.header().cap as usize
    }

    /// Live records.
    #[inline]
    pub fn live_count(&self) -> usize {
        self.header().live as usize
    }

    #[inline]
    pub fn is_sparse(&self) -> bool {
        self.header().flags & SPARSE != 0
    }

    #[inline]
    fn record_size(&self) -> usize {
        self.header().record_size as usize
    }

    #[inline]
    fn words(&self) -> usize {
        self.header().words as usize
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: the data offset lies within the block (the block is at least that long).
        unsafe { self.base().add(data_offset(self.words(), self.is_sparse())) }
    }

    /// The live bitmap: bit `i` is set when position `i` holds a live record.
    #[inline]
    pub fn live_words(&self) -> &[u64] {
        // SAFETY: the live bitmap sits right after the header, `words` u64s, 8-byte aligned
        // (the header is 32 bytes from a 64-byte aligned base), initialized at allocation.
        unsafe { std::slice::from_raw_parts(self.base().add(HEADER_SIZE).cast::<u64>(), self.words()) }
    }

    /// The present bitmap of a sparse page: bit `i` is set when position `i` has a slot.
    pub fn present_words(&self) -> Option<&[u64]> {
        if !self.is_sparse() {
            return None;
        }
        // SAFETY: a sparse page's present bitmap follows the live bitmap, `words` u64s,
        // 8-byte aligned and initialized at allocation.
        Some(unsafe {
            std::slice::from_raw_parts(
                self.base().add(HEADER_SIZE + 8 * self.words()).cast::<u64>(),
                self.words(),
            )
        })
    }

    /// The stored records, `len * record_size` bytes, 64-byte aligned.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: slots below `len` are initialized (written or zeroed when they were added);
        // the slice lies within the block and borrows the page.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len() * self.record_size()) }
    }

    /// True when every position below `len` is live and stored in order: the records are one
    /// plain slice.
    #[inline]
    pub fn is_dense_all_live(&self) -> bool {
        let h = self.header();
        h.flags & SPARSE == 0 && h.live == h.len
    }

    #[inline]
    pub fn is_live(&self, pos: usize) -> bool {
        self.live_words()[pos / 64] >> (pos % 64) & 1 == 1
    }

    /// The storage slot of position `pos`, if it has one.
    #[inline]
    pub fn slot(&self, pos: usize) -> Option<usize> {
        match self.present_words() {
            None => (pos < self.len()).then_some(pos),
            Some(present) => {
                let (w, b) = (pos / 64, pos % 64);
                if present[w] >> b & 1 == 0 {
                    return None;
                }
                let below: u32 = present[..w].iter().map(|x| x.count_ones()).sum();
                Some(below as usize + (present[w] & ((1u64 << b) - 1)).count_ones() as usize)
            }
        }
    }

    /// The bytes of slot `slot`.
    #[inline]
    pub fn slot_bytes(&self, slot: usize) -> &[u8] {
        let rs = self.record_size();
        &self.data()[slot * rs..(slot + 1) * rs]
    }

    /// The live record at position `pos`.
    #[inline]
    pub fn get(&self, pos: usize) -> Option<&[u8]> {
        if !self.is_live(pos) {
            return None;
        }
        let slot = self.slot(pos)?;
        Some(self.slot_bytes(slot))
    }

    /// True when both references name the same page.
    #[inline]
    pub fn ptr_eq(&self, other: &PageRef) -> bool {
        self.ptr == other.ptr
    }

    /// True when no other reference to this page exists, so it may be changed in place.
    pub fn is_unique(&self) -> bool {
        // Acquire pairs with the Release decrement of a dropped clone, so its reads of the
        // page happen before our writes.
        self.header().refs.load(Ordering::Acquire) == 1
    }

    /// A private copy with room for at least `cap` slots.
    pub fn copy_with_capacity(&self, cap: usize) -> PageRef {
        let geom = self.geometry();
        let cap = cap.max(self.len());
        let sparse = self.is_sparse();
        let mut page = Self::alloc_uninit(&geom, cap, sparse);
        let words = self.words();
        let bitmap_bytes = 8 * words * if sparse { 2 } else { 1 };
        let off = data_offset(words, sparse);
        let used = self.len() * self.record_size();
        // SAFETY: both blocks have the same geometry and bitmap layout; the destination holds
        // at least `len` slots; source and destination are distinct allocations. Every byte of
        // the new block after the header is written: bitmaps copied, padding and unused slots
        // zeroed, used slots copied.
        unsafe {
            let dst = page.base();
            std::ptr::copy_nonoverlapping(self.base().add(HEADER_SIZE), dst.add(HEADER_SIZE), bitmap_bytes);
            std::ptr::write_bytes(dst.add(HEADER_SIZE + bitmap_bytes), 0, off - HEADER_SIZE - bitmap_bytes);
            std::ptr::copy_nonoverlapping(self.data_ptr(), dst.add(off), used);
            std::ptr::write_bytes(dst.add(off + used), 0, cap * self.record_size() - used);
        }
        let h = page.header_mut();
        h.len = self.header().len;
        h.live = self.header().live;
        page
    }

    /// Makes this page unique (copying it if it is shared) with room for `cap` slots.
    pub fn make_mut(&mut self, cap: usize) -> &mut PageRef {
        if !self.is_unique() || self.capacity() < cap {
            *self = self.copy_with_capacity(cap);
        }
        self
    }

    fn live_words_mut(&mut self) -> &mut [u64] {
        assert!(self.is_unique());
        // SAFETY: unique page (asserted), so no shared borrow of the bitmap exists; bounds as
        // in `live_words`.
        unsafe { std::slice::from_raw_parts_mut(self.base().add(HEADER_SIZE).cast::<u64>(), self.words()) }
    }

    fn present_words_mut(&mut self) -> Option<&mut [u64]> {
        assert!(self.is_unique());
        if !self.is_sparse() {
            return None;
        }
        // SAFETY: unique page (asserted); bounds as in `present_words`.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                self.base().add(HEADER_SIZE + 8 * self.words()).cast::<u64>(),
                self.words(),
            )
        })
    }

    /// The bytes of slot `slot`, mutably. The page must be unique.
    pub fn slot_bytes_mut(&mut self, slot: usize) -> &mut [u8] {
        assert!(self.is_unique());
        assert!(slot < self.len(), "slot out of range");
        let rs = self.record_size();
        // SAFETY: unique page (asserted), so nothing else borrows its data; the slot is below
        // `len`, within the allocation.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr().add(slot * rs), rs) }
    }

    /// All stored records, mutably. The page must be unique.
    pub fn data_mut(&mut self) -> &mut [u8] {
        assert!(self.is_unique());
        let n = self.len() * self.record_size();
        // SAFETY: unique page (asserted); `len` slots are initialized and in bounds.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), n) }
    }

    /// Sets or clears the live bit of `pos` (which must have a slot), keeping the count.
    pub fn set_live(&mut self, pos: usize, live: bool) {
        let word = &mut self.live_words_mut()[pos / 64];
        let bit = 1u64 << (pos % 64);
        let was = *word & bit != 0;
        if live {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        let h = self.header_mut();
        match (was, live) {
            (false, true) => h.live += 1,
            (true, false) => h.live -= 1,
            _ => {}
        }
    }

    /// Gives position `pos` a storage slot (zeroed, not live) if it has none, growing or
    /// copying the page as needed, and returns the slot. `ids_per_page` bounds the capacity.
    pub fn ensure_slot(&mut self, pos: usize) -> usize {
        let geom = self.geometry();
        let ids = geom.ids_per_page();
        assert!(pos < ids);
        if let Some(slot) = self.slot(pos) {
            self.make_mut(self.len());
            return slot;
        }
        let rs = self.record_size();
        if !self.is_sparse() {
            // Dense: positions below `len` all have slots, so `pos >= len`.
            let need = pos + 1;
            let cap = if need > self.capacity() { need.max((self.capacity() * 2).min(ids)) } else { need };
            self.make_mut(cap);
            let old_len = self.len();
            self.header_mut().len = need as u32;
            // Slots between the old end and `pos` stay zeroed and not live: they are ids that
            // were handed out but never committed.
            self.data_mut()[old_len * rs..].fill(0);
            return pos;
        }
        let need = self.len() + 1;
        let cap = if need > self.capacity() { need.max((self.capacity() * 2).min(ids)) } else { need };
        self.make_mut(cap);
        let slot = {
            let present = self.present_words().expect("sparse");
            let (w, b) = (pos / 64, pos % 64);
            let below: u32 = present[..w].iter().map(|x| x.count_ones()).sum();
            below as usize + (present[w] & ((1u64 << b) - 1)).count_ones() as usize
        };
        let old_len = self.len();
        self.header_mut().len = need as u32;
        let data = self.data_mut();
        data.copy_within(slot * rs..old_len * rs, (slot + 1) * rs);
        data[slot * rs..(slot + 1) * rs].fill(0);
        self.present_words_mut().expect("sparse")[pos / 64] |= 1u64 << (pos % 64);
        slot
    }

    /// Iterates the live positions of this page, in order, with their slots.
    pub fn live_slots(&self) -> LiveSlots<'_> {
        LiveSlots { page: self, word: 0, bits: self.live_words().first().copied().unwrap_or(0), rank_base: 0 }
    }

    /// A compacted copy holding only the live records, or `None` when none is live. The copy
    /// is dense when the live positions are exactly `0..live`, sparse otherwise.
    pub fn compacted(&self) -> Option<PageRef> {
        let live = self.live_count();
        if live == 0 {
            return None;
        }
        let geom = self.geometry();
        let prefix = self.live_words().iter().enumerate().all(|(w, &bits)| {
            let lo = w * 64;
            let expect = if live >= lo + 64 {
                u64::MAX
            } else if live > lo {
                (1u64 << (live - lo)) - 1
            } else {
                0
            };
            bits == expect
        });
        let mut page = PageRef::new(&geom, live, !prefix);
        let rs = geom.record_size;
        let mut n = 0;
        for (pos, slot) in self.live_slots() {
            page.header_mut().len = (n + 1) as u32;
            page.slot_bytes_mut(n).copy_from_slice(self.slot_bytes(slot));
            if let Some(present) = page.present_words_mut() {
                present[pos / 64] |= 1u64 << (pos % 64);
            }
            page.set_live(pos, true);
            n += 1;
        }
        debug_assert_eq!(n, live);
        debug_assert_eq!(page.data().len(), live * rs);
        Some(page)
    }
}

/// Live positions of a page and their slots.
#[derive(Debug)]
pub struct LiveSlots<'a> {
    page: &'a PageRef,
    word: usize,
    bits: u64,
    /// For sparse pages: present bits in the words before `word`.
    rank_base: usize,
}

impl Iterator for LiveSlots<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        let words = self.page.live_words();
        while self.bits == 0 {
            if let Some(present) = self.page.present_words() {
                self.rank_base += present[self.word].count_ones() as usize;
            }
            self.word += 1;
            if self.word >= words.len() {
                return None;
            }
            self.bits = words[self.word];
        }
        let b = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        let pos = self.word * 64 + b;
        let slot = match self.page.present_words() {
            None => pos,
            Some(present) => self.rank_base + (present[self.word] & ((1u64 << b) - 1)).count_ones() as usize,
        };
        Some((pos, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_whole_records_in_a_page() {
        let g = Geometry::new(64);
        assert_eq!(g.ids_per_page(), 64);
        assert_eq!(g.words, 1);
        let g = Geometry::new(100);
        assert_eq!(g.ids_per_page(), 32);
        let g = Geometry::new(1);
        assert_eq!(g.ids_per_page(), MAX_IDS_PER_PAGE);
        let g = Geometry::new(MAX_RECORD_SIZE);
        assert_eq!(g.ids_per_page(), 1);
    }

    #[test]
    fn dense_page_grows_and_copies_on_write() {
        let g = Geometry::new(8);
        let mut p = PageRef::new(&g, 1, false);
        let slot = p.ensure_slot(3);
        assert_eq!(slot, 3);
        p.slot_bytes_mut(3).copy_from_slice(&7u64.to_le_bytes());
        p.set_live(3, true);
        assert_eq!(p.get(3), Some(&7u64.to_le_bytes()[..]));
        assert_eq!(p.get(2), None);
        assert_eq!(p.live_count(), 1);
        assert_eq!(p.data().as_ptr() as usize % PAGE_ALIGN, 0);
        let shared = p.clone();
        p.make_mut(p.len());
        p.slot_bytes_mut(3).copy_from_slice(&9u64.to_le_bytes());
        assert_eq!(shared.get(3), Some(&7u64.to_le_bytes()[..]));
        assert_eq!(p.get(3), Some(&9u64.to_le_bytes()[..]));
    }

    #[test]
    fn compaction_keeps_positions_and_drops_deleted_records() {
        let g = Geometry::new(4);
        let mut p = PageRef::new(&g, 0, false);
        for pos in 0..10 {
            let s = p.ensure_slot(pos);
            p.slot_bytes_mut(s).copy_from_slice(&(pos as u32).to_le_bytes());
            p.set_live(pos, true);
        }
        for pos in [1, 4, 5, 9] {
            p.set_live(pos, false);
        }
        let c = p.compacted().unwrap();
        assert!(c.is_sparse());
        assert_eq!(c.len(), 6);
        for pos in 0..10 {
            let expect = (![1, 4, 5, 9].contains(&pos)).then(|| (pos as u32).to_le_bytes());
            assert_eq!(c.get(pos), expect.as_ref().map(|b| &b[..]), "pos {pos}");
        }
        let mut c = c;
        let s = c.ensure_slot(4);
        assert_eq!(s, 2);
        c.slot_bytes_mut(s).copy_from_slice(&44u32.to_le_bytes());
        c.set_live(4, true);
        assert_eq!(c.get(4), Some(&44u32.to_le_bytes()[..]));
        assert_eq!(c.get(6), Some(&6u32.to_le_bytes()[..]));
        let live: Vec<_> = c.live_slots().map(|(pos, _)| pos).collect();
        assert_eq!(live, vec![0, 2, 3, 4, 6, 7, 8]);
    }

    #[test]
    fn pages_are_freed_when_the_last_reference_drops() {
        let g = Geometry::new(16);
        let p = PageRef::new(&g, 4, false);
        let q = p.clone();
        assert!(!p.is_unique());
        drop(q);
        assert!(p.is_unique());
    }
}
