//! The bounded request queue between callers and the tick loop: schema changes before
//! writes, an immediate "overloaded" answer when full, exactly one reply per request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;

use crate::Database;
use crate::error::Error;
use crate::procedure::ProcError;
use crate::txn::Transaction;

/// A schema change to run on the tick thread.
pub type DdlFn = Box<dyn FnOnce(&Database) -> Result<Value, Error> + Send>;

/// Writes to run in one transaction on the tick thread.
pub type WriteFn = Box<dyn FnOnce(&mut Transaction) -> Result<Value, Error> + Send>;

/// What a request asks the runtime to do.
pub enum Job {
    /// A schema change; taken before any write of the same tick.
    Ddl(DdlFn),
    /// Writes in one transaction, committed in the API phase and acknowledged per the
    /// durability mode.
    Write(WriteFn),
    /// A call of a registered procedure with a JSON object of parameters.
    Call { name: String, args: Value },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Ddl(_) => f.write_str("Ddl"),
            Job::Write(_) => f.write_str("Write"),
            Job::Call { name, .. } => write!(f, "Call({name})"),
        }
    }
}

/// The answer to a request; called exactly once (the type guarantees it: a `FnOnce` that is
/// moved, never cloned).
pub type Reply = Box<dyn FnOnce(Result<Value, ProcError>) + Send>;

pub(crate) struct Entry {
    pub job: Job,
    pub reply: Reply,
    pub queued_at: Instant,
}

#[derive(Default)]
struct Lanes {
    ddl: VecDeque<Entry>,
    dml: VecDeque<Entry>,
}

/// The bounded queue.
pub(crate) struct Queue {
    lanes: Mutex<Lanes>,
    capacity: usize,
    len: AtomicUsize,
    dropped: AtomicU64,
    closed: AtomicBool,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            lanes: Mutex::new(Lanes::default()),
            capacity,
            len: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        // Each update is one push or pop: consistent even if a holder panicked.
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request, or gives it back with the reason it was refused (the queue is full,
    /// or closed). Never blocks beyond the queue's short lock.
    ///
    /// `closed` is read under the lanes lock, which `close` holds while it sets the flag and
    /// drains: an entry is either queued before `close` (and then returned by it, to be
    /// answered) or refused, never left behind in a closed queue.
    pub fn push(&self, job: Job, reply: Reply) -> Result<(), (ProcError, Reply)> {
        let mut lanes = self.lanes();
        if self.closed.load(Ordering::Acquire) {
            drop(lanes);
            return Err((ProcError::ShuttingDown, reply));
        }
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            drop(lanes);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err((ProcError::Overloaded, reply));
        }
        let entry = Entry { job, reply, queued_at: Instant::now() };
        if matches!(entry.job, Job::Ddl(_)) {
            lanes.ddl.push_back(entry);
        } else {
            lanes.dml.push_back(entry);
        }
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The next request: a schema change if one is queued (whenever it was queued), else the
    /// next write or call when `dml` allows one.
    pub fn pop(&self, dml: bool) -> Option<Entry> {
        let mut lanes = self.lanes();
        let e = match lanes.ddl.pop_front() {
            Some(e) => e,
            None if dml => lanes.dml.pop_front()?,
            None => return None,
        };
        self.len.fetch_sub(1, Ordering::Relaxed);
        Some(e)
    }

    /// Refuses new requests from now on and returns everything still queued.
    pub fn close(&self) -> Vec<Entry> {
        let mut lanes = self.lanes();
        // Set under the lock (see `push`): after this, no entry can be added.
        self.closed.store(true, Ordering::Release);
        let mut out: Vec<Entry> = lanes.ddl.drain(..).collect();
        out.extend(lanes.dml.drain(..));
        self.len.fetch_sub(out.len(), Ordering::Relaxed);
        out
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
