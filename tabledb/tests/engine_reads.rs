//! Batched lookups: `TableView::get_many` answers exactly what `get` answers, id by id and in
//! order, for live, deleted, compacted-away, never-created and out-of-range ids, on tables of
//! every tree height (a single leaf up to several inner levels).

use proptest::prelude::*;
use tabledb::{Database, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Probe {
    value: u64,
    tag: u32,
    spare: u32,
}

/// A table of `n` records with every `delete_every`-th one deleted (0: none), compacted or
/// not; returns the database and the table.
fn table(n: u64, delete_every: u64, compact: bool) -> (Database, tabledb::TableRef<Probe>) {
    let db = Database::new();
    let t = db.create_table::<Probe>().unwrap();
    let mut tx = db.begin();
    for i in 0..n {
        tx.insert(t, &Probe { value: i * 3, tag: i as u32, spare: 0 }).unwrap();
    }
    tx.commit().unwrap();
    if delete_every > 0 {
        let mut tx = db.begin();
        for id in (1..=n).filter(|id| id % delete_every == 0) {
            tx.delete(t, RecordId(id)).unwrap();
        }
        tx.commit().unwrap();
    }
    if compact {
        db.compact_table(Probe::NAME).unwrap();
    }
    (db, t)
}

fn check(db: &Database, t: tabledb::TableRef<Probe>, ids: &[RecordId]) -> Result<(), TestCaseError> {
    let snap = db.snapshot();
    let view = snap.table(t).unwrap();
    let mut seen = Vec::with_capacity(ids.len());
    view.get_many(ids, |id, record| seen.push((id, record.copied())));
    let expected: Vec<(RecordId, Option<Probe>)> =
        ids.iter().map(|&id| (id, view.get(id).copied())).collect();
    prop_assert_eq!(seen, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn get_many_answers_like_get(
        n in prop_oneof![0u64..40, 40u64..2_000, 2_000u64..40_000],
        delete_every in prop_oneof![Just(0u64), 2u64..9],
        compact in any::<bool>(),
        picks in prop::collection::vec(any::<u64>(), 0..300),
    ) {
        let (db, t) = table(n, delete_every, compact);
        // Ids in and around the table, including 0 and ids far past its end.
        let ids: Vec<RecordId> = picks
            .iter()
            .map(|&p| match p % 8 {
                0 => RecordId(0),
                1 => RecordId(n + 1 + p % 100_000),
                2 => RecordId(p),
                _ => RecordId(1 + p % n.max(1)),
            })
            .collect();
        check(&db, t, &ids)?;
    }
}

#[test]
fn get_many_of_every_id_in_order_and_reversed() {
    let (db, t) = table(70_000, 5, false);
    let mut ids: Vec<RecordId> = (0..=70_010).map(RecordId).collect();
    let snap = db.snapshot();
    let view = snap.table(t).unwrap();
    let mut live = 0;
    view.get_many(&ids, |id, record| {
        if let Some(r) = record {
            assert_eq!(r.value, (id.0 - 1) * 3);
            assert_ne!(id.0 % 5, 0, "deleted records are not returned");
            live += 1;
        }
    });
    assert_eq!(live, 70_000 - 70_000 / 5);
    ids.reverse();
    let mut order = Vec::new();
    view.get_many(&ids, |id, _| order.push(id));
    assert_eq!(order, ids, "answers come in the order asked");
}
