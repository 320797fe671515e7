//! The tick loop around shutdown: every accepted request is answered exactly once, also
//! while shutdown starts.
//!
//! Every wait is bounded: loops with a deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tabledb::Database;
use tabledb::procedure::{ProcCtx, ProcError, Procedure, ProcedureRegistry};
use tabledb::runtime::{Job, Reply, Runtime, RuntimeConfig};

const WAIT: Duration = Duration::from_secs(10);

fn config() -> RuntimeConfig {
    RuntimeConfig { worker_threads: Some(2), ..RuntimeConfig::default() }
}

fn one(_ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    Ok(json!(1))
}

fn registry() -> ProcedureRegistry {
    ProcedureRegistry::new()
        .with(Procedure { name: "one", params: &[], doc: "", timeout: None, invoke: one })
        .unwrap()
}

/// `submit` returning Ok promises exactly one reply. Submitters race `shutdown()`; each
/// request records its replies; after the tick thread has ended, every accepted request has
/// had exactly one.
#[test]
fn every_request_accepted_while_shutdown_starts_is_answered_once() {
    const SUBMITTERS: usize = 4;
    let started = Instant::now();
    let time_bound = Duration::from_secs(20);
    let mut rounds = 0;
    while rounds < 150 && started.elapsed() < time_bound {
        rounds += 1;
        let rt = Runtime::start(
            Database::new(),
            registry(),
            RuntimeConfig { queue_capacity: Some(1_000_000), checkpoint_on_shutdown: false, ..config() },
        )
        .unwrap();
        let h = rt.handle();
        let go = Arc::new(AtomicBool::new(true));
        let submitters: Vec<_> = (0..SUBMITTERS)
            .map(|s| {
                let (h, go) = (h.clone(), go.clone());
                std::thread::spawn(move || {
                    // One reply counter per accepted request.
                    let mut accepted: Vec<Arc<AtomicU64>> = Vec::new();
                    let deadline = Instant::now() + WAIT;
                    while go.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let replies = Arc::new(AtomicU64::new(0));
                        let counter = replies.clone();
                        let reply: Reply = Box::new(move |_r| {
                            counter.fetch_add(1, Ordering::SeqCst);
                        });
                        let job = if s % 2 == 0 {
                            Job::Write(Box::new(|_tx| Ok(Value::Null)))
                        } else {
                            Job::Call { name: "one".into(), args: json!({}) }
                        };
                        match h.submit(job, reply) {
                            Ok(()) => accepted.push(replies),
                            Err(ProcError::ShuttingDown) => break,
                            Err(e) => panic!("unexpected refusal: {e}"),
                        }
                    }
                    accepted
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(2));
        rt.shutdown(); // returns once the tick thread has ended: no reply comes after this
        go.store(false, Ordering::Relaxed);
        for s in submitters {
            let accepted = s.join().expect("submitter");
            let unanswered = accepted.iter().filter(|r| r.load(Ordering::SeqCst) == 0).count();
            let twice = accepted.iter().filter(|r| r.load(Ordering::SeqCst) > 1).count();
            assert_eq!(
                (unanswered, twice),
                (0, 0),
                "round {rounds}: of {} accepted requests, {unanswered} were never answered and {twice} more than once",
                accepted.len()
            );
        }
    }
}
