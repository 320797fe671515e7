//! Shared helpers for the end-to-end tests of the `tabledb-server` binary: locating (and if
//! needed building) the binary, starting it on a free port with a temporary data directory,
//! a small blocking HTTP client, and signals. Every wait is bounded, so a hung server fails a
//! test instead of hanging it.
//!
//! The binary is `TABLEDB_SERVER_BIN` when set; otherwise `tabledb-server` next to the test
//! executable's `deps/` directory (where `cargo build` puts it), built with
//! `cargo build -p tabledb-server` (bounded in time) when it is missing or older than its sources,
//! so that a test never runs a stale server.

#![allow(dead_code)] // Each test file uses a different part of these helpers.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

/// How long a server may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM/SIGINT (drain, sync, checkpoint).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one HTTP request may take in all.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long building a missing binary may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The environment variables the server reads; removed from every child so that the
/// environment of the test run cannot change what a test starts.
pub const SERVER_ENV_VARS: &[&str] = &[
    "TABLEDB_CONFIG",
    "TABLEDB_DATA_DIR",
    "TABLEDB_HOST",
    "TABLEDB_PORT",
    "TABLEDB_TICKRATE",
    "TABLEDB_DURABILITY",
    "TABLEDB_MAX_BODY_BYTES",
    "TABLEDB_API_KEYS",
    "TABLEDB_RATE_LIMIT",
    "TABLEDB_REQUEST_TIMEOUT_MS",
    "TABLEDB_MAX_PAGE_SIZE",
    "TABLEDB_FLUSH_INTERVAL_TICKS",
    "TABLEDB_QUEUE_CAPACITY",
    "TABLEDB_LOG",
];

// ---- locating and building binaries ----

/// `target/<profile>` of this build: the test executable is `target/<profile>/deps/NAME-HASH`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("the test executable is in a directory");
    let dir =
        if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().unwrap_or(deps) } else { deps };
    dir.to_path_buf()
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                newest_mtime(&e.path(), newest);
            }
        }
    } else if let Ok(m) = meta.modified()
        && m > *newest
    {
        *newest = m;
    }
}

/// True when `bin` is missing or older than any source it is built from (so a run of only
/// this package after editing the server does not test a stale binary).
fn needs_build(bin: &Path, sources: &[&str]) -> bool {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else { return true };
    let mut newest = SystemTime::UNIX_EPOCH;
    for s in sources {
        newest_mtime(&workspace_root().join(s), &mut newest);
    }
    newest > built
}

/// Runs `cargo build <args>` into this build's target directory, bounded in time.
fn cargo_build(args: &[&str]) {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let profile = profile_dir();
    let target_dir = profile.parent().expect("target/<profile> has a parent").to_path_buf();
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .args(args)
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if profile.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().expect("running cargo build");
    let status = wait_timeout(&mut child, BUILD_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`cargo build {}` took longer than {BUILD_TIMEOUT:?}", args.join(" "));
    });
    assert!(status.success(), "`cargo build {}` failed: {status}", args.join(" "));
}

/// What the server binary is built from (for the staleness check).
const SERVER_SOURCES: &[&str] = &[
    "tabledb-server/src",
    "tabledb-server/Cargo.toml",
    "tabledb/src",
    "tabledb/Cargo.toml",
    "tabledb-derive/src",
];

/// The `tabledb-server` binary.
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("TABLEDB_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let bin = profile_dir().join(format!("tabledb-server{}", std::env::consts::EXE_SUFFIX));
        if needs_build(&bin, SERVER_SOURCES) {
            cargo_build(&["-p", "tabledb-server", "--bin", "tabledb-server"]);
        }
        assert!(bin.exists(), "{} does not exist after building it", bin.display());
        bin
    })
}

/// The `server_with_procedures` example: the same server with a few procedures registered.
pub fn procedures_server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = profile_dir()
            .join("examples")
            .join(format!("server_with_procedures{}", std::env::consts::EXE_SUFFIX));
        let mut sources = SERVER_SOURCES.to_vec();
        sources.push("examples/server_with_procedures.rs");
        if needs_build(&bin, &sources) {
            cargo_build(&["-p", "tabledb-suite", "--example", "server_with_procedures"]);
        }
        assert!(bin.exists(), "{} does not exist after building it", bin.display());
        bin
    })
}

// ---- processes ----

/// Waits at most `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("waiting for a child: {e}"),
        }
    }
}

/// Runs the server binary with `args` to completion (for `--help` and bad options), bounded.
/// Returns (exit status, stdout, stderr).
pub fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let logs = TempDir::new().expect("tempdir");
    let out_path = logs.path().join("stdout");
    let err_path = logs.path().join("stderr");
    let mut cmd = Command::new(server_bin());
    for v in SERVER_ENV_VARS {
        cmd.env_remove(v);
    }
    let mut child = cmd
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(logs.path())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawning tabledb-server");
    let status = wait_timeout(&mut child, EXIT_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("tabledb-server {args:?} did not exit within {EXIT_TIMEOUT:?}");
    });
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status, stdout, stderr)
}

fn send_signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own child, which has not
    // been reaped yet (we hold its `Child` and only reap through it), so it names that process.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed: {}", std::io::Error::last_os_error());
}

/// A running `tabledb-server` with its own temporary data directory. Killed (SIGKILL) and
/// reaped when dropped, so every failing path ends it.
pub struct TestServer {
    bin: PathBuf,
    child: Option<Child>,
    /// The address to connect to (loopback).
    pub addr: SocketAddr,
    /// `http://ADDR`.
    pub base: String,
    dir: TempDir,
    logs: TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    starts: usize,
    client: Client,
    /// Every line the server (all its runs) printed on stdout.
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How to start a server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra command-line arguments (after `--data-dir DIR --port 0`).
    pub args: Vec<String>,
    /// Environment variables.
    pub envs: Vec<(String, String)>,
    /// Leave out `--data-dir` (the test puts it elsewhere, e.g. in the environment).
    pub no_data_dir: bool,
    /// Leave out `--port 0` (the test gives the port some other way).
    pub no_port: bool,
    /// Run `procedures_server_bin()` instead of `server_bin()`.
    pub with_procedures: bool,
}

impl Options {
    pub fn args(args: &[&str]) -> Options {
        Options { args: args.iter().map(|s| (*s).to_owned()).collect(), ..Options::default() }
    }

    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl TestServer {
    /// Starts the server with these extra arguments.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_with(Options::args(args))
    }

    pub fn start_with(opts: Options) -> TestServer {
        let dir = TempDir::new().expect("data tempdir");
        let logs = TempDir::new().expect("log tempdir");
        let mut args = Vec::new();
        if !opts.no_data_dir {
            args.push("--data-dir".to_owned());
            args.push(dir.path().join("data").display().to_string());
        }
        if !opts.no_port {
            args.extend(["--port".to_owned(), "0".to_owned()]);
        }
        args.extend(opts.args);
        let bin = if opts.with_procedures { procedures_server_bin() } else { server_bin() };
        let mut s = TestServer {
            bin: bin.to_path_buf(),
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base: String::new(),
            dir,
            logs,
            args,
            envs: opts.envs,
            starts: 0,
            client: Client::new(""),
            stdout: Default::default(),
        };
        s.spawn();
        s
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temporary directory the server runs in (its current directory).
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.starts += 1;
        let err_path = self.logs.path().join(format!("stderr.{}", self.starts));
        let mut cmd = Command::new(&self.bin);
        for v in SERVER_ENV_VARS {
            cmd.env_remove(v);
        }
        cmd.args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&err_path).expect("stderr file"));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        let lines = self.stdout.clone();
        std::thread::spawn(move || {
            // Keeps reading until the child closes stdout, so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.clone());
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("tabledb-server listening on http://") {
                        let mut addr: SocketAddr = rest
                            .trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("bad address in the listening line {line:?}: {e}"));
                        if addr.ip().is_unspecified() {
                            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                        }
                        break addr;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no listening line within {START_TIMEOUT:?}; stderr:\n{}", self.stderr())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().and_then(|c| wait_timeout(c, EXIT_TIMEOUT));
                    panic!("the server exited ({status:?}) before listening; stderr:\n{}", self.stderr())
                }
            }
        };
        assert_ne!(addr.port(), 0, "the server reported port 0");
        self.addr = addr;
        self.base = format!("http://{addr}");
        self.client = Client::new(&self.base);
    }

    /// Everything the server (all its runs) wrote to stderr.
    pub fn stderr(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            out.push_str(
                &std::fs::read_to_string(self.logs.path().join(format!("stderr.{i}"))).unwrap_or_default(),
            );
        }
        out
    }

    /// Every line the server (all its runs) printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// Sends `signal` and waits (bounded) for the exit; returns the exit status.
    fn signal_and_wait(&mut self, signal: libc::c_int) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        send_signal(&child, signal);
        match wait_timeout(&mut child, EXIT_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {EXIT_TIMEOUT:?} of signal {signal}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal_and_wait(libc::SIGTERM)
    }

    /// SIGINT (Ctrl-C), then waits (bounded) for the exit.
    pub fn sigint(&mut self) -> ExitStatus {
        self.signal_and_wait(libc::SIGINT)
    }

    /// SIGTERM and asserts a clean exit (code 0).
    pub fn stop(&mut self) {
        let status = self.sigterm();
        assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status}; stderr:\n{}", self.stderr());
    }

    /// SIGKILL: the process ends at once, without any shutdown.
    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("SIGKILL");
        wait_timeout(&mut child, EXIT_TIMEOUT).expect("a SIGKILLed server exits");
    }

    /// Starts the server again on the same data directory with the same options (on a new
    /// free port). The previous process must have ended (`sigterm`, `sigkill`).
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Starts the server again like [`restart`](Self::restart), with `extra` arguments added
    /// (options not given before, such as a short request timeout once the data is loaded).
    pub fn restart_adding(&mut self, extra: &[&str]) {
        self.args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.spawn();
    }

    /// A client of this server (cheap; for threads).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn get(&self, path: &str) -> Resp {
        self.client.get(path)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.client.post(path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.client.put(path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.client.patch(path, body)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.client.delete(path)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
        self.client.request(method, path, headers, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_timeout(&mut child, EXIT_TIMEOUT);
        }
    }
}

// ---- HTTP ----

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, showing the body, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("status {}: body is not JSON ({e}): {}", self.status, self.text()))
    }

    /// A header (lower-case name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Asserts the status, showing the body when it differs; returns the JSON body (or Null
    /// for an empty one).
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        if self.body.is_empty() { Value::Null } else { self.json() }
    }

    /// Asserts an error response: this status, a JSON body `{"error": {"code", "message"}}`
    /// with this code (when given) and no internals in it. Returns the message.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: Option<&str>) -> String {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.text());
        assert!(
            self.header("content-type").is_some_and(|c| c.starts_with("application/json")),
            "error responses are JSON; got content-type {:?}, body {}",
            self.header("content-type"),
            self.text()
        );
        let v = self.json();
        let err = v.get("error").unwrap_or_else(|| panic!("no `error` in {v}"));
        let got_code =
            err.get("code").and_then(Value::as_str).unwrap_or_else(|| panic!("no error.code in {v}"));
        let message =
            err.get("message").and_then(Value::as_str).unwrap_or_else(|| panic!("no error.message in {v}"));
        assert!(!got_code.is_empty() && !message.is_empty(), "empty code or message: {v}");
        if let Some(code) = code {
            assert_eq!(got_code, code, "error code; body: {v}");
        }
        assert_no_internals(&self.text());
        message.to_owned()
    }
}

/// Asserts that a text shown to a client carries no panic text, source path or Rust type name.
#[track_caller]
pub fn assert_no_internals(text: &str) {
    for needle in [
        "panicked",
        "RUST_BACKTRACE",
        ".rs:",
        "src/",
        "/home/",
        "/root/",
        "/work/",
        "::",
        "struct ",
        "enum ",
        "Option<",
        "Vec<",
        "String",
        "serde",
        "tabledb_",
        "unwrap",
    ] {
        assert!(!text.contains(needle), "a client saw internals ({needle:?}): {text}");
    }
}

/// A blocking HTTP client for one server: JSON in and out, no error on 4xx/5xx, bounded in
/// time, optionally with a bearer key.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    key: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(base: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .max_redirects(0)
            .build()
            .new_agent();
        Client { base: base.to_owned(), agent, key: None }
    }

    /// The same client, sending `Authorization: Bearer KEY`.
    pub fn with_key(&self, key: &str) -> Client {
        Client { key: Some(key.to_owned()), ..self.clone() }
    }

    /// Sends a request; `Err` only for transport failures (refused, reset, timed out).
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, ureq::Error> {
        let mut b = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut resp = match body {
            Some(body) => self.agent.run(b.body(body).expect("a valid request"))?,
            None => self.agent.run(b.body(()).expect("a valid request"))?,
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = resp.body_mut().with_config().limit(64 << 20).read_to_vec()?;
        Ok(Resp { status, headers, body })
    }

    /// Sends a request; panics on a transport failure.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Resp {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, &[], None)
    }

    fn json(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.request(
            method,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.json("POST", path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.json("PUT", path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.json("PATCH", path, body)
    }
}

// ---- small helpers ----

/// Polls `f` every 20 ms until it returns `Some`, at most `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records of a table (all pages), in id order.
pub fn all_records(client: &Client, table: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page =
            client.get(&format!("/tables/{table}/records?limit=1000&offset={}", out.len())).expect(200);
        let records = page["records"].as_array().expect("records").clone();
        let n = records.len();
        out.extend(records);
        if n < 1000 {
            return out;
        }
    }
}

// ---- OpenAPI ----

/// Every route of the API, as the issue lists it: (path, methods).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/health", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
    ("/types", &["get", "post"]),
    ("/types/{name}", &["get"]),
    ("/tables", &["get"]),
    ("/tables/{name}", &["get", "post", "delete"]),
    ("/tables/{name}/fields", &["post"]),
    ("/tables/{name}/fields/{field}", &["get", "delete"]),
    ("/tables/{name}/compact", &["post"]),
    ("/tables/{name}/records", &["get", "post"]),
    ("/tables/{name}/records/{id}", &["get", "put", "patch", "delete"]),
    ("/relations", &["get", "post"]),
    ("/relations/{id}", &["get", "delete"]),
    ("/rpc", &["get"]),
];

/// Checks an OpenAPI document's paths: every route with every method, responses, a request
/// body where one is sent, and every `{param}` of the path declared.
pub fn check_openapi_paths(doc: &Value, routes: &[(&str, &[&str])]) {
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "OpenAPI 3: {}", doc["openapi"]);
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in routes {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing from /openapi.json"));
        for m in *methods {
            let op = item.get(*m).unwrap_or_else(|| panic!("{m} {path} missing from /openapi.json"));
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{m} {path}: no responses"));
            assert!(responses.keys().any(|k| k.starts_with('2')), "{m} {path}: no success response");
            if matches!(*m, "put" | "patch") || (*m == "post" && !path.ends_with("/compact")) {
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{m} {path}: no JSON request body"
                );
            }
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|a| a.iter().filter(|p| p["in"] == "path").filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for seg in path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))) {
                assert!(params.contains(&seg), "{m} {path}: path parameter {seg} not declared");
            }
        }
    }
}
