//! Listings that are costly or unusual: ordering by a float field holding NaN (over an
//! in-process server of a program's typed table), a scan cut off at the request timeout, and
//! the cap on filters.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, TestServer};
use serde_json::{Value, json};
use tabledb::{Database, ProcedureRegistry, Table};
use tabledb_server::{Server, ServerConfig};

/// A server over a database opened in this process, stopped (boundedly) when dropped.
struct InProcess {
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve(db: Database, dir: &std::path::Path) -> InProcess {
    let cfg = ServerConfig { data_dir: dir.to_path_buf(), port: 0, rate_limit: 0, ..ServerConfig::default() };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let _ = rt.block_on(Server::new(cfg).database(db).procedures(ProcedureRegistry::new()).serve(
            move |addr| {
                let _ = addr_tx.send(addr);
            },
            async move {
                let _ = stop_rx.await;
            },
        ));
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("the server listens");
    InProcess { client: Client::new(&format!("http://{addr}")), stop: Some(stop_tx), thread: Some(thread) }
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Body {
    x: f64,
}

fn xs(page: &Value) -> Vec<(u64, Option<f64>)> {
    page["records"].as_array().unwrap().iter().map(|r| (r["id"].as_u64().unwrap(), r["x"].as_f64())).collect()
}

/// Ordering by a float field holding NaN answers 200 in a total order: numbers in order, NaN
/// after every number ascending and before every number descending, ties by id.
#[test]
fn ordering_by_a_float_field_holding_nan() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::new();
    let t = db.create_table::<Body>().unwrap();
    let mut tx = db.begin();
    let mut seed = 12345u64;
    let mut numbers = Vec::new();
    for i in 0..2000u64 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        // Both signs of NaN, and numbers of both signs.
        let x = match i % 6 {
            0 => f64::NAN,
            3 => -f64::NAN,
            _ => (seed >> 11) as f64 - (1u64 << 52) as f64,
        };
        let id = tx.insert(t, &Body { x }).unwrap();
        if !x.is_nan() {
            numbers.push((x, id.0));
        }
    }
    tx.commit().unwrap();
    numbers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let s = serve(db, dir.path());

    let asc = xs(&s.client.get("/tables/body/records?order=x.asc&limit=1000").expect(200));
    let asc_rest = xs(&s.client.get("/tables/body/records?order=x.asc&limit=1000&offset=1000").expect(200));
    let desc = xs(&s.client.get("/tables/body/records?order=x.desc&limit=1000").expect(200));
    let desc_rest = xs(&s.client.get("/tables/body/records?order=x.desc&limit=1000&offset=1000").expect(200));
    let asc: Vec<_> = asc.into_iter().chain(asc_rest).collect();
    let desc: Vec<_> = desc.into_iter().chain(desc_rest).collect();
    assert_eq!(asc.len(), 2000);
    // NaN is shown as null.
    let (nums, nans) = asc.split_at(numbers.len());
    assert_eq!(nums.iter().map(|(id, x)| (x.unwrap(), *id)).collect::<Vec<_>>(), numbers);
    assert!(nans.iter().all(|(_, x)| x.is_none()), "NaN last ascending");
    assert!(nans.windows(2).all(|w| w[0].0 < w[1].0), "NaN ties by id");
    assert_eq!(desc, asc.iter().rev().copied().collect::<Vec<_>>(), "descending is ascending reversed");
    // The same request answers the same page.
    assert_eq!(xs(&s.client.get("/tables/body/records?order=x.asc&limit=1000").expect(200)), &asc[..1000]);
}

/// A costly listing (many `in` values over many records) is cut off at the request timeout
/// with the timeout's 408, and the server answers other requests meanwhile.
#[test]
fn a_costly_listing_stops_at_the_request_timeout() {
    // The data goes in under the default timeout (a loaded machine may take longer than the
    // 300 ms the test is about), then the server starts again with the short one.
    let mut s = TestServer::start(&["--rate-limit", "0"]);
    s.post("/tables/h", &json!({ "fields": [{ "name": "a", "type": "u32" }] })).expect(201);
    let batch = Value::Array(vec![json!({ "a": 5 }); 10_000]);
    for _ in 0..4 {
        s.post("/tables/h/records", &batch).expect(201);
    }
    s.stop();
    s.restart_adding(&["--request-timeout-ms", "300"]);
    let values = format!("{},5", vec!["0"; 999].join(","));
    let query = vec![format!("a=in.({values})"); 16].join("&");
    let busy = {
        let c = s.client();
        std::thread::spawn(move || {
            let start = Instant::now();
            let r = c.get(&format!("/tables/h/records?{query}&count=true&limit=1"));
            (r, start.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let health = Instant::now();
    s.get("/health").expect(200);
    assert!(health.elapsed() < Duration::from_secs(1), "health took {:?}", health.elapsed());
    let (r, took) = busy.join().unwrap();
    r.expect_error(408, Some("timeout"));
    assert!(took < Duration::from_secs(2), "the request timeout is 300 ms, the listing took {took:?}");
    // A cheap listing over the same table still answers.
    let page = s.get("/tables/h/records?a=eq.5&limit=2&count=true").expect(200);
    assert_eq!(page["total"], 40_000);
}

/// A listing takes at most 16 filters; more are refused with a 400 that names the limit.
#[test]
fn a_listing_takes_at_most_16_filters() {
    let s = TestServer::start(&[]);
    s.post("/tables/h", &json!({ "fields": [{ "name": "a", "type": "u32" }] })).expect(201);
    s.post("/tables/h/records", &json!([{ "a": 1 }, { "a": 2 }])).expect(201);
    let q = |n: usize| vec!["a=gte.1"; n].join("&");
    assert_eq!(
        s.get(&format!("/tables/h/records?{}", q(16))).expect(200)["records"].as_array().unwrap().len(),
        2
    );
    let msg = s.get(&format!("/tables/h/records?{}", q(17))).expect_error(400, Some("bad_request"));
    assert!(msg.contains("16 filters"), "{msg}");
}

/// CPU time the process `pid` has used, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_listing_answered_408_stops_working_on_its_page() {
    let mut s = TestServer::start(&["--rate-limit", "0"]);
    s.post("/tables/big", &json!({ "fields": [{ "name": "b", "type": "u8[60000]" }] })).expect(201);
    // Records whose JSON takes long to build: 200 arrays of 60 000 numbers.
    let batch = Value::Array(vec![json!({ "b": vec![7u8; 60000] }); 2]);
    for _ in 0..100 {
        s.post("/tables/big/records", &batch).expect(201);
    }
    // As above: loaded under the default timeout, then the short one.
    s.stop();
    s.restart_adding(&["--request-timeout-ms", "300"]);
    let started = Instant::now();
    s.get("/tables/big/records?limit=200").expect_error(408, Some("timeout"));
    assert!(started.elapsed() < Duration::from_secs(3), "answered after {:?}", started.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(s.pid());
    std::thread::sleep(Duration::from_secs(1));
    let busy = cpu_ticks(s.pid()) - before;
    assert!(busy < 30, "0.5 s after the 408 the server still used {busy}/100 s of CPU in a second");
    // A page that fits the time is whole, in order.
    let page = s.get("/tables/big/records?order=id.desc&limit=3&offset=1").expect(200);
    let ids: Vec<u64> =
        page["records"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![199, 198, 197]);
}
