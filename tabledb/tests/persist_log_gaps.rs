//! A log segment missing from the log (deleted, or lost because its directory entry never
//! reached the disk) is an error naming the segment after the gap, not acknowledged commits
//! silently skipped; with salvage, the database starts from the part before the gap.

use std::path::Path;
use std::sync::Arc;

use tabledb::persist::{SimStorage, Storage};
use tabledb::{Config, Database, Durability, PersistOptions, RecordId, Table};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    value: u64,
}

fn opts(s: &SimStorage, salvage: bool) -> PersistOptions {
    PersistOptions {
        durability: Durability::Tick,
        storage: Arc::new(s.clone()),
        wal_segment_max_bytes: 256,
        checkpoint_after_wal_bytes: 0,
        salvage,
        ..PersistOptions::default()
    }
}

/// 40 acknowledged inserts, a schema change in the middle (which takes a sequence number but
/// writes no log entry), over several small segments; the crash image and its segments.
fn written() -> (SimStorage, Vec<String>) {
    let disk = SimStorage::new(1);
    {
        let db = Database::open_with("/db", Config::default(), opts(&disk, false)).unwrap();
        let items = db.create_table::<Item>().unwrap();
        for v in 0..40u64 {
            if v == 20 {
                db.create_table_from_defs("other", &[tabledb::schema::FieldDef::new("x", "u8")]).unwrap();
            }
            db.insert(items, &Item { value: v }).unwrap();
        }
    }
    let image = disk.crash_image();
    let mut segments = image.list(Path::new("/db/wal")).unwrap();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    (image, segments)
}

fn count(db: &Database) -> usize {
    let t = db.table::<Item>().unwrap();
    let snap = db.snapshot();
    (1..=40u64).filter(|&i| snap.get(t, RecordId(i)).is_some()).count()
}

#[test]
fn every_segment_present_opens_with_every_record() {
    let (image, _) = written();
    let db = Database::open_with("/db", Config::default(), opts(&image, false)).unwrap();
    assert_eq!(count(&db), 40);
}

#[test]
fn a_missing_segment_in_the_middle_is_an_error_naming_the_next() {
    for victim in [1, 2] {
        let (image, segments) = written();
        image.remove(&Path::new("/db/wal").join(&segments[victim])).unwrap();
        image.sync_dir(Path::new("/db/wal")).unwrap();
        let err = match Database::open_with("/db", Config::default(), opts(&image, false)) {
            Err(e) => e.to_string(),
            Ok(db) => panic!("opened with wal/{} missing: {} of 40 records", segments[victim], count(&db)),
        };
        assert!(err.contains(&segments[victim + 1]) && err.contains("missing"), "{err}");
        // Salvage starts from the segments before the gap, and says where it cut.
        let db = Database::open_with("/db", Config::default(), opts(&image, true)).unwrap();
        let n = count(&db);
        assert!(n > 0 && n < 40, "{n} records after salvage");
        let report = db.recovery_report().expect("recovered");
        let (at, _, problem) = report.salvaged_at.as_ref().expect("salvage reported");
        assert!(at.contains(&segments[victim + 1]) && problem.contains("missing"), "{at}: {problem}");
    }
}

#[test]
fn a_missing_first_segment_is_an_error() {
    let (image, segments) = written();
    image.remove(&Path::new("/db/wal").join(&segments[0])).unwrap();
    image.sync_dir(Path::new("/db/wal")).unwrap();
    let err = Database::open_with("/db", Config::default(), opts(&image, false))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&segments[1]) && err.contains("missing"), "{err}");
}
