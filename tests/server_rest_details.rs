//! End-to-end: details of the REST API — f32 values as written, fields named like listing
//! parameters, which record of a batch is refused, `Accept` q-values, relation violations
//! naming values, and the statuses and string bounds `/openapi.json` documents.

mod common;

use common::{Options, TestServer};
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<u64> {
    page["records"].as_array().expect("records").iter().map(|r| r["id"].as_u64().expect("id")).collect()
}

/// Filters on an f32 field compare with the f32 a write of the filter's number stores: the
/// record written with 0.1 matches `eq.0.1` and `lte.0.1`, not `gt.0.1`.
#[test]
fn f32_filters_compare_with_the_stored_f32() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "x", "type": "f32" }] })).expect(201);
    let id = s.post("/tables/p/records", &json!({ "x": 0.1 })).expect(201)["id"].as_u64().unwrap();
    let eq = s.get("/tables/p/records?x=eq.0.1").expect(200);
    let gt = s.get("/tables/p/records?x=gt.0.1").expect(200);
    let lte = s.get("/tables/p/records?x=lte.0.1").expect(200);
    let in_ = s.get("/tables/p/records?x=in.(0.5,0.1)").expect(200);
    assert_eq!(
        (ids(&eq), ids(&gt), ids(&lte), ids(&in_)),
        (vec![id], vec![], vec![id], vec![id]),
        "the record written with x = 0.1 must match eq, lte and in, not gt"
    );
    for v in F32_SAMPLES {
        let id = s.post("/tables/p/records", &json!({ "x": v })).expect(201)["id"].as_u64().unwrap();
        for op in ["eq", "gte", "lte"] {
            let page = s.get(&format!("/tables/p/records?x={op}.{v}&id=eq.{id}")).expect(200);
            assert_eq!(ids(&page), vec![id], "x={op}.{v}");
        }
        for op in ["neq", "gt", "lt"] {
            let page = s.get(&format!("/tables/p/records?x={op}.{v}&id=eq.{id}")).expect(200);
            assert_eq!(ids(&page), Vec::<u64>::new(), "x={op}.{v}");
        }
    }
    // A finite number beyond the f32 range (which no write stores) compares as it is.
    let all = s.get("/tables/p/records?count=true").expect(200)["total"].as_u64().unwrap();
    assert_eq!(s.get("/tables/p/records?x=lt.1e39&count=true").expect(200)["total"], all);
    assert_eq!(s.get("/tables/p/records?x=gt.1e39&count=true").expect(200)["total"], 0);
}

const F32_SAMPLES: [f64; 10] =
    [0.3, 1.1, -2.7, std::f64::consts::PI, 1e-7, 16_777_217.0, 3.4028235e38, 1e-45, 123_456.79, 0.0];

/// An f32 is echoed as the shortest decimal of the stored f32 (0.1, not 0.10000000149011612),
/// and writing the echo back stores the same bits.
#[test]
fn f32_values_echo_as_written() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "x", "type": "f32" }] })).expect(201);
    let r = s.post("/tables/p/records", &json!({ "x": 0.1 })).expect(201);
    assert_eq!(r["x"], json!(0.1), "x written as 0.1 is echoed as {}", r["x"]);
    let raw = |id: u64| {
        s.request("GET", &format!("/tables/p/records/{id}"), &[("accept", "application/octet-stream")], None)
            .body
    };
    for v in F32_SAMPLES {
        let stored = v as f32;
        let r = s.post("/tables/p/records", &json!({ "x": v })).expect(201);
        let id = r["id"].as_u64().unwrap();
        let shown = r["x"].as_f64().unwrap();
        assert_eq!(shown, stored.to_string().parse::<f64>().unwrap(), "{v} is echoed as {shown}");
        assert_eq!(raw(id), stored.to_le_bytes(), "{v} is stored as its f32");
        s.put(&format!("/tables/p/records/{id}"), &r).expect(200);
        assert_eq!(raw(id), stored.to_le_bytes(), "{v}: the echo {shown} reads back as the same f32");
    }
}

/// Fields named `count`, `limit`, `offset` and `order` are filtered with the usual filter form,
/// and the listing parameters of the same names keep working beside them.
#[test]
fn fields_named_like_listing_parameters_can_be_filtered() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post(
        "/tables/stock",
        &json!({ "fields": [
            { "name": "count", "type": "u32" }, { "name": "limit", "type": "u32" },
            { "name": "offset", "type": "i32" }, { "name": "order", "type": "string(8)" },
        ] }),
    )
    .expect(201);
    let rows = [(5, 1, -1, "a"), (6, 2, 0, "b"), (5, 3, 1, "c")];
    let mut created = Vec::new();
    for (count, limit, offset, order) in rows {
        let r = s
            .post(
                "/tables/stock/records",
                &json!({ "count": count, "limit": limit, "offset": offset, "order": order }),
            )
            .expect(201);
        created.push(r["id"].as_u64().unwrap());
    }
    let (a, b, c) = (created[0], created[1], created[2]);
    assert_eq!(ids(&s.get("/tables/stock/records?count=eq.5").expect(200)), vec![a, c]);
    assert_eq!(ids(&s.get("/tables/stock/records?limit=eq.1").expect(200)), vec![a]);
    assert_eq!(ids(&s.get("/tables/stock/records?limit=in.(2,3)").expect(200)), vec![b, c]);
    assert_eq!(ids(&s.get("/tables/stock/records?offset=lt.0").expect(200)), vec![a]);
    assert_eq!(ids(&s.get("/tables/stock/records?order=gte.b").expect(200)), vec![b, c]);

    // The listing parameters beside filters on the fields of the same names.
    let page =
        s.get("/tables/stock/records?count=eq.5&count=true&limit=1&order=limit.desc&offset=0").expect(200);
    assert_eq!((ids(&page), page["total"].clone(), page["limit"].clone()), (vec![c], json!(2), json!(1)));
    let page = s.get("/tables/stock/records?order=count.desc&limit=2&offset=1").expect(200);
    assert_eq!(ids(&page), vec![c, a], "count 6, then the 5s (descending ids)");
    // A value of neither form is still a mistake in the listing parameter.
    let msg = s.get("/tables/stock/records?count=maybe").expect_error(400, None);
    assert!(msg.contains("count"), "{msg}");
    let msg = s.get("/tables/stock/records?limit=lots").expect_error(400, None);
    assert!(msg.contains("limit"), "{msg}");
    // On a table without such a field, the filter form is not taken as a filter.
    s.post("/tables/plain", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    s.get("/tables/plain/records?count=eq.5").expect_error(400, None);
}

/// A refused batch changes nothing, and its 400 names the record of the batch (from 0); a
/// single record's message has no position.
#[test]
fn a_refused_batch_names_the_record() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "name", "type": "string(4)" }] })).expect(201);
    for (batch, bad) in [
        (json!([{ "name": "ok" }, { "name": "ok" }, { "name": "too long" }]), 2),
        (json!([{ "name": "ok" }, { "name": 5 }]), 1),
        (json!([{ "nom": "ok" }, { "name": "ok" }]), 0),
    ] {
        let msg = s.post("/tables/p/records", &batch).expect_error(400, None);
        assert!(msg.starts_with(&format!("record {bad}: ")), "the message should name record {bad}: {msg}");
    }
    assert_eq!(s.get("/tables/p/records?count=true").expect(200)["total"], 0, "batches are atomic");
    let msg = s.post("/tables/p/records", &json!({ "name": "too long" })).expect_error(400, None);
    assert!(!msg.starts_with("record "), "{msg}");
}

/// `GET /tables/{name}/records/{id}` answers raw bytes only when `Accept` prefers
/// `application/octet-stream` to `application/json` by q-value; q=0 means not acceptable.
#[test]
fn accept_q_values_choose_between_json_and_raw_bytes() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "a", "type": "u32" }] })).expect(201);
    s.post("/tables/p/records", &json!({ "a": 7 })).expect(201);
    let json_ = Some("application/json");
    let raw = Some("application/octet-stream");
    for (accept, want) in [
        (None, json_),
        (Some("application/octet-stream"), raw),
        (Some("APPLICATION/Octet-Stream"), raw),
        (Some("application/octet-stream; q=1.0"), raw),
        (Some("application/json, application/octet-stream;q=0"), json_),
        (Some("application/octet-stream;q=0"), json_),
        (Some("application/octet-stream;q=0, */*"), json_),
        (Some("application/octet-stream;q=0.5, application/json;q=0.9"), json_),
        (Some("application/octet-stream, application/json;q=0.5"), raw),
        (Some("application/json;q=0, application/octet-stream;q=0.1"), raw),
        (Some("application/*;q=0.2, application/octet-stream"), raw),
        (Some("application/octet-stream, application/*;q=0.2"), raw),
        (Some("application/octet-stream;q=0.3, application/*;q=0.8"), json_),
        (Some("application/octet-stream;q=x, application/json;q=0.1"), json_),
        (Some("application/octet-stream, application/json"), json_),
        (Some("*/*"), json_),
        (Some("text/html"), json_),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = s.request("GET", "/tables/p/records/1", &headers, None);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("content-type"), want, "Accept: {accept:?}");
        if want == raw {
            assert_eq!(r.body, 7u32.to_le_bytes(), "{accept:?}");
        } else {
            assert_eq!(r.json(), json!({ "id": 1, "a": 7 }), "{accept:?}");
        }
    }
}

/// A violated relation by key names the value as JSON (`"green"`), never the record's bytes:
/// when a reference is written, when its target is changed, and when a relation is created
/// over records that already violate it. A relation by id names the id.
#[test]
fn relation_violations_name_the_value() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/team", &json!({ "fields": [{ "name": "label", "type": "string(8)" }] })).expect(201);
    s.post("/tables/member", &json!({ "fields": [{ "name": "team_label", "type": "string(8)" }, { "name": "team", "type": "u64" }] }))
        .expect(201);
    s.post(
        "/relations",
        &json!({ "from_table": "member", "from_field": "team_label", "to_table": "team", "to_field": "label" }),
    )
    .expect(201);
    s.post("/tables/team/records", &json!({ "label": "red" })).expect(201);
    let m = s.post("/tables/member/records", &json!({ "team_label": "red", "team": 0 })).expect(201)["id"]
        .clone();

    let on_write = s
        .patch(&format!("/tables/member/records/{m}"), &json!({ "team_label": "green" }))
        .expect_error(409, Some("constraint_violation"));
    let on_target = s.patch("/tables/team/records/1", &json!({ "label": "pink" })).expect_error(409, None);
    s.patch(&format!("/tables/member/records/{m}"), &json!({ "team": 9 })).expect(200);
    let on_create = s
        .post("/relations", &json!({ "from_table": "member", "from_field": "team", "to_table": "team" }))
        .expect_error(409, None);
    for msg in [&on_write, &on_target, &on_create] {
        assert!(!msg.contains("[5, 0") && !msg.contains("[3, 0"), "raw bytes in the message: {msg}");
    }
    assert!(on_write.contains("\"green\""), "{on_write}");
    assert!(on_target.contains("\"red\""), "{on_target}");
    assert!(on_create.contains("id 9"), "{on_create}");

    s.delete(&format!("/tables/member/records/{m}")).expect(204);
    s.post("/tables/member/records", &json!({ "team_label": "red", "team": 0 })).expect(201);
    s.post("/tables/team/records", &json!({ "label": "blue" })).expect(201);
    s.post("/tables/member/records", &json!({ "team_label": "blue", "team": 0 })).expect(201);
    s.delete("/relations/1").expect(204);
    s.patch("/tables/team/records/2", &json!({ "label": "teal" })).expect(200);
    let on_create = s
        .post(
            "/relations",
            &json!({ "from_table": "member", "from_field": "team_label", "to_table": "team", "to_field": "label" }),
        )
        .expect_error(409, None);
    assert!(on_create.contains("the value \"blue\""), "{on_create}");
}

fn responses<'a>(doc: &'a Value, path: &str, method: &str) -> Vec<&'a str> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path}: responses"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            ops.push((path.clone(), method.clone()));
        }
    }
    ops
}

fn is_write(method: &str) -> bool {
    !matches!(method, "get" | "head" | "options")
}

/// Every operation documents 408 (each request is bounded by the request timeout); 401 and 429
/// only when keys and a rate limit are configured, 403 on every write with keys; 422 on the
/// writes that can reach a database limit.
#[test]
fn openapi_documents_the_statuses_the_server_answers() {
    let s = TestServer::start(&["--tickrate", "120", "--rate-limit", "0"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    let doc = s.get("/openapi.json").expect(200);
    for (path, method) in operations(&doc) {
        let r = responses(&doc, &path, &method);
        assert!(
            r.contains(&"408"),
            "{method} {path} answers 408 past the request timeout; documented: {r:?}"
        );
        for code in ["401", "403", "429"] {
            assert!(!r.contains(&code), "{method} {path}: no keys and no rate limit, yet {code} in {r:?}");
        }
        if doc["paths"][&path][&method].get("requestBody").is_some() {
            for code in ["413", "415"] {
                assert!(r.contains(&code), "{method} {path} reads a JSON body; {code} not in {r:?}");
            }
        }
    }
    for (path, method) in [
        ("/types", "post"),
        ("/tables/{name}", "post"),
        ("/tables/{name}/fields", "post"),
        ("/tables/{name}/records", "post"),
        ("/tables/{name}/records/{id}", "put"),
        ("/tables/{name}/records/{id}", "patch"),
        ("/relations", "post"),
    ] {
        let r = responses(&doc, path, method);
        assert!(r.contains(&"422"), "{method} {path} can reach a database limit; documented: {r:?}");
    }

    let s = TestServer::start(&[
        "--host",
        "127.0.0.1",
        "--api-key",
        "adminkey123456:admin",
        "--api-key",
        "readkey1234567:read",
    ]);
    let read = s.client().with_key("readkey1234567");
    read.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] }))
        .expect_error(403, Some("forbidden"));
    let doc = read.get("/openapi.json").expect(200);
    for (path, method) in operations(&doc) {
        let r = responses(&doc, &path, &method);
        assert!(r.contains(&"408") && r.contains(&"429"), "{method} {path}: {r:?}");
        assert_eq!(r.contains(&"401"), path != "/health", "{method} {path}: {r:?}");
        assert_eq!(r.contains(&"403"), is_write(&method), "{method} {path}: {r:?}");
    }
}

/// A procedure call documents 408 (a procedure timeout longer than the request timeout ends
/// in it) beside 504 (the procedure's own timeout).
#[test]
fn openapi_documents_408_on_procedure_calls() {
    let s =
        TestServer::start_with(Options { with_procedures: true, ..Options::args(&["--tickrate", "120"]) });
    let doc = s.get("/openapi.json").expect(200);
    let r = responses(&doc, "/rpc/add", "post");
    for code in ["408", "413", "415", "422", "504"] {
        assert!(r.contains(&code), "POST /rpc/add: {code} not in {r:?}");
    }
    // What the document says is what the server answers.
    let no_type = s.request("POST", "/rpc/add", &[], Some(br#"{"a": 2, "b": 3}"#.to_vec()));
    assert_eq!(no_type.status, 415, "{}", no_type.text());
}

/// A `string(N)` holds N bytes of UTF-8; JSON Schema's `maxLength` counts characters, so the
/// record schema states the byte bound instead, and the server holds to it.
#[test]
fn openapi_string_bounds_are_in_bytes() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/p", &json!({ "fields": [{ "name": "s", "type": "string(4)" }] })).expect(201);
    let doc = s.get("/openapi.json").expect(200);
    let field = &doc["components"]["schemas"]["record_p"]["properties"]["s"];
    assert_eq!(field["type"], "string");
    assert!(field.get("maxLength").is_none(), "maxLength counts characters: {field}");
    assert_eq!(field["x-max-bytes"], 4, "{field}");
    assert!(field["description"].as_str().is_some_and(|d| d.contains("4 bytes")), "{field}");
    s.post("/tables/p/records", &json!({ "s": "éé" })).expect(201);
    s.post("/tables/p/records", &json!({ "s": "ééé" })).expect_error(400, None);
}

/// A 201 says where the created resource is: `Location` is the path of a route that answers
/// it with GET. A batch of records creates no single resource, so it has no `Location` (its
/// answer lists the ids).
#[test]
fn created_resources_have_a_location_header() {
    let s = TestServer::start(&["--tickrate", "120"]);
    let r = s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u64" }] }));
    r.expect(201);
    assert_eq!(r.header("location"), Some("/tables/t"), "POST /tables/t: {:?}", r.headers);

    let r = s.post("/tables/t/records", &json!({ "a": 0 }));
    let id = r.expect(201)["id"].as_u64().expect("id");
    assert_eq!(
        r.header("location"),
        Some(format!("/tables/t/records/{id}").as_str()),
        "POST /tables/t/records answered 201 without the new record's Location; headers: {:?}",
        r.headers
    );
    let r = s.post("/tables/t/records", &json!([{ "a": 0 }, { "a": 0 }]));
    r.expect(201);
    assert_eq!(r.header("location"), None, "a batch has no single Location: {:?}", r.headers);

    let r = s.post("/relations", &json!({ "from_table": "t", "from_field": "a", "to_table": "t" }));
    let rel = r.expect(201);
    let rel_id = rel["id"].as_u64().expect("relation id");
    assert_eq!(
        r.header("location"),
        Some(format!("/relations/{rel_id}").as_str()),
        "POST /relations answered 201 without Location; headers: {:?}",
        r.headers
    );
    assert_eq!(s.get(&format!("/relations/{rel_id}")).expect(200), rel);
    s.get("/relations/999").expect_error(404, Some("unknown_relation"));

    let r = s.post("/tables/t/fields", &json!({ "name": "label", "type": "string(8)" }));
    r.expect(201);
    assert_eq!(r.header("location"), Some("/tables/t/fields/label"), "{:?}", r.headers);
    let field = s.get("/tables/t/fields/label").expect(200);
    assert_eq!(field["name"], "label");
    assert_eq!(field["type"], "string(8)");
    assert_eq!(field["max_len"], 8);
    assert_eq!(field, s.get("/tables/t").expect(200)["fields"][1]);
    s.get("/tables/t/fields/nope").expect_error(404, Some("unknown_field"));

    let r = s.post("/types", &json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }, { "name": "y", "type": "f32" }] }));
    let ty = r.expect(201);
    assert_eq!(r.header("location"), Some("/types/vec2"), "{:?}", r.headers);
    assert_eq!(s.get("/types/vec2").expect(200), ty);
    assert_eq!(s.get("/types/u32").expect(200)["kind"], "primitive");
    s.get("/types/nope").expect_error(404, Some("unknown_type"));
}

/// An id in a path (or an `id` filter) is decimal digits without a sign or leading zeros: `+1`
/// and `01` are not another spelling of record 1, they are refused with a 400 naming them, and
/// a refused write changes nothing.
#[test]
fn ids_have_one_spelling() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u64" }] })).expect(201);
    let record = s.post("/tables/t/records", &json!({ "a": 0 })).expect(201);
    assert_eq!(record["id"], 1);
    let rel = s.post("/relations", &json!({ "from_table": "t", "from_field": "a", "to_table": "t" }));
    let rel = rel.expect(201);
    assert_eq!(rel["id"], 1);
    for id in ["+1", "01", "001", "1.0", "-1", "%201", "1e0", "0x1"] {
        let shown = id.replace("%20", " ");
        for (method, body) in
            [("GET", None), ("PUT", Some(r#"{"a": 1}"#)), ("PATCH", Some(r#"{"a": 1}"#)), ("DELETE", None)]
        {
            let headers: &[(&str, &str)] =
                if body.is_some() { &[("content-type", "application/json")] } else { &[] };
            let r = s.request(
                method,
                &format!("/tables/t/records/{id}"),
                headers,
                body.map(|b| b.as_bytes().to_vec()),
            );
            let msg = r.expect_error(400, None);
            assert!(
                msg.contains(&format!("`{shown}`")) && msg.contains("leading zeros"),
                "{method} {id}: {msg}"
            );
        }
        for method in ["GET", "DELETE"] {
            let msg = s.request(method, &format!("/relations/{id}"), &[], None).expect_error(400, None);
            assert!(msg.contains(&format!("`{shown}`")), "{method} relation {id}: {msg}");
        }
        let msg = s.get(&format!("/tables/t/records?id=eq.{id}")).expect_error(400, None);
        assert!(msg.contains("is not an id"), "filter {id}: {msg}");
    }
    assert_eq!(s.get("/tables/t/records/1").expect(200), record, "refused writes changed nothing");
    assert_eq!(s.get("/relations/1").expect(200), rel);
    s.get("/relations/0").expect_error(400, None);
    assert_eq!(ids(&s.get("/tables/t/records?id=eq.1").expect(200)), vec![1]);
}

/// Only the listing takes query parameters. Anywhere else one is refused with a 400 naming it
/// and the route, before anything is done: `?dry_run=true` does not write.
#[test]
fn unknown_query_parameters_are_refused() {
    let s = TestServer::start(&["--tickrate", "120"]);
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    let id = s.post("/tables/t/records", &json!({ "a": 1 })).expect(201)["id"].as_u64().expect("id");
    let json_body = |v: Value| Some(v.to_string().into_bytes());
    let ct: &[(&str, &str)] = &[("content-type", "application/json")];
    for (method, path, body) in [
        ("POST", "/tables/t/records?dry_run=true", json_body(json!({ "a": 2 }))),
        ("POST", "/tables/t/records?dry_run", json_body(json!([{ "a": 2 }]))),
        ("PATCH", &*format!("/tables/t/records/{id}?dry_run=true"), json_body(json!({ "a": 2 }))),
        ("PUT", &*format!("/tables/t/records/{id}?dry_run=1&x=2"), json_body(json!({ "a": 2 }))),
        ("DELETE", &*format!("/tables/t/records/{id}?dry_run=true"), None),
        ("POST", "/tables/u?dry_run=true", json_body(json!({ "fields": [{ "name": "a", "type": "u8" }] }))),
        ("DELETE", "/tables/t?dry_run=true", None),
        ("POST", "/tables/t/fields?dry_run=true", json_body(json!({ "name": "b", "type": "u8" }))),
        (
            "POST",
            "/types?dry_run=true",
            json_body(json!({ "name": "v", "fields": [{ "name": "x", "type": "u8" }] })),
        ),
        (
            "POST",
            "/relations?dry%5Frun=true",
            json_body(json!({ "from_table": "t", "from_field": "a", "to_table": "t", "to_field": "a" })),
        ),
        ("GET", &*format!("/tables/t/records/{id}?fields=a"), None),
        ("GET", "/tables/t?dry_run=true", None),
    ] {
        let headers = if body.is_some() { ct } else { &[] };
        let msg = s.request(method, path, headers, body).expect_error(400, None);
        let param = if path.contains("fields=") { "fields" } else { "dry_run" };
        assert!(msg.contains(&format!("unknown query parameter `{param}`")), "{method} {path}: {msg}");
        assert!(msg.contains("takes no query parameters"), "{method} {path}: {msg}");
    }
    // Nothing was written.
    assert_eq!(s.get("/tables/t/records?count=true").expect(200)["total"], 1);
    assert_eq!(s.get(&format!("/tables/t/records/{id}")).expect(200)["a"], 1);
    assert_eq!(s.get("/tables/t").expect(200)["fields"].as_array().map(Vec::len), Some(1));
    s.get("/tables/u").expect_error(404, None);
    s.get("/types/v").expect_error(404, None);
    assert_eq!(s.get("/relations").expect(200), json!([]));
    // The listing takes its parameters; an empty query string is no parameter.
    assert_eq!(s.get("/tables/t/records?a=eq.1&count=true").expect(200)["total"], 1);
    s.get(&format!("/tables/t/records/{id}?")).expect(200);
    // HEAD is a GET without the body: the listing takes its parameters there too.
    assert_eq!(s.request("HEAD", "/tables/t/records?a=eq.1&limit=1", &[], None).status, 200);
    assert_eq!(s.request("HEAD", "/tables/t?dry_run=true", &[], None).status, 400);
    // Health checks and scrapers may add a parameter of their own.
    s.get("/health?nocache=123").expect(200);
    assert_eq!(s.get("/metrics?x=1").status, 200);
    // Every operation documents the 400.
    let doc = s.get("/openapi.json").expect(200);
    for (path, method) in operations(&doc) {
        let takes_query = matches!(path.as_str(), "/health" | "/metrics");
        assert_eq!(
            responses(&doc, &path, &method).contains(&"400"),
            !takes_query,
            "{method} {path} documents 400 unless it lets query parameters pass"
        );
    }
}
