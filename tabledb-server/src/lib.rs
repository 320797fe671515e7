//! The tabledb REST server: tables, records, relations and procedures over HTTP.
//!
//! ```text
//! cargo run --release -p tabledb-server            # ./tabledb-data, port 7878, 60 Hz
//! cargo run --release -p tabledb-server -- --help  # every option
//! ```
//!
//! A program with typed tables and procedures serves them with [`Server`]:
//!
//! ```no_run
//! # async fn serve(db: tabledb::Database, procedures: tabledb::ProcedureRegistry) {
//! use tabledb_server::{Server, ServerConfig, shutdown_signal};
//! Server::new(ServerConfig::default())
//!     .database(db)
//!     .procedures(procedures)
//!     .serve(|addr| println!("listening on {addr}"), shutdown_signal())
//!     .await
//!     .unwrap();
//! # }
//! ```

mod app;
mod body;
pub mod config;
mod error;
mod metrics;
mod middleware;
mod openapi;
mod query;
mod routes;
mod state;

pub use app::{Server, ServerError, router, shutdown_signal};
pub use config::{ApiKey, Cli, Role, ServerConfig};
pub use error::ApiError;
pub use state::AppState;

/// Sets up logging to stderr with the given filter (e.g. `info`, `tabledb=debug`).
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colors only on a terminal: not in log files and pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Runs the server as the `tabledb-server` binary does: parses the command line, sets up
/// logging, serves until SIGINT/SIGTERM. Returns the process exit code.
pub fn main_with(procedures: tabledb::ProcedureRegistry) -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    let config = match ServerConfig::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tabledb-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tabledb-server: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(Server::new(config).procedures(procedures).serve(
        |addr| {
            use std::io::Write;
            // One line on stdout that tools (and tests) can wait for. A closed stdout (e.g.
            // piped into a program that exited) must not stop the server: errors are ignored.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "tabledb-server listening on http://{addr}");
            let _ = out.flush();
        },
        shutdown_signal(),
    ));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tabledb-server stopped");
            eprintln!("tabledb-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
