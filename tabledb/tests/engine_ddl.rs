//! Schema changes: adding and removing fields rewrites every record in one commit, compaction
//! keeps ids and drops deleted records, a dropped table's name can be used again, and relations
//! are checked against types and existing data.

use std::collections::BTreeMap;

use tabledb::schema::{FieldDef, SchemaError};
use tabledb::{Config, Database, Error, FixedStr, RecordId, Snapshot, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    score: u64,
    level: u32,
    alive: bool,
    team: u8,
    badge: u16,
    name: FixedStr<6>,
}

fn player(i: u64) -> Player {
    Player {
        score: i * 10,
        level: i as u32,
        alive: i.is_multiple_of(2),
        team: (i % 3) as u8,
        badge: (i % 1000) as u16,
        name: FixedStr::new(&format!("p{}", i % 10_000)).unwrap(),
    }
}

/// The run-time table used by the field tests: `flag` (bool), `n` (u32), `name` (string(10)),
/// `w` (u16), `big` (u64), with padding before `n` and `big`.
fn gadget_defs() -> Vec<FieldDef> {
    vec![
        FieldDef::new("flag", "bool"),
        FieldDef::new("n", "u32"),
        FieldDef::string("name", 10),
        FieldDef::new("w", "u16"),
        FieldDef::new("big", "u64"),
    ]
}

fn gadget(i: u64) -> Vec<u8> {
    let mut b = vec![0u8; 32];
    b[0] = (i % 2) as u8;
    b[4..8].copy_from_slice(&(i as u32).to_le_bytes());
    let name = format!("g{i}");
    b[8..10].copy_from_slice(&(name.len() as u16).to_le_bytes());
    b[10..10 + name.len()].copy_from_slice(name.as_bytes());
    b[20..22].copy_from_slice(&((i * 3) as u16).to_le_bytes());
    b[24..32].copy_from_slice(&(i * 1_000_003).to_le_bytes());
    b
}

/// Every live record of a table as a map from field name to value bytes.
fn fields_by_name(snap: &Snapshot, table: &str) -> BTreeMap<RecordId, BTreeMap<String, Vec<u8>>> {
    let raw = snap.raw_table(table).unwrap();
    let schema = raw.schema();
    raw.iter()
        .map(|(id, rec)| {
            let fields = schema.fields.iter().map(|f| (f.name.clone(), rec[f.range()].to_vec())).collect();
            (id, fields)
        })
        .collect()
}

/// A gadgets table of `n` records with every third one deleted; returns the database and the
/// live ids.
fn gadgets(n: u64) -> (Database, Vec<RecordId>) {
    let db = Database::new();
    db.create_table_from_defs("gadgets", &gadget_defs()).unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..n).map(|i| tx.create_record("gadgets", &gadget(i)).unwrap()).collect();
    tx.commit().unwrap();
    let mut tx = db.begin();
    for id in ids.iter().step_by(3) {
        tx.delete_record("gadgets", *id).unwrap();
    }
    tx.commit().unwrap();
    let live = ids.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, id)| *id).collect();
    (db, live)
}

#[test]
fn add_field_rewrites_every_record_in_one_commit() {
    let (db, live) = gadgets(300);
    let before = db.snapshot();
    let old = fields_by_name(&before, "gadgets");
    let old_schema = before.schema("gadgets").unwrap().clone();
    let next_id = before.raw_table("gadgets").unwrap().next_id();
    let ddl = db.stats().ddl;

    db.add_field("gadgets", &FieldDef::new("score", "u64")).unwrap();
    let after = db.snapshot();
    assert_eq!(after.seq().0, before.seq().0 + 1, "one commit");
    assert_eq!(db.stats().ddl, ddl + 1);

    let schema = after.schema("gadgets").unwrap();
    assert_eq!(schema.fields.len(), old_schema.fields.len() + 1);
    for (new, old) in schema.fields.iter().zip(&old_schema.fields) {
        assert_eq!((&new.name, new.offset, &new.layout.name), (&old.name, old.offset, &old.layout.name));
    }
    let added = schema.fields.last().unwrap();
    assert_eq!((added.name.as_str(), added.offset, added.layout.name.as_str()), ("score", 32, "u64"));
    assert_eq!(schema.record_size, 40);

    let new = fields_by_name(&after, "gadgets");
    assert_eq!(new.keys().copied().collect::<Vec<_>>(), live, "ids kept, deleted records gone");
    for (id, fields) in &new {
        let mut expected = old[id].clone();
        expected.insert("score".into(), vec![0; 8]);
        assert_eq!(fields, &expected, "record {id}");
    }
    assert_eq!(after.len("gadgets").unwrap(), live.len() as u64);
    assert_eq!(after.raw_table("gadgets").unwrap().next_id(), next_id);
    // The snapshot from before still has the old layout and records.
    assert_eq!(before.schema("gadgets").unwrap().record_size, 32);
    assert_eq!(fields_by_name(&before, "gadgets"), old);

    // The new layout takes writes: a partial update of the new field, and new records.
    db.partial_update("gadgets", live[0], "score", &77u64.to_le_bytes()).unwrap();
    let mut rec = gadget(5000);
    rec.extend_from_slice(&9u64.to_le_bytes());
    let id = db.create_record("gadgets", &rec).unwrap();
    assert!(id >= next_id, "ids are never reused");
    let snap = db.snapshot();
    assert_eq!(&snap.read_record("gadgets", live[0]).unwrap()[32..], &77u64.to_le_bytes());
    assert_eq!(snap.read_record("gadgets", id).unwrap(), &rec[..]);
    assert!(matches!(
        db.create_record("gadgets", &gadget(1)),
        Err(Error::Schema(SchemaError::RecordSize { .. }))
    ));

    // Fields of every kind start at zero, which is a valid value of each (false, "", 0).
    db.add_field("gadgets", &FieldDef::new("ok", "bool")).unwrap();
    db.add_field("gadgets", &FieldDef::string("tag", 5)).unwrap();
    db.add_field("gadgets", &FieldDef::new("v", "f32[3]")).unwrap();
    let snap = db.snapshot();
    let schema = snap.schema("gadgets").unwrap();
    for (_, rec) in snap.raw_table("gadgets").unwrap().iter() {
        schema.validate_record(rec).unwrap();
        for name in ["ok", "tag", "v"] {
            let f = schema.field(name).unwrap();
            assert!(rec[f.range()].iter().all(|&b| b == 0));
        }
        let json = schema.record_to_json(rec).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["tag"], "");
    }
}

#[test]
fn remove_field_rewrites_every_record_in_one_commit() {
    let (db, live) = gadgets(200);
    let before = db.snapshot();
    let old = fields_by_name(&before, "gadgets");
    db.remove_field("gadgets", "name").unwrap();
    let after = db.snapshot();
    assert_eq!(after.seq().0, before.seq().0 + 1);
    let schema = after.schema("gadgets").unwrap();
    let layout: Vec<(&str, usize)> = schema.fields.iter().map(|f| (f.name.as_str(), f.offset)).collect();
    // The fields after the removed one move up, aligned again.
    assert_eq!(layout, [("flag", 0), ("n", 4), ("w", 8), ("big", 16)]);
    assert_eq!(schema.record_size, 24);
    let new = fields_by_name(&after, "gadgets");
    assert_eq!(new.keys().copied().collect::<Vec<_>>(), live);
    for (id, fields) in &new {
        let mut expected = old[id].clone();
        expected.remove("name");
        assert_eq!(fields, &expected, "record {id}");
        // Padding is zero in the rewritten records.
        schema.validate_record(after.read_record("gadgets", *id).unwrap()).unwrap();
    }
    assert_eq!(fields_by_name(&before, "gadgets"), old, "the old snapshot keeps the old layout");

    // Down to one field; the last one stays.
    for f in ["flag", "n", "w"] {
        db.remove_field("gadgets", f).unwrap();
    }
    let seq = db.snapshot().seq();
    assert_eq!(
        db.remove_field("gadgets", "big"),
        Err(Error::Schema(SchemaError::NoFields("gadgets".into())))
    );
    assert_eq!(db.snapshot().seq(), seq);
    let snap = db.snapshot();
    for (id, rec) in snap.raw_table("gadgets").unwrap().iter() {
        assert_eq!(rec, &old[&id]["big"][..]);
    }

    // A derived table can lose a field too; its records keep the others.
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let ids: Vec<RecordId> = (0..50).map(|i| db.insert(players, &player(i)).unwrap()).collect();
    db.remove_field("player", "alive").unwrap();
    let snap = db.snapshot();
    let raw = snap.raw_table("player").unwrap();
    for (i, id) in ids.iter().enumerate() {
        let rec = raw.get(*id).unwrap();
        let f = raw.schema().field("score").unwrap();
        assert_eq!(rec[f.range()], (i as u64 * 10).to_le_bytes());
        let f = raw.schema().field("name").unwrap();
        let name_at = Player::NAME_OFFSET;
        assert_eq!(rec[f.range()], player(i as u64).as_bytes()[name_at..name_at + 8]);
    }
}

#[test]
fn compaction_keeps_ids_and_drops_deleted_records() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..400).map(|i| tx.insert(players, &player(i)).unwrap()).collect();
    tx.commit().unwrap();
    // Delete every third record, and whole pages' worth in the middle.
    let mut tx = db.begin();
    for (i, id) in ids.iter().enumerate() {
        if i % 3 == 0 || (100..200).contains(&i) {
            tx.delete(players, *id).unwrap();
        }
    }
    tx.commit().unwrap();
    let before = db.snapshot();
    let expected: Vec<(RecordId, Player)> =
        before.table(players).unwrap().iter().map(|(id, p)| (id, *p)).collect();
    let memory_before = before.memory_bytes();

    db.compact_table("player").unwrap();
    let after = db.snapshot();
    let view = after.table(players).unwrap();
    let got: Vec<(RecordId, Player)> = view.iter().map(|(id, p)| (id, *p)).collect();
    assert_eq!(got, expected, "the same records under the same ids");
    assert_eq!(view.len(), expected.len() as u64);
    for (i, id) in ids.iter().enumerate() {
        let live = i % 3 != 0 && !(100..200).contains(&i);
        assert_eq!(after.get(players, *id).copied(), live.then(|| player(i as u64)), "record {id}");
    }
    assert!(
        after.memory_bytes() < memory_before,
        "compaction reclaims space: {} >= {memory_before}",
        after.memory_bytes()
    );
    let next = view.next_id();
    assert_eq!(next, before.table(players).unwrap().next_id());

    // Writes after compaction: update and delete survivors, insert new records.
    let survivor = ids[1];
    let mut tx = db.begin();
    tx.set(players, survivor, Player::SCORE, 1).unwrap();
    tx.modify(players, ids[250], |p| p.level = 999).unwrap();
    tx.delete(players, ids[2]).unwrap();
    let fresh: Vec<RecordId> = (0..100).map(|i| tx.insert(players, &player(10_000 + i)).unwrap()).collect();
    assert!(fresh.iter().all(|id| *id >= next), "ids are never reused");
    // A compacted-away id stays missing.
    assert!(tx.update(players, ids[0], &player(0)).is_err());
    tx.commit().unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.get(players, survivor).unwrap().score, 1);
    assert_eq!(snap.get(players, ids[250]).unwrap().level, 999);
    assert!(snap.get(players, ids[2]).is_none());
    for (i, id) in fresh.iter().enumerate() {
        assert_eq!(snap.get(players, *id), Some(&player(10_000 + i as u64)));
    }
    assert_eq!(snap.len(players).unwrap(), expected.len() as u64 - 1 + 100);
    let order: Vec<RecordId> = snap.table(players).unwrap().iter().map(|(id, _)| id).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "iteration stays in id order");

    // Compacting again, and compacting a table with nothing live, keep everything working.
    db.compact_table("player").unwrap();
    assert_eq!(db.snapshot().table(players).unwrap().iter().count(), order.len());
    let mut tx = db.begin();
    for id in order {
        tx.delete(players, id).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table("player").unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.len(players).unwrap(), 0);
    assert_eq!(snap.table(players).unwrap().iter().count(), 0);
    let id = db.insert(players, &player(3)).unwrap();
    assert!(id > *fresh.last().unwrap());
    assert_eq!(db.snapshot().get(players, id), Some(&player(3)));
}

#[test]
fn a_dropped_table_can_be_created_again_empty() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let ids: Vec<RecordId> = (0..100).map(|i| db.insert(players, &player(i)).unwrap()).collect();
    let old_snapshot = db.snapshot();
    let pending = {
        let mut tx = db.begin();
        tx.set(players, ids[0], Player::LEVEL, 5).unwrap();
        tx
    };

    db.drop_table("player").unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.table_names().count(), 0);
    assert_eq!(snap.len("player"), Err(Error::UnknownTable("player".into())));
    assert!(snap.get(players, ids[0]).is_none());
    // A transaction that wrote the table before it was dropped cannot commit.
    assert!(matches!(pending.commit(), Err(Error::Conflict { id: None, .. })));

    let again = db.create_table::<Player>().unwrap();
    assert_ne!(again.id(), players.id(), "table ids are never reused");
    let snap = db.snapshot();
    assert_eq!(snap.len(again).unwrap(), 0);
    assert_eq!(snap.table(again).unwrap().iter().count(), 0);
    assert!(snap.get(again, ids[0]).is_none());
    // The old handle names the dropped table, not the new one.
    assert!(snap.get(players, ids[0]).is_none());
    assert!(matches!(snap.table(players), Err(Error::UnknownTable(_))));
    let id = db.insert(again, &player(7)).unwrap();
    assert_eq!(id, RecordId(1), "a new table's ids start at 1");
    assert_eq!(db.snapshot().get(again, id), Some(&player(7)));
    assert_eq!(db.table::<Player>().unwrap().id(), again.id());

    // The snapshot from before the drop still reads the old table.
    assert_eq!(old_snapshot.len(players).unwrap(), 100);
    assert_eq!(old_snapshot.get(players, ids[99]), Some(&player(99)));

    // A run-time table, dropped and created with other fields.
    db.create_table_from_defs("gadgets", &gadget_defs()).unwrap();
    db.create_record("gadgets", &gadget(1)).unwrap();
    db.drop_table("gadgets").unwrap();
    db.create_table_from_defs("gadgets", &[FieldDef::new("only", "u8")]).unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.len("gadgets").unwrap(), 0);
    assert_eq!(snap.schema("gadgets").unwrap().record_size, 1);
}

/// Players, and orders that refer to them by id (`player`) and by team (`team`).
fn shop() -> Database {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    for i in 0..5 {
        db.insert(players, &player(i)).unwrap();
    }
    db.create_table_from_defs(
        "orders",
        &[FieldDef::new("player", "u64"), FieldDef::new("small", "u32"), FieldDef::new("team", "u8")],
    )
    .unwrap();
    db
}

fn order(player: u64, small: u32, team: u8) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[..8].copy_from_slice(&player.to_le_bytes());
    b[8..12].copy_from_slice(&small.to_le_bytes());
    b[12] = team;
    b
}

#[test]
fn relations_are_checked_against_types_and_data() {
    let db = shop();
    db.create_record("orders", &order(1, 1, 0)).unwrap();
    db.create_record("orders", &order(0, 1, 2)).unwrap(); // 0: no reference.

    // A reference to ids must be u64.
    let seq = db.snapshot().seq();
    for (field, to) in
        [("small", "id"), ("team", "id"), ("small", "level_x"), ("nope", "id"), ("small", "team")]
    {
        let result = db.create_relation(None, "orders", field, "player", to);
        assert!(
            matches!(result, Err(Error::Schema(SchemaError::InvalidRelation { .. }))),
            "orders.{field} -> player.{to}: {result:?}"
        );
    }
    // A field of the same type is a valid target.
    let by_team = db.create_relation(Some("order_team"), "orders", "team", "player", "team").unwrap();
    assert_eq!(db.snapshot().seq().0, seq.0 + 1);

    let rel = db.create_relation(None, "orders", "player", "player", "id").unwrap();
    assert_eq!(rel.name, "orders_player_fkey");
    assert_eq!((rel.from_table.as_str(), rel.from_field.as_str()), ("orders", "player"));
    assert_eq!((rel.to_table.as_str(), rel.to_field.as_str()), ("player", "id"));
    assert!(rel.id > by_team.id);
    let snap = db.snapshot();
    assert_eq!(snap.relations().count(), 2);
    assert_eq!(snap.relation(rel.id), Some(&rel));
    // Names are unique; a taken name is refused, saying that another can be given.
    match db.create_relation(Some("order_team"), "orders", "player", "player", "id") {
        Err(e @ Error::Constraint { .. }) => assert!(e.to_string().contains("give another `name`"), "{e}"),
        other => panic!("expected a constraint violation, got {other:?}"),
    }

    // Tables and fields in a relation cannot go.
    assert!(matches!(db.drop_table("orders"), Err(Error::Constraint { .. })));
    assert!(matches!(db.drop_table("player"), Err(Error::Constraint { .. })));
    assert!(matches!(db.remove_field("orders", "player"), Err(Error::Constraint { .. })));
    assert!(matches!(db.remove_field("player", "team"), Err(Error::Constraint { .. })));
    // Fields outside any relation can.
    db.remove_field("orders", "small").unwrap();

    // drop_relation returns the relation and forgets it; its id is not reused.
    assert_eq!(db.drop_relation(rel.id).unwrap(), rel);
    assert_eq!(db.drop_relation(rel.id), Err(Error::UnknownRelation(rel.id.0)));
    assert_eq!(db.snapshot().relations().count(), 1);
    assert_eq!(db.drop_relation(by_team.id).unwrap(), by_team);
    let again = db.create_relation(None, "orders", "player", "player", "id").unwrap();
    assert!(again.id > rel.id, "relation ids are never reused");
    db.drop_relation(again.id).unwrap();
    db.drop_table("orders").unwrap();
    db.drop_table("player").unwrap();
}

#[test]
fn relations_refuse_existing_data_that_violates_them() {
    let db = shop();
    db.create_record("orders", &order(3, 0, 1)).unwrap();
    let dangling = db.create_record("orders", &order(99, 0, 1)).unwrap();
    let before = db.snapshot();
    match db.create_relation(Some("order_player"), "orders", "player", "player", "id") {
        Err(Error::Constraint { relation, detail, .. }) => {
            assert_eq!(relation, "order_player");
            assert!(detail.contains(&dangling.to_string()) && detail.contains("99"), "{detail}");
        }
        other => panic!("expected a constraint violation, got {other:?}"),
    }
    assert_eq!(db.snapshot().seq(), before.seq(), "nothing was created");
    assert_eq!(db.snapshot().relations().count(), 0);

    // A reference to a deleted record is dangling too.
    db.update_record("orders", dangling, &order(5, 0, 1)).unwrap();
    db.delete_record("player", RecordId(5)).unwrap();
    assert!(matches!(
        db.create_relation(None, "orders", "player", "player", "id"),
        Err(Error::Constraint { .. })
    ));
    // Fixed data satisfies it.
    db.update_record("orders", dangling, &order(4, 0, 1)).unwrap();
    db.create_relation(None, "orders", "player", "player", "id").unwrap();

    // A value reference: team 7 is nobody's team.
    db.create_record("orders", &order(1, 0, 7)).unwrap();
    assert!(matches!(
        db.create_relation(None, "orders", "team", "player", "team"),
        Err(Error::Constraint { .. })
    ));
}

#[test]
fn relation_count_is_limited() {
    let db = Database::with_config(Config { max_relations: 1, ..Config::default() });
    let players = db.create_table::<Player>().unwrap();
    db.insert(players, &player(1)).unwrap();
    db.create_table_from_defs("orders", &[FieldDef::new("player", "u64"), FieldDef::new("team", "u8")])
        .unwrap();
    db.create_relation(None, "orders", "player", "player", "id").unwrap();
    let seq = db.snapshot().seq();
    assert_eq!(
        db.create_relation(None, "orders", "team", "player", "team"),
        Err(Error::LimitReached { what: "relations", limit: 1 })
    );
    assert_eq!(db.snapshot().seq(), seq);
}

mod widget_v1 {
    #[derive(tabledb::Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Widget {
        pub a: u64,
    }
}

mod widget_v2 {
    #[derive(tabledb::Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Widget {
        pub a: u64,
        pub big: [u64; 7],
    }
}

#[test]
fn every_schema_change_that_rewrites_records_keeps_to_the_database_byte_limit() {
    let limit = 8 * 1000;
    let db = Database::with_config(Config { max_database_bytes: limit, ..Config::default() });
    let t = db.ensure_table::<widget_v1::Widget>().unwrap();
    let mut tx = db.begin();
    for i in 0..900 {
        tx.insert(t, &widget_v1::Widget { a: i }).unwrap();
    }
    tx.commit().unwrap();
    let before = db.snapshot();
    let add = db.add_field("widget", &FieldDef::new("x", "u64"));
    assert!(matches!(add, Err(Error::LimitReached { what: "database bytes", .. })), "{add:?}");
    // Migrating to a wider layout through `ensure_table` is a rewrite too.
    let migrate = db.ensure_table::<widget_v2::Widget>();
    assert!(matches!(migrate, Err(Error::LimitReached { what: "database bytes", .. })), "{migrate:?}");
    let after = db.snapshot();
    assert_eq!(after.schema("widget").unwrap(), before.schema("widget").unwrap(), "nothing changed");
    assert_eq!(after.table(t).unwrap().iter().count(), 900);
}

#[test]
fn rewriting_a_table_with_holes_does_not_grow_it() {
    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Pair {
        a: u64,
        b: u64,
    }
    let limit = 32_000;
    let db = Database::with_config(Config { max_database_bytes: limit, ..Config::default() });
    let t = db.create_table::<Pair>().unwrap();
    // 16-byte records, 64 per page: each record sits alone at the end of its page, the ids
    // below it handed out and never committed, then compacted away.
    for i in 0..100u64 {
        let mut gap = db.begin();
        for _ in 0..63 {
            gap.insert(t, &Pair { a: 0, b: 0 }).unwrap();
        }
        drop(gap);
        db.insert(t, &Pair { a: i, b: i }).unwrap();
        db.compact_table("pair").unwrap();
    }
    let before = db.snapshot().memory_bytes();
    db.remove_field("pair", "b").unwrap();
    let after = db.snapshot().memory_bytes();
    assert!(after <= before, "removing a field grew the table from {before} to {after} bytes");
    db.create_record("pair", &7u64.to_le_bytes()).unwrap();
    assert_eq!(db.snapshot().len("pair").unwrap(), 101);
    db.add_field("pair", &FieldDef::new("c", "u32")).unwrap();
    let rows: Vec<u64> = db
        .snapshot()
        .raw_table("pair")
        .unwrap()
        .iter()
        .map(|(_, b)| u64::from_le_bytes(b[..8].try_into().unwrap()))
        .collect();
    assert_eq!(rows.len(), 101);
    assert_eq!(rows[..100], (0..100).collect::<Vec<_>>()[..], "the records kept their values");
}

/// Relations created without a name get names that differ whenever the relations do: `a_b.c`
/// and `a.b_c` do not both get `a_b_c_fkey`, a second relation of one field gets `_2`, and a
/// generated name that a relation was given by its creator is not taken again.
#[test]
fn generated_relation_names_do_not_clash() {
    let db = Database::new();
    for (table, field) in [("target", "v"), ("a_b", "c"), ("a", "b_c"), ("x", "y"), ("other", "id_ref")] {
        let ty = if table == "target" { "u8" } else { "u64" };
        db.create_table_from_defs(table, &[FieldDef::new(field, ty)]).unwrap();
    }
    let name = |t: &str, f: &str| db.create_relation(None, t, f, "target", "id").unwrap().name;
    assert_eq!(name("a_b", "c"), "a_b_c_fkey3");
    assert_eq!(name("a", "b_c"), "a_b_c_fkey1");
    assert_eq!(name("x", "y"), "x_y_fkey");
    assert_eq!(name("x", "y"), "x_y_fkey_2", "a second relation of the same field");
    db.create_relation(Some("other_id_ref_fkey5"), "x", "y", "target", "id").unwrap();
    assert_eq!(name("other", "id_ref"), "other_id_ref_fkey5_2", "a name given by a creator is not reused");
    let names: std::collections::BTreeSet<String> =
        db.snapshot().relations().map(|r| r.name.clone()).collect();
    assert_eq!(names.len(), 6);
}
