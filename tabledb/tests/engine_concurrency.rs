//! Concurrency control: snapshot readers never see a partial commit or a torn record while
//! writers commit; read-modify-write through `Database::retry` loses no increment; blind writes
//! of different fields of one record both survive; a transaction whose reads went stale cannot
//! commit.
//!
//! Every test that starts threads waits for them with a deadline, so a hang fails the test
//! instead of stalling the run.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tabledb::schema::FieldDef;
use tabledb::{Database, Error, ErrorKind, RecordId, Table, TableRef};

/// How long any test here may keep threads running.
const THREADS_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Runs every job on its own thread and waits for all of them until `limit`. A job that
/// panics fails the test with its message; one still running at the deadline fails it as a
/// hang.
fn run_bounded(limit: Duration, jobs: Vec<Box<dyn FnOnce() + Send>>) {
    let (done_tx, done_rx) = mpsc::channel();
    let count = jobs.len();
    let mut handles = Vec::with_capacity(count);
    for (i, job) in jobs.into_iter().enumerate() {
        let done_tx = done_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("job-{i}"))
            .spawn(move || {
                let outcome = panic::catch_unwind(AssertUnwindSafe(job));
                let _ = done_tx.send((i, outcome));
            })
            .expect("spawn a test thread");
        handles.push(handle);
    }
    let deadline = Instant::now() + limit;
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok((_, Ok(()))) => {}
            Ok((i, Err(payload))) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("job {i} panicked: {msg}");
            }
            Err(_) => panic!("threads still running after {limit:?}: a hang or a livelock"),
        }
    }
    for h in handles {
        h.join().expect("the job reported before it ended");
    }
}

/// Counts a finished writer when dropped, even by a panic, so readers never wait forever.
struct Finished(Arc<AtomicUsize>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

mod common;
use common::Rng;

// ---- (a) transfers between two tables under concurrent readers ----

/// Defines an account table type: a balance plus fields that every transfer rewrites, sealed
/// by a checksum of all of them, so a record read half-old half-new is detected.
macro_rules! account {
    ($name:ident, $table:literal) => {
        #[derive(Table, Clone, Copy, Debug, PartialEq)]
        #[repr(C)]
        #[table(name = $table)]
        struct $name {
            balance: i64,
            moves: u64,
            last: [u64; 6],
            check: u64,
        }

        impl $name {
            fn new(balance: i64) -> $name {
                let mut a = $name { balance, moves: 0, last: [0; 6], check: 0 };
                a.check = seal(a.balance, a.moves, &a.last);
                a
            }

            fn apply(&mut self, delta: i64) {
                self.balance += delta;
                self.moves += 1;
                self.last.rotate_right(1);
                self.last[0] = delta as u64 ^ self.moves;
                self.check = seal(self.balance, self.moves, &self.last);
            }

            fn sealed(&self) -> bool {
                self.check == seal(self.balance, self.moves, &self.last)
            }
        }
    };
}

account!(Checking, "checking");
account!(Savings, "savings");

fn seal(balance: i64, moves: u64, last: &[u64; 6]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for x in [balance as u64, moves].iter().chain(last.iter()) {
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(17);
    }
    h
}

const ACCOUNTS: u64 = 150;
const OPENING_BALANCE: i64 = 1_000;

#[test]
fn readers_see_whole_transfers_and_whole_records() {
    let db = Database::new();
    let checking = db.create_table::<Checking>().unwrap();
    let savings = db.create_table::<Savings>().unwrap();
    let mut tx = db.begin();
    let a_ids: Vec<RecordId> =
        (0..ACCOUNTS).map(|_| tx.insert(checking, &Checking::new(OPENING_BALANCE)).unwrap()).collect();
    let b_ids: Vec<RecordId> =
        (0..ACCOUNTS).map(|_| tx.insert(savings, &Savings::new(OPENING_BALANCE)).unwrap()).collect();
    tx.commit().unwrap();
    let total = 2 * ACCOUNTS as i64 * OPENING_BALANCE;
    let (a_ids, b_ids) = (Arc::new(a_ids), Arc::new(b_ids));

    const WRITERS: usize = 2;
    const TRANSFERS: u64 = 2000;
    let finished = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    for w in 0..WRITERS {
        let (db, a_ids, b_ids, finished) = (db.clone(), a_ids.clone(), b_ids.clone(), finished.clone());
        jobs.push(Box::new(move || {
            let _done = Finished(finished);
            let mut rng = Rng(0x9e37_79b9 + w as u64);
            for _ in 0..TRANSFERS {
                let a = a_ids[rng.below(ACCOUNTS) as usize];
                let b = b_ids[rng.below(ACCOUNTS) as usize];
                let amount = rng.below(50) as i64 + 1;
                // Alternate the direction so both tables' records are read and written.
                let delta = if rng.next() & 1 == 0 { amount } else { -amount };
                db.retry(1000, |tx| {
                    tx.modify(checking, a, |r| r.apply(-delta))?;
                    tx.modify(savings, b, |r| r.apply(delta))?;
                    Ok(())
                })
                .unwrap();
            }
        }));
    }
    for r in 0..2 {
        let (db, finished, reads) = (db.clone(), finished.clone(), reads.clone());
        jobs.push(Box::new(move || {
            let mut last_seq = db.snapshot().seq();
            let mut rounds = 0u64;
            // At least one full check after the writers finished, so the last state is seen too.
            loop {
                let writers_done = finished.load(Ordering::SeqCst) == WRITERS;
                let snap = db.snapshot();
                assert!(snap.seq() >= last_seq, "snapshots go forward");
                last_seq = snap.seq();
                let a = snap.table(checking).unwrap();
                let b = snap.table(savings).unwrap();
                assert_eq!(a.len(), ACCOUNTS);
                assert_eq!(b.len(), ACCOUNTS);
                let mut sum = 0i64;
                for (id, rec) in a.iter() {
                    assert!(rec.sealed(), "torn record {id} of checking at seq {}", snap.seq());
                    sum += rec.balance;
                }
                // The other table in parallel (and the other reader the other way round).
                let b_sum = if (rounds + r).is_multiple_of(2) {
                    b.par_reduce(
                        || (0i64, true),
                        |_, rec| (rec.balance, rec.sealed()),
                        |x, y| (x.0 + y.0, x.1 && y.1),
                    )
                } else {
                    b.iter().fold((0i64, true), |acc, (_, rec)| (acc.0 + rec.balance, acc.1 && rec.sealed()))
                };
                assert!(b_sum.1, "torn record of savings at seq {}", snap.seq());
                sum += b_sum.0;
                assert_eq!(sum, total, "a snapshot saw part of a transfer (seq {})", snap.seq());
                // Typed lookups by id see the same records as iteration.
                let probe = a_ids_probe(rounds);
                let via_get = snap.get(checking, probe).unwrap();
                assert_eq!(Some(via_get), a.iter().find(|(id, _)| *id == probe).map(|(_, r)| r));
                rounds += 1;
                reads.fetch_add(1, Ordering::Relaxed);
                if writers_done {
                    break;
                }
            }
        }));
    }
    run_bounded(THREADS_TIME_LIMIT, jobs);

    assert!(reads.load(Ordering::Relaxed) >= 2, "both readers checked at least one snapshot");
    let snap = db.snapshot();
    let moves: u64 = snap.table(checking).unwrap().iter().map(|(_, r)| r.moves).sum::<u64>()
        + snap.table(savings).unwrap().iter().map(|(_, r)| r.moves).sum::<u64>();
    assert_eq!(moves, 2 * WRITERS as u64 * TRANSFERS, "every transfer committed exactly once");
    let stats = db.stats();
    assert_eq!(stats.commits, 1 + WRITERS as u64 * TRANSFERS);
    println!(
        "transfers: {} commits, {} conflicts retried, {} reader rounds",
        stats.commits,
        stats.conflicts,
        reads.load(Ordering::Relaxed)
    );
}

/// Ids of the checking table are 1..=ACCOUNTS (the first records of a fresh table).
fn a_ids_probe(round: u64) -> RecordId {
    RecordId(1 + round % ACCOUNTS)
}

// ---- (b) read-modify-write increments ----

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Counter {
    n: u64,
    a: u64,
    b: u64,
}

#[test]
fn retried_increments_lose_nothing() {
    const THREADS: usize = 4;
    const INCREMENTS: u64 = 1000;
    let db = Database::new();
    let counters = db.create_table::<Counter>().unwrap();
    let id = db.insert(counters, &Counter { n: 0, a: 0, b: 0 }).unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    for _ in 0..THREADS {
        let (db, attempts) = (db.clone(), attempts.clone());
        jobs.push(Box::new(move || {
            for _ in 0..INCREMENTS {
                db.retry(1000, |tx| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    tx.modify(counters, id, |c| c.n += 1)
                })
                .unwrap();
            }
        }));
    }
    run_bounded(THREADS_TIME_LIMIT, jobs);

    let expected = THREADS as u64 * INCREMENTS;
    assert_eq!(db.snapshot().get(counters, id).unwrap().n, expected, "no increment was lost");
    let stats = db.stats();
    assert_eq!(stats.commits, 1 + expected);
    // Every attempt either committed or was refused as a conflict and retried.
    assert_eq!(attempts.load(Ordering::Relaxed), expected + stats.conflicts);
    println!("increments: {} conflicts were retried (depends on timing)", stats.conflicts);
}

// ---- (c) blind writes of different fields ----

#[test]
fn blind_writes_of_different_fields_both_survive() {
    const WRITES: u64 = 2000;
    let db = Database::new();
    let counters = db.create_table::<Counter>().unwrap();
    let id = db.insert(counters, &Counter { n: 7, a: 0, b: 0 }).unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let observed = Arc::new(AtomicBool::new(false));
    let mut jobs: Vec<Box<dyn FnOnce() + Send>> = Vec::new();
    {
        let (db, finished) = (db.clone(), finished.clone());
        jobs.push(Box::new(move || {
            let _done = Finished(finished);
            for i in 1..=WRITES {
                db.set(counters, id, Counter::A, i).unwrap();
            }
        }));
    }
    {
        let (db, finished) = (db.clone(), finished.clone());
        jobs.push(Box::new(move || {
            let _done = Finished(finished);
            for i in 1..=WRITES {
                // By name, in a transaction of its own.
                let mut tx = db.begin();
                tx.partial_update(counters, id, "b", &i.to_le_bytes()).unwrap();
                tx.commit().unwrap();
            }
        }));
    }
    {
        let (db, finished, observed) = (db.clone(), finished.clone(), observed.clone());
        jobs.push(Box::new(move || {
            // Each field only ever grows; a commit that wrote back an old value of the other
            // field (a lost update) would show as a step back.
            let (mut a, mut b) = (0, 0);
            loop {
                let done = finished.load(Ordering::SeqCst) == 2;
                let snap = db.snapshot();
                let c = snap.get(counters, id).unwrap();
                assert!(c.a >= a && c.b >= b, "went back from ({a}, {b}) to ({}, {})", c.a, c.b);
                assert_eq!(c.n, 7, "a field nobody wrote kept its value");
                (a, b) = (c.a, c.b);
                observed.store(true, Ordering::Relaxed);
                if done {
                    break;
                }
            }
        }));
    }
    run_bounded(THREADS_TIME_LIMIT, jobs);

    assert!(observed.load(Ordering::Relaxed));
    let c = *db.snapshot().get(counters, id).unwrap();
    assert_eq!(c, Counter { n: 7, a: WRITES, b: WRITES });
    // A blind write reads nothing, so it has nothing to conflict with.
    assert_eq!(db.stats().conflicts, 0);
    assert_eq!(db.stats().commits, 1 + 2 * WRITES);
}

/// Fields from the 64th on share one dirty bit, so a blind write to one of them carries the
/// others as the transaction saw them; a concurrent write to another must still survive.
#[test]
fn blind_writes_to_fields_past_the_63rd_lose_nothing() {
    let db = Database::new();
    let defs: Vec<FieldDef> = (0..70).map(|i| FieldDef::new(format!("f{i}"), "u8")).collect();
    db.create_table_from_defs("wide", &defs).unwrap();
    let id = db.create_record("wide", &[0u8; 70]).unwrap();
    for (a, b) in [(65, 66), (63, 69), (10, 66), (66, 10), (64, 64)] {
        let mut t1 = db.begin();
        t1.partial_update("wide", id, &format!("f{a}"), &[1]).unwrap();
        let mut t2 = db.begin();
        t2.partial_update("wide", id, &format!("f{b}"), &[2]).unwrap();
        t2.commit().unwrap();
        match t1.commit() {
            Ok(_) => {}
            // Refusing is fine: the caller retries with fresh data.
            Err(e) if e.is_conflict() => db.partial_update("wide", id, &format!("f{a}"), &[1]).unwrap(),
            Err(e) => panic!("unexpected error: {e}"),
        }
        let rec = db.snapshot().read_record("wide", id).unwrap().to_vec();
        if a == b {
            assert_eq!(rec[a], 1, "the later write wins");
        } else {
            assert_eq!((rec[a], rec[b]), (1, 2), "fields {a} and {b}: an update was lost");
        }
        assert_eq!(rec.iter().filter(|&&x| x != 0).count(), if a == b { 1 } else { 2 });
        db.update_record("wide", id, &[0u8; 70]).unwrap();
    }
}

// ---- (d) stale reads are refused at commit (deterministic, one thread) ----

fn counter_db() -> (Database, TableRef<Counter>, Vec<RecordId>) {
    let db = Database::new();
    let counters = db.create_table::<Counter>().unwrap();
    let mut tx = db.begin();
    let ids = (0..4).map(|i| tx.insert(counters, &Counter { n: i, a: 0, b: 0 }).unwrap()).collect();
    tx.commit().unwrap();
    (db, counters, ids)
}

fn assert_conflict(result: tabledb::Result<tabledb::CommitInfo>, id: Option<RecordId>) {
    match result {
        Err(e @ Error::Conflict { .. }) => {
            assert!(e.is_conflict());
            assert_eq!(e.kind(), ErrorKind::Conflict);
            assert_eq!(e.code(), "conflict");
            let Error::Conflict { table, id: got, .. } = e else { unreachable!() };
            assert_eq!(table, "counter");
            assert_eq!(got, id);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_stale_point_read_fails_commit() {
    let (db, counters, ids) = counter_db();
    let mut t1 = db.begin();
    assert_eq!(t1.get(counters, ids[0]).unwrap().unwrap().n, 0);
    // t2 changes what t1 read, and commits first.
    db.set(counters, ids[0], Counter::N, 100).unwrap();
    t1.set(counters, ids[1], Counter::N, 5).unwrap();
    let before = db.snapshot();
    assert_conflict(t1.commit(), Some(ids[0]));
    let after = db.snapshot();
    assert_eq!(after.seq(), before.seq(), "a refused commit publishes nothing");
    assert_eq!(after.get(counters, ids[1]).unwrap().n, 1, "nothing of the refused commit remains");
    assert_eq!(db.stats().conflicts, 1);
}

#[test]
fn a_stale_raw_read_fails_commit() {
    let (db, counters, ids) = counter_db();
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    t1.read_record("counter", ids[2]).unwrap();
    t2.partial_update("counter", ids[2], "a", &9u64.to_le_bytes()).unwrap();
    t2.commit().unwrap();
    t1.create_record("counter", Counter { n: 1, a: 1, b: 1 }.as_bytes()).unwrap();
    assert_conflict(t1.commit(), Some(ids[2]));
    assert_eq!(db.snapshot().len(counters).unwrap(), 4);
}

#[test]
fn a_stale_scan_fails_commit() {
    let (db, counters, ids) = counter_db();
    let mut t1 = db.begin();
    assert_eq!(t1.len(counters).unwrap(), 4);
    db.insert(counters, &Counter { n: 9, a: 0, b: 0 }).unwrap();
    t1.set(counters, ids[0], Counter::B, 1).unwrap();
    assert_conflict(t1.commit(), None);

    // The same with iteration instead of counting.
    let mut t1 = db.begin();
    let mut seen = 0;
    t1.for_each(counters, |_, _| seen += 1).unwrap();
    assert_eq!(seen, 5);
    db.delete(counters, ids[3]).unwrap();
    t1.set(counters, ids[0], Counter::B, 1).unwrap();
    assert_conflict(t1.commit(), None);
    assert_eq!(db.snapshot().get(counters, ids[0]).unwrap().b, 0);
}

#[test]
fn reading_a_missing_record_that_then_appears_fails_commit() {
    let (db, counters, ids) = counter_db();
    let next = db.snapshot().table(counters).unwrap().next_id();
    let mut t1 = db.begin();
    assert_eq!(t1.get(counters, next).unwrap(), None);
    let created = db.insert(counters, &Counter { n: 1, a: 2, b: 3 }).unwrap();
    assert_eq!(created, next);
    t1.set(counters, ids[0], Counter::A, 1).unwrap();
    assert_conflict(t1.commit(), Some(next));
}

#[test]
fn writing_a_record_deleted_meanwhile_fails_commit() {
    let (db, counters, ids) = counter_db();
    // Blind whole-record update against a concurrent delete.
    let mut t1 = db.begin();
    t1.update(counters, ids[1], &Counter { n: 50, a: 0, b: 0 }).unwrap();
    db.delete(counters, ids[1]).unwrap();
    assert_conflict(t1.commit(), Some(ids[1]));
    assert!(db.snapshot().get(counters, ids[1]).is_none(), "the deleted record stays deleted");

    // Blind one-field update and blind delete against a concurrent delete.
    let mut t1 = db.begin();
    t1.set(counters, ids[2], Counter::A, 1).unwrap();
    let mut t2 = db.begin();
    t2.delete(counters, ids[3]).unwrap();
    db.delete(counters, ids[2]).unwrap();
    db.delete(counters, ids[3]).unwrap();
    assert_conflict(t1.commit(), Some(ids[2]));
    assert_conflict(t2.commit(), Some(ids[3]));
    assert_eq!(db.snapshot().len(counters).unwrap(), 1);
}

#[test]
fn write_skew_is_refused() {
    // Each transaction reads one record and writes the other: run one after the other, the
    // second would have read the first's write, so committing both is not serializable.
    let (db, counters, ids) = counter_db();
    let mut t1 = db.begin();
    let mut t2 = db.begin();
    let a = t1.get(counters, ids[0]).unwrap().unwrap().n;
    let b = t2.get(counters, ids[1]).unwrap().unwrap().n;
    t1.set(counters, ids[1], Counter::N, a + 100).unwrap();
    t2.set(counters, ids[0], Counter::N, b + 100).unwrap();
    t1.commit().unwrap();
    assert_conflict(t2.commit(), Some(ids[1]));
    let snap = db.snapshot();
    assert_eq!((snap.get(counters, ids[0]).unwrap().n, snap.get(counters, ids[1]).unwrap().n), (0, 100));
}

#[test]
fn reads_past_the_read_set_limit_are_validated_by_table() {
    let db = Database::with_config(tabledb::Config { max_read_set: 2, ..tabledb::Config::default() });
    let counters = db.create_table::<Counter>().unwrap();
    let mut tx = db.begin();
    let ids: Vec<RecordId> =
        (0..4).map(|i| tx.insert(counters, &Counter { n: i, a: 0, b: 0 }).unwrap()).collect();
    tx.commit().unwrap();

    // The third read no longer fits: the transaction now depends on the whole table, so a
    // change to a record it read last is caught...
    let mut t1 = db.begin();
    for id in &ids[..3] {
        t1.get(counters, *id).unwrap();
    }
    db.set(counters, ids[2], Counter::A, 1).unwrap();
    t1.set(counters, ids[3], Counter::A, 1).unwrap();
    assert_conflict(t1.commit(), None);

    // ...and so, more coarsely, is a change to a record it never read.
    let mut t1 = db.begin();
    for id in &ids[..3] {
        t1.get(counters, *id).unwrap();
    }
    db.set(counters, ids[3], Counter::B, 1).unwrap();
    t1.set(counters, ids[0], Counter::A, 2).unwrap();
    assert_conflict(t1.commit(), None);

    // Within the limit, a change to an unread record does not conflict.
    let mut t1 = db.begin();
    t1.get(counters, ids[0]).unwrap();
    db.set(counters, ids[3], Counter::B, 2).unwrap();
    t1.set(counters, ids[1], Counter::A, 3).unwrap();
    t1.commit().unwrap();
}

#[test]
fn unrelated_changes_and_read_only_transactions_do_not_conflict() {
    let (db, counters, ids) = counter_db();
    // t1 read record 0; another commit changes record 1 on the same page.
    let mut t1 = db.begin();
    t1.get(counters, ids[0]).unwrap();
    db.set(counters, ids[1], Counter::N, 11).unwrap();
    t1.set(counters, ids[2], Counter::N, 22).unwrap();
    let info = t1.commit().unwrap();
    assert!(!info.read_only);
    let snap = db.snapshot();
    assert_eq!(info.seq, snap.seq());
    assert_eq!(snap.get(counters, ids[1]).unwrap().n, 11);
    assert_eq!(snap.get(counters, ids[2]).unwrap().n, 22);

    // A transaction that only read never conflicts, however stale its reads.
    let t1 = db.begin();
    t1.get(counters, ids[0]).unwrap();
    t1.len(counters).unwrap();
    let start = t1.snapshot().seq();
    db.set(counters, ids[0], Counter::N, 1000).unwrap();
    let info = t1.commit().unwrap();
    assert!(info.read_only);
    assert_eq!(info.seq, start);
    assert_eq!(db.stats().conflicts, 0);
}

#[test]
fn retry_runs_again_after_a_conflict() {
    let (db, counters, ids) = counter_db();
    let mut attempts = 0;
    let result = db.retry(5, |tx| {
        attempts += 1;
        let n = tx.get(counters, ids[0])?.unwrap().n;
        if attempts == 1 {
            // Someone else commits between this transaction's read and its commit.
            db.set(counters, ids[0], Counter::N, n + 10).unwrap();
        }
        tx.set(counters, ids[0], Counter::N, n + 1)?;
        Ok(n)
    });
    assert_eq!(result, Ok(10), "the second attempt read the other commit's value");
    assert_eq!(attempts, 2);
    assert_eq!(db.snapshot().get(counters, ids[0]).unwrap().n, 11);

    // A non-conflict error ends the loop at once.
    let mut attempts = 0;
    let result = db.retry(5, |tx| {
        attempts += 1;
        tx.set(counters, RecordId(999), Counter::N, 1)
    });
    assert_eq!(result, Err(Error::RecordNotFound { table: "counter".into(), id: RecordId(999) }));
    assert_eq!(attempts, 1);

    // Attempts are bounded: a transaction that always conflicts gives up with the conflict.
    let mut attempts = 0;
    let result = db.retry(3, |tx| {
        attempts += 1;
        tx.get(counters, ids[1])?;
        db.set(counters, ids[1], Counter::A, attempts).unwrap();
        tx.set(counters, ids[2], Counter::A, 1)
    });
    assert!(matches!(result, Err(Error::Conflict { .. })), "{result:?}");
    assert_eq!(attempts, 3);
}
