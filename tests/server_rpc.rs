//! End-to-end: procedures over REST — `GET /rpc`, `POST /rpc/{name}`, their parameters in
//! `/openapi.json`, and a panicking procedure as the one way to get a 500 from outside. The
//! stock binary registers no procedures, so this runs the `server_with_procedures` example,
//! which is `tabledb_server::main_with` (the binary's own `main`) with a registry.

mod common;

use common::{Options, ROUTES, TestServer, check_openapi_paths};
use serde_json::json;

fn start() -> TestServer {
    TestServer::start_with(Options { with_procedures: true, ..Options::args(&["--tickrate", "120"]) })
}

#[test]
fn procedures_are_listed_and_called() {
    let s = start();
    let list = s.get("/rpc").expect(200);
    let names: Vec<&str> =
        list.as_array().expect("procedures").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, vec!["add", "crash", "fail", "insert_record"]);
    let add = &list[0];
    assert_eq!(add["doc"], "Adds two integers.");
    assert_eq!(add["params"][0]["name"], "a");
    assert_eq!(add["params"][0]["required"], true);
    assert_eq!(add["params"][0]["schema"]["type"], "integer");

    assert_eq!(s.post("/rpc/add", &json!({ "a": 2, "b": 40 })).expect(200), json!(42));

    // Parameters: missing, wrongly typed, extra — each named.
    let msg = s.post("/rpc/add", &json!({ "a": 2 })).expect_error(400, Some("bad_parameters"));
    assert!(msg.contains("`b`"), "{msg}");
    let msg = s.post("/rpc/add", &json!({ "a": "two", "b": 1 })).expect_error(400, Some("bad_parameters"));
    assert!(msg.contains("`a`"), "{msg}");
    let msg =
        s.post("/rpc/add", &json!({ "a": 1, "b": 1, "c": 1 })).expect_error(400, Some("bad_parameters"));
    assert!(msg.contains("`c`"), "{msg}");
    s.post("/rpc/add", &json!([1, 2])).expect_error(400, None);
    s.request("POST", "/rpc/add", &[("content-type", "text/plain")], Some(b"{}".to_vec()))
        .expect_error(415, None);
    s.post("/rpc/nope", &json!({})).expect_error(404, Some("unknown_procedure"));
    s.get("/rpc/add").expect_error(405, None);

    // The procedure's own error: 422 with its message.
    let msg = s
        .post("/rpc/fail", &json!({ "message": "no such spell" }))
        .expect_error(422, Some("procedure_failed"));
    assert_eq!(msg, "no such spell");
    let msg = s.post("/rpc/add", &json!({ "a": i64::MAX, "b": 1 })).expect_error(422, None);
    assert!(msg.contains("overflows"), "{msg}");

    // A procedure writes in its own transaction; REST sees the result.
    s.post("/tables/note", &json!({ "fields": [{ "name": "n", "type": "u32" }] })).expect(201);
    let r = s.post("/rpc/insert_record", &json!({ "table": "note", "record": { "n": 7 } })).expect(200);
    let id = r["id"].as_u64().expect("id");
    assert_eq!(s.get(&format!("/tables/note/records/{id}")).expect(200), json!({ "id": id, "n": 7 }));
    // Its database errors keep their status.
    s.post("/rpc/insert_record", &json!({ "table": "nope", "record": { "n": 7 } })).expect_error(404, None);
    let msg = s
        .post("/rpc/insert_record", &json!({ "table": "note", "record": { "m": 7 } }))
        .expect_error(400, None);
    assert!(msg.contains("`m`"), "{msg}");
}

#[test]
fn a_panicking_procedure_is_a_generic_500_with_the_request_id() {
    let s = start();
    let r = s.post("/rpc/crash", &json!({}));
    let msg = r.expect_error(500, Some("internal"));
    let request_id = r.header("x-request-id").expect("x-request-id");
    assert_eq!(msg, format!("internal error (request id {request_id})"));
    assert!(!r.text().contains("crash was called"), "the panic text stays in the log: {}", r.text());
    // The detail is in the log, with the request id.
    let log = common::eventually(std::time::Duration::from_secs(5), || {
        let log = s.stderr();
        log.contains("crash was called").then_some(log)
    })
    .expect("the panic is logged");
    assert!(
        log.contains(&format!("request_id={request_id}")) || log.contains(&format!("id={request_id}")),
        "{log}"
    );
    // The server carries on.
    assert_eq!(s.post("/rpc/add", &json!({ "a": 1, "b": 1 })).expect(200), json!(2));
    assert_eq!(s.get("/health").expect(200)["status"], "ok");
    let metrics = s.get("/metrics").text();
    assert!(metrics.lines().any(|l| l == "tabledb_procedures_panicked_total 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "tabledb_requests_panicked_total 0"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("tabledb_http_responses_5xx_total ") && !l.ends_with(" 0"))
    );
}

#[test]
fn openapi_describes_each_procedure_and_its_parameters() {
    let s = start();
    let doc = s.get("/openapi.json").expect(200);
    let mut routes: Vec<(&str, &[&str])> = ROUTES.to_vec();
    for p in ["/rpc/add", "/rpc/crash", "/rpc/fail", "/rpc/insert_record"] {
        routes.push((p, &["post"]));
    }
    check_openapi_paths(&doc, &routes);
    let add = &doc["paths"]["/rpc/add"]["post"];
    assert_eq!(add["summary"], "Adds two integers.");
    let schema = &add["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["a"]["type"], "integer");
    assert_eq!(schema["properties"]["b"]["type"], "integer");
    assert_eq!(schema["required"], json!(["a", "b"]));
    assert_eq!(schema["additionalProperties"], false);
    let insert =
        &doc["paths"]["/rpc/insert_record"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(insert["properties"]["table"]["type"], "string");
    assert_eq!(insert["required"], json!(["table", "record"]));
    for code in ["200", "400", "404", "422", "500"] {
        assert!(add["responses"][code].is_object(), "/rpc/add documents {code}");
    }
}
