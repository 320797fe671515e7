//! Lifecycles of pages and snapshots on paths that are easy to get wrong: a failed schema
//! change after its rewrite, dropping the database while readers iterate,
//! par_update panics inside grouped commits, long histories, page boundaries and
//! sparse pages, empty tables, and worker threads that exit between updates.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use rayon::iter::ParallelIterator;
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, RecordId, Snapshot, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct P {
    v: u64,
    pad: [u8; 8],
}

/// What a table of `Q` holds, by id.
type Model = BTreeMap<u64, [u8; 24]>;

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Q {
    v: [u8; 24],
}

fn p(v: u64) -> P {
    P { v, pad: [v as u8; 8] }
}

fn contents(snap: &Snapshot, name: &str) -> Vec<(u64, Vec<u8>)> {
    let raw = snap.raw_table(name).unwrap();
    let v: Vec<(u64, Vec<u8>)> = raw.iter().map(|(id, b)| (id.0, b.to_vec())).collect();
    let n = raw.par_iter().count();
    assert_eq!(n, v.len());
    v
}

#[test]
fn failed_ddl_after_rewrite_keeps_everything_valid() {
    let config = Config { max_database_bytes: 200_000, ..Config::default() };
    let db = Database::with_config(config);
    db.create_table_from_defs("u", &[FieldDef::new("a", "u8[10]")]).unwrap();
    let mut tx = db.begin();
    for i in 0..5000u32 {
        let mut b = vec![0u8; 10];
        b[..4].copy_from_slice(&i.to_le_bytes());
        tx.create_record("u", &b).unwrap();
    }
    tx.commit().unwrap();
    let mut tx = db.begin();
    for i in (1..5000u64).step_by(3) {
        tx.delete_record("u", RecordId(i)).unwrap();
    }
    tx.commit().unwrap();
    let before = db.snapshot();
    let want = contents(&before, "u");
    // Rewrites the table, then refuses for the byte limit: the new tree is freed.
    for _ in 0..5 {
        assert!(db.add_field("u", &FieldDef::new("big", "u8[200]")).is_err());
        assert_eq!(contents(&db.snapshot(), "u"), want);
    }
    db.compact_table("u").unwrap();
    assert_eq!(contents(&db.snapshot(), "u"), want);
    db.add_field("u", &FieldDef::new("s", "u8[3]")).unwrap();
    db.remove_field("u", "s").unwrap();
    assert_eq!(contents(&db.snapshot(), "u"), want);
    assert_eq!(contents(&before, "u"), want);
    drop(db);
    assert_eq!(contents(&before, "u"), want);
}

#[test]
fn drop_database_while_readers_iterate() {
    for round in 0..20u64 {
        let db = Database::new();
        let t = db.create_table::<P>().unwrap();
        let mut tx = db.begin();
        for i in 0..3000 {
            tx.insert(t, &p(i)).unwrap();
        }
        tx.commit().unwrap();
        let mut snaps = Vec::new();
        for k in 0..10u64 {
            let mut tx = db.begin();
            tx.par_update(t, |_, r| r.v += 1).unwrap();
            for i in 0..50 {
                let id = RecordId(1 + (i * 37 + k * 11 + round) % 3000);
                let _ = tx.delete(t, id);
            }
            tx.commit().unwrap();
            if k % 3 == 0 {
                db.compact_table("p").unwrap();
            }
            snaps.push(db.snapshot());
        }
        let barrier = Arc::new(std::sync::Barrier::new(snaps.len() + 1));
        let handles: Vec<_> = snaps
            .into_iter()
            .map(|s| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut sum = 0u64;
                    for _ in 0..5 {
                        let v = s.table(t).unwrap();
                        sum += v.iter().map(|(_, r)| r.v).sum::<u64>();
                        sum += v.par_sum(|r| r.v);
                    }
                    sum
                })
            })
            .collect();
        barrier.wait();
        drop(db);
        for h in handles {
            h.join().unwrap();
        }
    }
}

#[test]
fn panicking_par_update_then_group_commit() {
    let db = Database::new();
    let t = db.create_table::<P>().unwrap();
    let mut tx = db.begin();
    for i in 0..5000 {
        tx.insert(t, &p(i)).unwrap();
    }
    tx.commit().unwrap();
    for round in 0..10u64 {
        let mut a = db.begin();
        a.par_update(t, |_, r| r.v += 1).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            a.par_update(t, |id, r| {
                assert!(id.0 != 2500 + round, "boom");
                r.v += 100;
            })
        }));
        assert!(r.is_err());
        let _ = a.insert(t, &p(7));
        let mut b = db.begin();
        b.set(t, RecordId(10), P::V, 99).unwrap();
        let mut c = db.begin();
        let r2 = catch_unwind(AssertUnwindSafe(|| c.par_update(t, |_, _| panic!("all"))));
        assert!(r2.is_err());
        let (results, rest) = db.commit_group(vec![c, a, b]);
        drop(rest);
        let _ = results;
        let snap = db.snapshot();
        let v = snap.table(t).unwrap();
        let _ = v.iter().map(|(_, r)| r.v).sum::<u64>();
    }
}

#[test]
fn long_history_of_snapshots() {
    let db = Database::new();
    let t = db.create_table::<Q>().unwrap();
    let mut model: BTreeMap<u64, [u8; 24]> = BTreeMap::new();
    let mut kept: Vec<(Arc<Snapshot>, Model)> = Vec::new();
    let mut x = 12345u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..3000u64 {
        let mut tx = db.begin();
        let mut ins = Vec::new();
        let mut upd = Vec::new();
        let mut del = Vec::new();
        for _ in 0..(1 + rnd() % 5) {
            let live: Vec<u64> = model.keys().copied().collect();
            match rnd() % 3 {
                0 => {
                    let v = [rnd() as u8; 24];
                    let id = tx.insert(t, &Q { v }).unwrap();
                    ins.push((id.0, v));
                }
                1 if !live.is_empty() => {
                    let id = live[(rnd() % live.len() as u64) as usize];
                    if !del.contains(&id) {
                        let v = [rnd() as u8; 24];
                        tx.update(t, RecordId(id), &Q { v }).unwrap();
                        upd.push((id, v));
                    }
                }
                _ if !live.is_empty() => {
                    let id = live[(rnd() % live.len() as u64) as usize];
                    if !del.contains(&id) && tx.delete(t, RecordId(id)).is_ok() {
                        del.push(id);
                    }
                }
                _ => {}
            }
        }
        tx.commit().unwrap();
        for (id, v) in ins.into_iter().chain(upd) {
            model.insert(id, v);
        }
        for id in del {
            model.remove(&id);
        }
        if step % 97 == 0 {
            db.compact_table("q").unwrap();
        }
        if step % 41 == 0 {
            kept.push((db.snapshot(), model.clone()));
        }
        if step % 300 == 299 {
            let i = (rnd() % kept.len() as u64) as usize;
            kept.remove(i);
        }
    }
    for (s, m) in &kept {
        let got: BTreeMap<u64, [u8; 24]> = s.table(t).unwrap().iter().map(|(id, r)| (id.0, r.v)).collect();
        assert_eq!(&got, m);
    }
    drop(db);
    while !kept.is_empty() {
        let i = (rnd() % kept.len() as u64) as usize;
        let (s, m) = kept.remove(i);
        let got: BTreeMap<u64, [u8; 24]> = s.table(t).unwrap().iter().map(|(id, r)| (id.0, r.v)).collect();
        assert_eq!(got, m);
    }
}

/// Page boundaries and sparse pages: ids handed out before compaction and committed after it
/// land in sparse pages (in the middle, first and last position).
#[test]
fn late_inserts_into_sparse_pages_and_boundaries() {
    for rs_name in ["u8[16]", "u8[3]", "u8[1000]", "u8[33]"] {
        let db = Database::new();
        db.create_table_from_defs("u", &[FieldDef::new("a", rs_name)]).unwrap();
        let rs = db.snapshot().raw_table("u").unwrap().schema().record_size;
        let rec = |i: u64| -> Vec<u8> { (0..rs).map(|k| (i as usize * 7 + k) as u8).collect() };
        // Hand out ids 1..=400 to open transactions, one id each, committed in a scrambled order
        // around compactions.
        let mut txs: Vec<(u64, tabledb::Transaction)> = Vec::new();
        for i in 0..400u64 {
            let mut tx = db.begin();
            let id = tx.create_record("u", &rec(i + 1)).unwrap();
            assert_eq!(id.0, i + 1);
            txs.push((id.0, tx));
        }
        let mut model: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        // Commit every 5th first, delete some, compact (sparse pages), then the rest.
        let mut rest = Vec::new();
        for (id, tx) in txs {
            if id % 5 == 0 || id % 64 == 63 || id % 64 == 0 {
                tx.commit().unwrap();
                model.insert(id, rec(id));
            } else {
                rest.push((id, tx));
            }
        }
        let keep = db.snapshot();
        let keep_model = model.clone();
        for id in model.keys().copied().filter(|id| id % 3 == 0).collect::<Vec<_>>() {
            db.delete_record("u", RecordId(id)).unwrap();
            model.remove(&id);
        }
        db.compact_table("u").unwrap();
        let mid = db.snapshot();
        let mid_model = model.clone();
        rest.reverse();
        for (k, (id, tx)) in rest.into_iter().enumerate() {
            tx.commit().unwrap();
            model.insert(id, rec(id));
            if k % 50 == 0 {
                db.compact_table("u").unwrap();
            }
        }
        let got: BTreeMap<u64, Vec<u8>> = contents(&db.snapshot(), "u").into_iter().collect();
        assert_eq!(got, model);
        let got: BTreeMap<u64, Vec<u8>> = contents(&mid, "u").into_iter().collect();
        assert_eq!(got, mid_model);
        drop(db);
        let got: BTreeMap<u64, Vec<u8>> = contents(&keep, "u").into_iter().collect();
        assert_eq!(got, keep_model);
    }
}

#[test]
fn empty_tables() {
    let db = Database::new();
    let t = db.create_table::<P>().unwrap();
    let mut tx = db.begin();
    assert_eq!(tx.par_update(t, |_, r| r.v += 1).unwrap(), 0);
    tx.commit().unwrap();
    db.compact_table("p").unwrap();
    let s = db.snapshot();
    assert_eq!(s.table(t).unwrap().iter().count(), 0);
    // Fill and delete everything, compact to an empty tree, then par_update and insert.
    let mut tx = db.begin();
    let ids: Vec<_> = (0..200).map(|i| tx.insert(t, &p(i)).unwrap()).collect();
    tx.commit().unwrap();
    let mut tx = db.begin();
    for id in &ids {
        tx.delete(t, *id).unwrap();
    }
    tx.commit().unwrap();
    db.compact_table("p").unwrap();
    let mut tx = db.begin();
    tx.par_update(t, |_, r| r.v += 1).unwrap();
    tx.insert(t, &p(5)).unwrap();
    tx.par_update(t, |_, r| r.v += 1).unwrap();
    tx.commit().unwrap();
    let s2 = db.snapshot();
    assert_eq!(s2.table(t).unwrap().iter().map(|(_, r)| r.v).collect::<Vec<_>>(), vec![6]);
    db.drop_table("p").unwrap();
    drop(db);
    drop(s);
    drop(s2);
}

/// Pages copied by worker threads that then exit (their block stashes go back to the shared
/// cache from the thread-local destructor).
#[test]
fn worker_threads_exit_between_updates() {
    let db = Database::new();
    let t = db.create_table::<P>().unwrap();
    let mut tx = db.begin();
    for i in 0..20_000 {
        tx.insert(t, &p(i)).unwrap();
    }
    tx.commit().unwrap();
    let mut expect: u64 = (0..20_000u64).sum();
    let mut kept = Vec::new();
    for round in 0..20 {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            let mut tx = db.begin();
            tx.par_update(t, |_, r| r.v += 1).unwrap();
            tx.commit().unwrap();
        });
        expect += 20_000;
        drop(pool);
        // Threads that only drop snapshots (freeing garbage into their stash) and exit.
        let s = db.snapshot();
        kept.push((s.clone(), expect));
        if round % 3 == 0 {
            let old = std::mem::take(&mut kept);
            std::thread::spawn(move || {
                for (s, e) in &old {
                    assert_eq!(s.table(t).unwrap().par_sum(|r| r.v), *e);
                }
                drop(old);
            })
            .join()
            .unwrap();
        }
        assert_eq!(db.snapshot().table(t).unwrap().par_sum(|r| r.v), expect);
    }
}

/// commit_group split into several log entries (small log buffer): par_update transactions in
/// the group, old snapshots dropped meanwhile, contents checked after reopening.
#[test]
fn split_groups_with_par_updates_persisted() {
    use tabledb::{Durability, PersistOptions};
    let dir = tempfile::tempdir().unwrap();
    let opts = || PersistOptions {
        durability: Durability::Async,
        wal_buffer_max_bytes: 12 << 10,
        ..PersistOptions::default()
    };
    let expected;
    {
        let db = Database::open_with(dir.path(), Config::default(), opts()).unwrap();
        let t = db.create_table::<P>().unwrap();
        let mut tx = db.begin();
        for i in 0..200 {
            tx.insert(t, &p(i)).unwrap();
        }
        tx.commit_no_wait().unwrap();
        let mut old = Vec::new();
        for round in 0..60u64 {
            let mut txs = Vec::new();
            for k in 0..6u64 {
                let mut tx = db.begin();
                match (round + k) % 3 {
                    0 => {
                        tx.par_update(t, move |id, r| {
                            if id.0 <= 200 && (id.0 + k) % 4 == 0 {
                                r.v += 1
                            }
                        })
                        .unwrap();
                    }
                    1 => {
                        for i in 0..100 {
                            let _ = tx.insert(t, &p(round * 1000 + i));
                        }
                    }
                    _ => {
                        for i in 0..30u64 {
                            let _ = tx.set(t, RecordId(1 + (i * 7 + round) % 200), P::V, round);
                        }
                    }
                }
                txs.push(tx);
            }
            let (_res, rest) = db.commit_group(txs);
            drop(rest);
            let _ = db.sync();
            old.push(db.snapshot());
            if old.len() > 5 {
                old.remove((round % 5) as usize);
            }
            if round % 17 == 0 {
                db.compact_table("p").unwrap();
            }
        }
        for s in &old {
            let _ = s.table(t).unwrap().par_sum(|r| r.v);
        }
        db.sync().unwrap();
        expected = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id.0, *r)).collect::<Vec<_>>();
        drop(db);
        drop(old);
    }
    let db = Database::open_with(dir.path(), Config::default(), opts()).unwrap();
    let t = db.table::<P>().unwrap();
    let got: Vec<(u64, P)> = db.snapshot().table(t).unwrap().iter().map(|(id, r)| (id.0, *r)).collect();
    assert_eq!(got, expected);
}
