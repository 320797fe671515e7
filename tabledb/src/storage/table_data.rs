//! The records of one table in one snapshot: a page tree plus counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::page::{Geometry, PageRef};
use super::tree::PageTree;
use crate::ids::{RecordId, TableId};
use crate::schema::TableSchema;

/// Hands out record ids. Shared by every snapshot of a table, so concurrent transactions never
/// receive the same id; an id handed to a transaction that aborts is simply never used.
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

    /// The id the next allocation returns.
    pub fn peek(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Makes sure no id below `next` is handed out again (after recovery).
    pub fn advance_to(&self, next: u64) {
        self.next.fetch_max(next, Ordering::Relaxed);
    }
}

/// One table's records as of one snapshot.
#[derive(Clone, Debug)]
pub struct TableData {
    pub id: TableId,
    pub schema: Arc<TableSchema>,
    pub fingerprint: u64,
    pub geom: Geometry,
    pub tree: PageTree,
    /// Live records.
    pub live: u64,
    /// Records with storage (live or soft-deleted), which is what the table's memory holds.
    pub stored: u64,
    /// One past the highest record position ever stored; iteration stops here.
    pub end_pos: u64,
    pub ids: Arc<IdAllocator>,
    /// Bumped by every schema change of this table; a transaction that started before one
    /// cannot commit into the table.
    pub version: u64,
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
            version,
        }
    }

    pub fn name(&self) -> &str {
        &self.schema.name
    }

    /// The page holding `id` and the position within it.
    #[inline]
    pub fn locate(&self, id: RecordId) -> Option<(&PageRef, usize)> {
        let (page, pos) = self.geom.split(id.pos()?);
        Some((self.tree.get(page)?, pos))
    }

    /// The live record `id`.
    #[inline]
    pub fn get(&self, id: RecordId) -> Option<&[u8]> {
        let (page, pos) = self.locate(id)?;
        page.get(pos)
    }

    pub fn is_live(&self, id: RecordId) -> bool {
        self.get(id).is_some()
    }

    /// Stores a new live record `id`, which must not be live. Copies the page and its path if
    /// they are shared.
    pub fn insert(&mut self, id: RecordId, bytes: &[u8]) {
        debug_assert_eq!(bytes.len(), self.geom.record_size);
        let pos = id.pos().expect("record ids start at 1");
        let (page_index, in_page) = self.geom.split(pos);
        let geom = self.geom;
        let slot = self.tree.slot_mut(page_index);
        let page = slot.get_or_insert_with(|| PageRef::new(&geom, 1, false));
        let before = page.len();
        let s = page.ensure_slot(in_page);
        assert!(!page.is_live(in_page), "insert over a live record");
        page.slot_bytes_mut(s).copy_from_slice(bytes);
        page.set_live(in_page, true);
        self.stored += (page.len() - before) as u64;
        self.live += 1;
        self.end_pos = self.end_pos.max(pos + 1);
    }

    /// The live record `id`, mutably, after copying its page and path if they are shared.
    pub fn record_mut(&mut self, id: RecordId) -> Option<&mut [u8]> {
        let (page, pos) = self.locate(id)?;
        if !page.is_live(pos) {
            return None;
        }
        let page_index = self.geom.split(id.pos()?).0;
        let page = self.tree.slot_mut(page_index).as_mut().expect("located above");
        let len = page.len();
        let slot = page.make_mut(len).slot(pos).expect("live records have slots");
        Some(page.slot_bytes_mut(slot))
    }

    /// Soft-deletes the live record `id`; false when it is not live.
    pub fn delete(&mut self, id: RecordId) -> bool {
        if !self.is_live(id) {
            return false;
        }
        let (page_index, pos) = self.geom.split(id.pos().expect("live"));
        let page = self.tree.slot_mut(page_index).as_mut().expect("live");
        let len = page.len();
        page.make_mut(len).set_live(pos, false);
        self.live -= 1;
        true
    }

    /// Calls `f` for every page in position order, with the id of its first position.
    pub fn for_each_page<'a>(&'a self, f: &mut impl FnMut(u64, &'a PageRef)) {
        let shift = self.geom.shift;
        self.tree.for_each(&mut |index, page| f((index << shift) + 1, page));
    }

    /// Calls `f` for every live record in id order.
    pub fn for_each_live<'a>(&'a self, mut f: impl FnMut(RecordId, &'a [u8])) {
        self.for_each_page(&mut |first_id, page| {
            for (pos, slot) in page.live_slots() {
                f(RecordId(first_id + pos as u64), page.slot_bytes(slot));
            }
        });
    }

    /// The page index just past the last stored position.
    pub fn end_page(&self) -> u64 {
        if self.end_pos == 0 { 0 } else { self.geom.split(self.end_pos - 1).0 + 1 }
    }

    /// A copy without soft-deleted records; ids are kept.
    pub fn compacted(&self) -> TableData {
        let mut out = TableData { tree: PageTree::default(), stored: 0, ..self.clone() };
        self.tree.for_each(&mut |index, page| {
            if let Some(c) = page.compacted() {
                out.stored += c.len() as u64;
                *out.tree.slot_mut(index) = Some(c);
            }
        });
        out
    }

    /// A copy under a new schema: each live record is rewritten by `convert` (from its old
    /// bytes into zeroed new bytes); soft-deleted records are dropped; ids are kept.
    pub fn rewritten(
        &self,
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
            out.insert(id, &buf);
        });
        out.end_pos = out.end_pos.max(self.end_pos);
        out
    }

    /// Bytes held by this table's pages and tree nodes.
    pub fn memory_bytes(&self) -> usize {
        let mut bytes = self.tree.node_bytes();
        self.tree.for_each(&mut |_, page| bytes += page.alloc_bytes());
        bytes
    }
}
