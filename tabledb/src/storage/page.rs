//! Pages: runs of up to 64 record positions whose records share one block.
//!
//! A page is described by a [`PageSlot`] in a leaf of the page tree: a pointer to its block
//! (`cap * record_size` bytes, 64-byte aligned), a live bitmap, and for sparse pages a present
//! bitmap. Keeping this metadata out of the block keeps blocks exactly the size of their
//! records, so small pages cost little memory and a copy-on-write copies only records.
//!
//! A *dense* page stores position `i` in slot `i` for `i < len`. A *sparse* page (made by
//! compaction) stores only the positions whose present bit is set, in order, so the slot of
//! position `i` is the number of present bits below `i`. The live bit says whether a record
//! exists at a position; a soft-deleted record keeps its bytes until compaction.

use std::ptr::NonNull;

use super::block;
use super::reclaim::{Garbage, Writer};
use crate::types::MAX_RECORD_SIZE;

/// What a page's records aim to fill: small, so a commit that changes one record copies
/// little, yet large enough that the per-page metadata (32 bytes) stays a few percent of it.
pub const PAGE_TARGET_BYTES: usize = 1024;

/// The most record positions one page covers: one 64-bit word of bitmap.
pub const MAX_IDS_PER_PAGE: usize = 64;

const SPARSE: u16 = 1;

/// How records of one table map onto pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per record.
    pub record_size: usize,
    /// log2 of the number of record positions per page.
    pub shift: u32,
}

impl Geometry {
    pub const fn new(record_size: usize) -> Geometry {
        assert!(record_size > 0, "record size must be positive");
        assert!(record_size <= MAX_RECORD_SIZE, "record size over the limit");
        let fit = PAGE_TARGET_BYTES / record_size;
        let fit = if fit == 0 { 1 } else { fit };
        let ids = 1usize << fit.ilog2();
        let ids = if ids > MAX_IDS_PER_PAGE { MAX_IDS_PER_PAGE } else { ids };
        Geometry { record_size, shift: ids.trailing_zeros() }
    }

    /// Record positions per page.
    #[inline]
    pub fn ids_per_page(&self) -> usize {
        1 << self.shift
    }

    /// The page index and position within the page of record position `pos`.
    #[inline]
    pub fn split(&self, pos: u64) -> (u64, usize) {
        (pos >> self.shift, (pos & ((1u64 << self.shift) - 1)) as usize)
    }
}

/// The description of one page, stored in a leaf of the page tree.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct PageSlot {
    block: Option<NonNull<u8>>,
    live: u64,
    /// Sparse pages only: positions that have a slot.
    present: u64,
    /// Slots in use.
    len: u16,
    /// Slots allocated.
    cap: u16,
    flags: u16,
    _reserved: u16,
}

const _: () = assert!(std::mem::size_of::<PageSlot>() == 32);

// SAFETY: a slot is plain data plus a pointer to a block that is immutable while shared (only
// the committer that allocated it in the current commit writes it), so it may cross threads.
unsafe impl Send for PageSlot {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for PageSlot {}

#[inline]
fn low_bits(n: usize) -> u64 {
    if n >= 64 { u64::MAX } else { (1u64 << n) - 1 }
}

impl PageSlot {
    /// No page.
    pub const EMPTY: PageSlot =
        PageSlot { block: None, live: 0, present: 0, len: 0, cap: 0, flags: 0, _reserved: 0 };

    #[inline]
    pub fn exists(&self) -> bool {
        self.block.is_some()
    }

    /// Slots in use.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Slots allocated.
    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Live records.
    #[inline]
    pub fn live_count(&self) -> usize {
        self.live.count_ones() as usize
    }

    #[inline]
    pub fn is_sparse(&self) -> bool {
        self.flags & SPARSE != 0
    }

    /// The live bitmap.
    #[inline]
    pub fn live_bits(&self) -> u64 {
        self.live
    }

    /// The block's address, which identifies this version of the page.
    #[inline]
    pub fn block_addr(&self) -> usize {
        self.block.map_or(0, |b| b.as_ptr() as usize)
    }

    #[inline]
    pub fn is_live(&self, pos: usize) -> bool {
        self.live >> pos & 1 == 1
    }

    /// The storage slot of position `pos`, if it has one.
    #[inline]
    pub fn slot_of(&self, pos: usize) -> Option<usize> {
        if self.is_sparse() {
            if self.present >> pos & 1 == 0 {
                return None;
            }
            Some((self.present & low_bits(pos)).count_ones() as usize)
        } else {
            (pos < self.len()).then_some(pos)
        }
    }

    /// True when positions `0..len` are all live and stored in order: the records are one
    /// plain slice.
    #[inline]
    pub fn is_dense_all_live(&self) -> bool {
        !self.is_sparse() && self.live == low_bits(self.len())
    }

    /// The stored records, `len * record_size` bytes, 64-byte aligned.
    #[inline]
    pub fn data(&self, record_size: usize) -> &[u8] {
        match self.block {
            // SAFETY: the block holds `cap >= len` slots of `record_size` bytes, of which the
            // first `len` are initialized; it stays allocated while any snapshot that can
            // reach this slot is alive, and `&self` borrows from such a snapshot (or from the
            // commit that owns the slot).
            Some(b) => unsafe { std::slice::from_raw_parts(b.as_ptr(), self.len() * record_size) },
            None => &[],
        }
    }

    /// The bytes of storage slot `slot`.
    #[inline]
    pub fn slot_bytes(&self, slot: usize, record_size: usize) -> &[u8] {
        &self.data(record_size)[slot * record_size..(slot + 1) * record_size]
    }

    /// The live record at position `pos`.
    #[inline]
    pub fn get(&self, pos: usize, record_size: usize) -> Option<&[u8]> {
        if !self.is_live(pos) {
            return None;
        }
        let slot = self.slot_of(pos)?;
        debug_assert!(slot < self.len());
        let block = self.block?;
        // SAFETY: a live position has a slot below `len`, so the record lies within the
        // block's initialized slots; the block outlives `&self` (see `data`).
        Some(unsafe { std::slice::from_raw_parts(block.as_ptr().add(slot * record_size), record_size) })
    }

    /// The live positions with their storage slots, in order.
    pub fn live_slots(&self) -> LiveSlots {
        LiveSlots { live: self.live, present: if self.is_sparse() { Some(self.present) } else { None } }
    }

    /// Bytes of this page's block.
    pub fn block_bytes(&self, record_size: usize) -> usize {
        if self.exists() { self.capacity() * record_size } else { 0 }
    }

    /// A new block for this page: private to the writer, with the current records copied and
    /// room for `cap` slots. The old block, if any, is retired (or freed at once if it was
    /// itself private).
    fn reallocate(&mut self, fresh: &mut bool, cap: usize, record_size: usize, w: &mut Writer) {
        let cap = cap.max(self.len());
        let new = block::allocate(cap * record_size);
        let used = self.len() * record_size;
        if let Some(old) = self.block {
            // SAFETY: the old block holds `len` initialized slots; the new one has room for
            // `cap >= len` slots; they are distinct allocations.
            unsafe { std::ptr::copy_nonoverlapping(old.as_ptr(), new.as_ptr(), used) };
            let old_bytes = self.capacity() * record_size;
            if *fresh {
                // SAFETY: a fresh block was allocated by this writer and never published, and
                // the slot that referenced it now references the new block.
                unsafe { block::free(old, old_bytes) };
            } else {
                w.retire(Garbage::Block(old, old_bytes));
            }
        }
        self.block = Some(new);
        self.cap = cap as u16;
        *fresh = true;
    }

    /// The block's bytes, mutably. The block must be private to the writer (`fresh`).
    fn data_mut(&mut self, record_size: usize) -> &mut [u8] {
        let b = self.block.expect("a private page has a block");
        // SAFETY: the block is private to the writer (callers make it fresh first), holds
        // `cap` slots, and `&mut self` excludes every other access through this slot.
        unsafe { std::slice::from_raw_parts_mut(b.as_ptr(), self.capacity() * record_size) }
    }
}

impl PageSlot {
    /// A private copy of this page (same slots and bitmaps) holding `data` in place of its
    /// records, in `block`, owned by the caller (a transaction's private page). The block is
    /// written with [`block::stream_copy`]: call [`block::stream_fence`] before another
    /// thread may read it. The block is not counted yet: the caller passes it to
    /// [`block::count_allocated`].
    ///
    /// # Safety
    ///
    /// `block` must be an unused block of `data.len()` bytes from [`block::allocate_uncounted`]
    /// or [`block::allocate_many_uncounted`]; the copy owns it from here on.
    pub unsafe fn private_copy_into(&self, block: NonNull<u8>, data: &[u8], record_size: usize) -> PageSlot {
        assert_eq!(data.len(), self.len() * record_size, "a page copy holds exactly the page's slots");
        assert!(self.len > 0, "only a page with records has a block");
        let mut copy = *self;
        copy.cap = self.len;
        // SAFETY: per the caller, the block is 64-byte aligned, holds `data.len()` bytes and
        // is a distinct allocation nothing else uses.
        unsafe { block::stream_copy(block, data) };
        copy.block = Some(block);
        copy
    }
}

/// A page being changed by a writer: its slot, and whether its block is already private.
pub(crate) struct PageMut<'a> {
    pub(crate) slot: &'a mut PageSlot,
    pub(crate) fresh: bool,
    pub(crate) fresh_bit: &'a mut u16,
    pub(crate) bit: u16,
}

impl PageMut<'_> {
    fn set_fresh(&mut self) {
        self.fresh = true;
        *self.fresh_bit |= self.bit;
    }

    /// Makes the block private (copying it unless it is already) with at least `cap` slots.
    fn make_private(&mut self, cap: usize, record_size: usize, w: &mut Writer) {
        if !self.fresh || self.slot.capacity() < cap || !self.slot.exists() {
            let mut fresh = self.fresh;
            self.slot.reallocate(&mut fresh, cap, record_size, w);
            self.set_fresh();
        }
    }

    /// The bytes of storage slot `slot`, after making the block private.
    pub fn slot_bytes_mut(&mut self, slot: usize, record_size: usize, w: &mut Writer) -> &mut [u8] {
        let len = self.slot.len();
        self.make_private(len, record_size, w);
        &mut self.slot.data_mut(record_size)[slot * record_size..(slot + 1) * record_size]
    }

    pub fn set_live(&mut self, pos: usize, live: bool) {
        if live {
            self.slot.live |= 1 << pos;
        } else {
            self.slot.live &= !(1 << pos);
        }
    }

    /// Gives position `pos` a storage slot (zeroed, not live) if it has none, growing the
    /// block as needed, and returns the slot. The block is private afterwards.
    pub fn ensure_slot(&mut self, pos: usize, geom: &Geometry, w: &mut Writer) -> usize {
        let ids = geom.ids_per_page();
        let rs = geom.record_size;
        assert!(pos < ids);
        if let Some(slot) = self.slot.slot_of(pos) {
            let len = self.slot.len();
            self.make_private(len, rs, w);
            return slot;
        }
        let old_len = self.slot.len();
        let (need, slot) = if self.slot.is_sparse() {
            (old_len + 1, (self.slot.present & low_bits(pos)).count_ones() as usize)
        } else {
            (pos + 1, pos)
        };
        let cap = if need > self.slot.capacity() {
            need.max((self.slot.capacity() * 2).min(ids))
        } else {
            self.slot.capacity()
        };
        self.make_private(cap, rs, w);
        self.slot.len = need as u16;
        let sparse = self.slot.is_sparse();
        let data = self.slot.data_mut(rs);
        if sparse {
            data.copy_within(slot * rs..old_len * rs, (slot + 1) * rs);
            data[slot * rs..(slot + 1) * rs].fill(0);
            self.slot.present |= 1 << pos;
        } else {
            // Slots between the old end and `pos` are ids handed out but never committed:
            // zeroed and not live.
            data[old_len * rs..need * rs].fill(0);
        }
        slot
    }
}

impl PageMut<'_> {
    /// Stores records at consecutive positions from `start` of a dense page (for bulk
    /// loading); they become live.
    pub fn write_run(&mut self, start: usize, records: &[u8], geom: &Geometry, w: &mut Writer) {
        let rs = geom.record_size;
        let n = records.len() / rs;
        debug_assert!(n > 0 && records.len() == n * rs);
        debug_assert!(!self.slot.is_sparse());
        self.ensure_slot(start + n - 1, geom, w);
        self.slot.data_mut(rs)[start * rs..(start + n) * rs].copy_from_slice(records);
        self.slot.live |= low_bits(start + n) & !low_bits(start);
    }
}

/// Live positions of a page and their storage slots.
#[derive(Clone, Copy, Debug)]
pub struct LiveSlots {
    live: u64,
    present: Option<u64>,
}

impl Iterator for LiveSlots {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.live == 0 {
            return None;
        }
        let pos = self.live.trailing_zeros() as usize;
        self.live &= self.live - 1;
        let slot = match self.present {
            None => pos,
            Some(present) => (present & low_bits(pos)).count_ones() as usize,
        };
        Some((pos, slot))
    }
}

/// A compacted copy of a page holding only its live records, allocated for `w`; `None` when
/// no record is live. Dense when the live positions are exactly `0..live`, sparse otherwise.
pub fn compacted(page: &PageSlot, record_size: usize) -> Option<PageSlot> {
    let live = page.live_count();
    if live == 0 {
        return None;
    }
    let block = block::allocate(live * record_size);
    let mut out = PageSlot {
        block: Some(block),
        live: page.live,
        present: 0,
        len: live as u16,
        cap: live as u16,
        flags: 0,
        _reserved: 0,
    };
    if page.live != low_bits(live) {
        out.flags = SPARSE;
        out.present = page.live;
    }
    let data = out.data_mut(record_size);
    for (n, (_, slot)) in page.live_slots().enumerate() {
        data[n * record_size..(n + 1) * record_size].copy_from_slice(page.slot_bytes(slot, record_size));
    }
    Some(out)
}

/// Frees a page's block.
///
/// # Safety
///
/// No snapshot or writer may use the page afterwards, and the block must not be freed twice.
pub unsafe fn free_page(page: &PageSlot, record_size: usize) {
    if let Some(b) = page.block {
        // SAFETY: the caller guarantees exclusive, final ownership of the block, which was
        // allocated with `cap * record_size` bytes.
        unsafe { block::free(b, page.capacity() * record_size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_fits_whole_records_in_a_page() {
        assert_eq!(Geometry::new(64).ids_per_page(), 16);
        assert_eq!(Geometry::new(100).ids_per_page(), 8);
        assert_eq!(Geometry::new(1).ids_per_page(), MAX_IDS_PER_PAGE);
        assert_eq!(Geometry::new(MAX_RECORD_SIZE).ids_per_page(), 1);
    }

    #[test]
    fn live_slots_of_sparse_pages_count_present_bits() {
        let page = PageSlot { present: 0b1011_0101, live: 0b1001_0001, flags: SPARSE, ..PageSlot::EMPTY };
        let slots: Vec<_> = page.live_slots().collect();
        assert_eq!(slots, vec![(0, 0), (4, 2), (7, 4)]);
        assert_eq!(page.slot_of(5), Some(3));
        assert_eq!(page.slot_of(1), None);
    }
}
