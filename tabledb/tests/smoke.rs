use tabledb::{Database, FixedStr, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    x: f32,
    y: f32,
    hp: u32,
    level: u16,
    alive: bool,
    team: u8,
    name: FixedStr<14>,
}

fn player(i: u32) -> Player {
    Player {
        x: i as f32,
        y: 0.0,
        hp: 100 + i,
        level: 1,
        alive: true,
        team: (i % 2) as u8,
        name: FixedStr::new(&format!("p{i}")).unwrap(),
    }
}

#[test]
fn crud_and_snapshots() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..1000).map(|i| tx.insert(players, &player(i)).unwrap()).collect();
    assert_eq!(tx.get(players, ids[5]).unwrap().unwrap().hp, 105);
    tx.commit().unwrap();
    let before = db.snapshot();
    db.set(players, ids[5], Player::HP, 7).unwrap();
    db.delete(players, ids[6]).unwrap();
    let after = db.snapshot();
    assert_eq!(before.get(players, ids[5]).unwrap().hp, 105);
    assert_eq!(after.get(players, ids[5]).unwrap().hp, 7);
    assert!(after.get(players, ids[6]).is_none());
    assert!(before.get(players, ids[6]).is_some());
    let view = after.table(players).unwrap();
    assert_eq!(view.len(), 999);
    assert_eq!(view.iter().count(), 999);
    let total: u64 = view.iter().map(|(_, p)| p.hp as u64).sum();
    let par: u64 = view.par_sum(|p| p.hp as u64);
    assert_eq!(total, par);
    db.compact_table("player").unwrap();
    let c = db.snapshot();
    assert_eq!(c.get(players, ids[5]).unwrap().hp, 7);
    assert!(c.get(players, ids[6]).is_none());
    assert_eq!(c.get(players, ids[999]).unwrap().hp, 1099);
    let id = db.insert(players, &player(5000)).unwrap();
    assert_eq!(db.snapshot().get(players, id).unwrap().hp, 5100);
}

#[test]
fn par_update_changes_every_record_once_and_commits_atomically() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..5000).map(|i| tx.insert(players, &player(i)).unwrap()).collect();
    tx.commit().unwrap();
    db.delete(players, ids[10]).unwrap();
    let before = db.snapshot();
    let mut tx = db.begin();
    tx.set(players, ids[20], Player::HP, 1).unwrap();
    let n = tx.par_update(players, |_, p| p.hp += 1000).unwrap();
    assert_eq!(n, 4999);
    assert_eq!(tx.get(players, ids[20]).unwrap().unwrap().hp, 1001);
    assert_eq!(tx.get(players, ids[0]).unwrap().unwrap().hp, 1100);
    assert!(tx.get(players, ids[10]).unwrap().is_none());
    assert_eq!(before.get(players, ids[0]).unwrap().hp, 100, "not visible before commit");
    tx.commit().unwrap();
    let after = db.snapshot();
    let view = after.table(players).unwrap();
    assert_eq!(view.len(), 4999);
    for (i, id) in ids.iter().enumerate() {
        match (i, view.get(*id)) {
            (10, got) => assert!(got.is_none()),
            (20, Some(p)) => assert_eq!(p.hp, 1001),
            (_, Some(p)) => assert_eq!(p.hp, 100 + i as u32 + 1000),
            (_, None) => panic!("record {i} missing"),
        }
    }
    // A concurrent commit to the table makes a parallel update conflict instead of losing it.
    let mut tx = db.begin();
    tx.par_update(players, |_, p| p.level += 1).unwrap();
    db.set(players, ids[0], Player::HP, 7).unwrap();
    assert!(tx.commit().unwrap_err().is_conflict());
    assert_eq!(db.snapshot().get(players, ids[0]).unwrap().hp, 7);
}

#[test]
fn par_update_passes_each_record_its_own_id_on_dense_sparse_and_compacted_pages() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..20_000).map(|i| tx.insert(players, &player(i)).unwrap()).collect();
    tx.commit().unwrap();
    // Holes in some pages (every 7th record), then compaction makes those pages sparse; later
    // pages stay dense and fully live. The table spans many tree leaves, so the update is
    // split into several tasks.
    let mut tx = db.begin();
    for id in ids.iter().take(10_000).filter(|id| id.0 % 7 == 0) {
        tx.delete(players, *id).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table(<Player as Table>::NAME).unwrap();
    db.delete(players, ids[15_000]).unwrap();
    let mut tx = db.begin();
    tx.par_update(players, |id, p| p.hp = id.0 as u32 * 2).unwrap();
    tx.commit().unwrap();
    let snap = db.snapshot();
    let view = snap.table(players).unwrap();
    let mut seen = 0;
    for (id, p) in view.iter() {
        assert_eq!(p.hp, id.0 as u32 * 2, "record {id:?} got another record's id");
        assert_eq!(p.x, (id.0 - 1) as f32, "record {id:?} kept its other fields");
        seen += 1;
    }
    assert_eq!(seen, 20_000 - 10_000 / 7 - 1);
}

#[test]
fn par_updates_in_one_transaction_stack_and_leave_unchanged_pages_shared() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..5000).map(|i| tx.insert(players, &player(i)).unwrap()).collect();
    tx.commit().unwrap();
    let before = db.snapshot();
    let mut tx = db.begin();
    tx.par_update(players, |_, p| p.hp += 1).unwrap();
    // Changes only the pages holding every 1000th record; the rest stay as the first update
    // left them.
    tx.par_update(players, |id, p| {
        if id.0 % 1000 == 0 {
            p.level += 5
        }
    })
    .unwrap();
    tx.set(players, ids[1], Player::HP, 3).unwrap();
    // A third update that changes nothing keeps both earlier ones.
    tx.par_update(players, |_, _| {}).unwrap();
    tx.commit().unwrap();
    let snap = db.snapshot();
    for (i, id) in ids.iter().enumerate() {
        let p = snap.get(players, *id).unwrap();
        let hp = if i == 1 { 3 } else { 100 + i as u32 + 1 };
        assert_eq!(p.hp, hp, "record {i}");
        assert_eq!(p.level, if id.0 % 1000 == 0 { 6 } else { 1 }, "record {i}");
    }
    assert_eq!(before.get(players, ids[0]).unwrap().hp, 100, "older snapshots keep the old pages");
    // An update that changes nothing commits nothing visible.
    let mut tx = db.begin();
    tx.par_update(players, |_, _| {}).unwrap();
    tx.commit().unwrap();
    assert_eq!(db.snapshot().get(players, ids[2]).unwrap().hp, 103);
}

#[test]
fn par_update_changes_a_record_staged_by_a_partial_update_once() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let id = db.insert(players, &player(0)).unwrap();
    let other = db.insert(players, &player(1)).unwrap();
    let mut tx = db.begin();
    tx.set(players, id, Player::LEVEL, 5).unwrap();
    tx.par_update(players, |_, p| p.hp += 1).unwrap();
    tx.set(players, other, Player::LEVEL, 7).unwrap();
    tx.par_update(players, |_, p| p.hp += 10).unwrap();
    let seen = *tx.get(players, id).unwrap().unwrap();
    assert_eq!((seen.hp, seen.level), (100 + 11, 5), "the transaction's own view");
    tx.commit().unwrap();
    let snap = db.snapshot();
    let p = snap.get(players, id).unwrap();
    assert_eq!((p.hp, p.level), (100 + 11, 5), "the committed record");
    let p = snap.get(players, other).unwrap();
    assert_eq!((p.hp, p.level), (101 + 11, 7));
}

#[test]
fn relations_are_enforced_on_every_write() {
    use tabledb::schema::FieldDef;
    let db = Database::new();
    db.create_table_from_defs("team", &[FieldDef::new("score", "u32")]).unwrap();
    db.create_table_from_defs("member", &[FieldDef::new("team", "u64"), FieldDef::new("level", "u32")])
        .unwrap();
    db.create_relation(None, "member", "team", "team", "id").unwrap();
    let team = db.create_record("team", &7u32.to_le_bytes()).unwrap();
    let member = |t: u64, level: u32| [t.to_le_bytes().as_slice(), &level.to_le_bytes(), &[0; 4]].concat();
    let m = db.create_record("member", &member(team.0, 1)).unwrap();
    let err = db.create_record("member", &member(999, 1)).unwrap_err();
    assert!(matches!(err, tabledb::Error::Constraint { .. }), "{err}");
    assert!(db.create_record("member", &member(0, 1)).is_ok(), "0 means no reference");
    let err = db.delete_record("team", team).unwrap_err();
    assert!(matches!(err, tabledb::Error::Constraint { .. }), "{err}");
    assert!(err.to_string().contains(&format!("record {m}")), "{err}");
    // Moving the member away first, in the same transaction, makes the delete valid.
    let mut tx = db.begin();
    tx.partial_update("member", m, "team", &0u64.to_le_bytes()).unwrap();
    tx.delete_record("team", team).unwrap();
    tx.commit().unwrap();
    // A parent and a child created together.
    let mut tx = db.begin();
    let t2 = tx.create_record("team", &1u32.to_le_bytes()).unwrap();
    tx.create_record("member", &member(t2.0, 2)).unwrap();
    tx.commit().unwrap();
}

#[test]
fn typed_handles_can_be_found_by_type() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let found = db.snapshot().table_ref::<Player>().unwrap();
    assert_eq!(found.id(), players.id());
    db.add_field("player", &tabledb::schema::FieldDef::new("mana", "u16")).unwrap();
    assert!(matches!(db.snapshot().table_ref::<Player>(), Err(tabledb::Error::SchemaMismatch { .. })));
}

#[test]
fn group_commits_apply_in_order_and_stop_at_a_conflict() {
    let db = Database::new();
    let players = db.create_table::<Player>().unwrap();
    let mut tx = db.begin();
    let a = tx.insert(players, &player(1)).unwrap();
    let b = tx.insert(players, &player(2)).unwrap();
    tx.commit().unwrap();
    let seq = db.snapshot().seq();

    let mut t1 = db.begin();
    t1.set(players, a, Player::HP, 10).unwrap();
    let mut t2 = db.begin();
    t2.set(players, a, Player::LEVEL, 20).unwrap(); // blind: merges with t1's field
    let mut t3 = db.begin();
    let hp = t3.get(players, a).unwrap().unwrap().hp; // reads what t1 changes: conflicts
    t3.set(players, b, Player::HP, hp).unwrap();
    let mut t4 = db.begin();
    t4.set(players, b, Player::LEVEL, 40).unwrap();
    let (results, rest) = db.commit_group(vec![t1, t2, t3, t4]);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[1].is_ok());
    assert_eq!(results[0].as_ref().unwrap().seq, results[1].as_ref().unwrap().seq, "one snapshot");
    assert!(results[2].as_ref().unwrap_err().is_conflict());
    assert_eq!(rest.len(), 1, "the transaction after the conflict is given back");
    let snap = db.snapshot();
    assert_eq!(snap.seq().0, seq.0 + 1);
    let pa = snap.get(players, a).unwrap();
    assert_eq!((pa.hp, pa.level), (10, 20));
    assert_eq!(snap.get(players, b).unwrap().level, 1, "t4 not applied yet");
    let (results, rest) = db.commit_group(rest);
    assert!(results[0].is_ok() && rest.is_empty());
    assert_eq!(db.snapshot().get(players, b).unwrap().level, 40);
}
