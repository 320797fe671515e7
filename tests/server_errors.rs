//! End-to-end: every error status of the real `tabledb-server` binary, each a JSON
//! `{"error": {"code", "message"}}` without internals: 400, 404, 405, 408, 409, 413, 415, 429
//! and 503 (with `Retry-After`). (500 cannot be provoked through the stock binary, which has
//! no procedures: see `server_rpc.rs`, where a panicking procedure produces one.)

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{Resp, TestServer, all_records};
use serde_json::{Value, json};

fn table(s: &TestServer) {
    s.post(
        "/tables/t",
        &json!({ "fields": [{ "name": "a", "type": "u32" }, { "name": "b", "type": "string(8)" }] }),
    )
    .expect(201);
}

#[test]
fn client_errors_are_json_and_name_the_problem() {
    let s = TestServer::start(&["--tickrate", "120"]);
    table(&s);
    let id = s.post("/tables/t/records", &json!({ "a": 1, "b": "x" })).expect(201)["id"].clone();

    // 404: routes, tables, records, relations, procedures.
    let msg = s.get("/nope").expect_error(404, Some("not_found"));
    assert!(msg.contains("/nope"), "{msg}");
    s.get("/tables/t/records/1/more").expect_error(404, None);
    s.get("/tables/nope").expect_error(404, Some("unknown_table"));
    s.get("/tables/t/records/777").expect_error(404, None);
    s.delete("/relations/777").expect_error(404, None);
    s.post("/rpc/nope", &json!({})).expect_error(404, Some("unknown_procedure"));

    // 405, with Allow.
    for (method, path) in
        [("PATCH", "/tables/t"), ("DELETE", "/tables"), ("PUT", "/relations"), ("GET", "/rpc/x")]
    {
        let r = s.request(method, path, &[], None);
        let msg = r.expect_error(405, Some("method_not_allowed"));
        assert!(msg.contains(method), "{msg}");
        assert!(r.header("allow").is_some(), "405 carries Allow: {:?}", r.headers);
    }

    // 415: a body that is not declared JSON.
    let body = br#"{"a": 2, "b": "y"}"#.to_vec();
    s.request("POST", "/tables/t/records", &[("content-type", "text/plain")], Some(body.clone()))
        .expect_error(415, Some("unsupported_media_type"));
    s.request("POST", "/tables/t/records", &[], Some(body.clone())).expect_error(415, None);
    s.request(
        "PATCH",
        &format!("/tables/t/records/{id}"),
        &[("content-type", "application/xml")],
        Some(body.clone()),
    )
    .expect_error(415, None);
    // With a charset it is JSON.
    s.request(
        "POST",
        "/tables/t/records",
        &[("content-type", "application/json; charset=utf-8")],
        Some(body),
    )
    .expect(201);

    // 400: bad JSON, bad values (naming the field), bad ids, bad path bytes.
    let bad_json = |path: &str, body: &str| {
        s.request("POST", path, &[("content-type", "application/json")], Some(body.as_bytes().to_vec()))
    };
    let msg = bad_json("/tables/t/records", r#"{"a": "#).expect_error(400, None);
    assert!(msg.contains("JSON"), "{msg}");
    let msg = s.post("/tables/t/records", &json!({ "a": 1, "b": "far too long" })).expect_error(400, None);
    assert!(msg.contains("`b`"), "{msg}");
    let msg = s.post("/tables/t/records", &json!({ "a": 1 })).expect_error(400, None);
    assert!(msg.contains("`b`"), "{msg}");
    let msg = s.post("/tables/t/records", &json!({ "a": 1.5, "b": "x" })).expect_error(400, None);
    assert!(msg.contains("`a`"), "{msg}");
    let msg = s.post("/tables/t/records", &json!({ "a": 1, "b": "x", "c": 3 })).expect_error(400, None);
    assert!(msg.contains("`c`"), "{msg}");
    s.post("/tables/t/records", &json!("text")).expect_error(400, None);
    let msg = s.get("/tables/t/records/abc").expect_error(400, None);
    assert!(msg.contains("abc"), "{msg}");
    s.get("/tables/t/records/0").expect_error(400, None);
    s.get("/tables/t/records/99999999999999999999999").expect_error(400, None);
    s.get("/tables/%FF").expect_error(400, None);
    s.get("/tables/t/records/%FF%FE").expect_error(400, None);
    s.delete("/relations/x1").expect_error(400, None);
    s.post("/rpc/nope", &json!([1, 2])).expect_error(400, None);
    // Bodies of the wrong shape never show a Rust type name (checked by expect_error).
    for path in ["/tables/u", "/types", "/relations", "/tables/t/fields"] {
        for body in [json!(5), json!([]), json!("s"), json!({ "unknown_key": 1 })] {
            s.post(path, &body).expect_error(400, None);
        }
    }

    // 409: already exists.
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect_error(409, None);

    // 413: too many records in one request.
    let many: Vec<Value> = (0..10_001).map(|_| json!({})).collect();
    let msg = s.post("/tables/t/records", &Value::Array(many)).expect_error(413, Some("payload_too_large"));
    assert!(msg.contains("10000"), "{msg}");

    // Every response carries a request id.
    let ids: Vec<u64> = (0..3)
        .map(|_| s.get("/nope").header("x-request-id").expect("x-request-id").parse().expect("a number"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    assert_eq!(all_records(&s.client(), "t").len(), 2, "only the two good records were written");
}

#[test]
fn a_body_over_the_limit_is_413() {
    let s = TestServer::start(&["--max-body-bytes", "256"]);
    table(&s);
    let long = "x".repeat(1000);
    let body = format!(r#"{{"a": 1, "b": "{long}"}}"#).into_bytes();
    let msg = s
        .request("POST", "/tables/t/records", &[("content-type", "application/json")], Some(body))
        .expect_error(413, Some("payload_too_large"));
    assert!(msg.contains("limit"), "{msg}");
    // Any route that takes a body: a large schema is refused the same way.
    let fields: Vec<Value> = (0..40).map(|i| json!({ "name": format!("field_{i}"), "type": "u8" })).collect();
    s.post("/tables/wide", &json!({ "fields": fields })).expect_error(413, None);
    // Under the limit is fine, and the server carries on.
    s.post("/tables/t/records", &json!({ "a": 1, "b": "ok" })).expect(201);
    assert_eq!(s.get("/health").expect(200)["status"], "ok");
}

#[test]
fn over_the_rate_limit_is_429_with_retry_after() {
    let s = TestServer::start(&["--rate-limit", "5"]);
    let responses: Vec<Resp> = (0..20).map(|_| s.get("/tables")).collect();
    assert_eq!(responses[0].status, 200);
    assert!(responses.iter().all(|r| r.status == 200 || r.status == 429), "only 200 and 429");
    let limited: Vec<&Resp> = responses.iter().filter(|r| r.status == 429).collect();
    assert!(limited.len() >= 5, "20 requests at once against 5/s: {} refused", limited.len());
    for r in &limited {
        r.expect_error(429, Some("rate_limited"));
        let after: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!(after >= 1, "{after}");
    }
    // After a pause, requests go through again.
    std::thread::sleep(Duration::from_millis(1100));
    s.get("/tables").expect(200);
}

#[test]
fn a_full_queue_is_503_with_retry_after() {
    const THREADS: usize = 16;
    const EACH: usize = 8;
    let s = TestServer::start(&["--queue-capacity", "1", "--tickrate", "15"]);
    table(&s);
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = s.client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..EACH)
                    .map(|i| c.post("/tables/t/records", &json!({ "a": t * 100 + i, "b": "w" })))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let responses: Vec<Resp> = threads.into_iter().flat_map(|t| t.join().expect("writer thread")).collect();
    let created = responses.iter().filter(|r| r.status == 201).count();
    let refused: Vec<&Resp> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(created + refused.len(), THREADS * EACH, "only 201 and 503");
    assert!(!refused.is_empty(), "16 writers against a queue of 1 must be refused sometimes");
    assert!(created >= 1);
    for r in &refused {
        r.expect_error(503, Some("overloaded"));
        let after: u64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
        assert!(after >= 1);
    }
    // Exactly the acknowledged writes are there.
    assert_eq!(all_records(&s.client(), "t").len(), created);
    let metrics = s.get("/metrics").text();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tabledb_requests_dropped_total "))
        .expect("tabledb_requests_dropped_total")
        .parse()
        .expect("a number");
    assert!(dropped >= refused.len() as u64, "{dropped} < {}", refused.len());
}

#[test]
fn a_slow_request_is_408() {
    // 15 ticks/s: a write waits for the next tick (up to 67 ms) and its log sync.
    let s = TestServer::start(&["--request-timeout-ms", "20", "--tickrate", "15"]);
    // Schema changes may time out too, yet still be applied.
    let _ = s.post(
        "/tables/t",
        &json!({ "fields": [{ "name": "a", "type": "u32" }, { "name": "b", "type": "string(8)" }] }),
    );
    common::eventually(Duration::from_secs(5), || (s.get("/tables/t").status == 200).then_some(()))
        .expect("the table is created");
    let mut timed_out = 0;
    for i in 0..30 {
        let r = s.post("/tables/t/records", &json!({ "a": i, "b": "w" }));
        match r.status {
            201 => {}
            408 => {
                let msg = r.expect_error(408, Some("timeout"));
                assert!(msg.contains("20 ms"), "{msg}");
                timed_out += 1;
                if timed_out >= 2 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!(timed_out >= 1, "no write took longer than 20 ms at 15 ticks/s");
    // Reads from the snapshot do not wait for a tick.
    common::eventually(Duration::from_secs(5), || (s.get("/tables/t").status == 200).then_some(()))
        .expect("reads answer within 20 ms");
}
