//! End-to-end: schema over REST against the real `tabledb-server` binary — tables, fields,
//! compaction, composite types — and the service endpoints: `/health`, `/metrics`,
//! `/openapi.json`, `/rpc`.

mod common;

use common::{ROUTES, TestServer, all_records, check_openapi_paths};
use serde_json::{Value, json};

#[test]
fn tables_fields_and_compaction() {
    let s = TestServer::start(&["--tickrate", "120"]);
    assert_eq!(s.get("/tables").expect(200), json!([]));

    let t = s
        .post(
            "/tables/unit",
            &json!({ "fields": [{ "name": "hp", "type": "u32" }, { "name": "tag", "type": "string", "max_len": 4 }] }),
        )
        .expect(201);
    assert_eq!(t["name"], "unit");
    assert_eq!(t["records"], 0);
    let fields = t["fields"].as_array().expect("fields");
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0]["name"], "hp");
    assert_eq!(fields[0]["type"], "u32");
    assert_eq!(fields[1]["max_len"], 4);
    assert_eq!(s.get("/tables/unit").expect(200), t);
    assert_eq!(s.get("/tables").expect(200), json!([t]));

    // Creating it again conflicts; unknown tables are 404.
    s.post("/tables/unit", &json!({ "fields": [{ "name": "hp", "type": "u32" }] })).expect_error(409, None);
    s.get("/tables/nope").expect_error(404, Some("unknown_table"));
    s.delete("/tables/nope").expect_error(404, None);
    s.post("/tables/nope/fields", &json!({ "name": "a", "type": "u8" })).expect_error(404, None);
    s.delete("/tables/nope/fields/a").expect_error(404, None);
    s.request("POST", "/tables/nope/compact", &[], None).expect_error(404, None);

    // Bad definitions name what is wrong.
    let msg =
        s.post("/tables/bad", &json!({ "fields": [{ "name": "a", "type": "u99" }] })).expect_error(400, None);
    assert!(msg.contains("u99"), "{msg}");
    let msg = s
        .post("/tables/bad", &json!({ "fields": [{ "name": "Not Valid", "type": "u8" }] }))
        .expect_error(400, None);
    assert!(msg.contains("Not Valid"), "{msg}");
    let msg = s.post("/tables/bad", &json!({ "fields": [{ "name": "a" }] })).expect_error(400, None);
    assert!(msg.contains("type"), "{msg}");
    let msg = s.post("/tables/bad", &json!({ "columns": [] })).expect_error(400, None);
    assert!(msg.contains("columns"), "{msg}");
    s.post("/tables/bad", &json!({ "fields": [] })).expect_error(400, None);
    s.post("/tables/bad", &json!(5)).expect_error(400, None);
    s.post("/tables/bad", &json!([])).expect_error(400, None);
    s.post("/tables/Bad%20Name", &json!({ "fields": [{ "name": "a", "type": "u8" }] }))
        .expect_error(400, None);
    assert_eq!(s.get("/tables").expect(200).as_array().map(Vec::len), Some(1));

    let a = s.post("/tables/unit/records", &json!({ "hp": 5, "tag": "a" })).expect(201)["id"].clone();
    let b = s.post("/tables/unit/records", &json!({ "hp": 6, "tag": "b" })).expect(201)["id"].clone();

    // A new field: 201, the table with it; existing records get it zeroed.
    let t = s.post("/tables/unit/fields", &json!({ "name": "level", "type": "u16" })).expect(201);
    assert!(t["fields"].as_array().expect("fields").iter().any(|f| f["name"] == "level"), "{t}");
    assert_eq!(
        s.get(&format!("/tables/unit/records/{a}")).expect(200),
        json!({ "id": a, "hp": 5, "tag": "a", "level": 0 })
    );
    s.patch(&format!("/tables/unit/records/{a}"), &json!({ "level": 3 })).expect(200);
    let msg = s
        .post("/tables/unit/fields", &json!({ "name": "level", "type": "u8" }))
        .expect_error(409, Some("field_exists"));
    assert!(msg.contains("level"), "{msg}");
    s.post("/tables/unit/fields", &json!({ "name": "x" })).expect_error(400, None);

    // Removing a field.
    let r = s.delete("/tables/unit/fields/tag");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        s.get(&format!("/tables/unit/records/{a}")).expect(200),
        json!({ "id": a, "hp": 5, "level": 3 })
    );
    let msg = s.delete("/tables/unit/fields/tag").expect_error(404, Some("unknown_field"));
    assert!(msg.contains("tag"), "{msg}");

    // Compaction keeps the records and their ids.
    assert_eq!(s.delete(&format!("/tables/unit/records/{b}")).status, 204);
    let t = s.request("POST", "/tables/unit/compact", &[], None).expect(200);
    assert_eq!(t["records"], 1);
    assert_eq!(all_records(&s.client(), "unit"), vec![json!({ "id": a, "hp": 5, "level": 3 })]);
    let c = s.post("/tables/unit/records", &json!({ "hp": 7, "level": 1 })).expect(201)["id"].clone();
    assert!(c.as_u64() > a.as_u64(), "ids are never reused: {c} after {a}");

    // Dropping the table.
    assert_eq!(s.delete("/tables/unit").status, 204);
    s.get("/tables/unit").expect_error(404, None);
    s.get("/tables/unit/records").expect_error(404, None);
    assert_eq!(s.get("/tables").expect(200), json!([]));
}

#[test]
fn composite_types() {
    let s = TestServer::start(&["--tickrate", "120"]);
    let types = s.get("/types").expect(200);
    let names: Vec<&str> =
        types.as_array().expect("types").iter().filter_map(|t| t["name"].as_str()).collect();
    for p in ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"] {
        assert!(names.contains(&p), "{p} in {names:?}");
    }

    let vec2 = s
        .post("/types", &json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }, { "name": "y", "type": "f32" }] }))
        .expect(201);
    assert_eq!(vec2["name"], "vec2");
    assert_eq!(vec2["kind"], "composite");
    assert_eq!(vec2["size"], 8);
    s.post("/types", &json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }] }))
        .expect_error(409, None);
    let msg = s
        .post("/types", &json!({ "name": "bad", "fields": [{ "name": "x", "type": "nope" }] }))
        .expect_error(400, None);
    assert!(msg.contains("nope"), "{msg}");
    s.post("/types", &json!({ "name": "bad" })).expect_error(400, None);
    assert!(s.get("/types").expect(200).as_array().expect("types").iter().any(|t| t == &vec2));

    s.post(
        "/tables/body",
        &json!({ "fields": [{ "name": "pos", "type": "vec2" }, { "name": "hp", "type": "u8" }] }),
    )
    .expect(201);
    let r = s.post("/tables/body/records", &json!({ "pos": { "x": 1.5, "y": -2.0 }, "hp": 3 })).expect(201);
    assert_eq!(r["pos"], json!({ "x": 1.5, "y": -2.0 }));
    let id = r["id"].clone();
    let r = s
        .patch(&format!("/tables/body/records/{id}"), &json!({ "pos": { "x": 0.25, "y": 4.0 } }))
        .expect(200);
    assert_eq!(r, json!({ "id": id, "pos": { "x": 0.25, "y": 4.0 }, "hp": 3 }));
    let msg =
        s.post("/tables/body/records", &json!({ "pos": { "x": 1.0 }, "hp": 3 })).expect_error(400, None);
    assert!(msg.contains("pos"), "{msg}");
}

#[test]
fn health_and_metrics() {
    let s = TestServer::start(&["--tickrate", "30"]);
    let h = s.get("/health").expect(200);
    assert_eq!(h["status"], "ok");
    assert_eq!(h["tick_rate"], 30);
    assert_eq!(h["durability"], "tick");
    assert_eq!(h["persistence_errors"], 0);
    // The tick loop runs.
    let ticks = |s: &TestServer| s.get("/health").expect(200)["ticks"].as_u64().expect("ticks");
    let t0 = ticks(&s);
    assert!(
        common::eventually(std::time::Duration::from_secs(5), || (ticks(&s) > t0).then_some(())).is_some()
    );

    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    s.post("/tables/t/records", &json!({ "a": 1 })).expect(201);
    s.get("/tables/nope").expect_error(404, None);

    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type").is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        m.header("content-type")
    );
    let text = m.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    };
    assert!(value("tabledb_ticks_total") > 0.0);
    assert_eq!(value("tabledb_queue_length"), 0.0);
    assert!(value("tabledb_queue_capacity") >= 1.0);
    assert_eq!(value("tabledb_tick_rate_hz"), 30.0);
    assert!(value("tabledb_writes_total") >= 1.0);
    assert!(value("tabledb_ddl_total") >= 1.0);
    assert!(value("tabledb_commits_total") >= 1.0);
    assert_eq!(value("tabledb_tables"), 1.0);
    assert!(value("tabledb_http_responses_2xx_total") >= 3.0);
    assert!(value("tabledb_http_responses_4xx_total") >= 1.0);
    assert!(text.contains("# TYPE tabledb_ticks_total counter"), "{text}");
    assert!(text.contains("# TYPE tabledb_queue_length gauge"), "{text}");
    assert!(text.contains("tabledb_tick_duration_seconds_bucket{le=\"+Inf\"}"), "{text}");
    // Every sample line is `name[{labels}] value`.
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (name, v) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
        assert!(name.starts_with("tabledb_"), "{line:?}");
        assert!(v.parse::<f64>().is_ok() || v == "+Inf", "{line:?}");
    }
}

#[test]
fn openapi_lists_every_route() {
    let s = TestServer::start(&[]);
    s.post(
        "/tables/ship",
        &json!({ "fields": [{ "name": "speed", "type": "f32" }, { "name": "crew", "type": "u16" }] }),
    )
    .expect(201);
    let r = s.get("/openapi.json");
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let doc = r.json();
    check_openapi_paths(&doc, ROUTES);
    // The record schema of each table, and the error schema.
    let ship = &doc["components"]["schemas"]["record_ship"];
    assert_eq!(ship["properties"]["speed"]["type"], "number");
    assert_eq!(ship["properties"]["crew"]["type"], "integer");
    assert_eq!(ship["required"], json!(["speed", "crew"]));
    assert!(doc["components"]["schemas"]["Error"].is_object());
    // Listing parameters are documented.
    let list = &doc["paths"]["/tables/{name}/records"]["get"]["parameters"];
    for p in ["limit", "offset", "order", "count"] {
        assert!(list.as_array().expect("parameters").iter().any(|q| q["name"] == p), "{p} in {list}");
    }
    // No keys: no security requirement.
    assert!(doc.get("security").is_none());
    // No procedures in the stock binary.
    assert_eq!(s.get("/rpc").expect(200), json!([]));
    assert!(!doc["paths"].as_object().expect("paths").keys().any(|k| k.starts_with("/rpc/")));
    s.post("/rpc/anything", &json!({})).expect_error(404, Some("unknown_procedure"));
}

/// A field or member type is bounded in length and in array nesting. A name of a hundred
/// thousand `[1]` suffixes (300 KB, under the body limit) is refused with a 400 that names the
/// field and the limit, the server lives on, and a refused request registers no type.
#[test]
fn deeply_nested_array_types_are_refused_and_register_nothing() {
    use tabledb::types::{MAX_ARRAY_DEPTH, MAX_TYPE_NAME_LEN};
    let s = TestServer::start(&[]);
    s.post("/tables/base", &json!({ "fields": [{ "name": "v", "type": "u8" }] })).expect(201);
    let types_before = s.get("/types").expect(200);

    let huge = format!("u8{}", "[1]".repeat(100_000));
    let too_deep = format!("u8{}", "[1]".repeat(MAX_ARRAY_DEPTH + 1));
    for ty in [&huge, &too_deep] {
        let limit = if ty.len() > MAX_TYPE_NAME_LEN { MAX_TYPE_NAME_LEN } else { MAX_ARRAY_DEPTH };
        let msg = s
            .post("/tables/t", &json!({ "fields": [{ "name": "deep", "type": ty }] }))
            .expect_error(400, None);
        assert!(msg.contains("`deep`") && msg.contains(&limit.to_string()), "{msg}");
        assert!(msg.len() < 400, "the message does not echo the type name: {} bytes", msg.len());
        let msg =
            s.post("/tables/base/fields", &json!({ "name": "deep", "type": ty })).expect_error(400, None);
        assert!(msg.contains("`deep`") && msg.contains(&limit.to_string()), "{msg}");
        let msg = s
            .post("/types", &json!({ "name": "nest", "members": [{ "name": "deep", "type": ty }] }))
            .expect_error(400, None);
        assert!(msg.contains("`deep`") && msg.contains(&limit.to_string()), "{msg}");
        s.get("/health").expect(200);
    }
    // A valid field before the refused one registers nothing either.
    let msg = s
        .post("/tables/t", &json!({ "fields": [{ "name": "ok", "type": "u16[3][3]" }, { "name": "deep", "type": too_deep }] }))
        .expect_error(400, None);
    assert!(msg.contains("`deep`"), "{msg}");
    assert_eq!(s.get("/types").expect(200), types_before, "refused requests registered types");
    s.get("/tables/t").expect_error(404, None);
    assert_eq!(s.get("/tables/base").expect(200)["fields"].as_array().map(Vec::len), Some(1));

    // Exactly the depth limit is accepted.
    let deepest = format!("u8{}", "[1]".repeat(MAX_ARRAY_DEPTH));
    let t = s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": deepest }] })).expect(201);
    assert_eq!(t["fields"][0]["type"], deepest);
}

/// A refused name or key is not echoed back in full: a 60 000-byte table, field, type or
/// relation name, record key, path segment or query parameter comes back cut to its first 64
/// bytes with its length, and the rule it breaks.
#[test]
fn a_refused_long_name_is_not_echoed_in_full() {
    let s = TestServer::start(&["--tickrate", "120"]);
    let long = "a".repeat(60_000);
    let short = |msg: &str| {
        assert!(msg.len() < 400, "the error is {} bytes long: {}...", msg.len(), &msg[..120.min(msg.len())]);
    };
    let msg = s
        .post(&format!("/tables/{long}"), &json!({ "fields": [{ "name": "x", "type": "u8" }] }))
        .expect_error(400, Some("invalid_name"));
    short(&msg);
    assert!(msg.contains("60000 bytes") && msg.contains("1 to 63 characters"), "{msg}");
    let msg = s
        .post("/tables/t", &json!({ "fields": [{ "name": long, "type": "u8" }] }))
        .expect_error(400, Some("invalid_name"));
    short(&msg);
    assert!(msg.contains("60000 bytes") && msg.contains("1 to 63 characters"), "{msg}");
    // A bad type and a long name: the type error names the field, cut short.
    let msg =
        s.post("/tables/t", &json!({ "fields": [{ "name": long, "type": "nope" }] })).expect_error(400, None);
    short(&msg);
    s.post("/tables/t", &json!({ "fields": [{ "name": "x", "type": "u8" }] })).expect(201);
    let msg = s.post("/tables/t/fields", &json!({ "name": long, "type": "u8" })).expect_error(400, None);
    short(&msg);
    let msg = s
        .post("/types", &json!({ "name": long, "fields": [{ "name": "x", "type": "u8" }] }))
        .expect_error(400, None);
    short(&msg);
    let msg = s
        .post(
            "/relations",
            &json!({ "name": long, "from_table": "t", "from_field": "x", "to_table": "t", "to_field": "x" }),
        )
        .expect_error(400, None);
    short(&msg);
    let msg = s
        .post("/relations", &json!({ "from_table": long, "from_field": "x", "to_table": "t" }))
        .expect_error(400, None);
    short(&msg);

    // Keys of a record, and of a definition.
    let msg = s
        .post("/tables/t/records", &json!({ "x": 1, long.clone(): 2 }))
        .expect_error(400, Some("unknown_field"));
    short(&msg);
    assert!(msg.contains("(60000 bytes)"), "{msg}");
    let msg = s.patch("/tables/t/records/1", &json!({ long.clone(): 2 })).expect_error(400, None);
    short(&msg);
    let msg = s
        .post("/tables/u", &json!({ "fields": [{ "name": "x", "type": "u8" }], long.clone(): 1 }))
        .expect_error(400, None);
    short(&msg);
    let msg = s
        .post("/tables/t/fields", &json!({ "name": "y", "type": "string", "max_len": long }))
        .expect_error(400, None);
    short(&msg);

    // Paths and query parameters.
    let long_path = "b".repeat(30_000);
    short(&s.get(&format!("/tables/{long_path}")).expect_error(404, Some("unknown_table")));
    short(&s.get(&format!("/tables/t/records/{long_path}")).expect_error(400, None));
    short(&s.get(&format!("/tables/t/records?{long_path}=eq.1")).expect_error(400, None));
    short(&s.get(&format!("/tables/t/records?x=eq.{long_path}")).expect_error(400, None));
    short(&s.get(&format!("/tables/t/records?limit={long_path}")).expect_error(400, None));
    short(&s.get(&format!("/nope/{long_path}")).expect_error(404, None));
    let msg = s.get(&format!("/types/{long_path}")).expect_error(404, Some("unknown_type"));
    short(&msg);
    assert!(msg.contains("(30000 bytes)"), "{msg}");
    short(&s.post(&format!("/rpc/{long_path}"), &json!({})).expect_error(404, None));
    // A key whose backquote would end serde's quoting early: the whole message is bounded.
    let key = format!("`{}", "y".repeat(5000));
    let msg = s
        .post("/tables/v", &json!({ "fields": [{ "name": "a", "type": "u8", key: 1 }] }))
        .expect_error(400, None);
    short(&msg);
    assert_eq!(s.get("/tables").expect(200).as_array().map(Vec::len), Some(1), "nothing was created");
}

/// Relations created without a name get names that cannot clash: `a_b.c` and `a.b_c` once both
/// got `a_b_c_fkey`, and the second, unrelated relation was refused over a name the client
/// never chose. A name the client gives that is taken is refused with a 409 that says another
/// `name` can be given.
#[test]
fn default_relation_names_of_different_relations_do_not_clash() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/target", &json!({ "fields": [{ "name": "v", "type": "u8" }] })).expect(201);
    s.post("/tables/a_b", &json!({ "fields": [{ "name": "c", "type": "u64" }] })).expect(201);
    s.post("/tables/a", &json!({ "fields": [{ "name": "b_c", "type": "u64" }] })).expect(201);
    let first = s
        .post("/relations", &json!({ "from_table": "a_b", "from_field": "c", "to_table": "target" }))
        .expect(201);
    let r = s.post("/relations", &json!({ "from_table": "a", "from_field": "b_c", "to_table": "target" }));
    assert_eq!(r.status, 201, "a relation on a.b_c was refused: {}", r.text());
    assert_ne!(first["name"], r.json()["name"]);

    let msg = s
        .post(
            "/relations",
            &json!({ "name": first["name"], "from_table": "a", "from_field": "b_c", "to_table": "target" }),
        )
        .expect_error(409, Some("constraint_violation"));
    assert!(msg.contains("give another `name`"), "{msg}");
    assert_eq!(s.get("/relations").expect(200).as_array().map(Vec::len), Some(2));
}

/// Creating something whose name is taken is a conflict (409): a table, a type, and a field
/// the table already has. Nothing changes.
#[test]
fn adding_a_field_that_exists_is_a_conflict_like_a_table_or_type_that_exists() {
    let s = TestServer::start(&[]);
    s.post("/tables/t", &json!({ "fields": [{ "name": "hp", "type": "u32" }] })).expect(201);
    s.post("/tables/t", &json!({ "fields": [{ "name": "hp", "type": "u32" }] })).expect_error(409, None);
    let def = json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }] });
    s.post("/types", &def).expect(201);
    s.post("/types", &def).expect_error(409, None);
    let m = s
        .post("/tables/t/fields", &json!({ "name": "hp", "type": "u8" }))
        .expect_error(409, Some("field_exists"));
    assert!(m.contains("hp"), "{m}");
    assert_eq!(s.get("/tables/t/fields/hp").expect(200)["type"], "u32", "nothing changed");
    // Twice in one new table's body is a bad body, not a conflict.
    let twice = json!({ "fields": [{ "name": "a", "type": "u8" }, { "name": "a", "type": "u8" }] });
    s.post("/tables/u", &twice).expect_error(400, Some("field_exists"));
}

/// A table has at most 1024 fields: a wider one is refused before any work is done on it, and
/// so is a field past the limit.
#[test]
fn tables_have_a_limited_number_of_fields() {
    let s = TestServer::start(&[]);
    let fields = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({ "name": format!("f{i}"), "type": "u8" })).collect()
    };
    let m =
        s.post("/tables/wide", &json!({ "fields": fields(30_000) })).expect_error(422, Some("limit_reached"));
    assert!(m.contains("fields of one table") && m.contains("1024"), "{m}");
    s.get("/tables/wide").expect_error(404, None);
    s.post("/tables/full", &json!({ "fields": fields(1024) })).expect(201);
    let m = s
        .post("/tables/full/fields", &json!({ "name": "more", "type": "u8" }))
        .expect_error(422, Some("limit_reached"));
    assert!(m.contains("fields of one table"), "{m}");
    assert_eq!(s.get("/tables/full").expect(200)["fields"].as_array().map(Vec::len), Some(1024));
}
