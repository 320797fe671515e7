use tabledb::{Database, FixedStr, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    x: f32,
    hp: u32,
    name: FixedStr<10>,
}

fn p(i: u32) -> Player {
    Player { x: i as f32, hp: i, name: FixedStr::new("p").unwrap() }
}

#[test]
fn data_survives_reopen_with_and_without_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<RecordId>;
    {
        let db = Database::open(dir.path()).unwrap();
        let t = db.create_table::<Player>().unwrap();
        let mut tx = db.begin();
        ids = (0..100).map(|i| tx.insert(t, &p(i)).unwrap()).collect();
        tx.commit().unwrap();
        db.set(t, ids[3], Player::HP, 333).unwrap();
        db.delete(t, ids[4]).unwrap();
    }
    {
        let db = Database::open(dir.path()).unwrap();
        let report = db.recovery_report().unwrap().clone();
        assert_eq!(report.log_entries, 3, "{report:?}");
        let t = db.table::<Player>().unwrap();
        let snap = db.snapshot();
        assert_eq!(snap.len(t).unwrap(), 99);
        assert_eq!(snap.get(t, ids[3]).unwrap().hp, 333);
        assert!(snap.get(t, ids[4]).is_none());
        assert!(db.checkpoint().unwrap());
        db.set(t, ids[5], Player::HP, 555).unwrap();
        let next = db.insert(t, &p(1000)).unwrap();
        assert!(next.0 > ids[99].0);
    }
    {
        let db = Database::open(dir.path()).unwrap();
        let report = db.recovery_report().unwrap().clone();
        assert_eq!(report.log_entries, 2, "{report:?}");
        let t = db.table::<Player>().unwrap();
        let snap = db.snapshot();
        assert_eq!(snap.len(t).unwrap(), 100);
        assert_eq!(snap.get(t, ids[3]).unwrap().hp, 333);
        assert_eq!(snap.get(t, ids[5]).unwrap().hp, 555);
        db.add_field("player", &tabledb::schema::FieldDef::new("mana", "u16")).unwrap();
        let rs = db.snapshot().schema("player").unwrap().record_size;
        let id = db.create_record("player", &vec![0u8; rs]).unwrap();
        assert!(id.0 > 100);
    }
    {
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(db.snapshot().len("player").unwrap(), 101);
        assert!(db.table::<Player>().is_err());
        assert!(Database::open(dir.path()).is_err(), "a second opener must be refused");
    }
}
