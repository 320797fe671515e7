//! The runtime: a fixed-rate tick loop that takes requests from a bounded queue, runs
//! procedures in parallel, commits them in the order they were queued, and makes writes
//! durable once per tick.
//!
//! Each tick has three phases with time budgets (30/50/20% of the tick by default):
//!
//! 1. **API**: schema changes first, then writes and calls from the queue, up to
//!    `max_api_requests_per_tick`. Writes are committed here.
//! 2. **Procedures**: new calls start on the worker pool, each in its own transaction on the
//!    current snapshot; finished calls commit in queue order; a call that conflicts runs again
//!    (up to `procedure_attempts` in all); a call may run across ticks, holding back the
//!    commits of later calls (the order is part of the result), until it finishes or times
//!    out.
//! 3. **Persistence**: one log fsync covers every commit of the tick, then their callers are
//!    answered (with `Durability::Tick`); every `flush_interval_ticks` a checkpoint starts in
//!    the background.
//!
//! The schedule does not drift: tick *n* starts at `start + n × period`. A tick that overruns
//! is counted, and the ticks whose start it passed are skipped rather than run back to back.

mod config;
mod metrics;
mod queue;
mod tick;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use serde_json::Value;

pub use config::{ConfigError, MAX_PROCEDURE_TIMEOUT, RuntimeConfig, TICK_HZ_RANGE};
pub use metrics::{MetricsSnapshot, TICK_BUCKETS_US};
pub use queue::{DdlFn, Job, Reply, WriteFn};

use crate::Database;
use crate::error::Error;
use crate::procedure::{ProcError, ProcedureRegistry, in_procedure};
use crate::txn::Transaction;

pub(crate) struct Core {
    db: Database,
    registry: Arc<ProcedureRegistry>,
    config: RuntimeConfig,
    queue: queue::Queue,
    metrics: metrics::Metrics,
    pool: rayon::ThreadPool,
    stop: AtomicBool,
    calls_in_flight: std::sync::atomic::AtomicUsize,
}

/// A running tick loop. Dropping it shuts it down gracefully (see [`Runtime::shutdown`]).
pub struct Runtime {
    handle: RuntimeHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("tick_hz", &self.handle.core.config.tick_hz).finish_non_exhaustive()
    }
}

/// A cheap, cloneable way to send requests to a runtime from any thread.
#[derive(Clone)]
pub struct RuntimeHandle {
    core: Arc<Core>,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle").field("queue_len", &self.core.queue.len()).finish_non_exhaustive()
    }
}

/// Why a runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not start the worker pool: {0}")]
    Pool(#[from] rayon::ThreadPoolBuildError),
    #[error("could not start the tick thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Runtime {
    /// Starts the tick loop over `db` with these procedures.
    pub fn start(
        db: Database,
        registry: ProcedureRegistry,
        config: RuntimeConfig,
    ) -> Result<Runtime, StartError> {
        config.validate()?;
        let mut pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("tabledb-worker-{i}"));
        if let Some(n) = config.worker_threads {
            pool = pool.num_threads(n);
        }
        let core = Arc::new(Core {
            queue: queue::Queue::new(config.queue_capacity()?),
            db,
            registry: Arc::new(registry),
            metrics: metrics::Metrics::default(),
            pool: pool.build()?,
            stop: AtomicBool::new(false),
            calls_in_flight: std::sync::atomic::AtomicUsize::new(0),
            config,
        });
        let thread = {
            let core = core.clone();
            std::thread::Builder::new().name("tabledb-tick".into()).spawn(move || tick::run(core))?
        };
        Ok(Runtime { handle: RuntimeHandle { core }, thread: Some(thread) })
    }

    /// A handle for sending requests.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// Stops taking requests (those still queued are answered "shutting down"), finishes the
    /// calls in flight (each within its timeout), syncs the log a last time and, when
    /// configured, writes a checkpoint. Returns once the tick thread has ended.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.handle.core.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("the tick thread panicked");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl RuntimeHandle {
    /// Queues a request; `reply` is called exactly once with its outcome — or, when the
    /// request is refused at once (queue full: [`ProcError::Overloaded`]; shutting down;
    /// unknown procedure; a call from inside a procedure), the error is returned and `reply`
    /// is not called. Never blocks.
    pub fn submit(&self, job: Job, reply: Reply) -> Result<(), ProcError> {
        if let Job::Call { name, .. } = &job {
            if in_procedure() {
                return Err(ProcError::Nested { procedure: name.clone() });
            }
            self.core.registry.get(name)?;
        }
        // Replies are program code called on the tick thread: one that panics is logged and
        // must not take the tick loop (and every other request) down with it.
        let reply: Reply = Box::new(move |result| {
            if let Err(message) = crate::procedure::catch_panic(|| reply(result)) {
                tracing::error!(panic = %message, "a request's reply panicked");
            }
        });
        self.core.queue.push(job, reply).map_err(|(e, _reply)| e)
    }

    /// Submits a request and waits for its outcome, at most `timeout` (then
    /// [`ProcError::TimedOut`]; the request still runs).
    pub fn request(&self, job: Job, timeout: Duration) -> Result<Value, ProcError> {
        let label = match &job {
            Job::Call { name, .. } => name.clone(),
            Job::Ddl(_) => "schema change".to_owned(),
            Job::Write(_) => "write".to_owned(),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(
            job,
            Box::new(move |r| {
                // The waiter may have given up; then nobody needs the answer.
                let _ = tx.send(r);
            }),
        )?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ProcError::TimedOut { procedure: label }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ProcError::ShuttingDown),
        }
    }

    /// Calls a procedure and waits for its result (after its commit is acknowledged).
    pub fn call(&self, name: &str, args: Value, timeout: Duration) -> Result<Value, ProcError> {
        self.request(Job::Call { name: name.to_owned(), args }, timeout)
    }

    /// Runs `f` in a transaction committed by the tick loop and waits for it to be
    /// acknowledged.
    pub fn write(
        &self,
        f: impl FnOnce(&mut Transaction) -> Result<Value, Error> + Send + 'static,
        timeout: Duration,
    ) -> Result<Value, ProcError> {
        self.request(Job::Write(Box::new(f)), timeout)
    }

    /// Runs a schema change on the tick loop (before the tick's writes) and waits for it.
    pub fn ddl(
        &self,
        f: impl FnOnce(&Database) -> Result<Value, Error> + Send + 'static,
        timeout: Duration,
    ) -> Result<Value, ProcError> {
        self.request(Job::Ddl(Box::new(f)), timeout)
    }

    /// The database the runtime serves. Reads may go straight to its snapshots.
    pub fn database(&self) -> &Database {
        &self.core.db
    }

    /// The registered procedures.
    pub fn procedures(&self) -> &ProcedureRegistry {
        &self.core.registry
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.core.config
    }

    /// True once shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.core.stop.load(Ordering::Acquire) || self.core.queue.is_closed()
    }

    /// The runtime's counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut m = self.core.metrics.snapshot();
        m.tick_hz = self.core.config.tick_hz;
        m.queue_len = self.core.queue.len();
        m.queue_capacity = self.core.queue.capacity();
        m.dropped_requests = self.core.queue.dropped();
        m.calls_in_flight = self.core.calls_in_flight.load(Ordering::Relaxed);
        m.commit_conflicts = self.core.db.stats().conflicts;
        m
    }
}
