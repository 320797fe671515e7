//! Enforcement of relations: references must point at existing records.

use std::collections::HashSet;
use std::ops::Range;

use crate::RecordId;
use crate::error::{Error, Result};
use crate::schema::{ID_FIELD, Relation};
use crate::storage::snapshot::Snapshot;
use crate::storage::table_data::TableData;
use crate::txn::{ChangeKind, TableStage, field_bit};
use crate::types::TypeLayout;

/// Checks that every record of the relation's source table refers to an existing target.
pub(crate) fn check_existing(snap: &Snapshot, relation: &Relation) -> Result<()> {
    let from = snap.find(relation.from_table.as_str())?;
    let to = snap.find(relation.to_table.as_str())?;
    let from_field = from.schema.require_field(&relation.from_field)?;
    let field = from_field.range();
    let mut bad = None;
    if relation.to_field == ID_FIELD {
        from.for_each_live(|id, rec| {
            if bad.is_none() {
                let target = u64::from_le_bytes(rec[field.clone()].try_into().expect("u64 field"));
                if target != 0 && !to.is_live(crate::RecordId(target)) {
                    bad = Some((id, format!("id {target}")));
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
                bad = Some((id, describe(&rec[field.clone()], Some(&from_field.layout))));
            }
        });
    }
    match bad {
        Some((id, value)) => Err(Error::Constraint {
            relation: relation.name.clone(),
            record: Some((relation.from_table.clone(), id)),
            detail: format!(
                "record {id} of `{}` refers to {value}, which `{}.{}` does not hold",
                relation.from_table, relation.to_table, relation.to_field
            ),
        }),
        None => Ok(()),
    }
}

/// One table as a commit will leave it: the latest committed table, with the transaction's
/// staged writes to it (if any) on top, exactly as `commit::apply` will combine them.
#[derive(Clone, Copy)]
struct After<'a> {
    now: &'a TableData,
    stage: Option<&'a TableStage>,
}

impl<'a> After<'a> {
    /// The record under the transaction's record-level changes: from a page it replaced, or
    /// from the latest committed table. (A stage with replaced pages commits only when the
    /// table is unchanged since the transaction started, so its pages are the latest state.)
    fn underlying(&self, id: RecordId) -> Option<&'a [u8]> {
        if let Some(s) = self.stage
            && !s.replaced.is_empty()
            && let Some(pos) = id.pos()
        {
            let (index, in_page) = self.now.geom.split(pos);
            if let Some(page) = s.replaced.get(&index) {
                return page.get(in_page, self.now.geom.record_size);
            }
        }
        self.now.get(id)
    }

    /// The bytes `range` (the field with dirty bit `bit`) of record `id` after the commit, or
    /// `None` when the record will not be live. An update writes only its dirty fields over
    /// the latest record.
    fn field(&self, id: RecordId, range: &Range<usize>, bit: u64) -> Option<&'a [u8]> {
        let Some((s, c)) = self.stage.and_then(|s| Some((s, s.find(id)?))) else {
            return self.underlying(id).map(|rec| &rec[range.clone()]);
        };
        match c.kind {
            ChangeKind::Insert => Some(&s.slot_bytes(c.slot)[range.clone()]),
            ChangeKind::Update => {
                let under = self.underlying(id)?;
                let rec = if c.dirty & bit != 0 { s.slot_bytes(c.slot) } else { under };
                Some(&rec[range.clone()])
            }
            ChangeKind::Delete | ChangeKind::Cancelled => None,
        }
    }

    /// Calls `f` with every record live after the commit and its bytes `range` (the field
    /// with dirty bit `bit`). Scans the whole table.
    fn for_each_field(&self, range: &Range<usize>, bit: u64, mut f: impl FnMut(RecordId, &'a [u8])) {
        let Some(s) = self.stage else {
            self.now.for_each_live(|id, rec| f(id, &rec[range.clone()]));
            return;
        };
        let shift = self.now.geom.shift;
        let rs = self.now.geom.record_size;
        let mut visit = |id: RecordId, rec: &'a [u8]| match s.find(id) {
            None => f(id, &rec[range.clone()]),
            Some(c) => match c.kind {
                ChangeKind::Update => {
                    let rec = if c.dirty & bit != 0 { s.slot_bytes(c.slot) } else { rec };
                    f(id, &rec[range.clone()]);
                }
                // Inserts are visited below, once each.
                ChangeKind::Insert | ChangeKind::Delete | ChangeKind::Cancelled => {}
            },
        };
        self.now.for_each_page(&mut |first, page| {
            let page = s.replaced.get(&((first - 1) >> shift)).unwrap_or(page);
            for (pos, slot) in page.live_slots() {
                visit(RecordId(first + pos as u64), page.slot_bytes(slot, rs));
            }
        });
        for c in s.changes.iter().filter(|c| c.kind == ChangeKind::Insert) {
            f(c.id, &s.slot_bytes(c.slot)[range.clone()]);
        }
    }
}

/// Checks a commit against every relation before it is applied: every reference it writes
/// points at a record that exists after the commit, and no record it deletes (or whose key it
/// changes) is still referenced after the commit. `current` is the latest snapshot, which the
/// commit will be applied to: the check sees the tables as the commit will leave them, with
/// every commit since the transaction started. A violation is an [`Error::Constraint`] naming
/// the relation, the record and the value.
///
/// The cost follows the transaction's writes: a reference by id is one lookup; a reference
/// by key, or a removed target, needs one scan of the other table (there is no index of
/// keys or of references), which is done only when the commit writes such a reference or
/// removes such a target.
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
        let to_id = r.to_field == ID_FIELD;
        let from_field = from.schema.require_field(&r.from_field)?;
        let from_range = from_field.range();
        // How a violating value is named: the id, or the field's value as JSON.
        let value_layout = (!to_id).then_some(&*from_field.layout);
        let from_bit = field_bit(from.schema.field_index(&r.from_field).expect("required above"));
        let (to_range, to_bit) = if to_id {
            // Only whether the record is live matters.
            (0..0, 0)
        } else {
            let range = to.schema.require_field(&r.to_field)?.range();
            (range, field_bit(to.schema.field_index(&r.to_field).expect("required above")))
        };
        let from_after = After { now: from, stage: from_stage };
        let to_after = After { now: to, stage: to_stage };
        let violation = |id: RecordId, detail: String| Error::Constraint {
            relation: r.name.clone(),
            record: Some((r.from_table.clone(), id)),
            detail,
        };

        // 1. References this commit writes: inserted records, updates of the field, and the
        // records of pages a parallel update replaced.
        if let Some(st) = from_stage {
            let mut written: Vec<(RecordId, &[u8])> = Vec::new();
            for c in &st.changes {
                let writes_ref =
                    c.kind == ChangeKind::Insert || (c.kind == ChangeKind::Update && c.dirty & from_bit != 0);
                if writes_ref {
                    written.push((c.id, &st.slot_bytes(c.slot)[from_range.clone()]));
                }
            }
            let shift = from.geom.shift;
            for (index, page) in st.replaced.pages() {
                for (pos, _) in page.live_slots() {
                    let id = RecordId((index << shift) + 1 + pos as u64);
                    let counted = st.find(id).is_some_and(|c| {
                        c.kind == ChangeKind::Insert
                            || (c.kind == ChangeKind::Update && c.dirty & from_bit != 0)
                    });
                    if !counted && let Some(value) = from_after.field(id, &from_range, from_bit) {
                        written.push((id, value));
                    }
                }
            }
            let missing = if to_id {
                written.iter().find(|(_, value)| {
                    let target = u64::from_le_bytes((*value).try_into().expect("u64 field"));
                    target != 0 && to_after.field(RecordId(target), &to_range, to_bit).is_none()
                })
            } else if written.is_empty() {
                None
            } else {
                // One scan of the target finds which of the written keys it holds.
                let mut wanted: HashSet<&[u8]> = written.iter().map(|&(_, value)| value).collect();
                to_after.for_each_field(&to_range, to_bit, |_, key| {
                    if !wanted.is_empty() {
                        wanted.remove(key);
                    }
                });
                written.iter().find(|(_, value)| wanted.contains(value))
            };
            if let Some((id, value)) = missing {
                return Err(violation(
                    *id,
                    format!(
                        "record {id} of `{}` refers to {}, which `{}` does not hold",
                        r.from_table,
                        describe(value, value_layout),
                        r.to_table
                    ),
                ));
            }
        }

        // 2. Targets this commit removes: deleted records, and keys it changes (by
        // record-level updates or in pages a parallel update replaced), unless another
        // record holds the key after the commit.
        if let Some(ts) = to_stage {
            let mut removed: HashSet<Vec<u8>> = HashSet::new();
            let mut consider = |id: RecordId, old: &[u8]| {
                let id_bytes = id.0.to_le_bytes();
                let old_key = if to_id { &id_bytes[..] } else { &old[to_range.clone()] };
                if removed.contains(old_key) {
                    return;
                }
                let kept = match to_after.field(id, &to_range, to_bit) {
                    None => false,
                    Some(new) => to_id || new == old_key,
                };
                if !kept {
                    removed.insert(old_key.to_vec());
                }
            };
            for c in &ts.changes {
                // Only records live in the latest snapshot can be referenced now.
                if let Some(old) = to.get(c.id) {
                    consider(c.id, old);
                }
            }
            if !to_id && !ts.replaced.is_empty() {
                let shift = to.geom.shift;
                let rs = to.geom.record_size;
                to.for_each_page(&mut |first, page| {
                    if ts.replaced.get(&((first - 1) >> shift)).is_some() {
                        for (pos, slot) in page.live_slots() {
                            consider(RecordId(first + pos as u64), page.slot_bytes(slot, rs));
                        }
                    }
                });
            }
            if !to_id && !removed.is_empty() {
                to_after.for_each_field(&to_range, to_bit, |_, key| {
                    if !removed.is_empty() {
                        removed.remove(key);
                    }
                });
            }
            if !removed.is_empty() {
                let mut found = None;
                from_after.for_each_field(&from_range, from_bit, |id, value| {
                    if found.is_none() && removed.contains(value) {
                        found = Some((id, value));
                    }
                });
                if let Some((id, value)) = found {
                    return Err(violation(
                        id,
                        format!(
                            "record {id} of `{}` still refers to {} of `{}`, which this commit removes",
                            r.from_table,
                            describe(value, value_layout),
                            r.to_table
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Longest text of a value a violation message shows, in bytes.
const DESCRIBED_VALUE_MAX: usize = 200;

/// Names a referring value in a violation message: `id N` for a reference by id (no layout),
/// else the value as JSON, decoded with the field's layout (e.g. `the value "green"`), cut
/// short past [`DESCRIBED_VALUE_MAX`] bytes.
fn describe(value: &[u8], layout: Option<&TypeLayout>) -> String {
    let Some(layout) = layout else {
        return format!("id {}", u64::from_le_bytes(value.try_into().expect("u64 field")));
    };
    let mut text = match layout.to_json(value) {
        Ok(json) => json.to_string(),
        // Stored values decode; should one not, the bytes still identify it.
        Err(_) => format!("{value:?}"),
    };
    if text.len() > DESCRIBED_VALUE_MAX {
        text.truncate(text.floor_char_boundary(DESCRIBED_VALUE_MAX));
        text.push_str("...");
    }
    format!("the value {text}")
}
