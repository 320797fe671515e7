//! End-to-end: records over REST against the real `tabledb-server` binary — create (one or
//! many in one transaction), read (JSON and raw bytes), replace, patch, delete, listings with
//! filters, order, pages and totals, relations enforced on writes and deletes, and many
//! clients at once.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use common::{TestServer, all_records};
use serde_json::{Value, json};

fn player_table(s: &TestServer) -> Value {
    s.post(
        "/tables/player",
        &json!({ "fields": [
            { "name": "hp", "type": "u32" },
            { "name": "name", "type": "string", "max_len": 16 },
            { "name": "alive", "type": "bool" },
            { "name": "x", "type": "f32" },
        ] }),
    )
    .expect(201)
}

fn total(s: &TestServer, table: &str) -> u64 {
    s.get(&format!("/tables/{table}/records?count=true&limit=0")).expect(200)["total"]
        .as_u64()
        .expect("total")
}

#[test]
fn records_create_read_replace_patch_delete() {
    let s = TestServer::start(&["--tickrate", "120"]);
    let table = player_table(&s);
    assert_eq!(table["name"], "player");
    assert_eq!(table["records"], 0);
    let record_size = table["record_size"].as_u64().expect("record_size") as usize;

    // One record: 201 and the stored record with its id.
    let ada = s.post("/tables/player/records", &json!({ "hp": 100, "name": "ada", "alive": true, "x": 1.5 }));
    let ada = ada.expect(201);
    let id = ada["id"].as_u64().expect("id");
    assert_eq!(ada, json!({ "id": id, "hp": 100, "name": "ada", "alive": true, "x": 1.5 }));
    assert_eq!(s.get(&format!("/tables/player/records/{id}")).expect(200), ada);

    // Raw bytes with Accept: application/octet-stream.
    let raw = s.request(
        "GET",
        &format!("/tables/player/records/{id}"),
        &[("accept", "application/octet-stream")],
        None,
    );
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    assert_eq!(raw.body.len(), record_size, "one record's bytes");
    assert_eq!(raw.body[..4], 100u32.to_le_bytes(), "hp at offset 0, little-endian");
    assert!(raw.body.windows(3).any(|w| w == b"ada"), "the name is in the bytes: {:?}", raw.body);

    // PUT replaces the whole record; every field is required.
    let replaced = s
        .put(
            &format!("/tables/player/records/{id}"),
            &json!({ "hp": 7, "name": "bea", "alive": false, "x": -2.0 }),
        )
        .expect(200);
    assert_eq!(replaced, json!({ "id": id, "hp": 7, "name": "bea", "alive": false, "x": -2.0 }));
    let msg = s
        .put(&format!("/tables/player/records/{id}"), &json!({ "hp": 8, "name": "bea", "x": 0.0 }))
        .expect_error(400, None);
    assert!(msg.contains("alive"), "the message names the missing field: {msg}");
    // The id in a body must be the one in the path.
    let msg = s
        .put(
            &format!("/tables/player/records/{id}"),
            &json!({ "id": id + 1, "hp": 8, "name": "bea", "alive": true, "x": 0.0 }),
        )
        .expect_error(400, None);
    assert!(msg.contains("id"), "{msg}");
    assert_eq!(
        s.get(&format!("/tables/player/records/{id}")).expect(200),
        replaced,
        "failed PUTs change nothing"
    );

    // PATCH changes only the fields given.
    let patched =
        s.patch(&format!("/tables/player/records/{id}"), &json!({ "hp": 9, "alive": true })).expect(200);
    assert_eq!(patched, json!({ "id": id, "hp": 9, "name": "bea", "alive": true, "x": -2.0 }));
    let msg = s.patch(&format!("/tables/player/records/{id}"), &json!({ "mana": 1 })).expect_error(400, None);
    assert!(msg.contains("mana"), "names the unknown field: {msg}");
    let msg =
        s.patch(&format!("/tables/player/records/{id}"), &json!({ "hp": "lots" })).expect_error(400, None);
    assert!(msg.contains("hp"), "names the field with the wrong type: {msg}");
    let msg = s.patch(&format!("/tables/player/records/{id}"), &json!({ "hp": -1 })).expect_error(400, None);
    assert!(msg.contains("hp"), "names the field out of range: {msg}");
    let msg = s
        .patch(&format!("/tables/player/records/{id}"), &json!({ "name": "a name longer than sixteen" }))
        .expect_error(400, None);
    assert!(msg.contains("name"), "names the field over capacity: {msg}");
    assert_eq!(s.get(&format!("/tables/player/records/{id}")).expect(200), patched);

    // Unknown ids.
    s.get("/tables/player/records/999").expect_error(404, None);
    s.put("/tables/player/records/999", &json!({ "hp": 1, "name": "z", "alive": true, "x": 0.0 }))
        .expect_error(404, None);
    s.patch("/tables/player/records/999", &json!({ "hp": 1 })).expect_error(404, None);
    s.delete("/tables/player/records/999").expect_error(404, None);

    // DELETE: 204 without a body, then the record is gone.
    let del = s.delete(&format!("/tables/player/records/{id}"));
    assert_eq!(del.status, 204);
    assert!(del.body.is_empty());
    s.get(&format!("/tables/player/records/{id}")).expect_error(404, None);
    s.delete(&format!("/tables/player/records/{id}")).expect_error(404, None);
    assert_eq!(total(&s, "player"), 0);
}

#[test]
fn an_array_creates_every_record_in_one_transaction() {
    let s = TestServer::start(&["--tickrate", "120"]);
    player_table(&s);
    let created = s
        .post(
            "/tables/player/records",
            &json!([
                { "hp": 1, "name": "a", "alive": true, "x": 0.0 },
                { "hp": 2, "name": "b", "alive": false, "x": 0.5 },
                { "hp": 3, "name": "c", "alive": true, "x": 1.0 },
            ]),
        )
        .expect(201);
    let ids: Vec<u64> =
        created["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("an id")).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "distinct ids in order: {ids:?}");
    for (i, id) in ids.iter().enumerate() {
        let r = s.get(&format!("/tables/player/records/{id}")).expect(200);
        assert_eq!(r["hp"], i as u64 + 1);
    }

    // One bad record refuses the whole array, naming the record and the field.
    let msg = s
        .post(
            "/tables/player/records",
            &json!([
                { "hp": 4, "name": "d", "alive": true, "x": 0.0 },
                { "hp": "four", "name": "e", "alive": true, "x": 0.0 },
            ]),
        )
        .expect_error(400, None);
    assert!(msg.contains("hp"), "{msg}");
    let msg = s
        .post("/tables/player/records", &json!([{ "hp": 4, "name": "d", "alive": true, "x": 0.0 }, 5]))
        .expect_error(400, None);
    assert!(msg.contains("record 1"), "{msg}");
    let msg = s
        .post("/tables/player/records", &json!([{ "id": 9, "hp": 4, "name": "d", "alive": true, "x": 0.0 }]))
        .expect_error(400, None);
    assert!(msg.contains("id"), "{msg}");
    s.post("/tables/player/records", &json!([])).expect_error(400, None);
    assert_eq!(total(&s, "player"), 3, "refused arrays create nothing");

    // Into an unknown table.
    s.post("/tables/nope/records", &json!({ "hp": 1 })).expect_error(404, None);
    s.post("/tables/nope/records", &json!([{ "hp": 1 }])).expect_error(404, None);
}

fn ids_of(v: &Value) -> Vec<u64> {
    v["records"].as_array().expect("records").iter().map(|r| r["id"].as_u64().expect("id")).collect()
}

fn field_of(v: &Value, field: &str) -> Vec<Value> {
    v["records"].as_array().expect("records").iter().map(|r| r[field].clone()).collect()
}

#[test]
fn listings_filter_order_page_and_count() {
    let s = TestServer::start(&["--tickrate", "120", "--max-page-size", "7"]);
    s.post(
        "/tables/item",
        &json!({ "fields": [
            { "name": "n", "type": "i32" },
            { "name": "tag", "type": "string(8)" },
            { "name": "flag", "type": "bool" },
            { "name": "w", "type": "f64" },
        ] }),
    )
    .expect(201);
    let tags = ["a", "b", "c", "d"];
    let records: Vec<Value> = (0..20)
        .map(|i| json!({ "n": i - 10, "tag": tags[i as usize % 4], "flag": i % 2 == 0, "w": f64::from(i) * 0.5 }))
        .collect();
    let ids = s.post("/tables/item/records", &Value::Array(records)).expect(201)["ids"].clone();
    assert_eq!(ids, json!((1..=20).collect::<Vec<u64>>()));

    let list = |q: &str| s.get(&format!("/tables/item/records?{q}")).expect(200);
    let count = |q: &str| list(&format!("{q}&count=true&limit=0"))["total"].as_u64().expect("total");

    // Default page: the maximum page size (when under 100), id order, no total unless asked.
    let page = list("");
    assert_eq!(ids_of(&page), (1..=7).collect::<Vec<_>>());
    assert_eq!(page["limit"], 7);
    assert_eq!(page["offset"], 0);
    assert!(page.get("total").is_none(), "no total unless count=true: {page}");
    assert_eq!(list("count=true")["total"], 20);
    assert_eq!(ids_of(&list("limit=3&offset=5")), vec![6, 7, 8]);
    assert_eq!(ids_of(&list("offset=18")), vec![19, 20]);
    assert!(ids_of(&list("offset=50")).is_empty());
    let msg = s.get("/tables/item/records?limit=8").expect_error(400, None);
    assert!(msg.contains("limit") && msg.contains('7'), "{msg}");

    // Filters.
    assert_eq!(ids_of(&list("n=eq.0")), vec![11]);
    assert_eq!(count("n=neq.0"), 19);
    assert_eq!(ids_of(&list("n=lt.-8")), vec![1, 2]);
    assert_eq!(ids_of(&list("n=lte.-8")), vec![1, 2, 3]);
    assert_eq!(ids_of(&list("n=gt.7")), vec![19, 20]);
    assert_eq!(ids_of(&list("n=gte.7")), vec![18, 19, 20]);
    assert_eq!(ids_of(&list("n=in.(1,2,3,100)")), vec![12, 13, 14]);
    assert_eq!(count("tag=eq.b"), 5);
    assert_eq!(count("tag=in.(a,d)"), 10);
    assert_eq!(count("flag=eq.true"), 10);
    assert_eq!(ids_of(&list("w=gt.8")), vec![18, 19, 20]);
    assert_eq!(ids_of(&list("id=gte.19")), vec![19, 20]);
    // Several filters all apply; the total counts every match, beyond the page.
    assert_eq!(count("flag=eq.false&n=lt.0"), 5);
    let page = list("n=gte.-5&count=true");
    assert_eq!(page["total"], 15);
    assert_eq!(ids_of(&page).len(), 7);

    // Order.
    assert_eq!(field_of(&list("order=n.desc&limit=3"), "n"), vec![json!(9), json!(8), json!(7)]);
    assert_eq!(field_of(&list("order=n.asc&limit=2"), "n"), vec![json!(-10), json!(-9)]);
    assert_eq!(ids_of(&list("order=id.desc&limit=2")), vec![20, 19]);
    assert_eq!(ids_of(&list("order=tag.asc&limit=5")), vec![1, 5, 9, 13, 17]);
    assert_eq!(field_of(&list("tag=eq.a&n=gte.0&order=n.desc"), "n"), vec![json!(6), json!(2)]);
    let page = list("order=w.desc&offset=1&limit=2&count=true");
    assert_eq!(ids_of(&page), vec![19, 18]);
    assert_eq!(page["total"], 20);

    // Mistakes name the parameter.
    for (q, needle) in [
        ("n=foo.1", "n"),
        ("n=eq.abc", "n"),
        ("n=5", "n"),
        ("n=in.1,2", "n"),
        ("nope=eq.1", "nope"),
        ("order=n.sideways", "order"),
        ("order=nope.asc", "nope"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("count=maybe", "count"),
        ("flag=eq.yes", "flag"),
    ] {
        let msg = s.get(&format!("/tables/item/records?{q}")).expect_error(400, None);
        assert!(msg.contains(needle), "`{q}`: the message names `{needle}`: {msg}");
    }
    s.get("/tables/nope/records").expect_error(404, None);
}

#[test]
fn relations_are_enforced_on_writes_and_deletes() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/team", &json!({ "fields": [{ "name": "label", "type": "string(8)" }] })).expect(201);
    s.post(
        "/tables/member",
        &json!({ "fields": [{ "name": "team_id", "type": "u64" }, { "name": "score", "type": "i32" }] }),
    )
    .expect(201);
    let red =
        s.post("/tables/team/records", &json!({ "label": "red" })).expect(201)["id"].as_u64().expect("id");
    let blue =
        s.post("/tables/team/records", &json!({ "label": "blue" })).expect(201)["id"].as_u64().expect("id");

    // to_field omitted: the target's id.
    let rel = s
        .post("/relations", &json!({ "from_table": "member", "from_field": "team_id", "to_table": "team" }))
        .expect(201);
    let rel_id = rel["id"].as_u64().expect("relation id");
    assert_eq!(rel["to_field"], "id");
    assert_eq!(rel["from_table"], "member");
    let listed = s.get("/relations").expect(200);
    assert_eq!(listed, json!([rel]));

    // Writes pointing at a missing record: 409.
    let m = s.post("/tables/member/records", &json!({ "team_id": red, "score": 1 })).expect(201);
    let mid = m["id"].as_u64().expect("id");
    s.post("/tables/member/records", &json!({ "team_id": 999, "score": 1 })).expect_error(409, None);
    s.patch(&format!("/tables/member/records/{mid}"), &json!({ "team_id": 999 })).expect_error(409, None);
    s.put(&format!("/tables/member/records/{mid}"), &json!({ "team_id": 999, "score": 5 }))
        .expect_error(409, None);
    s.post(
        "/tables/member/records",
        &json!([{ "team_id": blue, "score": 2 }, { "team_id": 998, "score": 3 }]),
    )
    .expect_error(409, None);
    assert_eq!(all_records(&s.client(), "member"), vec![json!({ "id": mid, "team_id": red, "score": 1 })]);
    // Valid changes still work.
    s.patch(&format!("/tables/member/records/{mid}"), &json!({ "team_id": blue })).expect(200);

    // Deleting a record that is still referenced: 409, and it stays.
    let msg = s.delete(&format!("/tables/team/records/{blue}")).expect_error(409, None);
    assert!(msg.contains("team"), "{msg}");
    s.get(&format!("/tables/team/records/{blue}")).expect(200);
    // An unreferenced one can go.
    assert_eq!(s.delete(&format!("/tables/team/records/{red}")).status, 204);

    // Relation mistakes.
    s.post(
        "/relations",
        &json!({ "name": "other", "from_table": "member", "from_field": "nope", "to_table": "team" }),
    )
    .expect_error(400, None);
    let r = s.post(
        "/relations",
        &json!({ "name": "other", "from_table": "member", "from_field": "team_id", "to_table": "nope" }),
    );
    let msg = r.expect_error(400, None);
    assert!(msg.contains("nope"), "{msg}");
    s.post("/relations", &json!({ "from_table": "member" })).expect_error(400, None);
    s.delete("/relations/abc").expect_error(400, None);
    s.delete("/relations/4242").expect_error(404, None);

    // Dropping the relation lifts the checks.
    assert_eq!(s.delete(&format!("/relations/{rel_id}")).status, 204);
    assert_eq!(s.get("/relations").expect(200), json!([]));
    s.delete(&format!("/relations/{rel_id}")).expect_error(404, None);
    s.post("/tables/member/records", &json!({ "team_id": 999, "score": 1 })).expect(201);
    assert_eq!(s.delete(&format!("/tables/team/records/{blue}")).status, 204);
}

#[test]
fn concurrent_clients_lose_nothing() {
    const THREADS: usize = 16;
    const SINGLES: usize = 5;
    const BATCH: usize = 5;
    const PATCHES: u64 = 3;
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post(
        "/tables/counter",
        &json!({ "fields": [
            { "name": "thread", "type": "u32" },
            { "name": "seq", "type": "u32" },
            { "name": "value", "type": "u64" },
        ] }),
    )
    .expect(201);
    let fields: Vec<Value> = (0..8).map(|i| json!({ "name": format!("f{i}"), "type": "u32" })).collect();
    s.post("/tables/shared", &json!({ "fields": fields })).expect(201);
    let zeros: serde_json::Map<String, Value> = (0..8).map(|i| (format!("f{i}"), json!(0))).collect();
    let shared =
        s.post("/tables/shared/records", &Value::Object(zeros)).expect(201)["id"].as_u64().expect("id");

    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = s.client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut ids = Vec::new();
                for seq in 0..SINGLES {
                    let r =
                        c.post("/tables/counter/records", &json!({ "thread": t, "seq": seq, "value": 0 }));
                    ids.push(r.expect(201)["id"].as_u64().expect("id"));
                }
                let batch: Vec<Value> = (SINGLES..SINGLES + BATCH)
                    .map(|seq| json!({ "thread": t, "seq": seq, "value": 0 }))
                    .collect();
                let r = c.post("/tables/counter/records", &Value::Array(batch)).expect(201);
                ids.extend(r["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id")));
                for v in 1..=PATCHES {
                    for id in &ids {
                        let r = c
                            .patch(&format!("/tables/counter/records/{id}"), &json!({ "value": v }))
                            .expect(200);
                        assert_eq!(r["value"], v);
                    }
                }
                // Threads 0..8 also change their own field of one shared record.
                if t < 8 {
                    for v in 1..=5 {
                        c.patch(&format!("/tables/shared/records/{shared}"), &json!({ format!("f{t}"): v }))
                            .expect(200);
                    }
                }
                ids
            })
        })
        .collect();
    // Two readers list while the writers write: always consistent pages, totals never shrink.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let c = s.client();
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0;
                while last < (THREADS * (SINGLES + BATCH)) as u64 && reads < 2000 {
                    let page = c.get("/tables/counter/records?count=true&limit=5").expect(200);
                    let t = page["total"].as_u64().expect("total");
                    assert!(t >= last, "the total went from {last} to {t}");
                    last = t;
                    reads += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        })
        .collect();
    barrier.wait();
    let mut all_ids = BTreeSet::new();
    for (t, w) in writers.into_iter().enumerate() {
        let ids = w.join().expect("writer thread");
        assert_eq!(ids.len(), SINGLES + BATCH, "thread {t}");
        for id in ids {
            assert!(all_ids.insert(id), "id {id} given twice");
        }
    }
    for r in readers {
        r.join().expect("reader thread");
    }

    let records = all_records(&s.client(), "counter");
    assert_eq!(records.len(), THREADS * (SINGLES + BATCH));
    assert_eq!(records.iter().map(|r| r["id"].as_u64().expect("id")).collect::<BTreeSet<_>>(), all_ids);
    let mut per_thread = vec![BTreeSet::new(); THREADS];
    let mut sum = 0;
    for r in &records {
        assert_eq!(r["value"], PATCHES, "every patch applied: {r}");
        sum += r["value"].as_u64().expect("value");
        per_thread[r["thread"].as_u64().expect("thread") as usize].insert(r["seq"].as_u64().expect("seq"));
    }
    assert_eq!(sum, PATCHES * (THREADS * (SINGLES + BATCH)) as u64);
    for (t, seqs) in per_thread.iter().enumerate() {
        assert_eq!(*seqs, (0..(SINGLES + BATCH) as u64).collect::<BTreeSet<_>>(), "thread {t}");
    }
    let shared = s.get(&format!("/tables/shared/records/{shared}")).expect(200);
    for i in 0..8 {
        assert_eq!(shared[format!("f{i}")], 5, "concurrent patches of other fields are kept: {shared}");
    }
}

/// A JSON object with the same key twice is ambiguous (RFC 8259 §4): a record body, a batch, a
/// replacement, a change, a composite value inside one, and a table or field definition with a
/// repeated key are refused with a 400 naming the key, and nothing is written.
#[test]
fn duplicate_keys_in_a_body_are_refused() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/types", &json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }, { "name": "y", "type": "f32" }] }))
        .expect(201);
    s.post(
        "/tables/p",
        &json!({ "fields": [{ "name": "hp", "type": "u32" }, { "name": "pos", "type": "vec2" }] }),
    )
    .expect(201);
    let send = |method: &str, path: &str, body: &str| {
        s.request(method, path, &[("content-type", "application/json")], Some(body.as_bytes().to_vec()))
    };
    for (method, path, body, key) in [
        ("POST", "/tables/p/records", r#"{"hp": 100, "hp": 5, "pos": {"x": 0, "y": 0}}"#, "hp"),
        ("POST", "/tables/p/records", r#"{"hp": 100, "pos": {"x": 0, "x": 1, "y": 0}}"#, "x"),
        (
            "POST",
            "/tables/p/records",
            r#"[{"hp": 1, "pos": {"x": 0, "y": 0}}, {"hp": 1, "hp": 2, "pos": {"x": 0, "y": 0}}]"#,
            "hp",
        ),
    ] {
        let r = send(method, path, body);
        let msg = r.expect_error(400, None);
        assert!(msg.contains(&format!("`{key}` appears twice")), "{method} {path} {body}: {msg}");
        // In a batch, the record is named as other batch errors name it.
        assert_eq!(body.starts_with('['), msg.starts_with("record 1: "), "{body}: {msg}");
    }
    assert_eq!(total(&s, "p"), 0, "nothing is written");

    let id =
        s.post("/tables/p/records", &json!({ "hp": 7, "pos": { "x": 1, "y": 2 } })).expect(201)["id"].clone();
    let before = s.get(&format!("/tables/p/records/{id}")).expect(200);
    let path = format!("/tables/p/records/{id}");
    for (method, body) in [
        ("PATCH", r#"{"hp": 100, "hp": 5}"#),
        ("PATCH", r#"{"pos": {"x": 5, "y": 5, "y": 6}}"#),
        ("PUT", r#"{"hp": 100, "pos": {"x": 0, "y": 0}, "hp": 5}"#),
    ] {
        let msg = send(method, &path, body).expect_error(400, None);
        assert!(msg.contains("appears twice"), "{method} {body}: {msg}");
    }
    assert_eq!(s.get(&path).expect(200), before, "refused changes change nothing");

    // Definitions: a repeated key of a table, a field or a type is refused too.
    let msg = send(
        "POST",
        "/tables/q",
        r#"{"fields": [{"name": "a", "type": "u8"}], "fields": [{"name": "b", "type": "u8"}]}"#,
    )
    .expect_error(400, None);
    assert!(msg.contains("`fields`"), "{msg}");
    let msg = send("POST", "/tables/q", r#"{"fields": [{"name": "a", "name": "b", "type": "u8"}]}"#)
        .expect_error(400, None);
    assert!(msg.contains("`name`"), "{msg}");
    let msg = send("POST", "/tables/p/fields", r#"{"name": "a", "type": "u8", "type": "u16"}"#)
        .expect_error(400, None);
    assert!(msg.contains("`type`"), "{msg}");
    s.get("/tables/q").expect_error(404, None);
    assert_eq!(s.get("/tables/p").expect(200)["fields"].as_array().map(Vec::len), Some(2));
}

/// A batch refused by a relation at commit names the record by its position in the batch
/// (`record 2: ...`, from 0) like every other refused batch, not by the id it was given (which
/// the rollback gives back); a single record's message names no id either.
#[test]
fn a_batch_refused_by_a_relation_names_the_position_in_the_batch() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/color", &json!({ "fields": [{ "name": "code", "type": "string(8)" }] })).expect(201);
    s.post(
        "/tables/car",
        &json!({ "fields": [{ "name": "color", "type": "string(8)" }, { "name": "owner", "type": "u64" }] }),
    )
    .expect(201);
    s.post("/tables/color/records", &json!({ "code": "red" })).expect(201);
    s.post(
        "/relations",
        &json!({ "from_table": "car", "from_field": "color", "to_table": "color", "to_field": "code" }),
    )
    .expect(201);
    s.post("/relations", &json!({ "from_table": "car", "from_field": "owner", "to_table": "color" }))
        .expect(201);
    let msg = s
        .post(
            "/tables/car/records",
            &json!([{ "color": "red", "owner": 0 }, { "color": "red", "owner": 0 }, { "color": "blue", "owner": 0 }]),
        )
        .expect_error(409, Some("constraint_violation"));
    assert_eq!(total(&s, "car"), 0);
    assert!(msg.starts_with("record 2: relation `"), "the message should name record 2 of the batch: {msg}");
    assert!(msg.contains("\"blue\"") && !msg.contains("record 3"), "{msg}");
    // A reference by id, refused at commit too.
    let msg = s
        .post("/tables/car/records", &json!([{ "color": "red", "owner": 1 }, { "color": "red", "owner": 7 }]))
        .expect_error(409, Some("constraint_violation"));
    assert!(msg.starts_with("record 1: relation `") && msg.contains("id 7"), "{msg}");
    // One record: no position and no id.
    let msg = s
        .post("/tables/car/records", &json!({ "color": "blue", "owner": 0 }))
        .expect_error(409, Some("constraint_violation"));
    assert!(
        msg.starts_with("relation `") && msg.contains(": the record refers to the value \"blue\""),
        "{msg}"
    );
    assert_eq!(total(&s, "car"), 0);
}
