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

#[test]
fn whole_table_updates_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let t = db.create_table::<Player>().unwrap();
        let mut tx = db.begin();
        for i in 0..500 {
            tx.insert(t, &p(i)).unwrap();
        }
        tx.commit().unwrap();
        let mut tx = db.begin();
        tx.par_update(t, |_, r| r.hp += 1000).unwrap();
        tx.commit().unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let t = db.table::<Player>().unwrap();
    let snap = db.snapshot();
    let view = snap.table(t).unwrap();
    assert_eq!(view.len(), 500);
    assert!(view.iter().all(|(_, r)| r.hp >= 1000), "the parallel update was lost");
}

#[test]
fn a_commit_too_big_for_one_log_entry_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let small = |durability| tabledb::PersistOptions {
        durability,
        wal_buffer_max_bytes: 4096,
        ..tabledb::PersistOptions::default()
    };
    let db = Database::open_with(dir.path(), tabledb::Config::default(), small(tabledb::Durability::Tick))
        .unwrap();
    let t = db.create_table::<Player>().unwrap();
    // 100 records fit; each logged put takes 17 bytes plus the record.
    let put = 17 + Player::RECORD_SIZE;
    let mut tx = db.begin();
    for i in 0..(4096 / put) as u32 {
        tx.insert(t, &p(i)).unwrap();
    }
    tx.commit().unwrap();
    let before = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id, *r)).collect::<Vec<_>>();

    let mut tx = db.begin();
    for i in 0..(4096 / put + 1) as u32 {
        tx.insert(t, &p(i)).unwrap();
    }
    let err = tx.commit().unwrap_err();
    assert!(
        matches!(err, tabledb::Error::LimitReached { limit: 4096, .. })
            && err.to_string().contains("log entry"),
        "{err}"
    );
    // A whole-table update counts every record of the pages it replaces.
    let mut tx = db.begin();
    tx.par_update(t, |_, r| r.hp += 1).unwrap();
    tx.insert(t, &p(7)).unwrap();
    assert!(matches!(tx.commit(), Err(tabledb::Error::LimitReached { .. })));
    let after = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id, *r)).collect::<Vec<_>>();
    assert_eq!(before, after, "a refused commit changes nothing");

    // Below the limit, it commits and is logged.
    let mut tx = db.begin();
    tx.par_update(t, |_, r| r.hp += 1).unwrap();
    tx.commit().unwrap();
    drop(db);
    let db = Database::open_with(dir.path(), tabledb::Config::default(), small(tabledb::Durability::Tick))
        .unwrap();
    let t = db.table::<Player>().unwrap();
    let snap = db.snapshot();
    let view = snap.table(t).unwrap();
    assert_eq!(view.len() as usize, before.len());
    assert!(view.iter().zip(&before).all(|((_, r), (_, b))| r.hp == b.hp + 1));
    drop(snap);
    drop(db);

    // Without a log there is nothing to bound.
    let db = Database::open_with(
        dir.path(),
        tabledb::Config::default(),
        small(tabledb::Durability::CheckpointOnly),
    )
    .unwrap();
    let t = db.table::<Player>().unwrap();
    let mut tx = db.begin();
    for i in 0..200 {
        tx.insert(t, &p(i)).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn a_group_too_big_for_one_log_entry_is_logged_as_several() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        || tabledb::PersistOptions { wal_buffer_max_bytes: 4096, ..tabledb::PersistOptions::default() };
    let db = Database::open_with(dir.path(), tabledb::Config::default(), options()).unwrap();
    let t = db.create_table::<Player>().unwrap();
    let put = 17 + Player::RECORD_SIZE;
    // Ten transactions of half an entry each.
    let txs: Vec<_> = (0..10u32)
        .map(|k| {
            let mut tx = db.begin();
            for i in 0..(2048 / put) as u32 {
                tx.insert(t, &p(k * 1000 + i)).unwrap();
            }
            tx
        })
        .collect();
    let (results, rest) = db.commit_group(txs);
    assert!(rest.is_empty());
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    let seqs: Vec<u64> = results.iter().map(|r| r.as_ref().unwrap().seq.0).collect();
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]), "in order: {seqs:?}");
    assert!(seqs.first() < seqs.last(), "published as several snapshots: {seqs:?}");
    db.sync().unwrap();
    let expected = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id, *r)).collect::<Vec<_>>();
    assert_eq!(expected.len(), 10 * (2048 / put));
    drop(db);
    let db = Database::open_with(dir.path(), tabledb::Config::default(), options()).unwrap();
    let t = db.table::<Player>().unwrap();
    let recovered = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id, *r)).collect::<Vec<_>>();
    assert_eq!(recovered, expected);
}

#[test]
fn a_group_where_one_transaction_updates_a_record_and_a_later_one_deletes_it_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (id, kept) = {
        let db = Database::open(dir.path()).unwrap();
        let t = db.create_table::<Player>().unwrap();
        let id = db.insert(t, &p(1)).unwrap();
        let kept = db.insert(t, &p(2)).unwrap();
        // Updated, then deleted by a later transaction of the group that did not read it.
        let mut a = db.begin();
        a.set(t, id, Player::HP, 5).unwrap();
        a.set(t, kept, Player::HP, 6).unwrap();
        let mut b = db.begin();
        b.delete(t, id).unwrap();
        let mut c = db.begin();
        c.set(t, kept, Player::HP, 7).unwrap();
        let (results, rest) = db.commit_group(vec![a, b, c]);
        assert!(rest.is_empty() && results.iter().all(|r| r.is_ok()), "{results:?}");
        (id, kept)
    };
    let db = Database::open(dir.path()).unwrap();
    let t = db.table::<Player>().unwrap();
    let snap = db.snapshot();
    assert!(snap.get(t, id).is_none());
    assert_eq!(snap.get(t, kept).unwrap().hp, 7);
    assert_eq!(snap.len(t).unwrap(), 1);
}

#[test]
fn an_idle_table_does_not_keep_checkpoints_from_trimming_the_log() {
    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Item {
        weight: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let items = db.create_table::<Item>().unwrap();
    let players = db.create_table::<Player>().unwrap();
    db.insert(items, &Item { weight: 1 }).unwrap();
    let id = db.insert(players, &p(0)).unwrap();
    assert!(db.checkpoint().unwrap());
    for i in 0..20 {
        db.set(players, id, Player::HP, i).unwrap();
        assert!(db.checkpoint().unwrap());
    }
    let segments = db.persistence_status().unwrap().log_segments;
    let files = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(
        segments <= 2 && files <= 2,
        "after 20 checkpoints: {segments} log segments, {files} files in wal/"
    );
    db.set(players, id, Player::HP, 99).unwrap();
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(
        db.recovery_report().unwrap().log_entries,
        1,
        "only the commit after the last checkpoint is replayed"
    );
    let snap = db.snapshot();
    assert_eq!(snap.get(db.table::<Player>().unwrap(), id).unwrap().hp, 99);
    assert_eq!(snap.len(db.table::<Item>().unwrap()).unwrap(), 1);
}

#[test]
fn without_a_log_a_crash_after_a_schema_change_keeps_the_tables_consistent() {
    use std::sync::Arc;
    use tabledb::persist::SimStorage;
    use tabledb::schema::FieldDef;

    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Parent {
        v: u64,
    }
    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Child {
        parent: u64,
    }
    let options = |sim: &SimStorage| tabledb::PersistOptions {
        durability: tabledb::Durability::CheckpointOnly,
        checkpoint_after_wal_bytes: 0,
        storage: Arc::new(sim.clone()),
        ..tabledb::PersistOptions::default()
    };
    let sim = SimStorage::new(7);
    let db = Database::open_with("/db", tabledb::Config::default(), options(&sim)).unwrap();
    let parents = db.create_table::<Parent>().unwrap();
    let children = db.create_table::<Child>().unwrap();
    db.create_relation(None, "child", "parent", "parent", "id").unwrap();
    let p = db.insert(parents, &Parent { v: 1 }).unwrap();
    let c = db.insert(children, &Child { parent: p.0 }).unwrap();
    assert!(db.checkpoint().unwrap());
    let mut tx = db.begin();
    tx.delete(children, c).unwrap();
    tx.delete(parents, p).unwrap();
    tx.commit().unwrap();
    // Rewrites `parent`; `child` changed since its checkpoint too.
    db.add_field("parent", &FieldDef::new("w", "u32")).unwrap();
    let image = sim.crash_image();
    drop(db);
    let db = Database::open_with("/db", tabledb::Config::default(), options(&image))
        .unwrap_or_else(|e| panic!("the crash image does not open: {e}"));
    let snap = db.snapshot();
    assert_eq!(
        (snap.len("parent").unwrap(), snap.len("child").unwrap()),
        (0, 0),
        "both as of the schema change"
    );
}
