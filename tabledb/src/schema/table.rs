//! Table schemas: fields at aligned offsets within a fixed-size record.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::name::{NameError, shown, validate_field_name, validate_name};
use crate::types::{
    FieldType, MAX_ALIGN, MAX_RECORD_SIZE, TypeError, TypeId, TypeLayout, TypeRegistry, ValueError,
    align_offset, check_zero,
};

/// Why a schema, or a record against a schema, was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid {what} name {}: {source}", shown(.name))]
    InvalidName {
        what: &'static str,
        name: String,
        #[source]
        source: NameError,
    },
    #[error("table `{table}` already has a field named `{field}`")]
    DuplicateField { table: String, field: String },
    #[error("table `{table}` has no field {}", shown(.field))]
    UnknownField { table: String, field: String },
    #[error("table `{0}` needs at least one field")]
    NoFields(String),
    #[error("table `{table}` would have a record of {size} bytes; the limit is {MAX_RECORD_SIZE}")]
    RecordTooLarge { table: String, size: usize },
    #[error("field `{field}` of table `{table}` has type `{ty}`, which is not plain old data")]
    NotPod { table: String, field: String, ty: String },
    #[error("field `{field}` of table `{table}` has alignment {align}; the limit is {MAX_ALIGN}")]
    AlignTooLarge { table: String, field: String, align: usize },
    #[error("field {}: {source}", shown(.field))]
    FieldType {
        field: String,
        #[source]
        source: TypeError,
    },
    #[error(transparent)]
    Type(#[from] TypeError),
    #[error("table `{table}`: record of {got} bytes, expected {expected}")]
    RecordSize { table: String, expected: usize, got: usize },
    #[error("field `{field}`: {source}")]
    InvalidValue {
        field: String,
        #[source]
        source: ValueError,
    },
    #[error("field `{field}` is required")]
    MissingField { field: String },
    #[error("table `{table}`: padding byte at offset {offset} must be zero")]
    NonZeroPadding { table: String, offset: usize },
    #[error("expected a JSON object of fields")]
    NotAnObject,
    #[error("relation `{relation}`: {reason}")]
    InvalidRelation { relation: String, reason: String },
}

/// A field as a user describes it: a name, a type name, and for strings a capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    /// A type name: `u32`, `bool`, `string`, `string(32)`, `vec3`, `f32[3]`.
    #[serde(rename = "type")]
    pub ty: String,
    /// For `string`: the capacity in bytes (256 when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
}

impl FieldDef {
    pub fn new(name: impl Into<String>, ty: impl Into<String>) -> Self {
        FieldDef { name: name.into(), ty: ty.into(), max_len: None }
    }

    /// A string field of `max_len` bytes.
    pub fn string(name: impl Into<String>, max_len: usize) -> Self {
        FieldDef { name: name.into(), ty: "string".into(), max_len: Some(max_len) }
    }
}

/// A field of a table: its name, where it sits in the record, and its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub offset: usize,
    pub type_id: TypeId,
    pub layout: Arc<TypeLayout>,
}

impl Field {
    /// The byte range of this field within a record.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.layout.size
    }

    /// This field as a definition, as `schema.json` and the REST API show it.
    pub fn def(&self) -> FieldDef {
        FieldDef { name: self.name.clone(), ty: self.layout.name.clone(), max_len: None }
    }
}

/// The schema of a table: named fields laid out as a `#[repr(C)]` struct would be, in
/// declaration order, each at the next offset aligned for its type; the record size is rounded
/// up to the largest alignment.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub fields: Vec<Field>,
    pub record_size: usize,
    pub align: usize,
}

impl TableSchema {
    /// A schema with these fields, laid out in order.
    ///
    /// ```
    /// use tabledb::schema::TableSchema;
    /// use tabledb::types::{Primitive, TypeLayout};
    /// use std::sync::Arc;
    /// let u8_ = Arc::new(TypeLayout::primitive(Primitive::U8));
    /// let u32_ = Arc::new(TypeLayout::primitive(Primitive::U32));
    /// let s = TableSchema::new("t", [("a".into(), u8_), ("b".into(), u32_)]).unwrap();
    /// assert_eq!(s.fields[1].offset, 4);
    /// assert_eq!(s.record_size, 8);
    /// ```
    pub fn new(
        name: &str,
        fields: impl IntoIterator<Item = (String, Arc<TypeLayout>)>,
    ) -> Result<TableSchema, SchemaError> {
        validate_name(name).map_err(|source| SchemaError::InvalidName {
            what: "table",
            name: name.to_owned(),
            source,
        })?;
        let mut schema = TableSchema { name: name.to_owned(), fields: Vec::new(), record_size: 0, align: 1 };
        for (field, layout) in fields {
            schema.check_new_field(&field, &layout)?;
            schema.fields.push(Field { type_id: layout.id, name: field, offset: 0, layout });
        }
        if schema.fields.is_empty() {
            return Err(SchemaError::NoFields(name.to_owned()));
        }
        schema.relayout()?;
        Ok(schema)
    }

    /// A schema from field definitions, resolving their types in `types` (strings and arrays
    /// are registered on first use).
    pub fn from_defs(
        name: &str,
        defs: &[FieldDef],
        types: &mut TypeRegistry,
    ) -> Result<TableSchema, SchemaError> {
        let mut fields = Vec::with_capacity(defs.len());
        for d in defs {
            let layout = types
                .resolve_spec(&d.ty, d.max_len)
                .map_err(|source| SchemaError::FieldType { field: d.name.clone(), source })?;
            fields.push((d.name.clone(), layout));
        }
        TableSchema::new(name, fields)
    }

    fn check_new_field(&self, field: &str, layout: &TypeLayout) -> Result<(), SchemaError> {
        validate_field_name(field).map_err(|source| SchemaError::InvalidName {
            what: "field",
            name: field.to_owned(),
            source,
        })?;
        if self.field(field).is_some() {
            return Err(SchemaError::DuplicateField { table: self.name.clone(), field: field.to_owned() });
        }
        if !layout.pod {
            return Err(SchemaError::NotPod {
                table: self.name.clone(),
                field: field.to_owned(),
                ty: layout.name.clone(),
            });
        }
        if layout.align > MAX_ALIGN {
            return Err(SchemaError::AlignTooLarge {
                table: self.name.clone(),
                field: field.to_owned(),
                align: layout.align,
            });
        }
        Ok(())
    }

    /// Recomputes every offset, the record size and the alignment from the field order.
    fn relayout(&mut self) -> Result<(), SchemaError> {
        let mut end = 0usize;
        let mut align = 1usize;
        for f in &mut self.fields {
            f.offset = align_offset(end, f.layout.align);
            end = f.offset.saturating_add(f.layout.size);
            align = align.max(f.layout.align);
        }
        let size = align_offset(end, align);
        if size > MAX_RECORD_SIZE {
            return Err(SchemaError::RecordTooLarge { table: self.name.clone(), size });
        }
        self.record_size = size;
        self.align = align;
        Ok(())
    }

    /// Appends a field and recomputes the layout. On error the schema is unchanged.
    pub fn add_field(&mut self, name: &str, layout: Arc<TypeLayout>) -> Result<&Field, SchemaError> {
        self.check_new_field(name, &layout)?;
        let mut next = self.clone();
        next.fields.push(Field { name: name.to_owned(), offset: 0, type_id: layout.id, layout });
        next.relayout()?;
        *self = next;
        Ok(self.fields.last().expect("just pushed"))
    }

    /// Removes a field and recomputes the layout. A table keeps at least one field.
    pub fn remove_field(&mut self, name: &str) -> Result<Field, SchemaError> {
        let index = self
            .field_index(name)
            .ok_or_else(|| SchemaError::UnknownField { table: self.name.clone(), field: name.to_owned() })?;
        if self.fields.len() == 1 {
            return Err(SchemaError::NoFields(self.name.clone()));
        }
        let removed = self.fields.remove(index);
        self.relayout().expect("removing a field never grows the record");
        Ok(removed)
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The position of the field with this name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The field with this name, or an error naming it.
    pub fn require_field(&self, name: &str) -> Result<&Field, SchemaError> {
        self.field(name)
            .ok_or_else(|| SchemaError::UnknownField { table: self.name.clone(), field: name.to_owned() })
    }

    /// The field definitions, in order.
    pub fn field_defs(&self) -> Vec<FieldDef> {
        self.fields.iter().map(Field::def).collect()
    }

    /// True when no padding byte and no field needs checking, so any bytes of the right size
    /// are a valid record.
    pub fn any_bytes_valid(&self) -> bool {
        let packed: usize = self.fields.iter().map(|f| f.layout.size).sum();
        packed == self.record_size && self.fields.iter().all(|f| !f.layout.needs_validation())
    }

    fn check_record_size(&self, bytes: &[u8]) -> Result<(), SchemaError> {
        if bytes.len() != self.record_size {
            return Err(SchemaError::RecordSize {
                table: self.name.clone(),
                expected: self.record_size,
                got: bytes.len(),
            });
        }
        Ok(())
    }

    /// Checks that `bytes` are a valid record: the right size, every field valid, padding zero.
    pub fn validate_record(&self, bytes: &[u8]) -> Result<(), SchemaError> {
        self.check_record_size(bytes)?;
        let mut cursor = 0;
        for f in &self.fields {
            check_zero(&bytes[cursor..f.offset], cursor)
                .map_err(|_| self.padding_error(&bytes[cursor..f.offset], cursor))?;
            f.layout
                .validate(&bytes[f.range()])
                .map_err(|source| SchemaError::InvalidValue { field: f.name.clone(), source })?;
            cursor = f.offset + f.layout.size;
        }
        check_zero(&bytes[cursor..], cursor).map_err(|_| self.padding_error(&bytes[cursor..], cursor))
    }

    fn padding_error(&self, pad: &[u8], base: usize) -> SchemaError {
        let offset = base + pad.iter().position(|&b| b != 0).unwrap_or(0);
        SchemaError::NonZeroPadding { table: self.name.clone(), offset }
    }

    /// Checks the bytes of one field value.
    pub fn validate_field(&self, field: &Field, bytes: &[u8]) -> Result<(), SchemaError> {
        field
            .layout
            .validate(bytes)
            .map_err(|source| SchemaError::InvalidValue { field: field.name.clone(), source })
    }

    /// The record as a JSON object of its fields (without `id`).
    pub fn record_to_json(&self, bytes: &[u8]) -> Result<Map<String, Value>, SchemaError> {
        self.check_record_size(bytes)?;
        let mut map = Map::with_capacity(self.fields.len() + 1);
        for f in &self.fields {
            let v = f
                .layout
                .to_json(&bytes[f.range()])
                .map_err(|source| SchemaError::InvalidValue { field: f.name.clone(), source })?;
            map.insert(f.name.clone(), v);
        }
        Ok(map)
    }

    /// Builds record bytes from a JSON object. With `base`, fields missing from the object keep
    /// their value in `base` (a partial update); without, every field is required. Keys that
    /// are not fields are refused, naming the key.
    pub fn record_from_json(
        &self,
        obj: &Map<String, Value>,
        base: Option<&[u8]>,
    ) -> Result<Vec<u8>, SchemaError> {
        if let Some(unknown) = obj.keys().find(|k| self.field(k).is_none()) {
            return Err(SchemaError::UnknownField { table: self.name.clone(), field: unknown.clone() });
        }
        let mut out = match base {
            Some(b) => {
                self.check_record_size(b)?;
                b.to_vec()
            }
            None => vec![0u8; self.record_size],
        };
        for f in &self.fields {
            match obj.get(&f.name) {
                Some(v) => f
                    .layout
                    .from_json(v, &mut out[f.range()])
                    .map_err(|source| SchemaError::InvalidValue { field: f.name.clone(), source })?,
                None if base.is_some() => {}
                None => return Err(SchemaError::MissingField { field: f.name.clone() }),
            }
        }
        Ok(out)
    }

    /// A 64-bit digest of the layout (field names, types, offsets, record size), used to check
    /// that a typed handle still matches its table.
    pub fn fingerprint(&self) -> u64 {
        fingerprint(
            &self.name,
            self.fields.iter().map(|f| (f.name.as_str(), f.layout.shape(), f.offset)),
            self.record_size,
        )
    }

    /// The fingerprint the schema of a derived table type has, computed from its constants
    /// alone (no registry, no allocation).
    pub fn fingerprint_of<T: crate::Table>() -> u64 {
        fingerprint(T::NAME, T::FIELDS.iter().map(|f| (f.name, f.shape, f.offset)), T::RECORD_SIZE)
    }

    /// The schema of a derived table type, registering its field types in `types`.
    pub fn of<T: crate::Table>(types: &mut TypeRegistry) -> Result<TableSchema, SchemaError> {
        let mut fields = Vec::with_capacity(T::FIELDS.len());
        for f in T::FIELDS {
            let layout = types
                .register_desc(f.ty)
                .map_err(|source| SchemaError::FieldType { field: f.name.into(), source })?;
            fields.push((f.name.to_owned(), layout));
        }
        let schema = TableSchema::new(T::NAME, fields)?;
        // The derive asserted these at compile time; a disagreement here is a bug in tabledb.
        debug_assert_eq!(schema.record_size, T::RECORD_SIZE);
        debug_assert!(schema.fields.iter().zip(T::FIELDS).all(|(a, b)| a.offset == b.offset));
        Ok(schema)
    }
}

/// The fingerprint of a table: its name, record size and, per field, name, offset and the
/// field type's whole shape (not only its name), so that equal fingerprints mean that typed
/// access over the stored bytes is sound.
fn fingerprint<'a>(
    name: &str,
    fields: impl Iterator<Item = (&'a str, u64, usize)>,
    record_size: usize,
) -> u64 {
    let mut h = TypeId::of_name(name).0;
    let mut mix = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for (field, shape, offset) in fields {
        mix(TypeId::of_name(field).0);
        mix(shape);
        mix(offset as u64);
    }
    mix(record_size as u64);
    h
}

/// The type id of a field type, for use in generated code and tests.
pub const fn type_id_of<T: FieldType>() -> TypeId {
    T::TYPE_ID
}
