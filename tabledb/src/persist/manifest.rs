//! `schema.json`: the durable description of a database — types, tables, relations, and which
//! checkpoint file holds each table.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::format::MAX_SEQ;
use crate::config::Config;
use crate::ids::TableId;
use crate::schema::{FieldDef, Relation, TableSchema, shown};
use crate::storage::snapshot::Catalog;
use crate::storage::table_data::TableData;
use crate::types::{TypeDef, TypeRegistry};

/// Version of the `schema.json` layout.
pub const MANIFEST_VERSION: u32 = 1;

/// The checkpoint file of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointEntry {
    /// File name within `data/`.
    pub file: String,
    pub generation: u64,
    /// The table as of this commit.
    pub seq: u64,
    pub records: u64,
    /// CRC32 of the file's body, as its header records it.
    pub crc32: u32,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub id: u32,
    pub name: String,
    pub fields: Vec<FieldDef>,
    pub record_size: usize,
    /// Schema version (bumped by changes to the table's fields).
    pub version: u64,
    /// The commit that created the table (or last rewrote it without a checkpoint).
    pub created_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointEntry>,
}

impl TableEntry {
    /// Log entries at or below this sequence number are already in the table's checkpoint
    /// (or predate the table).
    pub fn base_seq(&self) -> u64 {
        self.checkpoint.as_ref().map_or(self.created_seq, |c| c.seq.max(self.created_seq))
    }
}

/// The whole of `schema.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    /// The commit this file describes.
    pub seq: u64,
    /// The newest checkpoint generation.
    pub generation: u64,
    pub next_table_id: u32,
    pub next_relation_id: u64,
    pub types: Vec<TypeDef>,
    pub tables: Vec<TableEntry>,
    pub relations: Vec<Relation>,
    /// CRC32 of the document's compact JSON with this field 0, set by [`to_json`](Self::to_json)
    /// and checked by [`from_json`](Self::from_json): without it, a flipped bit in a name or a
    /// number would still be valid JSON and silently describe another database.
    pub checksum: u32,
}

impl Manifest {
    /// An empty database.
    pub fn empty() -> Manifest {
        Manifest {
            format_version: MANIFEST_VERSION,
            seq: 0,
            generation: 0,
            next_table_id: 0,
            next_relation_id: 0,
            types: Vec::new(),
            tables: Vec::new(),
            relations: Vec::new(),
            checksum: 0,
        }
    }

    /// The manifest of a catalog and its tables, keeping the checkpoint entries of `previous`
    /// for tables whose schema version is unchanged.
    pub fn describe(catalog: &Catalog, tables: &[Arc<TableData>], seq: u64, previous: &Manifest) -> Manifest {
        let old: BTreeMap<u32, &TableEntry> = previous.tables.iter().map(|t| (t.id, t)).collect();
        let entries = tables
            .iter()
            .map(|t| {
                let prev = old.get(&t.id.0).filter(|p| p.version == t.version);
                TableEntry {
                    id: t.id.0,
                    name: t.schema.name.clone(),
                    fields: t.schema.field_defs(),
                    record_size: t.schema.record_size,
                    version: t.version,
                    created_seq: prev.map_or(seq, |p| p.created_seq),
                    checkpoint: prev.and_then(|p| p.checkpoint.clone()),
                }
            })
            .collect();
        Manifest {
            format_version: MANIFEST_VERSION,
            seq,
            generation: previous.generation,
            next_table_id: catalog.next_table_id,
            next_relation_id: catalog.next_relation_id,
            types: catalog.types.composites().filter_map(|t| catalog.types.type_def(&t.name)).collect(),
            tables: entries,
            relations: catalog.relations.values().cloned().collect(),
            checksum: 0,
        }
    }

    /// The checksum of the content: the CRC32 of the compact JSON with `checksum` 0 (compact,
    /// so that it does not depend on how the file is indented).
    fn content_checksum(&self) -> u32 {
        let mut m = self.clone();
        m.checksum = 0;
        crc32fast::hash(&serde_json::to_vec(&m).expect("a manifest always serializes"))
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.checksum = self.content_checksum();
        let mut out = serde_json::to_vec_pretty(&m).expect("a manifest always serializes");
        out.push(b'\n');
        out
    }

    /// Parses `schema.json`. Errors name the line and column.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("schema.json: {e}"))?;
        if m.format_version != MANIFEST_VERSION {
            return Err(format!(
                "schema.json: format_version {} is not supported (this build reads {MANIFEST_VERSION})",
                m.format_version
            ));
        }
        let expect = m.content_checksum();
        if m.checksum != expect {
            return Err(format!(
                "schema.json: checksum {:#010x} does not match the content ({expect:#010x}): the file is damaged",
                m.checksum
            ));
        }
        Ok(m)
    }

    /// Rebuilds the catalog and table schemas, validating everything: counts against the
    /// configured limits and numbers against their maximum first, then types (each after the
    /// ones it uses), then tables, then relations. Errors name what is inconsistent.
    pub fn catalog(&self, config: &Config) -> Result<(Catalog, Vec<TableSchema>), String> {
        for (what, count, limit) in [
            ("types", self.types.len(), config.max_types),
            ("tables", self.tables.len(), config.max_tables),
            ("relations", self.relations.len(), config.max_relations),
        ] {
            if count > limit {
                return Err(format!(
                    "schema.json: {count} {what}, more than the configured limit of {limit} {what}"
                ));
            }
        }
        if let Some(t) = self.tables.iter().find(|t| t.fields.len() > config.max_fields_per_table) {
            return Err(format!(
                "schema.json: table `{}` has {} fields, more than the configured limit of {} fields of one table",
                shown(&t.name),
                t.fields.len(),
                config.max_fields_per_table
            ));
        }
        for (what, value) in
            [("seq", self.seq), ("generation", self.generation), ("next_relation_id", self.next_relation_id)]
        {
            if value > MAX_SEQ {
                return Err(format!("schema.json: {what} {value} is above the maximum {MAX_SEQ}"));
            }
        }
        let mut types = TypeRegistry::new();
        for def in &self.types {
            types.register_type(def.clone()).map_err(|e| format!("schema.json: type `{}`: {e}", def.name))?;
        }
        let mut names = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let mut schemas = Vec::with_capacity(self.tables.len());
        for t in &self.tables {
            let what = format!("schema.json: table `{}`", t.name);
            if t.created_seq > MAX_SEQ {
                return Err(format!("{what}: created_seq {} is above the maximum {MAX_SEQ}", t.created_seq));
            }
            let schema =
                TableSchema::from_defs(&t.name, &t.fields, &mut types).map_err(|e| format!("{what}: {e}"))?;
            if schema.record_size != t.record_size {
                return Err(format!(
                    "{what}: record_size {} does not match its fields, which need {}",
                    t.record_size, schema.record_size
                ));
            }
            if t.id == 0 || t.id > self.next_table_id {
                return Err(format!("{what}: id {} is outside 1..={}", t.id, self.next_table_id));
            }
            if !ids.insert(t.id) {
                return Err(format!("{what}: id {} is used twice", t.id));
            }
            if names.insert(t.name.clone(), TableId(t.id)).is_some() {
                return Err(format!("{what}: the name is used twice"));
            }
            if let Some(c) = &t.checkpoint {
                let expect = checkpoint_file_name(&t.name, c.generation);
                if c.file != expect {
                    return Err(format!("{what}: checkpoint file `{}` should be named `{expect}`", c.file));
                }
                if c.seq > MAX_SEQ {
                    return Err(format!("{what}: checkpoint seq {} is above the maximum {MAX_SEQ}", c.seq));
                }
                // Later checkpoints take higher generations: one above the newest would be
                // written over by the next checkpoint.
                if c.generation > self.generation {
                    return Err(format!(
                        "{what}: checkpoint generation {} is above the newest generation {}",
                        c.generation, self.generation
                    ));
                }
            }
            schemas.push(schema);
        }
        let by_name: HashMap<&str, &TableSchema> = schemas.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut relations = BTreeMap::new();
        let mut relation_names = HashSet::new();
        for r in &self.relations {
            r.validate(|name| by_name.get(name).copied()).map_err(|e| format!("schema.json: {e}"))?;
            if !relation_names.insert(r.name.as_str()) {
                return Err(format!("schema.json: relation `{}`: the name is used twice", r.name));
            }
            if r.id.0 == 0 || r.id.0 > self.next_relation_id {
                return Err(format!(
                    "schema.json: relation `{}`: id {} is outside 1..={}",
                    r.name, r.id, self.next_relation_id
                ));
            }
            if relations.insert(r.id, r.clone()).is_some() {
                return Err(format!("schema.json: relation id {} is used twice", r.id));
            }
        }
        let catalog = Catalog {
            types,
            names,
            relations,
            next_table_id: self.next_table_id,
            next_relation_id: self.next_relation_id,
        };
        Ok((catalog, schemas))
    }

    /// File names under `data/` that this manifest refers to.
    pub fn files(&self) -> BTreeSet<String> {
        self.tables.iter().filter_map(|t| t.checkpoint.as_ref().map(|c| c.file.clone())).collect()
    }

    /// Log entries at or below this sequence number are covered by checkpoints (or by the
    /// creation of every table), so the segments holding only them can go.
    pub fn log_floor(&self) -> u64 {
        self.tables.iter().map(TableEntry::base_seq).min().unwrap_or(self.seq)
    }
}

/// `player.7.bin`.
pub fn checkpoint_file_name(table: &str, generation: u64) -> String {
    format!("{table}.{generation}.bin")
}
