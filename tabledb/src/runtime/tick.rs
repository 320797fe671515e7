//! The tick loop.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::Core;
use super::queue::{Entry, Job, Reply};
use crate::persist::Durability;
use crate::procedure::{MAX_PROCEDURE_TIMEOUT, ProcError, Procedure, into_object};
use crate::txn::Transaction;

/// Calls one task of the worker pool runs at most, one after another.
const MAX_CALLS_PER_TASK: usize = 32;

/// Finished calls committed as one group at most. After a conflict, the calls behind it go
/// back in line and are gathered again: the group shrinks after each conflict (and grows back
/// after groups that commit whole), so a long line of conflicting calls does not cost
/// quadratic time.
const MAX_COMMIT_GROUP: usize = 1024;
/// The smallest commit group after conflicts.
const MIN_COMMIT_GROUP: usize = 8;

/// A call whose last run took at most this long is retried after a conflict on the tick thread
/// itself rather than on the worker pool: a round trip through the pool costs more than such
/// a run, and under contention (many calls touching the same records) nearly every call is
/// retried once.
const INLINE_RETRY_MAX: Duration = Duration::from_micros(500);

/// What a panicking write closure is called in its error (`ProcError::Panicked`).
const WRITE: &str = "write";
/// What a panicking schema-change closure is called in its error.
const DDL: &str = "schema change";

/// Runs a request's closure (program code, on the tick thread), turning a panic into the error
/// a panicking procedure gets, logged and counted, so that the tick loop goes on.
fn catch_panic<R>(core: &Core, what: &'static str, f: impl FnOnce() -> R) -> Result<R, ProcError> {
    crate::procedure::catch_panic(f).map_err(|message| {
        tracing::error!(request = what, panic = %message, "request closure panicked; its transaction is discarded");
        core.metrics.requests_panicked.fetch_add(1, Ordering::Relaxed);
        ProcError::Panicked { procedure: what.to_owned() }
    })
}

/// Runs one call in its own transaction (uncommitted), numbering new records from its start
/// snapshot so that ids follow the commit order; returns how long the run took too.
fn run_call(
    db: &crate::Database,
    procedure: &Procedure,
    args: &Map<String, Value>,
    deadline: Instant,
) -> (Result<Value, ProcError>, Box<Transaction>, Duration) {
    let started = Instant::now();
    let mut tx = Box::new(db.begin_deterministic());
    let result = procedure.run(&mut tx, args.clone(), Some(deadline));
    (result, tx, started.elapsed())
}

/// A procedure call between its queueing and its answer.
struct Call {
    no: u64,
    procedure: Procedure,
    /// Shared with the runs, which each take their own copy (off the tick thread).
    args: Arc<Map<String, Value>>,
    reply: Reply,
    deadline: Instant,
    /// Runs so far (the first, plus retries after conflicts).
    attempts: u32,
    /// How long the last run took.
    last_run: Duration,
    state: State,
}

enum State {
    Waiting,
    Running,
    Done(Result<Value, ProcError>, Box<Transaction>),
}

/// A finished run, sent back by a worker.
struct Done {
    no: u64,
    attempt: u32,
    result: Result<Value, ProcError>,
    tx: Box<Transaction>,
    elapsed: Duration,
}

/// A commit waiting for the log fsync that makes it durable.
struct Pending {
    seq: u64,
    value: Value,
    reply: Reply,
}

struct Loop {
    core: Arc<Core>,
    calls: VecDeque<Call>,
    next_no: u64,
    done_tx: mpsc::Sender<Vec<Done>>,
    done_rx: mpsc::Receiver<Vec<Done>>,
    pending: Vec<Pending>,
    checkpoint: Option<std::thread::JoinHandle<crate::Result<bool>>>,
    ticks: u64,
    wait_for_durability: bool,
}

/// Stops the runtime when the tick thread unwinds (a panic outside the requests' own code,
/// such as in a reply): the queue closes, so new requests are refused at once, and every
/// request still queued is answered instead of waiting forever. Calls in flight and commits
/// waiting for the log drop their replies, which their callers see as the runtime shutting down.
struct StopOnUnwind(Arc<Core>);

impl Drop for StopOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("the tick thread panicked; the runtime stops");
            self.0.stop.store(true, Ordering::Release);
            for entry in self.0.queue.close() {
                // Replies guard themselves (see `RuntimeHandle::submit`); a second panic while
                // this thread unwinds would abort the process.
                let _ = crate::procedure::catch_panic(|| (entry.reply)(Err(ProcError::ShuttingDown)));
            }
        }
    }
}

pub(super) fn run(core: Arc<Core>) {
    let _stop_on_unwind = StopOnUnwind(core.clone());
    let (done_tx, done_rx) = mpsc::channel();
    let wait_for_durability = core.db.durability() == Some(Durability::Tick);
    let mut l = Loop {
        core,
        calls: VecDeque::new(),
        next_no: 0,
        done_tx,
        done_rx,
        pending: Vec::new(),
        checkpoint: None,
        ticks: 0,
        wait_for_durability,
    };
    let period = l.core.config.tick_period();
    let mut scheduled = Instant::now();
    loop {
        let stopping = l.core.stop.load(Ordering::Acquire);
        let start = Instant::now();
        let phases = l.tick(start, period);
        let took = start.elapsed();
        l.core.metrics.record_tick(took, phases);
        if took > period {
            l.core.metrics.overruns.fetch_add(1, Ordering::Relaxed);
        }
        if stopping {
            l.shut_down();
            return;
        }
        scheduled += period;
        let now = Instant::now();
        if now > scheduled {
            // Behind schedule: skip the ticks whose start has passed instead of running them
            // back to back, and stay on the original grid.
            let behind = (now - scheduled).as_nanos() / period.as_nanos().max(1);
            let skip = behind as u32 + 1;
            l.core.metrics.skipped_ticks.fetch_add(u64::from(skip), Ordering::Relaxed);
            scheduled += period * skip;
        }
        std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
    }
}

impl Loop {
    /// One tick; returns the durations of its three phases.
    fn tick(&mut self, start: Instant, period: Duration) -> [Duration; 3] {
        let cfg = &self.core.config;
        let api_end = start + period * cfg.api_budget_pct / 100;
        let proc_end = api_end + period * cfg.procedure_budget_pct / 100;
        self.ticks += 1;

        self.api_phase(api_end);
        let api = start.elapsed();

        let proc_start = Instant::now();
        self.procedure_phase(proc_end);
        let procedures = proc_start.elapsed();

        let persist_start = Instant::now();
        self.persistence_phase();
        [api, procedures, persist_start.elapsed()]
    }

    fn api_phase(&mut self, deadline: Instant) {
        let core = self.core.clone();
        // Schema changes are always served, and before any write still queued (even one
        // queued before them); writes and calls up to the per-tick limit and the budget.
        let mut taken = 0;
        loop {
            let dml = taken < core.config.max_api_requests_per_tick
                && self.calls.len() < core.config.max_calls_in_flight
                && Instant::now() < deadline;
            let Some(entry) = core.queue.pop(dml) else { break };
            if !matches!(entry.job, Job::Ddl(_)) {
                taken += 1;
            }
            self.serve(entry);
        }
    }

    fn serve(&mut self, entry: Entry) {
        let core = &self.core;
        core.metrics.requests.fetch_add(1, Ordering::Relaxed);
        match entry.job {
            Job::Ddl(f) => {
                core.metrics.ddl.fetch_add(1, Ordering::Relaxed);
                // Schema changes are durable when they return (schema.json is written first).
                // A panic ends only this request; what the closure changed before it stays.
                let result = match catch_panic(core, DDL, || f(&core.db)) {
                    Ok(r) => r.map_err(ProcError::Db),
                    Err(e) => Err(e),
                };
                (entry.reply)(result);
            }
            Job::Write(f) => {
                core.metrics.writes.fetch_add(1, Ordering::Relaxed);
                let mut tx = core.db.begin_deterministic();
                // A panic discards the transaction (dropped uncommitted) and ends only this
                // request.
                let written = match catch_panic(core, WRITE, || f(&mut tx)) {
                    Ok(r) => r,
                    Err(e) => return (entry.reply)(Err(e)),
                };
                match written.and_then(|v| tx.commit_no_wait().map(|info| (v, info))) {
                    Ok((value, info)) if !info.read_only => self.acknowledge(info.seq.0, value, entry.reply),
                    Ok((value, _)) => (entry.reply)(Ok(value)),
                    Err(e) => (entry.reply)(Err(ProcError::Db(e))),
                }
            }
            Job::Call { name, args } => {
                let procedure = match core.registry.get(&name) {
                    Ok(p) => *p,
                    Err(e) => return (entry.reply)(Err(e)),
                };
                let args = match into_object(args) {
                    Ok(a) => a,
                    Err(e) => return (entry.reply)(Err(e)),
                };
                // Both bounded by MAX_PROCEDURE_TIMEOUT (the registry and the configuration
                // check them); clamped again so that no duration can overflow the instant.
                let timeout =
                    procedure.timeout.unwrap_or(core.config.procedure_timeout).min(MAX_PROCEDURE_TIMEOUT);
                self.calls.push_back(Call {
                    no: self.next_no,
                    procedure,
                    args: Arc::new(args),
                    reply: entry.reply,
                    deadline: entry.queued_at.checked_add(timeout).unwrap_or(entry.queued_at),
                    attempts: 0,
                    last_run: Duration::ZERO,
                    state: State::Waiting,
                });
                self.next_no += 1;
                core.calls_in_flight.store(self.calls.len(), Ordering::Relaxed);
            }
        }
    }

    /// Answers a committed write or call now, or after the fsync that covers it.
    fn acknowledge(&mut self, seq: u64, value: Value, reply: Reply) {
        if self.wait_for_durability {
            self.pending.push(Pending { seq, value, reply });
        } else {
            reply(Ok(value));
        }
    }

    /// Starts the calls at `indices` (consecutive in queue order) as one task of the worker
    /// pool: one spawn and one answer for the group, instead of one per call.
    fn start(&mut self, indices: &[usize]) {
        let mut runs = Vec::with_capacity(indices.len());
        for &index in indices {
            let call = &mut self.calls[index];
            call.attempts += 1;
            call.state = State::Running;
            self.core.metrics.procedures_run.fetch_add(1, Ordering::Relaxed);
            if call.attempts > 1 {
                self.core.metrics.procedures_retried.fetch_add(1, Ordering::Relaxed);
            }
            runs.push((call.no, call.attempts, call.procedure, call.args.clone(), call.deadline));
        }
        let db = self.core.db.clone();
        let done = self.done_tx.clone();
        self.core.pool.spawn(move || {
            let finished: Vec<Done> = runs
                .into_iter()
                .map(|(no, attempt, procedure, args, deadline)| {
                    // A call already answered with a timeout is not run: the loop discards
                    // its result, and running it would only hold up the calls behind it.
                    if Instant::now() >= deadline {
                        let result = Err(ProcError::TimedOut { procedure: procedure.name.to_owned() });
                        return Done {
                            no,
                            attempt,
                            result,
                            tx: Box::new(db.begin()),
                            elapsed: Duration::ZERO,
                        };
                    }
                    let (result, tx, elapsed) =
                        crate::procedure::outside_procedure(|| run_call(&db, &procedure, &args, deadline));
                    Done { no, attempt, result, tx, elapsed }
                })
                .collect();
            // The loop may have ended; then nobody needs the answer.
            let _ = done.send(finished);
        });
    }

    fn procedure_phase(&mut self, deadline: Instant) {
        let waiting: Vec<usize> =
            (0..self.calls.len()).filter(|&i| matches!(self.calls[i].state, State::Waiting)).collect();
        // Groups small enough to spread over the workers, large enough to be worth a task.
        let workers = self.core.pool.current_num_threads().max(1);
        let group = waiting.len().div_ceil(workers * 4).clamp(1, MAX_CALLS_PER_TASK);
        for chunk in waiting.chunks(group) {
            self.start(chunk);
        }
        loop {
            while let Ok(batch) = self.done_rx.try_recv() {
                batch.into_iter().for_each(|d| self.receive(d));
            }
            self.expire();
            self.commit_ready(deadline);
            self.core.calls_in_flight.store(self.calls.len(), Ordering::Relaxed);
            let now = Instant::now();
            if self.calls.is_empty() || now >= deadline {
                return;
            }
            let next_timeout = self.calls.iter().map(|c| c.deadline).min().unwrap_or(deadline);
            let wait = deadline.min(next_timeout).saturating_duration_since(now);
            match self.done_rx.recv_timeout(wait.max(Duration::from_micros(50))) {
                Ok(batch) => batch.into_iter().for_each(|d| self.receive(d)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn receive(&mut self, done: Done) {
        let Ok(i) = self.calls.binary_search_by_key(&done.no, |c| c.no) else {
            // The call already timed out and was answered; its transaction is discarded.
            return;
        };
        let call = &mut self.calls[i];
        if call.attempts == done.attempt && matches!(call.state, State::Running) {
            call.state = State::Done(done.result, done.tx);
            call.last_run = done.elapsed;
        }
    }

    /// Answers every call past its deadline with a timeout; their runs, when they finish, are
    /// discarded. Exactly one answer either way: the reply moves out with the call.
    fn expire(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.calls.len() {
            if self.calls[i].deadline <= now {
                let call = self.calls.remove(i).expect("index in range");
                self.core.metrics.procedures_timed_out.fetch_add(1, Ordering::Relaxed);
                self.core.metrics.procedures_aborted.fetch_add(1, Ordering::Relaxed);
                (call.reply)(Err(ProcError::TimedOut { procedure: call.procedure.name.to_owned() }));
            } else {
                i += 1;
            }
        }
    }

    /// Commits finished calls from the front, in queue order. `deadline` ends the phase.
    ///
    /// A call that failed is judged like one that succeeded: if what it read has changed
    /// since (it ran on an older snapshot than the calls before it left), the failure may not
    /// be what running it in queue order gives, so it runs again, like a conflicting call.
    fn commit_ready(&mut self, deadline: Instant) {
        let mut limit = MAX_COMMIT_GROUP;
        // Set after a call was run again here: it may have run past its deadline.
        let mut ran_inline = false;
        loop {
            if std::mem::take(&mut ran_inline) {
                self.expire();
            }
            // Every finished call at the front, in queue order; failed ones are answered
            // (they commit nothing), the others committed as one group.
            let mut group: Vec<(Call, Value)> = Vec::new();
            let mut txs = Vec::new();
            let mut stale = None;
            while txs.len() < limit && matches!(self.calls.front().map(|c| &c.state), Some(State::Done(..))) {
                let mut call = self.calls.pop_front().expect("front exists");
                let State::Done(result, tx) = std::mem::replace(&mut call.state, State::Waiting) else {
                    unreachable!("checked above")
                };
                match result {
                    Ok(value) => {
                        group.push((call, value));
                        txs.push(*tx);
                    }
                    // Failures that depend on what the call read (its own error, a database
                    // error, a panic, a result JSON cannot hold).
                    Err(
                        e @ (ProcError::Failed(_)
                        | ProcError::Db(_)
                        | ProcError::Panicked { .. }
                        | ProcError::BadResult { .. }),
                    ) if call.attempts < self.core.config.procedure_attempts => {
                        if !group.is_empty() {
                            // Judged against the state the calls before it leave: commit
                            // those first.
                            call.state = State::Done(Err(e), tx);
                            self.calls.push_front(call);
                            break;
                        }
                        if tx.reads_are_current() {
                            self.fail(call, e);
                        } else {
                            stale = Some(call);
                            break;
                        }
                    }
                    Err(e) => self.fail(call, e),
                }
            }
            if group.is_empty() {
                if let Some(call) = stale
                    && self.retry(call, deadline)
                {
                    ran_inline = true;
                    continue;
                }
                return;
            }
            let (results, rest) = self.core.db.commit_group(txs);
            let mut group = group.into_iter();
            let mut retry = None;
            for result in results {
                let (call, value) = group.next().expect("one result per transaction");
                match result {
                    Ok(info) => {
                        self.core.metrics.procedures_committed.fetch_add(1, Ordering::Relaxed);
                        if info.read_only {
                            (call.reply)(Ok(value));
                        } else {
                            self.acknowledge(info.seq.0, value, call.reply);
                        }
                    }
                    Err(e) if e.is_conflict() && call.attempts < self.core.config.procedure_attempts => {
                        retry = Some(call);
                    }
                    Err(e) if e.is_conflict() => {
                        self.core.metrics.procedures_aborted.fetch_add(1, Ordering::Relaxed);
                        let procedure = call.procedure.name.to_owned();
                        (call.reply)(Err(ProcError::Conflict { procedure, detail: e.to_string() }));
                    }
                    Err(e) => {
                        self.core.metrics.procedures_aborted.fetch_add(1, Ordering::Relaxed);
                        (call.reply)(Err(ProcError::Db(e)));
                    }
                }
            }
            // Calls after a conflict were not attempted: back to the front, in order, still
            // finished.
            let unattempted: Vec<(Call, Value)> = group.collect();
            for ((mut call, value), tx) in unattempted.into_iter().zip(rest).rev() {
                call.state = State::Done(Ok(value), Box::new(tx));
                self.calls.push_front(call);
            }
            limit = if retry.is_some() {
                (limit / 4).max(MIN_COMMIT_GROUP)
            } else {
                (limit * 2).min(MAX_COMMIT_GROUP)
            };
            if let Some(call) = retry {
                if !self.retry(call, deadline) {
                    return;
                }
                ran_inline = true;
            }
        }
    }

    /// Answers `call` with its error: its transaction is discarded.
    fn fail(&self, call: Call, e: ProcError) {
        if matches!(e, ProcError::Panicked { .. }) {
            self.core.metrics.procedures_panicked.fetch_add(1, Ordering::Relaxed);
        }
        self.core.metrics.procedures_aborted.fetch_add(1, Ordering::Relaxed);
        (call.reply)(Err(e));
    }

    /// Runs `call` again on the latest snapshot, first in line: nothing behind it commits
    /// before it, so it does not conflict again (unless the program also commits to the
    /// database directly). A quick call runs right here when the phase has time for it, and
    /// then this returns true; others go to the worker pool.
    fn retry(&mut self, mut call: Call, deadline: Instant) -> bool {
        if call.last_run <= INLINE_RETRY_MAX && Instant::now() + call.last_run < deadline.min(call.deadline) {
            call.attempts += 1;
            self.core.metrics.procedures_run.fetch_add(1, Ordering::Relaxed);
            self.core.metrics.procedures_retried.fetch_add(1, Ordering::Relaxed);
            let (result, tx, elapsed) = run_call(&self.core.db, &call.procedure, &call.args, call.deadline);
            call.last_run = elapsed;
            call.state = State::Done(result, tx);
            self.calls.push_front(call);
            return true;
        }
        self.calls.push_front(call);
        self.start(&[0]);
        false
    }

    fn persistence_phase(&mut self) {
        let db = &self.core.db;
        if db.durability().is_none() {
            return;
        }
        match db.sync() {
            Ok(durable) => {
                let (ready, waiting): (Vec<Pending>, Vec<Pending>) =
                    std::mem::take(&mut self.pending).into_iter().partition(|p| p.seq <= durable.0);
                self.pending = waiting;
                for p in ready {
                    (p.reply)(Ok(p.value));
                }
            }
            Err(e) => {
                self.core.metrics.flush_failures.fetch_add(1, Ordering::Relaxed);
                self.core.metrics.error(e.to_string());
                tracing::error!(error = %e, "log sync failed; the tick's writes are not acknowledged");
                for p in std::mem::take(&mut self.pending) {
                    (p.reply)(Err(ProcError::Db(e.clone())));
                }
            }
        }
        if let Some(handle) = self.checkpoint.take_if(|h| h.is_finished()) {
            match handle.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.core.metrics.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                    self.core.metrics.error(e.to_string());
                    tracing::error!(error = %e, "background checkpoint failed");
                }
                Err(_) => {
                    self.core.metrics.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("background checkpoint panicked");
                }
            }
        }
        let every = u64::from(self.core.config.flush_interval_ticks);
        if every > 0 && self.ticks.is_multiple_of(every) && self.checkpoint.is_none() {
            self.core.metrics.checkpoints_started.fetch_add(1, Ordering::Relaxed);
            self.checkpoint = Some(db.checkpoint_in_background());
        }
    }

    /// Graceful shutdown: refuse what is queued, finish the calls in flight (each within its
    /// deadline), sync the log a last time, and checkpoint when configured.
    fn shut_down(&mut self) {
        for entry in self.core.queue.close() {
            (entry.reply)(Err(ProcError::ShuttingDown));
        }
        while !self.calls.is_empty() {
            let deadline = self.calls.iter().map(|c| c.deadline).max().unwrap_or_else(Instant::now);
            self.procedure_phase(deadline);
        }
        self.core.calls_in_flight.store(0, Ordering::Relaxed);
        if let Some(h) = self.checkpoint.take() {
            let _ = h.join();
        }
        self.persistence_phase_final();
    }

    fn persistence_phase_final(&mut self) {
        let db = self.core.db.clone();
        if db.durability().is_none() {
            return;
        }
        match db.sync() {
            Ok(_) => {
                for p in std::mem::take(&mut self.pending) {
                    (p.reply)(Ok(p.value));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "final log sync failed");
                for p in std::mem::take(&mut self.pending) {
                    (p.reply)(Err(ProcError::Db(e.clone())));
                }
            }
        }
        if self.core.config.checkpoint_on_shutdown
            && let Err(e) = db.checkpoint()
        {
            tracing::error!(error = %e, "checkpoint at shutdown failed");
        }
    }
}
