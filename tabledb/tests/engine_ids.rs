//! Record ids: deterministic transactions number their new records from their start snapshot
//! (no gaps, the same ids for the same commits in the same order); ordinary transactions take
//! ids from a shared counter; the two never give one id to two records; the numbering survives
//! deletes, compaction and a restart.

use tabledb::{Database, ErrorKind, RecordId, Table, TableRef, Transaction};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    value: u64,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Other {
    value: u64,
}

fn insert_all(tx: &mut Transaction, t: TableRef<Item>, values: &[u64]) -> Vec<u64> {
    values.iter().map(|&value| tx.insert(t, &Item { value }).unwrap().0).collect()
}

fn values(db: &Database, t: TableRef<Item>) -> Vec<(u64, u64)> {
    db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id.0, r.value)).collect()
}

/// Deletes the records `ids` in one transaction, then compacts them away.
fn delete_and_compact(db: &Database, t: TableRef<Item>, ids: &[u64]) {
    let mut tx = db.begin_deterministic();
    for &id in ids {
        tx.delete(t, RecordId(id)).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table("item").unwrap();
}

#[test]
fn deterministic_transactions_number_new_records_from_their_snapshot() {
    let db = Database::new();
    let t = db.create_table::<Item>().unwrap();

    // An aborted transaction leaves no gap: the next one numbers from the same place.
    let mut aborted = db.begin_deterministic();
    assert!(aborted.is_deterministic());
    assert_eq!(insert_all(&mut aborted, t, &[7, 8, 9]), vec![1, 2, 3]);
    drop(aborted);
    let mut tx = db.begin_deterministic();
    assert_eq!(insert_all(&mut tx, t, &[10, 11]), vec![1, 2]);
    tx.commit().unwrap();
    assert_eq!(db.snapshot().table(t).unwrap().next_id(), RecordId(3));

    // Two transactions from the same snapshot would both number from 3: the second to commit
    // conflicts and changes nothing; run again, it numbers after the first.
    let mut first = db.begin_deterministic();
    let mut second = db.begin_deterministic();
    assert_eq!(insert_all(&mut first, t, &[20]), vec![3]);
    assert_eq!(insert_all(&mut second, t, &[30, 31]), vec![3, 4]);
    first.commit().unwrap();
    let before = values(&db, t);
    let err = second.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("created records"), "{err}");
    assert_eq!(values(&db, t), before, "a refused commit changes nothing");
    let mut again = db.begin_deterministic();
    let ids = insert_all(&mut again, t, &[30, 31]);
    again.commit().unwrap();
    assert_eq!(ids, vec![4, 5]);
    assert_eq!(values(&db, t), vec![(1, 10), (2, 11), (3, 20), (4, 30), (5, 31)]);

    // Creating records in another table, or only updating this one, does not conflict.
    let o = db.create_table::<Other>().unwrap();
    let mut elsewhere = db.begin_deterministic();
    let mut updater = db.begin_deterministic();
    elsewhere.insert(o, &Other { value: 1 }).unwrap();
    updater.update(t, RecordId(1), &Item { value: 100 }).unwrap();
    let mut creator = db.begin_deterministic();
    insert_all(&mut creator, t, &[40]);
    creator.commit().unwrap();
    elsewhere.commit().unwrap();
    updater.commit().unwrap();

    // Deleting and compacting away the newest records does not bring their ids back.
    delete_and_compact(&db, t, &[6, 5]);
    let mut tx = db.begin_deterministic();
    assert_eq!(insert_all(&mut tx, t, &[50]), vec![7]);
    tx.commit().unwrap();
}

#[test]
fn ordinary_and_deterministic_transactions_never_give_one_id_to_two_records() {
    let db = Database::new();
    let t = db.create_table::<Item>().unwrap();
    let mut ordinary = db.begin();
    let mut deterministic = db.begin_deterministic();
    assert_eq!(insert_all(&mut ordinary, t, &[1, 2]), vec![1, 2], "the shared counter starts at 1");
    assert_eq!(insert_all(&mut deterministic, t, &[3]), vec![1], "the snapshot's next id is 1 too");
    deterministic.commit().unwrap();
    let err = ordinary.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("with the id"), "{err}");
    assert_eq!(values(&db, t), vec![(1, 3)]);

    // The shared counter has moved past ids that deterministic commits used.
    let mut tx = db.begin_deterministic();
    assert_eq!(insert_all(&mut tx, t, &[4, 5, 6]), vec![2, 3, 4]);
    tx.commit().unwrap();
    let mut tx = db.begin();
    let ids = insert_all(&mut tx, t, &[7]);
    assert!(ids[0] >= 5, "the counter hands out {ids:?} after 4 was used");
    tx.commit().unwrap();

    // Ordinary transactions that took ids in one order and commit in the other do not
    // conflict: neither id was used by anyone else.
    let mut a = db.begin();
    let mut b = db.begin();
    let a_ids = insert_all(&mut a, t, &[8]);
    let b_ids = insert_all(&mut b, t, &[9]);
    assert!(a_ids[0] < b_ids[0]);
    b.commit().unwrap();
    a.commit().unwrap();
    // A deterministic transaction numbers after everything committed.
    let mut tx = db.begin_deterministic();
    assert_eq!(insert_all(&mut tx, t, &[10]), vec![b_ids[0] + 1]);
    tx.commit().unwrap();
}

#[test]
fn an_id_a_deterministic_commit_used_is_not_given_again_after_its_record_is_deleted() {
    for compact in [false, true] {
        let db = Database::new();
        let t = db.create_table::<Item>().unwrap();
        let mut ordinary = db.begin();
        let mut deterministic = db.begin_deterministic();
        assert_eq!(insert_all(&mut ordinary, t, &[1]), vec![1]);
        assert_eq!(insert_all(&mut deterministic, t, &[2]), vec![1]);
        deterministic.commit().unwrap();
        if compact {
            delete_and_compact(&db, t, &[1]);
        } else {
            db.delete(t, RecordId(1)).unwrap();
        }
        let err = ordinary.commit().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "compact {compact}: {err}");
        assert_eq!(values(&db, t), vec![], "compact {compact}");
    }
}

#[test]
fn an_ordinary_insert_conflicts_only_with_ids_a_deterministic_commit_used() {
    let db = Database::new();
    let t = db.create_table::<Item>().unwrap();
    let mut slow = db.begin();
    assert_eq!(insert_all(&mut slow, t, &[1]), vec![1], "from the shared counter");
    let mut other = db.begin();
    assert_eq!(insert_all(&mut other, t, &[2]), vec![2]);
    other.commit().unwrap();
    let mut deterministic = db.begin_deterministic();
    assert_eq!(insert_all(&mut deterministic, t, &[3]), vec![3], "numbered after the committed 2");
    deterministic.commit().unwrap();
    slow.commit().expect("id 1 was used by no one else");
    assert_eq!(values(&db, t), vec![(1, 1), (2, 2), (3, 3)]);

    // However many deterministic commits numbered records since an ordinary transaction
    // began, it conflicts only with ids they used — up to 32 of them are told apart one by
    // one; below the ids of older ones it conflicts without knowing.
    for (commits, conflicts) in [(20, false), (40, true)] {
        let mut slow = db.begin();
        let id = insert_all(&mut slow, t, &[4])[0];
        let mut other = db.begin();
        insert_all(&mut other, t, &[5]);
        other.commit().unwrap();
        for v in 0..commits {
            let mut d = db.begin_deterministic();
            let used = insert_all(&mut d, t, &[100 + v]);
            assert!(used[0] > id);
            d.commit().unwrap();
        }
        assert_eq!(slow.commit().is_err(), conflicts, "{commits} deterministic commits since it began");
    }
}

#[test]
fn the_next_id_survives_a_restart_with_and_without_a_checkpoint() {
    for checkpoint in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open(dir.path()).unwrap();
            let t = db.create_table::<Item>().unwrap();
            let mut tx = db.begin_deterministic();
            insert_all(&mut tx, t, &[1, 2, 3, 4, 5]);
            tx.commit().unwrap();
            delete_and_compact(&db, t, &[5, 4]);
            if checkpoint {
                assert!(db.checkpoint().unwrap(), "a checkpoint was written");
            }
        }
        let db = Database::open(dir.path()).unwrap();
        let t = db.table::<Item>().unwrap();
        assert_eq!(db.snapshot().table(t).unwrap().next_id(), RecordId(6), "checkpoint: {checkpoint}");
        let mut tx = db.begin_deterministic();
        assert_eq!(insert_all(&mut tx, t, &[6]), vec![6], "checkpoint: {checkpoint}");
        tx.commit().unwrap();
        let mut tx = db.begin();
        assert!(insert_all(&mut tx, t, &[7])[0] >= 7, "checkpoint: {checkpoint}");
    }
}
