//! Data directories whose files have valid checksums but hostile or inconsistent content.
//!
//! `Database::open` must either succeed with a consistent database or refuse with
//! `Error::Persistence` naming the file and the problem: never panic, abort, hang, take far
//! more than linear time, or accept a state that fails later. The helpers below write
//! `schema.json` (with its checksum), checkpoint files and log segments as `docs/format.md`
//! describes them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tabledb::types::{MemberDef, TypeDef, TypeRegistry};
use tabledb::{Config, Database, Error, PersistOptions};

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

/// Writes schema.json with a correct checksum (compact JSON, keys in order, checksum 0).
fn write_schema(dir: &Path, mut m: Value) {
    m["checksum"] = json!(0);
    let sum = crc(&serde_json::to_vec(&m).unwrap());
    m["checksum"] = json!(sum);
    std::fs::write(dir.join("schema.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn manifest(
    seq: u64,
    generation: u64,
    next_table_id: u32,
    next_rel: u64,
    tables: Value,
    relations: Value,
) -> Value {
    json!({
        "format_version": 1, "seq": seq, "generation": generation,
        "next_table_id": next_table_id, "next_relation_id": next_rel,
        "types": [], "tables": tables, "relations": relations, "checksum": 0
    })
}

/// A checkpoint file; returns (bytes, body crc).
fn checkpoint(
    table_id: u32,
    rs: u64,
    count: u64,
    records: &[u8],
    runs: &[(u64, u64)],
    next_id: u64,
    seq: u64,
) -> (Vec<u8>, u32) {
    let mut body = records.to_vec();
    for (f, l) in runs {
        body.extend_from_slice(&f.to_le_bytes());
        body.extend_from_slice(&l.to_le_bytes());
    }
    let body_crc = crc(&body);
    let mut h = [0u8; 80];
    h[0..8].copy_from_slice(b"TDBCKPT\0");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[12..16].copy_from_slice(&80u32.to_le_bytes());
    h[16..20].copy_from_slice(&table_id.to_le_bytes());
    h[24..32].copy_from_slice(&rs.to_le_bytes());
    h[32..40].copy_from_slice(&count.to_le_bytes());
    h[40..48].copy_from_slice(&(runs.len() as u64).to_le_bytes());
    h[48..56].copy_from_slice(&next_id.to_le_bytes());
    h[56..64].copy_from_slice(&seq.to_le_bytes());
    h[64..68].copy_from_slice(&body_crc.to_le_bytes());
    let hc = crc(&h[0..68]);
    h[68..72].copy_from_slice(&hc.to_le_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(&body);
    (out, body_crc)
}

fn ckpt_entry(file: &str, generation: u64, seq: u64, records: u64, crc32: u32, bytes: usize) -> Value {
    json!({"file": file, "generation": generation, "seq": seq, "records": records, "crc32": crc32, "bytes": bytes})
}

fn u32_table(id: u32, name: &str, ckpt: Option<Value>) -> Value {
    let mut t = json!({"id": id, "name": name, "fields": [{"name": "v", "type": "u32"}],
        "record_size": 4, "version": 1, "created_seq": 1});
    if let Some(c) = ckpt {
        t["checkpoint"] = c;
    }
    t
}

/// Tables `p` (id 1, a u32) and `c` (id 2, a u64 `owner`).
fn parent_child() -> Value {
    json!([
        {"id": 1, "name": "p", "fields": [{"name": "v", "type": "u32"}], "record_size": 4, "version": 1, "created_seq": 1},
        {"id": 2, "name": "c", "fields": [{"name": "owner", "type": "u64"}], "record_size": 8, "version": 1, "created_seq": 1}
    ])
}

fn relation(id: u64, name: &str) -> Value {
    json!({"id": id, "name": name, "from_table": "c", "from_field": "owner", "to_table": "p", "to_field": "id"})
}

fn segment(first_seq: u64, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut h = [0u8; 32];
    h[0..8].copy_from_slice(b"TDBWAL\0\0");
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let c = crc(&h[0..24]);
    h[24..28].copy_from_slice(&c.to_le_bytes());
    let mut out = h.to_vec();
    for p in frames {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc(p).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// A commit with puts (table, id, bytes).
fn commit(seq: u64, puts: &[(u32, u64, &[u8])]) -> Vec<u8> {
    let mut p = seq.to_le_bytes().to_vec();
    p.extend_from_slice(&(puts.len() as u32).to_le_bytes());
    for (t, id, b) in puts {
        p.push(1);
        p.extend_from_slice(&t.to_le_bytes());
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&(b.len() as u32).to_le_bytes());
        p.extend_from_slice(b);
    }
    p
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Opens with `config`, expecting a refusal: `Error::Persistence` whose message contains every
/// one of `words`. Returns the message.
fn refused_with(dir: &Path, config: Config, words: &[&str]) -> String {
    let r = catch_unwind(AssertUnwindSafe(|| Database::open_with(dir, config, PersistOptions::default())));
    match r {
        Err(p) => panic!("open panicked: {}", panic_message(p)),
        Ok(Ok(_)) => panic!("open accepted the directory; expected an error mentioning {words:?}"),
        Ok(Err(Error::Persistence(msg))) => {
            for w in words {
                assert!(msg.contains(w), "the error `{msg}` does not mention `{w}`");
            }
            msg
        }
        Ok(Err(other)) => panic!("expected Error::Persistence, got {other:?}"),
    }
}

fn refused(dir: &Path, words: &[&str]) -> String {
    refused_with(dir, Config::default(), words)
}

// ---- checkpoints ----

#[test]
fn checkpoint_id_run_of_huge_length_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (bytes, c) = checkpoint(1, 4, 0, &[], &[(1, 1 << 62)], u64::MAX, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, 0, c, bytes.len())));
    write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
    refused(d.path(), &["data/t.1.bin", "id run"]);
}

#[test]
fn checkpoint_id_run_past_the_id_space_is_refused() {
    let d = tempfile::tempdir().unwrap();
    // A run whose end overflows: the last id would be u64::MAX, leaving no next id.
    for run in [(u64::MAX, 1), (u64::MAX - 1, 2), (2, u64::MAX - 1)] {
        let (bytes, c) = checkpoint(1, 4, 1, &7u32.to_le_bytes(), &[run], u64::MAX, 1);
        write(d.path(), "data/t.1.bin", &bytes);
        let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, 1, c, bytes.len())));
        write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
        refused(d.path(), &["data/t.1.bin", "id run"]);
    }
}

#[test]
fn checkpoint_with_the_highest_record_id_opens_and_refuses_new_ids() {
    let d = tempfile::tempdir().unwrap();
    let (bytes, c) = checkpoint(1, 4, 1, &7u32.to_le_bytes(), &[(u64::MAX - 1, 1)], u64::MAX, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, 1, c, bytes.len())));
    write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
    let db = Database::open(d.path()).unwrap();
    assert_eq!(db.snapshot().len("t").unwrap(), 1);
    match db.create_record("t", &1u32.to_le_bytes()) {
        Err(Error::LimitReached { .. }) => {}
        other => panic!("expected LimitReached for a table whose ids are used up, got {other:?}"),
    }
}

#[test]
fn checkpoint_generation_above_schema_generation_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (bytes, c) = checkpoint(1, 4, 1, &7u32.to_le_bytes(), &[(1, 1)], 2, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, 1, c, bytes.len())));
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([t]), json!([])));
    refused(d.path(), &["schema.json", "`t`", "generation"]);
    // Untouched.
    assert_eq!(std::fs::read(d.path().join("data/t.1.bin")).unwrap(), bytes);
}

#[test]
fn checkpoint_records_and_bytes_must_match_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (bytes, c) = checkpoint(1, 4, 1, &7u32.to_le_bytes(), &[(1, 1)], 2, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    for (records, len) in [(12345, bytes.len()), (1, 999_999), (0, bytes.len())] {
        let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, records, c, len)));
        write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
        refused(d.path(), &["data/t.1.bin", "schema.json"]);
    }
    // The right numbers open.
    let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, 1, 1, c, bytes.len())));
    write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
    assert_eq!(Database::open(d.path()).unwrap().snapshot().len("t").unwrap(), 1);
}

// ---- the log ----

#[test]
fn log_put_of_record_id_u64_max_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let seg = segment(2, &[commit(2, &[(1, u64::MAX, &7u32.to_le_bytes())])]);
    write(d.path(), "wal/00000000000000000002.log", &seg);
    refused(d.path(), &["wal/00000000000000000002.log", "record id"]);
}

#[test]
fn log_put_of_the_highest_record_id_opens() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let seg = segment(2, &[commit(2, &[(1, u64::MAX - 1, &7u32.to_le_bytes())])]);
    write(d.path(), "wal/00000000000000000002.log", &seg);
    let db = Database::open(d.path()).unwrap();
    assert_eq!(db.snapshot().len("t").unwrap(), 1);
    assert!(matches!(db.create_record("t", &1u32.to_le_bytes()), Err(Error::LimitReached { .. })));
}

#[test]
fn log_sequence_numbers_near_the_maximum_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let seg = segment(2, &[commit(u64::MAX, &[(1, 1, &7u32.to_le_bytes())])]);
    write(d.path(), "wal/00000000000000000002.log", &seg);
    refused(d.path(), &["wal/00000000000000000002.log", "sequence number"]);
}

/// A torn-looking first frame followed by 4 MiB in which every 4th offset reads as a 1 MiB
/// frame: the search for a valid entry after the torn one must stay near linear.
#[test]
fn search_after_a_torn_entry_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let mut seg = segment(2, &[commit(2, &[(1, 1, &7u32.to_le_bytes())])]);
    seg.extend_from_slice(&0x3FFF_FFFFu32.to_le_bytes()); // longer than the file
    seg.extend_from_slice(&0u32.to_le_bytes());
    for _ in 0..(4 << 20) / 4 {
        seg.extend_from_slice(&[0, 0, 0x10, 0]);
    }
    write(d.path(), "wal/00000000000000000002.log", &seg);
    let path = d.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let r = Database::open(&path).map(|db| db.snapshot().len("t").unwrap());
        let _ = tx.send(r);
    });
    let r = rx.recv_timeout(Duration::from_secs(60)).expect("open still running after 60 s");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "open of a 4 MiB segment took {took:?}");
    // Either cut off as torn (the one good entry kept) or refused as damage; never anything
    // else.
    match r {
        Ok(n) => assert_eq!(n, 1),
        Err(Error::Persistence(msg)) => assert!(msg.contains("wal/00000000000000000002.log"), "{msg}"),
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// The same shape with frame lengths that all fit: every offset is a candidate entry.
#[test]
fn search_after_a_torn_entry_with_fitting_lengths_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let mut seg = segment(2, &[]);
    seg.extend_from_slice(&0x3FFF_FFFFu32.to_le_bytes());
    seg.extend_from_slice(&0u32.to_le_bytes());
    // Length 64 KiB, then a payload header that looks right: seq 3, zero operations.
    let mut unit = Vec::new();
    unit.extend_from_slice(&(64u32 << 10).to_le_bytes());
    unit.extend_from_slice(&0u32.to_le_bytes());
    unit.extend_from_slice(&3u64.to_le_bytes());
    unit.extend_from_slice(&0u32.to_le_bytes());
    while seg.len() < (4 << 20) {
        seg.extend_from_slice(&unit);
    }
    write(d.path(), "wal/00000000000000000002.log", &seg);
    let start = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| Database::open(d.path())));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "open of a 4 MiB segment took {took:?}");
    match r {
        Err(p) => panic!("open panicked: {}", panic_message(p)),
        Ok(Ok(db)) => assert_eq!(db.snapshot().len("t").unwrap(), 0),
        Ok(Err(Error::Persistence(msg))) => assert!(msg.contains("wal/00000000000000000002.log"), "{msg}"),
        Ok(Err(e)) => panic!("unexpected error {e:?}"),
    }
}

// ---- schema.json numbers ----

#[test]
fn schema_generation_u64_max_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, u64::MAX, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    refused(d.path(), &["schema.json", "generation"]);
}

#[test]
fn schema_sequence_numbers_u64_max_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(u64::MAX, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    refused(d.path(), &["schema.json", "seq"]);

    let mut t = u32_table(1, "t", None);
    t["created_seq"] = json!(u64::MAX);
    write_schema(d.path(), manifest(1, 0, 1, 0, json!([t]), json!([])));
    refused(d.path(), &["schema.json", "created_seq"]);

    let (bytes, c) = checkpoint(1, 4, 1, &7u32.to_le_bytes(), &[(1, 1)], 2, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    let t = u32_table(1, "t", Some(ckpt_entry("t.1.bin", 1, u64::MAX - 1, 1, c, bytes.len())));
    write_schema(d.path(), manifest(1, 1, 1, 0, json!([t]), json!([])));
    refused(d.path(), &["schema.json", "seq"]);
}

#[test]
fn schema_sequence_number_near_the_limit_opens_and_commits() {
    let d = tempfile::tempdir().unwrap();
    // The maximum is u64::MAX / 2; a directory just below it opens and keeps working.
    let seq = u64::MAX / 2 - 100;
    write_schema(d.path(), manifest(seq, 0, 1, 0, json!([u32_table(1, "t", None)]), json!([])));
    let db = Database::open(d.path()).unwrap();
    db.create_record("t", &1u32.to_le_bytes()).unwrap();
    db.checkpoint().unwrap();
    drop(db);
    let db = Database::open(d.path()).unwrap();
    assert_eq!(db.snapshot().len("t").unwrap(), 1);
}

#[test]
fn schema_next_relation_id_u64_max_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 2, u64::MAX, parent_child(), json!([])));
    refused(d.path(), &["schema.json", "next_relation_id"]);
}

// ---- schema.json consistency ----

#[test]
fn duplicate_relation_names_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 2, 2, parent_child(), json!([relation(1, "r"), relation(2, "r")])));
    refused(d.path(), &["schema.json", "`r`"]);
}

#[test]
fn loaded_data_violating_a_relation_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 2, 1, parent_child(), json!([relation(1, "c_owner")])));
    let seg = segment(2, &[commit(2, &[(2, 1, &999u64.to_le_bytes())])]);
    write(d.path(), "wal/00000000000000000002.log", &seg);
    refused(d.path(), &["c_owner", "record 1", "999"]);

    // With the parent present it opens.
    let seg = segment(2, &[commit(2, &[(1, 999, &5u32.to_le_bytes()), (2, 1, &999u64.to_le_bytes())])]);
    write(d.path(), "wal/00000000000000000002.log", &seg);
    let db = Database::open(d.path()).unwrap();
    assert_eq!(db.snapshot().len("c").unwrap(), 1);
}

#[test]
fn checkpointed_data_violating_a_field_relation_is_refused() {
    let d = tempfile::tempdir().unwrap();
    // p.v (u32) is referred to by c.owner... as a field relation both must have one type, so
    // use a u32 `key` in both.
    let tables = json!([
        {"id": 1, "name": "p", "fields": [{"name": "key", "type": "u32"}], "record_size": 4, "version": 1, "created_seq": 1},
        {"id": 2, "name": "c", "fields": [{"name": "key", "type": "u32"}], "record_size": 4, "version": 1, "created_seq": 1}
    ]);
    let rel = json!([{"id": 1, "name": "c_key", "from_table": "c", "from_field": "key", "to_table": "p", "to_field": "key"}]);
    let (bytes, c) = checkpoint(2, 4, 1, &42u32.to_le_bytes(), &[(1, 1)], 2, 1);
    write(d.path(), "data/c.1.bin", &bytes);
    let mut t = tables.clone();
    t[1]["checkpoint"] = ckpt_entry("c.1.bin", 1, 1, 1, c, bytes.len());
    write_schema(d.path(), manifest(1, 1, 2, 1, t, rel));
    refused(d.path(), &["c_key", "record 1"]);
}

// ---- limits and the cost of types ----

fn many_types(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|k| json!({"name": format!("x{k}"), "members": [{"name": "a", "type": "u8", "offset": 0}], "size": 1, "align": 1}))
            .collect(),
    )
}

#[test]
fn opening_many_types_takes_linear_time() {
    let n = 20_000;
    let d = tempfile::tempdir().unwrap();
    let mut m = manifest(1, 0, 0, 0, json!([]), json!([]));
    m["types"] = many_types(n);
    write_schema(d.path(), m);
    let config = Config { max_types: n, ..Config::default() };
    let start = Instant::now();
    let db = Database::open_with(d.path(), config, PersistOptions::default()).unwrap();
    let took = start.elapsed();
    drop(db);
    assert!(took < Duration::from_secs(8), "opening {n} types took {took:?}");
}

#[test]
fn stored_schema_over_the_configured_limits_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut m = manifest(1, 0, 0, 0, json!([]), json!([]));
    m["types"] = many_types(11);
    write_schema(d.path(), m);
    refused_with(d.path(), Config { max_types: 10, ..Config::default() }, &["schema.json", "types", "10"]);
    Database::open_with(d.path(), Config { max_types: 11, ..Config::default() }, PersistOptions::default())
        .unwrap();

    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 2, 0, parent_child(), json!([])));
    refused_with(d.path(), Config { max_tables: 1, ..Config::default() }, &["schema.json", "tables", "1"]);
    refused_with(
        d.path(),
        Config { max_fields_per_table: 0, ..Config::default() },
        &["schema.json", "`p`", "fields of one table"],
    );

    let d = tempfile::tempdir().unwrap();
    write_schema(d.path(), manifest(1, 0, 2, 2, parent_child(), json!([relation(1, "a"), relation(2, "b")])));
    refused_with(
        d.path(),
        Config { max_relations: 1, ..Config::default() },
        &["schema.json", "relations", "1"],
    );
    Database::open_with(
        d.path(),
        Config { max_relations: 2, ..Config::default() },
        PersistOptions::default(),
    )
    .unwrap();
}

fn chain_types(n: usize) -> Value {
    let mut types = vec![
        json!({"name": "t0", "members": [{"name": "a", "type": "bool", "offset": 0}], "size": 1, "align": 1}),
    ];
    for k in 1..n {
        types.push(json!({"name": format!("t{k}"), "members": [{"name": "a", "type": format!("t{}", k - 1), "offset": 0}], "size": 1, "align": 1}));
    }
    Value::Array(types)
}

#[test]
fn deeply_nested_types_are_refused_at_open() {
    let n = 3000;
    let d = tempfile::tempdir().unwrap();
    let (bytes, c) = checkpoint(1, 1, 1, &[1u8], &[(1, 1)], 2, 1);
    write(d.path(), "data/t.1.bin", &bytes);
    let table = json!({"id": 1, "name": "t", "fields": [{"name": "v", "type": format!("t{}", n - 1)}],
        "record_size": 1, "version": 1, "created_seq": 1, "checkpoint": ckpt_entry("t.1.bin", 1, 1, 1, c, bytes.len())});
    let mut m = manifest(1, 1, 1, 0, json!([table]), json!([]));
    m["types"] = chain_types(n);
    write_schema(d.path(), m);
    refused_with(d.path(), Config { max_types: n, ..Config::default() }, &["schema.json", "nest"]);

    // Types alone.
    let d = tempfile::tempdir().unwrap();
    let mut m = manifest(1, 0, 0, 0, json!([]), json!([]));
    m["types"] = chain_types(n);
    write_schema(d.path(), m);
    refused_with(d.path(), Config { max_types: n, ..Config::default() }, &["schema.json", "nest"]);
}

#[test]
fn nesting_depth_is_limited_when_registering() {
    let limit = TypeRegistry::MAX_NESTING_DEPTH;
    let mut reg = TypeRegistry::new();
    reg.register_type(TypeDef::new("t1", [MemberDef::new("a", "bool")])).unwrap();
    for k in 2..=limit {
        reg.register_type(TypeDef::new(format!("t{k}"), [MemberDef::new("a", format!("t{}", k - 1))]))
            .unwrap();
    }
    let too_deep = TypeDef::new(format!("t{}", limit + 1), [MemberDef::new("a", format!("t{limit}"))]);
    assert!(reg.register_type(too_deep).is_err());
    // Arrays count too.
    assert!(reg.resolve(&format!("t{limit}[2]")).is_err());
    assert!(reg.resolve(&format!("t{}[2]", limit - 1)).is_ok());
    let via_array = TypeDef::new("w", [MemberDef::new("a", format!("t{}[2]", limit - 1))]);
    assert!(reg.register_type(via_array).is_err());
    // A refused definition leaves nothing behind.
    assert!(reg.get_by_name(&format!("t{limit}[2]")).is_none());

    // Within the limit, a database with such a table round-trips through a checkpoint.
    let d = tempfile::tempdir().unwrap();
    let db = Database::open(d.path()).unwrap();
    db.register_type(TypeDef::new("t1", [MemberDef::new("a", "bool")])).unwrap();
    for k in 2..limit {
        db.register_type(TypeDef::new(format!("t{k}"), [MemberDef::new("a", format!("t{}", k - 1))]))
            .unwrap();
    }
    assert!(
        db.register_type(TypeDef::new(
            format!("t{limit}"),
            [MemberDef::new("a", format!("t{}[1]", limit - 1))]
        ))
        .is_err()
    );
    db.create_table_from_defs("t", &[tabledb::schema::FieldDef::new("v", format!("t{}", limit - 1))])
        .unwrap();
    db.create_record("t", &[1u8]).unwrap();
    db.checkpoint().unwrap();
    drop(db);
    let db = Database::open(d.path()).unwrap();
    assert_eq!(db.snapshot().len("t").unwrap(), 1);
}

#[test]
fn a_refused_type_leaves_no_strings_or_arrays_behind() {
    let mut reg = TypeRegistry::new();
    let bad = TypeDef::new(
        "bad",
        [MemberDef::new("s", "string(77)"), MemberDef::new("a", "u16[9]"), MemberDef::new("x", "nope")],
    );
    assert!(reg.register_type(bad).is_err());
    assert!(reg.get_by_name("string(77)").is_none());
    assert!(reg.get_by_name("u16[9]").is_none());
    assert!(reg.get_by_name("bad").is_none());
    let good = TypeDef::new("good", [MemberDef::new("s", "string(77)"), MemberDef::new("a", "u16[9]")]);
    reg.register_type(good).unwrap();
    assert!(reg.get_by_name("string(77)").is_some());
    assert_eq!(reg.composites().count(), 1);
}
