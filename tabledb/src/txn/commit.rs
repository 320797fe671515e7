//! Commit: validation, installation of each written table, publication.

use std::sync::Arc;

use super::{ALL_FIELDS, ChangeKind, CommitInfo, TableWrite, Transaction};
use crate::error::{Error, Result};
use crate::ids::CommitSeq;
use crate::schema::TableSchema;
use crate::storage::snapshot::Snapshot;
use crate::storage::table_data::TableData;

pub(super) fn commit(mut tx: Transaction) -> Result<CommitInfo> {
    let mut writes = std::mem::take(&mut tx.writes);
    writes.retain(|w| !w.changes.is_empty());
    if writes.is_empty() {
        return Ok(CommitInfo { seq: tx.start.seq, read_only: true });
    }
    let shared = tx.shared.clone();
    shared.check_writable()?;
    let guard = shared.lock_commits();
    let current = shared.current.load_full();
    let result = (|| {
        if current.seq != tx.start.seq {
            validate_reads(&tx, &current)?;
        }
        let mut tables = (*current.tables).clone();
        let mut stored_bytes = current.stored_bytes;
        for w in &mut writes {
            let i = tables.binary_search_by_key(&w.id, |t| t.id).map_err(|_| Error::Conflict {
                table: w.base.name().to_owned(),
                id: None,
                reason: "the table was dropped",
            })?;
            let now = &tables[i];
            let installed = if Arc::ptr_eq(now, &w.base) {
                std::mem::replace(&mut w.data, TableData::new(w.id, w.base.schema.clone(), 0))
            } else {
                rebase(w, now)?
            };
            check_limits(&shared.config, &installed)?;
            stored_bytes = stored_bytes - table_bytes(&tables[i]) + table_bytes(&installed);
            if installed.end_page() > tables[i].end_page() {
                shared.stats.count_growth();
            }
            tables[i] = Arc::new(installed);
        }
        if stored_bytes > shared.config.max_database_bytes {
            return Err(Error::LimitReached {
                what: "database bytes",
                limit: shared.config.max_database_bytes,
            });
        }
        Ok(Snapshot {
            seq: CommitSeq(current.seq.0 + 1),
            catalog: current.catalog.clone(),
            tables: Arc::new(tables),
            stored_bytes,
        })
    })();
    match result {
        Ok(next) => {
            let seq = next.seq;
            shared.publish(&guard, next, &writes)?;
            drop(guard);
            shared.stats.count_commit();
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

fn check_limits(config: &crate::Config, t: &TableData) -> Result<()> {
    if t.live > config.max_records_per_table {
        return Err(Error::LimitReached { what: "records per table", limit: config.max_records_per_table });
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
        let (a, b) = (tx.start.table_data(table), current.table_data(table));
        let (a, b) = match (a, b) {
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
            (Some((pa, _)), Some((pb, _))) => pa.ptr_eq(pb),
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

/// Replays a transaction's changes to one table onto the table's latest version.
fn rebase(w: &TableWrite, now: &Arc<TableData>) -> Result<TableData> {
    let conflict = |id, reason| Error::Conflict { table: now.name().to_owned(), id: Some(id), reason };
    if now.version != w.base.version {
        return Err(Error::Conflict {
            table: now.name().to_owned(),
            id: None,
            reason: "the table's schema changed during the transaction",
        });
    }
    let mut merged = (**now).clone();
    for c in &w.changes {
        match c.kind {
            ChangeKind::Cancelled => {}
            ChangeKind::Insert => {
                let bytes = w.data.get(c.id).expect("inserted records are live in the transaction");
                if merged.is_live(c.id) {
                    return Err(conflict(c.id, "the record id is already taken"));
                }
                merged.insert(c.id, bytes);
            }
            ChangeKind::Update => {
                let src = w.data.get(c.id).expect("updated records are live in the transaction");
                let Some(dst) = merged.record_mut(c.id) else {
                    return Err(conflict(c.id, "the record was deleted by another commit"));
                };
                copy_fields(&w.data.schema, c.dirty, src, dst);
            }
            ChangeKind::Delete => {
                if !merged.delete(c.id) {
                    return Err(conflict(c.id, "the record was deleted by another commit"));
                }
            }
        }
    }
    Ok(merged)
}

/// Copies the fields marked in `dirty` from `src` to `dst`.
fn copy_fields(schema: &TableSchema, dirty: u64, src: &[u8], dst: &mut [u8]) {
    if dirty == ALL_FIELDS {
        dst.copy_from_slice(src);
        return;
    }
    for (i, f) in schema.fields.iter().enumerate() {
        if dirty & super::field_bit(i) != 0 {
            dst[f.range()].copy_from_slice(&src[f.range()]);
        }
    }
}
