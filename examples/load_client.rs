//! A small load generator for a running tabledb server: creates a table, then several threads
//! insert records and read random ones back for a while, and the client reports throughput
//! and latency.
//!
//! ```text
//! cargo run --release -p tabledb-server -- --rate-limit 0 &     # the server, without its
//!                                                              # per-address rate limit
//! cargo run --release --example load_client -- --threads 8 --seconds 5
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Load generator for tabledb-server")]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:7878")]
    url: String,
    /// The table to use (created when missing).
    #[arg(long, default_value = "load_test")]
    table: String,
    /// Client threads, each with its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Share of requests that are reads (the rest insert records), in percent.
    #[arg(long, default_value_t = 80)]
    read_percent: u64,
    /// `Authorization: Bearer` key, when the server requires one.
    #[arg(long)]
    api_key: Option<String>,
}

struct Client {
    agent: ureq::Agent,
    base: String,
    key: Option<String>,
}

impl Client {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), String> {
        let mut b = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let mut resp = match body {
            Some(v) => self.agent.run(
                b.header("content-type", "application/json")
                    .body(v.to_string())
                    .map_err(|e| e.to_string())?,
            ),
            None => self.agent.run(b.body(()).map_err(|e| e.to_string())?),
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

fn client(args: &Args) -> Client {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    Client { agent, base: args.url.trim_end_matches('/').to_owned(), key: args.api_key.clone() }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let c = client(&args);
    let table = &args.table;
    let (status, _) = c.send("GET", &format!("/tables/{table}"), None)?;
    if status == 404 {
        let fields = json!({ "fields": [
            { "name": "x", "type": "f32" }, { "name": "y", "type": "f32" },
            { "name": "hp", "type": "u32" }, { "name": "name", "type": "string", "max_len": 16 } ] });
        let (status, body) = c.send("POST", &format!("/tables/{table}"), Some(&fields))?;
        if status != 201 {
            return Err(format!("creating table `{table}` failed with {status}: {body}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let results: Vec<(u64, u64, u64, u64, Vec<Duration>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let args = &args;
                s.spawn(move || {
                    let c = client(args);
                    let (mut reads, mut writes, mut errors, mut refused) = (0u64, 0u64, 0u64, 0u64);
                    let mut latencies = Vec::new();
                    let mut ids: Vec<u64> = Vec::new();
                    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
                    while Instant::now() < deadline {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let start = Instant::now();
                        let read = !ids.is_empty() && x % 100 < args.read_percent;
                        let outcome = if read {
                            let id = ids[(x >> 8) as usize % ids.len()];
                            c.send("GET", &format!("/tables/{}/records/{id}", args.table), None)
                        } else {
                            let record = json!({ "x": (x % 1000) as f32, "y": 1.5, "hp": 100, "name": format!("t{t}") });
                            c.send("POST", &format!("/tables/{}/records", args.table), Some(&record))
                        };
                        latencies.push(start.elapsed());
                        match outcome {
                            Ok((200, _)) if read => reads += 1,
                            Ok((201, body)) => {
                                writes += 1;
                                if let Some(id) = body["id"].as_u64() {
                                    ids.push(id);
                                }
                            }
                            // Rate-limited (429) or queue full (503): the server asks to come back.
                            Ok((429 | 503, _)) => refused += 1,
                            _ => errors += 1,
                        }
                    }
                    (reads, writes, errors, refused, latencies)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let (reads, writes, errors, refused) =
        results.iter().fold((0, 0, 0, 0), |a, r| (a.0 + r.0, a.1 + r.1, a.2 + r.2, a.3 + r.3));
    let mut all: Vec<Duration> = results.into_iter().flat_map(|r| r.4).collect();
    all.sort();
    let secs = args.seconds as f64;
    println!(
        "{} threads, {}s: {:.0} reads/s, {:.0} writes/s, {} errors, {} refused (429/503: rate limit or full queue); latency p50 {:?}, p99 {:?}",
        args.threads,
        args.seconds,
        reads as f64 / secs,
        writes as f64 / secs,
        errors,
        refused,
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
    Ok(())
}
