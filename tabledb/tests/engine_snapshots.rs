//! Snapshots keep what they saw, and pages that no snapshot can reach are freed.
//!
//! The block counters are global to the process, so this file holds ONE test function: no other
//! test may allocate pages while it compares counters.

use std::sync::Arc;

use tabledb::storage::counters::{live_block_bytes, live_blocks};
use tabledb::{Database, RecordId, Snapshot, Table, TableRef};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Cell {
    value: u64,
    version: u32,
    alive: bool,
    kind: u8,
    spare: u16,
    history: [u32; 4],
}

const RECORD_SIZE: u64 = 32;
const CELLS: u64 = 5_000;

fn cell(i: u64) -> Cell {
    Cell { value: i, version: 0, alive: true, kind: (i % 7) as u8, spare: 0, history: [i as u32; 4] }
}

/// Pages of a table in a snapshot.
fn pages(snap: &Snapshot, table: &str) -> usize {
    use rayon::iter::ParallelIterator;
    snap.raw_table(table).unwrap().par_pages().count()
}

/// Everything a snapshot shows of the cells table, through every read path, as `(id, value,
/// version)` in id order.
fn contents(snap: &Snapshot, cells: TableRef<Cell>) -> Vec<(RecordId, u64, u32)> {
    let view = snap.table(cells).unwrap();
    let typed: Vec<(RecordId, u64, u32)> = view.iter().map(|(id, c)| (id, c.value, c.version)).collect();
    assert_eq!(view.len(), typed.len() as u64);
    assert_eq!(snap.len("cell").unwrap(), typed.len() as u64);
    let raw = snap.raw_table("cell").unwrap();
    let raw_ids: Vec<RecordId> = raw.iter().map(|(id, _)| id).collect();
    assert_eq!(raw_ids, typed.iter().map(|t| t.0).collect::<Vec<_>>());
    for &(id, value, version) in typed.iter().step_by(97) {
        let c = snap.get(cells, id).unwrap();
        assert_eq!((c.value, c.version), (value, version));
        let bytes = snap.read_record("cell", id).unwrap();
        assert_eq!(bytes, c.as_bytes());
        assert_eq!(Cell::read(bytes).unwrap(), *c);
    }
    let sum: u64 = typed.iter().map(|t| t.1).sum();
    assert_eq!(view.par_sum(|c| c.value), sum);
    typed
}

#[test]
fn snapshots_keep_their_data_and_unreachable_pages_are_freed() {
    let start_blocks = live_blocks();
    let start_bytes = live_block_bytes();
    assert_eq!(Cell::RECORD_SIZE as u64, RECORD_SIZE);

    let db = Database::new();
    let cells = db.create_table::<Cell>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..CELLS).map(|i| tx.insert(cells, &cell(i)).unwrap()).collect();
    tx.commit().unwrap();

    // Every block holds a page; a dense table costs its records and little more.
    let s0 = db.snapshot();
    let pages0 = pages(&s0, "cell");
    let (blocks0, bytes0) = (live_blocks(), live_block_bytes());
    assert_eq!(blocks0 - start_blocks, pages0, "one block per page");
    let records_bytes = (CELLS * RECORD_SIZE) as usize;
    assert!(bytes0 - start_bytes >= records_bytes);
    assert!(
        (bytes0 - start_bytes) * 100 <= records_bytes * 105,
        "blocks of a dense table: {} bytes for {records_bytes} bytes of records",
        bytes0 - start_bytes
    );
    assert!(
        s0.memory_bytes() * 100 <= records_bytes * 105,
        "engine bytes {} for {records_bytes}",
        s0.memory_bytes()
    );
    let old = contents(&s0, cells);
    assert_eq!(old.len() as u64, CELLS);

    // ---- updates copy pages; the old snapshot keeps the old ones ----
    for chunk in ids.chunks(1000) {
        let mut tx = db.begin();
        for &id in chunk.iter().step_by(2) {
            tx.modify(cells, id, |c| {
                c.value += 1_000_000;
                c.version += 1;
            })
            .unwrap();
        }
        tx.commit().unwrap();
        // Old and new views at every step.
        assert_eq!(s0.get(cells, chunk[0]).unwrap().version, 0);
        assert_eq!(db.snapshot().get(cells, chunk[0]).unwrap().version, 1);
    }
    let s1 = db.snapshot();
    assert_eq!(contents(&s0, cells), old, "a snapshot never changes");
    let new = contents(&s1, cells);
    assert_eq!(new.len(), old.len());
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(o.0, n.0);
        let updated = (o.0.0 - 1) % 2 == 0;
        assert_eq!(n.1, o.1 + if updated { 1_000_000 } else { 0 });
        assert_eq!(n.2, u32::from(updated));
    }
    let grown = live_blocks();
    assert!(
        grown >= blocks0 + pages0,
        "every page was copied and the old copies are still reachable: {grown} < {blocks0} + {pages0}"
    );
    drop(s0);
    drop(s1);
    assert_eq!(live_blocks(), blocks0, "the old pages were freed with the last snapshot that saw them");
    assert_eq!(live_block_bytes(), bytes0);

    // ---- a transaction's start snapshot keeps pages alive too ----
    let reader = db.begin();
    db.set(cells, ids[0], Cell::VERSION, 9).unwrap();
    assert!(live_blocks() > blocks0);
    assert_eq!(reader.get(cells, ids[0]).unwrap().unwrap().version, 1);
    assert_eq!(reader.snapshot().get(cells, ids[0]).unwrap().version, 1);
    drop(reader);
    assert_eq!(live_blocks(), blocks0);

    // ---- deletes and compaction ----
    let mut tx = db.begin();
    for &id in ids.iter().filter(|id| id.0 % 4 != 0) {
        tx.delete(cells, id).unwrap();
    }
    tx.commit().unwrap();
    let s2 = db.snapshot();
    let live = CELLS / 4;
    assert_eq!(s2.len(cells).unwrap(), live);
    let before_compaction = live_block_bytes();
    db.compact_table("cell").unwrap();
    let s3 = db.snapshot();
    assert_eq!(contents(&s3, cells), contents(&s2, cells), "compaction changes no record and no id");
    assert!(s2.get(cells, ids[1]).is_none());
    assert!(live_block_bytes() > before_compaction, "the old pages stay while s2 can reach them");
    drop(s2);
    drop(s3);
    let compacted = live_block_bytes() - start_bytes;
    let live_bytes = (live * RECORD_SIZE) as usize;
    assert!(compacted < before_compaction - start_bytes);
    assert!(compacted >= live_bytes);
    assert!(compacted * 100 <= live_bytes * 105, "after compaction: {compacted} bytes for {live_bytes}");
    // The table still takes inserts and updates after compaction.
    let fresh = db.insert(cells, &cell(77)).unwrap();
    assert!(fresh > *ids.last().unwrap(), "ids are never reused");
    db.set(cells, ids[3], Cell::VALUE, 5).unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.get(cells, fresh).unwrap().value, 77);
    assert_eq!(snap.get(cells, ids[3]).unwrap().value, 5);
    assert_eq!(snap.len(cells).unwrap(), live + 1);
    drop(snap);

    // ---- a dropped table lives on in the snapshots that saw it ----
    let other = db.create_table_from_defs("other", &[tabledb::schema::FieldDef::new("x", "u64")]).unwrap();
    let mut tx = db.begin();
    for i in 0..1000u64 {
        tx.create_record(other, &i.to_le_bytes()).unwrap();
    }
    tx.commit().unwrap();
    let with_other = db.snapshot();
    let other_pages = pages(&with_other, "other");
    let blocks_with_other = live_blocks();
    db.drop_table("other").unwrap();
    assert_eq!(live_blocks(), blocks_with_other, "the dropped table's pages stay while a snapshot sees them");
    assert_eq!(with_other.read_record("other", RecordId(1000)).unwrap(), &999u64.to_le_bytes());
    assert_eq!(with_other.len("other").unwrap(), 1000);
    assert!(db.snapshot().raw_table("other").is_err());
    drop(with_other);
    assert_eq!(live_blocks(), blocks_with_other - other_pages);

    // ---- the database goes; its last snapshot still reads, and then everything is freed ----
    let last: Arc<Snapshot> = db.snapshot();
    let expected = contents(&last, cells);
    let clone = db.clone();
    drop(db);
    assert_eq!(clone.snapshot().seq(), last.seq(), "a clone is the same database");
    drop(clone);
    assert!(live_blocks() > start_blocks, "a snapshot outlives its database");
    assert_eq!(contents(&last, cells), expected);
    drop(last);
    assert_eq!(live_blocks(), start_blocks, "every block was freed");
    assert_eq!(live_block_bytes(), start_bytes);

    // Without any snapshot outliving it, dropping a database frees everything at once.
    let db = Database::new();
    let cells = db.create_table::<Cell>().unwrap();
    let mut tx = db.begin();
    for i in 0..500 {
        tx.insert(cells, &cell(i)).unwrap();
    }
    tx.commit().unwrap();
    db.set(cells, RecordId(3), Cell::VALUE, 1).unwrap();
    assert!(live_blocks() > start_blocks);
    drop(db);
    assert_eq!(live_blocks(), start_blocks);
    assert_eq!(live_block_bytes(), start_bytes);
}
