//! Real crashes: a writer process (`tabledb-crash-writer`) commits with `Durability::Tick` and
//! prints every acknowledged write; the test kills it with SIGKILL at a random moment, reopens
//! the directory in this process and checks that every acknowledged write is there, with at
//! least its acknowledged value, and that nothing is torn or invented.
//!
//! The directory is written and killed several times in a row before a new one is started, so
//! recovery also runs over the repairs of earlier recoveries.
//!
//! `TABLEDB_CRASH_ROUNDS=<n>` runs `n` rounds instead of the default (a long mode).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use tabledb::{Database, RecordId, Table};

/// The writer's record; the same layout as in `src/bin/tabledb-crash-writer.rs` (the table's
/// fingerprint check refuses any difference).
#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Slot {
    value: u64,
    check: u64,
}

const DEFAULT_ROUNDS: usize = 24;
/// Rounds that write to the same directory before a fresh one is used.
const ROUNDS_PER_DIR: usize = 4;
/// Bounds on waiting for the child, so that a hung child fails the test instead of hanging it.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the writer printed.
enum Event {
    Ready,
    Ack(RecordId, u64),
    Unexpected(String),
}

/// The writer process; killed and reaped when dropped, so every error path ends it.
struct Writer {
    child: Child,
    events: Receiver<Event>,
}

impl Writer {
    fn spawn(dir: &Path) -> Writer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tabledb-crash-writer"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tabledb-crash-writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let event = match line.split(' ').collect::<Vec<_>>()[..] {
                    ["ready"] => Event::Ready,
                    ["ack", id, value] => match (id.parse(), value.parse()) {
                        (Ok(id), Ok(value)) => Event::Ack(RecordId(id), value),
                        _ => Event::Unexpected(line.clone()),
                    },
                    _ => Event::Unexpected(line.clone()),
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        Writer { child, events }
    }

    /// Kills the child and waits, within a bound, until it is gone. Returns how it ended.
    fn kill(&mut self) -> std::process::ExitStatus {
        // An error here means it has already exited; `wait` below tells how.
        let _ = self.child.kill();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the writer") {
                return status;
            }
            assert!(Instant::now() < deadline, "the writer did not exit within {EXIT_TIMEOUT:?} of SIGKILL");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let deadline = Instant::now() + EXIT_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// splitmix64, for the kill delays; the seed is printed so that a run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn rounds() -> usize {
    match std::env::var("TABLEDB_CRASH_ROUNDS") {
        Ok(n) => n.parse().expect("TABLEDB_CRASH_ROUNDS is a number of rounds"),
        Err(_) => DEFAULT_ROUNDS,
    }
}

/// One writer run on `dir`, killed after `delay`: the acknowledged writes it printed.
fn write_and_kill(dir: &Path, delay: Duration, round: usize) -> Vec<(RecordId, u64)> {
    let mut writer = Writer::spawn(dir);
    let mut acks = Vec::new();
    match writer.events.recv_timeout(READY_TIMEOUT) {
        Ok(Event::Ready) => {}
        Ok(Event::Ack(..)) => panic!("round {round}: an ack before ready"),
        Ok(Event::Unexpected(line)) => panic!("round {round}: the writer printed {line:?}"),
        Err(e) => panic!("round {round}: the writer did not start within {READY_TIMEOUT:?}: {e:?}"),
    }
    std::thread::sleep(delay);
    let status = writer.kill();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "round {round}: the writer was killed, not ended: {status}");
    }
    #[cfg(not(unix))]
    assert!(!status.success(), "round {round}: the writer was killed: {status}");
    // The child is gone, so its stdout reaches its end and the reader thread stops.
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        match writer.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::Ack(id, value)) => acks.push((id, value)),
            Ok(Event::Ready) => panic!("round {round}: ready twice"),
            Ok(Event::Unexpected(line)) => panic!("round {round}: the writer printed {line:?}"),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("round {round}: the writer's output did not end"),
        }
    }
    acks
}

#[test]
fn killed_writer_loses_no_acknowledged_write() {
    let rounds = rounds();
    assert!(rounds > 0);
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash_process: {rounds} rounds, seed {seed}");
    let mut rng = Rng(seed);
    let mut total_acks = 0;
    let mut rounds_with_acks = 0;
    let mut torn_tails = 0;

    let mut dir = tempfile::tempdir().unwrap();
    // Per record, the largest acknowledged value; and the largest value found on disk.
    let mut acked: BTreeMap<RecordId, u64> = BTreeMap::new();
    let mut stored_max = 0;
    for round in 0..rounds {
        if round % ROUNDS_PER_DIR == 0 {
            dir = tempfile::tempdir().unwrap();
            acked.clear();
            stored_max = 0;
        }
        let delay = Duration::from_millis(10 + rng.next() % 191);
        let acks = write_and_kill(dir.path(), delay, round);
        // The writer counts on from the largest stored value, one commit at a time, so at most
        // one write past the last acknowledged one can be on disk unacknowledged.
        let ceiling = acks.iter().map(|a| a.1).max().unwrap_or(0).max(stored_max) + 1;
        total_acks += acks.len();
        rounds_with_acks += !acks.is_empty() as usize;
        for (id, value) in acks {
            let slot = acked.entry(id).or_default();
            assert!(value > *slot, "round {round}: values increase per record");
            *slot = value;
        }

        let db =
            Database::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: reopening failed: {e}"));
        torn_tails += db.recovery_report().unwrap().torn_tail.is_some() as usize;
        let slots = match db.table::<Slot>() {
            Ok(t) => t,
            // Killed before the table was created: then nothing was acknowledged.
            Err(e) => {
                assert!(acked.is_empty(), "round {round}: the table is gone: {e}");
                continue;
            }
        };
        let snap = db.snapshot();
        let view = snap.table(slots).unwrap();
        for (&id, &value) in &acked {
            let found =
                view.get(id).unwrap_or_else(|| panic!("round {round}: acknowledged record {id} is lost"));
            assert!(
                found.value >= value,
                "round {round}: record {id} holds {}, {value} was acknowledged",
                found.value
            );
        }
        for (id, slot) in view.iter() {
            assert_eq!(slot.check, !slot.value, "round {round}: record {id} is torn: {slot:?}");
            assert!(slot.value <= ceiling, "round {round}: record {id} holds {}, never written", slot.value);
            stored_max = stored_max.max(slot.value);
        }
        assert!(view.len() <= 8, "round {round}: the writer keeps 8 records");
    }
    eprintln!(
        "crash_process: {total_acks} acknowledged writes in {rounds_with_acks} of {rounds} rounds, {torn_tails} torn log tails"
    );
    assert!(rounds_with_acks * 2 >= rounds, "most rounds acknowledge writes before the kill");
}
