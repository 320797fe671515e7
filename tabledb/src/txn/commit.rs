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
    let log_limit = shared.log_entry_limit();
    let result = shared.check_commit().and_then(|()| logged_bytes(&stages, log_limit)).and_then(|_| {
        let lock = shared.lock_commits();
        let current = shared.current.load_full();
        check(&tx, &stages, &current, &shared.config)?;
        let mut next = working(&current);
        let mut w = Writer::new(next.seq.0);
        apply(&mut stages, &mut next, &mut w, &shared.stats);
        let seq = next.seq;
        shared.publish(&lock, (next, w), &stages);
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

/// Commits transactions in order as one group: each is validated against the state the ones
/// before it leave, and all that pass are published in one snapshot (one log entry, one
/// fsync), which is much cheaper than one publication each. A transaction refused for
/// something else than a conflict is skipped; at the first conflict the group stops, so that
/// the order of commits is the order given: the conflicting transaction's result is its
/// error, and the transactions after it are given back unattempted.
pub(crate) fn commit_group(
    shared: &Arc<crate::db::Shared>,
    txs: Vec<Transaction>,
) -> (Vec<Result<CommitInfo>>, Vec<Transaction>) {
    let mut results = Vec::with_capacity(txs.len());
    if let Err(e) = shared.check_commit() {
        for _ in &txs {
            shared.stats.count_abort();
            results.push(Err(e.clone()));
        }
        return (results, Vec::new());
    }
    let lock = shared.lock_commits();
    let current = shared.current.load_full();
    let mut next = working(&current);
    let mut w = Writer::new(next.seq.0);
    let mut applied: Vec<TableStage> = Vec::new();
    // The group is one log entry, which has a size limit: a transaction that would take the
    // entry past it starts a new group.
    let log_limit = shared.log_entry_limit();
    let mut group_log_bytes = 0u64;
    let mut rest = Vec::new();
    let mut txs = txs.into_iter();
    while let Some(mut tx) = txs.next() {
        if !Arc::ptr_eq(&tx.shared, shared) {
            shared.stats.count_abort();
            results.push(Err(Error::ForeignTransaction));
            continue;
        }
        let mut stages = std::mem::take(&mut tx.stages);
        stages.retain(|s| !s.changes.is_empty() || !s.replaced.is_empty());
        if stages.is_empty() {
            // A read-only transaction is judged too: what it read must still hold in the state
            // the ones before it leave, as if it ran after them.
            match validate_reads(&tx, &next) {
                Ok(()) => results.push(Ok(CommitInfo { seq: tx.start.seq, read_only: true })),
                Err(e) => {
                    shared.stats.count_abort();
                    shared.stats.count_conflict();
                    results.push(Err(e));
                    rest.extend(txs);
                    break;
                }
            }
            continue;
        }
        let bytes = match logged_bytes(&stages, log_limit) {
            Ok(bytes) => bytes,
            Err(e) => {
                shared.stats.count_abort();
                results.push(Err(e));
                continue;
            }
        };
        if log_limit.is_some_and(|limit| group_log_bytes + bytes > limit) && !applied.is_empty() {
            shared.publish(&lock, (next, w), &applied);
            applied.clear();
            group_log_bytes = 0;
            next = working(&shared.current.load_full());
            w = Writer::new(next.seq.0);
            // The entry just appended counts against the log buffer's limit like any commit.
            if let Err(e) = shared.check_commit() {
                for _ in std::iter::once(tx).chain(txs.by_ref()) {
                    shared.stats.count_abort();
                    results.push(Err(e.clone()));
                }
                break;
            }
        }
        match check(&tx, &stages, &next, &shared.config) {
            Ok(()) => {
                apply(&mut stages, &mut next, &mut w, &shared.stats);
                group_log_bytes += bytes;
                applied.extend(stages);
                shared.stats.count_commit();
                results.push(Ok(CommitInfo { seq: next.seq, read_only: false }));
            }
            Err(e) => {
                shared.stats.count_abort();
                let conflict = e.is_conflict();
                if conflict {
                    shared.stats.count_conflict();
                }
                results.push(Err(e));
                if conflict {
                    rest.extend(txs);
                    break;
                }
            }
        }
    }
    if !applied.is_empty() {
        shared.publish(&lock, (next, w), &applied);
    }
    (results, rest)
}

/// The most bytes the log entry of `stages` takes (see `Persistence::log_commit`): every
/// record-level change, and every live record of the pages parallel updates replaced (of
/// which only those that changed are written).
pub(crate) fn log_bytes(stages: &[TableStage]) -> u64 {
    use crate::persist::format::{DELETE_LEN, PUT_HEADER_LEN};
    let mut bytes = 0u64;
    for stage in stages {
        let put = (PUT_HEADER_LEN + stage.base.geom.record_size) as u64;
        for c in &stage.changes {
            bytes += match c.kind {
                ChangeKind::Insert | ChangeKind::Update => put,
                ChangeKind::Delete => DELETE_LEN as u64,
                ChangeKind::Cancelled => 0,
            };
        }
        for (_, page) in stage.replaced.pages() {
            bytes += page.live_count() as u64 * put;
        }
    }
    bytes
}

/// The bytes `stages` add to the log entry, refused when more than `limit` (the most one entry
/// takes); 0 when commits are not logged (`limit` is `None`), without counting.
fn logged_bytes(stages: &[TableStage], limit: Option<u64>) -> Result<u64> {
    let Some(limit) = limit else { return Ok(0) };
    let bytes = log_bytes(stages);
    if bytes > limit {
        return Err(Error::LimitReached { what: "bytes of one commit's log entry", limit });
    }
    Ok(bytes)
}

/// The snapshot a commit builds: the current one's tables, to be changed, under the next
/// sequence number. Dropping it unpublished is harmless (its number was never registered).
fn working(current: &Snapshot) -> Snapshot {
    Snapshot {
        seq: CommitSeq(current.seq.0 + 1),
        catalog: current.catalog.clone(),
        tables: Arc::new((*current.tables).clone()),
        stored_bytes: current.stored_bytes,
        reclaimer: current.reclaimer.clone(),
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
        if stage.ids_taken > 0 && now.next_id != stage.base.next_id {
            return Err(Error::Conflict {
                table: now.name().to_owned(),
                id: None,
                reason: "another commit created records in the table, and this transaction numbers \
                         its new records after the ones it saw",
            });
        }
        if concurrent && !Arc::ptr_eq(now, &stage.base) {
            for c in &stage.changes {
                let reason = match c.kind {
                    ChangeKind::Update | ChangeKind::Delete if !now.is_live(c.id) => {
                        "the record was deleted by another commit"
                    }
                    // Only a deterministic commit can have used an id handed out by the
                    // shared counter: one that committed since this transaction began (else
                    // the counter would have been past its ids), even if the record is
                    // deleted or compacted away by now.
                    ChangeKind::Insert
                        if c.id.0 < now.next_id
                            && (now.is_live(c.id) || now.det_ranges.used_since(tx.start.seq.0, c.id.0)) =>
                    {
                        "another commit created a record with the id this transaction gave its new record"
                    }
                    _ => continue,
                };
                return Err(Error::Conflict { table: now.name().to_owned(), id: Some(c.id), reason });
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
pub(super) fn validate_reads(tx: &Transaction, current: &Snapshot) -> Result<()> {
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

/// Applies every stage to the snapshot being built, with its writer; cannot fail
/// (everything was checked).
pub(crate) fn apply(
    stages: &mut [TableStage],
    next: &mut Snapshot,
    w: &mut Writer,
    stats: &crate::stats::Stats,
) {
    let seq = next.seq.0;
    let mut stored_bytes = next.stored_bytes;
    let tables = Arc::make_mut(&mut next.tables);
    for stage in stages.iter_mut() {
        let i = tables.binary_search_by_key(&stage.id, |t| t.id).expect("checked: the table exists");
        let now = &tables[i];
        let mut table = (**now).clone();
        // Whole pages first (parallel updates; the table is unchanged since the transaction
        // started, checked above), then record-level changes on top.
        let replaced = std::mem::take(&mut stage.replaced);
        stage.installed.extend(replaced.keys());
        let (drafts, replaced_blocks) = replaced.into_drafts();
        table.tree.put_drafts(drafts, replaced_blocks, w);
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
                ChangeKind::Insert => table.insert(w, c.id, stage.slot_bytes(c.slot)),
                ChangeKind::Update => {
                    let dst = table.record_mut(w, c.id).expect("checked: the record is live");
                    copy_fields(&now.schema, c.dirty, stage.slot_bytes(c.slot), dst);
                }
                ChangeKind::Delete => {
                    let deleted = table.delete(w, c.id);
                    debug_assert!(deleted, "checked: the record is live");
                }
            }
        }
        if stage.ids_taken > 0 {
            // The shared counter must not hand out the ids this commit used.
            table.ids.advance_to(table.next_id);
            // It numbered from the start snapshot's next id, which `check` found unchanged.
            Arc::make_mut(&mut table.det_ranges).push(seq, stage.base.next_id..table.next_id);
        }
        table.changed_at = seq;
        stored_bytes = stored_bytes - table_bytes(now) + table_bytes(&table);
        if table.end_page() > now.end_page() {
            stats.count_growth();
        }
        tables[i] = Arc::new(table);
    }
    next.stored_bytes = stored_bytes;
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
