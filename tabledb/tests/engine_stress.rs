//! Randomized model tests over many record sizes (1 byte to 64 KiB), with old snapshots kept
//! across commits, par_update (incl. panics), commit_group, aborts, failed commits, compaction,
//! schema changes, concurrent readers and a concurrent writer, and dropping the database while
//! snapshots live.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::iter::ParallelIterator;
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, RecordId, Snapshot, Table, TableRef, Transaction};

mod common;
use common::Rng;

macro_rules! rec {
    ($name:ident, $n:expr) => {
        #[derive(Table, Clone, Copy)]
        #[repr(C)]
        struct $name {
            a: [u8; $n],
        }
    };
}
rec!(S1, 1);
rec!(S3, 3);
rec!(S24, 24);
rec!(S100, 100);
rec!(S520, 520);
rec!(S528, 528);
rec!(S536, 536);
rec!(S4096, 4096);
rec!(S65536, 65536);

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct W64 {
    x: u64,
    a: [u8; 56],
}

type Model = BTreeMap<u64, Vec<u8>>;

/// The bytes of a record, mutably. Only for the record types of this file, whose fields are
/// all integers.
fn bytes_mut<T: Table>(r: &mut T) -> &mut [u8] {
    // SAFETY: the slice covers exactly the record, borrowed exclusively for its lifetime; a
    // `Table` has no padding, and the types used here have only integer fields, so every byte
    // pattern written through the slice is a valid `T`.
    unsafe { std::slice::from_raw_parts_mut((r as *mut T).cast::<u8>(), T::RECORD_SIZE) }
}

fn par_fn(salt: u64, id: u64, b: &mut [u8]) {
    if (id ^ salt).is_multiple_of(5) {
        b[0] = b[0].wrapping_add(1 + salt as u8);
        let l = b.len() - 1;
        b[l] ^= id as u8;
    }
}

fn verify_typed<T: Table>(snap: &Snapshot, t: TableRef<T>, model: &Model) {
    let view = snap.table(t).unwrap();
    assert_eq!(view.len(), model.len() as u64, "len at seq {:?}", snap.seq());
    let mut it = view.iter();
    for (id, bytes) in model {
        let (rid, r) = it.next().expect("record");
        assert_eq!(rid.0, *id);
        assert_eq!(r.as_bytes(), &bytes[..], "record {id} at seq {:?}", snap.seq());
    }
    assert!(it.next().is_none());
    let ids: Vec<RecordId> = model.keys().map(|&i| RecordId(i)).chain([RecordId(1_000_000)]).collect();
    let mut n = 0;
    view.get_many(&ids, |id, r| {
        match model.get(&id.0) {
            Some(b) => assert_eq!(r.unwrap().as_bytes(), &b[..]),
            None => assert!(r.is_none()),
        }
        n += 1;
    });
    assert_eq!(n, ids.len());
    let sum: u64 = view.par_iter().map(|(_, r)| r.as_bytes().iter().map(|&x| x as u64).sum::<u64>()).sum();
    let msum: u64 = model.values().map(|b| b.iter().map(|&x| x as u64).sum::<u64>()).sum();
    assert_eq!(sum, msum);
    let slices: usize = view.par_pages().map(|p| p.as_slice().map_or(0, |s| s.len())).sum();
    assert!(slices <= model.len());
}

#[derive(Clone)]
enum Op {
    Insert(u64, Vec<u8>),
    Write(u64, usize, Vec<u8>),
    Delete(u64),
}

fn apply_ops(model: &mut Model, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Insert(id, b) => {
                model.insert(*id, b.clone());
            }
            Op::Write(id, off, b) => {
                let r = model.get_mut(id).expect("write to live");
                r[*off..*off + b.len()].copy_from_slice(b);
            }
            Op::Delete(id) => {
                model.remove(id);
            }
        }
    }
}

/// Builds a transaction of random ops on `t` over `view` (the model as the tx sees it).
/// Returns (tx, ops, par_updated, final view).
fn build_tx<T: Table>(
    db: &Database,
    t: TableRef<T>,
    start_model: &Model,
    rng: &mut Rng,
    max_ops: u64,
) -> (Transaction, Vec<Op>, bool, Option<Model>) {
    let rs = T::RECORD_SIZE;
    let mut tx = db.begin();
    let mut view = start_model.clone();
    let mut ops = Vec::new();
    let mut par = false;
    let nops = 1 + rng.below(max_ops);
    for _ in 0..nops {
        let live: Vec<u64> = view.keys().copied().collect();
        match rng.below(10) {
            0..=3 => {
                let b = rng.bytes(rs);
                let Ok(id) = tx.insert(t, &T::read(&b).unwrap()) else { continue };
                view.insert(id.0, b.clone());
                ops.push(Op::Insert(id.0, b));
            }
            4..=5 if !live.is_empty() => {
                let id = live[rng.below(live.len() as u64) as usize];
                if rng.chance(50) {
                    let b = rng.bytes(rs);
                    tx.update(t, RecordId(id), &T::read(&b).unwrap()).unwrap();
                    view.insert(id, b.clone());
                    ops.push(Op::Write(id, 0, b));
                } else {
                    let off = 0usize;
                    let b = rng.bytes(rs);
                    tx.partial_update(t, RecordId(id), "a", &b).unwrap();
                    view.get_mut(&id).unwrap()[off..].copy_from_slice(&b);
                    ops.push(Op::Write(id, off, b));
                }
            }
            6..=7 if !live.is_empty() => {
                let id = live[rng.below(live.len() as u64) as usize];
                tx.delete(t, RecordId(id)).unwrap();
                view.remove(&id);
                ops.push(Op::Delete(id));
            }
            8 => {
                let salt = rng.below(7);
                tx.par_update(t, move |id, r| par_fn(salt, id.0, bytes_mut(r))).unwrap();
                for (id, b) in view.iter_mut() {
                    par_fn(salt, *id, b);
                }
                par = true;
            }
            9
                // A panicking par_update, caught: the transaction stays usable only as far as
                // memory safety goes, so it is aborted afterwards by the caller (ops marked).
                if rng.chance(30) && !live.is_empty() => {
                    let bad = live[rng.below(live.len() as u64) as usize];
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        tx.par_update(t, move |id, r| {
                            assert!(id.0 != bad, "boom");
                            bytes_mut(r)[0] ^= 0x55;
                        })
                    }));
                    assert!(r.is_err());
                    // poison: read the tx's view to exercise staged/replaced pages after panic
                    let mut count = 0;
                    tx.for_each(t, |_, r| {
                        count += r.as_bytes()[0] as u64;
                    })
                    .unwrap();
                    let _ = count;
                    return (tx, ops, par, None);
                }
            _ => {}
        }
        if rng.chance(20) {
            // Read through the tx.
            for (id, b) in view.iter().take(5) {
                assert_eq!(tx.get(t, RecordId(*id)).unwrap().unwrap().as_bytes(), &b[..]);
            }
        }
    }
    (tx, ops, par, Some(view))
}

fn run_typed<T: Table>(seed: u64, rounds: usize, max_ops: u64, deadline: Instant, config: Config) {
    let db = Database::with_config(config);
    let t = db.create_table::<T>().unwrap();
    let other = db.create_table::<W64>().unwrap();
    let mut rng = Rng(seed | 1);
    let mut model = Model::new();
    let mut kept: Vec<(Arc<Snapshot>, Model)> = Vec::new();

    // Concurrent reader and writer threads.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let snap = db.snapshot();
                if let Ok(v) = snap.table(t) {
                    for (_, r) in v.iter() {
                        n = n.wrapping_add(r.as_bytes()[0] as u64);
                    }
                    n = n.wrapping_add(
                        v.par_iter().map(|(_, r)| r.as_bytes()[T::RECORD_SIZE - 1] as u64).sum::<u64>(),
                    );
                }
                if let Ok(v) = snap.table(other) {
                    n = n.wrapping_add(v.par_sum(|r| r.x));
                }
            }
            n
        })
    };
    let no_writer = std::env::var("NO_WRITER").is_ok();
    let writer = {
        let db = db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut r = Rng(seed.wrapping_mul(31) | 1);
            let mut i = 0u64;
            while !no_writer && !stop.load(Ordering::Relaxed) {
                let mut tx = db.begin();
                for _ in 0..r.below(20) {
                    let _ = tx.insert(other, &W64 { x: i, a: [i as u8; 56] });
                    i += 1;
                }
                if r.chance(20) {
                    let _ = tx.par_update(other, |_, w| w.x += 1);
                }
                if r.chance(10) {
                    let snap = db.snapshot();
                    let ids: Vec<RecordId> =
                        snap.table(other).unwrap().iter().map(|(id, _)| id).take(10).collect();
                    for id in ids {
                        let _ = tx.delete(other, id);
                    }
                }
                let _ = tx.commit();
                if r.chance(5) {
                    let _ = db.compact_table("w64");
                }
            }
        })
    };

    for round in 0..rounds {
        if Instant::now() > deadline {
            break;
        }
        match rng.below(20) {
            0..=11 => {
                let (tx, ops, par, view) = build_tx(&db, t, &model, &mut rng, max_ops);
                if view.is_none() && rng.chance(50) {
                    // Commit a tx whose par_update panicked: must not corrupt memory; its
                    // effect on the model is unknown, so resync the model from the snapshot.
                    let _ = tx.commit();
                    let snap = db.snapshot();
                    model =
                        snap.table(t).unwrap().iter().map(|(id, r)| (id.0, r.as_bytes().to_vec())).collect();
                    continue;
                }
                let Some(view) = view else { continue };
                if rng.chance(10) {
                    drop(tx); // abort
                } else {
                    let r = tx.commit();
                    match r {
                        Ok(info) if info.read_only => {}
                        Ok(_) => {
                            if par {
                                model = view;
                            } else {
                                apply_ops(&mut model, &ops);
                            }
                        }
                        Err(e) => assert!(
                            matches!(
                                e,
                                tabledb::Error::LimitReached { .. } | tabledb::Error::Conflict { .. }
                            ),
                            "{e}"
                        ),
                    }
                }
            }
            12..=13 => {
                // Concurrent transactions on the same start, some conflicting, committed as a group
                // or one by one.
                let k = 2 + rng.below(3);
                let mut txs = Vec::new();
                for _ in 0..k {
                    let (tx, ops, par, view) = build_tx(&db, t, &model, &mut rng, max_ops);
                    let Some(view) = view else { continue };
                    txs.push((tx, ops, par, view));
                }
                if rng.chance(50) {
                    let (meta, txv): (Vec<_>, Vec<_>) =
                        txs.into_iter().map(|(tx, o, p, v)| ((o, p, v), tx)).unzip();
                    let (results, rest) = db.commit_group(txv);
                    let mut group_model = model.clone();
                    for (res, (ops, par, view)) in results.iter().zip(meta.iter()) {
                        match res {
                            Ok(info) if info.read_only => {}
                            Ok(_) => {
                                if *par {
                                    group_model = view.clone();
                                } else {
                                    apply_ops(&mut group_model, ops);
                                }
                            }
                            Err(_) => {}
                        }
                    }
                    model = group_model;
                    drop(rest);
                } else {
                    for (tx, ops, par, view) in txs {
                        let r = tx.commit();
                        if let Ok(info) = r
                            && !info.read_only
                        {
                            if par {
                                model = view;
                            } else {
                                apply_ops(&mut model, &ops);
                            }
                        }
                    }
                }
            }
            14 => {
                db.compact_table(T::NAME).unwrap();
            }
            15 => {
                // Failed DDL (unknown table) and a no-op ensure_table.
                assert!(db.compact_table("nope").is_err());
                db.ensure_table::<T>().unwrap();
            }
            _ => {}
        }
        // Snapshots kept across many commits.
        if rng.chance(30) {
            kept.push((db.snapshot(), model.clone()));
        }
        if kept.len() > 12 || (rng.chance(20) && !kept.is_empty()) {
            let i = rng.below(kept.len() as u64) as usize;
            let (s, m) = kept.swap_remove(i);
            verify_typed(&s, t, &m);
        }
        if round % 8 == 0 {
            let snap = db.snapshot();
            verify_typed(&snap, t, &model);
            for (s, m) in kept.iter().take(3) {
                verify_typed(s, t, m);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    writer.join().unwrap();
    let last = db.snapshot();
    verify_typed(&last, t, &model);
    // Drop the database while snapshots live, then read them.
    drop(db);
    verify_typed(&last, t, &model);
    for (s, m) in &kept {
        verify_typed(s, t, m);
    }
    drop(last);
    while let Some((s, m)) = kept.pop() {
        verify_typed(&s, t, &m);
    }
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn stress_small_records() {
    let d = deadline(60);
    run_typed::<S1>(1, 400, 200, d, Config::default());
    run_typed::<S3>(2, 400, 200, d, Config::default());
    run_typed::<S24>(3, 400, 100, d, Config::default());
    run_typed::<S100>(4, 400, 60, d, Config::default());
}

#[test]
fn stress_large_records() {
    let d = deadline(60);
    run_typed::<S520>(5, 300, 40, d, Config::default());
    run_typed::<S528>(6, 300, 40, d, Config::default());
    run_typed::<S536>(6, 300, 40, d, Config::default());
    run_typed::<S4096>(7, 200, 20, d, Config::default());
    run_typed::<S65536>(8, 60, 6, d, Config::default());
}

#[test]
fn stress_with_limits() {
    let d = deadline(60);
    let config = Config { max_database_bytes: 40_000, max_records_per_table: 300, ..Config::default() };
    run_typed::<S3>(9, 500, 100, d, config.clone());
    run_typed::<S100>(10, 500, 60, d, config.clone());
}

/// Untyped table: add/remove fields (rewrites), compaction, sparse pages, snapshots across them.
#[test]
fn stress_schema_changes() {
    let d = deadline(60);
    for (seed, n1) in [(11u64, 3usize), (12, 100), (13, 513), (14, 1)] {
        let db = Database::new();
        db.create_table_from_defs("u", &[FieldDef::new("a", format!("u8[{n1}]"))]).unwrap();
        let mut rng = Rng(seed);
        let mut model = Model::new();
        let mut extra: Vec<(String, usize)> = Vec::new();
        let mut kept: Vec<(Arc<Snapshot>, Model)> = Vec::new();
        let mut next_field = 0;
        for _ in 0..300 {
            if Instant::now() > d {
                break;
            }
            let rs: usize = n1 + extra.iter().map(|e| e.1).sum::<usize>();
            match rng.below(10) {
                0..=4 => {
                    let mut tx = db.begin();
                    let mut ops = Vec::new();
                    for _ in 0..rng.below(80) {
                        let live: Vec<u64> = model.keys().copied().collect();
                        if rng.chance(50) || live.is_empty() {
                            let b = rng.bytes(rs);
                            let id = tx.create_record("u", &b).unwrap();
                            ops.push(Op::Insert(id.0, b));
                        } else if rng.chance(50) {
                            let id = live[rng.below(live.len() as u64) as usize];
                            if tx.delete_record("u", RecordId(id)).is_ok() {
                                ops.push(Op::Delete(id));
                            }
                        } else {
                            let id = live[rng.below(live.len() as u64) as usize];
                            let b = rng.bytes(n1);
                            if tx.partial_update("u", RecordId(id), "a", &b).is_ok() {
                                ops.push(Op::Write(id, 0, b));
                            }
                        }
                    }
                    if rng.chance(15) {
                        drop(tx);
                    } else if tx.commit().is_ok() {
                        // ops can contain deletes of ids deleted earlier in the same tx (refused above)
                        apply_ops(&mut model, &ops);
                    }
                }
                5 => db.compact_table("u").unwrap(),
                6 if extra.len() < 3 => {
                    let n = 1 + rng.below(700) as usize;
                    let name = format!("f{next_field}");
                    next_field += 1;
                    db.add_field("u", &FieldDef::new(&name, format!("u8[{n}]"))).unwrap();
                    extra.push((name, n));
                    for v in model.values_mut() {
                        v.extend(std::iter::repeat_n(0u8, n));
                    }
                }
                7 if !extra.is_empty() => {
                    let (name, n) = extra.pop().unwrap();
                    db.remove_field("u", &name).unwrap();
                    for v in model.values_mut() {
                        v.truncate(v.len() - n);
                    }
                }
                _ => {}
            }
            if rng.chance(40) {
                kept.push((db.snapshot(), model.clone()));
            }
            if kept.len() > 10 {
                let (s, m) = kept.remove(rng.below(kept.len() as u64) as usize);
                verify_raw(&s, &m);
            }
            verify_raw(&db.snapshot(), &model);
        }
        drop(db);
        for (s, m) in &kept {
            verify_raw(s, m);
        }
    }
}

fn verify_raw(snap: &Snapshot, model: &Model) {
    let raw = snap.raw_table("u").unwrap();
    assert_eq!(raw.schema().record_size, model.values().next().map_or(raw.schema().record_size, |v| v.len()));
    let got: Vec<(u64, &[u8])> = raw.iter().map(|(id, b)| (id.0, b)).collect();
    assert_eq!(got.len(), model.len());
    for ((id, b), (mid, mb)) in got.iter().zip(model) {
        assert_eq!(id, mid);
        assert_eq!(*b, &mb[..]);
    }
    let n = raw.par_iter().count();
    assert_eq!(n, model.len());
}

#[test]
fn repro_huge() {
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let d = deadline(120);
    run_typed::<S65536>(seed, 60, 6, d, Config::default());
}
