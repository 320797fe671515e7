//! Relations: a field of one table that refers to a field (or the id) of another.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::name::{shown, validate_name};
use super::table::{SchemaError, TableSchema};
use crate::types::Primitive;

/// The identifier of a relation; never reused within a database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelationId(pub u64);

impl fmt::Display for RelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The pseudo-field that names a record's id as the target of a relation.
pub const ID_FIELD: &str = "id";

/// `from_table.from_field` refers to `to_table.to_field`, where `to_field` may be `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub id: RelationId,
    pub name: String,
    pub from_table: String,
    pub from_field: String,
    pub to_table: String,
    pub to_field: String,
}

impl Relation {
    /// Checks the relation against the tables it joins: both exist, both fields exist, the
    /// types match (a reference to `id` must be a `u64` field).
    pub fn validate<'a>(&self, table: impl Fn(&str) -> Option<&'a TableSchema>) -> Result<(), SchemaError> {
        let err = |reason: String| SchemaError::InvalidRelation { relation: self.name.clone(), reason };
        validate_name(&self.name).map_err(|source| SchemaError::InvalidName {
            what: "relation",
            name: self.name.clone(),
            source,
        })?;
        let from = table(&self.from_table)
            .ok_or_else(|| err(format!("unknown table {}", shown(&self.from_table))))?;
        let to =
            table(&self.to_table).ok_or_else(|| err(format!("unknown table {}", shown(&self.to_table))))?;
        let from_field = from.field(&self.from_field).ok_or_else(|| {
            err(format!("table `{}` has no field {}", self.from_table, shown(&self.from_field)))
        })?;
        if self.to_field == ID_FIELD {
            if from_field.type_id != Primitive::U64.type_id() {
                return Err(err(format!(
                    "`{}.{}` has type `{}`, but a reference to `{}.id` must be `u64`",
                    self.from_table, self.from_field, from_field.layout.name, self.to_table
                )));
            }
            return Ok(());
        }
        let to_field = to.field(&self.to_field).ok_or_else(|| {
            err(format!("table `{}` has no field {}", self.to_table, shown(&self.to_field)))
        })?;
        if from_field.type_id != to_field.type_id {
            return Err(err(format!(
                "`{}.{}` has type `{}` but `{}.{}` has type `{}`",
                self.from_table,
                self.from_field,
                from_field.layout.name,
                self.to_table,
                self.to_field,
                to_field.layout.name
            )));
        }
        Ok(())
    }

    /// True when the relation involves this table on either side.
    pub fn touches_table(&self, table: &str) -> bool {
        self.from_table == table || self.to_table == table
    }

    /// True when the relation involves this field of this table on either side.
    pub fn touches_field(&self, table: &str, field: &str) -> bool {
        (self.from_table == table && self.from_field == field)
            || (self.to_table == table && self.to_field == field)
    }
}
