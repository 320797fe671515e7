//! Simulated crashes against a reference model.
//!
//! A seeded workload runs on a [`SimStorage`] disk: two tables (one derived, one created at run
//! time with a bool and a string), transactions of creates, whole and partial updates and
//! deletes across both (some starting with a parallel update of the whole item table), checkpoints, compactions, explicit syncs and one `add_field`. A model
//! of both tables is kept after every step. A full run counts the disk's mutating operations;
//! then the workload runs again with a crash injected at operation k, for k across that whole
//! range, the disk a machine would find after power loss is taken (`crash_image`: only durable
//! bytes, plus a torn tail), reopened, and compared with the model:
//!
//! - with `Durability::Tick`, the recovered state is the model after every acknowledged step
//!   (a step whose call returned `Ok`), or after the step in flight at the crash: nothing
//!   acknowledged is lost, nothing is half applied;
//! - with `Durability::Async`, it is the model after *some* prefix of the steps, no shorter than
//!   the last explicit sync, checkpoint or schema change that returned `Ok`: never a gap.
//!
//! Independently of the model, every transaction writes its unique marker into a record of
//! each table, so a recovered state in which the newest marker of one table differs from the
//! newest marker of the other shows a transaction applied to one table only.
//!
//! After each recovery the database must accept a new commit that survives another crash, and
//! hand out record ids above every id the recovered history used.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tabledb::persist::{Fault, SimStorage};
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, Durability, Error, PersistOptions, RecordId, Table};

const DIR: &str = "/db";
/// Steps of the workload; the numbered special steps below fall inside it.
const STEPS: usize = 400;
const CHECKPOINT_EVERY: usize = 37;
const SYNC_EVERY: usize = 9;
const COMPACT_ITEM_AT: usize = 161;
const ADD_FIELD_AT: usize = 200;
const COMPACT_TAG_AT: usize = 327;
/// Crash runs per durability mode at most; the crash points are spread over every operation.
const CRASH_RUNS_MAX: u64 = 1100;
const WORKLOAD_SEED: u64 = 0x5eed_c0de;
const LABEL_CAP: usize = 12;

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    marker: u64,
    value: u64,
    count: u32,
    flag: u32,
}

fn tag_defs() -> Vec<FieldDef> {
    vec![
        FieldDef::new("marker", "u64"),
        FieldDef::new("active", "bool"),
        FieldDef::string("label", LABEL_CAP),
    ]
}

/// splitmix64: a small deterministic generator, so a seed names one workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick(&mut self, ids: &[u64]) -> u64 {
        ids[self.below(ids.len() as u64) as usize]
    }

    fn label(&mut self) -> String {
        let len = self.below(LABEL_CAP as u64 + 1) as usize;
        (0..len).map(|_| (b'a' + self.below(26) as u8) as char).collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
struct TagModel {
    fields: Vec<String>,
    rows: BTreeMap<u64, Map<String, Value>>,
}

/// What the database holds: each table, when it exists.
#[derive(Clone, Debug, PartialEq, Default)]
struct Model {
    item: Option<BTreeMap<u64, Item>>,
    tag: Option<TagModel>,
}

impl Model {
    /// The newest transaction marker in each table (0 when it holds none).
    fn markers(&self) -> (u64, u64) {
        let item = self.item.iter().flat_map(|t| t.values()).map(|r| r.marker).max().unwrap_or(0);
        let tag = self
            .tag
            .iter()
            .flat_map(|t| t.rows.values())
            .map(|r| r["marker"].as_u64().expect("markers are u64"))
            .max()
            .unwrap_or(0);
        (item, tag)
    }

    fn max_ids(&self) -> (u64, u64) {
        let item = self.item.iter().flat_map(|t| t.keys()).copied().max().unwrap_or(0);
        let tag = self.tag.iter().flat_map(|t| t.rows.keys()).copied().max().unwrap_or(0);
        (item, tag)
    }
}

/// Everything the database shows, in the model's terms.
fn observe(db: &Database) -> Model {
    let snap = db.snapshot();
    let item = snap.table_id("item").map(|_| {
        let t = db.table::<Item>().expect("the item table matches its type");
        snap.table(t).unwrap().iter().map(|(id, r)| (id.0, *r)).collect()
    });
    let tag = snap.table_id("tag").map(|_| {
        let raw = snap.raw_table("tag").unwrap();
        let schema = raw.schema();
        TagModel {
            fields: schema.fields.iter().map(|f| f.name.clone()).collect(),
            rows: raw.iter().map(|(id, b)| (id.0, schema.record_to_json(b).unwrap())).collect(),
        }
    });
    Model { item, tag }
}

/// A short account of how two states differ, for failure messages.
fn diff(expected: &Model, actual: &Model) -> String {
    let mut out = Vec::new();
    match (&expected.item, &actual.item) {
        (Some(e), Some(a)) => {
            for id in e.keys().chain(a.keys()) {
                if e.get(id) != a.get(id) {
                    out.push(format!("item {id}: expected {:?}, found {:?}", e.get(id), a.get(id)));
                }
            }
        }
        (e, a) => {
            if e.is_some() != a.is_some() {
                out.push(format!("item table: expected {}, found {}", e.is_some(), a.is_some()))
            }
        }
    }
    match (&expected.tag, &actual.tag) {
        (Some(e), Some(a)) => {
            if e.fields != a.fields {
                out.push(format!("tag fields: expected {:?}, found {:?}", e.fields, a.fields));
            }
            for id in e.rows.keys().chain(a.rows.keys()) {
                if e.rows.get(id) != a.rows.get(id) {
                    out.push(format!("tag {id}: expected {:?}, found {:?}", e.rows.get(id), a.rows.get(id)));
                }
            }
        }
        (e, a) => {
            if e.is_some() != a.is_some() {
                out.push(format!("tag table: expected {}, found {}", e.is_some(), a.is_some()))
            }
        }
    }
    out.dedup();
    out.truncate(6);
    out.join("; ")
}

fn options(sim: &SimStorage, durability: Durability) -> PersistOptions {
    PersistOptions {
        durability,
        // Only the workload's own calls sync the log or checkpoint, so every run performs the
        // same disk operations in the same order.
        flush_interval: Duration::from_secs(3600),
        checkpoint_after_wal_bytes: 0,
        // Small segments, so that runs roll over to new segments and remove old ones.
        wal_segment_max_bytes: 2048,
        storage: Arc::new(sim.clone()),
        ..PersistOptions::default()
    }
}

fn open(sim: &SimStorage, durability: Durability) -> tabledb::Result<Database> {
    Database::open_with(DIR, Config::default(), options(sim, durability))
}

fn tag_bytes(db: &Database, row: &Map<String, Value>) -> Vec<u8> {
    db.snapshot().schema("tag").unwrap().record_from_json(row, None).unwrap()
}

fn new_tag_row(rng: &mut Rng, marker: u64, fields: &[String]) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("marker".into(), json!(marker));
    row.insert("active".into(), json!(rng.below(2) == 1));
    row.insert("label".into(), json!(rng.label()));
    if fields.iter().any(|f| f == "extra") {
        row.insert("extra".into(), json!(rng.below(1 << 32)));
    }
    row
}

/// One transaction over both tables, tagged with `marker`; applies the same changes to
/// `model`. Returns the commit's result.
fn transaction(db: &Database, marker: u64, model: &mut Model, rng: &mut Rng) -> tabledb::Result<()> {
    let t = db.table::<Item>()?;
    let mut tx = db.begin();
    let items = model.item.as_mut().expect("the item table exists");
    let tags = model.tag.as_mut().expect("the tag table exists");

    // Sometimes a parallel update of the whole item table first, changing a third of the
    // records (so that some pages change in part and some not at all).
    if rng.below(6) == 0 {
        let third = marker % 3;
        tx.par_update(t, |id, r| {
            if id.0 % 3 == third {
                r.count = r.count.wrapping_add(1);
            }
        })?;
        for (id, r) in items.iter_mut() {
            if id % 3 == third {
                r.count = r.count.wrapping_add(1);
            }
        }
    }

    // The item table: the marker goes into one record by insert, whole update or field updates.
    let item_ids: Vec<u64> = items.keys().copied().collect();
    let written_item = match rng.below(10) {
        r if r < 4 || item_ids.len() < 4 => {
            let rec = Item { marker, value: rng.next(), count: marker as u32, flag: rng.below(2) as u32 };
            let id = tx.insert(t, &rec)?;
            items.insert(id.0, rec);
            id.0
        }
        r if r < 7 => {
            let id = rng.pick(&item_ids);
            let rec = Item { marker, value: rng.next(), count: rng.below(1000) as u32, flag: 7 };
            tx.update(t, RecordId(id), &rec)?;
            items.insert(id, rec);
            id
        }
        _ => {
            let id = rng.pick(&item_ids);
            let value = rng.next();
            tx.set(t, RecordId(id), Item::MARKER, marker)?;
            tx.set(t, RecordId(id), Item::VALUE, value)?;
            let rec = items.get_mut(&id).unwrap();
            rec.marker = marker;
            rec.value = value;
            id
        }
    };
    if rng.below(3) == 0 {
        let rec = Item { marker, value: rng.next(), count: 1, flag: 1 };
        let id = tx.insert(t, &rec)?;
        items.insert(id.0, rec);
    }
    if item_ids.len() > 8 && rng.below(4) == 0 {
        let id = rng.pick(&item_ids);
        if id != written_item {
            tx.delete(t, RecordId(id))?;
            items.remove(&id);
        }
    }

    // The tag table, by field names and JSON values.
    let tag_ids: Vec<u64> = tags.rows.keys().copied().collect();
    let schema = db.snapshot().schema("tag").unwrap().clone();
    let written_tag = match rng.below(10) {
        r if r < 4 || tag_ids.len() < 4 => {
            let row = new_tag_row(rng, marker, &tags.fields);
            let id = tx.create_record("tag", &tag_bytes(db, &row))?;
            tags.rows.insert(id.0, row);
            id.0
        }
        r if r < 6 => {
            let id = rng.pick(&tag_ids);
            let row = new_tag_row(rng, marker, &tags.fields);
            tx.update_record("tag", RecordId(id), &tag_bytes(db, &row))?;
            tags.rows.insert(id, row);
            id
        }
        _ => {
            // Partial updates: the marker, and some of the other fields.
            let id = rng.pick(&tag_ids);
            let mut patch = Map::new();
            patch.insert("marker".into(), json!(marker));
            if rng.below(2) == 0 {
                patch.insert("active".into(), json!(rng.below(2) == 1));
            }
            if rng.below(2) == 0 {
                patch.insert("label".into(), json!(rng.label()));
            }
            if tags.fields.iter().any(|f| f == "extra") && rng.below(2) == 0 {
                patch.insert("extra".into(), json!(rng.below(1 << 32)));
            }
            let row = tags.rows.get_mut(&id).unwrap();
            let base = schema.record_from_json(row, None).unwrap();
            let patched = schema.record_from_json(&patch, Some(&base)).unwrap();
            for name in patch.keys() {
                let range = schema.field(name).unwrap().range();
                tx.partial_update("tag", RecordId(id), name, &patched[range])?;
            }
            row.extend(patch);
            id
        }
    };
    if tag_ids.len() > 8 && rng.below(4) == 0 {
        let id = rng.pick(&tag_ids);
        if id != written_tag {
            tx.delete_record("tag", RecordId(id))?;
            tags.rows.remove(&id);
        }
    }
    tx.commit().map(|_| ())
}

/// Runs step `j` on the database and the model. Returns whether everything up to and including
/// it is durable once it returns `Ok`.
fn step(
    db: &Database,
    durability: Durability,
    j: usize,
    model: &mut Model,
    rng: &mut Rng,
) -> tabledb::Result<bool> {
    match j {
        1 => {
            model.item = Some(BTreeMap::new());
            db.create_table::<Item>().map(|_| true)
        }
        2 => {
            let fields = tag_defs().into_iter().map(|f| f.name).collect();
            model.tag = Some(TagModel { fields, rows: BTreeMap::new() });
            db.create_table_from_defs("tag", &tag_defs()).map(|_| true)
        }
        COMPACT_ITEM_AT => db.compact_table("item").map(|()| true),
        COMPACT_TAG_AT => db.compact_table("tag").map(|()| true),
        ADD_FIELD_AT => {
            let tags = model.tag.as_mut().unwrap();
            tags.fields.push("extra".into());
            for row in tags.rows.values_mut() {
                row.insert("extra".into(), json!(0));
            }
            db.add_field("tag", &FieldDef::new("extra", "u32")).map(|()| true)
        }
        _ if j.is_multiple_of(CHECKPOINT_EVERY) => {
            let started = db.checkpoint()?;
            assert!(started, "no other checkpoint runs");
            Ok(true)
        }
        _ if j.is_multiple_of(SYNC_EVERY) => db.sync().map(|_| true),
        _ => transaction(db, j as u64, model, rng).map(|()| durability == Durability::Tick),
    }
}

/// One run of the workload, up to its end or its first error.
struct Outcome {
    /// `states[j]`: the model after the first `j` steps; with an error, the last entry is the
    /// state had the failed step succeeded.
    states: Vec<Model>,
    /// Steps that returned `Ok`.
    done: usize,
    /// Steps known durable: through the last step that returned `Ok` and made everything before
    /// it durable.
    durable: usize,
    error: Option<Error>,
    db: Option<Database>,
}

fn run(sim: &SimStorage, durability: Durability) -> Outcome {
    let mut states = vec![Model::default()];
    let db = match open(sim, durability) {
        Ok(db) => db,
        Err(e) => return Outcome { states, done: 0, durable: 0, error: Some(e), db: None },
    };
    let mut rng = Rng(WORKLOAD_SEED);
    let mut durable = 0;
    for j in 1..=STEPS {
        let mut next = states.last().unwrap().clone();
        let result = step(&db, durability, j, &mut next, &mut rng);
        states.push(next);
        match result {
            Ok(true) => durable = j,
            Ok(false) => {}
            Err(e) => return Outcome { states, done: j - 1, durable, error: Some(e), db: Some(db) },
        }
    }
    Outcome { states, done: STEPS, durable, error: None, db: Some(db) }
}

/// Reopens the disk left by a crash and checks it against the run's model; then checks that
/// the recovered database takes a new commit that survives another crash.
fn check_recovery(image: &SimStorage, durability: Durability, out: &Outcome, k: u64) -> bool {
    let ctx = format!(
        "{durability} crash at operation {k} (steps done {}, durable {}, error {:?})",
        out.done, out.durable, out.error
    );
    let db = open(image, durability).unwrap_or_else(|e| panic!("{ctx}: reopening failed: {e}"));
    let report = db.recovery_report().unwrap().clone();
    assert!(report.salvaged_at.is_none(), "{ctx}: nothing is salvaged after a crash: {report:?}");
    let seen = observe(&db);
    let last = out.states.len() - 1;
    let Some(p) = (out.durable..=last).rev().find(|&p| out.states[p] == seen) else {
        let closest = (0..=last).min_by_key(|&p| diff(&out.states[p], &seen).len()).unwrap();
        panic!(
            "{ctx}: the recovered state is not the model after any of steps {}..={last}; closest is \
             step {closest}: {:?}",
            out.durable,
            diff(&out.states[closest], &seen)
        );
    };
    if durability == Durability::Tick {
        assert!(p >= out.done, "{ctx}: acknowledged steps lost: recovered step {p}");
    }
    if seen.item.is_some() && seen.tag.is_some() {
        let (item, tag) = seen.markers();
        assert_eq!(item, tag, "{ctx}: a transaction is applied to one table only (newest markers differ)");
    }

    // Ids are never reused, and the database takes writes again.
    let (max_item, max_tag) =
        out.states[..=p].iter().map(Model::max_ids).fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    let mut expected = seen.clone();
    let mut tx = db.begin();
    if let Some(items) = &mut expected.item {
        let rec = Item { marker: 1 << 40, value: k, count: 0, flag: 0 };
        let id = tx.insert(db.table::<Item>().unwrap(), &rec).unwrap();
        assert!(id.0 > max_item, "{ctx}: item id {id} reused (ids up to {max_item} were used)");
        items.insert(id.0, rec);
    }
    if let Some(tags) = &mut expected.tag {
        let mut rng = Rng(k);
        let row = new_tag_row(&mut rng, 1 << 40, &tags.fields);
        let id = tx.create_record("tag", &tag_bytes(&db, &row)).unwrap();
        assert!(id.0 > max_tag, "{ctx}: tag id {id} reused (ids up to {max_tag} were used)");
        tags.rows.insert(id.0, row);
    }
    tx.commit().unwrap_or_else(|e| panic!("{ctx}: a commit after recovery failed: {e}"));
    db.sync().unwrap_or_else(|e| panic!("{ctx}: a sync after recovery failed: {e}"));
    let again = image.crash_image();
    drop(db);
    let db =
        open(&again, durability).unwrap_or_else(|e| panic!("{ctx}: reopening after recovery failed: {e}"));
    let seen = observe(&db);
    assert!(seen == expected, "{ctx}: the commit after recovery was lost: {}", diff(&expected, &seen));
    report.torn_tail.is_some()
}

fn crash_everywhere(durability: Durability) {
    // The full run: its outcome, and how many disk operations it performs (closing included).
    let sim = SimStorage::new(1);
    let full = run(&sim, durability);
    assert!(full.error.is_none(), "the workload runs without faults: {:?}", full.error);
    assert_eq!(full.done, STEPS);
    let expected = full.states[STEPS].clone();
    assert_eq!(observe(full.db.as_ref().unwrap()), expected, "the database matches its model");
    drop(full.db);
    let total = sim.ops();
    assert!(total > 300, "the workload performs many disk operations ({total})");
    let reopened = open(&sim.crash_image(), durability).unwrap();
    assert_eq!(observe(&reopened), expected, "a closed database reopens with everything");
    drop(reopened);

    // An odd stride, so that the crash points do not fall in step with the write-then-fsync
    // pairs of the commits and hit only one of the two.
    let stride = total.div_ceil(CRASH_RUNS_MAX).max(1) | 1;
    let mut crash_points: Vec<u64> = (1..=total).step_by(stride as usize).collect();
    if crash_points.last() != Some(&total) {
        crash_points.push(total);
    }
    let mut outcomes = [0usize; 3];
    let mut torn_tails = 0;
    for &k in &crash_points {
        let sim = SimStorage::new(k);
        sim.inject(k, Fault::Crash);
        let mut out = run(&sim, durability);
        if out.error.is_none() {
            // The crash is in the final sync at close.
            drop(out.db.take());
        }
        assert!(sim.has_crashed(), "{durability}: operation {k} of {total} was reached");
        if let Some(e) = &out.error {
            assert!(
                matches!(e, Error::Persistence(_) | Error::WritesStopped(_)),
                "{durability} crash at {k}: the failing call reports a persistence error: {e:?}"
            );
        }
        let image = sim.crash_image();
        drop(out.db.take());
        torn_tails += check_recovery(&image, durability, &out, k) as usize;
        outcomes[match &out.error {
            Some(_) if out.done <= 2 => 0,
            Some(_) => 1,
            None => 2,
        }] += 1;
    }
    // The crash points hit the creation of the tables and the workload; with Async also the
    // final sync at close (with Tick everything is synced before).
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{durability}: crash points spread: {outcomes:?}");
    if durability == Durability::Async {
        assert!(outcomes[2] > 0, "{durability}: crash points spread: {outcomes:?}");
    }
    // Crashes while the log was being written left torn entries that recovery cut off.
    assert!(torn_tails > 0, "{durability}: some crash images end with a torn log entry");
    eprintln!(
        "{durability}: {total} disk operations, {} crash points (at tables/workload/close: {outcomes:?}), {torn_tails} torn log tails",
        crash_points.len()
    );
}

#[test]
fn crashes_with_tick_durability_lose_nothing_acknowledged() {
    crash_everywhere(Durability::Tick);
}

#[test]
fn crashes_with_async_durability_keep_a_prefix() {
    crash_everywhere(Durability::Async);
}
