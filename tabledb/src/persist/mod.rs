//! Persistence: `schema.json`, checkpoints, a write-ahead log with group commit, and recovery.
//!
//! ```text
//! DATA_DIR/LOCK                       held by the one process that has the directory open
//! DATA_DIR/schema.json                types, tables, relations, checkpoint files and checksums
//! DATA_DIR/data/<table>.<gen>.bin     checkpoint of one table
//! DATA_DIR/wal/<first seq>.log        committed transactions since the checkpoints
//! ```
//!
//! Schema changes write `schema.json` synchronously (temporary file, fsync, rename, fsync of the
//! directory) before they are published; a change that rewrites a table's records also writes
//! that table's checkpoint first. Commits are appended to the log in commit order and made
//! durable by one fsync per group; with [`Durability::Tick`] a commit is acknowledged only
//! after that fsync. Checkpoints are written from an immutable snapshot without blocking
//! anyone; a new generation becomes current only once the `schema.json` naming it is durable,
//! and then older files and the log segments it covers are removed.
//!
//! The byte layouts are in `docs/format.md`.

mod checkpoint;
pub(crate) mod format;
mod manifest;
mod recovery;
mod sim;
mod vfs;
mod wal;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub use format::FORMAT_VERSION;
pub(crate) use manifest::Manifest;
pub use recovery::RecoveryReport;
pub(crate) use recovery::open as open_dir;
pub use sim::{Fault, SimStorage};
pub use vfs::{FileBytes, OsStorage, Storage, WriteFile};
pub(crate) use wal::Wal;

use crate::ids::{RecordId, TableId};
use crate::storage::snapshot::Snapshot;
use crate::txn::{ChangeKind, TableStage};

/// When a commit counts as acknowledged, and what a crash can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A commit is acknowledged after the log fsync that covers it (one per tick under the
    /// runtime, one per group of concurrent commits otherwise). A crash loses nothing
    /// acknowledged.
    #[default]
    Tick,
    /// A commit is acknowledged when it is published; the log is fsynced in the background
    /// (every tick under the runtime, every `flush_interval` otherwise). A crash can lose the
    /// commits of the last interval.
    Async,
    /// No log: only checkpoints are written. A crash loses every commit since the last
    /// checkpoint.
    CheckpointOnly,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Durability, String> {
        match s {
            "tick" => Ok(Durability::Tick),
            "async" => Ok(Durability::Async),
            "checkpoint-only" => Ok(Durability::CheckpointOnly),
            other => Err(format!("unknown durability `{other}`; expected tick, async or checkpoint-only")),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Tick => "tick",
            Durability::Async => "async",
            Durability::CheckpointOnly => "checkpoint-only",
        })
    }
}

/// How a database keeps its data on disk.
#[derive(Clone)]
pub struct PersistOptions {
    pub durability: Durability,
    /// A log segment is closed once it reaches this size.
    pub wal_segment_max_bytes: u64,
    /// Committed bytes waiting for the log (while writes fail, e.g. on a full disk) before new
    /// commits are refused. Also the most one commit may log (at most 1 GiB, a log frame's
    /// limit): a bigger commit is refused with [`Error::LimitReached`](crate::Error::LimitReached).
    pub wal_buffer_max_bytes: usize,
    /// A background checkpoint starts once this much log has been written since the last one
    /// (0: only when asked).
    pub checkpoint_after_wal_bytes: u64,
    /// With [`Durability::Async`] and no runtime: how often the log is fsynced.
    pub flush_interval: std::time::Duration,
    /// Start from the valid part of a corrupt log (dropping the rest) instead of refusing to
    /// open.
    pub salvage: bool,
    /// The file system.
    pub storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for PersistOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistOptions")
            .field("durability", &self.durability)
            .field("wal_segment_max_bytes", &self.wal_segment_max_bytes)
            .field("wal_buffer_max_bytes", &self.wal_buffer_max_bytes)
            .field("checkpoint_after_wal_bytes", &self.checkpoint_after_wal_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("salvage", &self.salvage)
            .finish_non_exhaustive()
    }
}

impl Default for PersistOptions {
    fn default() -> Self {
        PersistOptions {
            durability: Durability::Tick,
            wal_segment_max_bytes: 64 << 20,
            wal_buffer_max_bytes: 256 << 20,
            checkpoint_after_wal_bytes: 256 << 20,
            flush_interval: std::time::Duration::from_millis(16),
            salvage: false,
            storage: Arc::new(OsStorage),
        }
    }
}

/// Why persistence failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersistError {
    #[error("{0}")]
    Io(String),
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("log buffer full: {0}")]
    Full(String),
    #[error("writes stopped: {0}")]
    Stopped(String),
}

impl PersistError {
    pub(crate) fn io(path: &Path, what: &str, e: std::io::Error) -> PersistError {
        let hint = match e.raw_os_error() {
            Some(28) => " (the disk is full)",
            _ => "",
        };
        PersistError::Io(format!("{what} {}: {e}{hint}", path.display()))
    }
}

impl From<PersistError> for crate::Error {
    fn from(e: PersistError) -> Self {
        match e {
            PersistError::Stopped(reason) => crate::Error::WritesStopped(reason),
            other => crate::Error::Persistence(other.to_string()),
        }
    }
}

/// The fail-stop switch: once set (by a failed fsync), every write is refused with the reason.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    reason: OnceLock<String>,
}

impl Stop {
    pub fn set(&self, reason: String) {
        if self.reason.set(reason.clone()).is_ok() {
            tracing::error!(%reason, "tabledb stops accepting writes");
        }
    }

    pub fn check(&self) -> Result<(), PersistError> {
        match self.reason.get() {
            Some(r) => Err(PersistError::Stopped(r.clone())),
            None => Ok(()),
        }
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }
}

/// What persistence has done, for health reports and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistStatus {
    pub durability: Durability,
    /// The newest commit known durable in the log.
    pub durable_seq: u64,
    pub log_syncs: u64,
    pub log_sync_failures: u64,
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// The newest checkpoint generation.
    pub generation: u64,
    /// Log segment files on disk.
    pub log_segments: usize,
    /// The last persistence error, if any.
    pub last_error: Option<String>,
    /// Set when writes are stopped, with the reason.
    pub writes_stopped: Option<String>,
}

#[derive(Default)]
struct Counters {
    syncs: AtomicU64,
    sync_failures: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
}

/// The persistence of one open database.
pub(crate) struct Persistence {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    options: PersistOptions,
    wal: Option<Wal>,
    /// The last `schema.json` written; its lock also orders writes of it.
    manifest: Mutex<Manifest>,
    /// Checkpoint files being written that `schema.json` may not name yet: the removal of old
    /// files leaves them alone. Locked after `manifest` when both are.
    writing: Mutex<BTreeSet<String>>,
    next_generation: AtomicU64,
    checkpoint_running: AtomicBool,
    stop: Arc<Stop>,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    encode_buf: Mutex<Vec<u8>>,
    report: RecoveryReport,
    _lock: Box<dyn Send + Sync>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The checkpoint files one checkpoint or schema change registers in
/// [`Persistence::writing`] before creating them; released when it ends, by which time
/// `schema.json` names them (or, after a failure, they are left for a later removal).
struct Writing<'a> {
    set: &'a Mutex<BTreeSet<String>>,
    names: Vec<String>,
}

impl<'a> Writing<'a> {
    fn new(set: &'a Mutex<BTreeSet<String>>) -> Self {
        Writing { set, names: Vec::new() }
    }

    fn add(&mut self, name: String) {
        lock(self.set).insert(name.clone());
        self.names.push(name);
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut set = lock(self.set);
        for name in &self.names {
            set.remove(name);
        }
    }
}

impl Persistence {
    pub fn report(&self) -> &RecoveryReport {
        &self.report
    }

    pub fn durability(&self) -> Durability {
        self.options.durability
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Refuses a commit before it is applied if it could not be logged.
    pub fn check_commit(&self) -> Result<(), PersistError> {
        self.stop.check()?;
        let Some(wal) = &self.wal else { return Ok(()) };
        wal.has_room().or_else(|full| {
            // Only writing the log drains its buffer. Without a runtime or a background flush
            // nothing else would, and commits would be refused forever after the disk has room
            // again; so try once.
            match self.sync() {
                Ok(_) => wal.has_room(),
                Err(e @ PersistError::Stopped(_)) => Err(e),
                Err(_) => Err(full),
            }
        })
    }

    pub fn check_writable(&self) -> Result<(), PersistError> {
        self.stop.check()
    }

    /// The most bytes the operations of one commit's log entry may take, when commits are
    /// logged: what the log buffer holds, and never more than a log frame can (a bigger entry
    /// could not be read back).
    pub fn log_entry_limit(&self) -> Option<u64> {
        let frame = format::FRAME_MAX_LEN - format::COMMIT_HEADER_LEN;
        (self.wal.is_some() && self.options.durability != Durability::CheckpointOnly)
            .then_some(self.options.wal_buffer_max_bytes.min(frame) as u64)
    }

    /// Appends a published commit to the log. Called under the commit lock, in commit order,
    /// after [`check_commit`](Self::check_commit).
    pub fn log_commit(&self, seq: u64, stages: &[TableStage], next: &Snapshot) {
        let Some(wal) = &self.wal else { return };
        if self.options.durability == Durability::CheckpointOnly {
            return;
        }
        let mut buf = lock(&self.encode_buf);
        buf.clear();
        let mut enc = format::CommitEncoder::new(&mut buf, seq);
        for stage in stages {
            let table =
                next.table_data(stage.id).expect("a committed table is in the snapshot it was published in");
            // Pages a parallel update replaced whole: the records in them that differ from the
            // transaction's start (record-level changes, logged next, are applied over them).
            let (rs, shift) = (table.geom.record_size, table.geom.shift);
            let installed = stage.installed.iter().flat_map(|&(first_page, pages)| {
                (0..u16::BITS as u64).filter(move |i| pages & (1 << i) != 0).map(move |i| first_page + i)
            });
            for index in installed {
                let Some(page) = table.tree.get(index) else { continue };
                let before = stage.base.tree.get(index);
                let first = (index << shift) + 1;
                for (pos, slot) in page.live_slots() {
                    let bytes = page.slot_bytes(slot, rs);
                    let id = first + pos as u64;
                    let changed = before.and_then(|b| b.get(pos, rs)) != Some(bytes);
                    if changed && stage.find(RecordId(id)).is_none() {
                        enc.put(stage.id.0, id, bytes);
                    }
                }
            }
            // Records as the whole entry leaves them: in a group, a later transaction may have
            // changed what an earlier one wrote, or deleted it without reading it (its delete
            // follows in the entry). It cannot have seen, so neither changed nor deleted, a
            // record the group created.
            for c in &stage.changes {
                match c.kind {
                    ChangeKind::Insert | ChangeKind::Update => {
                        if let Some(bytes) = table.get(c.id) {
                            enc.put(stage.id.0, c.id.0, bytes);
                        } else {
                            debug_assert_eq!(
                                c.kind,
                                ChangeKind::Update,
                                "records created in a group stay live in it"
                            );
                        }
                    }
                    ChangeKind::Delete => enc.delete(stage.id.0, c.id.0),
                    ChangeKind::Cancelled => {}
                }
            }
        }
        enc.finish();
        wal.append(seq, &buf);
    }

    /// Makes every logged commit durable (group commit). Returns the durable sequence number.
    pub fn sync(&self) -> Result<u64, PersistError> {
        let Some(wal) = &self.wal else { return Ok(0) };
        match wal.sync() {
            Ok(seq) => {
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
                Ok(seq)
            }
            Err(e) => {
                self.counters.sync_failures.fetch_add(1, Ordering::Relaxed);
                self.record_error(&e);
                Err(e)
            }
        }
    }

    /// Makes commit `seq` durable, syncing if nobody has yet.
    pub fn sync_through(&self, seq: u64) -> Result<(), PersistError> {
        match &self.wal {
            Some(wal) if wal.durable_seq() < seq => {
                self.sync()?;
                if wal.durable_seq() >= seq {
                    Ok(())
                } else {
                    Err(PersistError::Io(format!("commit {seq} could not be written to the log")))
                }
            }
            _ => Ok(()),
        }
    }

    pub fn durable_seq(&self) -> u64 {
        self.wal.as_ref().map_or(0, Wal::durable_seq)
    }

    fn record_error(&self, e: &PersistError) {
        tracing::warn!(error = %e, "persistence error");
        *lock(&self.last_error) = Some(e.to_string());
    }

    /// Stops writes after a failed fsync of `path` (a file, or a directory's entries) and
    /// returns the error saying so: the kernel may have dropped the data, and a retry could
    /// report success for bytes that never reach the disk.
    fn fsync_failed(&self, path: &Path, e: std::io::Error) -> PersistError {
        let reason = format!(
            "fsync of {} failed: {e}; writes are stopped so nothing is acknowledged that may not be on disk",
            path.display()
        );
        self.stop.set(reason.clone());
        PersistError::Stopped(reason)
    }

    /// Writes the checkpoint of `table` as of commit `seq` and fsyncs it.
    fn write_checkpoint(
        &self,
        table: &crate::storage::table_data::TableData,
        generation: u64,
        seq: u64,
        writing: &mut Writing<'_>,
    ) -> Result<manifest::CheckpointEntry, PersistError> {
        let data_dir = self.data_dir();
        let name = manifest::checkpoint_file_name(table.name(), generation);
        writing.add(name.clone());
        let path = data_dir.join(name);
        let (entry, mut file) = checkpoint::write(&*self.storage, &data_dir, table, generation, seq)
            .map_err(|e| PersistError::io(&path, "write checkpoint", e))?;
        file.sync().map_err(|e| self.fsync_failed(&path, e))?;
        Ok(entry)
    }

    /// Writes `schema.json` atomically: temporary file, fsync, rename, fsync of the directory.
    fn write_manifest(&self, m: &Manifest) -> Result<(), PersistError> {
        let tmp = self.dir.join("schema.json.tmp");
        let path = self.dir.join("schema.json");
        let mut f = self.storage.create(&tmp).map_err(|e| PersistError::io(&tmp, "create", e))?;
        f.write_all(&m.to_json()).map_err(|e| PersistError::io(&tmp, "write", e))?;
        f.sync().map_err(|e| self.fsync_failed(&tmp, e))?;
        drop(f);
        self.storage.rename(&tmp, &path).map_err(|e| PersistError::io(&path, "rename to", e))?;
        // Here above all: the new schema.json is in place but may or may not survive a crash,
        // while the caller does not publish the change it describes, so commits logged from
        // now on could be replayed against the other schema.
        self.storage.sync_dir(&self.dir).map_err(|e| self.fsync_failed(&self.dir, e))?;
        Ok(())
    }

    /// Makes a schema change durable before it is published: syncs the log, writes a
    /// checkpoint of every table whose records were rewritten (and, with no log, of every
    /// table changed since its checkpoint), then `schema.json`. Called under the commit lock.
    pub fn persist_ddl(&self, next: &Snapshot, rewritten: &[TableId]) -> Result<(), PersistError> {
        self.stop.check()?;
        if let Some(wal) = &self.wal {
            wal.sync()?;
        }
        let mut writing = Writing::new(&self.writing);
        let mut manifest = lock(&self.manifest);
        let mut m = Manifest::describe(&next.catalog, &next.tables, next.seq.0, &manifest);
        // Without a log, the tables changed since their checkpoints would come back from a
        // crash as of those older checkpoints, beside the rewritten ones as of this change: a
        // state that never existed (and may break relations). So they are written too.
        let mut to_write = rewritten.to_vec();
        if self.options.durability == Durability::CheckpointOnly {
            for t in next.tables.iter() {
                let stale = m.tables.iter().any(|e| e.id == t.id.0 && t.changed_at > e.base_seq());
                if stale && !to_write.contains(&t.id) {
                    to_write.push(t.id);
                }
            }
        }
        if !to_write.is_empty() {
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            let data_dir = self.data_dir();
            for &id in &to_write {
                let table = next.table_data(id).expect("a table to write is in the new snapshot");
                let entry = self.write_checkpoint(table, generation, next.seq.0, &mut writing)?;
                if let Some(t) = m.tables.iter_mut().find(|t| t.id == id.0) {
                    t.checkpoint = Some(entry);
                }
            }
            self.storage.sync_dir(&data_dir).map_err(|e| self.fsync_failed(&data_dir, e))?;
            m.generation = m.generation.max(generation);
        }
        self.write_manifest(&m)?;
        *manifest = m;
        drop(manifest);
        self.remove_unreferenced();
        Ok(())
    }

    /// Writes a checkpoint of every table in `snap` and makes it current. Returns false when
    /// another checkpoint was already running.
    pub fn checkpoint(&self, snap: &Snapshot) -> Result<bool, PersistError> {
        if self.checkpoint_running.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let result = self.checkpoint_inner(snap);
        self.checkpoint_running.store(false, Ordering::Release);
        match &result {
            Ok(()) => {
                self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                self.record_error(e);
            }
        }
        result.map(|()| true)
    }

    fn checkpoint_inner(&self, snap: &Snapshot) -> Result<(), PersistError> {
        self.stop.check()?;
        if let Some(wal) = &self.wal {
            wal.take_checkpoint_mark();
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let data_dir = self.data_dir();
        let mut writing = Writing::new(&self.writing);
        let mut written = Vec::with_capacity(snap.tables.len());
        let mut kept = Vec::new();
        let current: Vec<(u32, u64, String, u64)> = lock(&self.manifest)
            .tables
            .iter()
            .filter_map(|t| t.checkpoint.as_ref().map(|c| (t.id, t.version, c.file.clone(), c.seq)))
            .collect();
        for table in snap.tables.iter() {
            // A table unchanged since its current checkpoint keeps that checkpoint, which then
            // holds it as of this snapshot too (so that an idle table does not keep the log
            // from being trimmed).
            let unchanged = current.iter().find(|(id, version, _, seq)| {
                *id == table.id.0 && *version == table.version && *seq >= table.changed_at
            });
            if let Some((id, version, file, _)) = unchanged {
                kept.push((*id, *version, file.clone()));
                continue;
            }
            let entry = self.write_checkpoint(table, generation, snap.seq.0, &mut writing)?;
            written.push((table.id.0, table.version, entry));
        }
        self.storage.sync_dir(&data_dir).map_err(|e| self.fsync_failed(&data_dir, e))?;
        let floor = {
            let mut manifest = lock(&self.manifest);
            let mut m = manifest.clone();
            for (id, version, entry) in written {
                // A table changed or dropped since the snapshot has its own newer state.
                if let Some(t) = m.tables.iter_mut().find(|t| t.id == id && t.version == version)
                    && t.base_seq() < entry.seq
                {
                    t.checkpoint = Some(entry);
                }
            }
            for (id, version, file) in kept {
                if let Some(t) = m.tables.iter_mut().find(|t| t.id == id && t.version == version)
                    && let Some(c) = t.checkpoint.as_mut()
                    && c.file == file
                {
                    c.seq = c.seq.max(snap.seq.0);
                }
            }
            m.generation = m.generation.max(generation);
            m.seq = m.seq.max(snap.seq.0);
            self.write_manifest(&m)?;
            let floor = m.log_floor();
            *manifest = m;
            floor
        };
        self.remove_unreferenced();
        if let Some(wal) = &self.wal {
            wal.remove_through(floor)?;
        }
        Ok(())
    }

    /// True when enough log has accumulated that a checkpoint is due.
    pub fn checkpoint_due(&self) -> bool {
        let limit = self.options.checkpoint_after_wal_bytes;
        limit > 0 && self.wal.as_ref().is_some_and(|w| w.bytes_since_checkpoint() >= limit)
    }

    /// Removes checkpoint files no longer named by `schema.json` (older generations, and
    /// leftovers of interrupted checkpoints). Failures are only reported: the files are
    /// harmless and removed next time.
    fn remove_unreferenced(&self) {
        let data_dir = self.data_dir();
        let Ok(names) = self.storage.list(&data_dir) else { return };
        // What to keep is decided after listing, with both locks held until the removals are
        // done: a listed file was registered in `writing` before it was created, so it is in
        // `writing` or named by `schema.json` unless its writer is done with it (and then it
        // is no longer needed); and no writer can register a name meanwhile.
        let manifest = lock(&self.manifest);
        let writing = lock(&self.writing);
        let keep = manifest.files();
        let mut removed = false;
        for name in names {
            if !keep.contains(&name) && !writing.contains(&name) {
                let path = data_dir.join(&name);
                match self.storage.remove(&path) {
                    Ok(()) => removed = true,
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "could not remove an old checkpoint")
                    }
                }
            }
        }
        if removed && let Err(e) = self.storage.sync_dir(&data_dir) {
            tracing::warn!(dir = %data_dir.display(), error = %e, "could not fsync the data directory");
        }
    }

    pub fn status(&self) -> PersistStatus {
        PersistStatus {
            durability: self.options.durability,
            durable_seq: self.durable_seq(),
            log_syncs: self.counters.syncs.load(Ordering::Relaxed),
            log_sync_failures: self.counters.sync_failures.load(Ordering::Relaxed),
            checkpoints: self.counters.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: self.counters.checkpoint_failures.load(Ordering::Relaxed),
            generation: lock(&self.manifest).generation,
            log_segments: self.wal.as_ref().map_or(0, Wal::segment_count),
            last_error: lock(&self.last_error).clone(),
            writes_stopped: self.stop.reason().map(str::to_owned),
        }
    }

    /// The flush interval for background syncs, when this durability needs them.
    pub fn background_flush(&self) -> Option<std::time::Duration> {
        (self.options.durability == Durability::Async).then_some(self.options.flush_interval)
    }
}
