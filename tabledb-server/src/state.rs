//! What every handler shares.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use governor::{DefaultKeyedRateLimiter, Quota};
use serde_json::Value;
use tabledb::procedure::ProcError;
use tabledb::runtime::{Job, RuntimeHandle};
use tabledb::{Database, Snapshot};
use tokio::sync::oneshot;

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};

/// Who a request comes from, for rate limiting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// The index of the API key it presented.
    Key(usize),
    /// Its address: see [`ClientId::addr`].
    Addr(std::net::IpAddr),
}

impl ClientId {
    /// The client at `ip`. An IPv6 client is its /64 network, which one host usually holds
    /// whole: counted address by address, it could dodge its limit by changing addresses.
    pub fn addr(ip: std::net::IpAddr) -> ClientId {
        match ip {
            std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ClientId::Addr(std::net::IpAddr::V6(network.into()))
            }
            std::net::IpAddr::V6(v6) => {
                ClientId::Addr(std::net::IpAddr::V4(v6.to_ipv4_mapped().expect("checked")))
            }
            v4 => ClientId::Addr(v4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ClientId;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_bit_network() {
        let id = |s: &str| ClientId::addr(s.parse().unwrap());
        assert_eq!(id("2001:db8:1:2:aaaa::1"), id("2001:db8:1:2:bbbb::2"));
        assert_ne!(id("2001:db8:1:2::1"), id("2001:db8:1:3::1"));
        assert_eq!(
            id("::ffff:192.0.2.7"),
            id("192.0.2.7"),
            "an IPv4 client is one client however it arrives"
        );
        assert_ne!(id("192.0.2.7"), id("192.0.2.8"));
    }
}

/// Counters of HTTP traffic.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Responses by status class: 1xx .. 5xx.
    pub responses: [AtomicU64; 5],
    pub rate_limited: AtomicU64,
    pub unauthorized: AtomicU64,
}

impl HttpMetrics {
    pub fn count(&self, status: u16) {
        if let Some(c) = self.responses.get(usize::from(status / 100).wrapping_sub(1)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The most distinct clients the rate limiter tracks before it forgets idle ones.
pub const RATE_LIMIT_CLIENTS_MAX: usize = 100_000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub rt: RuntimeHandle,
    pub db: Database,
    pub cfg: Arc<ServerConfig>,
    pub limiter: Option<Arc<DefaultKeyedRateLimiter<ClientId>>>,
    pub http: Arc<HttpMetrics>,
    pub started: Instant,
    pub request_ids: Arc<AtomicU64>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(rt: RuntimeHandle, cfg: ServerConfig) -> AppState {
        let limiter = NonZeroU32::new(cfg.rate_limit)
            .map(|n| Arc::new(governor::RateLimiter::keyed(Quota::per_second(n))));
        AppState {
            db: rt.database().clone(),
            rt,
            cfg: Arc::new(cfg),
            limiter,
            http: Arc::new(HttpMetrics::default()),
            started: Instant::now(),
            request_ids: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The latest snapshot: reads never wait for a tick.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.db.snapshot()
    }

    /// Sends a job to the tick loop and waits for its answer.
    pub async fn run(&self, job: Job) -> ApiResult<Value> {
        self.run_raw(job).await?.map_err(ApiError::from)
    }

    /// [`run`](Self::run), with the job's own error (for a handler that words it itself);
    /// the outer error is a refusal to queue the job.
    pub async fn run_raw(&self, job: Job) -> ApiResult<Result<Value, ProcError>> {
        let (tx, rx) = oneshot::channel();
        self.rt.submit(
            job,
            Box::new(move |r| {
                // The client may have gone away; then nobody needs the answer.
                let _ = tx.send(r);
            }),
        )?;
        match rx.await {
            Ok(r) => Ok(r),
            Err(_) => Err(ProcError::ShuttingDown.into()),
        }
    }
}
