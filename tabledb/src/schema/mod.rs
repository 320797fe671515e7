//! Schemas: tables, their fields, relations between them, and the name rule they all follow.

mod name;
mod relation;
mod table;

pub use name::{
    NAME_LEN_MAX, NAME_RULE, NameError, RESERVED_FIELD_NAMES, SHOWN_NAME_MAX, Shown, shown,
    validate_field_name, validate_name,
};
pub use relation::{ID_FIELD, Relation, RelationId};
pub use table::{Field, FieldDef, SchemaError, TableSchema, type_id_of};
