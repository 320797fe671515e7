//! `persist`: checkpoint writing, recovery, and durable writes acknowledged through group
//! commit, each against the plain file operation doing the same I/O in the same run.

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tabledb::{Database, Durability, PersistOptions, RecordId, Table};

use crate::engine::{Entity, entity};
use crate::harness::{Plan, Report, Row, median};

fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("TABLEDB_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("tabledb-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn open(dir: &Path, durability: Durability) -> Database {
    Database::open_with(
        dir,
        tabledb::Config::default(),
        PersistOptions { durability, checkpoint_after_wal_bytes: 0, ..PersistOptions::default() },
    )
    .expect("open the benchmark database")
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let r = f();
    (r, start.elapsed())
}

pub fn run(n: u64, plan: &Plan, report: &mut Report, only: Option<&str>) {
    let wants = |w: &str| only.is_none_or(|o| w.starts_with(o));
    let dir = scratch_dir("persist");
    let record_bytes = n * Entity::RECORD_SIZE as u64;
    let mb = record_bytes as f64 / (1 << 20) as f64;
    let runs = plan.runs.max(3);

    if wants("checkpoint_write") || wants("recovery") {
        eprintln!("building {n} records in {} ...", dir.display());
        {
            let db = open(&dir, Durability::Async);
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
            db.sync().expect("sync");
            db.checkpoint().expect("first checkpoint");
            let mut ours = Vec::new();
            let mut base = Vec::new();
            let raw: Vec<u8> = (0..n).flat_map(|i| entity(i).as_bytes().to_vec()).collect();
            for k in 0..runs {
                // A table unchanged since its checkpoint is not written again: change one
                // record (outside the timing) so every run writes the whole table.
                db.set(table, RecordId(1), Entity::FLAGS, k as u32 + 1).expect("set");
                let (ok, t) = timed(|| db.checkpoint().expect("checkpoint"));
                assert!(ok);
                ours.push(mb / t.as_secs_f64());
                let path = dir.join("baseline.bin");
                let (_, t) = timed(|| {
                    let mut f = std::fs::File::create(&path).expect("create");
                    f.write_all(black_box(&raw)).expect("write");
                    f.sync_all().expect("fsync");
                });
                base.push(mb / t.as_secs_f64());
            }
            let (o, b) = (median(&mut ours), median(&mut base));
            let mut row =
                Row::new("checkpoint_write", n, 1, o * (1 << 20) as f64 / 64.0, b * (1 << 20) as f64 / 64.0);
            row.mb_per_s = Some(o);
            row.note = Some(format!("baseline: write+fsync of the same bytes at {b:.0} MB/s"));
            if wants("checkpoint_write") {
                report.add(row);
            }
        }
        if wants("recovery") {
            let mut ours = Vec::new();
            let mut base = Vec::new();
            let file = std::fs::read_dir(dir.join("data"))
                .expect("data dir")
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "bin"))
                .expect("a checkpoint file");
            for _ in 0..runs {
                let (db, t) = timed(|| open(&dir, Durability::Async));
                let live = db.snapshot().len(Entity::NAME).expect("table");
                assert_eq!(live, n);
                drop(db);
                ours.push(mb / t.as_secs_f64());
                let (bytes, t) = timed(|| std::fs::read(&file).expect("read"));
                assert!(bytes.len() as u64 >= record_bytes);
                base.push(mb / t.as_secs_f64());
            }
            let (o, b) = (median(&mut ours), median(&mut base));
            let mut row =
                Row::new("recovery", n, 1, o * (1 << 20) as f64 / 64.0, b * (1 << 20) as f64 / 64.0);
            row.mb_per_s = Some(o);
            row.note = Some(format!(
                "from page cache; baseline: reading the checkpoint file into memory at {b:.0} MB/s"
            ));
            report.add(row);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    if wants("durable_writes") {
        let (ours, base) = durable_writes(plan);
        report.add(ours);
        if let Some(b) = base {
            eprintln!("{b}");
        }
    }
}

/// Writers commit single-record updates without waiting; a 60 Hz tick fsyncs the log once and
/// acknowledges everything it covered. Counts acknowledged writes per second.
fn durable_writes(plan: &Plan) -> (Row, Option<String>) {
    const TICK: Duration = Duration::from_micros(16_667);
    let dir = scratch_dir("durable");
    let db = open(&dir, Durability::Tick);
    let table = db.create_table::<Entity>().expect("create table");
    let mut tx = db.begin();
    let ids: Vec<RecordId> = (0..100_000).map(|i| tx.insert(table, &entity(i)).expect("insert")).collect();
    tx.commit().expect("commit");
    let mut rates = Vec::new();
    let mut base_rates = Vec::new();
    for _ in 0..plan.runs.max(3) {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let writer = {
            let (db, stop, committed, ids) = (db.clone(), stop.clone(), committed.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let mut tx = db.begin();
                    tx.set(table, ids[i % ids.len()], Entity::HP, i as u32).expect("set");
                    let info = tx.commit_no_wait().expect("commit");
                    committed.store(info.seq.0, Ordering::Release);
                    i += 1;
                }
            })
        };
        let first = db.snapshot().seq().0;
        let start = Instant::now();
        let mut acked_seq = first;
        let mut next_tick = start + TICK;
        while start.elapsed() < plan.min_run {
            std::thread::sleep(next_tick.saturating_duration_since(Instant::now()));
            next_tick += TICK;
            acked_seq = db.sync().expect("sync").0;
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("writer");
        rates.push((acked_seq - first) as f64 / elapsed.as_secs_f64());

        // Baseline: the same bytes appended to a file, one fsync per tick.
        let path = dir.join("baseline.log");
        let mut f = std::fs::File::create(&path).expect("create");
        let entry = vec![7u8; 8 + 12 + 17 + 64];
        let start = Instant::now();
        let mut written = 0u64;
        let mut next_tick = start + TICK;
        let mut buf = Vec::new();
        while start.elapsed() < plan.min_run {
            while Instant::now() < next_tick {
                buf.extend_from_slice(&entry);
                written += 1;
            }
            next_tick += TICK;
            f.write_all(&buf).expect("write");
            f.sync_data().expect("fsync");
            buf.clear();
        }
        base_rates.push(written as f64 / start.elapsed().as_secs_f64());
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    let mut row = Row::new("durable_writes", 100_000, 1, median(&mut rates), median(&mut base_rates));
    row.note = Some("single-record transactions, durability tick, one fsync per 60 Hz tick".into());
    (row, None)
}
