//! Transactions: staged writes over a start snapshot, validated and published atomically.
//!
//! A transaction reads the snapshot it started from and keeps its writes in a staging area
//! per table (whole records, with a mask of the fields it wrote). Reads see the transaction's
//! own writes. Nobody else sees anything until [`Transaction::commit`], which:
//!
//! 1. takes the commit lock (one committer at a time);
//! 2. if other commits happened since the start, validates every record and table the
//!    transaction read against the latest snapshot: any change is a conflict, so read-write
//!    transactions are serializable;
//! 3. checks that every record it updates or deletes still exists (an update of a record
//!    someone else deleted is a conflict, so no update is ever lost) and that the limits hold;
//! 4. applies the staged writes to the latest version of each table (only the fields each
//!    update wrote, so concurrent writes to other fields of a record survive), copying each
//!    touched page once, and publishes one new snapshot for all tables with one atomic store.
//!
//! Any error leaves no trace. Dropping a transaction without committing aborts it.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::db::Shared;
use crate::error::{Error, Result};
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::schema::{SchemaError, TableSchema};
use rayon::prelude::*;

use crate::storage::block;
use crate::storage::iter::cast_record;
use crate::storage::page::{Geometry, PageSlot};
use crate::storage::snapshot::{Snapshot, TableKey, TableRef};
use crate::storage::table_data::{TableData, prefetch};
use crate::storage::tree::{DraftBuilder, LEAF_FANOUT, LeafDraft, LeafView, ReplacedBlocks};
use crate::table::{FieldHandle, Table};
use crate::types::FieldType;
use stage::PageMap;

/// Tree leaves (of 16 pages each) one task of [`Transaction::par_update`] copies in a row: as
/// many as give each thread of the pool this many tasks (to balance the load), within bounds.
/// Longer runs pay the start of the copy pipeline less often.
const PAR_UPDATE_TASKS_PER_THREAD: usize = 8;
const PAR_UPDATE_LEAVES_MIN: usize = 4;
const PAR_UPDATE_LEAVES_MAX: usize = 64;

/// What [`copy_run`] makes: drafts of leaves and, when they were made from the published
/// leaves, the blocks of the pages they replaced (a part of [`ReplacedBlocks`]).
type Drafted = (Vec<LeafDraft>, Option<Vec<(usize, usize)>>);

/// Private copies of the pages of some whole leaves that `apply`, run on each live record,
/// changes, as drafts of those leaves: the commit then swaps in each leaf whole instead of
/// putting its pages one by one. `earlier` holds the drafts of earlier parallel updates in the
/// same transaction, whose pages this one starts from. `next` are the leaves after the run's
/// (another task's), whose entries are fetched ahead as the run nears its end.
///
/// Pages are scattered blocks, so the run is software-pipelined: the page [`COPY_AHEAD`]
/// steps ahead is fetched while the current one is worked on, and the entries of the leaf
/// [`LEAF_AHEAD`] leaves ahead. Each page is copied into a buffer that stays in the cache
/// (with [`block::copy_for_reading`], as `apply` reads it next), changed there and compared
/// with the original; only a changed page gets a new block, written with streaming stores (it
/// is not read again soon, so it need not be fetched first).
///
/// A changed full page takes its block from `claimed` (see [`Claimed`]), where entry
/// `k * LEAF_FANOUT + i` is set aside for entry `i` of leaf `k` of the run; past those, from
/// batches of its own that double while pages keep changing, so a run that changes few pages
/// takes few blocks.
fn copy_run<'a>(
    leaves: &[LeafView<'a>],
    next: &[LeafView<'_>],
    earlier: &'a PageMap,
    geom: Geometry,
    claimed: &mut [usize],
    apply: &(impl Fn(RecordId, &mut [u8]) + Sync),
) -> Drafted {
    let rs = geom.record_size;
    const COPY_AHEAD: usize = 4;
    const LEAF_AHEAD: usize = 2;
    const RESERVE_FIRST: usize = 16;
    // The transaction's view of each leaf: an earlier update's draft of it, or the leaf.
    let views: Vec<&[PageSlot; LEAF_FANOUT]> = leaves
        .iter()
        .map(|leaf| earlier.leaf(leaf.first_page).map_or(leaf.slots, LeafDraft::slots))
        .collect();
    for leaf in leaves.iter().chain(next).take(LEAF_AHEAD) {
        leaf.prefetch_entries();
    }
    // The pages that exist, in order, with the position of their leaf in `leaves`. Read as
    // the run goes, so that each leaf's entries are fetched ahead of their first use.
    let pages = views.iter().enumerate().flat_map(|(k, slots)| {
        (leaves[k].first_page..)
            .zip(slots.iter())
            .filter(|(_, page)| page.exists())
            .map(move |(i, p)| (i, p, k))
    });
    let mut ahead = pages.clone();
    for (_, page, _) in ahead.by_ref().take(COPY_AHEAD) {
        prefetch(page.data(rs));
    }
    /// A line of the work buffer, aligned like a block so records in it are aligned.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u8; 64]);
    // A page holds at most this many bytes: changed pages of this size (every full page)
    // take claimed blocks, or blocks from a batch.
    let full = geom.ids_per_page() * rs;
    let mut lines = vec![Line([0; 64]); full.div_ceil(64)];
    // SAFETY: `lines` is `full.div_ceil(64) * 64 >= full` initialized bytes, borrowed
    // exclusively by the slice for as long as it lives.
    let buf = unsafe { std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), full) };
    // No more pages than the leaves have entries.
    let most_pages = leaves.len() * LEAF_FANOUT;
    let mut placer = Placer {
        draft: None,
        out: Vec::with_capacity(leaves.len()),
        reserved: Reserved { blocks: Vec::new(), used: 0, size: full },
        count: Count { blocks: 0, bytes: 0 },
        rs,
        // Drafts made from the published leaves (no earlier update drafted any) list the
        // blocks of the pages they replace.
        listed: earlier.is_empty().then(|| Vec::with_capacity(most_pages)),
    };
    let mut last_leaf = 0;
    for (k, (index, page, leaf)) in pages.enumerate() {
        if let Some((_, page, _)) = ahead.next() {
            prefetch(page.data(rs));
        }
        if leaf != last_leaf || k == 0 {
            last_leaf = leaf;
            if let Some(far) = leaves[leaf + 1..].iter().chain(next).nth(LEAF_AHEAD - 1) {
                far.prefetch_entries();
            }
        }
        let src = page.data(rs);
        let data = &mut buf[..src.len()];
        block::copy_for_reading(data, src);
        let first = (index << geom.shift) + 1;
        if page.is_dense_all_live() {
            for (pos, record) in data.chunks_exact_mut(rs).enumerate() {
                apply(RecordId(first + pos as u64), record);
            }
        } else {
            for (pos, slot) in page.live_slots() {
                apply(RecordId(first + pos as u64), &mut data[slot * rs..(slot + 1) * rs]);
            }
        }
        if data != src {
            let block = if data.len() == full {
                let entry = leaf * LEAF_FANOUT + (index - leaves[leaf].first_page) as usize;
                match claimed.get_mut(entry).map(std::mem::take).filter(|&b| b != 0) {
                    Some(block) => block as *mut u8,
                    None => {
                        let batch = (2 * placer.reserved.blocks.len()).max(RESERVE_FIRST).min(most_pages - k);
                        placer.reserved.take(batch)
                    }
                }
            } else {
                block::allocate_uncounted(data.len()).as_ptr()
            };
            let block = NonNull::new(block).expect("blocks are non-null");
            // SAFETY: the block is a new one of `data.len()` bytes, used for this copy only.
            unsafe { placer.place(leaves[leaf], views[leaf], index, page, data, block) };
        }
    }
    let mut out = std::mem::take(&mut placer.out);
    out.extend(placer.draft.take().map(DraftBuilder::finish));
    let listed = placer.listed.take();
    drop(placer);
    // The copies are handed to the committing thread.
    block::stream_fence();
    (out, listed)
}

/// Blocks of one size set aside for a parallel update of a whole table, one for each entry of
/// each of its tree leaves, in page order: as many as the shared block cache holds, in address
/// order (or nearly, see [`Claimed::take`]). After an earlier whole-table update, those are the
/// blocks of the full pages of the version before the current one, which the reclaimer freed
/// last. So an update that changes every page writes each page where the same page lay two
/// versions ago, and the table keeps lying in memory in page order, as scans and the next
/// update read it fastest. Blocks taken in batches by tasks in turns would scatter the table a
/// little further with every update.
///
/// Entries are set aside without reading the leaves, so an entry whose page is not full (a
/// page a compaction made smaller, or none) holds a block no page takes: the full pages after
/// it lie one block further on than two versions ago, still in page order.
///
/// Pages that use theirs take them out (leave 0); the rest are given back to the cache in
/// order when this is dropped, also when the update panics.
struct Claimed {
    blocks: Vec<usize>,
    size: usize,
}

/// Set-aside blocks are sorted when more than one in this many is followed by a lower address.
const OUT_OF_ORDER_MAX: usize = 64;

impl Claimed {
    /// Blocks of `size` bytes for `pages` pages, one entry each.
    fn take(size: usize, pages: usize) -> Claimed {
        // Past those the cache holds, entries stay 0 (none set aside).
        let mut blocks = vec![0; pages];
        let got = block::take_cached_uncounted(size, &mut blocks);
        // Blocks the last whole-table update freed come in address order already, maybe after
        // a few that smaller commits freed since: those are left as they come (the pages lie
        // in page order but for a few). Blocks in another order (freed one by one from a whole
        // tree, say, which gives them in reverse) are put in address order, so that the pages
        // lie in memory in page order whatever order the blocks were freed in. Checking costs
        // one pass; sorting a nearly sorted list would cost as much as sorting any.
        let taken = &mut blocks[..got];
        let out_of_order = taken.windows(2).filter(|w| w[1] < w[0]).count();
        if out_of_order > taken.len() / OUT_OF_ORDER_MAX {
            taken.sort_unstable();
        }
        Claimed { blocks, size }
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let mut unused: Vec<usize> = self.blocks.iter().copied().filter(|&b| b != 0).collect();
        // SAFETY: the blocks left were taken for the update and never used; those used were
        // taken out.
        unsafe { block::give_back_in_order_uncounted(&mut unused, self.size) };
    }
}

/// Counts the blocks a run of [`copy_run`] made, once for the run, also when `apply` panics
/// (after the copies made so far are dropped and freed).
struct Count {
    blocks: usize,
    bytes: usize,
}

impl Drop for Count {
    fn drop(&mut self) {
        block::count_allocated(self.blocks, self.bytes);
    }
}

/// Blocks for changed full pages, taken a batch at a time (one lock for the batch, in the
/// order the cache hands them out); those left over are given back, also when `apply` panics.
struct Reserved {
    blocks: Vec<usize>,
    used: usize,
    size: usize,
}

impl Reserved {
    /// The next block of the batch, after taking `batch` more blocks if it is used up.
    fn take(&mut self, batch: usize) -> *mut u8 {
        if self.used == self.blocks.len() {
            // Every block taken so far is in a copy in a draft.
            self.blocks.clear();
            self.used = 0;
            block::allocate_many_uncounted(self.size, batch.max(1), &mut self.blocks);
        }
        self.used += 1;
        self.blocks[self.used - 1] as *mut u8
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        // SAFETY: the blocks from `used` on were allocated for this run and never used.
        unsafe { block::give_back_uncounted(&self.blocks[self.used..], self.size) };
    }
}

/// What a run of [`copy_run`] has made so far. Fields drop in order: the unfinished draft and
/// the finished ones free their copies before the unused blocks are given back and the rest
/// counted.
struct Placer<'a> {
    draft: Option<DraftBuilder<'a>>,
    out: Vec<LeafDraft>,
    reserved: Reserved,
    count: Count,
    rs: usize,
    /// The blocks of the pages the drafts replaced, in order, when listed (see
    /// [`ReplacedBlocks`]).
    listed: Option<Vec<(usize, usize)>>,
}

impl<'a> Placer<'a> {
    /// Puts a changed copy of `page` (entry `index` of the tree, in `leaf`, as the transaction
    /// sees it in `view`), holding `data`, in `block` in its leaf's draft.
    ///
    /// # Safety
    ///
    /// `block` must be an unused block of `data.len()` bytes from the block allocator; the
    /// copy owns it from here on.
    unsafe fn place(
        &mut self,
        leaf: LeafView<'a>,
        view: &[PageSlot; LEAF_FANOUT],
        index: u64,
        page: &PageSlot,
        data: &[u8],
        block: NonNull<u8>,
    ) {
        if self.draft.as_ref().is_some_and(|d| d.first_page() != leaf.first_page) {
            self.out.extend(self.draft.take().map(DraftBuilder::finish));
        }
        let rs = self.rs;
        let draft = self.draft.get_or_insert_with(|| DraftBuilder::new(leaf, view, rs));
        // SAFETY: per the caller, the block is a new one of `data.len()` bytes, used for this
        // copy only, which then owns it (a page that changed has records, so a block); the
        // draft takes the copy.
        let replaced =
            unsafe { draft.set((index - leaf.first_page) as usize, page.private_copy_into(block, data, rs)) };
        if let Some(listed) = &mut self.listed {
            listed.push(replaced);
        }
        self.count.blocks += 1;
        self.count.bytes += data.len();
    }
}

pub(crate) mod commit;
pub(crate) mod stage;

pub(crate) use stage::{ALL_FIELDS, ChangeKind, TableStage, field_bit};

/// What a transaction read, to validate at commit.
#[derive(Default)]
pub(crate) struct ReadSet {
    pub points: Vec<(TableId, RecordId)>,
    /// Tables read as a whole (iterated, counted, or too many point reads to track).
    pub scans: Vec<TableId>,
}

impl ReadSet {
    fn point(&mut self, table: TableId, id: RecordId, max: usize) {
        if self.scans.contains(&table) {
            return;
        }
        if self.points.len() >= max {
            // Too many to track one by one: track the tables instead.
            let mut tables: Vec<TableId> = self.points.iter().map(|p| p.0).collect();
            tables.push(table);
            tables.sort_unstable();
            tables.dedup();
            for t in tables {
                self.scan(t);
            }
            self.points.clear();
            return;
        }
        self.points.push((table, id));
    }

    fn scan(&mut self, table: TableId) {
        if !self.scans.contains(&table) {
            self.scans.push(table);
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// The sequence number of the published snapshot; for a transaction that wrote nothing,
    /// that of its start snapshot.
    pub seq: CommitSeq,
    /// True when the transaction wrote nothing, so nothing was published.
    pub read_only: bool,
}

/// A read-write transaction. See the [module documentation](self).
pub struct Transaction {
    // Field order is drop order: the stages borrow pages of the start snapshot, so they go
    // first.
    pub(crate) stages: Vec<TableStage>,
    pub(crate) reads: RefCell<ReadSet>,
    pub(crate) start: Arc<Snapshot>,
    pub(crate) shared: Arc<Shared>,
    /// New records are numbered from the start snapshot (see [`Database::begin_deterministic`]).
    ///
    /// [`Database::begin_deterministic`]: crate::Database::begin_deterministic
    pub(crate) deterministic: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("start", &self.start.seq)
            .field("tables_written", &self.stages.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.has_writes() {
            self.shared.stats.count_abort();
        }
    }
}

impl Transaction {
    pub(crate) fn new(shared: Arc<Shared>) -> Transaction {
        let start = shared.current.load_full();
        Transaction {
            stages: Vec::new(),
            reads: RefCell::new(ReadSet::default()),
            start,
            shared,
            deterministic: false,
        }
    }

    /// Whether new records are numbered from the start snapshot.
    pub fn is_deterministic(&self) -> bool {
        self.deterministic
    }

    /// The snapshot this transaction started from. Reads made directly on it are not tracked
    /// for validation and do not see this transaction's writes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.start
    }

    /// True when the transaction has written something.
    pub fn has_writes(&self) -> bool {
        self.stages.iter().any(|s| !s.changes.is_empty() || !s.replaced.is_empty())
    }

    fn stage_index(&self, id: TableId) -> Option<usize> {
        self.stages.iter().position(|s| s.id == id)
    }

    /// The stage of a table, made on the first write; `base` is the table in the start
    /// snapshot.
    fn stage_for(stages: &mut Vec<TableStage>, base: &Arc<TableData>) -> usize {
        match stages.iter().position(|s| s.id == base.id) {
            Some(i) => i,
            None => {
                stages.push(TableStage::new(base.clone()));
                stages.len() - 1
            }
        }
    }

    fn stage_of(&self, id: TableId) -> Option<&TableStage> {
        self.stage_index(id).map(|i| &self.stages[i])
    }

    fn track_read(&self, table: TableId, id: RecordId) {
        if self.stage_of(table).is_some_and(|s| s.owns(id)) {
            return;
        }
        self.reads.borrow_mut().point(table, id, self.shared.config.max_read_set);
    }

    /// Records that the transaction read a whole table, so any change to it is a conflict.
    pub(crate) fn track_scan(&self, table: TableId) {
        self.reads.borrow_mut().scan(table);
    }

    fn not_found(data: &TableData, id: RecordId) -> Error {
        Error::RecordNotFound { table: data.name().to_owned(), id }
    }

    fn validate_record(schema: &TableSchema, bytes: &[u8]) -> Result<()> {
        if bytes.len() != schema.record_size || !schema.any_bytes_valid() {
            schema.validate_record(bytes)?;
        }
        Ok(())
    }

    /// The live record `id` of `base`'s table as this transaction sees it (untracked).
    fn view_get<'a>(&'a self, base: &'a TableData, id: RecordId) -> Option<&'a [u8]> {
        match self.stage_of(base.id) {
            Some(stage) => match stage.lookup(id) {
                Some(staged) => staged,
                None => stage.current(id),
            },
            None => base.get(id),
        }
    }

    // ---- untyped operations ----

    /// Stages a new record and returns its id. The bytes must be a valid record of the table
    /// (size, field values, zero padding).
    pub fn create_record(&mut self, table: impl TableKey, bytes: &[u8]) -> Result<RecordId> {
        Self::validate_record(&self.start.find(&table)?.schema, bytes)?;
        self.insert_valid(&table, bytes)
    }

    fn insert_valid(&mut self, table: &(impl TableKey + ?Sized), bytes: &[u8]) -> Result<RecordId> {
        let base = self.start.find(table)?;
        let i = Self::stage_for(&mut self.stages, base);
        let stage = &mut self.stages[i];
        let limit = self.shared.config.max_records_per_table;
        if stage.live() >= limit {
            return Err(Error::LimitReached { what: "records per table", limit });
        }
        let exhausted = Error::LimitReached { what: "record ids", limit: u64::MAX };
        let id = if self.deterministic {
            let id =
                base.next_id.checked_add(stage.ids_taken).filter(|&id| id < u64::MAX).ok_or(exhausted)?;
            stage.ids_taken += 1;
            RecordId(id)
        } else {
            base.ids.allocate().ok_or(exhausted)?
        };
        stage.insert(id, bytes);
        Ok(id)
    }

    /// The bytes of a live record, as this transaction sees it.
    pub fn read_record(&self, table: impl TableKey, id: RecordId) -> Result<&[u8]> {
        let base = self.start.find(&table)?;
        self.track_read(base.id, id);
        self.view_get(base, id).ok_or_else(|| Self::not_found(base, id))
    }

    /// Replaces a whole record. The bytes must be a valid record of the table.
    pub fn update_record(&mut self, table: impl TableKey, id: RecordId, bytes: &[u8]) -> Result<()> {
        Self::validate_record(&self.start.find(&table)?.schema, bytes)?;
        self.write_range(&table, id, 0, bytes, ALL_FIELDS)
    }

    /// Replaces one field of a record, by field name. The bytes must be a valid value of the
    /// field's type.
    pub fn partial_update(
        &mut self,
        table: impl TableKey,
        id: RecordId,
        field: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let base = self.start.find(&table)?;
        let index = base.schema.field_index(field).ok_or_else(|| SchemaError::UnknownField {
            table: base.name().to_owned(),
            field: field.to_owned(),
        })?;
        let f = &base.schema.fields[index];
        base.schema.validate_field(f, bytes)?;
        let offset = f.offset;
        self.write_range(&table, id, offset, bytes, field_bit(index))
    }

    fn write_range(
        &mut self,
        table: &(impl TableKey + ?Sized),
        id: RecordId,
        offset: usize,
        bytes: &[u8],
        dirty: u64,
    ) -> Result<()> {
        let base = self.start.find(table)?;
        let i = Self::stage_for(&mut self.stages, base);
        if !self.stages[i].write(id, offset, bytes, dirty) {
            return Err(Self::not_found(&self.stages[i].base, id));
        }
        // Fields from 63 on share one dirty bit, so commit writes all of them back as this
        // transaction saw them; validating the record as read turns a concurrent change to one
        // of them into a conflict instead of a lost update.
        if dirty != ALL_FIELDS && dirty & field_bit(63) != 0 {
            self.track_read(base.id, id);
        }
        Ok(())
    }

    /// Soft-deletes a live record.
    pub fn delete_record(&mut self, table: impl TableKey, id: RecordId) -> Result<()> {
        let base = self.start.find(&table)?;
        let i = Self::stage_for(&mut self.stages, base);
        if !self.stages[i].delete(id) {
            return Err(Self::not_found(&self.stages[i].base, id));
        }
        Ok(())
    }

    /// Live records of a table, as this transaction sees it. The table counts as read as a
    /// whole.
    pub fn len(&self, table: impl TableKey) -> Result<u64> {
        let base = self.start.find(&table)?;
        self.track_scan(base.id);
        Ok(self.stage_of(base.id).map_or(base.live, TableStage::live))
    }

    /// Calls `f` with every live record of the table (as this transaction sees it), in id
    /// order. The table counts as read as a whole.
    pub fn for_each_record(&self, table: impl TableKey, mut f: impl FnMut(RecordId, &[u8])) -> Result<()> {
        let base = self.start.find(&table)?;
        self.track_scan(base.id);
        match self.stage_of(base.id) {
            Some(stage) => stage.for_each_live(&mut f),
            None => base.for_each_live(f),
        }
        Ok(())
    }

    // ---- typed operations ----

    /// Stages a new record and returns its id.
    pub fn insert<T: Table>(&mut self, table: TableRef<T>, record: &T) -> Result<RecordId> {
        // A `T` made in Rust is valid by construction (its field types uphold their own
        // invariants), so only the layout check of `find` is needed.
        self.insert_valid(&table, record.as_bytes())
    }

    /// The live record `id`, as this transaction sees it.
    pub fn get<T: Table>(&self, table: TableRef<T>, id: RecordId) -> Result<Option<&T>> {
        let base = self.start.find(&table)?;
        self.track_read(base.id, id);
        Ok(self.view_get(base, id).map(|b| {
            // SAFETY: `find` checked the table's fingerprint against `T`; staged and stored
            // records are 64-byte aligned at multiples of the record size, and valid.
            unsafe { cast_record::<T>(b) }
        }))
    }

    /// Replaces a whole record.
    pub fn update<T: Table>(&mut self, table: TableRef<T>, id: RecordId, record: &T) -> Result<()> {
        self.write_range(&table, id, 0, record.as_bytes(), ALL_FIELDS)
    }

    /// Sets one field of a record.
    pub fn set<T: Table, F: FieldType>(
        &mut self,
        table: TableRef<T>,
        id: RecordId,
        field: FieldHandle<T, F>,
        value: F,
    ) -> Result<()> {
        let bytes = FieldHandle::<T, F>::value_bytes(&value);
        self.write_range(&table, id, field.offset(), bytes, field_bit(field.index()))
    }

    /// Reads a record, lets `f` change a copy, and writes the whole record back. Returns what
    /// `f` returns.
    pub fn modify<T: Table, R>(
        &mut self,
        table: TableRef<T>,
        id: RecordId,
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R> {
        let mut record =
            *self.get(table, id)?.ok_or_else(|| Error::RecordNotFound { table: T::NAME.to_owned(), id })?;
        let out = f(&mut record);
        self.update(table, id, &record)?;
        Ok(out)
    }

    /// Soft-deletes a record.
    pub fn delete<T: Table>(&mut self, table: TableRef<T>, id: RecordId) -> Result<()> {
        self.delete_record(table, id)
    }

    /// Calls `f` with every live record of a typed table as this transaction sees it, in id
    /// order. The table counts as read as a whole.
    pub fn for_each<T: Table>(&self, table: TableRef<T>, mut f: impl FnMut(RecordId, &T)) -> Result<()> {
        self.for_each_record(table, |id, bytes| {
            // SAFETY: `for_each_record` resolved the table through the typed handle, which
            // checked its fingerprint against `T`.
            f(id, unsafe { cast_record::<T>(bytes) })
        })
    }

    /// Applies `f` to every live record of a typed table as this transaction sees it, in
    /// parallel on the Rayon pool, and returns how many records the table holds.
    ///
    /// Each worker copies the pages it is given and changes the copies; the copies are the
    /// transaction's (staged per worker, merged at commit, when they replace the originals).
    /// The table counts as read as a whole, so a concurrent commit to it makes this
    /// transaction conflict rather than lose either change.
    pub fn par_update<T: Table>(
        &mut self,
        table: TableRef<T>,
        f: impl Fn(RecordId, &mut T) + Sync + Send,
    ) -> Result<u64> {
        let base = self.start.find(&table)?.clone();
        self.track_scan(base.id);
        let i = Self::stage_for(&mut self.stages, &base);
        let apply = |id: RecordId, bytes: &mut [u8]| {
            debug_assert_eq!(bytes.len(), T::RECORD_SIZE);
            debug_assert_eq!(bytes.as_ptr() as usize % T::ALIGN, 0);
            // SAFETY: the table's fingerprint matches `T` (checked by `find`), so the bytes are
            // one record of `T`'s size, aligned (blocks and staging lines are 64-byte aligned,
            // records sit at multiples of the record size), and hold a valid `T`; the borrow
            // is exclusive.
            let record = unsafe { &mut *bytes.as_mut_ptr().cast::<T>() };
            f(id, record);
        };
        // Staged records are changed in place below. Those staged by partial updates get their
        // other fields from the pages first, before the copies made here replace the pages
        // (which would give them `f`'s changes twice).
        let staged = self.stages[i].staged_records_mut();
        let (drafts, replaced): (Vec<LeafDraft>, Option<ReplacedBlocks>) = {
            let earlier = &self.stages[i].replaced;
            // Each task takes a few whole leaves of the tree, copies the pages that change and
            // drafts the leaves that hold them.
            let leaves = base.tree.leaves();
            let per = (leaves.len() / (rayon::current_num_threads() * PAR_UPDATE_TASKS_PER_THREAD))
                .clamp(PAR_UPDATE_LEAVES_MIN, PAR_UPDATE_LEAVES_MAX);
            // Blocks for the full pages, set aside for each entry of each leaf in order.
            let mut claimed =
                Claimed::take(base.geom.ids_per_page() * base.geom.record_size, leaves.len() * LEAF_FANOUT);
            let runs: Vec<Drafted> = leaves
                .par_chunks(per)
                .zip(claimed.blocks.par_chunks_mut(per * LEAF_FANOUT))
                .enumerate()
                .map(|(c, (run, claimed))| {
                    let next = &leaves[((c + 1) * per).min(leaves.len())..];
                    copy_run(run, next, earlier, base.geom, claimed, &apply)
                })
                .collect();
            drop(claimed);
            let mut drafts = Vec::with_capacity(runs.iter().map(|r| r.0.len()).sum());
            let mut replaced = Some(Vec::with_capacity(runs.len()));
            for (mut run, listed) in runs {
                drafts.append(&mut run);
                match (&mut replaced, listed) {
                    (Some(all), Some(listed)) => all.push(listed),
                    _ => replaced = None,
                }
            }
            (drafts, replaced)
        };
        let stage = &mut self.stages[i];
        stage.replaced.merge(drafts, replaced);
        for (id, slot) in staged {
            apply(id, stage.staged_bytes_mut(slot));
        }
        Ok(stage.live())
    }

    /// Whether everything this transaction has read still holds in the latest snapshot, so
    /// that running it again now would see the same data. (A transaction that gave up on what
    /// it read uses this to tell whether the answer could have changed.)
    pub fn reads_are_current(&self) -> bool {
        let current = self.shared.current.load_full();
        current.seq == self.start.seq || commit::validate_reads(self, &current).is_ok()
    }

    /// Aborts the transaction: nothing it staged is kept. Same as dropping it.
    pub fn abort(self) {}

    /// Validates and publishes the transaction (see the [module documentation](self)), and
    /// for a database opened with [`Durability::Tick`](crate::persist::Durability::Tick)
    /// returns once the commit is durable (sharing one fsync with concurrent commits).
    pub fn commit(self) -> Result<CommitInfo> {
        commit::commit(self, true)
    }

    /// Validates and publishes the transaction without waiting for durability: the commit is
    /// in the log's buffer, durable after the next [`Database::sync`](crate::Database::sync)
    /// (which the runtime performs every tick).
    pub fn commit_no_wait(self) -> Result<CommitInfo> {
        commit::commit(self, false)
    }
}
