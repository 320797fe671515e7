//! The records of one table in one snapshot: a page tree plus counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::page::{Geometry, PageSlot, compacted};
use super::reclaim::{Garbage, Writer};
use super::tree::PageTree;
use crate::ids::{RecordId, TableId};
use crate::schema::TableSchema;

/// Hands out record ids to transactions begun with [`Database::begin`](crate::Database::begin).
/// Shared by every snapshot of a table, so concurrent transactions never receive the same id;
/// an id handed to a transaction that aborts is not used again while the database is open.
/// Deterministic transactions number their records from [`TableData::next_id`] instead, and
/// their commits move this counter past the ids they used.
#[derive(Debug)]
pub struct IdAllocator {
    next: AtomicU64,
}

impl IdAllocator {
    pub fn new(next: u64) -> Arc<IdAllocator> {
        Arc::new(IdAllocator { next: AtomicU64::new(next.max(1)) })
    }

    /// A fresh id, or `None` when the id space is exhausted.
    pub fn allocate(&self) -> Option<RecordId> {
        let id = self.next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1)).ok()?;
        Some(RecordId(id))
    }

    /// Makes sure no id below `next` is handed out (after recovery, and after a commit that
    /// numbered its records itself).
    pub fn advance_to(&self, next: u64) {
        self.next.fetch_max(next, Ordering::Relaxed);
    }
}

/// What [`TableData::prefetch`] fetches.
#[derive(Clone, Copy, Debug)]
pub enum Prefetch {
    /// The tree leaf that describes the record's page.
    Leaf,
    /// The page's records.
    Block,
}

/// How many ids ahead [`TableData::get_many`] fetches tree leaf entries.
pub const LEAF_AHEAD: usize = 16;
/// How many ids ahead [`TableData::get_many`] fetches records.
pub const RECORD_AHEAD: usize = 8;

/// Asks the processor to bring `bytes` into the cache.
#[inline]
pub fn prefetch(bytes: &[u8]) {
    for line in bytes.chunks(64) {
        prefetch_line(line.as_ptr());
    }
}

/// Asks the processor to bring the cache line at `ptr` into the cache.
#[inline]
pub fn prefetch_line(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and changes no memory; SSE is part of
    // every x86_64 processor.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// One table's records as of one snapshot.
///
/// Cloning a `TableData` shares its tree; the clone and the original must only be changed
/// through a [`Writer`] of the commit that owns the clone, which copies what it changes.
#[derive(Clone, Debug)]
pub struct TableData {
    pub id: TableId,
    pub schema: Arc<TableSchema>,
    pub fingerprint: u64,
    pub geom: Geometry,
    pub tree: PageTree,
    /// Live records.
    pub live: u64,
    /// Record slots with storage (live, soft-deleted, or never committed gaps), which is what
    /// the table's memory holds.
    pub stored: u64,
    /// One past the highest record position ever stored; iteration stops here.
    pub end_pos: u64,
    pub ids: Arc<IdAllocator>,
    /// One past the highest id any commit stored in the table (1 when it never held a
    /// record). It never goes down, also when records are deleted or compacted away.
    /// Transactions begun with [`Database::begin_deterministic`](crate::Database::begin_deterministic)
    /// number their new records from here.
    pub next_id: u64,
    /// The ids recent deterministic commits numbered records with. An id the shared counter
    /// handed out before such a commit may have been used by it; commit validation uses this
    /// to refuse a second record with that id. Not persisted: no transaction outlives the
    /// process.
    pub det_ranges: Arc<DetRanges>,
    /// Bumped by every schema change of this table; a transaction that started before one
    /// cannot commit into the table.
    pub version: u64,
    /// The commit that last changed the table's records (for skipping unchanged tables in
    /// checkpoints).
    pub changed_at: u64,
}

/// The id ranges the latest deterministic commits numbered records in, oldest first; older ones
/// are summed up in one bound.
#[derive(Clone, Debug, Default)]
pub struct DetRanges {
    /// (commit sequence number, first id, one past the last id).
    recent: Vec<(u64, u64, u64)>,
    /// For the ranges dropped to keep `recent` short: the newest one's commit, and one past
    /// the highest id any of them used.
    dropped: Option<(u64, u64)>,
}

impl DetRanges {
    /// Ranges kept one by one.
    const KEPT: usize = 32;

    /// Records that the commit `seq` numbered records with `ids`.
    pub fn push(&mut self, seq: u64, ids: std::ops::Range<u64>) {
        if ids.is_empty() {
            return;
        }
        self.recent.push((seq, ids.start, ids.end));
        if self.recent.len() > Self::KEPT {
            let (old_seq, _, end) = self.recent.remove(0);
            let end = self.dropped.map_or(end, |(_, e)| e.max(end));
            self.dropped = Some((old_seq, end));
        }
    }

    /// Whether a deterministic commit after commit `since` may have used `id`: certainly when
    /// one did, and also when the ranges of such commits were dropped and `id` lies below
    /// their end.
    pub fn used_since(&self, since: u64, id: u64) -> bool {
        self.recent.iter().any(|&(seq, first, end)| seq > since && (first..end).contains(&id))
            || self.dropped.is_some_and(|(seq, end)| seq > since && id < end)
    }
}

impl TableData {
    pub fn new(id: TableId, schema: Arc<TableSchema>, version: u64) -> TableData {
        TableData {
            id,
            fingerprint: schema.fingerprint(),
            geom: Geometry::new(schema.record_size),
            schema,
            tree: PageTree::default(),
            live: 0,
            stored: 0,
            end_pos: 0,
            ids: IdAllocator::new(1),
            next_id: 1,
            det_ranges: Arc::default(),
            version,
            changed_at: version,
        }
    }

    pub fn name(&self) -> &str {
        &self.schema.name
    }

    /// The page holding `id` and the position within it.
    #[inline]
    pub fn locate(&self, id: RecordId) -> Option<(&PageSlot, usize)> {
        let (page, pos) = self.geom.split(id.pos()?);
        Some((self.tree.get(page)?, pos))
    }

    /// The live record `id`.
    #[inline]
    pub fn get(&self, id: RecordId) -> Option<&[u8]> {
        self.get_in(id, self.geom)
    }

    /// [`get`](Self::get) with the table's geometry passed in, so a caller that knows it at
    /// compile time (a typed view) lets the compiler fold it into the lookup.
    #[inline(always)]
    pub fn get_in(&self, id: RecordId, geom: Geometry) -> Option<&[u8]> {
        debug_assert_eq!(geom, self.geom);
        let (page, pos) = geom.split(id.pos()?);
        // A missing page's entry has no live positions, so `get` answers `None` for it.
        self.tree.leaf_entry(page)?.get(pos, geom.record_size)
    }

    pub fn is_live(&self, id: RecordId) -> bool {
        self.get(id).is_some()
    }

    /// How many record slots storing these new ids would add: one each in sparse pages, and
    /// in dense pages every position up to the id (ids handed out but never committed below
    /// it get zeroed slots).
    pub fn slots_needed(&self, ids: impl Iterator<Item = RecordId>) -> u64 {
        let mut grown: Vec<(u64, usize)> = Vec::new();
        let mut added = 0u64;
        for id in ids {
            let Some(pos) = id.pos() else { continue };
            let (index, in_page) = self.geom.split(pos);
            let page = self.tree.get(index);
            if page.is_some_and(PageSlot::is_sparse) {
                added += u64::from(page.and_then(|p| p.slot_of(in_page)).is_none());
                continue;
            }
            // Inserts mostly come in id order, so the page is usually the last one seen.
            let len = match grown.iter_mut().rev().find(|(i, _)| *i == index) {
                Some((_, len)) => len,
                None => {
                    grown.push((index, page.map_or(0, PageSlot::len)));
                    &mut grown.last_mut().expect("just pushed").1
                }
            };
            if in_page >= *len {
                added += (in_page + 1 - *len) as u64;
                *len = in_page + 1;
            }
        }
        added
    }

    /// Stores a new live record `id`, which must not be live.
    pub fn insert(&mut self, w: &mut Writer, id: RecordId, bytes: &[u8]) {
        debug_assert_eq!(bytes.len(), self.geom.record_size);
        let pos = id.pos().expect("record ids start at 1");
        let (page_index, in_page) = self.geom.split(pos);
        let geom = self.geom;
        let mut page = self.tree.page_mut(page_index, w);
        let before = page.slot.len();
        let slot = page.ensure_slot(in_page, &geom, w);
        assert!(!page.slot.is_live(in_page), "insert over a live record");
        page.slot_bytes_mut(slot, geom.record_size, w).copy_from_slice(bytes);
        page.set_live(in_page, true);
        self.stored += (page.slot.len() - before) as u64;
        self.live += 1;
        self.end_pos = self.end_pos.max(pos + 1);
        self.next_id = self.next_id.max(pos + 2);
    }

    /// Stores live records with consecutive ids from `first`, for bulk loading into a table
    /// with no records at those positions.
    pub fn load_run(&mut self, w: &mut Writer, first: RecordId, records: &[u8]) {
        let rs = self.geom.record_size;
        let ids = self.geom.ids_per_page();
        let mut pos = first.pos().expect("record ids start at 1");
        let geom = self.geom;
        let mut rest = records;
        while !rest.is_empty() {
            let (page_index, in_page) = geom.split(pos);
            let n = (ids - in_page).min(rest.len() / rs);
            let mut page = self.tree.page_mut(page_index, w);
            let before = page.slot.len();
            page.write_run(in_page, &rest[..n * rs], &geom, w);
            self.stored += (page.slot.len() - before) as u64;
            self.live += n as u64;
            pos += n as u64;
            rest = &rest[n * rs..];
        }
        self.end_pos = self.end_pos.max(pos);
        self.next_id = self.next_id.max(pos + 1);
    }

    /// The live record `id`, mutably, after copying its page and path if another commit made
    /// them. Callers check that the record is live first: the path is copied either way.
    pub fn record_mut(&mut self, w: &mut Writer, id: RecordId) -> Option<&mut [u8]> {
        let (page_index, pos) = self.geom.split(id.pos()?);
        let rs = self.geom.record_size;
        let mut page = self.tree.page_mut(page_index, w);
        if !page.slot.is_live(pos) {
            return None;
        }
        let slot = page.slot.slot_of(pos)?;
        let bytes: *mut [u8] = page.slot_bytes_mut(slot, rs, w);
        // SAFETY: the bytes belong to a block private to this writer (made so just above),
        // which `&mut self` borrows exclusively through the tree; `page` only borrowed it.
        Some(unsafe { &mut *bytes })
    }

    /// Looks up many ids, in order, calling `f` with each id and its live record (or `None`).
    ///
    /// A software pipeline over the ids: the leaf entry of the id [`LEAF_AHEAD`] places
    /// ahead is located and fetched, the record of the id [`RECORD_AHEAD`] places ahead is
    /// located (its leaf entry has arrived by then) and fetched, and the current id's record,
    /// fetched earlier, is handed to `f`. Each id's tree is walked once and the cache misses of
    /// many lookups overlap.
    pub fn get_many<'s>(&'s self, ids: &[RecordId], mut f: impl FnMut(RecordId, Option<&'s [u8]>)) {
        const RING: usize = 32;
        const _: () = assert!(LEAF_AHEAD < RING && RECORD_AHEAD < LEAF_AHEAD);
        let rs = self.geom.record_size;
        let entry = |id: RecordId| -> Option<(&'s PageSlot, usize)> {
            let (page, pos) = self.geom.split(id.pos()?);
            let slot = self.tree.leaf_entry(page)?;
            prefetch_line((slot as *const PageSlot).cast());
            Some((slot, pos))
        };
        fn record(e: Option<(&PageSlot, usize)>, rs: usize) -> Option<&[u8]> {
            let (slot, pos) = e?;
            let bytes = slot.get(pos, rs)?;
            prefetch_line(bytes.as_ptr());
            Some(bytes)
        }
        let mut entries: [Option<(&PageSlot, usize)>; RING] = [None; RING];
        let mut records: [Option<&[u8]>; RING] = [None; RING];
        for (i, &id) in ids.iter().enumerate().take(LEAF_AHEAD) {
            entries[i % RING] = entry(id);
        }
        for i in 0..ids.len().min(RECORD_AHEAD) {
            records[i % RING] = record(entries[i % RING], rs);
        }
        for (i, &id) in ids.iter().enumerate() {
            if let Some(&ahead) = ids.get(i + LEAF_AHEAD) {
                entries[(i + LEAF_AHEAD) % RING] = entry(ahead);
            }
            if i + RECORD_AHEAD < ids.len() {
                let k = (i + RECORD_AHEAD) % RING;
                records[k] = record(entries[k], rs);
            }
            f(id, records[i % RING]);
        }
    }

    /// Asks the processor to fetch what changing record `id` will touch: `ahead` is `Leaf`
    /// some changes before, then `Block` a few changes before.
    #[inline]
    pub fn prefetch(&self, id: RecordId, what: Prefetch) {
        let Some(pos) = id.pos() else { return };
        let page = self.geom.split(pos).0;
        match what {
            Prefetch::Leaf => self.tree.prefetch_leaf(page),
            Prefetch::Block => {
                if let Some(p) = self.tree.get(page) {
                    prefetch(p.data(self.geom.record_size));
                }
            }
        }
    }

    /// Soft-deletes the live record `id`; false when it is not live.
    pub fn delete(&mut self, w: &mut Writer, id: RecordId) -> bool {
        if !self.is_live(id) {
            return false;
        }
        let (page_index, pos) = self.geom.split(id.pos().expect("live"));
        self.tree.page_mut(page_index, w).set_live(pos, false);
        self.live -= 1;
        true
    }

    /// Calls `f` for every page in position order, with the id of its first position.
    pub fn for_each_page<'a>(&'a self, f: &mut impl FnMut(u64, &'a PageSlot)) {
        let shift = self.geom.shift;
        self.tree.for_each(&mut |index, page| f((index << shift) + 1, page));
    }

    /// Calls `f` for every live record in id order.
    pub fn for_each_live<'a>(&'a self, mut f: impl FnMut(RecordId, &'a [u8])) {
        let rs = self.geom.record_size;
        self.for_each_page(&mut |first_id, page| {
            for (pos, slot) in page.live_slots() {
                f(RecordId(first_id + pos as u64), page.slot_bytes(slot, rs));
            }
        });
    }

    /// The page index just past the last stored position.
    pub fn end_page(&self) -> u64 {
        if self.end_pos == 0 { 0 } else { self.geom.split(self.end_pos - 1).0 + 1 }
    }

    /// A copy without soft-deleted records, built for `w`; ids are kept. The old tree must be
    /// retired by the caller.
    pub fn compacted(&self, w: &mut Writer) -> TableData {
        let mut out = TableData { tree: PageTree::default(), stored: 0, ..self.clone() };
        let rs = self.geom.record_size;
        self.tree.for_each(&mut |index, page| {
            if let Some(c) = compacted(page, rs) {
                out.stored += c.len() as u64;
                out.tree.put_page(index, c, rs, w);
            }
        });
        out
    }

    /// A copy under a new schema, built for `w`: each live record is rewritten by `convert`
    /// (from its old bytes into zeroed new bytes); soft-deleted records are dropped; ids are
    /// kept. The old tree must be retired by the caller.
    pub fn rewritten(
        &self,
        w: &mut Writer,
        schema: Arc<TableSchema>,
        version: u64,
        mut convert: impl FnMut(&[u8], &mut [u8]),
    ) -> TableData {
        let mut out = TableData::new(self.id, schema, version);
        out.ids = self.ids.clone();
        let mut buf = vec![0u8; out.geom.record_size];
        self.for_each_live(|id, old| {
            buf.fill(0);
            convert(old, &mut buf);
            out.insert(w, id, &buf);
        });
        // Inserting gave the positions below each record a zeroed slot; keep only the live
        // ones, as compaction does, so that a table with holes (deleted and compacted away,
        // or never committed) does not grow.
        let rs = out.geom.record_size;
        let mut holes = Vec::new();
        out.tree.for_each(&mut |index, page| {
            if page.live_count() < page.len() {
                holes.push((index, *page));
            }
        });
        for (index, page) in holes {
            if let Some(c) = compacted(&page, rs) {
                out.stored -= (page.len() - c.len()) as u64;
                // The dense page was made for this writer, so replacing it frees it.
                out.tree.put_page(index, c, rs, w);
            }
        }
        out.end_pos = out.end_pos.max(self.end_pos);
        out.next_id = out.next_id.max(self.next_id);
        out.det_ranges = self.det_ranges.clone();
        out
    }

    /// Retires this table's whole tree at the writer's commit (the table is being replaced or
    /// dropped).
    pub fn retire_tree(&self, w: &mut Writer) {
        w.retire(Garbage::Tree(self.tree, self.geom.record_size));
    }

    /// Bytes held by this table's blocks and tree nodes.
    pub fn memory_bytes(&self) -> usize {
        let mut bytes = self.tree.node_bytes();
        let rs = self.geom.record_size;
        self.tree.for_each(&mut |_, page| bytes += page.block_bytes(rs));
        bytes
    }
}
