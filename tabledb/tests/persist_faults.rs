//! Disk faults: a full disk (`ENOSPC`), I/O errors (`EIO`) and failed fsyncs, injected at each
//! disk operation of a checkpoint, of commits (appending to the log and rolling over to a new
//! segment), and of schema changes (`create_table`, `add_field`).
//!
//! For every fault at every operation:
//! - a call that fails says why: the disk being full, the file, or the fsync;
//! - nothing acknowledged before is lost, after a crash right then or after a clean restart;
//! - reads keep working on the same database and show a state the calls could have produced;
//! - after an `ENOSPC` or `EIO` (one-shot here, so it clears at once) later writes succeed and
//!   are durable, together with everything kept in memory;
//! - after a failed fsync, every write is refused with `Error::WritesStopped` and
//!   `persistence_status().writes_stopped` says why, while reads keep working.
//!
//! Then: a disk that stays full for a while; and the log and the checkpoint files staying
//! bounded as checkpoints come and go.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tabledb::persist::{Fault, SimStorage, Storage};
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, Error, PersistOptions, RecordId, Table};

const DIR: &str = "/db";
const FAULTS: [Fault; 3] = [Fault::NoSpace, Fault::Io, Fault::SyncFailure];

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    marker: u64,
    value: u64,
}

/// Every table's field names and live records.
type State = BTreeMap<String, (Vec<String>, BTreeMap<u64, Vec<u8>>)>;

fn observe(db: &Database) -> State {
    let snap = db.snapshot();
    snap.table_names()
        .map(|name| {
            let raw = snap.raw_table(name).unwrap();
            let fields = raw.schema().fields.iter().map(|f| f.name.clone()).collect();
            let rows = raw.iter().map(|(id, b)| (id.0, b.to_vec())).collect();
            (name.to_owned(), (fields, rows))
        })
        .collect()
}

fn options(disk: &SimStorage, segment_max: u64) -> PersistOptions {
    PersistOptions {
        storage: Arc::new(disk.clone()),
        wal_segment_max_bytes: segment_max,
        checkpoint_after_wal_bytes: 0,
        ..PersistOptions::default()
    }
}

fn open(disk: &SimStorage) -> tabledb::Result<Database> {
    Database::open_with(DIR, Config::default(), options(disk, 700))
}

/// Opens the disk of a database just dropped in this process.
///
/// Dropping the last handle does not always release the directory lock at once: the background
/// flusher thread holds the database for a moment every 100 ms, and if the last handle drops
/// then, the database closes on that thread a little later. Until it has, opening the directory
/// again fails as "in use". Retry briefly rather than fail on that race.
fn reopen(disk: &SimStorage) -> tabledb::Result<Database> {
    reopen_with(options(disk, 700))
}

fn reopen_with(options: PersistOptions) -> tabledb::Result<Database> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match Database::open_with(DIR, Config::default(), options.clone()) {
            Err(Error::Persistence(msg)) if msg.contains("in use") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => return other,
        }
    }
}

fn files(disk: &SimStorage, dir: &str) -> Vec<String> {
    disk.list(&Path::new(DIR).join(dir)).unwrap()
}

/// One call that writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Checkpoint,
    Commit(u64),
    CreateTable,
    AddField,
}

fn perform(db: &Database, call: Call) -> tabledb::Result<()> {
    match call {
        Call::Checkpoint => {
            assert!(db.checkpoint()?, "no other checkpoint runs");
            Ok(())
        }
        Call::Commit(marker) => {
            let items = db.table::<Item>()?;
            let schema = db.snapshot().schema("tag")?.clone();
            let mut tx = db.begin();
            tx.insert(items, &Item { marker, value: marker * 10 })?;
            tx.set(items, RecordId(1 + marker % 5), Item::VALUE, marker)?;
            let row = json!({"marker": marker, "active": marker % 2 == 0, "label": format!("tag {marker}")});
            // Fields added by `AddField` stay zero.
            let zeros = vec![0; schema.record_size];
            let bytes = schema.record_from_json(row.as_object().unwrap(), Some(&zeros)).unwrap();
            tx.create_record("tag", &bytes)?;
            tx.commit().map(|_| ())
        }
        Call::CreateTable => db.create_table_from_defs("extra", &[FieldDef::new("n", "u32")]).map(|_| ()),
        Call::AddField => db.add_field("tag", &FieldDef::new("score", "u16")),
    }
}

/// A database with both tables, a checkpoint and a log after it; with `checkpointed`, it ends
/// with a checkpoint, so that the next commit starts a new log segment.
fn base(disk: &SimStorage, checkpointed: bool) -> Database {
    let db = open(disk).unwrap();
    let items = db.create_table::<Item>().unwrap();
    db.create_table_from_defs(
        "tag",
        &[FieldDef::new("marker", "u64"), FieldDef::new("active", "bool"), FieldDef::string("label", 10)],
    )
    .unwrap();
    let mut tx = db.begin();
    for i in 0..10 {
        tx.insert(items, &Item { marker: i, value: i }).unwrap();
    }
    tx.commit().unwrap();
    for m in 1000..1004 {
        perform(&db, Call::Commit(m)).unwrap();
    }
    perform(&db, Call::Checkpoint).unwrap();
    for m in 2000..2006 {
        perform(&db, Call::Commit(m)).unwrap();
    }
    if checkpointed {
        perform(&db, Call::Checkpoint).unwrap();
    }
    db
}

/// A sequence of calls to break: its name, whether its base ends with a checkpoint, the calls.
struct Scenario {
    name: &'static str,
    checkpointed: bool,
    calls: Vec<Call>,
}

/// How each kind of outcome was seen, to show that the scenarios reach all of them.
#[derive(Debug, Default)]
struct Seen {
    failed: usize,
    stopped: usize,
    harmless: usize,
}

fn run_scenario(s: &Scenario, seen: &mut Seen) {
    // The fault-free run: the states between the calls, and how many disk operations they take.
    let disk = SimStorage::new(1);
    let db = base(&disk, s.checkpointed);
    let start = disk.ops();
    let mut states = vec![observe(&db)];
    for &call in &s.calls {
        perform(&db, call).unwrap();
        states.push(observe(&db));
    }
    let ops = disk.ops() - start;
    assert!(ops >= s.calls.len() as u64 * 2, "{}: {ops} disk operations", s.name);
    drop(db);

    eprintln!("{}: {ops} disk operations, each failed with each fault", s.name);
    for fault in FAULTS {
        for i in 1..=ops {
            let what = format!("{}: {fault:?} at disk operation {i} of {ops}", s.name);
            check_fault(s, &states, fault, i, &what, seen);
        }
    }
}

fn check_fault(s: &Scenario, states: &[State], fault: Fault, i: u64, what: &str, seen: &mut Seen) {
    let disk = SimStorage::new(i);
    let db = base(&disk, s.checkpointed);
    disk.inject(disk.ops() + i, fault);
    let mut done = 0;
    let mut error = None;
    for &call in &s.calls {
        match perform(&db, call) {
            Ok(()) => done += 1,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let status = db.persistence_status().unwrap();
    // A state the calls could have left: every call that returned, and perhaps the failed one.
    let possible = &states[done..states.len().min(done + 2)];

    // Reads keep working, on what memory holds.
    let in_memory = observe(&db);
    assert!(possible.contains(&in_memory), "{what}: the database shows a state no calls produced");

    // A crash now loses nothing acknowledged.
    let image = disk.crash_image();
    {
        let db = open(&image).unwrap_or_else(|e| panic!("{what}: reopening after a crash failed: {e}"));
        assert!(possible.contains(&observe(&db)), "{what}: after a crash, acknowledged calls are lost");
    }

    let Some(error) = error else {
        // The fault hit a step whose failure is only reported: removing files that are no
        // longer needed. Everything is done, and later writes succeed.
        assert_eq!(done, s.calls.len(), "{what}");
        assert!(status.writes_stopped.is_none(), "{what}: {status:?}");
        perform(&db, Call::Commit(9000)).unwrap_or_else(|e| panic!("{what}: a later commit failed: {e}"));
        seen.harmless += 1;
        return;
    };
    let msg = error.to_string();
    if let Some(reason) = &status.writes_stopped {
        // A failed fsync: nothing may be acknowledged any more, but reads go on.
        seen.stopped += 1;
        assert!(msg.contains("fsync"), "{what}: the error names the fsync: {msg}");
        assert!(reason.contains("fsync"), "{what}: the status says why: {reason}");
        assert!(
            reason.contains("wal/") || reason.contains(DIR),
            "{what}: the status names the file: {reason}"
        );
        for call in [Call::Commit(9000), Call::Checkpoint, Call::CreateTable, Call::AddField] {
            match perform(&db, call) {
                Err(Error::WritesStopped(r)) => assert_eq!(&r, reason, "{what}: {call:?}"),
                other => panic!("{what}: {call:?} after a failed fsync: {other:?}"),
            }
        }
        assert!(matches!(db.sync(), Err(Error::WritesStopped(_))), "{what}: sync after a failed fsync");
        assert_eq!(observe(&db), in_memory, "{what}: reads go on after writes stopped");
        // A restart (not a crash) finds a consistent state too, which takes writes again.
        drop(db);
        let db =
            reopen(&disk).unwrap_or_else(|e| panic!("{what}: reopening after writes stopped failed: {e}"));
        assert!(possible.contains(&observe(&db)), "{what}: after a restart");
        perform(&db, Call::Commit(9001))
            .unwrap_or_else(|e| panic!("{what}: a commit after the restart: {e}"));
        return;
    }
    seen.failed += 1;
    if fault == Fault::NoSpace {
        assert!(msg.contains("disk is full"), "{what}: the error says the disk is full: {msg}");
    }
    assert!(msg.contains(DIR), "{what}: the error names the file: {msg}");
    if matches!(s.calls[done], Call::Commit(_) | Call::Checkpoint) {
        assert!(status.last_error.is_some(), "{what}: the status reports the error: {status:?}");
    }

    // The fault was one-shot, so it has cleared: writes succeed again, and a commit made now
    // takes with it to disk whatever the failed call left in memory.
    perform(&db, Call::Commit(9000)).unwrap_or_else(|e| panic!("{what}: a later commit failed: {e}"));
    let expected = observe(&db);
    let image = disk.crash_image();
    drop(db);
    for (how, disk) in [("a crash", &image), ("a restart", &disk)] {
        let db = reopen(disk).unwrap_or_else(|e| panic!("{what}: reopening after {how} failed: {e}"));
        assert!(observe(&db) == expected, "{what}: after {how}, the data differs from what was in memory");
    }
    // And the failed call itself succeeds when tried again.
    let db = reopen(&disk).unwrap();
    for &call in &s.calls[done..] {
        perform(&db, call).unwrap_or_else(|e| panic!("{what}: {call:?} tried again failed: {e}"));
    }
}

#[test]
fn faults_during_a_checkpoint() {
    let mut seen = Seen::default();
    run_scenario(
        &Scenario { name: "checkpoint", checkpointed: false, calls: vec![Call::Checkpoint] },
        &mut seen,
    );
    eprintln!("{seen:?}");
    assert!(seen.failed > 0 && seen.stopped > 0 && seen.harmless > 0, "{seen:?}");
}

#[test]
fn faults_during_commits() {
    let mut seen = Seen::default();
    // The first commit after a checkpoint starts a new log segment; the second appends to it.
    let calls = vec![Call::Commit(1), Call::Commit(2)];
    run_scenario(&Scenario { name: "commit", checkpointed: true, calls }, &mut seen);
    eprintln!("{seen:?}");
    assert!(seen.failed > 0 && seen.stopped > 0, "{seen:?}");
}

#[test]
fn faults_during_schema_changes() {
    let mut seen = Seen::default();
    run_scenario(
        &Scenario { name: "create_table", checkpointed: false, calls: vec![Call::CreateTable] },
        &mut seen,
    );
    run_scenario(
        &Scenario { name: "add_field", checkpointed: false, calls: vec![Call::AddField] },
        &mut seen,
    );
    eprintln!("{seen:?}");
    assert!(seen.failed > 0 && seen.stopped > 0 && seen.harmless > 0, "{seen:?}");
}

#[test]
fn a_full_disk_fails_writes_clearly_and_loses_nothing() {
    let disk = SimStorage::new(9);
    let db = base(&disk, false);
    let acknowledged = observe(&db);
    disk.set_disk_full(true);

    let e = perform(&db, Call::Commit(1)).unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");
    assert!(e.to_string().contains("disk is full"), "{e}");
    let e = perform(&db, Call::Checkpoint).unwrap_err();
    assert!(e.to_string().contains("disk is full"), "{e}");
    let e = perform(&db, Call::CreateTable).unwrap_err();
    assert!(e.to_string().contains("disk is full"), "{e}");
    let e = perform(&db, Call::AddField).unwrap_err();
    assert!(e.to_string().contains("disk is full"), "{e}");
    let e = perform(&db, Call::Commit(2)).unwrap_err();
    assert!(e.to_string().contains("disk is full"), "{e}");
    let status = db.persistence_status().unwrap();
    assert!(status.writes_stopped.is_none(), "a full disk does not stop writes: {status:?}");
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("disk is full")), "{status:?}");

    // Reads go on; the two commits are applied in memory, not acknowledged.
    let in_memory = observe(&db);
    assert_eq!(in_memory["item"].1.len(), acknowledged["item"].1.len() + 2);
    assert!(!in_memory.contains_key("extra"), "the failed create_table is not applied");
    assert_eq!(in_memory["tag"].0, acknowledged["tag"].0, "the failed add_field is not applied");

    // A crash while the disk is full keeps what was acknowledged.
    {
        let db = open(&disk.crash_image()).unwrap();
        assert_eq!(observe(&db), acknowledged);
    }

    // Space returns: writes succeed and everything in memory reaches the disk.
    disk.set_disk_full(false);
    perform(&db, Call::Commit(3)).unwrap();
    perform(&db, Call::CreateTable).unwrap();
    perform(&db, Call::AddField).unwrap();
    perform(&db, Call::Commit(4)).unwrap();
    perform(&db, Call::Checkpoint).unwrap();
    perform(&db, Call::Commit(5)).unwrap();
    let expected = observe(&db);
    assert_eq!(expected["item"].1.len(), acknowledged["item"].1.len() + 5);
    let image = disk.crash_image();
    drop(db);
    assert_eq!(observe(&open(&image).unwrap()), expected);
    assert_eq!(observe(&reopen(&disk).unwrap()), expected);
}

#[test]
fn a_full_log_buffer_refuses_commits_before_applying_them() {
    let disk = SimStorage::new(5);
    let db = {
        drop(base(&disk, false));
        reopen_with(PersistOptions { wal_buffer_max_bytes: 2000, ..options(&disk, 700) }).unwrap()
    };
    disk.set_disk_full(true);
    let mut refused = None;
    for m in 0..100 {
        match perform(&db, Call::Commit(m)) {
            Err(Error::Persistence(msg)) if msg.contains("disk is full") => {}
            Err(e) => {
                refused = Some((m, e));
                break;
            }
            Ok(()) => panic!("commit {m} acknowledged on a full disk"),
        }
    }
    let (m, e) = refused.expect("the log buffer fills up");
    assert!(e.to_string().contains("log buffer full"), "{e}");
    let before = observe(&db);
    assert!(perform(&db, Call::Commit(m + 1)).is_err());
    assert_eq!(observe(&db), before, "a refused commit is not applied");
    disk.set_disk_full(false);
    perform(&db, Call::Commit(500)).unwrap();
    let expected = observe(&db);
    let image = disk.crash_image();
    drop(db);
    assert_eq!(observe(&open(&image).unwrap()), expected, "every commit applied in memory is durable");
}

#[test]
fn checkpoints_keep_the_log_and_the_data_directory_bounded() {
    let disk = SimStorage::new(2);
    let db = base(&disk, false);
    let mut most_segments = 0;
    for round in 0..12u64 {
        for m in 0..15 {
            perform(&db, Call::Commit(round * 100 + m)).unwrap();
        }
        most_segments = most_segments.max(files(&disk, "wal").len());
        perform(&db, Call::Checkpoint).unwrap();
        let wal = files(&disk, "wal");
        assert!(wal.len() <= 1, "round {round}: log segments after a checkpoint: {wal:?}");
        let data = files(&disk, "data");
        assert_eq!(
            data.len(),
            2,
            "round {round}: one checkpoint per table, older generations removed: {data:?}"
        );
        let status = db.persistence_status().unwrap();
        assert!(status.log_segments <= 1, "round {round}: {status:?}");
        assert!(
            data.iter().all(|f| f.ends_with(&format!(".{}.bin", status.generation))),
            "{data:?} {status:?}"
        );
    }
    assert!(most_segments >= 3, "commits between checkpoints fill several segments ({most_segments})");
    let expected = observe(&db);
    drop(db);
    assert_eq!(observe(&open(&disk.crash_image()).unwrap()), expected);
}

#[test]
fn background_checkpoints_keep_the_log_bounded() {
    let disk = SimStorage::new(4);
    drop(base(&disk, false));
    let db = reopen_with(PersistOptions { checkpoint_after_wal_bytes: 3000, ..options(&disk, 700) }).unwrap();
    // The bounds on the waits only keep a broken build from hanging; background checkpoints
    // start every 100 ms at most once 3000 bytes of log were written.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut m = 0;
    while m < 400 || db.persistence_status().unwrap().checkpoints < 3 {
        assert!(Instant::now() < deadline, "no background checkpoints: {:?}", db.persistence_status());
        perform(&db, Call::Commit(m)).unwrap();
        m += 1;
        if m % 50 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Without checkpoints, the log would now hold more than a hundred 700-byte segments. Once
    // the writes stop, at most the log of one checkpoint interval (3000 bytes) remains, with the
    // segment a checkpoint started in, and one checkpoint file per table.
    loop {
        let (wal, data) = (files(&disk, "wal"), files(&disk, "data"));
        if wal.len() <= 8 && data.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the log is not trimmed: {wal:?}, {data:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = db.persistence_status().unwrap();
    assert!(status.log_segments <= 8, "{status:?}");
    assert_eq!(status.checkpoint_failures, 0, "{status:?}");
    let expected = observe(&db);
    drop(db);
    assert_eq!(observe(&open(&disk.crash_image()).unwrap()), expected);
}

#[test]
fn a_commit_group_stops_at_the_log_buffer_limit_on_a_full_disk() {
    let disk = SimStorage::new(3);
    let options = PersistOptions { wal_buffer_max_bytes: 2000, ..options(&disk, 1 << 20) };
    let db = Database::open_with(DIR, Config::default(), options).unwrap();
    let t = db.create_table::<Item>().unwrap();
    disk.set_disk_full(true);
    let txs: Vec<_> = (0..2000u64)
        .map(|i| {
            let mut tx = db.begin();
            tx.insert(t, &Item { marker: i, value: i }).unwrap();
            tx
        })
        .collect();
    let (results, rest) = db.commit_group(txs);
    assert!(rest.is_empty());
    let ok = results.iter().filter(|r| r.is_ok()).count();
    // Each put takes 17 + 16 bytes: one entry of at most 2000 bytes, then the buffer is full.
    assert!(
        (1..=2000 / 33).contains(&ok),
        "{ok} commits of the group were taken into a 2000-byte log buffer"
    );
    let refused = results.iter().find_map(|r| r.as_ref().err()).expect("the rest are refused");
    assert!(refused.to_string().contains("log buffer full"), "{refused}");
    assert_eq!(db.snapshot().len(t).unwrap(), ok as u64, "refused commits are not applied");
    disk.set_disk_full(false);
    db.sync().unwrap();
    let expected = observe(&db);
    let image = disk.crash_image();
    drop(db);
    assert_eq!(observe(&open(&image).unwrap()), expected, "every commit applied in memory is durable");
}
