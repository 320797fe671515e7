//! The runtime answers as if calls ran one by one in queue order (read-only and panicking
//! calls included), keeps each call's timeout wherever it runs, does not mistake calls run
//! while another procedure waits in Rayon for nested ones, does not keep running calls it has
//! answered, and refuses phase budgets of zero. Every wait is bounded.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tabledb::procedure::{__private, ProcCtx, ProcError, Procedure, ProcedureRegistry};
use tabledb::runtime::{Job, Reply, Runtime, RuntimeConfig, RuntimeHandle, StartError};
use tabledb::{Database, RecordId, Table};

const WAIT: Duration = Duration::from_secs(10);

/// The tests measure time; they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Account {
    balance: i64,
}

fn proc(name: &'static str, timeout: Option<Duration>, invoke: tabledb::procedure::Invoke) -> Procedure {
    Procedure { name, params: &[], doc: "", timeout, invoke }
}

fn reply() -> (Reply, mpsc::Receiver<Result<Value, ProcError>>) {
    let (tx, rx) = mpsc::channel();
    (
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
        rx,
    )
}

/// Holds the tick thread in a schema change until the returned sender is used, so that the
/// requests submitted meanwhile are all served in the same tick.
fn hold(h: &RuntimeHandle) -> mpsc::Sender<()> {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    h.submit(
        Job::Ddl(Box::new(move |_| {
            held_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(WAIT);
            Ok(Value::Null)
        })),
        Box::new(|_| {}),
    )
    .unwrap();
    held_rx.recv_timeout(WAIT).expect("the tick thread runs the schema change");
    release_tx
}

fn bank(balances: &[i64]) -> (Database, Vec<RecordId>) {
    let db = Database::new();
    let t = db.create_table::<Account>().unwrap();
    let mut tx = db.begin();
    let ids = balances.iter().map(|&b| tx.insert(t, &Account { balance: b }).unwrap()).collect();
    tx.commit().unwrap();
    (db, ids)
}

/// transfer(from, to, amount), slowed down by `ms` so that calls queued with it run on the
/// same snapshot.
fn transfer(ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let from: u64 = __private::param(&mut args, "from", true)?;
    let to: u64 = __private::param(&mut args, "to", true)?;
    let amount: i64 = __private::param(&mut args, "amount", true)?;
    let ms: u64 = __private::param(&mut args, "ms", true)?;
    std::thread::sleep(Duration::from_millis(ms));
    let t = ctx.table::<Account>()?;
    let a = *ctx.get(t, RecordId(from))?.unwrap();
    let b = *ctx.get(t, RecordId(to))?.unwrap();
    ctx.update(t, RecordId(from), &Account { balance: a.balance - amount })?;
    ctx.update(t, RecordId(to), &Account { balance: b.balance + amount })?;
    Ok(json!(a.balance - amount))
}

/// balance(id): read-only.
fn balance(ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let id: u64 = __private::param(&mut args, "id", true)?;
    let t = ctx.table::<Account>()?;
    Ok(json!(ctx.get(t, RecordId(id))?.unwrap().balance))
}

/// withdraw_or_panic(id, amount): a program that asserts the funds are there.
fn withdraw_or_panic(ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let id: u64 = __private::param(&mut args, "id", true)?;
    let amount: i64 = __private::param(&mut args, "amount", true)?;
    let t = ctx.table::<Account>()?;
    let a = *ctx.get(t, RecordId(id))?.unwrap();
    assert!(a.balance >= amount, "insufficient funds");
    ctx.update(t, RecordId(id), &Account { balance: a.balance - amount })?;
    Ok(json!(a.balance - amount))
}

fn bank_registry() -> ProcedureRegistry {
    ProcedureRegistry::new()
        .with(proc("transfer", None, transfer))
        .unwrap()
        .with(proc("balance", None, balance))
        .unwrap()
        .with(proc("withdraw_or_panic", None, withdraw_or_panic))
        .unwrap()
}

/// Queues a transfer of 1000 from account 1 to account 2 (each starting with 1000), then the
/// call `second` with `args`, in one tick, and returns both answers.
fn after_a_transfer(
    second: &str,
    args: impl FnOnce(&[RecordId]) -> Value,
) -> (Result<Value, ProcError>, Result<Value, ProcError>) {
    let (db, ids) = bank(&[1_000, 1_000]);
    let rt =
        Runtime::start(db, bank_registry(), RuntimeConfig { worker_threads: Some(2), ..Default::default() })
            .unwrap();
    let h = rt.handle();
    let release = hold(&h);
    let (r1, rx1) = reply();
    let transfer = json!({"from": ids[0].0, "to": ids[1].0, "amount": 1_000, "ms": 30});
    h.submit(Job::Call { name: "transfer".into(), args: transfer }, r1).unwrap();
    let (r2, rx2) = reply();
    h.submit(Job::Call { name: second.into(), args: args(&ids) }, r2).unwrap();
    release.send(()).unwrap();
    let answers = (rx1.recv_timeout(WAIT).expect("answered"), rx2.recv_timeout(WAIT).expect("answered"));
    rt.shutdown();
    answers
}

/// Calls are committed in queue order, and a call whose reads an earlier call changed runs
/// again, so the outcome is the one running them one by one gives: a read-only call too.
#[test]
fn a_read_only_call_queued_after_a_transfer_sees_the_transfer() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (transfer, balance) = after_a_transfer("balance", |ids| json!({"id": ids[1].0}));
    assert_eq!(transfer, Ok(json!(0)));
    assert_eq!(balance, Ok(json!(2_000)), "the balance call was queued after the transfer, so it sees it");
}

/// Same rule, for a call that panicked only because it read data an earlier call changed.
#[test]
fn a_call_that_panicked_on_data_changed_by_an_earlier_call_runs_again() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (transfer, withdrawal) =
        after_a_transfer("withdraw_or_panic", |ids| json!({"id": ids[1].0, "amount": 1_500}));
    assert_eq!(transfer, Ok(json!(0)));
    assert_eq!(
        withdrawal,
        Ok(json!(500)),
        "run one by one in queue order, the second call finds 2000 and does not panic"
    );
}

static BUMP_B_RUNS: AtomicU32 = AtomicU32::new(0);

/// bump(tag): adds one to account 1. Call "a" takes 20 ms; call "b" is quick the first time
/// and takes 300 ms on every later run (its timeout is 150 ms).
fn bump(ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let tag: String = __private::param(&mut args, "tag", true)?;
    if tag == "a" {
        std::thread::sleep(Duration::from_millis(20));
    } else if BUMP_B_RUNS.fetch_add(1, Ordering::SeqCst) >= 1 {
        std::thread::sleep(Duration::from_millis(300));
    }
    let t = ctx.table::<Account>()?;
    let a = *ctx.get(t, RecordId(1))?.unwrap();
    ctx.update(t, RecordId(1), &Account { balance: a.balance + 1 })?;
    Ok(json!(a.balance + 1))
}

/// A call retried after a conflict on the tick thread (a quick first run) is committed and
/// answered "ok" even though the retry ran far past its timeout; on the worker pool the same
/// call would be answered with a timeout and discarded.
#[test]
fn a_call_retried_inline_past_its_timeout_is_answered_with_a_timeout() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    BUMP_B_RUNS.store(0, Ordering::SeqCst);
    let (db, ids) = bank(&[0]);
    let registry =
        ProcedureRegistry::new().with(proc("bump", Some(Duration::from_millis(150)), bump)).unwrap();
    let rt = Runtime::start(
        db.clone(),
        registry,
        RuntimeConfig { tick_hz: 15, worker_threads: Some(2), ..Default::default() },
    )
    .unwrap();
    let h = rt.handle();
    let release = hold(&h);
    let (ra, rx_a) = reply();
    h.submit(Job::Call { name: "bump".into(), args: json!({"tag": "a"}) }, ra).unwrap();
    let (rb, rx_b) = reply();
    let queued = Instant::now();
    h.submit(Job::Call { name: "bump".into(), args: json!({"tag": "b"}) }, rb).unwrap();
    release.send(()).unwrap();
    assert_eq!(rx_a.recv_timeout(WAIT).expect("answered"), Ok(json!(1)));
    let b = rx_b.recv_timeout(WAIT).expect("answered");
    let waited = queued.elapsed();
    assert!(BUMP_B_RUNS.load(Ordering::SeqCst) >= 2, "b conflicted with a and ran again");
    assert!(
        matches!(b, Err(ProcError::TimedOut { .. })),
        "b's timeout is 150 ms, it was answered after {waited:?} with {b:?}"
    );
    let t = db.snapshot().table_ref::<Account>().unwrap();
    assert_eq!(db.snapshot().get(t, ids[0]).unwrap().balance, 1, "the timed-out call's write is discarded");
    assert_eq!(h.metrics().procedures_timed_out, 1);
    rt.shutdown();
}

fn one(_ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    Ok(json!(1))
}

/// A procedure that uses Rayon inside (as its parallel iteration does): one half is quick,
/// the other slow, so the worker that ran the quick half waits for the other.
fn par_wait(_ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    rayon::join(
        || std::thread::sleep(Duration::from_millis(30)),
        || std::thread::sleep(Duration::from_millis(400)),
    );
    Ok(json!("done"))
}

/// While a procedure waits inside a Rayon join, its worker picks up other calls' tasks; the
/// thread-local "in a procedure" flag is still set there, so unrelated calls fail as nested.
#[test]
fn calls_run_while_another_procedure_waits_in_rayon_are_not_nested() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let registry = ProcedureRegistry::new()
        .with(proc("one", None, one))
        .unwrap()
        .with(proc("par_wait", None, par_wait))
        .unwrap();
    let rt = Runtime::start(
        Database::new(),
        registry,
        RuntimeConfig { worker_threads: Some(2), ..Default::default() },
    )
    .unwrap();
    let h = rt.handle();
    let (rp, rx_p) = reply();
    h.submit(Job::Call { name: "par_wait".into(), args: json!({}) }, rp).unwrap();
    // Let par_wait start and its quick half finish.
    std::thread::sleep(Duration::from_millis(120));
    let rxs: Vec<_> = (0..5)
        .map(|_| {
            let (r, rx) = reply();
            h.submit(Job::Call { name: "one".into(), args: json!({}) }, r).unwrap();
            rx
        })
        .collect();
    assert_eq!(rx_p.recv_timeout(WAIT).expect("answered"), Ok(json!("done")));
    for rx in rxs {
        assert_eq!(rx.recv_timeout(WAIT).expect("answered"), Ok(json!(1)), "an unrelated call is not nested");
    }
    rt.shutdown();
}

static SLOW_STARTED: AtomicU32 = AtomicU32::new(0);

fn slow(_ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    Ok(json!("slow"))
}

/// `max_calls_in_flight` bounds the calls running or waiting to commit. A call that timed out
/// leaves the count, but its run stays queued on (or keeps running on) the worker pool: new
/// calls are admitted, and the pool's backlog grows without bound. A fresh call made once every
/// earlier call has been answered then waits behind seconds of runs nobody will use.
#[test]
fn timed_out_calls_do_not_leave_an_unbounded_backlog_on_the_worker_pool() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    SLOW_STARTED.store(0, Ordering::SeqCst);
    let registry = ProcedureRegistry::new()
        .with(proc("slow", Some(Duration::from_millis(30)), slow))
        .unwrap()
        .with(proc("quick", Some(Duration::from_millis(1_000)), one))
        .unwrap();
    let rt = Runtime::start(
        Database::new(),
        registry,
        RuntimeConfig { worker_threads: Some(1), max_calls_in_flight: 2, ..Default::default() },
    )
    .unwrap();
    let h = rt.handle();
    let rxs: Vec<_> = (0..20)
        .map(|_| {
            let (r, rx) = reply();
            h.submit(Job::Call { name: "slow".into(), args: json!({}) }, r).unwrap();
            rx
        })
        .collect();
    for rx in rxs {
        assert!(matches!(rx.recv_timeout(WAIT).expect("answered"), Err(ProcError::TimedOut { .. })));
    }
    // Nothing is in flight, and at most max_calls_in_flight (2) runs of 200 ms can be ahead.
    let started_before = SLOW_STARTED.load(Ordering::SeqCst);
    let t0 = Instant::now();
    let r = h.call("quick", json!({}), WAIT);
    let started_after = SLOW_STARTED.load(Ordering::SeqCst);
    assert_eq!(
        r,
        Ok(json!(1)),
        "after {:?}; {} runs of already-answered calls started meanwhile",
        t0.elapsed(),
        started_after - started_before
    );
    rt.shutdown();
}

/// The phase budgets must add up to 100, and neither the API phase nor the procedure phase
/// may get none: with no time, it never takes a request or commits a call.
#[test]
fn a_phase_budget_of_zero_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (api, procedures, what) in [(0, 80, "api_budget_pct"), (80, 0, "procedure_budget_pct")] {
        let cfg = RuntimeConfig {
            api_budget_pct: api,
            procedure_budget_pct: procedures,
            persistence_budget_pct: 20,
            worker_threads: Some(1),
            ..Default::default()
        };
        match Runtime::start(Database::new(), ProcedureRegistry::new(), cfg) {
            Err(StartError::Config(e)) => assert!(e.to_string().contains(what), "{e}"),
            Err(e) => panic!("unexpected {e}"),
            Ok(rt) => {
                rt.shutdown();
                panic!("a runtime with {what} = 0 was started");
            }
        }
    }
}

fn overstay(ctx: &mut ProcCtx<'_>, _args: Map<String, Value>) -> Result<Value, ProcError> {
    std::thread::sleep(Duration::from_millis(150));
    let t = ctx.table::<Account>()?;
    ctx.update(t, RecordId(1), &Account { balance: 7 })?;
    Ok(json!("committed"))
}

/// `Procedure::call` (the in-process, sequential path) ignores the procedure's timeout: a call
/// that outlives it commits and answers "ok", where the runtime answers a timeout and discards
/// it.
#[test]
fn a_procedure_timeout_behaves_the_same_in_procedure_call_and_in_the_runtime() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let p = proc("overstay", Some(Duration::from_millis(50)), overstay);

    let (db, ids) = bank(&[0]);
    let rt = Runtime::start(
        db.clone(),
        ProcedureRegistry::new().with(p).unwrap(),
        RuntimeConfig { worker_threads: Some(1), ..Default::default() },
    )
    .unwrap();
    let in_runtime = rt.handle().call("overstay", json!({}), WAIT);
    rt.shutdown();
    assert!(matches!(in_runtime, Err(ProcError::TimedOut { .. })), "{in_runtime:?}");
    let t = db.snapshot().table_ref::<Account>().unwrap();
    assert_eq!(db.snapshot().get(t, ids[0]).unwrap().balance, 0);

    let (db, ids) = bank(&[0]);
    let sequential = p.call(&db, json!({}), 1);
    let t = db.snapshot().table_ref::<Account>().unwrap();
    assert_eq!(
        (sequential, db.snapshot().get(t, ids[0]).unwrap().balance),
        (in_runtime, 0),
        "Procedure::call must time the call out and discard it like the runtime"
    );
}
