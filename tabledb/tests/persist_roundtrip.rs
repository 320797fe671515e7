//! What a database holds survives closing and reopening its directory: next record ids (after
//! deletes, compaction and checkpoints), records rewritten by `add_field`, and the schema
//! objects: custom types, relations, dropped and recreated tables.

use tabledb::schema::FieldDef;
use tabledb::types::{MemberDef, TypeDef};
use tabledb::{Database, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    hp: u32,
    mana: u32,
}

fn p(i: u32) -> Player {
    Player { hp: i, mana: i }
}

fn next_id(db: &Database, t: &str) -> u64 {
    db.snapshot().raw_table(t).unwrap().next_id().0
}

#[test]
fn next_ids_survive_reopen_after_deletes_compaction_and_checkpoints() {
    for mode in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let expect;
        {
            let db = Database::open(dir.path()).unwrap();
            let t = db.create_table::<Player>().unwrap();
            let ids: Vec<RecordId> = (0..5).map(|i| db.insert(t, &p(i)).unwrap()).collect();
            db.delete(t, ids[4]).unwrap();
            db.delete(t, ids[3]).unwrap();
            match mode {
                1 => {
                    db.checkpoint().unwrap();
                }
                2 => db.compact_table("player").unwrap(),
                3 => {
                    db.compact_table("player").unwrap();
                    db.checkpoint().unwrap();
                }
                _ => {}
            }
            expect = next_id(&db, "player");
        }
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(next_id(&db, "player"), expect, "mode {mode}");
        let t = db.table::<Player>().unwrap();
        let mut tx = db.begin_deterministic();
        let id = tx.insert(t, &p(9)).unwrap();
        assert_eq!(id.0, expect, "mode {mode}");
    }
}

#[test]
fn records_rewritten_by_add_field_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (expect, recs);
    {
        let db = Database::open(dir.path()).unwrap();
        let t = db.create_table::<Player>().unwrap();
        for i in 0..5 {
            db.insert(t, &p(i)).unwrap();
        }
        db.delete(t, RecordId(5)).unwrap();
        db.add_field("player", &FieldDef::new("level", "u16")).unwrap();
        db.create_record("player", &[0u8; 12]).unwrap();
        db.delete_record("player", RecordId(6)).unwrap();
        expect = next_id(&db, "player");
        recs = db
            .snapshot()
            .raw_table("player")
            .unwrap()
            .iter()
            .map(|(i, b)| (i, b.to_vec()))
            .collect::<Vec<_>>();
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(next_id(&db, "player"), expect);
    let got =
        db.snapshot().raw_table("player").unwrap().iter().map(|(i, b)| (i, b.to_vec())).collect::<Vec<_>>();
    assert_eq!(got, recs);
}

#[test]
fn schema_objects_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        db.register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32")))).unwrap();
        db.create_table_from_defs("a", &[FieldDef::new("pos", "vec3"), FieldDef::new("b", "u64")]).unwrap();
        db.create_table_from_defs("b", &[FieldDef::new("x", "u32")]).unwrap();
        let r = db.create_relation(None, "a", "b", "b", "id").unwrap();
        db.create_table_from_defs("c", &[FieldDef::new("x", "u32")]).unwrap();
        db.create_record("c", &[1, 0, 0, 0]).unwrap();
        db.checkpoint().unwrap();
        db.drop_table("c").unwrap();
        db.create_relation(Some("r2"), "a", "b", "b", "id").unwrap();
        db.drop_relation(r.id).unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let snap = db.snapshot();
    let names: Vec<_> = snap.table_names().collect();
    assert_eq!(names, ["a", "b"]);
    let rels: Vec<_> = snap.relations().map(|r| r.name.clone()).collect();
    assert_eq!(rels, ["r2"]);
    assert!(snap.types().get_by_name("vec3").is_some());
    drop(snap);
    db.create_table_from_defs("c", &[FieldDef::new("x", "u32")]).unwrap();
    assert_eq!(db.snapshot().len("c").unwrap(), 0);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.snapshot().len("c").unwrap(), 0);
}

/// The types a database knows are the same after reopening it: strings and arrays are created
/// on first use and not stored, so once no field or composite uses one it is forgotten at
/// once, as a reopened database would not know it.
#[test]
fn known_types_are_the_same_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let names = |db: &Database| db.snapshot().types().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let before;
    {
        let db = Database::open(dir.path()).unwrap();
        db.register_type(TypeDef::new("tag", [MemberDef::new("code", "string(3)")])).unwrap();
        db.create_table_from_defs(
            "t",
            &[FieldDef::new("a", "u8"), FieldDef::new("s", "string(4)"), FieldDef::new("v", "u16[2][3]")],
        )
        .unwrap();
        db.create_table_from_defs("gone", &[FieldDef::new("g", "string(9)")]).unwrap();
        let all = names(&db);
        for name in ["string(3)", "string(4)", "u16[2]", "u16[2][3]", "string(9)", "tag"] {
            assert!(all.iter().any(|n| n == name), "{name} in {all:?}");
        }
        db.remove_field("t", "s").unwrap();
        db.remove_field("t", "v").unwrap();
        db.drop_table("gone").unwrap();
        before = names(&db);
        for name in ["string(4)", "u16[2]", "u16[2][3]", "string(9)"] {
            assert!(!before.iter().any(|n| n == name), "{name} is no longer used: {before:?}");
        }
        assert!(before.iter().any(|n| n == "string(3)"), "a composite's member type is kept: {before:?}");
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(names(&db), before);
}
