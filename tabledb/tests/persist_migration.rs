//! Migrating a stored table to a new version of its `#[derive(Table)]` struct.
//!
//! Version 1 of a program stores `player`; version 2 removes a field and adds two;
//! `ensure_table` migrates the stored records (added fields zeroed, the others kept) and the
//! result persists, on real files and across simulated crashes during the migration. Version 3
//! changes a field's type, which is refused with `Error::SchemaMismatch` naming the field,
//! leaving every file of the data directory as it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tabledb::persist::{Fault, SimStorage};
use tabledb::{Config, Database, Error, FixedStr, PersistOptions, RecordId};

mod v1 {
    use tabledb::{FixedStr, Table};

    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Player {
        pub score: u64,
        pub hp: u32,
        pub level: u16,
        pub old: u16,
        pub name: FixedStr<14>,
    }
}

mod v2 {
    use tabledb::{FixedStr, Table};

    /// `old` removed; `xp` and `flags` added.
    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Player {
        pub score: u64,
        pub xp: u64,
        pub hp: u32,
        pub level: u16,
        pub flags: u16,
        pub name: FixedStr<14>,
    }
}

mod v3 {
    use tabledb::{FixedStr, Table};

    /// `hp` changed from u32 to u64.
    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Player {
        pub score: u64,
        pub xp: u64,
        pub hp: u64,
        pub level: u16,
        pub flags: u16,
        pub name: FixedStr<14>,
        pub extra: u32,
    }
}

const PLAYERS: u64 = 60;

fn v1_player(i: u64) -> v1::Player {
    v1::Player {
        score: i * 1_000_003,
        hp: 100 + i as u32,
        level: i as u16 % 50,
        old: 0xbeef,
        name: FixedStr::new(&format!("player {i}")).unwrap(),
    }
}

/// What version 2 must show for a version 1 record.
fn migrated(p: &v1::Player) -> v2::Player {
    v2::Player { score: p.score, xp: 0, hp: p.hp, level: p.level, flags: 0, name: p.name }
}

fn v2_records(db: &Database) -> BTreeMap<RecordId, v2::Player> {
    let t = db.table::<v2::Player>().unwrap();
    db.snapshot().table(t).unwrap().iter().map(|(id, p)| (id, *p)).collect()
}

/// Stores version 1 records, part in a checkpoint and part in the log only; returns them.
fn store_v1(db: &Database) -> BTreeMap<RecordId, v1::Player> {
    let t = db.ensure_table::<v1::Player>().unwrap();
    let mut stored = BTreeMap::new();
    for i in 0..PLAYERS {
        if i == PLAYERS / 2 {
            assert!(db.checkpoint().unwrap());
        }
        let p = v1_player(i);
        stored.insert(db.insert(t, &p).unwrap(), p);
    }
    let ids: Vec<RecordId> = stored.keys().copied().collect();
    for &id in &ids[..3] {
        db.delete(t, id).unwrap();
        stored.remove(&id);
    }
    db.set(t, ids[10], v1::Player::HP, 7).unwrap();
    stored.get_mut(&ids[10]).unwrap().hp = 7;
    stored
}

/// Opens a data directory on disk whose previous `Database` this process just dropped.
///
/// Dropping the last handle does not always release the directory lock at once: the background
/// flusher thread holds the database for a moment every 100 ms, and if the last handle drops
/// then, the database closes on that thread a little later, until when opening again fails as
/// "in use". Retry briefly rather than fail on that race.
fn open(dir: &Path) -> Database {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match Database::open(dir) {
            Err(Error::Persistence(msg))
                if msg.contains("in use") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            other => return other.unwrap(),
        }
    }
}

/// Every file under `dir` but the lock, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.file_name() != Some("LOCK".as_ref()) {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn added_and_removed_fields_are_migrated_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let v1_stored = {
        let db = open(dir.path());
        store_v1(&db)
    };
    let mut expected: BTreeMap<RecordId, v2::Player> =
        v1_stored.iter().map(|(&id, p)| (id, migrated(p))).collect();

    // Version 2 opens the table: migrated, and writable with the new fields.
    let new_id = {
        let db = open(dir.path());
        let t = db.ensure_table::<v2::Player>().unwrap();
        assert_eq!(v2_records(&db), expected, "added fields are zero, the others kept");
        let fields: Vec<String> =
            db.snapshot().schema("player").unwrap().fields.iter().map(|f| f.name.clone()).collect();
        assert_eq!(fields, ["score", "xp", "hp", "level", "flags", "name"]);
        assert!(
            matches!(db.table::<v1::Player>(), Err(Error::SchemaMismatch { .. })),
            "the old version no longer matches"
        );
        let some = *expected.keys().nth(5).unwrap();
        db.set(t, some, v2::Player::XP, 42).unwrap();
        expected.get_mut(&some).unwrap().xp = 42;
        let p =
            v2::Player { score: 1, xp: 2, hp: 3, level: 4, flags: 5, name: FixedStr::new("new").unwrap() };
        let new_id = db.insert(t, &p).unwrap();
        assert!(new_id > *v1_stored.keys().last().unwrap(), "ids go on after the migration");
        expected.insert(new_id, p);
        assert_eq!(v2_records(&db), expected);
        new_id
    };

    // The migration and the writes after it persist; ensure_table then finds nothing to do.
    {
        let db = open(dir.path());
        assert_eq!(v2_records(&db), expected);
        db.ensure_table::<v2::Player>().unwrap();
        assert_eq!(v2_records(&db), expected);
        assert!(db.table::<v1::Player>().is_err());
        let t = db.table::<v2::Player>().unwrap();
        db.set(t, new_id, v2::Player::FLAGS, 9).unwrap();
        expected.get_mut(&new_id).unwrap().flags = 9;
        assert!(db.checkpoint().unwrap());
    }
    let db = open(dir.path());
    assert_eq!(v2_records(&db), expected, "after a checkpoint too");
}

#[test]
fn a_changed_field_type_is_refused_and_changes_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let expected: BTreeMap<RecordId, v2::Player> = {
        let db = open(dir.path());
        let v1_stored = store_v1(&db);
        db.ensure_table::<v2::Player>().unwrap();
        v1_stored.iter().map(|(&id, p)| (id, migrated(p))).collect()
    };
    let before = files(dir.path());
    assert!(before.contains_key("schema.json"), "{:?}", before.keys());

    for round in 0..2 {
        {
            let db = open(dir.path());
            let e = db.ensure_table::<v3::Player>().unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::SchemaMismatch { .. }), "round {round}: {e:?}");
            assert!(msg.contains("`hp`"), "round {round}: the error names the field: {msg}");
            assert!(msg.contains("u32") && msg.contains("u64"), "round {round}: and both types: {msg}");
            assert!(msg.contains("player"), "round {round}: and the table: {msg}");
            // Nothing changed: not in memory, not on disk.
            assert_eq!(v2_records(&db), expected, "round {round}");
            assert!(db.table::<v3::Player>().is_err());
            assert_eq!(files(dir.path()), before, "round {round}: the refusal wrote nothing");
        }
        assert_eq!(files(dir.path()), before, "round {round}: closing wrote nothing");
    }
    let db = open(dir.path());
    assert_eq!(v2_records(&db), expected);
}

/// A crash at any disk operation of the migration leaves either the old table with its records
/// or the migrated one.
#[test]
fn a_crash_during_the_migration_leaves_the_old_or_the_new_table() {
    let options =
        |disk: &SimStorage| PersistOptions { storage: Arc::new(disk.clone()), ..PersistOptions::default() };
    let open = |disk: &SimStorage| Database::open_with("/db", Config::default(), options(disk));
    // Version 1's data, closed: every byte durable, so each crash image is a copy of it.
    let base = SimStorage::new(1);
    let v1_stored = store_v1(&open(&base).unwrap());
    let migrated_records: BTreeMap<RecordId, v2::Player> =
        v1_stored.iter().map(|(&id, p)| (id, migrated(p))).collect();
    // How many disk operations migrating takes.
    let ops = {
        let disk = base.crash_image();
        let db = open(&disk).unwrap();
        let opened = disk.ops();
        db.ensure_table::<v2::Player>().unwrap();
        assert_eq!(v2_records(&db), migrated_records);
        disk.ops() - opened
    };
    assert!(ops >= 8, "the migration writes a checkpoint and schema.json ({ops} operations)");
    let (mut old, mut new) = (0, 0);
    for k in 1..=ops {
        let what = format!("crash at operation {k} of {ops} of the migration");
        let disk = base.crash_image();
        let db = open(&disk).unwrap();
        disk.inject(disk.ops() + k, Fault::Crash);
        // A crash while removing the replaced checkpoint file, after the migration is durable,
        // is not the migration's failure.
        let acknowledged = db.ensure_table::<v2::Player>().is_ok();
        let image = disk.crash_image();
        drop(db);
        let db = open(&image).unwrap_or_else(|e| panic!("{what}: reopening failed: {e}"));
        match db.table::<v1::Player>() {
            Ok(t) => {
                assert!(!acknowledged, "{what}: the acknowledged migration is lost");
                let records: BTreeMap<RecordId, v1::Player> =
                    db.snapshot().table(t).unwrap().iter().map(|(id, p)| (id, *p)).collect();
                assert_eq!(records, v1_stored, "{what}: the old table");
                old += 1;
            }
            Err(_) => {
                assert_eq!(v2_records(&db), migrated_records, "{what}: the new table");
                new += 1;
            }
        }
        // Either way, version 2 gets its migrated table.
        db.ensure_table::<v2::Player>().unwrap();
        assert_eq!(v2_records(&db), migrated_records, "{what}: migrating after recovery");
    }
    assert!(old > 0 && new > 0, "crashes before and after the migration is durable ({old}, {new})");
}
