//! Writes to a data directory until it is killed, printing each acknowledged write.
//!
//! `tabledb-crash-writer DIR` opens (or creates) the database in `DIR` with
//! `Durability::Tick`, so a commit returns only once it is on disk, and loops forever: each
//! transaction writes the next value of an increasing counter into one of a few `slot` records
//! (created as needed), and once `commit()` returns `Ok` it prints `ack <record id> <value>` and
//! flushes. It prints `ready` once the table is open, and checkpoints now and then. The
//! `crash_process` test kills it with SIGKILL at a random moment and checks that every printed
//! write survived.
//!
//! The value continues from the largest one stored, so a directory can be written, killed and
//! written again.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tabledb::{Database, Durability, Error, RecordId, Table};

/// One record per slot. `check` is `!value`, so a record written only in part shows.
#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Slot {
    value: u64,
    check: u64,
}

const SLOTS: usize = 8;
const CHECKPOINT_EVERY: u64 = 150;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: tabledb-crash-writer DIR");
        return ExitCode::from(2);
    };
    match run(dir.as_ref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tabledb-crash-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &std::path::Path) -> tabledb::Result<Database> {
    // The previous owner of the directory may still be closing it (a test that just checked
    // it); wait a little for its lock rather than fail.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Database::open(dir) {
            Err(Error::Persistence(msg)) if msg.contains("in use") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            other => return other,
        }
    }
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = open(dir)?;
    assert_eq!(db.durability(), Some(Durability::Tick));
    let slots = db.ensure_table::<Slot>()?;
    let mut ids: Vec<RecordId> = Vec::with_capacity(SLOTS);
    let mut value = 0;
    for (id, slot) in db.snapshot().table(slots)?.iter() {
        if ids.len() < SLOTS {
            ids.push(id);
        }
        value = value.max(slot.value);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for n in 0u64.. {
        value += 1;
        let record = Slot { value, check: !value };
        let mut tx = db.begin();
        let id = match ids.get((n % SLOTS as u64) as usize) {
            Some(&id) => {
                tx.update(slots, id, &record)?;
                id
            }
            None => {
                let id = tx.insert(slots, &record)?;
                ids.push(id);
                id
            }
        };
        tx.commit()?;
        writeln!(out, "ack {} {value}", id.0)?;
        out.flush()?;
        if n % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
            db.checkpoint()?;
        }
    }
    Ok(())
}
