//! Parallel updates stacked in one transaction, with record-level changes on top, see each
//! other's writes, commit them all, and leak no page copy whether the transaction commits,
//! aborts or panics part-way. Alone in its own test binary because the block counters are
//! shared by the whole process.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tabledb::storage::counters;
use tabledb::{Database, RecordId, Table, TableRef, Transaction};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Cell {
    value: u64,
    other: u64,
}

const CELLS: u64 = 20_000;
/// Records per page for a 16-byte record.
const PER_PAGE: u64 = 64;

fn page_of(id: RecordId) -> u64 {
    (id.0 - 1) / PER_PAGE
}

/// The value a record has after `stack`: +1 on even pages, +10 on pages divisible by 3 (so
/// some pages change in both updates, some in one, some in neither), and the record-level
/// changes.
fn expected(id: u64, start: u64) -> u64 {
    let page = (id - 1) / PER_PAGE;
    let mut v = start;
    if page.is_multiple_of(2) {
        v += 1;
    }
    if page.is_multiple_of(3) {
        v += 10;
    }
    if id == 1 || id == 100 {
        v += 1000;
    }
    v
}

/// Two parallel updates and two record-level updates: record 1 is on a page both updates
/// copied, record 100 on one neither did.
fn stack(tx: &mut Transaction, t: TableRef<Cell>) {
    tx.par_update(t, |id, c| {
        if page_of(id).is_multiple_of(2) {
            c.value += 1;
        }
    })
    .unwrap();
    tx.par_update(t, |id, c| {
        if page_of(id).is_multiple_of(3) {
            c.value += 10;
        }
    })
    .unwrap();
    for id in [1, 100] {
        tx.modify(t, RecordId(id), |c| c.value += 1000).unwrap();
    }
}

#[test]
fn stacked_parallel_updates_see_each_other_and_free_every_copy() {
    let db = Database::new();
    let t = db.create_table::<Cell>().unwrap();
    let mut tx = db.begin();
    for i in 1..=CELLS {
        tx.insert(t, &Cell { value: i, other: 0 }).unwrap();
    }
    tx.commit().unwrap();
    let blocks = counters::live_blocks();
    let bytes = counters::live_block_bytes();

    // Aborted: the transaction saw its writes; dropping it frees every copy.
    {
        let mut tx = db.begin();
        stack(&mut tx, t);
        for id in [1, 64, 65, 100, 129, 193, 385, CELLS] {
            assert_eq!(tx.get(t, RecordId(id)).unwrap().unwrap().value, expected(id, id), "record {id}");
        }
        assert!(counters::live_blocks() > blocks);
    }
    assert_eq!(counters::live_blocks(), blocks, "an aborted transaction frees its copies");
    assert_eq!(counters::live_block_bytes(), bytes);

    // Panicking in the second update: the transaction is dropped as the panic unwinds.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut tx = db.begin();
        tx.par_update(t, |id, c| {
            if page_of(id).is_multiple_of(2) {
                c.value += 1;
            }
        })
        .unwrap();
        tx.par_update(t, |id, c| {
            assert!(id.0 != 12_345, "refuses record 12345");
            c.value += 10;
        })
        .unwrap();
    }));
    assert!(result.is_err(), "the second update panicked");
    assert_eq!(counters::live_blocks(), blocks, "a panicking update frees its copies");
    assert_eq!(counters::live_block_bytes(), bytes);

    // Committed: the new snapshot has every write, the old one none.
    let before = db.snapshot();
    let mut tx = db.begin();
    stack(&mut tx, t);
    tx.commit().unwrap();
    let after = db.snapshot();
    for id in 1..=CELLS {
        assert_eq!(after.get(t, RecordId(id)).unwrap().value, expected(id, id), "record {id} after");
        assert_eq!(before.get(t, RecordId(id)).unwrap().value, id, "record {id} before");
    }
    drop(before);
    assert_eq!(counters::live_blocks(), blocks, "one block per page once the old snapshot is gone");
    assert_eq!(counters::live_block_bytes(), bytes);

    // Once more on top of the committed copies (which are now the published pages).
    let mut tx = db.begin();
    stack(&mut tx, t);
    tx.commit().unwrap();
    drop(after);
    let last = db.snapshot();
    for id in 1..=CELLS {
        let once = expected(id, id);
        assert_eq!(last.get(t, RecordId(id)).unwrap().value, expected(id, once), "record {id} last");
    }
    assert_eq!(counters::live_blocks(), blocks);
    assert_eq!(counters::live_block_bytes(), bytes);
}
