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

/// A table of `n` records made by `make`, inserted in one transaction.
fn filled<T: Table>(db: &Database, n: u32, make: impl Fn(u32) -> T) -> TableRef<T> {
    let table = db.create_table::<T>().unwrap();
    let mut tx = db.begin();
    for i in 0..n {
        tx.insert(table, &make(i)).unwrap();
    }
    tx.commit().unwrap();
    table
}

/// A record of a third size, for the third test.
#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Shard {
    pos: [f32; 4],
    hp: u32,
    kind: u32,
    _pad: [u32; 4],
}

/// The address of every record, in id order, after each of `rounds` whole-table updates by
/// `f` (each changing all `live` records), run on 3 threads; `between` runs after each.
fn layouts<T: Table>(
    db: &Database,
    table: TableRef<T>,
    rounds: usize,
    live: u64,
    f: impl Fn(&mut T) + Sync + Send,
    mut between: impl FnMut(),
) -> Vec<Vec<usize>> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    (0..rounds)
        .map(|_| {
            pool.install(|| {
                let mut tx = db.begin();
                assert_eq!(tx.par_update(table, |_, r| f(r)).unwrap(), live);
                tx.commit().unwrap();
            });
            let layout = {
                let snap = db.snapshot();
                let view = snap.table(table).unwrap();
                view.iter().map(|(_, r)| r as *const T as usize).collect()
            };
            between();
            layout
        })
        .collect()
}

/// Records whose successor lies at a lower address: a table in page order has few (where a
/// run of blocks ends), a scattered one about one per page.
fn backward(layout: &[usize]) -> usize {
    layout.windows(2).filter(|w| w[1] < w[0]).count()
}

/// The most records followed by a lower address in a table of `pages` pages that an update
/// keeps in page order: the blocks it sets aside are sorted once more than one in 64 is out of
/// order, and a few pages may take blocks of their own.
fn in_order_bound(pages: usize) -> usize {
    pages / 64 + 8
}

#[test]
fn whole_table_updates_write_each_page_where_it_lay_two_versions_before() {
    let db = Database::new();
    let units = filled(&db, 50_000, |i| Unit { pos: [i as f32; 4], hp: i, team: i % 4, _pad: [0; 2] });
    let layouts = layouts(&db, units, 6, 50_000, |u: &mut Unit| u.hp = u.hp.wrapping_add(1), || {});
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
    // The two alternating versions are distinct copies, each in page order (32 records a
    // page).
    assert!(layouts[4].iter().zip(&layouts[5]).all(|(a, b)| a != b));
    for (round, layout) in layouts.iter().enumerate().skip(1) {
        let backward = backward(layout);
        assert!(
            backward <= in_order_bound(50_000 / 32),
            "round {round}: {backward} records followed by one at a lower address"
        );
    }
}

#[test]
fn a_compacted_table_stays_in_page_order() {
    let db = Database::new();
    let crates = filled(&db, 30_000, |i| Crate { pos: [i as f32; 4], hp: i, kind: i % 3, _pad: [0; 6] });
    // A few records deleted in an early page and one in the middle; compaction makes those
    // pages smaller than the others, and rewrites the table.
    let mut tx = db.begin();
    for id in (300..305).chain([15_000]) {
        tx.delete(crates, RecordId(id)).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table(<Crate as Table>::NAME).unwrap();
    let layouts = layouts(&db, crates, 12, 30_000 - 6, |c: &mut Crate| c.hp = c.hp.wrapping_add(1), || {});
    let counts: Vec<usize> = layouts.iter().map(|l| backward(l)).collect();
    // Every version from the second on lies in page order (16 records a page), and stays so.
    assert!(counts[1..].iter().all(|&c| c <= in_order_bound(30_000 / 16)), "the table scatters: {counts:?}");
}

#[test]
fn a_table_also_changed_record_by_record_stays_in_page_order() {
    let db = Database::new();
    let shards = filled(&db, 20_000, |i| Shard { pos: [i as f32; 4], hp: i, kind: i % 5, _pad: [0; 4] });
    let mut id = 1u64;
    // Commits of single records between the whole-table updates free a few pages each, which
    // the next update finds first among the blocks it sets aside.
    let set_some = || {
        for _ in 0..5 {
            id = id * 7919 % 20_000 + 1;
            db.set(shards, RecordId(id), Shard::KIND, 9).unwrap();
        }
    };
    let layouts = layouts(&db, shards, 12, 20_000, |s: &mut Shard| s.hp = s.hp.wrapping_add(1), set_some);
    let counts: Vec<usize> = layouts.iter().map(|l| backward(l)).collect();
    // Each update keeps the few out-of-order blocks it found, or sorts them away once they
    // pass one in 64 (16 records a page; the 5 blocks freed since come on top).
    assert!(
        counts[1..].iter().all(|&c| c <= in_order_bound(20_000 / 16) + 5),
        "the table scatters: {counts:?}"
    );
}
