//! The database: the current snapshot, the commit lock, DDL.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::schema::{FieldDef, Relation, RelationId, SchemaError, TableSchema, validate_name};
use crate::stats::{Stats, StatsSnapshot};
use crate::storage::reclaim::{Reclaimer, Writer};
use crate::storage::snapshot::{Catalog, Snapshot, TableKey, TableRef};
use crate::storage::table_data::TableData;
use crate::table::{FieldHandle, Table};
use crate::txn::commit::table_bytes;
use crate::txn::{TableStage, Transaction};
use crate::types::{FieldType, TypeDef, TypeLayout};

/// State shared by a database handle and its transactions.
pub(crate) struct Shared {
    pub(crate) current: ArcSwap<Snapshot>,
    pub(crate) reclaimer: Arc<Reclaimer>,
    commit_lock: Mutex<()>,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    /// Set once when writes must stop (a failed fsync); the reason.
    stopped: OnceLock<String>,
}

impl Shared {
    pub(crate) fn lock_commits(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own (the snapshot is in the ArcSwap), so a panic
        // while it was held leaves nothing inconsistent.
        self.commit_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match self.stopped.get() {
            Some(reason) => Err(Error::WritesStopped(reason.clone())),
            None => Ok(()),
        }
    }

    /// Publishes a committed snapshot, handing what its commit replaced to the reclaimer.
    /// Called with the commit lock held.
    pub(crate) fn publish(
        &self,
        _lock: &MutexGuard<'_, ()>,
        (next, writer): (Snapshot, Writer),
        _stages: &[TableStage],
    ) -> Result<()> {
        self.reclaimer.publish(next.seq.0, writer.garbage);
        self.current.store(Arc::new(next));
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The current trees were never replaced, so nothing retired them; they become garbage
        // now, freed when the last snapshot that can reach them is dropped.
        let current = self.current.load();
        let mut w = Writer::new(current.seq.0 + 1);
        for t in current.tables.iter() {
            t.retire_tree(&mut w);
        }
        self.reclaimer.retire(current.seq.0 + 1, w.garbage);
    }
}

/// An in-memory database of typed and untyped tables.
///
/// `Database` is a cheap handle (an `Arc`); clone it to share between threads. Readers take a
/// [`Snapshot`] and never block; writers use a [`Transaction`].
///
/// ```
/// use tabledb::{Database, Table};
///
/// #[derive(Table, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Account {
///     balance: i64,
///     owner: u32,
///     frozen: bool,
///     _pad: [u8; 3],
/// }
///
/// let db = Database::new();
/// let accounts = db.create_table::<Account>().unwrap();
/// let mut tx = db.begin();
/// let a = tx.insert(accounts, &Account { balance: 100, owner: 1, frozen: false, _pad: [0; 3] }).unwrap();
/// tx.commit().unwrap();
///
/// db.set(accounts, a, Account::BALANCE, 70).unwrap();
/// let snap = db.snapshot();
/// assert_eq!(snap.get(accounts, a).unwrap().balance, 70);
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("seq", &self.shared.current.load().seq).finish_non_exhaustive()
    }
}

impl Default for Database {
    fn default() -> Self {
        Self::new()
    }
}

impl Database {
    /// An empty in-memory database with the default limits.
    pub fn new() -> Database {
        Database::with_config(Config::default())
    }

    /// An empty in-memory database with these limits.
    pub fn with_config(config: Config) -> Database {
        let reclaimer = Arc::new(Reclaimer::default());
        Database {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(Snapshot::empty(reclaimer.clone())),
                reclaimer,
                commit_lock: Mutex::new(()),
                config,
                stats: Stats::default(),
                stopped: OnceLock::new(),
            }),
        }
    }

    /// The latest committed snapshot: one atomic load, no lock.
    #[inline]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// Begins a transaction on the latest snapshot.
    pub fn begin(&self) -> Transaction {
        Transaction::new(self.shared.clone())
    }

    /// Runs `f` in a transaction and commits it; on a conflict, runs it again on a fresh
    /// snapshot, up to `attempts` times in all. Other errors end the loop at once. Returns
    /// what `f` returned in the attempt that committed, or the last error.
    pub fn retry<R>(&self, attempts: u32, mut f: impl FnMut(&mut Transaction) -> Result<R>) -> Result<R> {
        let mut last = None;
        for _ in 0..attempts.max(1) {
            let mut tx = self.begin();
            match f(&mut tx).and_then(|r| tx.commit().map(|_| r)) {
                Ok(r) => return Ok(r),
                Err(e) if e.is_conflict() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The limits this database enforces.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// What the database has done so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.read()
    }

    // ---- DDL ----

    /// Runs a schema change under the commit lock and publishes its result. `f` checks
    /// everything before it builds anything with the writer, so an error leaves nothing to
    /// undo.
    fn ddl<R>(
        &self,
        f: impl FnOnce(&Snapshot, &mut Catalog, &mut Vec<Arc<TableData>>, &mut Writer) -> Result<R>,
    ) -> Result<R> {
        self.shared.check_writable()?;
        let lock = self.shared.lock_commits();
        let current = self.shared.current.load_full();
        let mut catalog = (*current.catalog).clone();
        let mut tables = (*current.tables).clone();
        let mut writer = Writer::new(current.seq.0 + 1);
        let out = f(&current, &mut catalog, &mut tables, &mut writer)?;
        let stored_bytes = tables.iter().map(|t| table_bytes(t)).sum();
        let next = Snapshot {
            seq: CommitSeq(current.seq.0 + 1),
            catalog: Arc::new(catalog),
            tables: Arc::new(tables),
            stored_bytes,
            reclaimer: self.shared.reclaimer.clone(),
        };
        self.shared.publish(&lock, (next, writer), &[])?;
        self.shared.stats.count_ddl();
        Ok(out)
    }

    /// Creates a table from a schema. Field types must be built-in, strings, arrays, or
    /// composite types registered in this database.
    pub fn create_table_schema(&self, schema: TableSchema) -> Result<TableId> {
        self.ddl(|current, catalog, tables, _| {
            for f in &schema.fields {
                let known = catalog.types.resolve(&f.layout.name)?;
                if *known != *f.layout {
                    return Err(Error::Schema(SchemaError::FieldType {
                        field: f.name.clone(),
                        source: crate::types::TypeError::DuplicateType(f.layout.name.clone()),
                    }));
                }
            }
            add_table(&self.shared.config, current, catalog, tables, schema)
        })
    }

    /// Creates a table from field definitions: `("hp", "u32")`, `("name", "string")` ...
    pub fn create_table_from_defs(&self, name: &str, fields: &[FieldDef]) -> Result<TableId> {
        self.ddl(|current, catalog, tables, _| {
            let schema = TableSchema::from_defs(name, fields, &mut catalog.types)?;
            add_table(&self.shared.config, current, catalog, tables, schema)
        })
    }

    /// Creates the table of a derived type and returns its typed handle.
    pub fn create_table<T: Table>(&self) -> Result<TableRef<T>> {
        self.ddl(|current, catalog, tables, _| {
            let schema = TableSchema::of::<T>(&mut catalog.types)?;
            let fingerprint = schema.fingerprint();
            let id = add_table(&self.shared.config, current, catalog, tables, schema)?;
            Ok(TableRef { id, fingerprint, _t: PhantomData })
        })
    }

    /// The typed handle of an existing table, after checking that its schema matches `T`
    /// (field names, types and offsets). A mismatch names the fields that differ.
    pub fn table<T: Table>(&self) -> Result<TableRef<T>> {
        let snap = self.snapshot();
        let data = snap.find(T::NAME)?;
        let mut scratch = snap.catalog.types.clone();
        let expected = TableSchema::of::<T>(&mut scratch)?;
        if expected.fingerprint() != data.fingerprint {
            return Err(Error::SchemaMismatch {
                table: T::NAME.to_owned(),
                type_name: std::any::type_name::<T>(),
                detail: schema_diff(&expected, &data.schema),
            });
        }
        Ok(TableRef { id: data.id, fingerprint: data.fingerprint, _t: PhantomData })
    }

    /// Drops a table and its records. Refused while a relation refers to it.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        self.ddl(|current, catalog, tables, w| {
            let data = current.find(table)?;
            let id = data.id;
            if let Some(r) = catalog.relations.values().find(|r| r.touches_table(table)) {
                return Err(Error::Constraint {
                    relation: r.name.clone(),
                    detail: format!("table `{table}` is part of this relation; drop the relation first"),
                });
            }
            catalog.names.remove(table);
            tables.retain(|t| t.id != id);
            data.retire_tree(w);
            Ok(())
        })
    }

    /// Adds a field at the end of a table's records. Existing records are rewritten in the
    /// same commit with the new field zeroed.
    pub fn add_field(&self, table: &str, field: &FieldDef) -> Result<()> {
        self.ddl(|current, catalog, tables, w| {
            let data = current.find(table)?;
            let layout = catalog
                .types
                .resolve_spec(&field.ty, field.max_len)
                .map_err(|source| SchemaError::FieldType { field: field.name.clone(), source })?;
            let mut schema = (*data.schema).clone();
            schema.add_field(&field.name, layout)?;
            replace_table(tables, rewrite(data, schema, current.seq, w), w);
            Ok(())
        })
    }

    /// Removes a field from a table. Existing records are rewritten in the same commit. A
    /// table keeps at least one field; a field that a relation uses cannot be removed.
    pub fn remove_field(&self, table: &str, field: &str) -> Result<()> {
        self.ddl(|current, catalog, tables, w| {
            let data = current.find(table)?;
            if let Some(r) = catalog.relations.values().find(|r| r.touches_field(table, field)) {
                return Err(Error::Constraint {
                    relation: r.name.clone(),
                    detail: format!(
                        "field `{table}.{field}` is part of this relation; drop the relation first"
                    ),
                });
            }
            let mut schema = (*data.schema).clone();
            schema.remove_field(field)?;
            replace_table(tables, rewrite(data, schema, current.seq, w), w);
            Ok(())
        })
    }

    /// Drops the soft-deleted records of a table, reclaiming their memory. Ids are kept.
    pub fn compact_table(&self, table: &str) -> Result<()> {
        self.ddl(|current, _, tables, w| {
            let data = current.find(table)?;
            let compacted = data.compacted(w);
            replace_table(tables, compacted, w);
            Ok(())
        })
    }

    /// Registers a composite type described at run time.
    pub fn register_type(&self, def: TypeDef) -> Result<Arc<TypeLayout>> {
        self.ddl(|_, catalog, _, _| {
            let count = catalog.types.composites().count();
            if count >= self.shared.config.max_types {
                return Err(Error::LimitReached {
                    what: "types",
                    limit: self.shared.config.max_types as u64,
                });
            }
            Ok(catalog.types.register_type(def)?)
        })
    }

    /// Creates a relation: `from_table.from_field` refers to `to_table.to_field` (or to
    /// `to_table`'s ids when `to_field` is `id`, in which case the field must be `u64` and 0
    /// means "no reference"). Existing records must already satisfy it.
    pub fn create_relation(
        &self,
        name: Option<&str>,
        from_table: &str,
        from_field: &str,
        to_table: &str,
        to_field: &str,
    ) -> Result<Relation> {
        self.ddl(|current, catalog, _, _| {
            if catalog.relations.len() >= self.shared.config.max_relations {
                return Err(Error::LimitReached {
                    what: "relations",
                    limit: self.shared.config.max_relations as u64,
                });
            }
            let id = RelationId(catalog.next_relation_id + 1);
            let name = match name {
                Some(n) => n.to_owned(),
                None => default_relation_name(from_table, from_field, id),
            };
            if catalog.relations.values().any(|r| r.name == name) {
                return Err(Error::Constraint {
                    relation: name,
                    detail: "a relation with this name exists".into(),
                });
            }
            let relation = Relation {
                id,
                name,
                from_table: from_table.to_owned(),
                from_field: from_field.to_owned(),
                to_table: to_table.to_owned(),
                to_field: to_field.to_owned(),
            };
            relation.validate(|t| current.find(t).ok().map(|d| &*d.schema))?;
            crate::relations::check_existing(current, &relation)?;
            catalog.next_relation_id = id.0;
            catalog.relations.insert(id, relation.clone());
            Ok(relation)
        })
    }

    /// Drops a relation.
    pub fn drop_relation(&self, id: RelationId) -> Result<Relation> {
        self.ddl(|_, catalog, _, _| catalog.relations.remove(&id).ok_or(Error::UnknownRelation(id.0)))
    }

    // ---- single-operation transactions ----

    /// Creates a record in its own transaction.
    pub fn create_record(&self, table: impl TableKey, bytes: &[u8]) -> Result<RecordId> {
        let mut tx = self.begin();
        let id = tx.create_record(table, bytes)?;
        tx.commit()?;
        Ok(id)
    }

    /// Replaces a whole record in its own transaction.
    pub fn update_record(&self, table: impl TableKey, id: RecordId, bytes: &[u8]) -> Result<()> {
        let mut tx = self.begin();
        tx.update_record(table, id, bytes)?;
        tx.commit().map(|_| ())
    }

    /// Replaces one field of a record in its own transaction.
    pub fn partial_update(
        &self,
        table: impl TableKey,
        id: RecordId,
        field: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let mut tx = self.begin();
        tx.partial_update(table, id, field, bytes)?;
        tx.commit().map(|_| ())
    }

    /// Soft-deletes a record in its own transaction.
    pub fn delete_record(&self, table: impl TableKey, id: RecordId) -> Result<()> {
        let mut tx = self.begin();
        tx.delete_record(table, id)?;
        tx.commit().map(|_| ())
    }

    /// Inserts a typed record in its own transaction.
    pub fn insert<T: Table>(&self, table: TableRef<T>, record: &T) -> Result<RecordId> {
        let mut tx = self.begin();
        let id = tx.insert(table, record)?;
        tx.commit()?;
        Ok(id)
    }

    /// Replaces a typed record in its own transaction.
    pub fn update<T: Table>(&self, table: TableRef<T>, id: RecordId, record: &T) -> Result<()> {
        let mut tx = self.begin();
        tx.update(table, id, record)?;
        tx.commit().map(|_| ())
    }

    /// Sets one field of a typed record in its own transaction.
    pub fn set<T: Table, F: FieldType>(
        &self,
        table: TableRef<T>,
        id: RecordId,
        field: FieldHandle<T, F>,
        value: F,
    ) -> Result<()> {
        let mut tx = self.begin();
        tx.set(table, id, field, value)?;
        tx.commit().map(|_| ())
    }

    /// Deletes a typed record in its own transaction.
    pub fn delete<T: Table>(&self, table: TableRef<T>, id: RecordId) -> Result<()> {
        let mut tx = self.begin();
        tx.delete(table, id)?;
        tx.commit().map(|_| ())
    }
}

fn default_relation_name(from_table: &str, from_field: &str, id: RelationId) -> String {
    let name = format!("{from_table}_{from_field}_fkey");
    if validate_name(&name).is_ok() { name } else { format!("relation_{}", id.0) }
}

fn add_table(
    config: &Config,
    current: &Snapshot,
    catalog: &mut Catalog,
    tables: &mut Vec<Arc<TableData>>,
    schema: TableSchema,
) -> Result<TableId> {
    if catalog.names.contains_key(&schema.name) {
        return Err(Error::TableExists(schema.name));
    }
    if catalog.names.len() >= config.max_tables {
        return Err(Error::LimitReached { what: "tables", limit: config.max_tables as u64 });
    }
    let id = TableId(
        catalog
            .next_table_id
            .checked_add(1)
            .ok_or(Error::LimitReached { what: "table ids", limit: u32::MAX as u64 })?,
    );
    catalog.next_table_id = id.0;
    catalog.names.insert(schema.name.clone(), id);
    let data = TableData::new(id, Arc::new(schema), current.seq.0 + 1);
    let pos = tables.partition_point(|t| t.id < id);
    tables.insert(pos, Arc::new(data));
    Ok(id)
}

/// Puts a rebuilt table in place of the old one, whose whole tree is retired.
fn replace_table(tables: &mut [Arc<TableData>], data: TableData, w: &mut Writer) {
    let i = tables.binary_search_by_key(&data.id, |t| t.id).expect("the table exists");
    tables[i].retire_tree(w);
    tables[i] = Arc::new(data);
}

/// The table's records under a new schema: fields present in both keep their values, new
/// fields are zero.
fn rewrite(data: &TableData, schema: TableSchema, seq: CommitSeq, w: &mut Writer) -> TableData {
    let moves: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)> = schema
        .fields
        .iter()
        .filter_map(|f| data.schema.field(&f.name).map(|old| (old.range(), f.range())))
        .collect();
    data.rewritten(w, Arc::new(schema), seq.0 + 1, |old, new| {
        for (from, to) in &moves {
            new[to.clone()].copy_from_slice(&old[from.clone()]);
        }
    })
}

/// Describes how two schemas of the same table differ, field by field.
pub(crate) fn schema_diff(expected: &TableSchema, actual: &TableSchema) -> String {
    let mut out = Vec::new();
    let exp: BTreeMap<&str, _> = expected.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let act: BTreeMap<&str, _> = actual.fields.iter().map(|f| (f.name.as_str(), f)).collect();
    for (name, f) in &exp {
        match act.get(name) {
            None => out.push(format!("field `{name}` ({}) is missing from the stored table", f.layout.name)),
            Some(a) if a.type_id != f.type_id => out.push(format!(
                "field `{name}` is `{}` in the program but `{}` stored",
                f.layout.name, a.layout.name
            )),
            Some(a) if a.offset != f.offset => out.push(format!(
                "field `{name}` is at offset {} in the program but {} stored",
                f.offset, a.offset
            )),
            Some(_) => {}
        }
    }
    for (name, a) in &act {
        if !exp.contains_key(name) {
            out.push(format!("stored field `{name}` ({}) is not in the program", a.layout.name));
        }
    }
    if out.is_empty() {
        out.push("the field order differs".to_owned());
    }
    out.join("; ")
}
