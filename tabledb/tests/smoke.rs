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
