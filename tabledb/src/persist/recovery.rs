//! Opening a data directory: `schema.json`, then each table's checkpoint, then the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::format::{MAX_RECORD_ID, MAX_SEQ, Op};
use super::manifest::Manifest;
use super::wal::{Wal, WalOptions};
use super::{Counters, PersistError, PersistOptions, Persistence, Stop, checkpoint};
use crate::config::Config;
use crate::error::Error;
use crate::ids::{CommitSeq, RecordId, TableId};
use crate::storage::reclaim::{Reclaimer, Writer};
use crate::storage::snapshot::{Catalog, Snapshot};
use crate::storage::table_data::TableData;

/// What opening a data directory found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub tables: usize,
    /// Live records after recovery.
    pub records: u64,
    /// Bytes of checkpoint files loaded.
    pub checkpoint_bytes: u64,
    /// Log entries replayed.
    pub log_entries: u64,
    pub log_bytes: u64,
    /// A partly written entry at the end of the log that was cut off: file and offset.
    pub torn_tail: Option<(String, u64)>,
    /// With salvage: the corruption found, and from where the log was dropped.
    pub salvaged_at: Option<(String, u64, String)>,
    /// The sequence number of the recovered state.
    pub seq: u64,
    pub duration: Duration,
}

/// The state a data directory holds.
pub(crate) struct Recovered {
    pub catalog: Catalog,
    pub tables: Vec<TableData>,
    pub seq: u64,
}

/// Logs progress of a long recovery about once a second.
struct Progress {
    start: Instant,
    last: Instant,
    bytes: u64,
}

impl Progress {
    fn add(&mut self, bytes: u64, what: &str) {
        self.bytes += bytes;
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            tracing::info!(
                phase = what,
                mb = self.bytes / (1 << 20),
                seconds = self.start.elapsed().as_secs(),
                "recovery in progress"
            );
        }
    }
}

pub(crate) fn open(
    dir: &Path,
    options: PersistOptions,
    config: &Config,
) -> Result<(Persistence, Recovered), PersistError> {
    let started = Instant::now();
    let storage = options.storage.clone();
    let data_dir = dir.join("data");
    for d in [dir, &data_dir] {
        storage.create_dir_all(d).map_err(|e| PersistError::io(d, "create", e))?;
    }
    let lock = storage.lock(dir).map_err(|e| PersistError::Io(e.to_string()))?;
    let manifest_path = dir.join("schema.json");
    let fresh = !storage.exists(&manifest_path);
    let manifest = if fresh {
        Manifest::empty()
    } else {
        let bytes = storage.read(&manifest_path).map_err(|e| PersistError::io(&manifest_path, "read", e))?;
        Manifest::from_json(&bytes).map_err(PersistError::Invalid)?
    };
    let (catalog, schemas) = manifest.catalog(config).map_err(PersistError::Invalid)?;
    let mut progress = Progress { start: started, last: started, bytes: 0 };
    let mut report = RecoveryReport { tables: schemas.len(), ..RecoveryReport::default() };

    // Checkpoints.
    let mut w = Writer::new(0);
    let mut tables = Vec::with_capacity(schemas.len());
    let mut base_seq = HashMap::new();
    for (entry, schema) in manifest.tables.iter().zip(schemas) {
        let id = TableId(entry.id);
        let schema = Arc::new(schema);
        let table = match &entry.checkpoint {
            Some(c) => {
                let path = data_dir.join(&c.file);
                let shown = format!("data/{}", c.file);
                let bytes = storage.read(&path).map_err(|e| {
                    PersistError::Corrupt(format!(
                        "{shown}: named by schema.json for table `{}` but {e}",
                        entry.name
                    ))
                })?;
                let t = checkpoint::load(&bytes, &shown, id, schema, entry.version, c, &mut w)
                    .map_err(PersistError::Corrupt)?;
                report.checkpoint_bytes += bytes.len() as u64;
                progress.add(bytes.len() as u64, "checkpoints");
                t
            }
            None => TableData::new(id, schema, entry.version),
        };
        let mut table = table;
        table.changed_at = entry.base_seq();
        base_seq.insert(entry.id, (tables.len(), entry.base_seq()));
        tables.push(table);
    }

    // The log.
    let any_bytes_valid: Vec<bool> = tables.iter().map(|t| t.schema.any_bytes_valid()).collect();
    let stop = Arc::new(Stop::default());
    let mut max_ids: HashMap<usize, u64> = HashMap::new();
    let mut scratch = Vec::new();
    let (wal, replay) = Wal::open(
        storage.clone(),
        dir.join("wal"),
        WalOptions {
            segment_max: options.wal_segment_max_bytes,
            pending_max: options.wal_buffer_max_bytes,
            salvage: options.salvage,
            floor: manifest.log_floor(),
        },
        stop.clone(),
        |seq, ops| {
            if seq > MAX_SEQ {
                return Err(format!("sequence number {seq} is above the maximum {MAX_SEQ}"));
            }
            for op in ops {
                let (table_id, id) = match *op {
                    Op::Put { table, id, .. } | Op::Delete { table, id } => (table, id),
                };
                // Tables dropped later are not in schema.json; entries older than a table's
                // checkpoint are already in it.
                let Some(&(index, base)) = base_seq.get(&table_id) else { continue };
                if seq <= base {
                    continue;
                }
                let table = &mut tables[index];
                table.changed_at = seq;
                let rid = RecordId(id);
                if id == 0 || id > MAX_RECORD_ID {
                    return Err(format!(
                        "record id {id} of table `{}` is outside 1..={MAX_RECORD_ID}",
                        table.name()
                    ));
                }
                match *op {
                    Op::Put { bytes, .. } => {
                        if bytes.len() != table.geom.record_size {
                            return Err(format!(
                                "record of {} bytes for table `{}`, whose records have {}",
                                bytes.len(),
                                table.name(),
                                table.geom.record_size
                            ));
                        }
                        if !any_bytes_valid[index] {
                            table.schema.validate_record(bytes).map_err(|e| e.to_string())?;
                        }
                        match table.record_mut(&mut w, rid) {
                            Some(dst) => dst.copy_from_slice(bytes),
                            None => {
                                scratch.clear();
                                scratch.extend_from_slice(bytes);
                                table.insert(&mut w, rid, &scratch);
                            }
                        }
                        let max = max_ids.entry(index).or_default();
                        *max = (*max).max(id);
                    }
                    Op::Delete { .. } => {
                        if !table.delete(&mut w, rid) {
                            return Err(format!(
                                "delete of record {id} of table `{}`, which is not live",
                                table.name()
                            ));
                        }
                    }
                }
            }
            progress.add(0, "log");
            Ok(())
        },
    )?;
    debug_assert!(w.garbage.is_empty(), "recovery builds private trees only");
    for (index, max) in max_ids {
        tables[index].ids.advance_to(max + 1);
    }
    for table in &tables {
        table.ids.advance_to(table.next_id);
    }
    report.log_entries = replay.entries;
    report.log_bytes = replay.bytes;
    report.torn_tail = replay.torn_tail.clone();
    report.salvaged_at = replay.salvaged_at.clone();
    if let Some((file, offset)) = &replay.torn_tail {
        tracing::warn!(%file, offset, "the log ended with a partly written entry (a crash while writing); it was cut off");
    }
    if let Some((file, offset, problem)) = &replay.salvaged_at {
        tracing::error!(%file, offset, %problem, "corrupt log: started from the valid part and dropped the rest");
    }
    let checkpoint_seq = manifest.tables.iter().map(|t| t.base_seq()).max().unwrap_or(0);
    let seq = manifest.seq.max(replay.last_seq).max(checkpoint_seq);
    let (catalog, tables) = check_relations(catalog, tables, seq)?;
    report.seq = seq;
    report.records = tables.iter().map(|t| t.live).sum();
    report.duration = started.elapsed();
    if report.duration >= Duration::from_secs(1) {
        tracing::info!(
            seconds = report.duration.as_secs_f64(),
            mb = (report.checkpoint_bytes + report.log_bytes) / (1 << 20),
            "recovery finished"
        );
    }

    let generation = manifest.generation;
    let persistence = Persistence {
        storage: storage.clone(),
        dir: dir.to_path_buf(),
        wal: Some(wal),
        manifest: Mutex::new(manifest),
        writing: Mutex::default(),
        next_generation: AtomicU64::new(generation + 1),
        checkpoint_running: AtomicBool::new(false),
        stop,
        counters: Counters::default(),
        last_error: Mutex::new(None),
        encode_buf: Mutex::new(Vec::new()),
        report,
        options,
        _lock: lock,
    };
    let tmp: PathBuf = dir.join("schema.json.tmp");
    if storage.exists(&tmp) {
        storage.remove(&tmp).map_err(|e| PersistError::io(&tmp, "remove", e))?;
    }
    if fresh {
        let m = super::lock(&persistence.manifest).clone();
        persistence.write_manifest(&m)?;
    }
    persistence.remove_unreferenced();
    Ok((persistence, Recovered { catalog, tables, seq }))
}

/// Checks that the recovered records satisfy every relation, as a schema change that creates
/// one checks the records present then: damaged or hand-edited files must not start a
/// database whose references point nowhere. Errors name the relation and the record.
fn check_relations(
    catalog: Catalog,
    tables: Vec<TableData>,
    seq: u64,
) -> Result<(Catalog, Vec<TableData>), PersistError> {
    if catalog.relations.is_empty() {
        return Ok((catalog, tables));
    }
    let mut sorted: Vec<Arc<TableData>> = tables.into_iter().map(Arc::new).collect();
    sorted.sort_by_key(|t| t.id);
    let catalog = Arc::new(catalog);
    let tables = Arc::new(sorted);
    let snap = Snapshot {
        seq: CommitSeq(seq),
        catalog: catalog.clone(),
        tables: tables.clone(),
        stored_bytes: 0,
        reclaimer: Arc::new(Reclaimer::default()),
    };
    let checked = catalog.relations.values().try_for_each(|r| {
        crate::relations::check_existing(&snap, r).map_err(|e| match e {
            Error::Constraint { relation, detail, .. } => {
                PersistError::Corrupt(format!("the stored records break relation `{relation}`: {detail}"))
            }
            other => PersistError::Corrupt(format!("relation `{}`: {other}", r.name)),
        })
    });
    drop(snap);
    checked?;
    let catalog = Arc::try_unwrap(catalog).expect("the check's snapshot is gone");
    let tables = Arc::try_unwrap(tables)
        .expect("the check's snapshot is gone")
        .into_iter()
        .map(|t| Arc::try_unwrap(t).expect("the check's snapshot is gone"))
        .collect();
    Ok((catalog, tables))
}
