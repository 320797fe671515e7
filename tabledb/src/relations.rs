//! Enforcement of relations: references must point at existing records.

use std::collections::HashSet;

use crate::error::{Error, Result};
use crate::schema::{ID_FIELD, Relation};
use crate::storage::snapshot::Snapshot;

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
