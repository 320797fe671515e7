//! A typed, embedded simulation: tables declared with `#[derive(Table)]`, game logic in
//! `#[procedure]`s, a 60 Hz runtime that runs them in parallel, and data kept on disk.
//!
//! ```text
//! cargo run --release --example embedded [DATA_DIR]
//! ```
//!
//! Every tick, `step` moves every unit in parallel (`par_update`); a few `attack` calls per
//! tick fight over hit points. Once a second the program prints what happened, reading the
//! latest snapshot without stopping the simulation.

use std::time::{Duration, Instant};

use serde_json::json;
use tabledb::procedure::ProcCtx;
use tabledb::runtime::Job;
use tabledb::{Database, FixedStr, ProcedureRegistry, RecordId, Runtime, RuntimeConfig, Table, TableRef};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Unit {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    hp: i32,
    kills: u32,
    team: u8,
    alive: bool,
    name: FixedStr<16>,
}

/// The table handle, found by name inside procedures.
fn units(ctx: &ProcCtx<'_>) -> Result<TableRef<Unit>, tabledb::Error> {
    ctx.snapshot().table_ref::<Unit>()
}

/// Moves every living unit by its velocity, bouncing off the edges of a 1000 x 1000 field.
#[tabledb::procedure]
fn step(ctx: &mut ProcCtx<'_>, dt: f32) -> Result<u64, tabledb::Error> {
    let t = units(ctx)?;
    ctx.par_update(t, |_, u| {
        if !u.alive {
            return;
        }
        u.x += u.vx * dt;
        u.y += u.vy * dt;
        if !(0.0..=1000.0).contains(&u.x) {
            u.vx = -u.vx;
            u.x = u.x.clamp(0.0, 1000.0);
        }
        if !(0.0..=1000.0).contains(&u.y) {
            u.vy = -u.vy;
            u.y = u.y.clamp(0.0, 1000.0);
        }
    })
}

/// `attacker` hits `target` for `damage`; a unit at 0 hit points dies and its attacker
/// scores a kill. Refused between units of the same team.
#[tabledb::procedure]
fn attack(ctx: &mut ProcCtx<'_>, attacker: RecordId, target: RecordId, damage: i32) -> Result<bool, String> {
    let t = units(ctx).map_err(|e| e.to_string())?;
    let a = *ctx.get(t, attacker).map_err(|e| e.to_string())?.ok_or("no such attacker")?;
    let mut b = *ctx.get(t, target).map_err(|e| e.to_string())?.ok_or("no such target")?;
    if !a.alive || !b.alive || a.team == b.team {
        return Ok(false);
    }
    b.hp -= damage;
    let killed = b.hp <= 0;
    if killed {
        b.alive = false;
        ctx.set(t, attacker, Unit::KILLS, a.kills + 1).map_err(|e| e.to_string())?;
    }
    ctx.update(t, target, &b).map_err(|e| e.to_string())?;
    Ok(killed)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tabledb-embedded-{}", std::process::id())));
    let db = Database::open(&dir)?;
    let table = db.ensure_table::<Unit>()?;
    if db.snapshot().len(table)? == 0 {
        let mut tx = db.begin();
        for i in 0..20_000u32 {
            let f = i as f32;
            tx.insert(
                table,
                &Unit {
                    x: (f * 37.0) % 1000.0,
                    y: (f * 91.0) % 1000.0,
                    vx: (f % 7.0) - 3.0,
                    vy: (f % 5.0) - 2.0,
                    hp: 100,
                    kills: 0,
                    team: (i % 2) as u8,
                    alive: true,
                    name: FixedStr::new(&format!("unit{i}"))?,
                },
            )?;
        }
        tx.commit()?;
        println!("created 20000 units in {}", dir.display());
    }

    let procedures = ProcedureRegistry::new().with(step::procedure())?.with(attack::procedure())?;
    let runtime =
        Runtime::start(db.clone(), procedures, RuntimeConfig { tick_hz: 60, ..RuntimeConfig::default() })?;
    let handle = runtime.handle();
    let ids: Vec<RecordId> = db.snapshot().table(table)?.iter().map(|(id, _)| id).collect();

    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(1);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        tick += 1;
        let ignore = Box::new(|_| {});
        handle.submit(Job::Call { name: "step".into(), args: json!({ "dt": 1.0 / 60.0 }) }, ignore)?;
        for _ in 0..50 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // The fighting happens among the first 500 units.
            let a = ids[(seed % 500) as usize];
            let b = ids[((seed >> 32) % 500) as usize];
            let args = json!({ "attacker": a.0, "target": b.0, "damage": 35 });
            if handle.submit(Job::Call { name: "attack".into(), args }, Box::new(|_| {})).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(16));
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let snap = db.snapshot();
            let view = snap.table(table)?;
            let alive = view.par_count(|u| u.alive);
            let kills: u64 = view.par_sum(|u| u64::from(u.kills));
            let m = handle.metrics();
            println!(
                "t={:.0}s tick {} | {} alive, {} kills | {} calls committed, {} retried after conflicts, {} overruns",
                start.elapsed().as_secs_f64(),
                m.ticks,
                alive,
                kills,
                m.procedures_committed,
                m.procedures_retried,
                m.overruns
            );
        }
    }
    runtime.shutdown();
    println!("submitted {tick} rounds; shut down cleanly (log synced, checkpoint written)");
    drop(db);
    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
