//! The database: the current snapshot, the commit lock, DDL.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::persist::{Durability, PersistOptions, PersistStatus, Persistence, RecoveryReport};
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
    /// Shared with the background flusher, which must not keep the rest of `Shared` alive.
    pub(crate) current: Arc<ArcSwap<Snapshot>>,
    pub(crate) reclaimer: Arc<Reclaimer>,
    commit_lock: Mutex<()>,
    pub(crate) config: Config,
    pub(crate) stats: Stats,
    pub(crate) persist: Option<Arc<Persistence>>,
    /// The background log flusher, stopped and joined when the database closes.
    flusher: Mutex<Option<Flusher>>,
}

struct Flusher {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Shared {
    pub(crate) fn lock_commits(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data of its own (the snapshot is in the ArcSwap), so a panic
        // while it was held leaves nothing inconsistent.
        self.commit_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if let Some(p) = &self.persist {
            p.check_writable()?;
        }
        Ok(())
    }

    /// Refuses a commit that could not be logged, before anything is applied.
    pub(crate) fn check_commit(&self) -> Result<()> {
        if let Some(p) = &self.persist {
            p.check_commit()?;
        }
        Ok(())
    }

    /// The most bytes the operations of one log entry may take; `None` when commits are not
    /// logged.
    pub(crate) fn log_entry_limit(&self) -> Option<u64> {
        self.persist.as_ref().and_then(|p| p.log_entry_limit())
    }

    /// Logs and publishes a committed snapshot, handing what its commit replaced to the
    /// reclaimer. Called with the commit lock held, after `check_commit`; cannot fail.
    pub(crate) fn publish(
        &self,
        _lock: &MutexGuard<'_, ()>,
        (next, writer): (Snapshot, Writer),
        stages: &[TableStage],
    ) {
        if let Some(p) = &self.persist
            && !stages.is_empty()
        {
            p.log_commit(next.seq.0, stages, &next);
        }
        self.reclaimer.publish(next.seq.0, writer.garbage);
        self.current.store(Arc::new(next));
    }

    /// Waits, per the durability mode, until commit `seq` may be acknowledged.
    pub(crate) fn acknowledge(&self, seq: CommitSeq) -> Result<()> {
        match &self.persist {
            Some(p) if p.durability() == Durability::Tick => p.sync_through(seq.0).map_err(|e| {
                Error::Persistence(format!(
                    "commit {seq} is applied in memory but could not be made durable: {e}"
                ))
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Stop the flusher first, so that when this returns nothing holds the persistence
        // (and the directory lock) any more.
        if let Some(f) = self.flusher.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            drop(f.stop);
            if f.thread.join().is_err() {
                tracing::error!("the log flusher thread panicked");
            }
        }
        if let Some(p) = &self.persist
            && let Err(e) = p.sync()
        {
            tracing::error!(error = %e, "final log sync at close failed");
        }
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

/// A schema change being built: a copy of the catalog and table list to change.
pub(crate) struct Ddl<'a> {
    pub current: &'a Snapshot,
    pub catalog: Catalog,
    pub tables: Vec<Arc<TableData>>,
    pub w: Writer,
    /// Tables whose records this change rewrote; their checkpoints are written with it.
    pub rewritten: Vec<TableId>,
    /// Tables whose trees this change built anew (freed if the change fails).
    built: Vec<TableId>,
}

impl Ddl<'_> {
    /// Puts a rebuilt table in place of the old one, whose whole tree is retired.
    fn replace(&mut self, data: TableData, rewritten: bool) {
        let i = self.tables.binary_search_by_key(&data.id, |t| t.id).expect("the table exists");
        self.tables[i].retire_tree(&mut self.w);
        self.built.push(data.id);
        if rewritten {
            self.rewritten.push(data.id);
        }
        self.tables[i] = Arc::new(data);
    }

    /// Frees the trees this change built; it will not be published.
    fn discard(self) {
        for id in &self.built {
            if let Ok(i) = self.tables.binary_search_by_key(id, |t| t.id) {
                let t = &self.tables[i];
                // SAFETY: the tree was built by this change and never published, so nothing
                // else can reach it; the old tree it replaced is untouched (its retirement is
                // dropped with the writer, unfreed).
                unsafe { t.tree.free_all(t.geom.record_size) };
            }
        }
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
                current: Arc::new(ArcSwap::from_pointee(Snapshot::empty(reclaimer.clone()))),
                reclaimer,
                commit_lock: Mutex::new(()),
                config,
                stats: Stats::default(),
                persist: None,
                flusher: Mutex::new(None),
            }),
        }
    }

    /// Opens (or creates) a database kept in `dir` with the default limits and durability
    /// ([`Durability::Tick`]: a commit returns once it is on disk).
    ///
    /// One process at a time may open a directory; a second opener gets an error naming it.
    pub fn open(dir: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(dir, Config::default(), PersistOptions::default())
    }

    /// Opens (or creates) a database kept in `dir`: loads `schema.json`, every table's
    /// checkpoint, and replays the log. Corruption is an error naming the file and offset
    /// (unless `options.salvage` asks to start from what is valid); a torn last log entry is
    /// cut off and reported in [`recovery_report`](Self::recovery_report).
    pub fn open_with(dir: impl AsRef<Path>, config: Config, options: PersistOptions) -> Result<Database> {
        let (persist, recovered) = crate::persist::open_dir(dir.as_ref(), options, &config)?;
        let reclaimer = Arc::new(Reclaimer::default());
        let mut tables: Vec<Arc<TableData>> = recovered.tables.into_iter().map(Arc::new).collect();
        tables.sort_by_key(|t| t.id);
        let stored_bytes = tables.iter().map(|t| table_bytes(t)).sum();
        reclaimer.publish(recovered.seq, Vec::new());
        let snapshot = Snapshot {
            seq: CommitSeq(recovered.seq),
            catalog: Arc::new(recovered.catalog),
            tables: Arc::new(tables),
            stored_bytes,
            reclaimer: reclaimer.clone(),
        };
        let persist = Arc::new(persist);
        let db = Database {
            shared: Arc::new(Shared {
                current: Arc::new(ArcSwap::from_pointee(snapshot)),
                reclaimer,
                commit_lock: Mutex::new(()),
                config,
                stats: Stats::default(),
                persist: Some(persist.clone()),
                flusher: Mutex::new(None),
            }),
        };
        if persist.durability() == Durability::CheckpointOnly && persist.report().log_entries > 0 {
            // A log left by a run with another durability: fold it into a checkpoint, after
            // which it is removed.
            db.checkpoint()?;
        }
        spawn_flusher(&db);
        Ok(db)
    }

    /// Writes every logged commit to disk and fsyncs once; returns the newest durable commit.
    /// A no-op for in-memory databases.
    pub fn sync(&self) -> Result<CommitSeq> {
        match &self.shared.persist {
            Some(p) => Ok(CommitSeq(p.sync()?)),
            None => Ok(self.snapshot().seq),
        }
    }

    /// Writes a checkpoint of every table from the latest snapshot and makes it current,
    /// removing what it replaces. Readers and writers are not blocked. Returns false when a
    /// checkpoint was already running (or the database is in memory only).
    pub fn checkpoint(&self) -> Result<bool> {
        match &self.shared.persist {
            Some(p) => {
                let snap = self.snapshot();
                Ok(p.checkpoint(&snap)?)
            }
            None => Ok(false),
        }
    }

    /// Starts [`checkpoint`](Self::checkpoint) on a background thread; returns at once.
    pub fn checkpoint_in_background(&self) -> std::thread::JoinHandle<Result<bool>> {
        let db = self.clone();
        std::thread::Builder::new()
            .name("tabledb-checkpoint".into())
            .spawn(move || db.checkpoint())
            .expect("spawning a thread")
    }

    /// What persistence has done; `None` for in-memory databases.
    pub fn persistence_status(&self) -> Option<PersistStatus> {
        self.shared.persist.as_ref().map(|p| p.status())
    }

    /// What opening the data directory found; `None` for in-memory databases.
    pub fn recovery_report(&self) -> Option<&RecoveryReport> {
        self.shared.persist.as_ref().map(|p| p.report())
    }

    /// The durability mode; `None` for in-memory databases.
    pub fn durability(&self) -> Option<Durability> {
        self.shared.persist.as_ref().map(|p| p.durability())
    }

    /// The data directory; `None` for in-memory databases.
    pub fn dir(&self) -> Option<&Path> {
        self.shared.persist.as_ref().map(|p| p.dir())
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

    /// Begins a transaction whose new records are numbered from its start snapshot: the first
    /// record it creates in a table gets the table's [`next_id`](crate::TableView::next_id) as of
    /// that snapshot, the next one the id after, and so on. The ids it creates are then a
    /// function of the state it started from and of what it did, not of what other
    /// transactions happened to be doing: the same transactions committed in the same order
    /// give the same ids, with no gaps. The runtime runs every call and write this way.
    ///
    /// The price: it conflicts at commit when another commit created records in a table it
    /// also created records in since it started (retry it). A transaction begun with
    /// [`begin`](Self::begin) takes its ids from a counter shared by all transactions instead,
    /// so concurrent creators never conflict, but which ids they get depends on timing; when
    /// one of those ids was taken meanwhile by a deterministic commit, it conflicts instead.
    /// (The ids of the latest 32 deterministic commits per table are known one by one; below
    /// the ids of older ones that committed since it began, it conflicts without knowing.)
    pub fn begin_deterministic(&self) -> Transaction {
        let mut tx = Transaction::new(self.shared.clone());
        tx.deterministic = true;
        tx
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

    /// Commits transactions in the given order as one group, published in one snapshot (and,
    /// when persistent, one log entry covered by one fsync): much cheaper than committing them
    /// one by one, with the same result as committing them in that order. Each is validated
    /// against the state the ones before it leave, a read-only one included (its reads must
    /// still hold there). A transaction refused for another reason
    /// than a conflict gets its error and the group goes on; at the first conflict the group
    /// stops — that transaction gets the conflict, and the ones after it are returned
    /// unattempted, so the caller can retry in order. A group whose log entry would pass the
    /// limit of one (see [`PersistOptions::wal_buffer_max_bytes`]) is published as several
    /// snapshots and log entries, in the same order. A transaction begun on another database
    /// is refused with [`Error::ForeignTransaction`]. Does not wait for durability (see
    /// [`sync`](Self::sync)).
    pub fn commit_group(&self, txs: Vec<Transaction>) -> (Vec<Result<crate::CommitInfo>>, Vec<Transaction>) {
        crate::txn::commit::commit_group(&self.shared, txs)
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

    /// Runs a schema change under the commit lock, makes it durable, and publishes it. `f`
    /// checks everything before it builds anything, so most errors leave nothing to undo; if
    /// persisting fails, the trees it built are freed.
    fn ddl<R>(&self, f: impl FnOnce(&mut Ddl<'_>) -> Result<R>) -> Result<R> {
        self.shared.check_writable()?;
        let lock = self.shared.lock_commits();
        let current = self.shared.current.load_full();
        let mut d = Ddl {
            current: &current,
            catalog: (*current.catalog).clone(),
            tables: (*current.tables).clone(),
            w: Writer::new(current.seq.0 + 1),
            rewritten: Vec::new(),
            built: Vec::new(),
        };
        let out = match f(&mut d) {
            Ok(out) => out,
            Err(e) => {
                d.discard();
                return Err(e);
            }
        };
        // Strings and arrays no field or composite uses any more are forgotten, as reopening
        // the database would (they are not stored).
        d.catalog.types.retain_used(d.tables.iter().flat_map(|t| t.schema.fields.iter().map(|f| &*f.layout)));
        // Composite types come from `register_type`, and also from the nested types of a
        // derived table's fields: the limit holds for every change that adds some.
        let types = d.catalog.types.composites().count();
        let limit = self.shared.config.max_types;
        if types > limit && types > current.catalog.types.composites().count() {
            d.discard();
            return Err(Error::LimitReached { what: "types", limit: limit as u64 });
        }
        // Rewritten tables can take more bytes (wider records); the database byte limit holds
        // for them too, unless the change shrinks the total.
        let stored_bytes: u64 = d.tables.iter().map(|t| table_bytes(t)).sum();
        let limit = self.shared.config.max_database_bytes;
        if stored_bytes > limit && stored_bytes > current.stored_bytes {
            d.discard();
            return Err(Error::LimitReached { what: "database bytes", limit });
        }
        let next = Snapshot {
            seq: CommitSeq(current.seq.0 + 1),
            catalog: Arc::new(std::mem::take(&mut d.catalog)),
            tables: Arc::new(d.tables.clone()),
            stored_bytes,
            reclaimer: self.shared.reclaimer.clone(),
        };
        if let Some(p) = &self.shared.persist
            && let Err(e) = p.persist_ddl(&next, &d.rewritten)
        {
            drop(next);
            d.discard();
            return Err(e.into());
        }
        let writer = std::mem::replace(&mut d.w, Writer::new(0));
        drop(d);
        self.shared.publish(&lock, (next, writer), &[]);
        self.shared.stats.count_ddl();
        Ok(out)
    }

    /// Creates a table from a schema. Field types must be built-in, strings, arrays, or
    /// composite types registered in this database.
    pub fn create_table_schema(&self, schema: TableSchema) -> Result<TableId> {
        self.ddl(|d| {
            for f in &schema.fields {
                let known = d.catalog.types.resolve(&f.layout.name)?;
                if *known != *f.layout {
                    return Err(Error::Schema(SchemaError::FieldType {
                        field: f.name.clone(),
                        source: crate::types::TypeError::DuplicateType(f.layout.name.clone()),
                    }));
                }
            }
            add_table(&self.shared.config, d, schema)
        })
    }

    /// Creates a table from field definitions: `("hp", "u32")`, `("name", "string")` ...
    pub fn create_table_from_defs(&self, name: &str, fields: &[FieldDef]) -> Result<TableId> {
        self.ddl(|d| {
            check_field_count(&self.shared.config, fields.len())?;
            let schema = TableSchema::from_defs(name, fields, &mut d.catalog.types)?;
            add_table(&self.shared.config, d, schema)
        })
    }

    /// Creates the table of a derived type and returns its typed handle. Refused when a table
    /// of that name exists; see [`ensure_table`](Self::ensure_table) to open or migrate one.
    pub fn create_table<T: Table>(&self) -> Result<TableRef<T>> {
        self.ddl(|d| {
            let schema = TableSchema::of::<T>(&mut d.catalog.types)?;
            let fingerprint = schema.fingerprint();
            let id = add_table(&self.shared.config, d, schema)?;
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

    /// The typed handle of `T`'s table: created when missing, opened when it matches, and
    /// migrated when the stored fields differ only safely — fields added in the program are
    /// added (zeroed), fields no longer in the program are removed, fields are reordered —
    /// while every field present in both keeps its type. Any other difference (a field whose
    /// type changed) is refused with an error that names it; nothing is changed then.
    pub fn ensure_table<T: Table>(&self) -> Result<TableRef<T>> {
        self.ddl(|d| {
            let schema = TableSchema::of::<T>(&mut d.catalog.types)?;
            let fingerprint = schema.fingerprint();
            let Some(&id) = d.catalog.names.get(T::NAME) else {
                let id = add_table(&self.shared.config, d, schema)?;
                return Ok(TableRef { id, fingerprint, _t: PhantomData });
            };
            let data = d.current.table_data(id).expect("named tables exist").clone();
            if data.fingerprint == fingerprint {
                return Ok(TableRef { id, fingerprint, _t: PhantomData });
            }
            for f in &schema.fields {
                if let Some(old) = data.schema.field(&f.name)
                    && old.type_id != f.type_id
                {
                    return Err(Error::SchemaMismatch {
                        table: T::NAME.to_owned(),
                        type_name: std::any::type_name::<T>(),
                        detail: format!(
                            "field `{}` is `{}` in the program but `{}` stored; changing a field's type is not migrated automatically ({})",
                            f.name,
                            f.layout.name,
                            old.layout.name,
                            schema_diff(&schema, &data.schema)
                        ),
                    });
                }
            }
            if let Some(r) = d.catalog.relations.values().find(|r| {
                schema.field(&r.from_field).is_none() && r.from_table == T::NAME
                    || schema.field(&r.to_field).is_none() && r.to_table == T::NAME && r.to_field != crate::schema::ID_FIELD
            }) {
                return Err(Error::Constraint {
                    relation: r.name.clone(),
                    record: None,
                    detail: format!("migrating `{}` would remove a field this relation uses", T::NAME),
                });
            }
            check_field_count(&self.shared.config, schema.fields.len())?;
            tracing::info!(table = T::NAME, changes = %schema_diff(&schema, &data.schema), "migrating table");
            let rebuilt = rewrite(&data, schema, d.current.seq, &mut d.w);
            d.replace(rebuilt, true);
            Ok(TableRef { id, fingerprint, _t: PhantomData })
        })
    }

    /// Drops a table and its records. Refused while a relation refers to it.
    pub fn drop_table(&self, table: &str) -> Result<()> {
        self.ddl(|d| {
            let data = d.current.find(table)?.clone();
            if let Some(r) = d.catalog.relations.values().find(|r| r.touches_table(table)) {
                return Err(Error::Constraint {
                    relation: r.name.clone(),
                    record: None,
                    detail: format!("table `{table}` is part of this relation; drop the relation first"),
                });
            }
            d.catalog.names.remove(table);
            d.tables.retain(|t| t.id != data.id);
            data.retire_tree(&mut d.w);
            Ok(())
        })
    }

    /// Adds a field at the end of a table's records. Existing records are rewritten in the
    /// same commit with the new field zeroed.
    pub fn add_field(&self, table: &str, field: &FieldDef) -> Result<()> {
        self.ddl(|d| {
            let data = d.current.find(table)?.clone();
            check_field_count(&self.shared.config, data.schema.fields.len() + 1)?;
            let layout = d
                .catalog
                .types
                .resolve_spec(&field.ty, field.max_len)
                .map_err(|source| SchemaError::FieldType { field: field.name.clone(), source })?;
            let mut schema = (*data.schema).clone();
            schema.add_field(&field.name, layout)?;
            let rebuilt = rewrite(&data, schema, d.current.seq, &mut d.w);
            d.replace(rebuilt, true);
            Ok(())
        })
    }

    /// Removes a field from a table. Existing records are rewritten in the same commit. A
    /// table keeps at least one field; a field that a relation uses cannot be removed.
    pub fn remove_field(&self, table: &str, field: &str) -> Result<()> {
        self.ddl(|d| {
            let data = d.current.find(table)?.clone();
            if let Some(r) = d.catalog.relations.values().find(|r| r.touches_field(table, field)) {
                return Err(Error::Constraint {
                    relation: r.name.clone(),
                    record: None,
                    detail: format!(
                        "field `{table}.{field}` is part of this relation; drop the relation first"
                    ),
                });
            }
            let mut schema = (*data.schema).clone();
            schema.remove_field(field)?;
            let rebuilt = rewrite(&data, schema, d.current.seq, &mut d.w);
            d.replace(rebuilt, true);
            Ok(())
        })
    }

    /// Drops the soft-deleted records of a table, reclaiming their memory. Ids are kept.
    pub fn compact_table(&self, table: &str) -> Result<()> {
        self.ddl(|d| {
            let data = d.current.find(table)?.clone();
            let compacted = data.compacted(&mut d.w);
            d.replace(compacted, false);
            Ok(())
        })
    }

    /// Registers a composite type described at run time.
    pub fn register_type(&self, def: TypeDef) -> Result<Arc<TypeLayout>> {
        self.ddl(|d| {
            let count = d.catalog.types.composites().count();
            if count >= self.shared.config.max_types {
                return Err(Error::LimitReached {
                    what: "types",
                    limit: self.shared.config.max_types as u64,
                });
            }
            Ok(d.catalog.types.register_type(def)?)
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
        self.ddl(|d| {
            if d.catalog.relations.len() >= self.shared.config.max_relations {
                return Err(Error::LimitReached {
                    what: "relations",
                    limit: self.shared.config.max_relations as u64,
                });
            }
            let id = RelationId(
                d.catalog
                    .next_relation_id
                    .checked_add(1)
                    .ok_or(Error::LimitReached { what: "relation ids", limit: u64::MAX })?,
            );
            let taken = |n: &str| d.catalog.relations.values().any(|r| r.name == n);
            let name = match name {
                Some(n) if taken(n) => {
                    return Err(Error::Constraint {
                        relation: n.to_owned(),
                        record: None,
                        detail:
                            "a relation with this name exists; give another `name`, or none to have one made"
                                .into(),
                    });
                }
                Some(n) => n.to_owned(),
                None => default_relation_name(from_table, from_field, id, taken),
            };
            let relation = Relation {
                id,
                name,
                from_table: from_table.to_owned(),
                from_field: from_field.to_owned(),
                to_table: to_table.to_owned(),
                to_field: to_field.to_owned(),
            };
            relation.validate(|t| d.current.find(t).ok().map(|t| &*t.schema))?;
            crate::relations::check_existing(d.current, &relation)?;
            d.catalog.next_relation_id = id.0;
            d.catalog.relations.insert(id, relation.clone());
            Ok(relation)
        })
    }

    /// Drops a relation.
    pub fn drop_relation(&self, id: RelationId) -> Result<Relation> {
        self.ddl(|d| d.catalog.relations.remove(&id).ok_or(Error::UnknownRelation(id.0)))
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

/// The name of a relation created without one: `{from_table}_{from_field}_fkey`
/// (`item_owner_fkey`) when neither name has an `_`, so that the name splits into them one way
/// only. Otherwise the length of `from_table` follows (`a_b_c_fkey3` for `a_b.c`,
/// `a_b_c_fkey1` for `a.b_c`), which tells where the table name ends: two relations of
/// different fields never get the same name. When that is not a valid name (too long),
/// `relation_{id}`. A name already `taken` (by a relation named so by its creator, or by
/// another relation of the same field) gets `_2`, `_3`, ... appended until it is free.
fn default_relation_name(
    from_table: &str,
    from_field: &str,
    id: RelationId,
    taken: impl Fn(&str) -> bool,
) -> String {
    let base = if from_table.contains('_') || from_field.contains('_') {
        format!("{from_table}_{from_field}_fkey{}", from_table.len())
    } else {
        format!("{from_table}_{from_field}_fkey")
    };
    let base = if validate_name(&base).is_ok() { base } else { format!("relation_{}", id.0) };
    if !taken(&base) {
        return base;
    }
    (2u64..)
        .map(|n| {
            let name = format!("{base}_{n}");
            if validate_name(&name).is_ok() { name } else { format!("relation_{}_{n}", id.0) }
        })
        .find(|name| !taken(name))
        .expect("finitely many relations take finitely many names")
}

/// Refuses a table of `fields` fields when that is over the limit.
fn check_field_count(config: &Config, fields: usize) -> Result<()> {
    if fields > config.max_fields_per_table {
        return Err(Error::LimitReached {
            what: "fields of one table",
            limit: config.max_fields_per_table as u64,
        });
    }
    Ok(())
}

fn add_table(config: &Config, d: &mut Ddl<'_>, schema: TableSchema) -> Result<TableId> {
    if d.catalog.names.contains_key(&schema.name) {
        return Err(Error::TableExists(schema.name));
    }
    check_field_count(config, schema.fields.len())?;
    if d.catalog.names.len() >= config.max_tables {
        return Err(Error::LimitReached { what: "tables", limit: config.max_tables as u64 });
    }
    let id = TableId(
        d.catalog
            .next_table_id
            .checked_add(1)
            .ok_or(Error::LimitReached { what: "table ids", limit: u32::MAX as u64 })?,
    );
    d.catalog.next_table_id = id.0;
    d.catalog.names.insert(schema.name.clone(), id);
    let data = TableData::new(id, Arc::new(schema), d.current.seq.0 + 1);
    let pos = d.tables.partition_point(|t| t.id < id);
    d.tables.insert(pos, Arc::new(data));
    Ok(id)
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

/// Starts the background thread that syncs the log (with `Durability::Async`) and starts
/// checkpoints when enough log has accumulated. The database stops and joins it when it
/// closes; it holds only the persistence and the current snapshot, never the database.
fn spawn_flusher(db: &Database) {
    let Some(persist) = db.shared.persist.clone() else { return };
    let interval = persist.background_flush().unwrap_or(std::time::Duration::from_millis(100));
    let current = db.shared.current.clone();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let spawned = std::thread::Builder::new().name("tabledb-flush".into()).spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            if persist.background_flush().is_some() {
                // Errors are recorded in the status and logged by `sync`.
                let _ = persist.sync();
            }
            if persist.checkpoint_due() {
                let snap = current.load_full();
                let _ = persist.checkpoint(&snap);
            }
        }
    });
    match spawned {
        Ok(thread) => {
            *db.shared.flusher.lock().unwrap_or_else(|e| e.into_inner()) = Some(Flusher { stop, thread })
        }
        Err(e) => tracing::error!(error = %e, "could not start the log flusher thread"),
    }
}
