//! End-to-end: API keys on the real `tabledb-server` binary — `--api-key KEY:admin|read`
//! (repeatable) and `TABLEDB_API_KEYS`; `Authorization: Bearer KEY`; 401 for a missing or
//! unknown key, 403 for a read key that writes; `/health` open.

mod common;

use common::{Options, TestServer, run_to_exit};
use serde_json::json;
use std::time::Duration;

const ADMIN: &str = "admin-key-0001";
const READ: &str = "read-key-0001";

fn check_roles(s: &TestServer, admin_key: &str, read_key: &str) {
    let anon = s.client();
    let admin = anon.with_key(admin_key);
    let read = anon.with_key(read_key);

    // /health is open.
    assert_eq!(anon.get("/health").expect(200)["status"], "ok");

    // No key, an unknown key, another scheme: 401 with WWW-Authenticate.
    for r in [
        anon.get("/tables"),
        anon.get("/metrics"),
        anon.get("/openapi.json"),
        anon.post("/tables/x", &json!({ "fields": [{ "name": "a", "type": "u8" }] })),
        anon.with_key("not-a-known-key").get("/tables"),
        anon.request("GET", "/tables", &[("authorization", &format!("Basic {admin_key}"))], None),
        anon.request("GET", "/tables", &[("authorization", admin_key)], None),
    ] {
        r.expect_error(401, Some("unauthorized"));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    // Unknown routes do not tell an anonymous client which exist.
    anon.get("/nope").expect_error(401, None);

    // Admin: everything.
    admin.post("/tables/x", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    let id = admin.post("/tables/x/records", &json!({ "a": 1 })).expect(201)["id"].clone();
    admin.patch(&format!("/tables/x/records/{id}"), &json!({ "a": 2 })).expect(200);
    // The scheme is case-insensitive.
    anon.request("GET", "/tables", &[("authorization", &format!("bearer {admin_key}"))], None).expect(200);

    // Read: every read, no write.
    assert_eq!(read.get(&format!("/tables/x/records/{id}")).expect(200)["a"], 2);
    read.get("/tables").expect(200);
    read.get("/tables/x/records?count=true").expect(200);
    read.get("/relations").expect(200);
    read.get("/types").expect(200);
    read.get("/rpc").expect(200);
    assert!(read.get("/metrics").text().contains("tabledb_http_unauthorized_total"));
    let doc = read.get("/openapi.json").expect(200);
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]), "/health is documented as open");
    for r in [
        read.post("/tables/y", &json!({ "fields": [{ "name": "a", "type": "u8" }] })),
        read.post("/tables/x/records", &json!({ "a": 3 })),
        read.patch(&format!("/tables/x/records/{id}"), &json!({ "a": 3 })),
        read.put(&format!("/tables/x/records/{id}"), &json!({ "a": 3 })),
        read.delete(&format!("/tables/x/records/{id}")),
        read.delete("/tables/x"),
        read.post("/types", &json!({ "name": "v", "fields": [{ "name": "a", "type": "u8" }] })),
        read.post("/relations", &json!({ "from_table": "x", "from_field": "a", "to_table": "x" })),
        read.post("/rpc/anything", &json!({})),
        read.request("POST", "/tables/x/compact", &[], None),
    ] {
        r.expect_error(403, Some("forbidden"));
    }
    assert_eq!(read.get(&format!("/tables/x/records/{id}")).expect(200)["a"], 2, "nothing was written");
    read.get("/tables/y").expect_error(404, None);
}

#[test]
fn keys_from_the_command_line() {
    let s = TestServer::start(&[
        "--host",
        "127.0.0.1",
        "--api-key",
        &format!("{ADMIN}:admin"),
        "--api-key",
        &format!("{READ}:read"),
    ]);
    check_roles(&s, ADMIN, READ);
    let metrics = s.client().with_key(READ).get("/metrics").text();
    let unauthorized: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tabledb_http_unauthorized_total "))
        .expect("tabledb_http_unauthorized_total")
        .parse()
        .expect("a number");
    assert!(unauthorized >= 8, "{unauthorized}");
}

#[test]
fn keys_from_the_environment() {
    let s = TestServer::start_with(
        Options::args(&["--host", "127.0.0.1"])
            .env("TABLEDB_API_KEYS", &format!("{ADMIN}:admin,{READ}:read")),
    );
    check_roles(&s, ADMIN, READ);
}

#[test]
fn bad_keys_are_refused_at_startup() {
    for (arg, needle) in [
        ("short:admin", "8 characters"),
        ("long-enough-key:owner", "owner"),
        ("no-role-given-here", "KEY:admin"),
    ] {
        let (status, _, stderr) = run_to_exit(&["--api-key", arg, "--port", "0"], &[]);
        assert!(!status.success(), "{arg} was accepted");
        assert!(stderr.contains(needle), "{arg}: {stderr}");
        assert!(stderr.contains("api-key"), "{arg}: the message names the option: {stderr}");
    }
    let (status, _, stderr) = run_to_exit(&["--port", "0"], &[("TABLEDB_API_KEYS", "short:read")]);
    assert!(!status.success());
    assert!(stderr.contains("8 characters"), "{stderr}");
}

#[test]
fn a_refused_request_with_an_unread_body_says_connection_close() {
    use std::io::{Read, Write};
    let s = TestServer::start(&["--host", "127.0.0.1", "--api-key", &format!("{READ}:read")]);
    // The headers first, the body not yet sent: the server answers without reading it, and
    // then closes the connection; the response must say so.
    let mut conn = std::net::TcpStream::connect(s.addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    let body = r#"{"fields": [{"name": "a", "type": "u8"}]}"#;
    write!(
        conn,
        "POST /tables/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {READ}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    let mut response = Vec::new();
    conn.read_to_end(&mut response).expect("the server closes the connection after the response");
    let response = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 403"), "{response}");
    assert!(response.contains("\r\nconnection: close\r\n"), "{response}");
    // Successful requests keep the connection.
    let ok = s.client().with_key(READ).get("/tables");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("connection"), None);
}

#[test]
fn guessing_keys_or_sending_none_counts_against_the_rate_limit() {
    let s = TestServer::start(&[
        "--host",
        "127.0.0.1",
        "--rate-limit",
        "5",
        "--api-key",
        &format!("{ADMIN}:admin"),
    ]);
    // Guesses, and requests without any key, from the same address.
    for client in [s.client().with_key("wrong-key-guess-000"), s.client()] {
        let statuses: Vec<u16> = (0..20).map(|_| client.get("/tables").status).collect();
        assert!(statuses.iter().all(|&c| c == 401 || c == 429), "only 401 and 429: {statuses:?}");
        let limited = statuses.iter().filter(|&&c| c == 429).count();
        assert!(limited >= 5, "20 requests at once against 5/s: {limited} refused: {statuses:?}");
        // The real key still works after a pause.
        std::thread::sleep(Duration::from_millis(1100));
        s.client().with_key(ADMIN).get("/tables").expect(200);
        std::thread::sleep(Duration::from_millis(1100));
    }
}
