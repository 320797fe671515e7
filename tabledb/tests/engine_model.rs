//! The engine against a reference model: random sequences of creates, updates (whole, by field
//! name, by typed field handle), deletes, reads, commits, aborts, compactions and field changes
//! run on two tables (one derived, one created at run time with padding, a bool and a string),
//! and after every step that ends a transaction or changes the schema, everything the engine
//! shows must equal a `BTreeMap<RecordId, Vec<u8>>` per table.
//!
//! The model lays out the run-time table itself (like a `#[repr(C)]` struct), so a field change
//! is checked against an independent computation, not against the engine's own schema code.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;
use rayon::iter::ParallelIterator;
use tabledb::schema::{FieldDef, SchemaError};
use tabledb::{Database, Error, FieldHandle, FixedStr, RecordId, Snapshot, Table, TableRef, Transaction};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    qty: u64,
    price: i32,
    active: bool,
    kind: u8,
    code: u16,
    label: FixedStr<6>,
}

const ITEMS: usize = 0;
const GADGETS: usize = 1;
const NAMES: [&str; 2] = ["item", "gadgets"];
/// Fields the run-time table may grow to; keeps records small and cases fast.
const MAX_GADGET_FIELDS: usize = 10;

type Model = BTreeMap<RecordId, Vec<u8>>;

// ---- values ----

/// A well-mixed function of `seed` and `salt` (splitmix64), so one seed gives every field of a
/// record a different value.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// UTF-8 text of at most `cap` bytes, with multi-byte characters, chosen by `seed`.
fn text(seed: u64, cap: usize) -> String {
    const CHARS: [char; 5] = ['a', 'z', 'é', '€', '7'];
    let target = (seed % (cap as u64 + 1)) as usize;
    let mut s = String::new();
    let mut x = mix(seed, 77);
    loop {
        let c = CHARS[(x % CHARS.len() as u64) as usize];
        x = mix(x, 1);
        if s.len() + c.len_utf8() > target {
            return s;
        }
        s.push(c);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Bool,
    U8,
    U16,
    U32,
    I32,
    U64,
    Str(usize),
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::Bool | Kind::U8 => 1,
            Kind::U16 => 2,
            Kind::U32 | Kind::I32 => 4,
            Kind::U64 => 8,
            Kind::Str(cap) => cap + 2,
        }
    }

    fn align(self) -> usize {
        match self {
            Kind::Str(_) => 1,
            other => other.size(),
        }
    }

    fn type_name(self) -> String {
        match self {
            Kind::Bool => "bool".into(),
            Kind::U8 => "u8".into(),
            Kind::U16 => "u16".into(),
            Kind::U32 => "u32".into(),
            Kind::I32 => "i32".into(),
            Kind::U64 => "u64".into(),
            Kind::Str(cap) => format!("string({cap})"),
        }
    }

    fn def(self, name: &str) -> FieldDef {
        match self {
            Kind::Str(cap) => FieldDef::string(name, cap),
            other => FieldDef::new(name, other.type_name()),
        }
    }

    /// A valid value of this kind, in its canonical bytes.
    fn value(self, seed: u64) -> Vec<u8> {
        match self {
            Kind::Bool => vec![(seed & 1) as u8],
            Kind::Str(cap) => {
                let s = text(seed, cap);
                let mut out = vec![0u8; cap + 2];
                out[..2].copy_from_slice(&(s.len() as u16).to_le_bytes());
                out[2..2 + s.len()].copy_from_slice(s.as_bytes());
                out
            }
            other => seed.to_le_bytes()[..other.size()].to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
struct ModelField {
    name: String,
    kind: Kind,
    offset: usize,
}

impl ModelField {
    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.kind.size()
    }
}

/// A record layout computed the way C lays out a struct.
#[derive(Clone, Debug)]
struct Layout {
    fields: Vec<ModelField>,
    size: usize,
}

fn align_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

impl Layout {
    fn new(fields: &[(String, Kind)]) -> Layout {
        let (mut end, mut align) = (0, 1);
        let mut out = Vec::new();
        for (name, kind) in fields {
            let offset = align_up(end, kind.align());
            end = offset + kind.size();
            align = align.max(kind.align());
            out.push(ModelField { name: name.clone(), kind: *kind, offset });
        }
        Layout { fields: out, size: align_up(end, align) }
    }

    fn spec(&self) -> Vec<(String, Kind)> {
        self.fields.iter().map(|f| (f.name.clone(), f.kind)).collect()
    }

    /// A valid record: every field set from `seed`, padding zero.
    fn record(&self, seed: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.size];
        for (i, f) in self.fields.iter().enumerate() {
            out[f.range()].copy_from_slice(&f.kind.value(mix(seed, i as u64)));
        }
        out
    }

    /// `old` (laid out by `from`) laid out by `self`: shared fields keep their values, new ones
    /// are zero.
    fn convert(&self, from: &Layout, old: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; self.size];
        for f in &self.fields {
            if let Some(o) = from.fields.iter().find(|o| o.name == f.name) {
                out[f.range()].copy_from_slice(&old[o.range()]);
            }
        }
        out
    }
}

fn item_layout() -> Layout {
    let fields = [
        ("qty", Kind::U64),
        ("price", Kind::I32),
        ("active", Kind::Bool),
        ("kind", Kind::U8),
        ("code", Kind::U16),
        ("label", Kind::Str(6)),
    ];
    Layout::new(&fields.map(|(n, k)| (n.to_owned(), k)))
}

fn gadget_layout() -> Layout {
    // Padding after `flag` (to align `n`) and after `w` (to align `big`).
    let fields = [
        ("flag", Kind::Bool),
        ("n", Kind::U32),
        ("name", Kind::Str(10)),
        ("w", Kind::U16),
        ("big", Kind::U64),
    ];
    Layout::new(&fields.map(|(n, k)| (n.to_owned(), k)))
}

// ---- operations ----

#[derive(Clone, Debug)]
enum Op {
    Create { t: usize, seed: u64 },
    CreateMany { t: usize, n: usize, seed: u64 },
    Update { t: usize, pick: Index, seed: u64 },
    Partial { t: usize, pick: Index, field: Index, seed: u64 },
    Set { pick: Index, field: usize, seed: u64 },
    Delete { t: usize, pick: Index },
    Read { t: usize, pick: Index },
    TxScan { t: usize },
    Compact { t: usize },
    AddField { kind: Kind },
    RemoveField { field: Index },
    Commit,
    Abort,
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Bool),
        Just(Kind::U8),
        Just(Kind::U16),
        Just(Kind::U32),
        Just(Kind::I32),
        Just(Kind::U64),
        (1usize..24).prop_map(Kind::Str),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let t = 0usize..2;
    prop_oneof![
        8 => (t.clone(), any::<u64>()).prop_map(|(t, seed)| Op::Create { t, seed }),
        2 => (t.clone(), 1usize..100, any::<u64>()).prop_map(|(t, n, seed)| Op::CreateMany { t, n, seed }),
        5 => (t.clone(), any::<Index>(), any::<u64>()).prop_map(|(t, pick, seed)| Op::Update { t, pick, seed }),
        5 => (t.clone(), any::<Index>(), any::<Index>(), any::<u64>())
            .prop_map(|(t, pick, field, seed)| Op::Partial { t, pick, field, seed }),
        4 => (any::<Index>(), 0usize..5, any::<u64>()).prop_map(|(pick, field, seed)| Op::Set { pick, field, seed }),
        4 => (t.clone(), any::<Index>()).prop_map(|(t, pick)| Op::Delete { t, pick }),
        4 => (t.clone(), any::<Index>()).prop_map(|(t, pick)| Op::Read { t, pick }),
        1 => t.clone().prop_map(|t| Op::TxScan { t }),
        1 => t.prop_map(|t| Op::Compact { t }),
        1 => kind_strategy().prop_map(|kind| Op::AddField { kind }),
        1 => any::<Index>().prop_map(|field| Op::RemoveField { field }),
        8 => Just(Op::Commit),
        2 => Just(Op::Abort),
    ]
}

// ---- the harness ----

/// An open transaction and what the model expects of it.
struct Open {
    tx: Transaction,
    /// The tables as the transaction sees them.
    model: [Model; 2],
    /// Layouts as of the transaction's start snapshot.
    layouts: [Layout; 2],
    written: [bool; 2],
    /// Read (including reads of missing records) or written.
    touched: [bool; 2],
    /// Read as a whole (counted or iterated).
    scanned: [bool; 2],
    /// A field was added or removed by DDL while the transaction was open.
    altered: [bool; 2],
    /// The table was compacted while the transaction was open.
    compacted: [bool; 2],
    /// Ids this transaction created, per table.
    created: [Vec<RecordId>; 2],
}

impl Open {
    fn wrote(&self) -> bool {
        self.written.iter().any(|w| *w)
    }
}

struct Harness {
    db: Database,
    items: TableRef<Item>,
    layouts: [Layout; 2],
    committed: [Model; 2],
    /// Every id the engine handed out, per table, in order.
    allocated: [Vec<RecordId>; 2],
    /// One past the highest id committed, per table: where a deterministic transaction
    /// numbers its new records from.
    next_id: [u64; 2],
    /// The last id the shared counter handed out (to an ordinary transaction), per table.
    counted: [u64; 2],
    /// Transactions begun so far; every third is deterministic.
    begun: u64,
    open: Option<Open>,
    added_fields: usize,
    seq: u64,
    commits: u64,
    conflicts: u64,
    aborts: u64,
    ddl: u64,
    /// The snapshot of the last check, with the state it showed; it must never change.
    previous: Option<(Arc<Snapshot>, [Model; 2], [Layout; 2])>,
}

fn not_found(t: usize, id: RecordId) -> Error {
    Error::RecordNotFound { table: NAMES[t].to_owned(), id }
}

fn item_from(bytes: &[u8]) -> Item {
    Item::read(bytes).expect("the model holds valid items")
}

impl Harness {
    fn new() -> Harness {
        let db = Database::new();
        let items = db.create_table::<Item>().unwrap();
        let gadgets = gadget_layout();
        let defs: Vec<FieldDef> = gadgets.fields.iter().map(|f| f.kind.def(&f.name)).collect();
        db.create_table_from_defs(NAMES[GADGETS], &defs).unwrap();
        let mut h = Harness {
            db,
            items,
            layouts: [item_layout(), gadgets],
            committed: [Model::new(), Model::new()],
            allocated: [Vec::new(), Vec::new()],
            next_id: [1, 1],
            counted: [0, 0],
            begun: 0,
            open: None,
            added_fields: 0,
            seq: 2,
            commits: 0,
            conflicts: 0,
            aborts: 0,
            ddl: 2,
            previous: None,
        };
        assert_eq!(h.layouts[ITEMS].size, Item::RECORD_SIZE);
        h.check();
        h
    }

    fn open(&mut self) -> &mut Open {
        if self.open.is_none() {
            self.begun += 1;
            self.open = Some(Open {
                tx: if self.begun.is_multiple_of(3) {
                    self.db.begin_deterministic()
                } else {
                    self.db.begin()
                },
                model: self.committed.clone(),
                layouts: self.layouts.clone(),
                written: [false; 2],
                touched: [false; 2],
                scanned: [false; 2],
                altered: [false; 2],
                compacted: [false; 2],
                created: [Vec::new(), Vec::new()],
            });
        }
        self.open.as_mut().expect("just opened")
    }

    /// Ids to try an operation on: every id handed out, plus ids that never name a record.
    fn candidates(&self, t: usize) -> Vec<RecordId> {
        let mut ids = self.allocated[t].clone();
        let past = self.allocated[t].iter().max().map_or(1, |id| id.0) + 7;
        ids.extend([RecordId(0), RecordId(past), RecordId(u64::MAX)]);
        ids
    }

    fn pick(&self, t: usize, pick: &Index) -> RecordId {
        let ids = self.candidates(t);
        ids[pick.index(ids.len())]
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Create { t, seed } => self.create(*t, *seed),
            Op::CreateMany { t, n, seed } => {
                for i in 0..*n {
                    self.create(*t, mix(*seed, i as u64));
                }
            }
            Op::Update { t, pick, seed } => self.update(*t, self.pick(*t, pick), *seed),
            Op::Partial { t, pick, field, seed } => self.partial(*t, self.pick(*t, pick), field, *seed),
            Op::Set { pick, field, seed } => self.set(self.pick(ITEMS, pick), *field, *seed),
            Op::Delete { t, pick } => self.delete(*t, self.pick(*t, pick)),
            Op::Read { t, pick } => self.read(*t, self.pick(*t, pick)),
            Op::TxScan { t } => self.scan(*t),
            Op::Compact { t } => self.compact(*t),
            Op::AddField { kind } => self.add_field(*kind),
            Op::RemoveField { field } => self.remove_field(field.index(self.layouts[GADGETS].fields.len())),
            Op::Commit => self.commit(),
            Op::Abort => self.abort(),
        }
    }

    fn create(&mut self, t: usize, seed: u64) {
        let items = self.items;
        let next_id = self.next_id[t];
        let open = self.open();
        let bytes = open.layouts[t].record(seed);
        let id = match t {
            ITEMS if seed & 1 == 0 => open.tx.insert(items, &item_from(&bytes)),
            ITEMS => open.tx.create_record(items, &bytes),
            _ => open.tx.create_record(NAMES[t], &bytes),
        }
        .unwrap();
        open.model[t].insert(id, bytes);
        open.written[t] = true;
        open.touched[t] = true;
        open.created[t].push(id);
        if open.tx.is_deterministic() {
            // Numbered from the start snapshot, with no gaps (ids of aborted transactions are
            // given again).
            let expected = next_id + open.created[t].len() as u64 - 1;
            assert_eq!(id, RecordId(expected), "a deterministic transaction's new record");
        } else {
            // The shared counter never goes back, and is past every committed id.
            let most = self.counted[t];
            assert!(
                id.0 > most && id.0 >= next_id,
                "id {id} from the counter after {most}, next id {next_id}"
            );
            self.counted[t] = id.0;
        }
        assert_ne!(id, RecordId(0));
        self.allocated[t].push(id);
    }

    fn update(&mut self, t: usize, id: RecordId, seed: u64) {
        let items = self.items;
        let open = self.open();
        let bytes = open.layouts[t].record(seed);
        let result = match t {
            ITEMS if seed & 1 == 0 => open.tx.update(items, id, &item_from(&bytes)),
            ITEMS => open.tx.update_record(items, id, &bytes),
            _ => open.tx.update_record(NAMES[t], id, &bytes),
        };
        Self::expect_write(open, t, id, result, |rec| *rec = bytes);
    }

    fn partial(&mut self, t: usize, id: RecordId, field: &Index, seed: u64) {
        let items = self.items;
        let open = self.open();
        let f = field.get(&open.layouts[t].fields).clone();
        let value = f.kind.value(seed);
        let result = match t {
            ITEMS => open.tx.partial_update(items, id, &f.name, &value),
            _ => open.tx.partial_update(NAMES[t], id, &f.name, &value),
        };
        Self::expect_write(open, t, id, result, |rec| rec[f.range()].copy_from_slice(&value));
    }

    fn set(&mut self, id: RecordId, field: usize, seed: u64) {
        fn go<F: tabledb::types::FieldType>(
            open: &mut Open,
            items: TableRef<Item>,
            id: RecordId,
            handle: FieldHandle<Item, F>,
            value: F,
        ) {
            let bytes = FieldHandle::<Item, F>::value_bytes(&value).to_vec();
            let result = open.tx.set(items, id, handle, value);
            let range = handle.offset()..handle.offset() + bytes.len();
            Harness::expect_write(open, ITEMS, id, result, |rec| rec[range].copy_from_slice(&bytes));
        }
        let items = self.items;
        let open = self.open();
        match field {
            0 => go(open, items, id, Item::QTY, seed),
            1 => go(open, items, id, Item::PRICE, seed as i32),
            2 => go(open, items, id, Item::ACTIVE, seed & 1 == 1),
            3 => go(open, items, id, Item::KIND, seed as u8),
            _ => go(open, items, id, Item::LABEL, FixedStr::new(&text(seed, 6)).unwrap()),
        }
    }

    /// Checks the outcome of a write to record `id`: it succeeds exactly when the record is
    /// live in the transaction's view, and then the model changes by `change`.
    fn expect_write(
        open: &mut Open,
        t: usize,
        id: RecordId,
        result: tabledb::Result<()>,
        change: impl FnOnce(&mut Vec<u8>),
    ) {
        match open.model[t].get_mut(&id) {
            Some(rec) => {
                result.unwrap_or_else(|e| panic!("write to live record {id} of {}: {e}", NAMES[t]));
                change(rec);
                open.written[t] = true;
                open.touched[t] = true;
            }
            None => assert_eq!(result, Err(not_found(t, id)), "write to missing record {id}"),
        }
    }

    fn delete(&mut self, t: usize, id: RecordId) {
        let items = self.items;
        let open = self.open();
        let result = match t {
            ITEMS => open.tx.delete(items, id),
            _ => open.tx.delete_record(NAMES[t], id),
        };
        match open.model[t].remove(&id) {
            Some(_) => {
                result.unwrap();
                open.written[t] = true;
                open.touched[t] = true;
            }
            None => assert_eq!(result, Err(not_found(t, id))),
        }
    }

    fn read(&mut self, t: usize, id: RecordId) {
        let items = self.items;
        let open = self.open();
        open.touched[t] = true;
        let expected = open.model[t].get(&id);
        let raw = match t {
            ITEMS => open.tx.read_record(items, id),
            _ => open.tx.read_record(NAMES[t], id),
        };
        match expected {
            Some(bytes) => assert_eq!(raw.unwrap(), &bytes[..], "transaction reads its own writes"),
            None => assert_eq!(raw, Err(not_found(t, id))),
        }
        if t == ITEMS {
            let typed = open.tx.get(items, id).unwrap();
            assert_eq!(typed.map(|r| r.as_bytes()), expected.map(|b| &b[..]));
        }
    }

    fn scan(&mut self, t: usize) {
        let items = self.items;
        let open = self.open();
        open.touched[t] = true;
        open.scanned[t] = true;
        let expected: Vec<(RecordId, Vec<u8>)> = open.model[t].iter().map(|(k, v)| (*k, v.clone())).collect();
        let mut seen = Vec::new();
        match t {
            ITEMS => {
                assert_eq!(open.tx.len(items).unwrap(), expected.len() as u64);
                open.tx.for_each(items, |id, r| seen.push((id, r.as_bytes().to_vec()))).unwrap();
            }
            _ => {
                assert_eq!(open.tx.len(NAMES[t]).unwrap(), expected.len() as u64);
                open.tx.for_each_record(NAMES[t], |id, r| seen.push((id, r.to_vec()))).unwrap();
            }
        }
        assert_eq!(seen, expected, "the transaction's view of {}", NAMES[t]);
    }

    fn compact(&mut self, t: usize) {
        self.db.compact_table(NAMES[t]).unwrap();
        self.seq += 1;
        self.ddl += 1;
        if let Some(open) = &mut self.open {
            open.compacted[t] = true;
        }
        self.check();
    }

    fn add_field(&mut self, kind: Kind) {
        if self.layouts[GADGETS].fields.len() >= MAX_GADGET_FIELDS {
            return;
        }
        self.added_fields += 1;
        let name = format!("x{}", self.added_fields);
        self.db.add_field(NAMES[GADGETS], &kind.def(&name)).unwrap();
        let mut spec = self.layouts[GADGETS].spec();
        spec.push((name, kind));
        self.relayout(Layout::new(&spec));
    }

    fn remove_field(&mut self, position: usize) {
        let before = self.db.snapshot();
        let name = self.layouts[GADGETS].fields[position].name.clone();
        let result = self.db.remove_field(NAMES[GADGETS], &name);
        if self.layouts[GADGETS].fields.len() == 1 {
            assert_eq!(result, Err(Error::Schema(SchemaError::NoFields(NAMES[GADGETS].to_owned()))));
            assert_eq!(self.db.snapshot().seq(), before.seq(), "a refused change publishes nothing");
            return;
        }
        result.unwrap();
        let mut spec = self.layouts[GADGETS].spec();
        spec.retain(|(n, _)| *n != name);
        self.relayout(Layout::new(&spec));
    }

    /// The run-time table was rewritten under `next`.
    fn relayout(&mut self, next: Layout) {
        let old = std::mem::replace(&mut self.layouts[GADGETS], next);
        let layout = &self.layouts[GADGETS];
        for rec in self.committed[GADGETS].values_mut() {
            *rec = layout.convert(&old, rec);
        }
        self.seq += 1;
        self.ddl += 1;
        if let Some(open) = &mut self.open {
            open.altered[GADGETS] = true;
        }
        self.check();
    }

    fn commit(&mut self) {
        let open = match self.open.take() {
            Some(open) => open,
            None => {
                let info = self.db.begin().commit().unwrap();
                assert!(info.read_only);
                assert_eq!(info.seq.0, self.seq);
                return self.check();
            }
        };
        let start = open.tx.snapshot().seq();
        let must_conflict = open.wrote() && (0..2).any(|t| open.altered[t] && open.touched[t]);
        // Compaction changes no record, but a transaction that read a whole table may be
        // validated against the table as a whole, which compaction replaced.
        let may_conflict = open.wrote() && (0..2).any(|t| open.compacted[t] && open.scanned[t]);
        let wrote = open.wrote();
        let Open { tx, model, written, created, .. } = open;
        let result = tx.commit();
        match result {
            Ok(info) if !wrote => {
                assert!(info.read_only, "a transaction that wrote nothing publishes nothing");
                assert_eq!(info.seq, start);
            }
            Ok(info) => {
                assert!(!must_conflict, "a transaction that used a table whose fields changed committed");
                assert!(!info.read_only);
                self.seq += 1;
                self.commits += 1;
                assert_eq!(info.seq.0, self.seq);
                for (t, table) in model.into_iter().enumerate() {
                    if written[t] {
                        // Records created and deleted again in the transaction were never stored.
                        let stored = created[t].iter().filter(|id| table.contains_key(id)).max();
                        if let Some(id) = stored {
                            self.next_id[t] = self.next_id[t].max(id.0 + 1);
                        }
                        self.committed[t] = table;
                    }
                }
            }
            Err(Error::Conflict { .. }) if must_conflict || may_conflict => {
                self.conflicts += 1;
                self.aborts += 1;
            }
            Err(e) => panic!("unexpected commit error: {e}"),
        }
        self.check();
    }

    fn abort(&mut self) {
        if let Some(open) = self.open.take() {
            if open.wrote() {
                self.aborts += 1;
            }
            if open.model[ITEMS].len() % 2 == 0 {
                open.tx.abort();
            } else {
                drop(open.tx);
            }
        }
        self.check();
    }

    /// Everything the latest snapshot shows equals the model; so does the snapshot of the last
    /// check, which later commits must not have changed.
    fn check(&mut self) {
        let snap = self.db.snapshot();
        assert_eq!(snap.seq().0, self.seq);
        if let Some((old, models, layouts)) = self.previous.take() {
            self.check_snapshot(&old, &models, &layouts);
        }
        self.check_snapshot(&snap, &self.committed, &self.layouts);
        for (&name, next_id) in NAMES.iter().zip(self.next_id) {
            assert_eq!(snap.raw_table(name).unwrap().next_id(), RecordId(next_id), "next id of {name}");
        }
        let stats = self.db.stats();
        assert_eq!(stats.commits, self.commits, "commits");
        assert_eq!(stats.conflicts, self.conflicts, "conflicts");
        assert_eq!(stats.aborts, self.aborts, "aborts");
        assert_eq!(stats.ddl, self.ddl, "ddl");
        self.previous = Some((snap, self.committed.clone(), self.layouts.clone()));
    }

    fn check_snapshot(&self, snap: &Snapshot, models: &[Model; 2], layouts: &[Layout; 2]) {
        for t in 0..2 {
            let model = &models[t];
            let expected: Vec<(RecordId, Vec<u8>)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
            let raw = snap.raw_table(NAMES[t]).unwrap();

            let schema = raw.schema();
            let got: Vec<(&str, usize, String)> =
                schema.fields.iter().map(|f| (f.name.as_str(), f.offset, f.layout.name.clone())).collect();
            let want: Vec<(&str, usize, String)> =
                layouts[t].fields.iter().map(|f| (f.name.as_str(), f.offset, f.kind.type_name())).collect();
            assert_eq!(got, want, "schema of {}", NAMES[t]);
            assert_eq!(schema.record_size, layouts[t].size);

            let iterated: Vec<(RecordId, Vec<u8>)> = raw.iter().map(|(id, b)| (id, b.to_vec())).collect();
            assert_eq!(iterated, expected, "iteration of {} at seq {}", NAMES[t], snap.seq());
            assert_eq!(raw.len(), model.len() as u64);
            assert_eq!(raw.is_empty(), model.is_empty());
            assert_eq!(snap.len(NAMES[t]).unwrap(), model.len() as u64);
            let mut parallel: Vec<(RecordId, Vec<u8>)> =
                raw.par_iter().map(|(id, b)| (id, b.to_vec())).collect();
            parallel.sort();
            assert_eq!(parallel, expected, "parallel iteration of {}", NAMES[t]);

            for id in self.candidates(t) {
                let want = model.get(&id).map(|b| &b[..]);
                assert_eq!(raw.get(id), want, "record {id} of {}", NAMES[t]);
                match want {
                    Some(b) => assert_eq!(snap.read_record(NAMES[t], id).unwrap(), b),
                    None => assert_eq!(snap.read_record(NAMES[t], id), Err(not_found(t, id))),
                }
            }
            // One past the highest id a commit stored: above every record, and not above
            // what was handed out.
            if let Some((last, _)) = model.last_key_value() {
                assert!(raw.next_id() > *last, "the next id is above every record's");
            }
            let handed_out = self.allocated[t].iter().max().map_or(1, |id| id.0 + 1);
            assert!(raw.next_id().0 <= handed_out, "the next id is not above the ids handed out");
        }

        let model = &models[ITEMS];
        let view = snap.table(self.items).unwrap();
        let typed: Vec<(RecordId, Vec<u8>)> =
            view.iter().map(|(id, r)| (id, r.as_bytes().to_vec())).collect();
        let expected: Vec<(RecordId, Vec<u8>)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
        assert_eq!(typed, expected, "typed iteration");
        assert_eq!(view.len(), model.len() as u64);
        let mut parallel: Vec<(RecordId, Vec<u8>)> =
            view.par_iter().map(|(id, r)| (id, r.as_bytes().to_vec())).collect();
        parallel.sort();
        assert_eq!(parallel, expected, "typed parallel iteration");
        let qty: u64 = model.values().map(|b| item_from(b).qty % 1000).sum();
        assert_eq!(view.par_sum(|r| r.qty % 1000), qty);
        for id in self.candidates(ITEMS) {
            let want = model.get(&id).map(|b| item_from(b));
            assert_eq!(snap.get(self.items, id).copied(), want, "typed get of {id}");
            assert_eq!(view.get(id).copied(), want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn engine_matches_the_model(ops in prop::collection::vec(op_strategy(), 1..120)) {
        let mut h = Harness::new();
        for op in &ops {
            h.run(op);
        }
        h.abort();
    }
}

/// Fixed sequences that random ones reach only by luck: many pages, compaction with an open
/// transaction, and a field change under a transaction that used the table.
#[test]
fn scripted_sequences_match_the_model() {
    use Op::*;
    let mut h = Harness::new();
    // Many pages in both tables, then deletes spread over them.
    h.run(&CreateMany { t: ITEMS, n: 300, seed: 1 });
    h.run(&CreateMany { t: GADGETS, n: 300, seed: 2 });
    h.run(&Commit);
    for i in (0..300).step_by(3) {
        let id = h.allocated[ITEMS][i];
        h.delete(ITEMS, id);
        let id = h.allocated[GADGETS][i];
        h.delete(GADGETS, id);
    }
    h.run(&Commit);
    // A transaction open across a compaction keeps its writes and reads.
    let id = h.allocated[ITEMS][1];
    h.update(ITEMS, id, 99);
    h.create(ITEMS, 100);
    h.run(&Compact { t: ITEMS });
    h.read(ITEMS, id);
    h.run(&Commit);
    // A transaction that wrote the run-time table cannot commit after a field change there.
    let id = h.allocated[GADGETS][1];
    h.update(GADGETS, id, 5);
    h.run(&AddField { kind: Kind::Str(3) });
    h.run(&Commit);
    assert_eq!(h.conflicts, 1);
    // One that wrote only the other table can.
    h.create(ITEMS, 7);
    h.run(&AddField { kind: Kind::Bool });
    h.run(&Commit);
    assert_eq!(h.conflicts, 1);
    // Removing fields keeps the rest, down to the last field, which stays.
    while h.layouts[GADGETS].fields.len() > 1 {
        h.remove_field(0);
    }
    h.remove_field(0);
    h.run(&CreateMany { t: GADGETS, n: 40, seed: 3 });
    h.run(&Commit);
    h.run(&Compact { t: GADGETS });
    h.run(&CreateMany { t: GADGETS, n: 10, seed: 4 });
    h.run(&Commit);
}

// ---- records of more than 64 fields ----

/// A table of 80 fields of mixed types (with padding): fields from the 64th on share one
/// dirty bit in the staging area, which one-field updates must not let leak into the others.
fn wide_layout() -> Layout {
    let kinds = [Kind::U8, Kind::U16, Kind::Bool, Kind::U32, Kind::Str(3)];
    let spec: Vec<(String, Kind)> = (0..80).map(|i| (format!("f{i}"), kinds[i % kinds.len()])).collect();
    Layout::new(&spec)
}

#[derive(Clone, Debug)]
enum WideOp {
    Partial { rec: usize, field: usize, seed: u64 },
    Whole { rec: usize, seed: u64 },
    Read { rec: usize },
    Commit,
    Abort,
}

fn wide_op() -> impl Strategy<Value = WideOp> {
    prop_oneof![
        8 => (0usize..3, prop_oneof![0usize..80, 60usize..80], any::<u64>())
            .prop_map(|(rec, field, seed)| WideOp::Partial { rec, field, seed }),
        1 => (0usize..3, any::<u64>()).prop_map(|(rec, seed)| WideOp::Whole { rec, seed }),
        2 => (0usize..3).prop_map(|rec| WideOp::Read { rec }),
        2 => Just(WideOp::Commit),
        1 => Just(WideOp::Abort),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn wide_records_match_the_model(ops in prop::collection::vec(wide_op(), 1..60)) {
        let layout = wide_layout();
        let db = Database::new();
        let defs: Vec<FieldDef> = layout.fields.iter().map(|f| f.kind.def(&f.name)).collect();
        db.create_table_from_defs("wide", &defs).unwrap();
        let mut committed = Model::new();
        let mut tx = db.begin();
        let ids: Vec<RecordId> = (0..3u64)
            .map(|i| {
                let rec = layout.record(i);
                let id = tx.create_record("wide", &rec).unwrap();
                committed.insert(id, rec);
                id
            })
            .collect();
        tx.commit().unwrap();
        let mut open: Option<(Transaction, Model)> = None;
        for op in &ops {
            let (tx, model) = open.get_or_insert_with(|| (db.begin(), committed.clone()));
            match op {
                WideOp::Partial { rec, field, seed } => {
                    let f = &layout.fields[*field];
                    let value = f.kind.value(*seed);
                    tx.partial_update("wide", ids[*rec], &f.name, &value).unwrap();
                    model.get_mut(&ids[*rec]).unwrap()[f.range()].copy_from_slice(&value);
                }
                WideOp::Whole { rec, seed } => {
                    let bytes = layout.record(*seed);
                    tx.update_record("wide", ids[*rec], &bytes).unwrap();
                    model.insert(ids[*rec], bytes);
                }
                WideOp::Read { rec } => {
                    prop_assert_eq!(tx.read_record("wide", ids[*rec]).unwrap(), &model[&ids[*rec]][..]);
                }
                WideOp::Commit => {
                    let (tx, model) = open.take().expect("opened above");
                    tx.commit().unwrap();
                    committed = model;
                }
                WideOp::Abort => open = None,
            }
            if open.is_none() {
                let snap = db.snapshot();
                let got: Model = snap.raw_table("wide").unwrap().iter().map(|(id, b)| (id, b.to_vec())).collect();
                prop_assert_eq!(&got, &committed);
            }
        }
    }
}
