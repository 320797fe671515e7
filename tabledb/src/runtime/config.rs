//! Runtime configuration, validated before the runtime starts.

use std::time::Duration;

/// The tick rates the runtime accepts.
pub const TICK_HZ_RANGE: std::ops::RangeInclusive<u32> = 15..=120;

/// The longest `procedure_timeout` accepted (one hour, the bound of `#[procedure(timeout_ms)]`
/// too): a call holds its transaction open for its whole run, and a longer value is more
/// likely a unit mistake than a plan.
pub const MAX_PROCEDURE_TIMEOUT: Duration = crate::procedure::MAX_PROCEDURE_TIMEOUT;

/// How the runtime schedules work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Ticks per second, 15 to 120.
    pub tick_hz: u32,
    /// Share of a tick for the API phase (requests, DDL), in percent.
    pub api_budget_pct: u32,
    /// Share of a tick for the procedure phase, in percent.
    pub procedure_budget_pct: u32,
    /// Share of a tick for the persistence phase (log sync, acknowledgements), in percent.
    pub persistence_budget_pct: u32,
    /// Requests waiting at most; `None` means `tick_hz * 100`.
    pub queue_capacity: Option<usize>,
    /// Writes and calls taken from the queue per tick at most (DDL is always taken first).
    pub max_api_requests_per_tick: usize,
    /// A checkpoint starts in the background every this many ticks (0: never).
    pub flush_interval_ticks: u32,
    /// Attempts of a procedure call that conflicts, in all, before it fails with a conflict.
    pub procedure_attempts: u32,
    /// How long a procedure call may take unless the procedure sets its own timeout; at most
    /// [`MAX_PROCEDURE_TIMEOUT`].
    pub procedure_timeout: Duration,
    /// Procedure calls running or waiting to commit at most (beyond that, calls wait in the
    /// queue).
    pub max_calls_in_flight: usize,
    /// Worker threads for procedures and parallel iteration; `None`: one per core.
    pub worker_threads: Option<usize>,
    /// Write a checkpoint when shutting down.
    pub checkpoint_on_shutdown: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            tick_hz: 60,
            api_budget_pct: 30,
            procedure_budget_pct: 50,
            persistence_budget_pct: 20,
            queue_capacity: None,
            max_api_requests_per_tick: 10_000,
            flush_interval_ticks: 10,
            procedure_attempts: 8,
            procedure_timeout: Duration::from_secs(5),
            max_calls_in_flight: 10_000,
            worker_threads: None,
            checkpoint_on_shutdown: true,
        }
    }
}

/// Why a runtime configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("tick rate {0} Hz is outside {min}..={max} Hz", min = TICK_HZ_RANGE.start(), max = TICK_HZ_RANGE.end())]
    TickRate(u32),
    #[error("phase budgets must add up to 100%, got {api}% + {procedures}% + {persistence}%")]
    Budgets { api: u32, procedures: u32, persistence: u32 },
    #[error("{what} must be at least 1")]
    Zero { what: &'static str },
    #[error("queue capacity {hz} Hz x 100 overflows")]
    QueueOverflow { hz: u32 },
    #[error("{what} {value:?} is above the maximum of {max:?}")]
    TooLarge { what: &'static str, value: Duration, max: Duration },
}

impl RuntimeConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !TICK_HZ_RANGE.contains(&self.tick_hz) {
            return Err(ConfigError::TickRate(self.tick_hz));
        }
        let total = self
            .api_budget_pct
            .checked_add(self.procedure_budget_pct)
            .and_then(|t| t.checked_add(self.persistence_budget_pct));
        if total != Some(100) {
            return Err(ConfigError::Budgets {
                api: self.api_budget_pct,
                procedures: self.procedure_budget_pct,
                persistence: self.persistence_budget_pct,
            });
        }
        for (what, v) in [
            // A phase with no time never runs: requests or calls would wait forever.
            ("api_budget_pct", self.api_budget_pct as usize),
            ("procedure_budget_pct", self.procedure_budget_pct as usize),
            ("max_api_requests_per_tick", self.max_api_requests_per_tick),
            ("procedure_attempts", self.procedure_attempts as usize),
            ("max_calls_in_flight", self.max_calls_in_flight),
            ("queue_capacity", self.queue_capacity()?),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero { what });
            }
        }
        if self.worker_threads == Some(0) {
            return Err(ConfigError::Zero { what: "worker_threads" });
        }
        if self.procedure_timeout.is_zero() {
            return Err(ConfigError::Zero { what: "procedure_timeout" });
        }
        if self.procedure_timeout > MAX_PROCEDURE_TIMEOUT {
            return Err(ConfigError::TooLarge {
                what: "procedure_timeout",
                value: self.procedure_timeout,
                max: MAX_PROCEDURE_TIMEOUT,
            });
        }
        Ok(())
    }

    /// The queue capacity: as configured, or `tick_hz * 100` (checked).
    pub fn queue_capacity(&self) -> Result<usize, ConfigError> {
        match self.queue_capacity {
            Some(c) => Ok(c),
            None => (self.tick_hz as usize)
                .checked_mul(100)
                .ok_or(ConfigError::QueueOverflow { hz: self.tick_hz }),
        }
    }

    /// The length of one tick.
    pub fn tick_period(&self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.tick_hz.max(1)))
    }
}
