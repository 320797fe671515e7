//! The tick loop against program mistakes and races: a panicking write or schema-change
//! closure ends only its own request, every accepted request is answered exactly once even
//! while shutdown starts, replies that panic and panics whose payload panics again when dropped
//! end only their own request, and timeouts too long to be a deadline are refused up front.
//!
//! Every wait is bounded: replies are awaited with `recv_timeout`, loops with a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tabledb::procedure::{ProcCtx, ProcError, Procedure, ProcedureRegistry};
use tabledb::runtime::{ConfigError, Job, MAX_PROCEDURE_TIMEOUT, Reply, Runtime, RuntimeConfig, StartError};
use tabledb::{Database, Table};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Item {
    n: i64,
}

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

/// A reply that sends the outcome on a channel, and the receiving end.
fn reply() -> (Reply, mpsc::Receiver<Result<Value, ProcError>>) {
    let (tx, rx) = mpsc::channel();
    (
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
        rx,
    )
}

#[test]
fn a_panicking_write_closure_ends_only_its_request() {
    let db = Database::new();
    let items = db.create_table::<Item>().unwrap();
    let rt = Runtime::start(db.clone(), registry(), config()).unwrap();
    let h = rt.handle();

    // Requests queued behind the panicking one, in the same tick: all are answered.
    let (boom, boom_rx) = reply();
    h.submit(
        Job::Write(Box::new(move |tx| {
            tx.insert(items, &Item { n: 1 })?;
            panic!("a bug in a write closure");
        })),
        boom,
    )
    .unwrap();
    let behind: Vec<_> = (0..5i64)
        .map(|i| {
            let (r, rx) = reply();
            h.submit(
                Job::Write(Box::new(move |tx| {
                    tx.insert(items, &Item { n: 10 + i })?;
                    Ok(json!(i))
                })),
                r,
            )
            .unwrap();
            rx
        })
        .collect();
    let (call, call_rx) = reply();
    h.submit(Job::Call { name: "one".into(), args: json!({}) }, call).unwrap();

    assert_eq!(
        boom_rx.recv_timeout(WAIT).expect("the panicking write is answered"),
        Err(ProcError::Panicked { procedure: "write".into() })
    );
    for (i, rx) in behind.iter().enumerate() {
        assert_eq!(rx.recv_timeout(WAIT).expect("a write queued behind it is answered"), Ok(json!(i)));
    }
    assert_eq!(call_rx.recv_timeout(WAIT).expect("a call queued behind it is answered"), Ok(json!(1)));

    // Only the panicking write's transaction was discarded.
    let snap = db.snapshot();
    let mut ns: Vec<i64> = snap.table(items).unwrap().iter().map(|(_, item)| item.n).collect();
    ns.sort();
    assert_eq!(ns, [10, 11, 12, 13, 14]);

    // Counted, and the loop goes on ticking and serving.
    let m = h.metrics();
    assert_eq!(m.requests_panicked, 1);
    assert_eq!(m.procedures_panicked, 0);
    let ticks = m.ticks;
    assert_eq!(h.write(|_tx| Ok(json!(7)), WAIT), Ok(json!(7)));
    let deadline = Instant::now() + WAIT;
    while h.metrics().ticks < ticks + 3 {
        assert!(Instant::now() < deadline, "the tick loop stopped ticking");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!h.is_stopping());
    rt.shutdown();
}

#[test]
fn a_panicking_schema_change_closure_ends_only_its_request() {
    let db = Database::new();
    let rt = Runtime::start(db.clone(), registry(), config()).unwrap();
    let h = rt.handle();

    let (boom, boom_rx) = reply();
    h.submit(Job::Ddl(Box::new(|_db| panic!("a bug in a schema change"))), boom).unwrap();
    let (next, next_rx) = reply();
    h.submit(
        Job::Ddl(Box::new(|db| {
            db.create_table::<Item>()?;
            Ok(json!("created"))
        })),
        next,
    )
    .unwrap();
    let (write, write_rx) = reply();
    h.submit(Job::Write(Box::new(|_tx| Ok(json!("written")))), write).unwrap();

    assert_eq!(
        boom_rx.recv_timeout(WAIT).expect("the panicking schema change is answered"),
        Err(ProcError::Panicked { procedure: "schema change".into() })
    );
    assert_eq!(next_rx.recv_timeout(WAIT).expect("the next schema change is answered"), Ok(json!("created")));
    assert_eq!(write_rx.recv_timeout(WAIT).expect("the write is answered"), Ok(json!("written")));
    assert!(db.snapshot().table_id("item").is_some());
    assert_eq!(h.metrics().requests_panicked, 1);
    assert_eq!(h.call("one", json!({}), WAIT), Ok(json!(1)));
    rt.shutdown();
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

#[test]
fn a_procedure_timeout_beyond_the_maximum_is_refused_by_validate() {
    for timeout in
        [Duration::MAX, MAX_PROCEDURE_TIMEOUT + Duration::from_nanos(1), Duration::from_secs(u64::MAX)]
    {
        let cfg = RuntimeConfig { procedure_timeout: timeout, ..config() };
        let expected =
            ConfigError::TooLarge { what: "procedure_timeout", value: timeout, max: MAX_PROCEDURE_TIMEOUT };
        assert_eq!(cfg.validate(), Err(expected.clone()));
        assert!(expected.to_string().contains("procedure_timeout"), "{expected}");
        match Runtime::start(Database::new(), registry(), cfg) {
            Err(StartError::Config(e)) => assert_eq!(e, expected),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
    assert_eq!(MAX_PROCEDURE_TIMEOUT, Duration::from_secs(3600));

    // The maximum itself is accepted, and calls under it are served.
    let cfg = RuntimeConfig { procedure_timeout: MAX_PROCEDURE_TIMEOUT, ..config() };
    assert_eq!(cfg.validate(), Ok(()));
    let rt = Runtime::start(Database::new(), registry(), cfg).unwrap();
    let h = rt.handle();
    assert_eq!(h.call("one", json!({}), WAIT), Ok(json!(1)));
    assert_eq!(h.write(|_tx| Ok(json!(2)), WAIT), Ok(json!(2)));
    rt.shutdown();
}

/// A panic payload whose own `Drop` panics too.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("the panic payload's drop panics");
    }
}

fn bomb(_ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    std::panic::panic_any(Bomb)
}

#[test]
fn replies_that_panic_and_payloads_whose_drop_panics_end_only_their_request() {
    let db = Database::new();
    let items = db.create_table::<Item>().unwrap();
    let registry = registry()
        .with(Procedure { name: "bomb", params: &[], doc: "", timeout: None, invoke: bomb })
        .unwrap();
    let rt = Runtime::start(db.clone(), registry, config()).unwrap();
    let h = rt.handle();
    // Replies are program code on the tick thread; these two panic.
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    h.submit(
        Job::Write(Box::new(move |_tx| {
            // Hold the tick until the requests behind this one are queued.
            gate_rx.recv_timeout(WAIT).expect("the test opens the gate");
            Ok(Value::Null)
        })),
        Box::new(|_| panic!("a reply that panics")),
    )
    .unwrap();
    h.submit(Job::Write(Box::new(|_tx| Ok(Value::Null))), Box::new(|_| panic!("another reply that panics")))
        .unwrap();
    let queued: Vec<_> = (0..5)
        .map(|n| {
            let (r, rx) = reply();
            h.submit(
                Job::Write(Box::new(move |tx| {
                    tx.insert(items, &Item { n })?;
                    Ok(json!(n))
                })),
                r,
            )
            .unwrap();
            rx
        })
        .collect();
    gate_tx.send(()).unwrap();
    for (n, rx) in queued.into_iter().enumerate() {
        assert_eq!(rx.recv_timeout(WAIT).expect("answered"), Ok(json!(n)));
    }
    // Panics whose payload panics again when dropped: in a write, a schema change and a
    // procedure (which runs on the worker pool).
    let write = h.write(|_tx| std::panic::panic_any(Bomb), WAIT);
    assert!(matches!(write, Err(ProcError::Panicked { .. })), "{write:?}");
    let ddl = h.ddl(|_db| std::panic::panic_any(Bomb), WAIT);
    assert!(matches!(ddl, Err(ProcError::Panicked { .. })), "{ddl:?}");
    let call = h.call("bomb", json!({}), WAIT);
    assert!(matches!(call, Err(ProcError::Panicked { .. })), "{call:?}");
    assert!(!h.is_stopping());
    assert_eq!(h.call("one", json!({}), WAIT), Ok(json!(1)));
    assert_eq!(db.snapshot().len(items).unwrap(), 5);
    rt.shutdown();
}
