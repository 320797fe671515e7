//! End-to-end: the `tabledb-server` process — its options (`--help`, bad values, config file,
//! environment, defaults), the listening line, graceful shutdown on SIGTERM/SIGINT (exit 0,
//! nothing acknowledged lost, data there after a restart), and SIGKILL after acknowledged
//! writes (nothing lost either).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Client, Options, TestServer, all_records, run_to_exit, server_bin, wait_timeout};
use serde_json::{Value, json};

#[test]
fn help_lists_every_option() {
    let (status, stdout, _) = run_to_exit(&["--help"], &[]);
    assert!(status.success(), "{status}");
    for option in [
        "--config",
        "--data-dir",
        "--host",
        "--port",
        "--tickrate",
        "--durability",
        "--max-body-bytes",
        "--api-key",
        "--rate-limit",
        "--request-timeout-ms",
        "--max-page-size",
        "--queue-capacity",
        "--flush-interval-ticks",
        "--log",
    ] {
        assert!(stdout.contains(option), "--help lists {option}:\n{stdout}");
    }
    for env in [
        "TABLEDB_CONFIG",
        "TABLEDB_DATA_DIR",
        "TABLEDB_PORT",
        "TABLEDB_TICKRATE",
        "TABLEDB_DURABILITY",
        "TABLEDB_MAX_BODY_BYTES",
        "TABLEDB_API_KEYS",
        "TABLEDB_RATE_LIMIT",
        "TABLEDB_REQUEST_TIMEOUT_MS",
        "TABLEDB_MAX_PAGE_SIZE",
        "TABLEDB_QUEUE_CAPACITY",
    ] {
        assert!(stdout.contains(env), "--help names {env}:\n{stdout}");
    }
    for default in ["./tabledb-data", "7878", "[default: 60]", "1048576", "tick, async or checkpoint-only"] {
        assert!(stdout.contains(default), "--help gives the default {default}:\n{stdout}");
    }
    let (status, stdout, _) = run_to_exit(&["--version"], &[]);
    assert!(status.success());
    assert!(stdout.starts_with("tabledb-server "), "{stdout}");
}

/// Arguments, environment variables, and what the error message must name.
type BadStart<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bad_values_exit_with_a_message_naming_them() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    let cases: &[BadStart<'_>] = &[
        (&["--tickrate", "500"], &[], &["tickrate", "500"]),
        (&["--tickrate", "0"], &[], &["tickrate"]),
        (&["--tickrate", "fast"], &[], &["--tickrate", "fast"]),
        (&["--port", "70000"], &[], &["--port", "70000"]),
        (&["--durability", "sometimes"], &[], &["--durability", "sometimes"]),
        (&["--max-body-bytes", "0"], &[], &["max-body-bytes"]),
        (&["--max-page-size", "0"], &[], &["max-page-size"]),
        (&["--queue-capacity", "0"], &[], &["queue-capacity"]),
        (&["--request-timeout-ms", "0"], &[], &["request-timeout-ms"]),
        (&["--rate-limit=-1"], &[], &["--rate-limit", "-1"]),
        (&["--host", "not-an-address"], &[], &["--host"]),
        (&["--no-such-option"], &[], &["--no-such-option"]),
        (&[], &[("TABLEDB_TICKRATE", "500")], &["tickrate", "500"]),
        (&[], &[("TABLEDB_PORT", "x")], &["--port"]),
        (&["--config", "/nonexistent/tabledb.toml"], &[], &["/nonexistent/tabledb.toml"]),
        (&["--log", "tabledb=notalevel"], &[], &["log", "notalevel"]),
        (&[], &[("TABLEDB_LOG", "tabledb=loud")], &["log", "loud"]),
        (
            &["--api-key", "same-key-0001:read", "--api-key", "same-key-0001:admin"],
            &[],
            &["api-key", "twice"],
        ),
        (&["--api-key", "éééé:admin"], &[], &["at least 8 characters"]),
    ];
    for (args, envs, needles) in cases {
        let mut all = vec!["--data-dir", data];
        all.extend_from_slice(args);
        let (status, stdout, stderr) = run_to_exit(&all, envs);
        assert_eq!(status.code(), Some(2), "{args:?} {envs:?}: exit code 2; stderr: {stderr}");
        assert!(!stdout.contains("listening"), "{args:?}: never listened");
        for n in *needles {
            assert!(stderr.contains(n), "{args:?} {envs:?}: the message names {n:?}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was created by a refused start");

    // A config file with a bad value or an unknown key.
    for (toml, needles) in [
        ("tickrate = 1000\n", &["tickrate", "1000"][..]),
        ("tick_rate = 30\n", &["tick_rate"][..]),
        ("port = \"seven\"\n", &["port"][..]),
        ("durability = \"never\"\n", &["never"][..]),
    ] {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, toml).expect("config file");
        let (status, _, stderr) =
            run_to_exit(&["--config", file.to_str().expect("utf-8"), "--data-dir", data], &[]);
        assert_eq!(status.code(), Some(2), "{toml}: {stderr}");
        for n in needles {
            assert!(stderr.contains(n), "{toml}: the message names {n:?}: {stderr}");
        }
    }
}

fn tick_rate(s: &TestServer) -> u64 {
    s.get("/health").expect(200)["tick_rate"].as_u64().expect("tick_rate")
}

#[test]
fn settings_from_file_environment_and_command_line() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let file = dir.path().join("tabledb.toml");
    std::fs::write(&file, "tickrate = 30\nmax_page_size = 3\ndurability = \"async\"\n").expect("config file");
    let config = file.to_str().expect("utf-8");

    // The file alone.
    let s = TestServer::start(&["--config", config]);
    assert_eq!(tick_rate(&s), 30);
    assert_eq!(s.get("/health").expect(200)["durability"], "async");
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    s.get("/tables/t/records?limit=3").expect(200);
    s.get("/tables/t/records?limit=4").expect_error(400, None);
    drop(s);

    // The environment over the file, the command line over both.
    let s = TestServer::start_with(
        Options::args(&["--config", config])
            .env("TABLEDB_TICKRATE", "25")
            .env("TABLEDB_DURABILITY", "checkpoint-only"),
    );
    assert_eq!(tick_rate(&s), 25);
    assert_eq!(s.get("/health").expect(200)["durability"], "checkpoint-only");
    drop(s);
    let s = TestServer::start_with(
        Options::args(&["--config", config, "--tickrate", "20"]).env("TABLEDB_TICKRATE", "25"),
    );
    assert_eq!(tick_rate(&s), 20);
    drop(s);

    // The config file from TABLEDB_CONFIG, the data directory and port from the environment.
    let env_data = dir.path().join("env-data");
    let s = TestServer::start_with(Options {
        no_data_dir: true,
        no_port: true,
        ..Options::default()
            .env("TABLEDB_CONFIG", config)
            .env("TABLEDB_DATA_DIR", env_data.to_str().expect("utf-8"))
            .env("TABLEDB_PORT", "0")
    });
    assert_eq!(tick_rate(&s), 30);
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    assert!(env_data.join("schema.json").exists(), "the database is in TABLEDB_DATA_DIR");
    drop(s);

    // Defaults: ./tabledb-data, 60 ticks/s, tick durability, 100-record pages.
    let s = TestServer::start_with(Options { no_data_dir: true, ..Options::default() });
    assert_eq!(tick_rate(&s), 60);
    assert_eq!(s.get("/health").expect(200)["durability"], "tick");
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    assert_eq!(s.get("/tables/t/records").expect(200)["limit"], 100);
    s.get("/tables/t/records?limit=1000").expect(200);
    s.get("/tables/t/records?limit=1001").expect_error(400, None);
    assert!(s.work_dir().join("tabledb-data").join("schema.json").exists(), "./tabledb-data by default");
}

#[test]
fn port_zero_picks_distinct_free_ports() {
    let a = TestServer::start(&[]);
    let b = TestServer::start(&[]);
    assert_ne!(a.addr.port(), b.addr.port());
    assert!(a.addr.ip().is_loopback(), "without keys the server listens on localhost: {}", a.addr);
    a.get("/health").expect(200);
    b.get("/health").expect(200);
}

#[test]
fn a_closed_stdout_does_not_stop_the_server() {
    // Find a free port, then start the server on it with its stdout closed at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut cmd = Command::new(server_bin());
    for v in common::SERVER_ENV_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .args(["--port", &port.to_string(), "--data-dir", dir.path().join("d").to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let client = Client::new(&format!("http://127.0.0.1:{port}"));
    let up = common::eventually(Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited ({status}) when it could not print its listening line");
        }
        client.try_request("GET", "/health", &[], None).ok().filter(|r| r.status == 200)
    });
    let alive = child.try_wait().expect("try_wait").is_none();
    let _ = child.kill();
    let _ = wait_timeout(&mut child, Duration::from_secs(10));
    assert!(up.is_some() && alive, "the server serves with its stdout closed");
}

fn make_data(s: &TestServer) -> Vec<Value> {
    s.post("/types", &json!({ "name": "vec2", "fields": [{ "name": "x", "type": "f32" }, { "name": "y", "type": "f32" }] }))
        .expect(201);
    s.post("/tables/team", &json!({ "fields": [{ "name": "label", "type": "string(8)" }] })).expect(201);
    s.post(
        "/tables/unit",
        &json!({ "fields": [
            { "name": "team_id", "type": "u64" },
            { "name": "pos", "type": "vec2" },
            { "name": "hp", "type": "u32" },
        ] }),
    )
    .expect(201);
    s.post("/relations", &json!({ "from_table": "unit", "from_field": "team_id", "to_table": "team" }))
        .expect(201);
    let team = s.post("/tables/team/records", &json!({ "label": "red" })).expect(201)["id"].clone();
    let units: Vec<Value> =
        (0..50).map(|i| json!({ "team_id": team, "pos": { "x": i as f32, "y": 0.5 }, "hp": i })).collect();
    s.post("/tables/unit/records", &Value::Array(units)).expect(201);
    s.patch("/tables/unit/records/7", &json!({ "hp": 700 })).expect(200);
    s.put("/tables/unit/records/8", &json!({ "team_id": team, "pos": { "x": -1.0, "y": -1.0 }, "hp": 800 }))
        .expect(200);
    assert_eq!(s.delete("/tables/unit/records/9").status, 204);
    s.post("/tables/unit/fields", &json!({ "name": "level", "type": "u8" })).expect(201);
    s.patch("/tables/unit/records/10", &json!({ "level": 3 })).expect(200);
    all_records(&s.client(), "unit")
}

fn check_data(s: &TestServer, expected: &[Value]) {
    assert_eq!(all_records(&s.client(), "unit"), expected);
    assert_eq!(s.get("/relations").expect(200).as_array().map(Vec::len), Some(1));
    assert!(s.get("/types").expect(200).as_array().expect("types").iter().any(|t| t["name"] == "vec2"));
    // The relation is still enforced, and new ids follow the old ones.
    s.post(
        "/tables/unit/records",
        &json!({ "team_id": 99, "pos": { "x": 0.0, "y": 0.0 }, "hp": 1, "level": 0 }),
    )
    .expect_error(409, None);
    let id = s
        .post(
            "/tables/unit/records",
            &json!({ "team_id": 1, "pos": { "x": 0.0, "y": 0.0 }, "hp": 1, "level": 0 }),
        )
        .expect(201)["id"]
        .as_u64()
        .expect("id");
    let max = expected.iter().filter_map(|r| r["id"].as_u64()).max().expect("records");
    assert!(id > max, "new id {id} after {max}");
}

#[test]
fn sigterm_exits_0_and_a_restart_has_the_data() {
    let mut s = TestServer::start(&["--tickrate", "120"]);
    let expected = make_data(&s);
    assert_eq!(expected.len(), 49);
    let status = s.sigterm();
    assert_eq!(status.code(), Some(0), "SIGTERM: exit 0 ({status}); stderr:\n{}", s.stderr());
    s.restart();
    check_data(&s, &expected);
    // SIGINT (Ctrl-C) is a graceful shutdown too.
    let expected = all_records(&s.client(), "unit");
    let status = s.sigint();
    assert_eq!(status.code(), Some(0), "SIGINT: exit 0 ({status}); stderr:\n{}", s.stderr());
    s.restart();
    assert_eq!(all_records(&s.client(), "unit"), expected);
    // Each run printed exactly one line on stdout: where it listens.
    let lines = s.stdout_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        assert!(l.starts_with("tabledb-server listening on http://127.0.0.1:"), "{l:?}");
    }
}

#[test]
fn a_stalled_client_does_not_hold_back_shutdown() {
    use std::io::Write;
    let mut s = TestServer::start(&["--request-timeout-ms", "300"]);
    s.post("/tables/t", &json!({ "fields": [{ "name": "a", "type": "u8" }] })).expect(201);
    s.post("/tables/t/records", &json!({ "a": 1 })).expect(201);
    // A client that stops in the middle of its request headers, and stays connected.
    let mut stalled = std::net::TcpStream::connect(s.addr).expect("connect");
    stalled.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let status = s.sigterm();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{}", s.stderr());
    assert!(start.elapsed() < Duration::from_secs(10), "shutdown took {:?}", start.elapsed());
    drop(stalled);
    s.restart();
    assert_eq!(all_records(&s.client(), "t"), vec![json!({ "id": 1, "a": 1 })]);
}

/// Writers that record what was acknowledged, until told to stop or the server goes away.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<WriterLog>>,
}

#[derive(Default)]
struct WriterLog {
    /// Records acknowledged (201): id → value.
    created: BTreeMap<u64, u64>,
    /// The writer's own counter record: its last acknowledged and last attempted values.
    counter: Option<(u64, u64, u64)>,
    /// Statuses other than 201/200 seen (e.g. 503 while shutting down).
    others: Vec<u16>,
}

fn start_writers(s: &TestServer, n: usize) -> Writers {
    let stop = Arc::new(AtomicBool::new(false));
    let threads = (0..n)
        .map(|t| {
            let c = s.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut log = WriterLog::default();
                let deadline = Instant::now() + Duration::from_secs(20);
                let Ok(r) = c.try_request(
                    "POST",
                    "/tables/w/records",
                    &[("content-type", "application/json")],
                    Some(json!({ "writer": t, "value": 0 }).to_string().into_bytes()),
                ) else {
                    return log;
                };
                let counter = r.expect(201)["id"].as_u64().expect("id");
                log.counter = Some((counter, 0, 0));
                let mut v = 0u64;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    v += 1;
                    // Tried from here on: the create below may be applied without an answer.
                    if let Some(c0) = &mut log.counter {
                        c0.2 = v;
                    }
                    let value = (t as u64) * 1_000_000 + v;
                    let create = json!({ "writer": t, "value": value }).to_string().into_bytes();
                    match c.try_request(
                        "POST",
                        "/tables/w/records",
                        &[("content-type", "application/json")],
                        Some(create),
                    ) {
                        Ok(r) if r.status == 201 => {
                            log.created.insert(r.json()["id"].as_u64().expect("id"), value);
                        }
                        Ok(r) => log.others.push(r.status),
                        Err(_) => break,
                    }
                    let patch = json!({ "value": v }).to_string().into_bytes();
                    match c.try_request(
                        "PATCH",
                        &format!("/tables/w/records/{counter}"),
                        &[("content-type", "application/json")],
                        Some(patch),
                    ) {
                        Ok(r) if r.status == 200 => {
                            if let Some(c0) = &mut log.counter {
                                c0.1 = v;
                            }
                        }
                        Ok(r) => log.others.push(r.status),
                        Err(_) => break,
                    }
                }
                log
            })
        })
        .collect();
    Writers { stop, threads }
}

impl Writers {
    fn finish(self) -> Vec<WriterLog> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().expect("writer thread")).collect()
    }
}

/// Every acknowledged write is in the restarted server: created records with their values,
/// counters at least at their last acknowledged value (at most the last attempted).
fn check_acknowledged(s: &TestServer, logs: &[WriterLog]) -> usize {
    let records: BTreeMap<u64, Value> =
        all_records(&s.client(), "w").into_iter().map(|r| (r["id"].as_u64().expect("id"), r)).collect();
    let mut acked = 0;
    for (t, log) in logs.iter().enumerate() {
        for (id, value) in &log.created {
            let r =
                records.get(id).unwrap_or_else(|| panic!("acknowledged record {id} of writer {t} was lost"));
            assert_eq!(r["value"], *value, "record {id}");
            assert_eq!(r["writer"], t as u64);
            acked += 1;
        }
        if let Some((id, last_acked, last_tried)) = log.counter {
            let v = records.get(&id).unwrap_or_else(|| panic!("counter {id} lost"))["value"]
                .as_u64()
                .expect("value");
            assert!(
                v >= last_acked && v <= last_tried,
                "counter {id}: {v} not in {last_acked}..={last_tried}"
            );
        }
    }
    // Nothing invented: every other record is one a writer sent.
    let counters: Vec<u64> = logs.iter().filter_map(|l| l.counter.map(|c| c.0)).collect();
    for (id, r) in &records {
        if counters.contains(id) {
            continue;
        }
        let t = r["writer"].as_u64().expect("writer") as usize;
        let value = r["value"].as_u64().expect("value");
        if value == 0 {
            // A counter whose creation was applied but not answered.
            continue;
        }
        let last_tried = logs.get(t).and_then(|l| l.counter).map_or(0, |c| c.2);
        let v = value.wrapping_sub(t as u64 * 1_000_000);
        assert!((1..=last_tried).contains(&v), "record {id} {r} was never sent");
    }
    acked
}

#[test]
fn sigterm_drains_writes_in_flight() {
    let mut s = TestServer::start(&["--tickrate", "60"]);
    s.post(
        "/tables/w",
        &json!({ "fields": [{ "name": "writer", "type": "u32" }, { "name": "value", "type": "u64" }] }),
    )
    .expect(201);
    let writers = start_writers(&s, 4);
    std::thread::sleep(Duration::from_millis(400));
    let status = s.sigterm();
    let logs = writers.finish();
    assert_eq!(status.code(), Some(0), "SIGTERM under load: exit 0 ({status}); stderr:\n{}", s.stderr());
    for log in &logs {
        // While shutting down, a request is answered 503 ("shutting down") or not at all.
        assert!(log.others.iter().all(|&st| st == 503), "{:?}", log.others);
    }
    s.restart();
    let acked = check_acknowledged(&s, &logs);
    assert!(acked >= 4, "the writers wrote before the signal: {acked}");
}

#[test]
fn sigkill_after_acknowledged_writes_loses_nothing() {
    let mut s = TestServer::start(&["--tickrate", "60", "--durability", "tick"]);
    s.post(
        "/tables/w",
        &json!({ "fields": [{ "name": "writer", "type": "u32" }, { "name": "value", "type": "u64" }] }),
    )
    .expect(201);
    let writers = start_writers(&s, 4);
    std::thread::sleep(Duration::from_millis(600));
    s.sigkill();
    let logs = writers.finish();
    for log in &logs {
        assert!(log.others.is_empty(), "only successes before the kill: {:?}", log.others);
    }
    s.restart();
    let acked = check_acknowledged(&s, &logs);
    assert!(acked >= 4, "the writers wrote before the kill: {acked}");
    // And the restarted server takes writes again.
    s.post("/tables/w/records", &json!({ "writer": 99, "value": 1 })).expect(201);
}

/// `GET /types` answers the same list after a restart: a string or array type that a removed
/// field used is not listed any more (it is not stored, so a restart would not know it).
#[test]
fn types_listing_is_the_same_after_a_restart() {
    let mut s = TestServer::start(&["--tickrate", "120"]);
    s.post(
        "/tables/t",
        &json!({ "fields": [{ "name": "a", "type": "u8" }, { "name": "s", "type": "string(4)" }, { "name": "v", "type": "f32[3]" }] }),
    )
    .expect(201);
    assert_eq!(s.delete("/tables/t/fields/s").status, 204);
    assert_eq!(s.delete("/tables/t/fields/v").status, 204);
    let before = s.get("/types").expect(200);
    let names: Vec<&str> =
        before.as_array().expect("types").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(!names.contains(&"string(4)") && !names.contains(&"f32[3]"), "{names:?}");
    s.get("/types/string(4)").expect_error(404, None);
    s.stop();
    s.restart();
    let after = s.get("/types").expect(200);
    assert_eq!(before, after, "GET /types differs after a graceful restart");
}
