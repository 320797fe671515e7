//! A parallel update that panics part-way frees every page copy it made. Alone in its own test
//! binary because the block counters are shared by the whole process.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tabledb::storage::counters;
use tabledb::{Database, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Cell {
    value: u64,
}

#[test]
fn a_panicking_parallel_update_leaks_no_blocks_and_changes_nothing() {
    let db = Database::new();
    let cells = db.create_table::<Cell>().unwrap();
    let mut tx = db.begin();
    for i in 0..50_000 {
        tx.insert(cells, &Cell { value: i }).unwrap();
    }
    tx.commit().unwrap();
    let blocks = counters::live_blocks();
    let bytes = counters::live_block_bytes();
    for _ in 0..3 {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut tx = db.begin();
            tx.par_update(cells, |id, c| {
                assert!(id.0 != 40_000, "refuses record 40000");
                c.value += 1;
            })
            .unwrap();
            tx.commit().unwrap();
        }));
        assert!(result.is_err(), "the update panicked");
        assert_eq!(counters::live_blocks(), blocks, "every copied page was freed");
        assert_eq!(counters::live_block_bytes(), bytes);
    }
    let snap = db.snapshot();
    assert_eq!(snap.get(cells, RecordId(1)).unwrap().value, 0, "nothing was committed");
    assert_eq!(snap.get(cells, RecordId(50_000)).unwrap().value, 49_999);
}
