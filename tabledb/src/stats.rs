//! Counters of what a database has done.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    commits: AtomicU64,
    conflicts: AtomicU64,
    aborts: AtomicU64,
    growth_events: AtomicU64,
    ddl: AtomicU64,
}

macro_rules! counter {
    ($($name:ident => $field:ident),*) => {
        impl Stats {
            $(pub(crate) fn $name(&self) { self.$field.fetch_add(1, Ordering::Relaxed); })*
        }
    };
}

counter!(count_commit => commits, count_conflict => conflicts, count_abort => aborts, count_growth => growth_events, count_ddl => ddl);

impl Stats {
    pub(crate) fn read(&self) -> StatsSnapshot {
        StatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            aborts: self.aborts.load(Ordering::Relaxed),
            growth_events: self.growth_events.load(Ordering::Relaxed),
            ddl: self.ddl.load(Ordering::Relaxed),
        }
    }
}

/// The counters of a database at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Transactions that published a snapshot.
    pub commits: u64,
    /// Commits refused because of a conflict.
    pub conflicts: u64,
    /// Transactions that wrote something and ended without publishing (dropped, aborted, or
    /// refused at commit).
    pub aborts: u64,
    /// Commits that grew a table by at least one page.
    pub growth_events: u64,
    /// Schema changes.
    pub ddl: u64,
}
