//! Table schemas: layout of fields, every refused change with its own error (and the schema
//! unchanged after it), record validation, records to and from JSON, relations, and derived
//! schemas agreeing with run-time ones.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tabledb::schema::{
    FieldDef, NameError, Relation, RelationId, SchemaError, TableSchema, validate_field_name, validate_name,
};
use tabledb::types::{MAX_RECORD_SIZE, MemberDef, TypeDef, TypeError, TypeLayout, TypeRegistry, ValueError};
use tabledb::{FieldType, FixedStr, Table};

fn ty(reg: &mut TypeRegistry, name: &str) -> Arc<TypeLayout> {
    reg.resolve(name).unwrap_or_else(|e| panic!("resolve `{name}`: {e}"))
}

fn schema(reg: &mut TypeRegistry, name: &str, fields: &[(&str, &str)]) -> TableSchema {
    let defs: Vec<FieldDef> = fields.iter().map(|(n, t)| FieldDef::new(*n, *t)).collect();
    TableSchema::from_defs(name, &defs, reg).unwrap_or_else(|e| panic!("schema `{name}`: {e}"))
}

fn offsets(s: &TableSchema) -> Vec<(&str, usize)> {
    s.fields.iter().map(|f| (f.name.as_str(), f.offset)).collect()
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn fields_are_laid_out_in_order_at_aligned_offsets() {
    let mut reg = TypeRegistry::new();
    let s =
        schema(&mut reg, "mixed", &[("a", "u8"), ("b", "u32"), ("c", "u16"), ("d", "f64"), ("e", "bool")]);
    assert_eq!(offsets(&s), [("a", 0), ("b", 4), ("c", 8), ("d", 16), ("e", 24)]);
    assert_eq!(s.record_size, 32, "rounded up to the alignment of f64");
    assert_eq!(s.align, 8);
    for f in &s.fields {
        assert_eq!(f.offset % f.layout.align, 0, "{}", f.name);
        assert_eq!(f.type_id, f.layout.id);
        assert_eq!(f.range(), f.offset..f.offset + f.layout.size);
    }
    assert!(!s.any_bytes_valid(), "padding and a bool must be checked");

    let packed = schema(&mut reg, "packed", &[("x", "f32"), ("y", "f32"), ("hp", "u32")]);
    assert_eq!((packed.record_size, packed.align), (12, 4));
    assert!(packed.any_bytes_valid());
}

#[test]
fn new_takes_layouts_and_from_defs_takes_type_names() {
    let mut reg = TypeRegistry::new();
    let by_layout = TableSchema::new(
        "t",
        [("a".to_owned(), ty(&mut reg, "u8")), ("s".to_owned(), ty(&mut reg, "string(5)"))],
    )
    .unwrap();
    let by_name =
        TableSchema::from_defs("t", &[FieldDef::new("a", "u8"), FieldDef::string("s", 5)], &mut reg).unwrap();
    assert_eq!(by_layout, by_name);
    assert_eq!(by_name.record_size, 8);
    assert_eq!(by_name.field_defs(), [FieldDef::new("a", "u8"), FieldDef::new("s", "string(5)")]);

    let default_string = schema(&mut reg, "t", &[("s", "string")]);
    assert_eq!(default_string.fields[0].layout.name, "string(256)");
    assert_eq!(default_string.record_size, 258);
}

#[test]
fn from_defs_refuses_unknown_types_naming_the_field() {
    let mut reg = TypeRegistry::new();
    let err =
        TableSchema::from_defs("t", &[FieldDef::new("a", "u8"), FieldDef::new("pos", "vec9")], &mut reg)
            .unwrap_err();
    assert_eq!(
        err,
        SchemaError::FieldType { field: "pos".into(), source: TypeError::UnknownType("vec9".into()) }
    );
    let err =
        TableSchema::from_defs("t", &[FieldDef { max_len: Some(3), ..FieldDef::new("n", "u32") }], &mut reg)
            .unwrap_err();
    assert_eq!(
        err,
        SchemaError::FieldType { field: "n".into(), source: TypeError::MaxLenOnNonString("u32".into()) }
    );
    let err = TableSchema::from_defs("t", &[FieldDef::string("n", 0)], &mut reg).unwrap_err();
    assert_eq!(err, SchemaError::FieldType { field: "n".into(), source: TypeError::BadStringCapacity(0) });
}

#[test]
fn a_table_needs_a_valid_name_and_at_least_one_field() {
    let mut reg = TypeRegistry::new();
    assert_eq!(TableSchema::from_defs("t", &[], &mut reg), Err(SchemaError::NoFields("t".into())));
    let err = TableSchema::from_defs("../x", &[FieldDef::new("a", "u8")], &mut reg).unwrap_err();
    assert_eq!(
        err,
        SchemaError::InvalidName {
            what: "table",
            name: "../x".into(),
            source: NameError::InvalidChar { ch: '.', pos: 0 }
        }
    );
    // `id` is reserved for fields, not for tables.
    schema(&mut reg, "id", &[("a", "u8")]);
}

#[test]
fn from_defs_refuses_duplicate_reserved_and_invalid_field_names() {
    let mut reg = TypeRegistry::new();
    let err = TableSchema::from_defs("t", &[FieldDef::new("a", "u8"), FieldDef::new("a", "u16")], &mut reg)
        .unwrap_err();
    assert_eq!(err, SchemaError::DuplicateField { table: "t".into(), field: "a".into() });
    let err = TableSchema::from_defs("t", &[FieldDef::new("id", "u64")], &mut reg).unwrap_err();
    assert_eq!(
        err,
        SchemaError::InvalidName {
            what: "field",
            name: "id".into(),
            source: NameError::Reserved("id".into())
        }
    );
}

#[test]
fn add_field_appends_and_recomputes_the_layout() {
    let mut reg = TypeRegistry::new();
    let mut s = schema(&mut reg, "t", &[("a", "u8")]);
    assert_eq!((s.record_size, s.align), (1, 1));
    let f = s.add_field("b", ty(&mut reg, "u64")).unwrap();
    assert_eq!((f.name.as_str(), f.offset), ("b", 8));
    assert_eq!((s.record_size, s.align), (16, 8));
    s.add_field("c", ty(&mut reg, "string(3)")).unwrap();
    assert_eq!(offsets(&s), [("a", 0), ("b", 8), ("c", 16)]);
    assert_eq!(s.record_size, 24);
    assert_eq!(s.record_size % s.align, 0);
    assert_eq!(s.field_index("c"), Some(2));
    assert!(s.require_field("c").is_ok());
    assert_eq!(
        s.require_field("zz"),
        Err(SchemaError::UnknownField { table: "t".into(), field: "zz".into() })
    );
}

/// `add_field` must fail with `expected` and leave the schema exactly as it was.
fn assert_add_refused(s: &mut TableSchema, name: &str, layout: Arc<TypeLayout>, expected: SchemaError) {
    let before = s.clone();
    let fingerprint = s.fingerprint();
    let err = s.add_field(name, layout).unwrap_err();
    assert_eq!(err, expected, "add_field({name:?})");
    assert_eq!(*s, before, "schema changed by a refused add_field({name:?})");
    assert_eq!(s.fingerprint(), fingerprint);
}

#[test]
fn add_field_refusals_leave_the_schema_unchanged() {
    let mut reg = TypeRegistry::new();
    let mut s = schema(&mut reg, "t", &[("a", "u8"), ("hp", "u32")]);
    let u8_ = ty(&mut reg, "u8");

    assert_add_refused(
        &mut s,
        "hp",
        u8_.clone(),
        SchemaError::DuplicateField { table: "t".into(), field: "hp".into() },
    );
    assert_add_refused(
        &mut s,
        "id",
        u8_.clone(),
        SchemaError::InvalidName {
            what: "field",
            name: "id".into(),
            source: NameError::Reserved("id".into()),
        },
    );
    let long = "f".repeat(64);
    let bad_names: [(&str, NameError); 7] = [
        ("", NameError::Empty),
        ("../x", NameError::InvalidChar { ch: '.', pos: 0 }),
        ("a b", NameError::InvalidChar { ch: ' ', pos: 1 }),
        ("nul\0", NameError::InvalidChar { ch: '\0', pos: 3 }),
        ("Hp", NameError::InvalidChar { ch: 'H', pos: 0 }),
        ("1st", NameError::LeadingDigit('1')),
        (&long, NameError::TooLong { len: 64 }),
    ];
    for (name, source) in bad_names {
        assert_add_refused(
            &mut s,
            name,
            u8_.clone(),
            SchemaError::InvalidName { what: "field", name: name.into(), source },
        );
    }
    assert_add_refused(
        &mut s,
        "blob",
        ty(&mut reg, "u8[65535]"),
        SchemaError::RecordTooLarge { table: "t".into(), size: 65544 },
    );
    assert_eq!(offsets(&s), [("a", 0), ("hp", 4)]);
    // A 63-byte name is fine.
    s.add_field(&"f".repeat(63), u8_).unwrap();
}

#[test]
fn record_size_limit_is_inclusive() {
    let mut reg = TypeRegistry::new();
    let mut s = schema(&mut reg, "t", &[("a", "u8[40000]")]);
    s.add_field("b", ty(&mut reg, "u8[25536]")).unwrap();
    assert_eq!(s.record_size, MAX_RECORD_SIZE);
    assert_add_refused(
        &mut s,
        "c",
        ty(&mut reg, "u8"),
        SchemaError::RecordTooLarge { table: "t".into(), size: MAX_RECORD_SIZE + 1 },
    );
    let err = TableSchema::from_defs(
        "big",
        &[FieldDef::new("a", "u64[8000]"), FieldDef::new("b", "u64[200]")],
        &mut reg,
    )
    .unwrap_err();
    assert_eq!(err, SchemaError::RecordTooLarge { table: "big".into(), size: 65600 });
}

#[test]
fn remove_field_recomputes_the_layout_and_keeps_one_field() {
    let mut reg = TypeRegistry::new();
    let mut s = schema(&mut reg, "t", &[("a", "u8"), ("b", "f64"), ("c", "u16")]);
    assert_eq!(s.record_size, 24);
    let removed = s.remove_field("b").unwrap();
    assert_eq!((removed.name.as_str(), removed.offset), ("b", 8));
    assert_eq!(offsets(&s), [("a", 0), ("c", 2)]);
    assert_eq!((s.record_size, s.align), (4, 2));

    let before = s.clone();
    assert_eq!(s.remove_field("b"), Err(SchemaError::UnknownField { table: "t".into(), field: "b".into() }));
    assert_eq!(s, before);
    s.remove_field("a").unwrap();
    assert_eq!(offsets(&s), [("c", 0)]);
    let before = s.clone();
    assert_eq!(s.remove_field("c"), Err(SchemaError::NoFields("t".into())));
    assert_eq!(s, before, "the last field stays");
}

/// `a: u8 @0, pad 1..4, hp: u32 @4, alive: bool @8, pad 9..12`
fn padded(reg: &mut TypeRegistry) -> TableSchema {
    schema(reg, "p", &[("a", "u8"), ("hp", "u32"), ("alive", "bool")])
}

#[test]
fn validate_record_checks_size_fields_and_padding() {
    let mut reg = TypeRegistry::new();
    let s = padded(&mut reg);
    assert_eq!(s.record_size, 12);
    let good = [7, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0];
    s.validate_record(&good).unwrap();

    assert_eq!(
        s.validate_record(&good[..11]),
        Err(SchemaError::RecordSize { table: "p".into(), expected: 12, got: 11 })
    );
    assert_eq!(
        s.validate_record(&[good.as_slice(), &[0]].concat()),
        Err(SchemaError::RecordSize { table: "p".into(), expected: 12, got: 13 })
    );

    let mut bad_bool = good;
    bad_bool[8] = 2;
    assert_eq!(
        s.validate_record(&bad_bool),
        Err(SchemaError::InvalidValue { field: "alive".into(), source: ValueError::InvalidBool(2) })
    );

    for offset in [1, 2, 3, 9, 11] {
        let mut bad_pad = good;
        bad_pad[offset] = 0x80;
        assert_eq!(
            s.validate_record(&bad_pad),
            Err(SchemaError::NonZeroPadding { table: "p".into(), offset }),
            "padding byte {offset}"
        );
    }
}

#[test]
fn validate_record_checks_strings_and_composites() {
    let mut reg = TypeRegistry::new();
    reg.register_type(TypeDef::new("pair", [MemberDef::new("k", "u8"), MemberDef::new("v", "u16")])).unwrap();
    let s = schema(&mut reg, "t", &[("name", "string(3)"), ("p", "pair")]);
    assert_eq!(offsets(&s), [("name", 0), ("p", 6)]);
    let good = [2, 0, b'h', b'i', 0, 0, 1, 0, 5, 0];
    s.validate_record(&good).unwrap();

    let mut tail = good;
    tail[4] = b'!';
    assert_eq!(
        s.validate_record(&tail),
        Err(SchemaError::InvalidValue { field: "name".into(), source: ValueError::StringTail })
    );
    let mut inner_pad = good;
    inner_pad[7] = 1;
    assert_eq!(
        s.validate_record(&inner_pad),
        Err(SchemaError::InvalidValue {
            field: "p".into(),
            source: ValueError::NonZeroPadding { offset: 1 }
        })
    );
    let field = s.field("name").unwrap();
    assert_eq!(
        s.validate_field(field, &[9, 0, 0, 0, 0]),
        Err(SchemaError::InvalidValue {
            field: "name".into(),
            source: ValueError::StringTooLong { len: 9, capacity: 3 }
        })
    );
}

#[test]
fn records_round_trip_through_json() {
    let mut reg = TypeRegistry::new();
    let s = schema(&mut reg, "p", &[("a", "u8"), ("hp", "u32"), ("alive", "bool"), ("name", "string(4)")]);
    let record = obj(json!({"a": 7, "hp": 100, "alive": true, "name": "ab"}));
    let bytes = s.record_from_json(&record, None).unwrap();
    assert_eq!(bytes.len(), s.record_size);
    assert_eq!(bytes, [7, 0, 0, 0, 100, 0, 0, 0, 1, 2, 0, b'a', b'b', 0, 0, 0]);
    s.validate_record(&bytes).unwrap();
    assert_eq!(s.record_to_json(&bytes).unwrap(), record);
}

#[test]
fn record_from_json_names_a_missing_field_and_an_unknown_key() {
    let mut reg = TypeRegistry::new();
    let s = padded(&mut reg);
    assert_eq!(
        s.record_from_json(&obj(json!({"a": 1, "alive": false})), None),
        Err(SchemaError::MissingField { field: "hp".into() })
    );
    assert_eq!(
        s.record_from_json(&obj(json!({"a": 1, "hp": 2, "alive": false, "mana": 3})), None),
        Err(SchemaError::UnknownField { table: "p".into(), field: "mana".into() })
    );
    // `id` is not a field: a caller strips it before building the record.
    assert_eq!(
        s.record_from_json(&obj(json!({"id": 1, "a": 1, "hp": 2, "alive": false})), None),
        Err(SchemaError::UnknownField { table: "p".into(), field: "id".into() })
    );
    let err = s.record_from_json(&obj(json!({"a": 1, "hp": -2, "alive": false})), None).unwrap_err();
    assert!(
        matches!(&err, SchemaError::InvalidValue { field, source: ValueError::OutOfRange { ty: "u32", .. } } if field == "hp"),
        "{err:?}"
    );
}

#[test]
fn record_from_json_with_a_base_is_a_partial_update() {
    let mut reg = TypeRegistry::new();
    let s = padded(&mut reg);
    let base = s.record_from_json(&obj(json!({"a": 1, "hp": 50, "alive": true})), None).unwrap();
    let updated = s.record_from_json(&obj(json!({"hp": 49})), Some(&base)).unwrap();
    assert_eq!(s.record_to_json(&updated).unwrap(), obj(json!({"a": 1, "hp": 49, "alive": true})));
    assert_eq!(s.record_from_json(&Map::new(), Some(&base)).unwrap(), base);
    assert_eq!(
        s.record_from_json(&obj(json!({"nope": 1})), Some(&base)),
        Err(SchemaError::UnknownField { table: "p".into(), field: "nope".into() })
    );
}

#[test]
fn record_to_json_refuses_invalid_bytes_naming_the_field() {
    let mut reg = TypeRegistry::new();
    let s = padded(&mut reg);
    let bytes = [0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0];
    assert_eq!(
        s.record_to_json(&bytes),
        Err(SchemaError::InvalidValue { field: "alive".into(), source: ValueError::InvalidBool(3) })
    );
}

fn relation(from: (&str, &str), to: (&str, &str)) -> Relation {
    Relation {
        id: RelationId(1),
        name: "rel".into(),
        from_table: from.0.into(),
        from_field: from.1.into(),
        to_table: to.0.into(),
        to_field: to.1.into(),
    }
}

fn relation_reason(r: &Relation, tables: &[&TableSchema]) -> String {
    match r.validate(|name| tables.iter().copied().find(|t| t.name == name)) {
        Err(SchemaError::InvalidRelation { relation, reason }) => {
            assert_eq!(relation, r.name);
            reason
        }
        other => panic!("expected InvalidRelation, got {other:?}"),
    }
}

#[test]
fn relations_are_checked_against_their_tables() {
    let mut reg = TypeRegistry::new();
    let players = schema(&mut reg, "players", &[("guild", "u64"), ("team", "u32"), ("score", "f32")]);
    let guilds = schema(&mut reg, "guilds", &[("number", "u32"), ("leader", "u64")]);
    let tables = [&players, &guilds];
    let lookup = |name: &str| tables.iter().copied().find(|t| t.name == name);

    relation(("players", "guild"), ("guilds", "id")).validate(lookup).unwrap();
    relation(("players", "team"), ("guilds", "number")).validate(lookup).unwrap();
    relation(("guilds", "leader"), ("players", "id")).validate(lookup).unwrap();

    let reason = relation_reason(&relation(("players", "guild"), ("clans", "id")), &tables);
    assert!(reason.contains("unknown table `clans`"), "{reason}");
    let reason = relation_reason(&relation(("people", "guild"), ("guilds", "id")), &tables);
    assert!(reason.contains("unknown table `people`"), "{reason}");
    let reason = relation_reason(&relation(("players", "clan"), ("guilds", "id")), &tables);
    assert!(reason.contains("no field `clan`"), "{reason}");
    let reason = relation_reason(&relation(("players", "team"), ("guilds", "size")), &tables);
    assert!(reason.contains("no field `size`"), "{reason}");
    let reason = relation_reason(&relation(("players", "score"), ("guilds", "number")), &tables);
    assert!(reason.contains("`f32`") && reason.contains("`u32`"), "{reason}");
    let reason = relation_reason(&relation(("players", "team"), ("guilds", "id")), &tables);
    assert!(reason.contains("must be `u64`"), "{reason}");

    let mut bad_name = relation(("players", "guild"), ("guilds", "id"));
    bad_name.name = "Rel".into();
    assert!(matches!(
        bad_name.validate(lookup),
        Err(SchemaError::InvalidName {
            what: "relation",
            source: NameError::InvalidChar { ch: 'R', pos: 0 },
            ..
        })
    ));

    let r = relation(("players", "guild"), ("guilds", "id"));
    assert!(r.touches_table("players") && r.touches_table("guilds") && !r.touches_table("items"));
    assert!(r.touches_field("players", "guild") && r.touches_field("guilds", "id"));
    assert!(!r.touches_field("players", "team"));
}

#[test]
fn the_name_rule() {
    for good in ["a", "_", "player_stats", "x9", &"z".repeat(63)] {
        assert_eq!(validate_name(good), Ok(()), "{good}");
        assert_eq!(validate_field_name(good), Ok(()), "{good}");
    }
    assert_eq!(validate_name("id"), Ok(()));
    assert_eq!(validate_field_name("id"), Err(NameError::Reserved("id".into())));
    assert_eq!(validate_name("é"), Err(NameError::InvalidChar { ch: 'é', pos: 0 }));
    assert_eq!(validate_name("a/b"), Err(NameError::InvalidChar { ch: '/', pos: 1 }));
    assert_eq!(validate_name("0"), Err(NameError::LeadingDigit('0')));
}

// Derived schemas.

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[table(name = "ships")]
struct Ship {
    owner: u64,
    position: Vec3,
    hull: f32,
    crew: [u16; 3],
    name: FixedStr<14>,
    docked: bool,
    class: u8,
}

fn ship_defs() -> Vec<FieldDef> {
    vec![
        FieldDef::new("owner", "u64"),
        FieldDef::new("position", "vec3"),
        FieldDef::new("hull", "f32"),
        FieldDef::new("crew", "u16[3]"),
        FieldDef::string("name", 14),
        FieldDef::new("docked", "bool"),
        FieldDef::new("class", "u8"),
    ]
}

#[test]
fn a_derived_schema_equals_the_same_fields_declared_at_run_time() {
    let mut reg = TypeRegistry::new();
    let derived = TableSchema::of::<Ship>(&mut reg).unwrap();
    assert_eq!(Ship::schema(&mut reg).unwrap(), derived);

    let mut runtime_reg = TypeRegistry::new();
    runtime_reg
        .register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32"))))
        .unwrap();
    let runtime = TableSchema::from_defs("ships", &ship_defs(), &mut runtime_reg).unwrap();

    assert_eq!(derived, runtime);
    assert_eq!(derived.fingerprint(), runtime.fingerprint());
    assert_eq!(
        offsets(&derived),
        [
            ("owner", 0),
            ("position", 8),
            ("hull", 20),
            ("crew", 24),
            ("name", 30),
            ("docked", 46),
            ("class", 47)
        ]
    );
    assert_eq!(derived.record_size, 48);
    assert_eq!(derived.record_size, Ship::RECORD_SIZE);
    assert_eq!(derived.align, Ship::ALIGN);
    for (f, d) in derived.fields.iter().zip(Ship::FIELDS) {
        assert_eq!((f.name.as_str(), f.offset, f.type_id), (d.name, d.offset, d.type_id));
    }
    assert_eq!(Ship::NAME_OFFSET, 30);
    assert_eq!(Ship::CLASS.offset(), std::mem::offset_of!(Ship, class));
}

#[test]
fn derived_records_and_json_agree() {
    let mut reg = TypeRegistry::new();
    let s = Ship::schema(&mut reg).unwrap();
    let ship = Ship {
        owner: 42,
        position: Vec3 { x: 1.0, y: -2.0, z: 0.5 },
        hull: 0.75,
        crew: [3, 2, 1],
        name: FixedStr::new("Rocinante").unwrap(),
        docked: true,
        class: 4,
    };
    s.validate_record(ship.as_bytes()).unwrap();
    let json = s.record_to_json(ship.as_bytes()).unwrap();
    assert_eq!(
        Value::Object(json.clone()),
        json!({
            "owner": 42, "position": {"x": 1.0, "y": -2.0, "z": 0.5}, "hull": 0.75,
            "crew": [3, 2, 1], "name": "Rocinante", "docked": true, "class": 4
        })
    );
    let bytes = s.record_from_json(&json, None).unwrap();
    assert_eq!(bytes, ship.as_bytes());
    assert_eq!(Ship::read(&bytes).unwrap(), ship);

    let mut bad = bytes.clone();
    bad[Ship::DOCKED_OFFSET] = 2;
    assert_eq!(
        s.validate_record(&bad),
        Err(SchemaError::InvalidValue { field: "docked".into(), source: ValueError::InvalidBool(2) })
    );
    assert!(matches!(
        Ship::validate(&bad),
        Err(tabledb::ViewError::Invalid { field: "docked", source: ValueError::InvalidBool(2) })
    ));
}

#[test]
fn records_of_the_wrong_size_are_refused_not_sliced() {
    let mut reg = TypeRegistry::new();
    let s = padded(&mut reg);
    let size_err = |got| SchemaError::RecordSize { table: "p".into(), expected: 12, got };
    assert_eq!(s.record_to_json(&[1, 2]), Err(size_err(2)));
    assert_eq!(s.record_to_json(&[0; 13]), Err(size_err(13)));
    assert_eq!(s.record_from_json(&Map::new(), Some(&[1, 2])), Err(size_err(2)));
    assert_eq!(s.record_from_json(&obj(json!({"hp": 1})), Some(&[0; 20])), Err(size_err(20)));
}
