//! `/metrics`: the runtime's, the database's and the server's counters in the Prometheus text
//! format, read at each scrape.

use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tabledb::runtime::TICK_BUCKETS_US;

use crate::state::AppState;

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct Scrape {
    state: AppState,
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let s = &self.state;
        let m = s.rt.metrics();
        let db = s.db.stats();
        let e = &mut enc;
        gauge(e, "tabledb_tick_rate_hz", "Configured ticks per second", i64::from(m.tick_hz))?;
        counter(e, "tabledb_ticks", "Ticks run", m.ticks)?;
        counter(e, "tabledb_tick_overruns", "Ticks that took longer than their period", m.overruns)?;
        counter(e, "tabledb_ticks_skipped", "Ticks skipped after an overrun", m.skipped_ticks)?;
        {
            let mut cumulative = 0u64;
            let buckets: Vec<(f64, u64)> = TICK_BUCKETS_US
                .iter()
                .map(|&b| b as f64 / 1e6)
                .chain(std::iter::once(f64::INFINITY))
                .zip(m.tick_buckets.iter())
                .map(|(bound, &count)| {
                    cumulative += count;
                    (bound, count)
                })
                .collect();
            let mut h = e.encode_descriptor(
                "tabledb_tick_duration_seconds",
                "Duration of ticks",
                None,
                MetricType::Histogram,
            )?;
            h.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                m.tick_sum_us as f64 / 1e6,
                cumulative,
                &buckets,
                None,
            )?;
        }
        gauge(e, "tabledb_queue_length", "Requests waiting for the tick loop", m.queue_len as i64)?;
        gauge(e, "tabledb_queue_capacity", "Capacity of the request queue", m.queue_capacity as i64)?;
        counter(
            e,
            "tabledb_requests_dropped",
            "Requests refused because the queue was full",
            m.dropped_requests,
        )?;
        counter(e, "tabledb_writes", "Write requests served", m.writes)?;
        counter(e, "tabledb_ddl", "Schema changes served", m.ddl)?;
        counter(e, "tabledb_procedures_run", "Procedure runs started (including retries)", m.procedures_run)?;
        counter(e, "tabledb_procedures_committed", "Procedure calls committed", m.procedures_committed)?;
        counter(
            e,
            "tabledb_procedures_aborted",
            "Procedure calls that ended without committing",
            m.procedures_aborted,
        )?;
        counter(
            e,
            "tabledb_procedures_retried",
            "Procedure runs repeated after a conflict",
            m.procedures_retried,
        )?;
        counter(e, "tabledb_procedures_timed_out", "Procedure calls that timed out", m.procedures_timed_out)?;
        counter(e, "tabledb_procedures_panicked", "Procedure calls that panicked", m.procedures_panicked)?;
        counter(
            e,
            "tabledb_requests_panicked",
            "Writes and schema changes whose code panicked",
            m.requests_panicked,
        )?;
        gauge(
            e,
            "tabledb_procedure_calls_in_flight",
            "Procedure calls running or waiting to commit",
            m.calls_in_flight as i64,
        )?;
        counter(e, "tabledb_commits", "Transactions committed", db.commits)?;
        counter(e, "tabledb_commit_conflicts", "Commits refused because of a conflict", db.conflicts)?;
        counter(e, "tabledb_table_growth_events", "Commits that grew a table by a page", db.growth_events)?;
        counter(
            e,
            "tabledb_flush_failures",
            "Log syncs that failed in the persistence phase",
            m.flush_failures,
        )?;
        counter(e, "tabledb_checkpoints_started", "Background checkpoints started", m.checkpoints_started)?;
        counter(
            e,
            "tabledb_checkpoint_failures",
            "Background checkpoints that failed",
            m.checkpoint_failures,
        )?;
        if let Some(p) = s.db.persistence_status() {
            gauge(e, "tabledb_durable_seq", "Newest commit known durable", p.durable_seq as i64)?;
            gauge(e, "tabledb_log_segments", "Log segment files", p.log_segments as i64)?;
            gauge(
                e,
                "tabledb_writes_stopped",
                "1 when writes are stopped after a failed fsync",
                i64::from(p.writes_stopped.is_some()),
            )?;
        }
        let snap = s.db.snapshot();
        gauge(e, "tabledb_tables", "Tables", snap.table_names().count() as i64)?;
        gauge(
            e,
            "tabledb_memory_bytes",
            "Bytes held by record pages and tree nodes",
            snap.memory_bytes() as i64,
        )?;
        for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let name = format!("tabledb_http_responses_{class}");
            counter(e, &name, "HTTP responses by status class", s.http.responses[i].load(Ordering::Relaxed))?;
        }
        counter(
            e,
            "tabledb_http_rate_limited",
            "Requests refused by the rate limit",
            s.http.rate_limited.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "tabledb_http_unauthorized",
            "Requests refused for a missing or unknown key",
            s.http.unauthorized.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

/// The metrics as Prometheus text.
pub fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { state: state.clone() }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}
