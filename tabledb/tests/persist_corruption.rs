//! Corruption of the files in a data directory is detected every time it can be.
//!
//! A closed database on a [`SimStorage`] disk holds two checkpoints (a larger derived table
//! and a small run-time table with a bool and a string), a log of two segments after them, and
//! `schema.json`. Each test copies that disk, damages one file (one flipped bit, or a cut), and
//! reopens it:
//!
//! - a flipped bit anywhere in a checkpoint, a log segment or `schema.json` is refused with an
//!   error naming the file (and for checkpoints and the log, the offset), except in the few
//!   reserved bytes no checksum covers (see [`IGNORED_CHECKPOINT`] and [`IGNORED_SEGMENT`]),
//!   where the data must then be intact, and in the newest log entry, which may instead be cut
//!   off as a torn write (see [`check_log_flip`]);
//! - a checkpoint or `schema.json` cut short is refused;
//! - a log cut inside its newest entry opens, drops only that entry and reports it as a torn
//!   tail; a bad checksum inside the log is refused unless the database is opened with
//!   `salvage`, which starts from the valid prefix and reports where it cut.
//!
//! The log's framing is parsed here from `docs/format.md`, independently of the engine.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use tabledb::persist::{SimStorage, Storage};
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, Error, PersistOptions, RecordId, Table};

const DIR: &str = "/db";
const ITEMS: u64 = 3000;
const TAGS: u64 = 12;
/// Commits in the log after the checkpoints.
const LOG_ENTRIES: usize = 24;
const SEGMENT_HEADER_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 8;
/// Checkpoint header bytes 72..80 are reserved: written as zeros, covered by neither the
/// header checksum (bytes 0..68) nor the body checksum, and never read, so a flip there changes
/// nothing the database uses.
const IGNORED_CHECKPOINT: Range<usize> = 72..80;
/// Log segment header bytes 28..32 are reserved in the same way (the header checksum covers
/// bytes 0..24).
const IGNORED_SEGMENT: Range<usize> = 28..32;

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    marker: u64,
    value: u64,
}

/// Every table's live records.
type State = BTreeMap<String, BTreeMap<u64, Vec<u8>>>;

fn observe(db: &Database) -> State {
    let snap = db.snapshot();
    snap.table_names()
        .map(|name| {
            let rows = snap.raw_table(name).unwrap().iter().map(|(id, b)| (id.0, b.to_vec())).collect();
            (name.to_owned(), rows)
        })
        .collect()
}

fn options(disk: &SimStorage, salvage: bool) -> PersistOptions {
    PersistOptions {
        storage: Arc::new(disk.clone()),
        salvage,
        wal_segment_max_bytes: 1500,
        checkpoint_after_wal_bytes: 0,
        ..PersistOptions::default()
    }
}

fn open(disk: &SimStorage, salvage: bool) -> tabledb::Result<Database> {
    Database::open_with(DIR, Config::default(), options(disk, salvage))
}

fn path(rel: &str) -> PathBuf {
    Path::new(DIR).join(rel)
}

/// One frame of a log segment: where it starts and ends.
#[derive(Debug, Clone, Copy)]
struct Frame {
    start: usize,
    end: usize,
}

/// Splits a segment into frames per `docs/format.md`: a u32 payload length, a u32 CRC32, the
/// payload.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let end = at + FRAME_HEADER_LEN + len;
        assert_eq!(crc32(&bytes[at + FRAME_HEADER_LEN..end]), crc, "an intact frame at {at}");
        out.push(Frame { start: at, end });
        at = end;
    }
    assert_eq!(at, bytes.len(), "frames fill the segment");
    out
}

/// CRC32 (IEEE), bit by bit: slow, independent of the engine's implementation.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A closed database and what it held along the way.
struct Fixture {
    disk: SimStorage,
    /// `states[i]`: the database after the first `i` log entries.
    states: Vec<State>,
    /// Checkpoint files, relative to the data directory: `data/item.<gen>.bin`, ...
    item_checkpoint: String,
    tag_checkpoint: String,
    /// Log segments in log order, relative to the data directory, with their frames.
    segments: Vec<(String, Vec<Frame>)>,
}

impl Fixture {
    fn build() -> Fixture {
        let disk = SimStorage::new(3);
        let db = open(&disk, false).unwrap();
        let items = db.create_table::<Item>().unwrap();
        db.create_table_from_defs(
            "tag",
            &[FieldDef::new("marker", "u64"), FieldDef::new("active", "bool"), FieldDef::string("label", 9)],
        )
        .unwrap();
        let tag_schema = db.snapshot().schema("tag").unwrap().clone();
        let tag = |marker: u64| {
            let row = json!({"marker": marker, "active": marker % 2 == 1, "label": format!("t{marker}")});
            tag_schema.record_from_json(row.as_object().unwrap(), None).unwrap()
        };
        let mut tx = db.begin();
        let item_ids: Vec<RecordId> =
            (0..ITEMS).map(|i| tx.insert(items, &Item { marker: i, value: i * 3 }).unwrap()).collect();
        let tag_ids: Vec<RecordId> = (0..TAGS).map(|i| tx.create_record("tag", &tag(i)).unwrap()).collect();
        tx.commit().unwrap();
        // Holes, so that the checkpoints hold several id runs.
        let mut tx = db.begin();
        for id in [item_ids[5], item_ids[6], item_ids[2000]] {
            tx.delete(items, id).unwrap();
        }
        tx.delete_record("tag", tag_ids[3]).unwrap();
        tx.commit().unwrap();
        assert!(db.checkpoint().unwrap());

        let mut states = vec![observe(&db)];
        for i in 0..LOG_ENTRIES as u64 {
            let marker = 10_000 + i;
            let mut tx = db.begin();
            tx.set(items, item_ids[(i * 7 % ITEMS) as usize], Item::MARKER, marker).unwrap();
            tx.insert(items, &Item { marker, value: i }).unwrap();
            tx.create_record("tag", &tag(marker)).unwrap();
            if i % 5 == 4 {
                tx.delete(items, item_ids[100 + i as usize]).unwrap();
            }
            tx.commit().unwrap();
            states.push(observe(&db));
        }
        drop(db);

        let list = |dir: &str| disk.list(&path(dir)).unwrap();
        let data = list("data");
        assert_eq!(data.len(), 2, "one checkpoint per table: {data:?}");
        let item_checkpoint = format!("data/{}", data.iter().find(|n| n.starts_with("item.")).unwrap());
        let tag_checkpoint = format!("data/{}", data.iter().find(|n| n.starts_with("tag.")).unwrap());
        let segments: Vec<(String, Vec<Frame>)> = list("wal")
            .into_iter()
            .map(|name| {
                let rel = format!("wal/{name}");
                let frames = frames(&disk.file(&path(&rel)).unwrap());
                (rel, frames)
            })
            .collect();
        assert!(segments.len() >= 2, "the log has several segments: {segments:?}");
        assert!(
            segments.iter().all(|(_, f)| f.len() >= 3),
            "each segment holds several entries: {segments:?}"
        );
        let entries: usize = segments.iter().map(|(_, f)| f.len()).sum();
        assert_eq!(entries, LOG_ENTRIES, "one log entry per commit after the checkpoint");
        let fixture = Fixture { disk, states, item_checkpoint, tag_checkpoint, segments };
        let db = open(&fixture.copy(), false).unwrap();
        assert_eq!(observe(&db), fixture.states[LOG_ENTRIES], "the intact copy reopens with everything");
        fixture
    }

    /// A copy of the disk, to damage.
    fn copy(&self) -> SimStorage {
        self.disk.crash_image()
    }

    fn bytes(&self, rel: &str) -> Vec<u8> {
        self.disk.file(&path(rel)).unwrap()
    }

    /// A copy of the disk with `rel` replaced by `bytes`.
    fn with(&self, rel: &str, bytes: Vec<u8>) -> SimStorage {
        let disk = self.copy();
        disk.set_file(&path(rel), bytes);
        disk
    }

    fn all(&self) -> &State {
        &self.states[LOG_ENTRIES]
    }

    /// Log entries in the segments before segment `k`.
    fn entries_before(&self, k: usize) -> usize {
        self.segments[..k].iter().map(|(_, f)| f.len()).sum()
    }
}

fn flipped(bytes: &[u8], offset: usize, bit: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[offset] ^= 1 << bit;
    b
}

/// Opens `disk` and expects a refusal whose message names `file` and, with `offset`, an offset.
fn expect_refused(disk: &SimStorage, file: &str, offset: bool, what: &str) -> String {
    let e = match open(disk, false) {
        Ok(db) => panic!("{what}: opened, with tables {:?}", observe(&db).keys().collect::<Vec<_>>()),
        Err(e) => e,
    };
    let msg = e.to_string();
    assert!(matches!(e, Error::Persistence(_)), "{what}: a persistence error: {e:?}");
    assert!(msg.contains(file), "{what}: the error names {file}: {msg}");
    if offset {
        assert!(msg.contains("offset"), "{what}: the error names an offset: {msg}");
    }
    msg
}

fn expect_intact(disk: &SimStorage, expected: &State, what: &str) {
    let db = open(disk, false).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
    assert!(observe(&db) == *expected, "{what}: the data changed");
}

/// Every offset of a small file; for a larger one its first and last `edge` bytes and a spread
/// of about `spread` offsets between.
fn offsets(len: usize, edge: usize, spread: usize) -> Vec<usize> {
    if len <= 2 * edge + spread {
        return (0..len).collect();
    }
    let mut out: Vec<usize> = (0..edge).collect();
    let step = (len - 2 * edge) / spread;
    out.extend((edge..len - edge).step_by(step.max(1)));
    out.extend(len - edge..len);
    out
}

fn check_checkpoint_flips(f: &Fixture, rel: &str, offsets: &[usize]) {
    let bytes = f.bytes(rel);
    let mut refused = 0;
    for &offset in offsets {
        // Every bit of small files and of headers; one bit, varying, elsewhere.
        let bits: Vec<usize> =
            if bytes.len() < 1024 || offset < 80 { (0..8).collect() } else { vec![offset % 8] };
        for bit in bits {
            let disk = f.with(rel, flipped(&bytes, offset, bit));
            let what = format!("{rel}: bit {bit} of offset {offset} flipped");
            if IGNORED_CHECKPOINT.contains(&offset) {
                expect_intact(&disk, f.all(), &what);
            } else {
                expect_refused(&disk, rel, true, &what);
                refused += 1;
            }
        }
    }
    assert!(refused > offsets.len(), "{rel}: flips were refused ({refused})");
}

#[test]
fn checkpoint_bit_flips_are_refused() {
    let f = Fixture::build();
    let tag = f.bytes(&f.tag_checkpoint);
    assert!(tag.len() < 1024, "the tag checkpoint is small ({} bytes)", tag.len());
    check_checkpoint_flips(&f, &f.tag_checkpoint, &(0..tag.len()).collect::<Vec<_>>());
    let item = f.bytes(&f.item_checkpoint);
    assert!(item.len() > 40_000, "the item checkpoint is large ({} bytes)", item.len());
    check_checkpoint_flips(&f, &f.item_checkpoint, &offsets(item.len(), 96, 400));
}

#[test]
fn truncated_checkpoints_are_refused() {
    let f = Fixture::build();
    for rel in [&f.tag_checkpoint, &f.item_checkpoint] {
        let bytes = f.bytes(rel);
        for len in offsets(bytes.len(), 100, 300) {
            let what = format!("{rel} cut to {len} of {} bytes", bytes.len());
            let msg = expect_refused(&f.with(rel, bytes[..len].to_vec()), rel, false, &what);
            // Where the file ends: its length, or the offset where the header expects more.
            assert!(
                msg.contains(&format!("{len} bytes")) || msg.contains("offset"),
                "{what}: the error says where the file ends: {msg}"
            );
        }
        // Extra bytes are refused too.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 16]);
        expect_refused(&f.with(rel, longer), rel, true, &format!("{rel} with 16 bytes appended"));
    }
}

/// Flips a bit at `offset` of log segment `k` and checks the outcome.
///
/// A flip inside the newest entry of the log (the last frame of the last segment) may be taken
/// for a torn write, which it cannot always be told apart from: a length that now points past
/// the end of the file looks exactly like an entry whose end never reached the disk, and a
/// checksum mismatch at the very end looks like a write torn inside a sector. Recovery may
/// then cut that one entry off, reporting it as a torn tail; everything before it must be
/// intact. Anywhere else, a flip must be refused.
fn check_log_flip(f: &Fixture, k: usize, offset: usize, bit: usize) -> bool {
    let (rel, frames) = &f.segments[k];
    let bytes = f.bytes(rel);
    let disk = f.with(rel, flipped(&bytes, offset, bit));
    let what = format!("{rel}: bit {bit} of offset {offset} flipped");
    if IGNORED_SEGMENT.contains(&offset) {
        expect_intact(&disk, f.all(), &what);
        return false;
    }
    let newest = k + 1 == f.segments.len() && offset >= frames.last().unwrap().start;
    if newest {
        match open(&disk, false) {
            Ok(db) => {
                let report = db.recovery_report().unwrap().clone();
                let start = frames.last().unwrap().start as u64;
                assert_eq!(report.torn_tail, Some((rel.clone(), start)), "{what}: reported as torn");
                assert!(
                    observe(&db) == f.states[LOG_ENTRIES - 1],
                    "{what}: only the newest entry is dropped"
                );
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(rel.as_str()) && msg.contains("offset"), "{what}: {msg}");
            }
        }
        return false;
    }
    expect_refused(&disk, rel, true, &what);
    true
}

#[test]
fn log_bit_flips_are_refused() {
    let f = Fixture::build();
    let mut refused = 0;
    for k in 0..f.segments.len() {
        let len = f.bytes(&f.segments[k].0).len();
        for offset in 0..len {
            // Every bit of the segment header, and of one whole frame; one bit, varying,
            // elsewhere.
            let whole = offset < SEGMENT_HEADER_LEN
                || f.segments[k].1[1].start <= offset && offset < f.segments[k].1[1].end;
            let bits: Vec<usize> = if whole { (0..8).collect() } else { vec![(offset * 5 + k) % 8] };
            for bit in bits {
                refused += check_log_flip(&f, k, offset, bit) as usize;
            }
        }
    }
    assert!(refused > 1000, "flips were refused ({refused})");
}

#[test]
fn torn_log_tail_drops_only_the_newest_entry() {
    let f = Fixture::build();
    let (rel, frames) = f.segments.last().unwrap();
    let bytes = f.bytes(rel);
    let newest = *frames.last().unwrap();
    for len in newest.start + 1..newest.end {
        let disk = f.with(rel, bytes[..len].to_vec());
        let what = format!("{rel} cut to {len} bytes, inside its last entry {newest:?}");
        let db = open(&disk, false).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        let report = db.recovery_report().unwrap().clone();
        assert_eq!(report.torn_tail, Some((rel.clone(), newest.start as u64)), "{what}");
        assert_eq!(report.salvaged_at, None, "{what}");
        assert_eq!(report.log_entries, LOG_ENTRIES as u64 - 1, "{what}");
        assert!(observe(&db) == f.states[LOG_ENTRIES - 1], "{what}: only the newest entry is dropped");
        if len == newest.start + 1 || len + 1 == newest.end {
            // The cut-off tail was repaired: new commits follow the last good entry and survive.
            let items = db.table::<Item>().unwrap();
            let id = db.insert(items, &Item { marker: 7, value: 7 }).unwrap();
            drop(db);
            let db = open(&disk.crash_image(), false).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            assert_eq!(db.recovery_report().unwrap().torn_tail, None, "{what}: the repair was durable");
            let mut expected = f.states[LOG_ENTRIES - 1].clone();
            expected.get_mut("item").unwrap().insert(id.0, Item { marker: 7, value: 7 }.as_bytes().to_vec());
            assert!(observe(&db) == expected, "{what}: the commit after the repair is kept");
        }
    }
}

/// A log cut short earlier than inside its newest entry cannot be told apart from a log whose
/// writer crashed there (nothing on disk records how long it was meant to be), so it opens too:
/// only the entries at and after the cut are dropped, the cut is reported, and the data is the
/// state after the entries before it — never a partial entry.
#[test]
fn log_cut_inside_an_older_entry_of_the_last_segment_keeps_the_prefix() {
    let f = Fixture::build();
    let k = f.segments.len() - 1;
    let (rel, frames) = &f.segments[k];
    let bytes = f.bytes(rel);
    let before = f.entries_before(k);
    for (i, frame) in frames.iter().enumerate() {
        for len in [frame.start + 1, frame.start + FRAME_HEADER_LEN, frame.end - 1] {
            let disk = f.with(rel, bytes[..len].to_vec());
            let what = format!("{rel} cut to {len} bytes, inside entry {i}");
            let db = open(&disk, false).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            let report = db.recovery_report().unwrap().clone();
            assert_eq!(report.torn_tail, Some((rel.clone(), frame.start as u64)), "{what}");
            assert!(observe(&db) == f.states[before + i], "{what}: the entries before the cut are kept");
        }
    }
    // A cut inside the header of the last segment: that segment was being started.
    let disk = f.with(rel, bytes[..SEGMENT_HEADER_LEN - 1].to_vec());
    let db = open(&disk, false).unwrap();
    assert_eq!(db.recovery_report().unwrap().torn_tail, Some((rel.clone(), 0)));
    assert!(observe(&db) == f.states[before]);
}

/// A segment that is not the last one was complete once the next one was started, so a cut
/// inside one of its entries or its header is corruption, not a torn write.
#[test]
fn log_cut_inside_an_older_segment_is_refused() {
    let f = Fixture::build();
    let (rel, frames) = &f.segments[0];
    let bytes = f.bytes(rel);
    let mut lens: Vec<usize> = (1..SEGMENT_HEADER_LEN).collect();
    for frame in frames {
        lens.extend([
            frame.start + 1,
            frame.start + FRAME_HEADER_LEN - 1,
            frame.start + FRAME_HEADER_LEN,
            frame.end - 1,
        ]);
    }
    for len in lens {
        let what = format!("{rel} cut to {len} bytes");
        let msg = expect_refused(&f.with(rel, bytes[..len].to_vec()), rel, false, &what);
        assert!(
            msg.contains(&format!("{len} bytes")) || msg.contains("offset"),
            "{what}: the error says where the file ends: {msg}"
        );
    }
}

#[test]
fn bad_checksum_inside_the_log_refuses_to_open_unless_salvaging() {
    let f = Fixture::build();
    // An entry in the middle of the last segment, and one in the first segment (after which a
    // whole segment is dropped).
    let last = f.segments.len() - 1;
    for (k, i) in [(last, f.segments[last].1.len() / 2), (0, 2)] {
        let (rel, frames) = &f.segments[k];
        let frame = frames[i];
        let bytes = f.bytes(rel);
        let damaged = flipped(&bytes, frame.start + FRAME_HEADER_LEN + 3, 2);
        let disk = f.with(rel, damaged);
        let what = format!("{rel}: entry {i} at offset {} damaged", frame.start);
        let msg = expect_refused(&disk, rel, true, &what);
        assert!(
            msg.contains(&format!("offset {}", frame.start)),
            "{what}: the error names the entry's offset: {msg}"
        );
        assert!(msg.contains("salvage"), "{what}: the error tells how to start anyway: {msg}");
        // Refusing changed nothing: it is refused again.
        expect_refused(&disk, rel, true, &what);

        let db = open(&disk, true).unwrap_or_else(|e| panic!("{what}: salvage refused: {e}"));
        let report = db.recovery_report().unwrap().clone();
        let (file, offset, problem) =
            report.salvaged_at.clone().unwrap_or_else(|| panic!("{what}: {report:?}"));
        assert_eq!((file.as_str(), offset), (rel.as_str(), frame.start as u64), "{what}");
        assert!(problem.contains("checksum"), "{what}: {problem}");
        assert_eq!(report.torn_tail, None, "{what}");
        let kept = f.entries_before(k) + i;
        assert_eq!(report.log_entries, kept as u64, "{what}");
        assert!(observe(&db) == f.states[kept], "{what}: the valid prefix is kept");

        // The salvaged database takes writes; it then opens without salvage.
        let items = db.table::<Item>().unwrap();
        let id = db.insert(items, &Item { marker: 99, value: 99 }).unwrap();
        drop(db);
        let db = open(&disk.crash_image(), false).unwrap_or_else(|e| panic!("{what}: after salvage: {e}"));
        let mut expected = f.states[kept].clone();
        expected.get_mut("item").unwrap().insert(id.0, Item { marker: 99, value: 99 }.as_bytes().to_vec());
        assert!(observe(&db) == expected, "{what}: the commit after salvage is kept");
    }
}

#[test]
fn schema_json_bit_flips_and_cuts_are_refused() {
    let f = Fixture::build();
    let bytes = f.bytes("schema.json");
    assert!(bytes.len() < 8192, "schema.json is small ({} bytes)", bytes.len());
    assert_eq!(bytes.last(), Some(&b'\n'));
    for offset in 0..bytes.len() {
        for bit in [offset % 8, (offset + 3) % 8] {
            let what =
                format!("schema.json: bit {bit} of offset {offset} (`{}`) flipped", bytes[offset] as char);
            expect_refused(&f.with("schema.json", flipped(&bytes, offset, bit)), "schema.json", false, &what);
        }
    }
    for len in 0..bytes.len() - 1 {
        let what = format!("schema.json cut to {len} bytes");
        expect_refused(&f.with("schema.json", bytes[..len].to_vec()), "schema.json", false, &what);
    }
    // Only the final newline may go: it is whitespace after the document.
    expect_intact(
        &f.with("schema.json", bytes[..bytes.len() - 1].to_vec()),
        f.all(),
        "schema.json without its newline",
    );
}

mod torn_big_entries {
    //! A crash while a big commit is being appended leaves its entry cut short; whatever its
    //! records hold (here, bytes that look like entry headers), the directory opens and the
    //! entry is cut off.

    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use tabledb::persist::{SimStorage, Storage};
    use tabledb::{Config, Database, Durability, PersistOptions, Table};

    #[derive(Table, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Sample {
        a: u32,
        b: u32,
        c: u64,
        d: u32,
        e: u32,
    }

    fn options(sim: &SimStorage) -> PersistOptions {
        PersistOptions {
            durability: Durability::Tick,
            flush_interval: Duration::from_secs(3600),
            checkpoint_after_wal_bytes: 0,
            storage: Arc::new(sim.clone()),
            ..PersistOptions::default()
        }
    }

    /// Cuts the newest log segment of `sim` to `keep(len)` bytes.
    fn tear(sim: &SimStorage, keep: impl Fn(usize) -> usize) {
        let wal = Path::new("/db/wal");
        let mut segments: Vec<String> =
            sim.list(wal).unwrap().into_iter().filter(|n| n.ends_with(".log")).collect();
        segments.sort();
        let path = wal.join(segments.last().unwrap());
        let bytes = sim.file(&path).unwrap();
        sim.set_file(&path, bytes[..keep(bytes.len())].to_vec());
    }

    #[test]
    fn a_big_entry_torn_anywhere_is_cut_off() {
        for (records, keep) in [(4000u32, 1000usize), (4000, 50_000), (40_000, 2)] {
            let sim = SimStorage::new(3);
            let db = Database::open_with("/db", Config::default(), options(&sim)).unwrap();
            let t = db.create_table::<Sample>().unwrap();
            db.insert(t, &Sample { a: 1, b: 2, c: 3, d: 4, e: 5 }).unwrap();
            let mut tx = db.begin();
            for i in 0..records {
                // Record bytes that read as a frame length of about 16 MB and a sequence
                // number above every real one.
                tx.insert(t, &Sample { a: 100_000 + i, b: 0, c: 1 << 40, d: 0, e: 0 }).unwrap();
            }
            tx.commit().unwrap();
            let image = sim.crash_image();
            drop(db);
            tear(&image, |n| n / keep.max(2) * (keep.max(2) - 1));
            let db = Database::open_with("/db", Config::default(), options(&image))
                .unwrap_or_else(|e| panic!("{records} records, torn: the entry must be cut off: {e}"));
            assert_eq!(db.snapshot().len("sample").unwrap(), 1);
            assert!(db.recovery_report().unwrap().torn_tail.is_some());
        }
    }
}
