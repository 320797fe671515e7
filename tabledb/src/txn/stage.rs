//! The staging area of a transaction: its writes to one table, kept apart from the shared
//! pages until commit.

use std::cell::{Cell, UnsafeCell};
use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{RecordId, TableId};
use crate::storage::page::PageSlot;
use crate::storage::table_data::TableData;
use crate::storage::tree::{LEAF_FANOUT, LeafDraft, ReplacedBlocks};

/// Every field of a record: the dirty mask of a whole-record write.
pub(crate) const ALL_FIELDS: u64 = u64::MAX;

/// The dirty bit of field `index`; fields from 63 on share the last bit.
#[inline]
pub(crate) fn field_bit(index: usize) -> u64 {
    1u64 << index.min(63)
}

/// A hasher for record ids: one multiplication, which spreads sequential ids over the high
/// bits that hash tables use.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<RecordId, V, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    /// A new record; its bytes are staged.
    Insert,
    /// An existing record, changed; the staged bytes are the whole record as the transaction
    /// sees it, `dirty` says which fields it wrote.
    Update,
    /// An existing record, deleted.
    Delete,
    /// Inserted and deleted again in the same transaction: nothing to apply.
    Cancelled,
}

#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub id: RecordId,
    pub kind: ChangeKind,
    pub dirty: u64,
    /// The staged bytes, for inserts and updates.
    pub slot: u32,
    /// For updates: whether the fields the transaction did not write have been filled in from
    /// the start snapshot. Until a read needs them they are not, so a blind write of one field
    /// never touches the record's page.
    materialized: Cell<bool>,
}

/// A 64-byte aligned unit of staging memory, so staged records are aligned as in pages.
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Below this many changes, a linear scan finds a record's change faster than a hash map and
/// costs no allocation.
const INDEX_THRESHOLD: usize = 16;

/// The writes of one transaction to one table.
pub(crate) struct TableStage {
    pub id: TableId,
    /// The table in the transaction's start snapshot.
    pub base: Arc<TableData>,
    pub changes: Vec<Change>,
    index: Option<IdMap<u32>>,
    /// Staged record bytes. Grown only through `&mut self`; under `&self`, only slots that no
    /// reference has been handed out for are written (see `materialize`), which the
    /// `UnsafeCell` permits.
    arena: Vec<UnsafeCell<Line>>,
    slots: u32,
    /// Net records added: inserts minus deletes.
    pub net_live: i64,
    /// Pages rewritten as a whole by parallel updates, in drafts of their leaves: private
    /// blocks owned by this stage (freed on abort, installed at commit). Record-level changes
    /// apply on top of them.
    pub replaced: PageMap,
    /// After commit: the replaced pages that were installed (for the log), by leaf: the index
    /// of the leaf's first page, and bit `i` set for its entry `i`.
    pub installed: Vec<(u64, u16)>,
    /// New ids numbered from the base table's `next_id` (by a deterministic transaction):
    /// they are `base.next_id..base.next_id + ids_taken`.
    pub ids_taken: u64,
}

/// Pages replaced whole, as drafts of the tree leaves that hold them (see [`LeafDraft`]),
/// in page order: whole-table updates build them in order in one go and commit installs
/// each with one pointer swap.
#[derive(Default)]
pub struct PageMap {
    leaves: Vec<LeafDraft>,
    /// When one parallel update made every draft from the published leaves, the blocks of
    /// the pages they replaced, which commit retires without reading those leaves again (see
    /// [`PageTree::put_drafts`](crate::storage::tree::PageTree::put_drafts)); `None` once
    /// updates are stacked.
    replaced_blocks: Option<ReplacedBlocks>,
}

impl PageMap {
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The draft of the leaf holding page `index`.
    pub fn leaf(&self, index: u64) -> Option<&LeafDraft> {
        let at = self.leaves.partition_point(|d| d.first_page() + LEAF_FANOUT as u64 <= index);
        self.leaves.get(at).filter(|d| d.first_page() <= index)
    }

    /// The page at `index`, if it was replaced.
    pub fn get(&self, index: &u64) -> Option<&PageSlot> {
        self.leaf(*index)?.page(*index)
    }

    /// The replaced pages with their indices, in order.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &PageSlot)> + '_ {
        self.leaves.iter().flat_map(LeafDraft::pages)
    }

    /// Each draft's leaf (the index of its first page) with the entries it replaced (bit `i`:
    /// entry `i`).
    pub fn keys(&self) -> impl Iterator<Item = (u64, u16)> + '_ {
        self.leaves.iter().map(|d| (d.first_page(), d.replaced_mask()))
    }

    /// Adds drafts in page order, each made from this map's draft of its leaf if there was
    /// one (which it takes over). `replaced` lists the blocks of the pages they replaced, when
    /// they were made from the published leaves.
    pub fn merge(&mut self, drafts: Vec<LeafDraft>, replaced: Option<ReplacedBlocks>) {
        debug_assert!(drafts.windows(2).all(|w| w[0].first_page() < w[1].first_page()));
        if self.leaves.is_empty() {
            self.leaves = drafts;
            self.replaced_blocks = replaced;
            return;
        }
        // Drafts made over earlier ones take over pages of those: the list no longer holds.
        self.replaced_blocks = None;
        let old = std::mem::take(&mut self.leaves);
        let mut merged = Vec::with_capacity(old.len() + drafts.len());
        let mut old = old.into_iter().peekable();
        for mut draft in drafts {
            while let Some(o) = old.next_if(|o| o.first_page() < draft.first_page()) {
                merged.push(o);
            }
            if let Some(earlier) = old.next_if(|o| o.first_page() == draft.first_page()) {
                draft.absorb(earlier);
            }
            merged.push(draft);
        }
        merged.extend(old);
        self.leaves = merged;
    }

    /// The drafts, for commit to install, with the blocks of the pages they replaced when
    /// listed.
    pub fn into_drafts(self) -> (Vec<LeafDraft>, Option<ReplacedBlocks>) {
        (self.leaves, self.replaced_blocks)
    }
}

impl TableStage {
    pub fn new(base: Arc<TableData>) -> TableStage {
        TableStage {
            id: base.id,
            base,
            changes: Vec::new(),
            index: None,
            arena: Vec::new(),
            slots: 0,
            net_live: 0,
            replaced: PageMap::default(),
            installed: Vec::new(),
            ids_taken: 0,
        }
    }

    /// The record before this transaction's record-level changes: from a page it replaced,
    /// or from the start snapshot.
    #[inline]
    pub fn current(&self, id: RecordId) -> Option<&[u8]> {
        if !self.replaced.is_empty()
            && let Some(pos) = id.pos()
        {
            let (index, in_page) = self.base.geom.split(pos);
            if let Some(page) = self.replaced.get(&index) {
                return page.get(in_page, self.base.geom.record_size);
            }
        }
        self.base.get(id)
    }

    fn record_size(&self) -> usize {
        self.base.geom.record_size
    }

    pub fn find(&self, id: RecordId) -> Option<&Change> {
        let i = match &self.index {
            Some(map) => *map.get(&id)? as usize,
            None => self.changes.iter().rposition(|c| c.id == id)?,
        };
        Some(&self.changes[i])
    }

    fn find_index(&self, id: RecordId) -> Option<usize> {
        match &self.index {
            Some(map) => map.get(&id).map(|&i| i as usize),
            None => self.changes.iter().rposition(|c| c.id == id),
        }
    }

    fn push(&mut self, change: Change) -> usize {
        let id = change.id;
        self.changes.push(change);
        let n = self.changes.len();
        match &mut self.index {
            Some(map) => {
                map.insert(id, (n - 1) as u32);
            }
            None if n > INDEX_THRESHOLD => {
                let mut map = IdMap::with_capacity_and_hasher(n * 2, Default::default());
                map.extend(self.changes.iter().enumerate().map(|(i, c)| (c.id, i as u32)));
                self.index = Some(map);
            }
            None => {}
        }
        n - 1
    }

    fn new_slot(&mut self) -> u32 {
        let rs = self.record_size();
        let slot = self.slots;
        self.slots += 1;
        let lines = (self.slots as usize * rs).div_ceil(64);
        if lines > self.arena.len() {
            let grown = lines.max(self.arena.len() * 2);
            self.arena.resize_with(grown, || UnsafeCell::new(Line([0; 64])));
        }
        slot
    }

    /// The staged bytes of slot `slot`, exactly as staged (for updates not materialized, only
    /// the dirty fields are meaningful).
    pub fn slot_bytes(&self, slot: u32) -> &[u8] {
        let rs = self.record_size();
        let start = slot as usize * rs;
        &bytes_of(&self.arena)[start..start + rs]
    }

    fn slot_bytes_mut(&mut self, slot: u32) -> &mut [u8] {
        let rs = self.record_size();
        let start = slot as usize * rs;
        &mut bytes_of_mut(&mut self.arena)[start..start + rs]
    }

    /// Fills in the fields of an update that the transaction did not write, from the start
    /// snapshot, so the staged bytes are the whole record as the transaction sees it.
    fn materialize(&self, c: &Change) {
        if c.kind != ChangeKind::Update || c.materialized.get() {
            return;
        }
        let base = self.current(c.id).expect("updates are staged for records live in the base");
        let rs = self.record_size();
        let start = c.slot as usize * rs;
        assert!((start + rs).div_ceil(64) <= self.arena.len());
        // SAFETY: the bytes lie inside `UnsafeCell`s of the arena (bounds asserted), which
        // permit writes through a shared borrow. No reference to this slot's bytes exists: the
        // slot is not materialized, `lookup` materializes before it hands one out, and writes
        // go through `&mut self`. The arena is not reallocated under `&self`, and a
        // transaction is not shared between threads (`Transaction` is `!Sync`).
        let slot = unsafe {
            let base = UnsafeCell::raw_get(self.arena.as_ptr()).cast::<u8>();
            std::slice::from_raw_parts_mut(base.add(start), rs)
        };
        for (i, f) in self.base.schema.fields.iter().enumerate() {
            if c.dirty & field_bit(i) == 0 {
                slot[f.range()].copy_from_slice(&base[f.range()]);
            }
        }
        c.materialized.set(true);
    }

    /// The record as the transaction sees it: `Some(Some(bytes))` when staged and live,
    /// `Some(None)` when staged as deleted, `None` when not staged.
    pub fn lookup(&self, id: RecordId) -> Option<Option<&[u8]>> {
        let c = self.find(id)?;
        Some(match c.kind {
            ChangeKind::Insert | ChangeKind::Update => {
                self.materialize(c);
                Some(self.slot_bytes(c.slot))
            }
            ChangeKind::Delete | ChangeKind::Cancelled => None,
        })
    }

    /// True when the transaction's own writes fully determine the record, so reading it reads
    /// nothing of anyone else's.
    pub fn owns(&self, id: RecordId) -> bool {
        self.find(id).is_some_and(|c| c.kind == ChangeKind::Insert || c.dirty == ALL_FIELDS)
    }

    pub fn insert(&mut self, id: RecordId, bytes: &[u8]) {
        let slot = self.new_slot();
        self.slot_bytes_mut(slot).copy_from_slice(bytes);
        self.push(Change {
            id,
            kind: ChangeKind::Insert,
            dirty: ALL_FIELDS,
            slot,
            materialized: Cell::new(true),
        });
        self.net_live += 1;
    }

    /// Writes `bytes` at `offset` of record `id`, marking `dirty` fields written; false when
    /// the record is not live in the transaction's view.
    pub fn write(&mut self, id: RecordId, offset: usize, bytes: &[u8], dirty: u64) -> bool {
        // Fields from 63 on share one dirty bit, so a write to one of them cannot say which
        // it wrote: such records are materialized first, and then every field of the shared
        // bit carries the transaction's view.
        let shared_bit = dirty != ALL_FIELDS && dirty & field_bit(63) != 0;
        let slot = match self.find_index(id) {
            Some(i) => {
                if !matches!(self.changes[i].kind, ChangeKind::Insert | ChangeKind::Update) {
                    return false;
                }
                if shared_bit {
                    self.materialize(&self.changes[i]);
                }
                let c = &mut self.changes[i];
                c.dirty |= dirty;
                c.slot
            }
            None => {
                if self.current(id).is_none() {
                    return false;
                }
                let slot = self.new_slot();
                let mut change = Change {
                    id,
                    kind: ChangeKind::Update,
                    // With the shared bit, nothing is marked written until the record is
                    // materialized: marking first would skip every field of the shared bit,
                    // leaving them zero instead of their values.
                    dirty: if shared_bit { 0 } else { dirty },
                    slot,
                    materialized: Cell::new(dirty == ALL_FIELDS),
                };
                if shared_bit {
                    self.materialize(&change);
                    change.dirty = dirty;
                }
                self.push(change);
                slot
            }
        };
        self.slot_bytes_mut(slot)[offset..offset + bytes.len()].copy_from_slice(bytes);
        true
    }

    /// Deletes record `id`; false when it is not live in the transaction's view.
    pub fn delete(&mut self, id: RecordId) -> bool {
        match self.find_index(id) {
            Some(i) => {
                let c = &mut self.changes[i];
                c.kind = match c.kind {
                    ChangeKind::Insert => ChangeKind::Cancelled,
                    ChangeKind::Update => ChangeKind::Delete,
                    ChangeKind::Delete | ChangeKind::Cancelled => return false,
                };
            }
            None => {
                if self.current(id).is_none() {
                    return false;
                }
                self.push(Change {
                    id,
                    kind: ChangeKind::Delete,
                    dirty: 0,
                    slot: u32::MAX,
                    materialized: Cell::new(true),
                });
            }
        }
        self.net_live -= 1;
        true
    }

    /// Live records in the transaction's view.
    pub fn live(&self) -> u64 {
        (self.base.live as i64 + self.net_live) as u64
    }

    /// Calls `f` with every live record of the transaction's view, in id order.
    pub fn for_each_live<'a>(&'a self, mut f: impl FnMut(RecordId, &'a [u8])) {
        let rs = self.base.geom.record_size;
        let shift = self.base.geom.shift;
        self.base.tree.for_each(&mut |index, base_page| {
            let page = self.replaced.get(&index).unwrap_or(base_page);
            let first = (index << shift) + 1;
            for (pos, slot) in page.live_slots() {
                let id = RecordId(first + pos as u64);
                match self.lookup(id) {
                    Some(Some(staged)) => f(id, staged),
                    Some(None) => {}
                    None => f(id, page.slot_bytes(slot, rs)),
                }
            }
        });
        // Ids handed out after the start snapshot are above every id in it.
        let mut inserted: Vec<&Change> =
            self.changes.iter().filter(|c| c.kind == ChangeKind::Insert).collect();
        inserted.sort_unstable_by_key(|c| c.id);
        for c in inserted {
            f(c.id, self.slot_bytes(c.slot));
        }
    }
}

fn bytes_of(lines: &[UnsafeCell<Line>]) -> &[u8] {
    // SAFETY: `UnsafeCell<Line>` has the layout of `Line`, 64 plain bytes without padding, so
    // the slice is a byte slice of 64 times its length. Nothing writes these bytes while the
    // borrow lasts (see `TableStage::arena`).
    unsafe { std::slice::from_raw_parts(UnsafeCell::raw_get(lines.as_ptr()).cast::<u8>(), lines.len() * 64) }
}

fn bytes_of_mut(lines: &mut [UnsafeCell<Line>]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`, with the exclusive borrow carried over.
    unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64) }
}

impl TableStage {
    /// Every staged insert and update: its id and staged bytes, mutably (for parallel
    /// updates, which apply their function to staged records too). Materializes first.
    pub fn staged_records_mut(&mut self) -> Vec<(RecordId, u32)> {
        for c in &self.changes {
            self.materialize(c);
        }
        let mut out = Vec::new();
        for c in &mut self.changes {
            if matches!(c.kind, ChangeKind::Insert | ChangeKind::Update) {
                c.dirty = ALL_FIELDS;
                out.push((c.id, c.slot));
            }
        }
        out
    }

    /// The staged bytes of a slot, mutably.
    pub fn staged_bytes_mut(&mut self, slot: u32) -> &mut [u8] {
        self.slot_bytes_mut(slot)
    }
}
