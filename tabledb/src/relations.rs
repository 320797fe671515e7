//! Enforcement of relations: references must point at existing records.

use std::collections::HashSet;

use crate::RecordId;
use crate::error::{Error, Result};
use crate::schema::{ID_FIELD, Relation};
use crate::storage::snapshot::Snapshot;
use crate::txn::{ChangeKind, TableStage, field_bit};

/// Checks that every record of the relation's source table refers to an existing target.
pub(crate) fn check_existing(snap: &Snapshot, relation: &Relation) -> Result<()> {
    let from = snap.find(relation.from_table.as_str())?;
    let to = snap.find(relation.to_table.as_str())?;
    let field = from.schema.require_field(&relation.from_field)?.range();
    let mut bad = None;
    if relation.to_field == ID_FIELD {
        from.for_each_live(|id, rec| {
            if bad.is_none() {
                let target = u64::from_le_bytes(rec[field.clone()].try_into().expect("u64 field"));
                if target != 0 && !to.is_live(crate::RecordId(target)) {
                    bad = Some((id, target.to_string()));
                }
            }
        });
    } else {
        let target_field = to.schema.require_field(&relation.to_field)?.range();
        let mut keys = HashSet::new();
        to.for_each_live(|_, rec| {
            keys.insert(&rec[target_field.clone()]);
        });
        from.for_each_live(|id, rec| {
            if bad.is_none() && !keys.contains(&rec[field.clone()]) {
                bad = Some((id, format!("{:?}", &rec[field.clone()])));
            }
        });
    }
    match bad {
        Some((id, value)) => Err(Error::Constraint {
            relation: relation.name.clone(),
            detail: format!(
                "record {id} of `{}` refers to {value}, which `{}.{}` does not hold",
                relation.from_table, relation.to_table, relation.to_field
            ),
        }),
        None => Ok(()),
    }
}

/// How a relation names its target records: by id, or by the bytes of a field.
fn key_of(rel_to_id: bool, id: RecordId, bytes: &[u8], field: &std::ops::Range<usize>) -> Vec<u8> {
    if rel_to_id { id.0.to_le_bytes().to_vec() } else { bytes[field.clone()].to_vec() }
}

/// Checks a commit against every relation before it is applied: every reference it writes
/// points at a record that exists after the commit, and no record it deletes (or whose key it
/// changes) is still referenced. A violation is an [`Error::Constraint`] naming the record.
pub(crate) fn check_commit(stages: &[TableStage], current: &Snapshot) -> Result<()> {
    for r in current.catalog.relations.values() {
        let (Ok(from), Ok(to)) = (current.find(r.from_table.as_str()), current.find(r.to_table.as_str()))
        else {
            continue;
        };
        let from_stage = stages.iter().find(|s| s.id == from.id);
        let to_stage = stages.iter().find(|s| s.id == to.id);
        if from_stage.is_none() && to_stage.is_none() {
            continue;
        }
        let from_field = from.schema.require_field(&r.from_field)?.clone();
        let from_bit = field_bit(from.schema.field_index(&r.from_field).expect("required above"));
        let to_id = r.to_field == ID_FIELD;
        let to_range = if to_id { 0..0 } else { to.schema.require_field(&r.to_field)?.range() };
        let to_bit =
            if to_id { 0 } else { field_bit(to.schema.field_index(&r.to_field).expect("required above")) };
        // The target table as it will be after this commit.
        let to_view = |id: RecordId| -> Option<&[u8]> {
            match to_stage.and_then(|s| s.lookup(id)) {
                Some(staged) => staged,
                None => to_stage.map_or_else(|| to.get(id), |s| s.current(id)),
            }
        };
        let violation = |detail: String| Error::Constraint { relation: r.name.clone(), detail };

        // 1. References this commit writes.
        if let Some(st) = from_stage {
            let mut keys: Option<HashSet<Vec<u8>>> = None;
            let mut check_ref = |id: RecordId, rec: &[u8]| -> Result<()> {
                let value = &rec[from_field.range()];
                let ok = if to_id {
                    let target = u64::from_le_bytes(value.try_into().expect("u64 field"));
                    target == 0 || to_view(RecordId(target)).is_some()
                } else {
                    let keys = keys.get_or_insert_with(|| {
                        let mut set = HashSet::new();
                        let mut add = |tid: RecordId| {
                            if let Some(rec) = to_view(tid) {
                                set.insert(rec[to_range.clone()].to_vec());
                            }
                        };
                        to.for_each_live(|tid, _| add(tid));
                        if let Some(ts) = to_stage {
                            for c in ts.changes.iter().filter(|c| c.kind == ChangeKind::Insert) {
                                add(c.id);
                            }
                        }
                        set
                    });
                    keys.contains(value)
                };
                if ok {
                    Ok(())
                } else {
                    Err(violation(format!(
                        "record {id} of `{}` refers to {}, which `{}` does not hold",
                        r.from_table,
                        describe(value, to_id),
                        r.to_table
                    )))
                }
            };
            for c in &st.changes {
                let writes_ref =
                    c.kind == ChangeKind::Insert || (c.kind == ChangeKind::Update && c.dirty & from_bit != 0);
                if writes_ref {
                    check_ref(c.id, st.slot_bytes(c.slot))?;
                }
            }
            let shift = from.geom.shift;
            for (&index, page) in &st.replaced {
                for (pos, slot) in page.live_slots() {
                    let id = RecordId((index << shift) + 1 + pos as u64);
                    if st.find(id).is_none() {
                        check_ref(id, page.slot_bytes(slot, from.geom.record_size))?;
                    }
                }
            }
        }

        // 2. Targets this commit removes: deleted records, and keys it changes.
        if let Some(ts) = to_stage {
            let mut removed: HashSet<Vec<u8>> = HashSet::new();
            for c in &ts.changes {
                let Some(old) = to.get(c.id) else { continue };
                let old_key = key_of(to_id, c.id, old, &to_range);
                match c.kind {
                    ChangeKind::Delete => {
                        removed.insert(old_key);
                    }
                    ChangeKind::Update
                        if !to_id
                            && c.dirty & to_bit != 0
                            && ts.slot_bytes(c.slot)[to_range.clone()] != old[to_range.clone()] =>
                    {
                        removed.insert(old_key);
                    }
                    _ => {}
                }
            }
            if !to_id {
                // A key still held by another record of the target is not removed.
                to.for_each_live(|tid, _| {
                    if let Some(rec) = to_view(tid) {
                        removed.remove(&rec[to_range.clone()]);
                    }
                });
            }
            if !removed.is_empty() {
                let from_view = |id: RecordId, stored: &'_ [u8]| -> Option<Vec<u8>> {
                    let rec = match from_stage.and_then(|s| s.lookup(id)) {
                        Some(staged) => staged?,
                        None => from_stage.and_then(|s| s.current(id)).unwrap_or(stored),
                    };
                    Some(rec[from_field.range()].to_vec())
                };
                let mut found = None;
                from.for_each_live(|id, stored| {
                    if found.is_none()
                        && let Some(value) = from_view(id, stored)
                        && removed.contains(&value)
                    {
                        found = Some((id, value));
                    }
                });
                if let Some((id, value)) = found {
                    return Err(violation(format!(
                        "record {id} of `{}` still refers to {} of `{}`",
                        r.from_table,
                        describe(&value, to_id),
                        r.to_table
                    )));
                }
            }
        }
    }
    Ok(())
}

fn describe(value: &[u8], to_id: bool) -> String {
    if to_id {
        format!("id {}", u64::from_le_bytes(value.try_into().expect("u64 field")))
    } else {
        format!("the value {value:?}")
    }
}
