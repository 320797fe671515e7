//! Snapshots: one immutable, consistent view of every table of a database.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use rayon::iter::ParallelIterator;

use super::iter::{Iter, PageView, ParPages, RawIter, TypedPage, cast_record};
use super::page::Geometry;
use super::reclaim::Reclaimer;
use super::table_data::TableData;
use crate::Table;
use crate::error::{Error, Result};
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::schema::{Relation, RelationId, TableSchema};
use crate::types::TypeRegistry;

/// The database's schema: types, table names, relations. Changed only by DDL.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub types: TypeRegistry,
    pub names: BTreeMap<String, TableId>,
    pub relations: BTreeMap<RelationId, Relation>,
    pub next_table_id: u32,
    pub next_relation_id: u64,
}

/// An immutable view of the whole database as of one commit.
///
/// Taking a snapshot is one atomic load; reading from it takes no lock and allocates nothing.
/// A snapshot keeps the pages it sees alive, so hold it for a batch of reads, not forever.
pub struct Snapshot {
    pub(crate) seq: CommitSeq,
    pub(crate) catalog: Arc<Catalog>,
    /// Sorted by table id.
    pub(crate) tables: Arc<Vec<Arc<TableData>>>,
    /// Bytes of stored records over all tables, as the database byte limit counts them.
    pub(crate) stored_bytes: u64,
    /// Frees what this snapshot alone kept alive when it is dropped.
    pub(crate) reclaimer: Arc<Reclaimer>,
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.reclaimer.release(self.seq.0);
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.seq)
            .field("tables", &self.catalog.names)
            .finish_non_exhaustive()
    }
}

/// How a [`TableKey`] names a table.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    Name(&'a str),
    Id(TableId),
    Typed { id: TableId, fingerprint: u64, name: &'static str, type_name: &'static str },
}

/// Anything that names a table: its name, its id, or a typed handle.
pub trait TableKey {
    #[doc(hidden)]
    fn key(&self) -> KeyRef<'_>;
}

impl TableKey for str {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Name(self)
    }
}

impl TableKey for &str {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Name(self)
    }
}

impl TableKey for String {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Name(self)
    }
}

impl TableKey for TableId {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Id(*self)
    }
}

impl<T: Table> TableKey for TableRef<T> {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Typed {
            id: self.id,
            fingerprint: self.fingerprint,
            name: T::NAME,
            type_name: std::any::type_name::<T>(),
        }
    }
}

/// A typed handle to a table whose schema matches `T`; made by
/// [`Database::create_table`](crate::Database::create_table) or
/// [`Database::table`](crate::Database::table). Cheap to copy.
pub struct TableRef<T> {
    pub(crate) id: TableId,
    pub(crate) fingerprint: u64,
    pub(crate) _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TableRef<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TableRef<T> {}

impl<T> std::fmt::Debug for TableRef<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableRef<{}>({})", std::any::type_name::<T>(), self.id.0)
    }
}

impl<T> TableRef<T> {
    /// The table's id.
    pub fn id(&self) -> TableId {
        self.id
    }
}

impl Snapshot {
    /// The snapshot of an empty database, registered with `reclaimer`.
    pub(crate) fn empty(reclaimer: Arc<Reclaimer>) -> Snapshot {
        reclaimer.publish(0, Vec::new());
        Snapshot {
            seq: CommitSeq(0),
            catalog: Arc::new(Catalog::default()),
            tables: Arc::new(Vec::new()),
            stored_bytes: 0,
            reclaimer,
        }
    }

    /// The commit this snapshot shows.
    pub fn seq(&self) -> CommitSeq {
        self.seq
    }

    /// The types known to the database.
    pub fn types(&self) -> &TypeRegistry {
        &self.catalog.types
    }

    /// Relations between tables, by id.
    pub fn relations(&self) -> impl Iterator<Item = &Relation> {
        self.catalog.relations.values()
    }

    /// The relation with this id.
    pub fn relation(&self, id: RelationId) -> Option<&Relation> {
        self.catalog.relations.get(&id)
    }

    pub(crate) fn table_data(&self, id: TableId) -> Option<&Arc<TableData>> {
        let i = self.tables.binary_search_by_key(&id, |t| t.id).ok()?;
        Some(&self.tables[i])
    }

    pub(crate) fn find(&self, key: &(impl TableKey + ?Sized)) -> Result<&Arc<TableData>> {
        match key.key() {
            KeyRef::Name(name) => {
                let id = self.catalog.names.get(name).ok_or_else(|| Error::UnknownTable(name.to_owned()))?;
                self.table_data(*id).ok_or_else(|| Error::UnknownTable(name.to_owned()))
            }
            KeyRef::Id(id) => self.table_data(id).ok_or_else(|| Error::UnknownTable(format!("#{}", id.0))),
            KeyRef::Typed { id, fingerprint, name, type_name } => {
                let data = self.table_data(id).ok_or_else(|| Error::UnknownTable(name.to_owned()))?;
                if data.fingerprint != fingerprint {
                    return Err(Error::SchemaMismatch {
                        table: data.name().to_owned(),
                        type_name,
                        detail: "the table's schema changed after this handle was made".to_owned(),
                    });
                }
                Ok(data)
            }
        }
    }

    /// Table names, in order.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.catalog.names.keys().map(String::as_str)
    }

    /// The id of the named table.
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.catalog.names.get(name).copied()
    }

    /// The schema of a table.
    pub fn schema(&self, table: impl TableKey) -> Result<&Arc<TableSchema>> {
        Ok(&self.find(&table)?.schema)
    }

    /// Live records in a table.
    pub fn len(&self, table: impl TableKey) -> Result<u64> {
        Ok(self.find(&table)?.live)
    }

    /// The bytes of a live record.
    pub fn read_record(&self, table: impl TableKey, id: RecordId) -> Result<&[u8]> {
        let data = self.find(&table)?;
        data.get(id).ok_or_else(|| Error::RecordNotFound { table: data.name().to_owned(), id })
    }

    /// An untyped view of a table.
    pub fn raw_table(&self, table: impl TableKey) -> Result<RawTableView<'_>> {
        Ok(RawTableView { data: self.find(&table)? })
    }

    /// A typed view of a table: lookups by id and iteration without further checks.
    pub fn table<T: Table>(&self, table: TableRef<T>) -> Result<TableView<'_, T>> {
        Ok(TableView { data: self.find(&table)?, _t: PhantomData })
    }

    /// The typed handle of `T`'s table (found by `T`'s table name), after checking that its
    /// schema matches `T`.
    pub fn table_ref<T: Table>(&self) -> Result<TableRef<T>> {
        let data = self.find(T::NAME)?;
        if data.fingerprint != TableSchema::fingerprint_of::<T>() {
            return Err(Error::SchemaMismatch {
                table: T::NAME.to_owned(),
                type_name: std::any::type_name::<T>(),
                detail: "the stored table's fields differ from the type's".to_owned(),
            });
        }
        Ok(TableRef { id: data.id, fingerprint: data.fingerprint, _t: PhantomData })
    }

    /// The live record `id` of a typed table, borrowed from this snapshot. `None` when the
    /// record does not exist, or when the table was dropped or its schema changed so that it
    /// no longer matches `T` ([`table`](Self::table) tells which).
    #[inline]
    pub fn get<T: Table>(&self, table: TableRef<T>, id: RecordId) -> Option<&T> {
        let data = self.table_data(table.id)?;
        if data.fingerprint != table.fingerprint {
            return None;
        }
        let geom = const { Geometry::new(T::RECORD_SIZE) };
        // SAFETY: the fingerprint check shows the table's schema is `T`'s.
        data.get_in(id, geom).map(|b| unsafe { cast_record::<T>(b) })
    }

    /// A raw pointer to the live record `id`; see [`TableView::get_ptr`].
    pub fn get_ptr<T: Table>(&self, table: TableRef<T>, id: RecordId) -> Option<*const T> {
        self.get(table, id).map(|r| r as *const T)
    }

    /// Bytes the engine holds for all tables: pages and page-tree nodes.
    pub fn memory_bytes(&self) -> usize {
        self.tables.iter().map(|t| t.memory_bytes()).sum()
    }
}

/// An untyped view of one table in a snapshot.
#[derive(Clone, Copy)]
pub struct RawTableView<'a> {
    pub(crate) data: &'a TableData,
}

impl std::fmt::Debug for RawTableView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTableView")
            .field("table", &self.data.name())
            .field("live", &self.data.live)
            .finish()
    }
}

impl<'a> RawTableView<'a> {
    pub fn schema(&self) -> &'a TableSchema {
        &self.data.schema
    }

    pub fn id(&self) -> TableId {
        self.data.id
    }

    /// Live records.
    pub fn len(&self) -> u64 {
        self.data.live
    }

    pub fn is_empty(&self) -> bool {
        self.data.live == 0
    }

    /// The bytes of a live record.
    #[inline]
    pub fn get(&self, id: RecordId) -> Option<&'a [u8]> {
        self.data.get(id)
    }

    /// The live records in id order.
    pub fn iter(&self) -> RawIter<'a> {
        RawIter::new(self.data)
    }

    /// The pages, in parallel.
    pub fn par_pages(&self) -> ParPages<'a> {
        ParPages::new(self.data)
    }

    /// The live records, in parallel.
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (RecordId, &'a [u8])> + 'a {
        ParPages::new(self.data).flat_map_iter(|p: PageView<'a>| p.records())
    }

    /// The id the next created record will have, at the earliest: one past the highest id
    /// any commit up to this snapshot created (what a deterministic transaction begun on this
    /// snapshot gives its first new record).
    pub fn next_id(&self) -> RecordId {
        RecordId(self.data.next_id)
    }
}

/// A typed view of one table in a snapshot. Lookups and iteration borrow records from the
/// snapshot without copying.
pub struct TableView<'a, T> {
    pub(crate) data: &'a TableData,
    pub(crate) _t: PhantomData<&'a T>,
}

impl<T> Clone for TableView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TableView<'_, T> {}

impl<T> std::fmt::Debug for TableView<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableView").field("table", &self.data.name()).field("live", &self.data.live).finish()
    }
}

impl<'a, T: Table> TableView<'a, T> {
    /// Live records.
    pub fn len(&self) -> u64 {
        self.data.live
    }

    pub fn is_empty(&self) -> bool {
        self.data.live == 0
    }

    pub fn schema(&self) -> &'a TableSchema {
        &self.data.schema
    }

    /// The live record `id`.
    #[inline]
    pub fn get(&self, id: RecordId) -> Option<&'a T> {
        // The table matches `T`, so its geometry is `T`'s, known at compile time.
        let geom = const { Geometry::new(T::RECORD_SIZE) };
        // SAFETY: a TableView is only made after checking that the table matches `T`.
        self.data.get_in(id, geom).map(|b| unsafe { cast_record::<T>(b) })
    }

    /// Looks up many ids, in order, calling `f` with each id and its live record (or `None`).
    ///
    /// Faster than calling [`get`](Self::get) in a loop when the ids are scattered: it fetches
    /// the tree leaves and pages of later ids ahead of time, so the cache misses of several
    /// lookups overlap instead of following one another.
    pub fn get_many(&self, ids: &[RecordId], mut f: impl FnMut(RecordId, Option<&'a T>)) {
        // SAFETY: a TableView is only made after checking that the table matches `T`.
        self.data.get_many(ids, |id, bytes| f(id, bytes.map(|b| unsafe { cast_record::<T>(b) })));
    }

    /// A raw pointer to the live record `id`.
    ///
    /// The pointer is aligned and valid for reads of `T` for as long as the snapshot this view
    /// came from is alive (the snapshot keeps the page alive, and pages shared with a snapshot
    /// are never written). Dereferencing it after the snapshot is dropped is undefined
    /// behaviour; prefer [`get`](Self::get), whose borrow enforces this.
    #[inline]
    pub fn get_ptr(&self, id: RecordId) -> Option<*const T> {
        self.get(id).map(|r| r as *const T)
    }

    /// The live records in id order.
    pub fn iter(&self) -> Iter<'a, T> {
        // SAFETY: the view's table matches `T`.
        unsafe { Iter::new(self.data) }
    }

    /// The pages, in parallel (each 64-byte aligned).
    pub fn par_pages(&self) -> impl ParallelIterator<Item = TypedPage<'a, T>> + 'a {
        // SAFETY: the view's table matches `T`.
        ParPages::new(self.data).map(|p| unsafe { TypedPage::new(p) })
    }

    /// The live records, in parallel.
    pub fn par_iter(&self) -> impl ParallelIterator<Item = (RecordId, &'a T)> + 'a {
        // SAFETY: the view's table matches `T`.
        ParPages::new(self.data).flat_map_iter(|p| unsafe { TypedPage::<T>::new(p) }.records())
    }

    /// Sums `f` over all live records, in parallel.
    pub fn par_sum<S>(&self, f: impl Fn(&T) -> S + Sync + Send) -> S
    where
        S: Send + std::iter::Sum<S> + std::iter::Sum<S>,
    {
        // Record by record rather than over the page as a slice: summing one field of a
        // slice of records gets vectorized into gathers, which are slower than plain loads.
        self.par_pages().map(|page| page.records().map(|(_, r)| f(r)).sum::<S>()).sum()
    }

    /// Counts the live records for which `pred` holds, in parallel.
    pub fn par_count(&self, pred: impl Fn(&T) -> bool + Sync + Send) -> u64 {
        self.par_pages().map(|page| page.records().filter(|(_, r)| pred(r)).count() as u64).sum()
    }

    /// Maps every live record with `map` and combines the results with `reduce`, in parallel.
    /// `identity` must be a neutral element of `reduce`.
    pub fn par_reduce<A>(
        &self,
        identity: impl Fn() -> A + Sync + Send,
        map: impl Fn(RecordId, &T) -> A + Sync + Send,
        reduce: impl Fn(A, A) -> A + Sync + Send,
    ) -> A
    where
        A: Send,
    {
        self.par_pages()
            .map(|page| page.records().fold(identity(), |acc, (id, r)| reduce(acc, map(id, r))))
            .reduce(&identity, &reduce)
    }

    /// The id the next created record will have, at the earliest: one past the highest id
    /// any commit up to this snapshot created (what a deterministic transaction begun on this
    /// snapshot gives its first new record).
    pub fn next_id(&self) -> RecordId {
        RecordId(self.data.next_id)
    }
}
