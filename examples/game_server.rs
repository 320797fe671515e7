//! A typed game server: tables declared in Rust, game rules as procedures, all served over
//! REST beside the tables clients create at run time.
//!
//! ```text
//! cargo run --release --example game_server [-- --port 7878 --data-dir ./game-data ...]
//! ```
//!
//! Then, for example:
//!
//! ```text
//! curl -s -X POST localhost:7878/rpc/spawn_player -H 'content-type: application/json' -d '{"name": "ada", "team": 1}'
//! curl -s -X POST localhost:7878/rpc/move_player  -H 'content-type: application/json' -d '{"player": 1, "dx": 3.5, "dy": -1}'
//! curl -s -X POST localhost:7878/rpc/give_item    -H 'content-type: application/json' -d '{"owner": 1, "kind": 7}'
//! curl -s 'localhost:7878/tables/player/records?team=eq.1&order=score.desc'
//! curl -s localhost:7878/rpc          # every procedure and its parameters
//! curl -s localhost:7878/openapi.json # the same, as OpenAPI
//! ```

use clap::Parser;
use tabledb::procedure::{ProcCtx, ProcError};
use tabledb::{Database, FixedStr, PersistOptions, ProcedureRegistry, RecordId, Table};
use tabledb_server::{Cli, Server, ServerConfig, init_logging, shutdown_signal};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    x: f32,
    y: f32,
    score: u32,
    hp: u16,
    team: u8,
    online: bool,
    name: FixedStr<14>,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    /// The player holding the item (a relation to `player.id`).
    owner: u64,
    kind: u32,
    durability: u32,
}

/// Creates a player at the origin and returns its id.
#[tabledb::procedure]
fn spawn_player(ctx: &mut ProcCtx<'_>, name: String, team: u8) -> Result<RecordId, ProcError> {
    let players = ctx.snapshot().table_ref::<Player>()?;
    // A name too long for its 14 bytes is the caller's mistake: a 400 naming the parameter.
    let name = FixedStr::new(&name)
        .map_err(|e| ProcError::BadParams { param: "name".into(), message: e.to_string() })?;
    Ok(ctx.insert(players, &Player { x: 0.0, y: 0.0, score: 0, hp: 100, team, online: true, name })?)
}

/// Moves a player by (dx, dy), at most 10 units per call; returns the new position.
#[tabledb::procedure(timeout_ms = 1000)]
fn move_player(ctx: &mut ProcCtx<'_>, player: RecordId, dx: f32, dy: f32) -> Result<(f32, f32), String> {
    if dx.hypot(dy) > 10.0 {
        return Err(format!("a move of ({dx}, {dy}) is longer than 10"));
    }
    let players = ctx.snapshot().table_ref::<Player>().map_err(|e| e.to_string())?;
    let position = ctx
        .modify(players, player, |p| {
            p.x += dx;
            p.y += dy;
            (p.x, p.y)
        })
        .map_err(|e| e.to_string())?;
    Ok(position)
}

/// Gives a player a new item of `kind` and a point of score; returns the item's id.
#[tabledb::procedure]
fn give_item(ctx: &mut ProcCtx<'_>, owner: RecordId, kind: u32) -> Result<RecordId, tabledb::Error> {
    let (players, items) = (ctx.snapshot().table_ref::<Player>()?, ctx.snapshot().table_ref::<Item>()?);
    let score = ctx
        .get(players, owner)?
        .ok_or(tabledb::Error::RecordNotFound { table: "player".into(), id: owner })?
        .score;
    ctx.set(players, owner, Player::SCORE, score + 1)?;
    ctx.insert(items, &Item { owner: owner.0, kind, durability: 100 })
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match ServerConfig::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("game_server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let options = PersistOptions { durability: config.durability, ..PersistOptions::default() };
    let db = match Database::open_with(&config.data_dir, tabledb::Config::default(), options) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("game_server: cannot open {}: {e}", config.data_dir.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let setup = || -> Result<ProcedureRegistry, Box<dyn std::error::Error>> {
        db.ensure_table::<Player>()?;
        db.ensure_table::<Item>()?;
        if db.snapshot().relations().next().is_none() {
            db.create_relation(Some("item_owner"), "item", "owner", "player", "id")?;
        }
        Ok(ProcedureRegistry::new()
            .with(spawn_player::procedure())?
            .with(move_player::procedure())?
            .with(give_item::procedure())?)
    };
    let procedures = match setup() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("game_server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("game_server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let served = rt.block_on(
        Server::new(config)
            .database(db)
            .procedures(procedures)
            .serve(|addr| println!("game server listening on http://{addr}"), shutdown_signal()),
    );
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("game_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
