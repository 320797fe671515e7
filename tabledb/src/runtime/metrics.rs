//! Runtime counters and the tick duration histogram.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the tick duration histogram buckets, in microseconds (the last bucket is
/// everything above).
pub const TICK_BUCKETS_US: [u64; 12] =
    [100, 250, 500, 1_000, 2_500, 5_000, 8_333, 16_667, 33_333, 66_667, 100_000, 250_000];

#[derive(Default)]
pub(crate) struct Metrics {
    pub ticks: AtomicU64,
    pub overruns: AtomicU64,
    pub skipped_ticks: AtomicU64,
    pub tick_buckets: [AtomicU64; TICK_BUCKETS_US.len() + 1],
    pub tick_sum_us: AtomicU64,
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub ddl: AtomicU64,
    pub procedures_run: AtomicU64,
    pub procedures_committed: AtomicU64,
    pub procedures_aborted: AtomicU64,
    pub procedures_retried: AtomicU64,
    pub procedures_timed_out: AtomicU64,
    pub procedures_panicked: AtomicU64,
    pub requests_panicked: AtomicU64,
    pub flush_failures: AtomicU64,
    pub checkpoints_started: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    pub last_tick_unix_ms: AtomicU64,
    pub last_phases_us: Mutex<[u64; 3]>,
    pub max_phases_us: Mutex<[u64; 3]>,
    pub last_error: Mutex<Option<String>>,
}

impl Metrics {
    pub fn record_tick(&self, took: Duration, phases: [Duration; 3]) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let bucket = TICK_BUCKETS_US.iter().position(|&b| us <= b).unwrap_or(TICK_BUCKETS_US.len());
        self.tick_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.tick_sum_us.fetch_add(us, Ordering::Relaxed);
        self.ticks.fetch_add(1, Ordering::Relaxed);
        let phases = phases.map(|p| p.as_micros().min(u64::MAX as u128) as u64);
        *self.last_phases_us.lock().unwrap_or_else(|e| e.into_inner()) = phases;
        let mut max = self.max_phases_us.lock().unwrap_or_else(|e| e.into_inner());
        for (m, p) in max.iter_mut().zip(phases) {
            *m = (*m).max(p);
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last_tick_unix_ms.store(now.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The runtime's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub tick_hz: u32,
    pub ticks: u64,
    /// Ticks that took longer than their period.
    pub overruns: u64,
    /// Ticks not run because an overrun passed their start (no catch-up burst).
    pub skipped_ticks: u64,
    /// Tick durations: counts per bucket of [`TICK_BUCKETS_US`], then the overflow bucket.
    pub tick_buckets: Vec<u64>,
    pub tick_sum_us: u64,
    pub queue_len: usize,
    pub queue_capacity: usize,
    /// Requests refused because the queue was full.
    pub dropped_requests: u64,
    pub requests: u64,
    pub writes: u64,
    pub ddl: u64,
    pub procedures_run: u64,
    pub procedures_committed: u64,
    /// Calls that ended without committing (errors, conflicts, panics, timeouts).
    pub procedures_aborted: u64,
    pub procedures_retried: u64,
    pub procedures_timed_out: u64,
    pub procedures_panicked: u64,
    /// Writes and schema changes whose closure panicked (answered with
    /// `ProcError::Panicked`; the tick loop goes on).
    pub requests_panicked: u64,
    /// Procedure calls running or waiting to commit.
    pub calls_in_flight: usize,
    pub commit_conflicts: u64,
    pub flush_failures: u64,
    pub checkpoints_started: u64,
    pub checkpoint_failures: u64,
    /// When the last tick ended, in milliseconds since the Unix epoch.
    pub last_tick_unix_ms: u64,
    /// Durations of the last tick's API, procedure and persistence phases, in microseconds.
    pub last_phases_us: [u64; 3],
    /// The longest of each phase so far, in microseconds.
    pub max_phases_us: [u64; 3],
    pub last_error: Option<String>,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            ticks: get(&self.ticks),
            overruns: get(&self.overruns),
            skipped_ticks: get(&self.skipped_ticks),
            tick_buckets: self.tick_buckets.iter().map(get).collect(),
            tick_sum_us: get(&self.tick_sum_us),
            requests: get(&self.requests),
            writes: get(&self.writes),
            ddl: get(&self.ddl),
            procedures_run: get(&self.procedures_run),
            procedures_committed: get(&self.procedures_committed),
            procedures_aborted: get(&self.procedures_aborted),
            procedures_retried: get(&self.procedures_retried),
            procedures_timed_out: get(&self.procedures_timed_out),
            procedures_panicked: get(&self.procedures_panicked),
            requests_panicked: get(&self.requests_panicked),
            flush_failures: get(&self.flush_failures),
            checkpoints_started: get(&self.checkpoints_started),
            checkpoint_failures: get(&self.checkpoint_failures),
            last_tick_unix_ms: get(&self.last_tick_unix_ms),
            last_phases_us: *self.last_phases_us.lock().unwrap_or_else(|e| e.into_inner()),
            max_phases_us: *self.max_phases_us.lock().unwrap_or_else(|e| e.into_inner()),
            last_error: self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            ..MetricsSnapshot::default()
        }
    }
}
