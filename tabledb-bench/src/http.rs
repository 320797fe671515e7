//! `http`: the REST server (`tabledb-server`, in-process on 127.0.0.1) under a closed-loop load
//! of 64 keep-alive HTTP/1.1 connections, each issuing requests back to back, against a bare
//! axum handler answering the same requests in the same run with the same client.
//!
//! The client, the server and the baseline share one tokio runtime (and the machine's cores);
//! the server's tick loop runs on its own threads.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tabledb::{Database, Durability, PersistOptions, Table};
use tabledb_server::{Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::engine::{Entity, entity};
use crate::harness::{Plan, Report, Row, XorShift, median};

/// Concurrent keep-alive connections of the load client.
pub const CONNECTIONS: usize = 64;

/// Distinct request targets (GET paths, POST bodies) the client cycles through.
const POOL: usize = 1 << 16;

fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("TABLEDB_BENCH_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("tabledb-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The fields of `entity(i)` as the server shows them, after `id` when given.
fn entity_json(i: u64, id: Option<u64>) -> Value {
    let e = entity(i);
    let fields = json!({
        "pos": e.pos,
        "score": e.score,
        "owner": e.owner,
        "vel": e.vel.map(f64::from),
        "hp": e.hp,
        "level": e.level,
        "flags": e.flags,
    });
    match id {
        None => fields,
        Some(id) => {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), id.into());
            m.extend(fields.as_object().expect("an object").clone());
            Value::Object(m)
        }
    }
}

/// Writes a data directory holding an `Entity` table of `entity(0..n)` (ids 1..=n), for the
/// server to open (and recover) as it would at startup.
fn prepare(dir: &FsPath, n: u64) {
    let db = Database::open_with(
        dir,
        tabledb::Config::default(),
        PersistOptions { durability: Durability::Async, ..PersistOptions::default() },
    )
    .expect("open the benchmark database");
    let table = db.create_table::<Entity>().expect("create table");
    let mut i = 0;
    while i < n {
        let mut tx = db.begin();
        for j in i..(i + 10_000).min(n) {
            tx.insert(table, &entity(j)).expect("insert");
        }
        tx.commit().expect("commit");
        i += 10_000;
    }
    db.sync().expect("sync");
    db.checkpoint().expect("checkpoint");
}

/// A server running on the shared runtime until stopped.
struct Target {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Target {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// `tabledb-server` on 127.0.0.1, a free port, no rate limit, over the data in `dir`.
async fn start_tabledb(dir: PathBuf, durability: Durability) -> Target {
    let cfg = ServerConfig { data_dir: dir, port: 0, rate_limit: 0, durability, ..ServerConfig::default() };
    let (addr_tx, addr_rx) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        Server::new(cfg)
            .serve(
                move |a| {
                    let _ = addr_tx.send(a);
                },
                async move {
                    let _ = stop_rx.await;
                },
            )
            .await
            .expect("tabledb-server failed");
    });
    let addr = addr_rx.await.expect("tabledb-server did not start listening");
    Target { addr, stop, task }
}

/// A bare axum router on 127.0.0.1, a free port.
async fn start_bare(router: axum::Router) -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
            .expect("bare axum server failed");
    });
    Target { addr, stop, task }
}

/// The baseline for reads: the precomputed JSON of each record, looked up by id.
fn bare_get_router(records: Arc<Vec<Value>>) -> axum::Router {
    async fn handler(
        State(records): State<Arc<Vec<Value>>>,
        Path((_table, id)): Path<(String, u64)>,
    ) -> Response {
        match id.checked_sub(1).and_then(|i| records.get(i as usize)) {
            Some(v) => Json(v).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    axum::Router::new().route("/tables/{name}/records/{id}", get(handler)).with_state(records)
}

/// The baseline for writes: parses the JSON body, counts it, answers 201 with a small JSON.
fn bare_post_router(count: Arc<AtomicU64>) -> axum::Router {
    async fn handler(
        State(count): State<Arc<AtomicU64>>,
        Path(_table): Path<String>,
        Json(body): Json<Value>,
    ) -> Response {
        if !body.is_object() {
            return StatusCode::BAD_REQUEST.into_response();
        }
        let id = count.fetch_add(1, Ordering::Relaxed) + 1;
        (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
    }
    axum::Router::new().route("/tables/{name}/records", post(handler)).with_state(count)
}

/// What the client sends, and what a good answer looks like.
#[derive(Clone)]
enum Load {
    /// GETs of these paths; the answer is 200 and starts with the matching prefix.
    Get(Arc<Vec<(Uri, Bytes)>>),
    /// POSTs of these bodies to one path; the answer is 201 and starts with `{"id":`.
    Post(Uri, Arc<Vec<Bytes>>),
}

impl Load {
    fn request(&self, k: usize) -> Request<Full<Bytes>> {
        let builder = Request::builder().header(HOST, "127.0.0.1");
        match self {
            Load::Get(paths) => builder
                .method(Method::GET)
                .uri(paths[k % paths.len()].0.clone())
                .body(Full::new(Bytes::new())),
            Load::Post(uri, bodies) => builder
                .method(Method::POST)
                .uri(uri.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(bodies[k % bodies.len()].clone())),
        }
        .expect("a valid request")
    }

    fn check(&self, k: usize, status: StatusCode, body: &[u8]) -> Result<(), String> {
        let (want_status, prefix): (StatusCode, &[u8]) = match self {
            Load::Get(paths) => (StatusCode::OK, &paths[k % paths.len()].1),
            Load::Post(..) => (StatusCode::CREATED, b"{\"id\":"),
        };
        if status == want_status && body.starts_with(prefix) {
            Ok(())
        } else {
            Err(format!(
                "expected {want_status} starting with {}, got {status}: {}",
                String::from_utf8_lossy(prefix),
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ))
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram")
}

/// One keep-alive connection.
struct Conn {
    send: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP/1.1 handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn { send, driver }
    }

    /// Sends one request and reads the whole answer.
    async fn call(&mut self, req: Request<Full<Bytes>>) -> (StatusCode, Bytes) {
        self.send.ready().await.expect("connection ready");
        let resp = self.send.send_request(req).await.expect("request");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("response body").to_bytes();
        (status, body)
    }

    /// Closes the connection and waits until it is gone.
    async fn close(self) {
        drop(self.send);
        let _ = self.driver.await;
    }
}

/// The load client: `CONNECTIONS` connections to one server.
struct Client {
    conns: Vec<Conn>,
    /// Where the next run starts in the request pool, so runs do not repeat each other.
    next: usize,
}

/// What one run (or several, merged) measured.
struct Outcome {
    ok: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut conns = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            conns.push(Conn::open(addr).await);
        }
        Client { conns, next: 0 }
    }

    /// Every connection issues requests back to back for `dur`; each request's latency is
    /// recorded. Panics on the first wrong answer.
    async fn run(&mut self, load: &Load, dur: Duration) -> Outcome {
        let start = Instant::now();
        let deadline = start + dur;
        let stride = POOL / CONNECTIONS;
        let tasks: Vec<_> = self
            .conns
            .drain(..)
            .enumerate()
            .map(|(c, mut conn)| {
                let load = load.clone();
                let first = self.next + c * stride;
                tokio::spawn(async move {
                    let mut hist = new_hist();
                    let mut k = first;
                    let mut failure = None;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        let (status, body) = conn.call(load.request(k)).await;
                        hist.record(t0.elapsed().as_nanos() as u64).ok();
                        if let Err(e) = load.check(k, status, &body) {
                            failure = Some(e);
                            break;
                        }
                        k += 1;
                    }
                    (conn, (k - first) as u64, hist, failure)
                })
            })
            .collect();
        let mut out = Outcome { ok: 0, elapsed: Duration::ZERO, hist: new_hist() };
        let mut most = 0;
        for task in tasks {
            let (conn, ok, hist, failure) = task.await.expect("client task");
            if let Some(e) = failure {
                panic!("wrong answer: {e}");
            }
            self.conns.push(conn);
            out.ok += ok;
            most = most.max(ok as usize);
            out.hist.add(&hist).expect("merge histograms");
        }
        out.elapsed = start.elapsed();
        self.next += most + stride * CONNECTIONS;
        out
    }

    async fn close(self) {
        for conn in self.conns {
            conn.close().await;
        }
    }
}

/// What `measure` found for one side.
struct Measured {
    /// Median rate of the timed runs, requests per second.
    rate: f64,
    /// Successful requests, warm-up included.
    ok: u64,
    /// Latencies of the timed runs, in nanoseconds.
    hist: Histogram<u64>,
}

/// The median rate of each side over `plan.runs` timed runs after a warm-up, the runs of the
/// two sides alternating; latencies are merged over the timed runs.
async fn measure(plan: &Plan, ours: (&mut Client, &Load), base: (&mut Client, &Load)) -> [Measured; 2] {
    let (ours_client, ours_load) = ours;
    let (base_client, base_load) = base;
    let mut ok = [0u64; 2];
    let mut hists = [new_hist(), new_hist()];
    let mut rates = [Vec::new(), Vec::new()];
    for timed in std::iter::once(false).chain(std::iter::repeat_n(true, plan.runs)) {
        let dur = if timed { plan.min_run } else { plan.warmup };
        for (side, (client, load)) in
            [(&mut *ours_client, ours_load), (&mut *base_client, base_load)].into_iter().enumerate()
        {
            let o = client.run(load, dur).await;
            ok[side] += o.ok;
            if timed {
                let rate = o.ok as f64 / o.elapsed.as_secs_f64();
                eprintln!("  {} run {}: {rate:.0} req/s", ["ours", "baseline"][side], rates[side].len() + 1);
                rates[side].push(rate);
                hists[side].add(&o.hist).expect("merge histograms");
            }
        }
    }
    let [h0, h1] = hists;
    let [mut r0, mut r1] = rates;
    [
        Measured { rate: median(&mut r0), ok: ok[0], hist: h0 },
        Measured { rate: median(&mut r1), ok: ok[1], hist: h1 },
    ]
}

/// CPU time, from `/proc` (Linux): the machine's busy and total time, and this process's.
#[derive(Clone, Copy, Debug)]
struct CpuTimes {
    machine_busy: u64,
    machine_total: u64,
    own: u64,
}

impl CpuTimes {
    fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> =
            stat.lines().next()?.split_whitespace().skip(1).map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses: utime and stime are 14 and 15.
        let after = own.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(CpuTimes { machine_busy: total - idle, machine_total: total, own })
    }

    /// The share of the machine's CPU time since `self` spent by other processes, in percent.
    fn others_since(self) -> Option<f64> {
        let now = CpuTimes::now()?;
        let total = now.machine_total.checked_sub(self.machine_total)?;
        let busy = now.machine_busy.checked_sub(self.machine_busy)?;
        let own = now.own.checked_sub(self.own)?;
        (total > 0).then(|| busy.saturating_sub(own) as f64 * 100.0 / total as f64)
    }
}

/// A note on how busy the rest of the machine was, since `start`.
fn others_note(start: Option<CpuTimes>) -> String {
    match start.and_then(CpuTimes::others_since) {
        Some(p) => format!("; other processes used {p:.0}% of the machine's CPU meanwhile"),
        None => String::new(),
    }
}

fn us(hist: &Histogram<u64>, q: f64) -> f64 {
    hist.value_at_quantile(q) as f64 / 1000.0
}

fn get_uri(id: u64) -> Uri {
    format!("/tables/{}/records/{id}", Entity::NAME).parse().expect("a valid path")
}

pub fn run(n: u64, plan: &Plan, report: &mut Report, only: Option<&str>) {
    let wants = |w: &str| only.is_none_or(|o| w.starts_with(o));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let workers = rt.metrics().num_workers();
    let shared = format!(
        "threads = {CONNECTIONS} keep-alive HTTP/1.1 connections; client, server and baseline share one \
         {workers}-worker tokio runtime on {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    if wants("http_get") {
        let row = rt.block_on(http_get(n, plan, &shared));
        report.add(row);
    }
    for (name, durability) in [("http_post_tick", Durability::Tick), ("http_post_async", Durability::Async)] {
        if wants(name) {
            let row = rt.block_on(http_post(name, durability, plan, &shared));
            report.add(row);
        }
    }
}

async fn http_get(n: u64, plan: &Plan, shared: &str) -> Row {
    assert!(n > 0, "http_get needs at least one record");
    let dir = scratch_dir("http-get");
    eprintln!("building {n} records in {} ...", dir.display());
    {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || prepare(&dir, n)).await.expect("prepare");
    }
    let server = start_tabledb(dir.clone(), ServerConfig::default().durability).await;
    let records: Arc<Vec<Value>> = Arc::new((0..n).map(|i| entity_json(i, Some(i + 1))).collect());
    let bare = start_bare(bare_get_router(records.clone())).await;

    // Random ids shared by both sides, each with the start of its expected answer.
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let ids: Vec<u64> = (0..POOL).map(|_| rng.below(n) + 1).collect();
    let paths = ids.iter().map(|id| (get_uri(*id), Bytes::from(format!("{{\"id\":{id},")))).collect();
    let load = Load::Get(Arc::new(paths));

    // Both sides answer the JSON of the record itself, in full.
    let mut check_ours = Conn::open(server.addr).await;
    let mut check_base = Conn::open(bare.addr).await;
    for (k, id) in ids.iter().enumerate().take(256) {
        let want = &records[*id as usize - 1];
        for conn in [&mut check_ours, &mut check_base] {
            let (status, body) = conn.call(load.request(k)).await;
            assert_eq!(status, StatusCode::OK, "GET of record {id}");
            let got: Value = serde_json::from_slice(&body).expect("a JSON answer");
            assert_eq!(&got, want, "GET of record {id} answered another record");
        }
    }
    check_ours.close().await;
    check_base.close().await;

    let mut ours = Client::connect(server.addr).await;
    let mut base = Client::connect(bare.addr).await;
    let cpu = CpuTimes::now();
    let [o, b] = measure(plan, (&mut ours, &load), (&mut base, &load)).await;
    let others = others_note(cpu);
    ours.close().await;
    base.close().await;
    server.stop().await;
    bare.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut row = Row::new("http_get", n, CONNECTIONS, o.rate, b.rate);
    row.p50_us = Some(us(&o.hist, 0.50));
    row.p99_us = Some(us(&o.hist, 0.99));
    row.note = Some(format!(
        "GET of random ids, default durability (tick); baseline: bare axum route returning a precomputed \
         serde_json::Value (p50 {:.0} us, p99 {:.0} us); {shared}{others}",
        us(&b.hist, 0.50),
        us(&b.hist, 0.99),
    ));
    row
}

async fn http_post(name: &str, durability: Durability, plan: &Plan, shared: &str) -> Row {
    let dir = scratch_dir(name);
    {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || prepare(&dir, 0)).await.expect("prepare");
    }
    let server = start_tabledb(dir.clone(), durability).await;
    let count = Arc::new(AtomicU64::new(0));
    let bare = start_bare(bare_post_router(count.clone())).await;

    let uri: Uri = format!("/tables/{}/records", Entity::NAME).parse().expect("a valid path");
    let bodies: Vec<Bytes> = (0..POOL as u64)
        .map(|i| Bytes::from(serde_json::to_vec(&entity_json(i, None)).expect("JSON")))
        .collect();
    let load = Load::Post(uri, Arc::new(bodies));

    // One POST in full: the answer is the record with the id the server gave it.
    let mut check = Conn::open(server.addr).await;
    let (status, body) = check.call(load.request(7)).await;
    assert_eq!(status, StatusCode::CREATED, "POST: {}", String::from_utf8_lossy(&body));
    let got: Value = serde_json::from_slice(&body).expect("a JSON answer");
    let id = got.get("id").and_then(Value::as_u64).expect("the new record's id");
    assert_eq!(got, entity_json(7, Some(id)), "POST answered another record");
    let mut posted = 1u64;

    let mut ours = Client::connect(server.addr).await;
    let mut base = Client::connect(bare.addr).await;
    let cpu = CpuTimes::now();
    let [o, b] = measure(plan, (&mut ours, &load), (&mut base, &load)).await;
    let others = others_note(cpu);
    ours.close().await;
    base.close().await;
    posted += o.ok;

    // Every acknowledged POST is a record on the server, and nothing else is.
    let (status, body) = check
        .call(
            Request::builder()
                .uri(format!("/tables/{}", Entity::NAME))
                .header(HOST, "127.0.0.1")
                .body(Full::new(Bytes::new()))
                .expect("a valid request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let table: Value = serde_json::from_slice(&body).expect("a JSON answer");
    let records = table.get("records").and_then(Value::as_u64).expect("a record count");
    assert_eq!(records, posted, "{name}: records on the server vs successful POSTs");
    assert_eq!(count.load(Ordering::Relaxed), b.ok, "{name}: baseline POSTs counted vs answered");
    check.close().await;
    server.stop().await;
    bare.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let mut row = Row::new(name, records, CONNECTIONS, o.rate, b.rate);
    row.p50_us = Some(us(&o.hist, 0.50));
    row.p99_us = Some(us(&o.hist, 0.99));
    row.note = Some(format!(
        "one record per POST, durability {durability}, {records} records created and counted on \
         the server; baseline (a reference, not a limit of the same work): bare axum route parsing \
         the JSON body and answering 201 with a small JSON (p50 {:.0} us, p99 {:.0} us); {shared}{others}",
        us(&b.hist, 0.50),
        us(&b.hist, 0.99),
    ));
    row
}
