//! tabledb benchmarks. Each workload runs against the practical limit — a plain `Vec<T>` (with
//! Rayon where parallel) doing the same work in the same run — and reports both.
//!
//! ```text
//! cargo run --release -p tabledb-bench -- engine [--records N] [--json FILE]
//! cargo run --release -p tabledb-bench -- persist [--records N] [--json FILE]
//! cargo run --release -p tabledb-bench -- procedures [--records N] [--json FILE]
//! cargo run --release -p tabledb-bench -- http [--records N] [--json FILE]
//! ```

mod alloc;
mod engine;
mod harness;
mod http;
mod persist;
mod procedures;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

#[derive(Parser, Debug)]
#[command(about = "tabledb benchmarks against a plain Vec baseline")]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// Write one JSON object per measured row to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Timed runs per workload; the median is reported.
    #[arg(long, global = true, default_value_t = 5)]
    runs: usize,
    /// Minimum duration of each timed run, in milliseconds.
    #[arg(long, global = true, default_value_t = 1000)]
    min_run_ms: u64,
    /// Only run workloads whose name starts with this.
    #[arg(long, global = true)]
    only: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Suite {
    /// Storage engine: point reads, scans, transactions, inserts, memory.
    Engine {
        /// Records in the table.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
    /// Persistence: checkpoint writing, recovery, durable writes through group commit.
    Persist {
        /// Records in the table.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
    /// Procedures: a parallel update of every record, and calls per second.
    Procedures {
        /// Records in the table.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
    },
    /// REST server under 64 keep-alive HTTP/1.1 connections, against a bare axum handler:
    /// record reads, and one-record POSTs with durability tick and async.
    Http {
        /// Records in the table the reads come from.
        #[arg(long, default_value_t = 100_000)]
        records: u64,
    },
}

fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let plan = harness::Plan {
        runs: cli.runs.max(1),
        min_run: Duration::from_millis(cli.min_run_ms),
        warmup: Duration::from_millis(cli.min_run_ms / 2),
    };
    let mut report = harness::Report::new(cli.json.clone());
    match cli.suite {
        Suite::Engine { records } => engine::run(records, &plan, &mut report, cli.only.as_deref()),
        Suite::Persist { records } => persist::run(records, &plan, &mut report, cli.only.as_deref()),
        Suite::Procedures { records } => procedures::run(records, &plan, &mut report, cli.only.as_deref()),
        Suite::Http { records } => http::run(records, &plan, &mut report, cli.only.as_deref()),
    }
    report.finish()
}
