//! Repeated updates of a whole table keep it where it lay: each update writes every page into
//! the block the same page had two versions before, so the table does not scatter through
//! memory however often it is rewritten, whatever the number of threads. Alone in its own test
//! binary because the block cache is shared by the whole process.

use tabledb::{Database, Table, TableRef};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Unit {
    pos: [f32; 4],
    hp: u32,
    team: u32,
    _pad: [u32; 2],
}

/// The address of every record, in id order.
fn addresses(db: &Database, units: TableRef<Unit>) -> Vec<usize> {
    let snap = db.snapshot();
    let view = snap.table(units).unwrap();
    view.iter().map(|(_, u)| u as *const Unit as usize).collect()
}

#[test]
fn whole_table_updates_write_each_page_where_it_lay_two_versions_before() {
    let db = Database::new();
    let units = db.create_table::<Unit>().unwrap();
    let mut tx = db.begin();
    for i in 0..50_000u32 {
        tx.insert(units, &Unit { pos: [i as f32; 4], hp: i, team: i % 4, _pad: [0; 2] }).unwrap();
    }
    tx.commit().unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let mut layouts = Vec::new();
    for round in 0..6u32 {
        pool.install(|| {
            let mut tx = db.begin();
            let n = tx.par_update(units, |_, u| u.hp = u.hp.wrapping_add(1)).unwrap();
            assert_eq!(n, 50_000);
            tx.commit().unwrap();
        });
        let layout = addresses(&db, units);
        assert_eq!(layout.len(), 50_000, "round {round}");
        layouts.push(layout);
    }
    let snap = db.snapshot();
    let view = snap.table(units).unwrap();
    for (k, (_, u)) in view.iter().enumerate() {
        assert_eq!(u.hp, k as u32 + 6, "every update changed every record once");
    }
    // The first update took whatever blocks there were; from the second on, each update reuses
    // the blocks the one before the last freed, in page order.
    for round in 3..6 {
        let moved = layouts[round].iter().zip(&layouts[round - 2]).filter(|(a, b)| a != b).count();
        assert_eq!(moved, 0, "round {round}: {moved} records not where they lay two versions before");
    }
    // The two alternating versions are distinct copies.
    assert!(layouts[4].iter().zip(&layouts[5]).all(|(a, b)| a != b));
}
