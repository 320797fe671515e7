//! Repeated updates of a whole table keep it where it lay: each update writes every page into
//! the block the same page had two versions before, so the table does not scatter through
//! memory however often it is rewritten, whatever the number of threads. Alone in its own test
//! binary because the block cache is shared by the whole process.

use tabledb::{Database, RecordId, Table, TableRef};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Unit {
    pos: [f32; 4],
    hp: u32,
    team: u32,
    _pad: [u32; 2],
}

/// A record of another size than `Unit`, so that the two tests, which may run at once, use
/// blocks of different sizes.
#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Crate {
    pos: [f32; 4],
    hp: u32,
    kind: u32,
    _pad: [u32; 6],
}

/// The address of every record, in id order.
fn addresses<T: Table>(db: &Database, table: TableRef<T>) -> Vec<usize> {
    let snap = db.snapshot();
    let view = snap.table(table).unwrap();
    view.iter().map(|(_, r)| r as *const T as usize).collect()
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
    // The two alternating versions are distinct copies, each in page order (records whose
    // successor lies at a lower address are few: only where one run of blocks ends).
    assert!(layouts[4].iter().zip(&layouts[5]).all(|(a, b)| a != b));
    for (round, layout) in layouts.iter().enumerate() {
        let backward = layout.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(backward <= 16, "round {round}: {backward} records followed by one at a lower address");
    }
}

#[test]
fn a_compacted_table_stays_in_page_order() {
    let db = Database::new();
    let crates = db.create_table::<Crate>().unwrap();
    let mut tx = db.begin();
    for i in 0..30_000u32 {
        tx.insert(crates, &Crate { pos: [i as f32; 4], hp: i, kind: i % 3, _pad: [0; 6] }).unwrap();
    }
    tx.commit().unwrap();
    // A few records deleted in an early page and one in the middle; compaction makes those
    // pages smaller than the others.
    let mut tx = db.begin();
    for id in (300..305).chain([15_000]) {
        tx.delete(crates, RecordId(id)).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table(<Crate as Table>::NAME).unwrap();
    let n = 30_000 - 6;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    // Records whose successor lies at a lower address: a table in page order has few (where
    // the blocks of a run end), a scattered one many.
    let backward = |layout: &[usize]| layout.windows(2).filter(|w| w[1] < w[0]).count();
    let mut counts = Vec::new();
    for _ in 0..12 {
        pool.install(|| {
            let mut tx = db.begin();
            assert_eq!(tx.par_update(crates, |_, c| c.hp = c.hp.wrapping_add(1)).unwrap(), n);
            tx.commit().unwrap();
        });
        counts.push(backward(&addresses(&db, crates)));
    }
    // Every version from the second on lies in page order, and stays so.
    assert!(counts[1..].iter().all(|&c| c <= 16), "the table scatters: {counts:?}");
}
