//! Transactions: staged writes over a start snapshot, validated and published atomically.
//!
//! A transaction reads the snapshot it started from and keeps its writes in private copies of
//! the pages it touched (copy-on-write, so a page is copied once however often it is
//! written). Reads see the transaction's own writes. Nobody else sees anything until
//! [`Transaction::commit`], which:
//!
//! 1. takes the commit lock (one committer at a time);
//! 2. if other commits happened since the start, validates every record and table the
//!    transaction read against the latest snapshot: any change is a conflict, so read-write
//!    transactions are serializable;
//! 3. installs each written table: as is when no one else changed it, otherwise by replaying
//!    the transaction's changes (whole records or single fields) onto the latest version — an
//!    update of a record someone else deleted is a conflict, so no update is ever lost;
//! 4. checks the limits and publishes one new snapshot for all tables with one atomic store.
//!
//! Any error leaves no trace. Dropping a transaction without committing aborts it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::db::Shared;
use crate::error::{Error, Result};
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::schema::TableSchema;
use crate::storage::snapshot::{Snapshot, TableKey, TableRef};
use crate::storage::table_data::TableData;
use crate::table::{FieldHandle, Table};
use crate::types::FieldType;

pub(crate) mod commit;

/// Every field of a record: the dirty mask of a whole-record write.
pub(crate) const ALL_FIELDS: u64 = u64::MAX;

/// The dirty bit of field `index`; fields from 63 on share the last bit.
#[inline]
pub(crate) fn field_bit(index: usize) -> u64 {
    1u64 << index.min(63)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Insert,
    Update,
    Delete,
    /// Inserted and deleted again in the same transaction: nothing to apply.
    Cancelled,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Change {
    pub id: RecordId,
    pub kind: ChangeKind,
    /// For updates: which fields were written.
    pub dirty: u64,
}

/// Below this many changes to a table, a linear scan finds a record's change faster than a
/// hash map, and costs no allocation.
const INDEX_THRESHOLD: usize = 16;

/// The writes of one transaction to one table.
pub(crate) struct TableWrite {
    pub id: TableId,
    /// The table as of the transaction's start.
    pub base: Arc<TableData>,
    /// The table with this transaction's writes.
    pub data: TableData,
    pub changes: Vec<Change>,
    index: Option<HashMap<RecordId, u32>>,
}

impl TableWrite {
    fn find(&self, id: RecordId) -> Option<usize> {
        match &self.index {
            Some(map) => map.get(&id).map(|&i| i as usize),
            None => self.changes.iter().rposition(|c| c.id == id),
        }
    }

    fn record(&mut self, id: RecordId, kind: ChangeKind, dirty: u64) {
        if let Some(i) = self.find(id) {
            let c = &mut self.changes[i];
            c.kind = match (c.kind, kind) {
                (ChangeKind::Insert, ChangeKind::Update) => ChangeKind::Insert,
                (ChangeKind::Insert, ChangeKind::Delete) => ChangeKind::Cancelled,
                (_, k) => k,
            };
            c.dirty |= dirty;
            return;
        }
        self.changes.push(Change { id, kind, dirty });
        let n = self.changes.len();
        match &mut self.index {
            Some(map) => {
                map.insert(id, (n - 1) as u32);
            }
            None if n > INDEX_THRESHOLD => {
                self.index = Some(self.changes.iter().enumerate().map(|(i, c)| (c.id, i as u32)).collect());
            }
            None => {}
        }
    }

    /// True when the transaction's own writes fully determine the record's bytes, so reading
    /// it reads nothing of anyone else's.
    fn owns(&self, id: RecordId) -> bool {
        self.find(id).is_some_and(|i| {
            let c = self.changes[i];
            c.kind == ChangeKind::Insert || c.dirty == ALL_FIELDS
        })
    }
}

/// What a transaction read, to validate at commit.
#[derive(Default)]
pub(crate) struct ReadSet {
    pub points: Vec<(TableId, RecordId)>,
    /// Tables read as a whole (iterated, or too many point reads to track).
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
    pub(crate) shared: Arc<Shared>,
    pub(crate) start: Arc<Snapshot>,
    pub(crate) writes: Vec<TableWrite>,
    pub(crate) reads: RefCell<ReadSet>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("start", &self.start.seq)
            .field("tables_written", &self.writes.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.writes.iter().any(|w| !w.changes.is_empty()) {
            self.shared.stats.count_abort();
        }
    }
}

impl Transaction {
    pub(crate) fn new(shared: Arc<Shared>) -> Transaction {
        let start = shared.current.load_full();
        Transaction { shared, start, writes: Vec::new(), reads: RefCell::new(ReadSet::default()) }
    }

    /// The snapshot this transaction started from. Reads made directly on it are not tracked
    /// for validation and do not see this transaction's writes.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.start
    }

    /// True when the transaction has written something.
    pub fn has_writes(&self) -> bool {
        self.writes.iter().any(|w| !w.changes.is_empty())
    }

    fn base(&self, key: &(impl TableKey + ?Sized)) -> Result<&Arc<TableData>> {
        self.start.find(key)
    }

    fn write_index(&self, id: TableId) -> Option<usize> {
        self.writes.iter().position(|w| w.id == id)
    }

    fn write_for(&mut self, base: Arc<TableData>) -> &mut TableWrite {
        let i = match self.write_index(base.id) {
            Some(i) => i,
            None => {
                self.writes.push(TableWrite {
                    id: base.id,
                    data: (*base).clone(),
                    base,
                    changes: Vec::new(),
                    index: None,
                });
                self.writes.len() - 1
            }
        };
        &mut self.writes[i]
    }

    /// The table as this transaction sees it.
    fn view_of<'a>(&'a self, base: &'a Arc<TableData>) -> &'a TableData {
        match self.write_index(base.id) {
            Some(i) => &self.writes[i].data,
            None => base,
        }
    }

    fn track_read(&self, table: TableId, id: RecordId) {
        if let Some(i) = self.write_index(table)
            && self.writes[i].owns(id)
        {
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

    fn check_record_limit(&self, data: &TableData) -> Result<()> {
        let limit = self.shared.config.max_records_per_table;
        if data.live >= limit {
            return Err(Error::LimitReached { what: "records per table", limit });
        }
        Ok(())
    }

    // ---- untyped operations ----

    /// Stages a new record and returns its id. The bytes must be a valid record of the table
    /// (size, field values, zero padding).
    pub fn create_record(&mut self, table: impl TableKey, bytes: &[u8]) -> Result<RecordId> {
        let base = self.base(&table)?.clone();
        Self::validate_record(&base.schema, bytes)?;
        self.insert_valid(base, bytes)
    }

    fn insert_valid(&mut self, base: Arc<TableData>, bytes: &[u8]) -> Result<RecordId> {
        self.check_record_limit(self.view_of(&base))?;
        let id = base.ids.allocate().ok_or(Error::LimitReached { what: "record ids", limit: u64::MAX })?;
        let w = self.write_for(base);
        w.data.insert(id, bytes);
        w.record(id, ChangeKind::Insert, ALL_FIELDS);
        Ok(id)
    }

    /// The bytes of a live record, as this transaction sees it.
    pub fn read_record(&self, table: impl TableKey, id: RecordId) -> Result<&[u8]> {
        let base = self.base(&table)?;
        self.track_read(base.id, id);
        let data = self.view_of(base);
        data.get(id).ok_or_else(|| Self::not_found(data, id))
    }

    /// Replaces a whole record. The bytes must be a valid record of the table.
    pub fn update_record(&mut self, table: impl TableKey, id: RecordId, bytes: &[u8]) -> Result<()> {
        let base = self.base(&table)?.clone();
        Self::validate_record(&base.schema, bytes)?;
        self.write_range(base, id, 0, bytes, ALL_FIELDS)
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
        let base = self.base(&table)?.clone();
        let index =
            base.schema.field_index(field).ok_or_else(|| crate::schema::SchemaError::UnknownField {
                table: base.name().to_owned(),
                field: field.to_owned(),
            })?;
        let f = &base.schema.fields[index];
        base.schema.validate_field(f, bytes)?;
        let offset = f.offset;
        self.write_range(base, id, offset, bytes, field_bit(index))
    }

    fn write_range(
        &mut self,
        base: Arc<TableData>,
        id: RecordId,
        offset: usize,
        bytes: &[u8],
        dirty: u64,
    ) -> Result<()> {
        let w = self.write_for(base);
        let Some(record) = w.data.record_mut(id) else {
            return Err(Self::not_found(&w.data, id));
        };
        record[offset..offset + bytes.len()].copy_from_slice(bytes);
        w.record(id, ChangeKind::Update, dirty);
        Ok(())
    }

    /// Soft-deletes a live record.
    pub fn delete_record(&mut self, table: impl TableKey, id: RecordId) -> Result<()> {
        let base = self.base(&table)?.clone();
        let w = self.write_for(base);
        if !w.data.delete(id) {
            return Err(Self::not_found(&w.data, id));
        }
        w.record(id, ChangeKind::Delete, 0);
        Ok(())
    }

    /// Live records of a table, as this transaction sees it.
    pub fn len(&self, table: impl TableKey) -> Result<u64> {
        let base = self.base(&table)?;
        self.track_scan(base.id);
        Ok(self.view_of(base).live)
    }

    /// Calls `f` with every live record of the table (as this transaction sees it), in id
    /// order. The table counts as read as a whole.
    pub fn for_each_record(&self, table: impl TableKey, mut f: impl FnMut(RecordId, &[u8])) -> Result<()> {
        let base = self.base(&table)?;
        self.track_scan(base.id);
        self.view_of(base).for_each_live(|id, bytes| f(id, bytes));
        Ok(())
    }

    // ---- typed operations ----

    fn typed_base<T: Table>(&self, table: TableRef<T>) -> Result<Arc<TableData>> {
        Ok(self.start.find(&table)?.clone())
    }

    /// Stages a new record and returns its id.
    pub fn insert<T: Table>(&mut self, table: TableRef<T>, record: &T) -> Result<RecordId> {
        let base = self.typed_base(table)?;
        // A `T` made in Rust is valid by construction (its field types uphold their own
        // invariants), so only the layout check of `typed_base` is needed.
        self.insert_valid(base, record.as_bytes())
    }

    /// The live record `id`, as this transaction sees it.
    pub fn get<T: Table>(&self, table: TableRef<T>, id: RecordId) -> Result<Option<&T>> {
        let base = self.start.find(&table)?;
        self.track_read(base.id, id);
        Ok(self.view_of(base).get(id).map(|b| {
            // SAFETY: `find` checked the table's fingerprint against `T`; records are aligned
            // and valid (see `cast_record`).
            unsafe { crate::storage::iter::cast_record::<T>(b) }
        }))
    }

    /// Replaces a whole record.
    pub fn update<T: Table>(&mut self, table: TableRef<T>, id: RecordId, record: &T) -> Result<()> {
        let base = self.typed_base(table)?;
        self.write_range(base, id, 0, record.as_bytes(), ALL_FIELDS)
    }

    /// Sets one field of a record.
    pub fn set<T: Table, F: FieldType>(
        &mut self,
        table: TableRef<T>,
        id: RecordId,
        field: FieldHandle<T, F>,
        value: F,
    ) -> Result<()> {
        let base = self.typed_base(table)?;
        self.write_range(
            base,
            id,
            field.offset(),
            FieldHandle::<T, F>::value_bytes(&value),
            field_bit(field.index()),
        )
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
        let base = self.typed_base(table)?;
        let w = self.write_for(base);
        if !w.data.delete(id) {
            return Err(Self::not_found(&w.data, id));
        }
        w.record(id, ChangeKind::Delete, 0);
        Ok(())
    }

    /// The live records of a typed table as this transaction sees it, in id order. The table
    /// counts as read as a whole.
    pub fn iter<T: Table>(&self, table: TableRef<T>) -> Result<crate::storage::Iter<'_, T>> {
        let base = self.start.find(&table)?;
        self.track_scan(base.id);
        // SAFETY: `find` checked the table's fingerprint against `T`; the transaction's copy
        // has the same schema.
        Ok(unsafe { crate::storage::Iter::new(self.view_of(base)) })
    }

    /// Aborts the transaction: nothing it staged is kept. Same as dropping it.
    pub fn abort(self) {}

    /// Validates and publishes the transaction. See the [module documentation](self).
    pub fn commit(self) -> Result<CommitInfo> {
        commit::commit(self)
    }
}
