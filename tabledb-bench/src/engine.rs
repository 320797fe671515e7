//! `engine`: reads, scans, transactions and inserts against a plain `Vec<T>` doing the same
//! work in the same run.

use std::hint::black_box;
use std::time::Instant;

use hdrhistogram::Histogram;
use rayon::prelude::*;
use tabledb::{Database, RecordId, Table, TableRef};

use crate::alloc;
use crate::harness::{Plan, Report, Row, XorShift};

/// A 64-byte record: the shape of a game entity.
#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Entity {
    pub pos: [f64; 3],
    pub score: u64,
    pub owner: u64,
    pub vel: [f32; 3],
    pub hp: u32,
    pub level: u32,
    pub flags: u32,
}

const _: () = assert!(std::mem::size_of::<Entity>() == 64);

pub fn entity(i: u64) -> Entity {
    Entity {
        pos: [i as f64, 0.5, -1.0],
        score: i * 3,
        owner: i % 97,
        vel: [1.0, 0.0, 0.0],
        hp: (i % 1000) as u32,
        level: (i % 50) as u32,
        flags: 0,
    }
}

const BATCH: u64 = 1000;

/// How far apart in the shared random index list the reading threads start: half of it, so
/// no thread reads lines another has just brought into the shared cache.
const THREAD_SPREAD: usize = 1 << 19;

/// Builds a database holding `n` entities with ids 1..=n.
pub fn build(n: u64) -> (Database, TableRef<Entity>) {
    let db = Database::new();
    let table = db.create_table::<Entity>().expect("create table");
    let mut i = 0;
    while i < n {
        let mut tx = db.begin();
        for j in i..(i + 10_000).min(n) {
            tx.insert(table, &entity(j)).expect("insert");
        }
        tx.commit().expect("commit");
        i += 10_000;
    }
    (db, table)
}

/// Runs `step` on `threads` threads at once for each timed run; returns the median total rate.
fn parallel_rate<S: FnMut() -> u64 + Send>(
    plan: &Plan,
    threads: usize,
    make: impl Fn(usize) -> S + Sync,
) -> f64 {
    let run = |dur: std::time::Duration| -> f64 {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let mut step = make(t);
                    s.spawn(move || {
                        let mut ops = 0;
                        while start.elapsed() < dur {
                            ops += step();
                        }
                        ops
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("bench thread")).sum()
        });
        total as f64 / start.elapsed().as_secs_f64()
    };
    run(plan.warmup);
    let mut rates: Vec<f64> = (0..plan.runs).map(|_| run(plan.min_run)).collect();
    crate::harness::median(&mut rates)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool")
}

pub fn run(n: u64, plan: &Plan, report: &mut Report, only: Option<&str>) {
    let wants = |w: &str| only.is_none_or(|o| w.starts_with(o));
    eprintln!("building {n} records ...");
    let (engine_bytes, (db, table)) = alloc::measure(|| build(n));
    let vec: Vec<Entity> = (0..n).map(entity).collect();
    let baseline_bytes = vec.capacity() * std::mem::size_of::<Entity>();
    let record_bytes = n as f64 * Entity::RECORD_SIZE as f64;

    if wants("memory") {
        let mut row = Row::new("memory", n, 1, 0.0, 0.0);
        row.bytes_ratio = Some(engine_bytes as f64 / record_bytes);
        row.note = Some(format!(
            "engine {engine_bytes} B, Vec {baseline_bytes} B, engine accounting {} B",
            db.snapshot().memory_bytes()
        ));
        report.add(row);
    }

    // Random indices shared by the engine and the baseline.
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let indices: Vec<u32> = (0..1 << 20).map(|_| rng.below(n) as u32).collect();

    if wants("point_read") {
        // Same sums both ways, so neither side is optimized away or wrong.
        let snap = db.snapshot();
        let view = snap.table(table).unwrap();
        let a: u64 =
            indices[..10_000].iter().map(|&i| view.get(RecordId(i as u64 + 1)).unwrap().hp as u64).sum();
        let b: u64 = indices[..10_000].iter().map(|&i| vec[i as usize].hp as u64).sum();
        assert_eq!(a, b, "point reads disagree with the baseline");
        for threads in [1, 2] {
            let ours = parallel_rate(plan, threads, |t| {
                let db = &db;
                let indices = &indices;
                let mut at = t * THREAD_SPREAD;
                move || {
                    let snap = db.snapshot();
                    let view = snap.table(table).unwrap();
                    let mut sum = 0u64;
                    for k in 0..BATCH as usize {
                        let i = indices[(at + k) & (indices.len() - 1)];
                        sum += view.get(RecordId(black_box(i) as u64 + 1)).expect("live").hp as u64;
                    }
                    at += BATCH as usize;
                    black_box(sum);
                    BATCH
                }
            });
            let base = parallel_rate(plan, threads, |t| {
                let vec = &vec;
                let indices = &indices;
                let mut at = t * THREAD_SPREAD;
                move || {
                    let mut sum = 0u64;
                    for k in 0..BATCH as usize {
                        let i = indices[(at + k) & (indices.len() - 1)];
                        sum += vec[black_box(i) as usize].hp as u64;
                    }
                    at += BATCH as usize;
                    black_box(sum);
                    BATCH
                }
            });
            report.add(Row::new("point_read", n, threads, ours, base));
        }
    }

    if wants("point_read_batch") {
        // The same reads through `get_many`, which overlaps the lookups' cache misses.
        let rids: Vec<RecordId> = indices.iter().map(|&i| RecordId(i as u64 + 1)).collect();
        for threads in [1, 2] {
            let ours = parallel_rate(plan, threads, |t| {
                let db = &db;
                let rids = &rids;
                let mut at = (t * THREAD_SPREAD) % rids.len();
                move || {
                    let snap = db.snapshot();
                    let view = snap.table(table).unwrap();
                    let mut sum = 0u64;
                    let end = (at + BATCH as usize).min(rids.len());
                    view.get_many(black_box(&rids[at..end]), |_, e| sum += e.expect("live").hp as u64);
                    let n = (end - at) as u64;
                    at = if end == rids.len() { 0 } else { end };
                    black_box(sum);
                    n
                }
            });
            let base = parallel_rate(plan, threads, |t| {
                let vec = &vec;
                let indices = &indices;
                let mut at = t * THREAD_SPREAD;
                move || {
                    let mut sum = 0u64;
                    for k in 0..BATCH as usize {
                        let i = indices[(at + k) & (indices.len() - 1)];
                        sum += vec[black_box(i) as usize].hp as u64;
                    }
                    at += BATCH as usize;
                    black_box(sum);
                    BATCH
                }
            });
            report.add(Row::new("point_read_batch", n, threads, ours, base));
        }
    }

    if wants("scan_sum") {
        let snap = db.snapshot();
        let view = snap.table(table).unwrap();
        let expect: u64 = vec.iter().map(|e| e.hp as u64).sum();
        let seq = |view: &tabledb::TableView<'_, Entity>| view.iter().map(|(_, e)| e.hp as u64).sum::<u64>();
        assert_eq!(seq(&view), expect, "scan disagrees with the baseline");
        let (ours, base) = plan.rate_pair(
            || {
                let s = seq(black_box(&view));
                assert_eq!(s, expect);
                n
            },
            || {
                let s: u64 = black_box(&vec).iter().map(|e| e.hp as u64).sum();
                assert_eq!(s, expect);
                n
            },
        );
        report.add(Row::new("scan_sum", n, 1, ours, base));
        for threads in [1, 2] {
            let p = pool(threads);
            let (ours, base) = p.install(|| {
                plan.rate_pair(
                    || {
                        let s = black_box(&view).par_sum(|e| e.hp as u64);
                        assert_eq!(s, expect);
                        n
                    },
                    || {
                        let s: u64 = black_box(&vec).par_iter().map(|e| e.hp as u64).sum();
                        assert_eq!(s, expect);
                        n
                    },
                )
            });
            report.add(Row::new("scan_sum_par", n, threads, ours, base));
        }
    }

    if wants("machine_read") {
        // The machine's limit for scans: 64-byte lines (one record each here) read per second
        // from a buffer well beyond the caches, one load per line, each thread its own part.
        // Each thread reads four places of its part at once, which keeps more reads in flight
        // than one sequential stream and so comes closer to what the memory gives one core.
        // Its two-thread speedup bounds what any scan, the baseline's included, can reach.
        const LINES: usize = 4 << 20;
        let lines: Vec<u64> = (0..LINES as u64 * 8).collect();
        let expect: u64 = (0..LINES as u64).map(|i| i * 8).sum();
        let read = |part: &[u64]| -> u64 {
            let quarter = part.len() / 4 / 8 * 8;
            let (a, rest) = part.split_at(quarter);
            let (b, rest) = rest.split_at(quarter);
            let (c, d) = rest.split_at(quarter);
            let mut sums = [0u64; 4];
            for i in (0..quarter).step_by(8) {
                sums[0] = sums[0].wrapping_add(a[i]);
                sums[1] = sums[1].wrapping_add(b[i]);
                sums[2] = sums[2].wrapping_add(c[i]);
                sums[3] = sums[3].wrapping_add(d[i]);
            }
            sums.iter().fold(0u64, |x, y| x.wrapping_add(*y))
        };
        assert_eq!(read(&lines), expect, "four streams read every line");
        for threads in [1, 2] {
            let part = LINES / threads * 8;
            let rate = parallel_rate(plan, threads, |t| {
                let mine = &lines[t * part..(t + 1) * part];
                move || {
                    black_box(read(black_box(mine)));
                    (mine.len() / 8) as u64
                }
            });
            let mut row = Row::new("machine_read", LINES as u64, threads, rate, rate);
            row.mb_per_s = Some(rate * 64.0 / 1e6);
            row.note =
                Some("64-byte lines read per second from 256 MiB; no database: the memory's limit".into());
            report.add(row);
        }
    }

    if wants("update_one_tx") {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
        let mut at = 0usize;
        let ours = plan.rate(|| {
            for _ in 0..BATCH {
                let i = indices[at & (indices.len() - 1)] as u64;
                at += 1;
                let t0 = Instant::now();
                let mut tx = db.begin();
                tx.set(table, RecordId(i + 1), Entity::HP, black_box(at as u32)).expect("set");
                tx.commit().expect("commit");
                hist.record(t0.elapsed().as_nanos() as u64).ok();
            }
            BATCH
        });
        let mut v = vec.clone();
        let mut at = 0usize;
        let base = plan.rate(|| {
            for _ in 0..BATCH {
                let i = indices[at & (indices.len() - 1)] as usize;
                at += 1;
                black_box(&mut v)[i].hp = black_box(at as u32);
            }
            BATCH
        });
        let mut row = Row::new("update_one_tx", n, 1, ours, base);
        row.p50_us = Some(hist.value_at_quantile(0.50) as f64 / 1000.0);
        row.p99_us = Some(hist.value_at_quantile(0.99) as f64 / 1000.0);
        report.add(row);
    }

    if wants("update_batch_tx") {
        let mut at = 0usize;
        let ours = plan.rate(|| {
            let mut tx = db.begin();
            for _ in 0..BATCH {
                let i = indices[at & (indices.len() - 1)] as u64;
                at += 1;
                tx.set(table, RecordId(i + 1), Entity::HP, black_box(at as u32)).expect("set");
            }
            tx.commit().expect("commit");
            BATCH
        });
        let mut v = vec.clone();
        let mut at = 0usize;
        let base = plan.rate(|| {
            for _ in 0..BATCH {
                let i = indices[at & (indices.len() - 1)] as usize;
                at += 1;
                black_box(&mut v)[i].hp = black_box(at as u32);
            }
            BATCH
        });
        report.add(Row::new("update_batch_tx", n, 1, ours, base));
    }

    if wants("insert_batch") {
        drop(db);
        let db = Database::new();
        let mut table = db.create_table::<Entity>().unwrap();
        let mut next = 0u64;
        let ours = plan.rate(|| {
            if db.snapshot().len(table).unwrap() >= n {
                db.drop_table(Entity::NAME).unwrap();
                table = db.create_table::<Entity>().unwrap();
            }
            let mut tx = db.begin();
            for _ in 0..BATCH {
                tx.insert(table, black_box(&entity(next))).expect("insert");
                next += 1;
            }
            tx.commit().expect("commit");
            BATCH
        });
        let mut v: Vec<Entity> = Vec::new();
        let mut next = 0u64;
        let base = plan.rate(|| {
            if v.len() as u64 >= n {
                v = Vec::new();
            }
            for _ in 0..BATCH {
                v.push(black_box(entity(next)));
                next += 1;
            }
            BATCH
        });
        report.add(Row::new("insert_batch", n, 1, ours, base));
    }
}
