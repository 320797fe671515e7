//! A first program with tabledb: a typed table, transactions, snapshot reads, parallel
//! iteration, and data that survives a restart.
//!
//! ```text
//! cargo run --release --example quickstart [DATA_DIR]
//! ```
//!
//! Without `DATA_DIR` the data goes to a new directory under the system's temporary directory,
//! removed at the end; a `DATA_DIR` given is kept.

use tabledb::{Database, FixedStr, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    x: f32,
    y: f32,
    hp: u32,
    level: u16,
    alive: bool,
    team: u8,
    name: FixedStr<14>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tabledb-quickstart-{}", std::process::id())));
    let db = Database::open(&dir)?;
    let players = db.ensure_table::<Player>()?;

    let mut tx = db.begin();
    for i in 0..10_000u32 {
        let name = FixedStr::new(&format!("player{i}"))?;
        tx.insert(
            players,
            &Player { x: i as f32, y: 0.0, hp: 100, level: 1, alive: true, team: (i % 2) as u8, name },
        )?;
    }
    let info = tx.commit()?;
    println!("inserted 10000 players in commit {}", info.seq);

    // Read-modify-write in a transaction that retries on conflict.
    let first = db.snapshot().table(players)?.iter().next().map(|(id, _)| id).expect("a player");
    db.retry(10, |tx| tx.modify(players, first, |p| p.hp -= 25))?;

    let snap = db.snapshot();
    let view = snap.table(players)?;
    let total_hp: u64 = view.par_sum(|p| p.hp as u64);
    let team0 = view.par_count(|p| p.team == 0);
    println!("{} players, total hp {total_hp}, {team0} on team 0", view.len());
    println!("{:?}", view.get(first).expect("live"));

    db.checkpoint()?;
    drop((snap, db));
    let db = Database::open(&dir)?;
    println!("after reopening {}: {} players", dir.display(), db.snapshot().len(players)?);
    drop(db);
    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
