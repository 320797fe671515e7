//! Every rejected input gets its own typed error and changes nothing: the snapshot sequence,
//! every table's records, schemas and next ids, and the relations are compared before and
//! after each refusal.

use tabledb::schema::{FieldDef, SchemaError};
use tabledb::types::ValueError;
use tabledb::{CommitSeq, Config, Database, Error, ErrorKind, FixedStr, RecordId, Table, TableId};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    qty: u64,
    price: i32,
    active: bool,
    kind: u8,
    code: u16,
    label: FixedStr<6>,
}

fn item(qty: u64) -> Item {
    Item { qty, price: -3, active: true, kind: 2, code: 9, label: FixedStr::new("ab").unwrap() }
}

/// The run-time table: padding at 1..4 (before `n`) and 22..24 (before `big`).
fn gadget_defs() -> Vec<FieldDef> {
    vec![
        FieldDef::new("flag", "bool"),
        FieldDef::new("n", "u32"),
        FieldDef::string("name", 10),
        FieldDef::new("w", "u16"),
        FieldDef::new("big", "u64"),
    ]
}

const GADGET_SIZE: usize = 32;
const NAME_AT: usize = 8;

/// A valid gadget record.
fn gadget(n: u32, name: &str) -> Vec<u8> {
    let mut b = vec![0u8; GADGET_SIZE];
    b[0] = 1;
    b[4..8].copy_from_slice(&n.to_le_bytes());
    b[NAME_AT..NAME_AT + 2].copy_from_slice(&(name.len() as u16).to_le_bytes());
    b[NAME_AT + 2..NAME_AT + 2 + name.len()].copy_from_slice(name.as_bytes());
    b[20..22].copy_from_slice(&7u16.to_le_bytes());
    b[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
    b
}

/// A table as a user sees it: name, fields (name, offset, type) and records.
type TableState = (String, Vec<(String, usize, String)>, Vec<(RecordId, Vec<u8>)>);

/// Everything a user can observe of a database, to compare before and after a refusal.
#[derive(Debug, PartialEq)]
struct State {
    seq: CommitSeq,
    tables: Vec<TableState>,
    relations: Vec<tabledb::schema::Relation>,
    /// The next id of each table. A create refused at commit has used its id (ids are never
    /// handed out twice); one refused when it is staged has not.
    next_ids: Vec<RecordId>,
}

fn state(db: &Database) -> State {
    let snap = db.snapshot();
    let tables = snap
        .table_names()
        .map(|name| {
            let raw = snap.raw_table(name).unwrap();
            let schema = raw
                .schema()
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.offset, f.layout.name.clone()))
                .collect();
            let records = raw.iter().map(|(id, b)| (id, b.to_vec())).collect();
            (name.to_owned(), schema, records)
        })
        .collect();
    let next_ids = snap.table_names().map(|name| snap.raw_table(name).unwrap().next_id()).collect();
    State { seq: snap.seq(), tables, relations: snap.relations().cloned().collect(), next_ids }
}

/// A database with both tables and a few records: items 1..=3, gadgets 1..=3.
fn setup() -> (Database, tabledb::TableRef<Item>) {
    setup_with(Config::default())
}

fn setup_with(config: Config) -> (Database, tabledb::TableRef<Item>) {
    let db = Database::with_config(config);
    let items = db.create_table::<Item>().unwrap();
    db.create_table_from_defs("gadgets", &gadget_defs()).unwrap();
    let mut tx = db.begin();
    for i in 0..3 {
        tx.insert(items, &item(i)).unwrap();
        tx.create_record("gadgets", &gadget(i as u32, "abc")).unwrap();
    }
    tx.commit().unwrap();
    (db, items)
}

/// Runs `op`, which must fail with `expected`, and checks that the database did not change.
#[track_caller]
fn refused<T: std::fmt::Debug>(db: &Database, expected: Error, op: impl FnOnce() -> tabledb::Result<T>) {
    let before = state(db);
    let result = op();
    assert_eq!(result.unwrap_err(), expected);
    assert_eq!(state(db), before, "a refused operation changed the database");
}

/// Like [`refused`], for a create refused at commit, which has used up its id.
#[track_caller]
fn refused_at_commit<T: std::fmt::Debug>(
    db: &Database,
    expected: Error,
    op: impl FnOnce() -> tabledb::Result<T>,
) {
    let before = state(db);
    let result = op();
    assert_eq!(result.unwrap_err(), expected);
    let after = state(db);
    assert_eq!(State { next_ids: Vec::new(), ..after }, State { next_ids: Vec::new(), ..before });
}

fn schema_err(e: SchemaError) -> Error {
    Error::Schema(e)
}

fn invalid(field: &str, source: ValueError) -> Error {
    schema_err(SchemaError::InvalidValue { field: field.into(), source })
}

#[test]
fn wrong_record_size_is_refused() {
    let (db, items) = setup();
    for len in [0, 1, GADGET_SIZE - 1, GADGET_SIZE + 1, 2 * GADGET_SIZE] {
        let bad = vec![0u8; len];
        let err =
            schema_err(SchemaError::RecordSize { table: "gadgets".into(), expected: GADGET_SIZE, got: len });
        refused(&db, err.clone(), || db.create_record("gadgets", &bad));
        refused(&db, err.clone(), || db.update_record("gadgets", RecordId(1), &bad));
        assert_eq!(err.kind(), ErrorKind::BadInput);
    }
    let err = schema_err(SchemaError::RecordSize { table: "item".into(), expected: 24, got: 23 });
    refused(&db, err.clone(), || db.create_record(items, &[0u8; 23]));
    refused(&db, err, || db.update_record("item", RecordId(2), &[0u8; 23]));

    // Inside a transaction: the refused write leaves no trace, the others still commit.
    let before = state(&db);
    let mut tx = db.begin();
    assert!(tx.create_record("gadgets", &[0u8; 5]).is_err());
    assert!(!tx.has_writes());
    let id = tx.create_record("gadgets", &gadget(77, "ok")).unwrap();
    assert!(tx.update_record("gadgets", id, &[1u8; 40]).is_err());
    assert_eq!(tx.read_record("gadgets", id).unwrap(), &gadget(77, "ok")[..]);
    tx.commit().unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.seq().0, before.seq.0 + 1);
    assert_eq!(snap.read_record("gadgets", id).unwrap(), &gadget(77, "ok")[..]);
}

#[test]
fn invalid_bool_is_refused() {
    let (db, items) = setup();
    let mut bad = gadget(1, "x");
    bad[0] = 2;
    let err = invalid("flag", ValueError::InvalidBool(2));
    refused(&db, err.clone(), || db.create_record("gadgets", &bad));
    refused(&db, err.clone(), || db.update_record("gadgets", RecordId(1), &bad));
    refused(&db, err, || db.partial_update("gadgets", RecordId(1), "flag", &[2]));
    refused(&db, invalid("flag", ValueError::InvalidBool(255)), || {
        db.partial_update("gadgets", RecordId(1), "flag", &[255])
    });

    let mut bytes = item(1).as_bytes().to_vec();
    bytes[Item::ACTIVE_OFFSET] = 7;
    let err = invalid("active", ValueError::InvalidBool(7));
    refused(&db, err.clone(), || db.create_record(items, &bytes));
    refused(&db, err.clone(), || db.update_record(items, RecordId(1), &bytes));
    refused(&db, err, || db.partial_update(items, RecordId(1), "active", &[7]));
}

#[test]
fn non_zero_padding_is_refused() {
    let (db, _) = setup();
    for offset in [1, 2, 3, 22, 23] {
        let mut bad = gadget(1, "x");
        bad[offset] = 0x80;
        let err = schema_err(SchemaError::NonZeroPadding { table: "gadgets".into(), offset });
        refused(&db, err.clone(), || db.create_record("gadgets", &bad));
        refused(&db, err, || db.update_record("gadgets", RecordId(3), &bad));
    }
}

#[test]
fn invalid_strings_are_refused() {
    let (db, items) = setup();
    // Not UTF-8.
    let mut bad = gadget(1, "ab");
    bad[NAME_AT + 2..NAME_AT + 4].copy_from_slice(&[0xff, 0xfe]);
    let err = invalid("name", ValueError::InvalidUtf8);
    refused(&db, err.clone(), || db.create_record("gadgets", &bad));
    refused(&db, err.clone(), || db.update_record("gadgets", RecordId(1), &bad));
    refused(&db, err, || db.partial_update("gadgets", RecordId(1), "name", &bad[NAME_AT..NAME_AT + 12]));
    // A character cut in half is not UTF-8 either.
    let mut cut = gadget(1, "é");
    cut[NAME_AT..NAME_AT + 2].copy_from_slice(&1u16.to_le_bytes());
    cut[NAME_AT + 3] = 0;
    refused(&db, invalid("name", ValueError::InvalidUtf8), || db.create_record("gadgets", &cut));

    // Longer than the capacity.
    let mut long = gadget(1, "abcdefghij");
    long[NAME_AT..NAME_AT + 2].copy_from_slice(&11u16.to_le_bytes());
    let err = invalid("name", ValueError::StringTooLong { len: 11, capacity: 10 });
    refused(&db, err.clone(), || db.create_record("gadgets", &long));
    refused(&db, err, || db.partial_update("gadgets", RecordId(2), "name", &long[NAME_AT..NAME_AT + 12]));

    // Bytes after the end of the string.
    let mut tail = gadget(1, "a");
    tail[NAME_AT + 5] = b'z';
    let err = invalid("name", ValueError::StringTail);
    refused(&db, err.clone(), || db.create_record("gadgets", &tail));
    refused(&db, err, || db.update_record("gadgets", RecordId(2), &tail));

    // The same rules hold for a derived table's FixedStr field.
    let mut bytes = item(1).as_bytes().to_vec();
    bytes[Item::LABEL_OFFSET..Item::LABEL_OFFSET + 2].copy_from_slice(&7u16.to_le_bytes());
    let err = invalid("label", ValueError::StringTooLong { len: 7, capacity: 6 });
    refused(&db, err.clone(), || db.create_record(items, &bytes));
    refused(&db, err, || db.partial_update(items, RecordId(1), "label", &bytes[Item::LABEL_OFFSET..]));
}

#[test]
fn partial_updates_need_a_known_field_and_a_value_of_its_size() {
    let (db, items) = setup();
    for field in ["nope", "id", "", "N", "flag "] {
        let err = schema_err(SchemaError::UnknownField { table: "gadgets".into(), field: field.into() });
        refused(&db, err.clone(), || db.partial_update("gadgets", RecordId(1), field, &[0]));
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert_eq!(err.code(), "unknown_field");
    }
    let err = schema_err(SchemaError::UnknownField { table: "item".into(), field: "gadget".into() });
    refused(&db, err, || db.partial_update(items, RecordId(1), "gadget", &[0]));

    for (field, expected, got) in [("n", 4, 3), ("n", 4, 8), ("big", 8, 0), ("name", 12, 11), ("flag", 1, 2)]
    {
        let err = invalid(field, ValueError::SizeMismatch { expected, got });
        refused(&db, err, || db.partial_update("gadgets", RecordId(1), field, &vec![0u8; got]));
    }
    refused(&db, invalid("qty", ValueError::SizeMismatch { expected: 8, got: 4 }), || {
        db.partial_update(items, RecordId(1), "qty", &[1, 2, 3, 4])
    });
}

#[test]
fn unknown_tables_are_refused() {
    let (db, _) = setup();
    let unknown = || Error::UnknownTable("nope".into());
    refused(&db, unknown(), || db.create_record("nope", &[0u8; 8]));
    refused(&db, unknown(), || db.update_record("nope", RecordId(1), &[0u8; 8]));
    refused(&db, unknown(), || db.partial_update("nope", RecordId(1), "x", &[0u8; 8]));
    refused(&db, unknown(), || db.delete_record("nope", RecordId(1)));
    refused(&db, unknown(), || db.drop_table("nope"));
    refused(&db, unknown(), || db.compact_table("nope"));
    refused(&db, unknown(), || db.add_field("nope", &FieldDef::new("x", "u8")));
    refused(&db, unknown(), || db.remove_field("nope", "x"));
    let snap = db.snapshot();
    assert_eq!(snap.read_record("nope", RecordId(1)).unwrap_err(), unknown());
    assert_eq!(snap.raw_table("nope").unwrap_err(), unknown());
    assert_eq!(snap.len("nope").unwrap_err(), unknown());
    assert_eq!(snap.schema("nope").unwrap_err(), unknown());
    assert_eq!(unknown().kind(), ErrorKind::NotFound);
    let tx = db.begin();
    assert_eq!(tx.read_record("nope", RecordId(1)).unwrap_err(), unknown());
    assert_eq!(tx.len("nope").unwrap_err(), unknown());
    // By an id that was never given out.
    let by_id = Error::UnknownTable("#999".into());
    refused(&db, by_id.clone(), || db.create_record(TableId(999), &[0u8; 8]));
    assert_eq!(snap.len(TableId(999)).unwrap_err(), by_id);
    // A relation naming a table that does not exist.
    let before = state(&db);
    assert!(matches!(
        db.create_relation(None, "gadgets", "big", "nope", "id"),
        Err(Error::Schema(SchemaError::InvalidRelation { .. }))
    ));
    assert_eq!(state(&db), before);
}

#[test]
fn unknown_and_deleted_ids_are_refused() {
    let (db, items) = setup();
    let missing = |t: &str, id: u64| Error::RecordNotFound { table: t.into(), id: RecordId(id) };
    for id in [0, 4, 1000, u64::MAX] {
        refused(&db, missing("gadgets", id), || db.update_record("gadgets", RecordId(id), &gadget(1, "")));
        refused(&db, missing("gadgets", id), || db.partial_update("gadgets", RecordId(id), "n", &[1; 4]));
        refused(&db, missing("gadgets", id), || db.delete_record("gadgets", RecordId(id)));
        refused(&db, missing("item", id), || db.update(items, RecordId(id), &item(1)));
        refused(&db, missing("item", id), || db.set(items, RecordId(id), Item::QTY, 1));
        refused(&db, missing("item", id), || db.delete(items, RecordId(id)));
        assert_eq!(db.snapshot().read_record("item", RecordId(id)).unwrap_err(), missing("item", id));
        assert!(db.snapshot().get(items, RecordId(id)).is_none());
    }
    assert_eq!(missing("item", 1).kind(), ErrorKind::NotFound);

    // Deleted records: delete twice, then any write.
    db.delete(items, RecordId(2)).unwrap();
    db.delete_record("gadgets", RecordId(2)).unwrap();
    refused(&db, missing("item", 2), || db.delete(items, RecordId(2)));
    refused(&db, missing("item", 2), || db.update(items, RecordId(2), &item(5)));
    refused(&db, missing("item", 2), || db.set(items, RecordId(2), Item::PRICE, 5));
    refused(&db, missing("item", 2), || db.partial_update(items, RecordId(2), "qty", &[0; 8]));
    refused(&db, missing("gadgets", 2), || db.delete_record("gadgets", RecordId(2)));
    refused(&db, missing("gadgets", 2), || db.update_record("gadgets", RecordId(2), &gadget(1, "")));
    refused(&db, missing("gadgets", 2), || db.partial_update("gadgets", RecordId(2), "n", &[0; 4]));
    assert_eq!(db.snapshot().read_record("gadgets", RecordId(2)).unwrap_err(), missing("gadgets", 2));

    // Within one transaction: deleted, inserted-then-deleted.
    let before = state(&db);
    let mut tx = db.begin();
    tx.delete(items, RecordId(1)).unwrap();
    assert_eq!(tx.delete(items, RecordId(1)).unwrap_err(), missing("item", 1));
    assert_eq!(tx.update(items, RecordId(1), &item(1)).unwrap_err(), missing("item", 1));
    assert_eq!(tx.get(items, RecordId(1)).unwrap(), None);
    let id = tx.insert(items, &item(9)).unwrap();
    tx.delete(items, id).unwrap();
    assert_eq!(tx.set(items, id, Item::QTY, 1).unwrap_err(), missing("item", id.0));
    assert_eq!(tx.read_record(items, id).unwrap_err(), missing("item", id.0));
    tx.abort();
    let after = state(&db);
    assert_eq!(after.seq, before.seq);
    assert_eq!(after.tables[0].2, before.tables[0].2, "the aborted transaction left nothing");
}

#[test]
fn records_per_table_limit_is_refused_at_create_time() {
    let (db, _) = setup_with(Config { max_records_per_table: 10, ..Config::default() });
    // 3 records exist; 7 more fit.
    let mut tx = db.begin();
    for i in 0..7 {
        tx.create_record("gadgets", &gadget(i, "")).unwrap();
    }
    let limit = Error::LimitReached { what: "records per table", limit: 10 };
    assert_eq!(tx.create_record("gadgets", &gadget(99, "")).unwrap_err(), limit);
    assert_eq!(limit.kind(), ErrorKind::Limit);
    tx.commit().unwrap();
    assert_eq!(db.snapshot().len("gadgets").unwrap(), 10);
    refused(&db, limit.clone(), || db.create_record("gadgets", &gadget(11, "")));
    // The other table has its own count.
    db.create_record("item", item(1).as_bytes()).unwrap();
    // A deleted record frees its place.
    db.delete_record("gadgets", RecordId(1)).unwrap();
    db.create_record("gadgets", &gadget(12, "")).unwrap();
    refused(&db, limit.clone(), || db.create_record("gadgets", &gadget(13, "")));

    // Two transactions that each fit but not together: the second is refused at commit.
    db.delete_record("gadgets", RecordId(3)).unwrap();
    db.delete_record("gadgets", RecordId(4)).unwrap();
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    t1.create_record("gadgets", &gadget(20, "")).unwrap();
    t1.create_record("gadgets", &gadget(21, "")).unwrap();
    t2.create_record("gadgets", &gadget(22, "")).unwrap();
    t1.commit().unwrap();
    refused_at_commit(&db, limit, || t2.commit());
    assert_eq!(db.snapshot().len("gadgets").unwrap(), 10);
}

#[test]
fn database_bytes_limit_is_refused_at_commit() {
    // Room for 10 gadget records and nothing else.
    let config = Config { max_database_bytes: 10 * GADGET_SIZE as u64, ..Config::default() };
    let db = Database::with_config(config);
    db.create_table_from_defs("gadgets", &gadget_defs()).unwrap();
    let mut tx = db.begin();
    for i in 0..10 {
        tx.create_record("gadgets", &gadget(i, "")).unwrap();
    }
    tx.commit().unwrap();
    let limit = Error::LimitReached { what: "database bytes", limit: 10 * GADGET_SIZE as u64 };
    let before = state(&db);
    let mut tx = db.begin();
    // Staging is not refused: the limit counts what commits.
    tx.create_record("gadgets", &gadget(10, "")).unwrap();
    assert_eq!(tx.commit().unwrap_err(), limit);
    assert_eq!(limit.kind(), ErrorKind::Limit);
    let after = state(&db);
    assert_eq!((after.seq, &after.tables), (before.seq, &before.tables));
    // Soft-deleted records still hold their bytes until compaction.
    db.delete_record("gadgets", RecordId(5)).unwrap();
    refused_at_commit(&db, limit.clone(), || db.create_record("gadgets", &gadget(11, "")));
    db.compact_table("gadgets").unwrap();
    let id = db.create_record("gadgets", &gadget(12, "")).unwrap();
    assert_eq!(db.snapshot().read_record("gadgets", id).unwrap(), &gadget(12, "")[..]);
    refused_at_commit(&db, limit.clone(), || db.create_record("gadgets", &gadget(13, "")));
    assert_eq!(db.snapshot().len("gadgets").unwrap(), 10);

    // A field that widens the records past the limit is refused too.
    refused(&db, limit, || db.add_field("gadgets", &FieldDef::new("extra", "u8")));
    let mut tx = db.begin();
    let newest: Vec<RecordId> =
        db.snapshot().raw_table("gadgets").unwrap().iter().map(|(id, _)| id).collect();
    for id in newest.into_iter().rev().take(5) {
        tx.delete_record("gadgets", id).unwrap();
    }
    tx.commit().unwrap();
    db.add_field("gadgets", &FieldDef::new("extra", "u8")).unwrap();
    assert_eq!(db.snapshot().schema("gadgets").unwrap().record_size, 40);
}

#[test]
fn table_limit_and_duplicate_tables_are_refused() {
    let db = Database::with_config(Config { max_tables: 2, ..Config::default() });
    db.create_table::<Item>().unwrap();
    refused(&db, Error::TableExists("item".into()), || db.create_table::<Item>());
    refused(&db, Error::TableExists("item".into()), || db.create_table_from_defs("item", &gadget_defs()));
    assert_eq!(Error::TableExists("x".into()).kind(), ErrorKind::Conflict);
    db.create_table_from_defs("gadgets", &gadget_defs()).unwrap();
    refused(&db, Error::TableExists("gadgets".into()), || {
        db.create_table_from_defs("gadgets", &gadget_defs())
    });
    let limit = Error::LimitReached { what: "tables", limit: 2 };
    refused(&db, limit.clone(), || db.create_table_from_defs("third", &[FieldDef::new("x", "u8")]));
    // Dropping one makes room again.
    db.drop_table("gadgets").unwrap();
    db.create_table_from_defs("third", &[FieldDef::new("x", "u8")]).unwrap();
    refused(&db, limit, || db.create_table_from_defs("fourth", &[FieldDef::new("x", "u8")]));
}

#[test]
fn invalid_table_definitions_are_refused() {
    let (db, _) = setup();
    let bad_name = |name: &str| {
        let before = state(&db);
        let result = db.create_table_from_defs(name, &[FieldDef::new("x", "u8")]);
        assert!(
            matches!(result, Err(Error::Schema(SchemaError::InvalidName { what: "table", .. }))),
            "{name:?}: {result:?}"
        );
        assert_eq!(state(&db), before);
    };
    for name in ["", "Upper", "1abc", "a-b", "../x", &"x".repeat(64)] {
        bad_name(name);
    }
    refused(&db, schema_err(SchemaError::NoFields("empty".into())), || {
        db.create_table_from_defs("empty", &[])
    });
    refused(
        &db,
        schema_err(SchemaError::DuplicateField { table: "twice".into(), field: "x".into() }),
        || db.create_table_from_defs("twice", &[FieldDef::new("x", "u8"), FieldDef::new("x", "u16")]),
    );
    let before = state(&db);
    assert!(matches!(
        db.create_table_from_defs("typo", &[FieldDef::new("x", "u33")]),
        Err(Error::Schema(SchemaError::FieldType { .. }))
    ));
    assert!(matches!(
        db.create_table_from_defs("reserved", &[FieldDef::new("id", "u64")]),
        Err(Error::Schema(SchemaError::InvalidName { what: "field", .. }))
    ));
    assert!(matches!(
        db.add_field("gadgets", &FieldDef::new("n", "u8")),
        Err(Error::Schema(SchemaError::DuplicateField { .. }))
    ));
    assert!(matches!(
        db.remove_field("gadgets", "nope"),
        Err(Error::Schema(SchemaError::UnknownField { .. }))
    ));
    assert_eq!(state(&db), before);
}

#[test]
fn dropping_a_table_a_relation_uses_is_refused() {
    let (db, _) = setup();
    let rel = db.create_relation(Some("gadget_item"), "gadgets", "big", "item", "id");
    // `big` holds u64::MAX, which names no item.
    assert!(matches!(rel, Err(Error::Constraint { .. })), "{rel:?}");
    for id in 1..=3 {
        db.partial_update("gadgets", RecordId(id), "big", &id.to_le_bytes()).unwrap();
    }
    let rel = db.create_relation(Some("gadget_item"), "gadgets", "big", "item", "id").unwrap();
    for table in ["item", "gadgets"] {
        let before = state(&db);
        match db.drop_table(table) {
            Err(e @ Error::Constraint { .. }) => {
                assert_eq!(e.kind(), ErrorKind::Conflict);
                let Error::Constraint { relation, .. } = e else { unreachable!() };
                assert_eq!(relation, "gadget_item");
            }
            other => panic!("dropping {table}: {other:?}"),
        }
        assert_eq!(state(&db), before);
    }
    let before = state(&db);
    assert!(matches!(db.remove_field("gadgets", "big"), Err(Error::Constraint { .. })));
    assert_eq!(state(&db), before);
    db.drop_relation(rel.id).unwrap();
    db.drop_table("gadgets").unwrap();
}

#[test]
fn typed_access_to_a_table_of_another_shape_is_refused() {
    // A run-time table named like the derived type, with `price` as u32 instead of i32.
    let db = Database::new();
    let defs = [
        FieldDef::new("qty", "u64"),
        FieldDef::new("price", "u32"),
        FieldDef::new("active", "bool"),
        FieldDef::new("kind", "u8"),
        FieldDef::new("code", "u16"),
        FieldDef::string("label", 6),
    ];
    db.create_table_from_defs("item", &defs).unwrap();
    let before = state(&db);
    match db.table::<Item>() {
        Err(Error::SchemaMismatch { table, detail, .. }) => {
            assert_eq!(table, "item");
            assert!(detail.contains("price"), "the message names the differing field: {detail}");
            assert!(!detail.contains("qty"), "and only that one: {detail}");
        }
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    assert_eq!(state(&db), before);

    // A missing field is named too.
    let db = Database::new();
    db.create_table_from_defs("item", &defs[..5]).unwrap();
    match db.table::<Item>() {
        Err(Error::SchemaMismatch { detail, .. }) => assert!(detail.contains("label"), "{detail}"),
        other => panic!("expected a schema mismatch, got {other:?}"),
    }
    // So is an extra one.
    let db = Database::new();
    let mut more = defs.to_vec();
    more.push(FieldDef::new("extra", "u8"));
    db.create_table_from_defs("item", &more).unwrap();
    match db.table::<Item>() {
        Err(Error::SchemaMismatch { detail, .. }) => assert!(detail.contains("extra"), "{detail}"),
        other => panic!("expected a schema mismatch, got {other:?}"),
    }

    // The same fields as the derived type: accepted.
    let db = Database::new();
    let mut same = defs.to_vec();
    same[1] = FieldDef::new("price", "i32");
    db.create_table_from_defs("item", &same).unwrap();
    let items = db.table::<Item>().unwrap();
    let id = db.insert(items, &item(4)).unwrap();
    assert_eq!(db.snapshot().get(items, id), Some(&item(4)));
}

#[test]
fn a_typed_handle_is_refused_after_its_table_changed() {
    let (db, items) = setup();
    let mut open = db.begin();
    open.set(items, RecordId(1), Item::QTY, 500).unwrap();
    db.add_field("item", &FieldDef::new("extra", "u32")).unwrap();

    let mismatch = |e: Error| match e {
        Error::SchemaMismatch { table, .. } => assert_eq!(table, "item"),
        other => panic!("expected a schema mismatch, got {other:?}"),
    };
    let before = state(&db);
    mismatch(db.insert(items, &item(1)).unwrap_err());
    mismatch(db.update(items, RecordId(1), &item(1)).unwrap_err());
    mismatch(db.set(items, RecordId(1), Item::QTY, 1).unwrap_err());
    mismatch(db.delete(items, RecordId(1)).unwrap_err());
    mismatch(db.begin().get(items, RecordId(1)).unwrap_err());
    mismatch(db.snapshot().table(items).unwrap_err());
    assert!(db.snapshot().get(items, RecordId(1)).is_none(), "a stale handle reads nothing");
    mismatch(db.table::<Item>().unwrap_err());
    assert_eq!(state(&db), before);

    // A transaction that wrote through the handle before the change cannot commit.
    assert!(matches!(open.commit(), Err(Error::Conflict { id: None, .. })));
    assert_eq!(state(&db), before);

    // Untyped access works with the new layout, and the old fields kept their values.
    let snap = db.snapshot();
    let rec = snap.read_record("item", RecordId(1)).unwrap();
    assert_eq!(rec.len(), 32);
    assert_eq!(&rec[..24], item(0).as_bytes());
    assert_eq!(&rec[24..], &[0u8; 8]);

    // Removing the field again restores the layout: a fresh handle works, the old one too
    // (it describes the same layout).
    db.remove_field("item", "extra").unwrap();
    let fresh = db.table::<Item>().unwrap();
    assert_eq!(db.snapshot().get(fresh, RecordId(1)), Some(&item(0)));
    assert_eq!(db.snapshot().get(items, RecordId(1)), Some(&item(0)));
}

#[test]
fn a_transaction_of_another_database_is_refused_by_a_group_commit() {
    let (db, items) = setup();
    let other = Database::new();
    let theirs = other.create_table::<Item>().unwrap();
    let mut foreign = other.begin();
    foreign.insert(theirs, &item(77)).unwrap();
    let mut own = db.begin();
    own.insert(items, &item(78)).unwrap();
    let before = state(&db);
    let (results, rest) = db.commit_group(vec![foreign, own]);
    assert!(rest.is_empty());
    assert!(matches!(results[0], Err(Error::ForeignTransaction)), "{:?}", results[0]);
    assert!(results[1].is_ok(), "the group goes on: {:?}", results[1]);
    let after = state(&db);
    assert_ne!(after, before);
    assert!(
        db.snapshot().table(items).unwrap().iter().all(|(_, r)| r.qty != 77),
        "nothing of the foreign one is applied"
    );
    assert_eq!(other.snapshot().len(theirs).unwrap(), 0);
}

/// A table has at most `max_fields_per_table` fields: a wider table, or a field past the
/// limit, is refused and changes nothing.
#[test]
fn fields_per_table_are_limited() {
    let db = Database::with_config(Config { max_fields_per_table: 3, ..Config::default() });
    let defs = |n: usize| -> Vec<FieldDef> { (0..n).map(|i| FieldDef::new(format!("f{i}"), "u8")).collect() };
    let err = db.create_table_from_defs("wide", &defs(4)).unwrap_err();
    assert_eq!(err, Error::LimitReached { what: "fields of one table", limit: 3 });
    assert_eq!(err.kind(), ErrorKind::Limit);
    assert!(db.snapshot().schema("wide").is_err(), "nothing was created");
    db.create_table_from_defs("full", &defs(3)).unwrap();
    let err = db.add_field("full", &FieldDef::new("more", "u8")).unwrap_err();
    assert_eq!(err, Error::LimitReached { what: "fields of one table", limit: 3 });
    assert_eq!(db.snapshot().schema("full").unwrap().fields.len(), 3);
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[table(name = "narrow")]
struct Narrow1 {
    a: u64,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[table(name = "narrow")]
struct Narrow3 {
    a: u64,
    b: u64,
    c: u64,
}

/// Migrating a table to a wider type is held to the same field limit as creating one.
#[test]
fn migrating_a_table_past_the_field_limit_is_refused() {
    let db = Database::with_config(Config { max_fields_per_table: 2, ..Config::default() });
    db.create_table::<Narrow1>().unwrap();
    let err = db.ensure_table::<Narrow3>().unwrap_err();
    assert_eq!(err, Error::LimitReached { what: "fields of one table", limit: 2 });
    assert_eq!(db.snapshot().schema("narrow").unwrap().fields.len(), 1, "nothing changed");
}

#[derive(tabledb::FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pt {
    x: f32,
    y: f32,
}

#[derive(tabledb::FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Seg {
    a: Pt,
    b: Pt,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[table(name = "shapes")]
struct Shape {
    s: Seg,
}

/// The composite types a derived table's fields bring count against `max_types` like those
/// registered one by one.
#[test]
fn a_derived_table_bringing_more_types_than_the_limit_is_refused() {
    let db = Database::with_config(Config { max_types: 1, ..Config::default() });
    let err = db.create_table::<Shape>().map(|_| ()).unwrap_err();
    assert_eq!(err, Error::LimitReached { what: "types", limit: 1 });
    let snap = db.snapshot();
    assert_eq!(snap.types().composites().count(), 0, "no type was registered");
    assert!(snap.schema("shapes").is_err(), "no table was created");
    let db = Database::with_config(Config { max_types: 2, ..Config::default() });
    db.create_table::<Shape>().unwrap();
    assert_eq!(db.snapshot().types().composites().count(), 2);
}
