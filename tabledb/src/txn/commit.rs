//! Commit: validation, application of staged writes, publication.

use std::sync::Arc;

use super::{ALL_FIELDS, ChangeKind, CommitInfo, TableStage, Transaction, field_bit};
use crate::error::{Error, Result};
use crate::ids::CommitSeq;
use crate::schema::TableSchema;
use crate::storage::reclaim::Writer;
use crate::storage::snapshot::Snapshot;
use crate::storage::table_data::{Prefetch, TableData};

pub(super) fn commit(mut tx: Transaction, wait: bool) -> Result<CommitInfo> {
    let mut stages = std::mem::take(&mut tx.stages);
    stages.retain(|s| !s.changes.is_empty() || !s.replaced.is_empty());
    if stages.is_empty() {
        return Ok(CommitInfo { seq: tx.start.seq, read_only: true });
    }
    let shared = tx.shared.clone();
    let result = shared.check_commit().and_then(|()| {
        let lock = shared.lock_commits();
        let current = shared.current.load_full();
        check(&tx, &stages, &current, &shared.config)?;
        let next = apply(&mut stages, &current, &shared.stats);
        let seq = next.0.seq;
        shared.publish(&lock, next, &stages);
        Ok(seq)
    });
    match result {
        Ok(seq) => {
            shared.stats.count_commit();
            if wait {
                shared.acknowledge(seq)?;
            }
            Ok(CommitInfo { seq, read_only: false })
        }
        Err(e) => {
            if e.is_conflict() {
                shared.stats.count_conflict();
            }
            shared.stats.count_abort();
            Err(e)
        }
    }
}

/// Bytes of stored records of a table, as the database byte limit counts them.
pub(crate) fn table_bytes(t: &TableData) -> u64 {
    t.stored * t.geom.record_size as u64
}

/// Everything that can refuse a commit, checked before anything is changed.
fn check(tx: &Transaction, stages: &[TableStage], current: &Snapshot, config: &crate::Config) -> Result<()> {
    let concurrent = current.seq != tx.start.seq;
    if concurrent {
        validate_reads(tx, current)?;
    }
    let mut added_bytes = 0u64;
    for stage in stages {
        let Some(now) = current.table_data(stage.id) else {
            return Err(Error::Conflict {
                table: stage.base.name().to_owned(),
                id: None,
                reason: "the table was dropped",
            });
        };
        if now.version != stage.base.version {
            return Err(Error::Conflict {
                table: now.name().to_owned(),
                id: None,
                reason: "the table's schema changed during the transaction",
            });
        }
        if !stage.replaced.is_empty() && !Arc::ptr_eq(now, &stage.base) {
            return Err(Error::Conflict {
                table: now.name().to_owned(),
                id: None,
                reason: "the table changed while this transaction updated it as a whole",
            });
        }
        if concurrent && !Arc::ptr_eq(now, &stage.base) {
            for c in &stage.changes {
                if matches!(c.kind, ChangeKind::Update | ChangeKind::Delete) && !now.is_live(c.id) {
                    return Err(Error::Conflict {
                        table: now.name().to_owned(),
                        id: Some(c.id),
                        reason: "the record was deleted by another commit",
                    });
                }
            }
        }
        let live = now.live as i64 + stage.net_live;
        if live > config.max_records_per_table as i64 {
            return Err(Error::LimitReached {
                what: "records per table",
                limit: config.max_records_per_table,
            });
        }
        // Inserts can also store the slots of ids handed out but never committed that lie
        // below them in the same page; count exactly what the pages will hold.
        let inserted = stage.changes.iter().filter(|c| c.kind == ChangeKind::Insert).map(|c| c.id);
        added_bytes += now.slots_needed(inserted) * now.geom.record_size as u64;
    }
    if !current.catalog.relations.is_empty() {
        crate::relations::check_commit(stages, current)?;
    }
    if current.stored_bytes + added_bytes > config.max_database_bytes {
        return Err(Error::LimitReached { what: "database bytes", limit: config.max_database_bytes });
    }
    Ok(())
}

/// Checks that nothing the transaction read has changed between its start snapshot and the
/// latest one. Records are compared by value, so only a real change conflicts.
fn validate_reads(tx: &Transaction, current: &Snapshot) -> Result<()> {
    let reads = tx.reads.borrow();
    for &table in &reads.scans {
        match (tx.start.table_data(table), current.table_data(table)) {
            (None, None) => {}
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {}
            (a, _) => {
                return Err(Error::Conflict {
                    table: a.map_or_else(|| format!("#{table}"), |t| t.name().to_owned()),
                    id: None,
                    reason: "a table this transaction read was changed by another commit",
                });
            }
        }
    }
    for &(table, id) in &reads.points {
        let (a, b) = match (tx.start.table_data(table), current.table_data(table)) {
            (None, None) => continue,
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => continue,
            (Some(a), Some(b)) if a.version == b.version => (a, b),
            (a, _) => {
                return Err(Error::Conflict {
                    table: a.map_or_else(|| format!("#{table}"), |t| t.name().to_owned()),
                    id: Some(id),
                    reason: "a table this transaction read was dropped or altered",
                });
            }
        };
        let same_page = match (a.locate(id), b.locate(id)) {
            (Some((pa, _)), Some((pb, _))) => {
                pa.block_addr() == pb.block_addr() && pa.live_bits() == pb.live_bits()
            }
            (None, None) => true,
            _ => false,
        };
        if !same_page && a.get(id) != b.get(id) {
            return Err(Error::Conflict {
                table: a.name().to_owned(),
                id: Some(id),
                reason: "a record this transaction read was changed by another commit",
            });
        }
    }
    Ok(())
}

/// Applies every stage to the latest tables; cannot fail (everything was checked). Returns
/// the snapshot to publish and what it retired.
pub(crate) fn apply(
    stages: &mut [TableStage],
    current: &Snapshot,
    stats: &crate::stats::Stats,
) -> (Snapshot, Writer) {
    let seq = current.seq.0 + 1;
    let mut w = Writer::new(seq);
    let mut tables = (*current.tables).clone();
    let mut stored_bytes = current.stored_bytes;
    for stage in stages.iter_mut() {
        let i = tables.binary_search_by_key(&stage.id, |t| t.id).expect("checked: the table exists");
        let now = &tables[i];
        let mut next = (**now).clone();
        // Whole pages first (parallel updates; the table is unchanged since the transaction
        // started, checked above), then record-level changes on top.
        let rs = next.geom.record_size;
        for (index, page) in std::mem::take(&mut stage.replaced) {
            next.tree.put_page(index, page, rs, &mut w);
            stage.installed.push(index);
        }
        for (k, c) in stage.changes.iter().enumerate() {
            // Changes to random records each miss the cache; fetching their tree leaves and
            // pages some changes ahead overlaps those misses instead of paying them one after
            // another.
            if let Some(ahead) = stage.changes.get(k + 2 * PREFETCH_DISTANCE) {
                now.prefetch(ahead.id, Prefetch::Leaf);
            }
            if let Some(ahead) = stage.changes.get(k + PREFETCH_DISTANCE) {
                now.prefetch(ahead.id, Prefetch::Block);
            }
            match c.kind {
                ChangeKind::Cancelled => {}
                ChangeKind::Insert => next.insert(&mut w, c.id, stage.slot_bytes(c.slot)),
                ChangeKind::Update => {
                    let dst = next.record_mut(&mut w, c.id).expect("checked: the record is live");
                    copy_fields(&now.schema, c.dirty, stage.slot_bytes(c.slot), dst);
                }
                ChangeKind::Delete => {
                    let deleted = next.delete(&mut w, c.id);
                    debug_assert!(deleted, "checked: the record is live");
                }
            }
        }
        next.changed_at = seq;
        stored_bytes = stored_bytes - table_bytes(now) + table_bytes(&next);
        if next.end_page() > now.end_page() {
            stats.count_growth();
        }
        tables[i] = Arc::new(next);
    }
    let snapshot = Snapshot {
        seq: CommitSeq(seq),
        catalog: current.catalog.clone(),
        tables: Arc::new(tables),
        stored_bytes,
        reclaimer: current.reclaimer.clone(),
    };
    (snapshot, w)
}

/// How many changes ahead `apply` fetches pages.
const PREFETCH_DISTANCE: usize = 8;

/// Copies the fields marked in `dirty` from `src` to `dst`.
fn copy_fields(schema: &TableSchema, dirty: u64, src: &[u8], dst: &mut [u8]) {
    if dirty == ALL_FIELDS {
        dst.copy_from_slice(src);
        return;
    }
    for (i, f) in schema.fields.iter().enumerate() {
        if dirty & field_bit(i) != 0 {
            dst[f.range()].copy_from_slice(&src[f.range()]);
        }
    }
}
