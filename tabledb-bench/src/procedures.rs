//! `procedures`: a procedure updating every record through parallel iteration, against a
//! Rayon loop over a plain `Vec` doing the same; the memory's limit for copying the table
//! (`machine_copy`, no database); and calls per second of a tiny procedure through the
//! runtime.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde_json::json;
use tabledb::procedure::{ProcCtx, ProcError};
use tabledb::runtime::Job;
use tabledb::{ProcedureRegistry, RecordId, Runtime, RuntimeConfig};

use crate::engine::{Entity, build, entity};
use crate::harness::{Plan, Report, Row, median};

/// Adds one to every entity's hit points, in parallel.
#[tabledb::procedure]
fn bump_hp(ctx: &mut ProcCtx<'_>) -> Result<u64, ProcError> {
    let t = ctx.snapshot().table_ref::<Entity>()?;
    Ok(ctx.par_update(t, |_, e| e.hp = e.hp.wrapping_add(1))?)
}

/// Sets one entity's level.
#[tabledb::procedure]
fn set_level(ctx: &mut ProcCtx<'_>, id: RecordId, level: u32) -> Result<(), ProcError> {
    let t = ctx.snapshot().table_ref::<Entity>()?;
    Ok(ctx.set(t, id, Entity::LEVEL, level)?)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("rayon pool")
}

pub fn run(n: u64, plan: &Plan, report: &mut Report, only: Option<&str>) {
    let wants = |w: &str| only.is_none_or(|o| w.starts_with(o));
    eprintln!("building {n} records ...");
    let (db, table) = build(n);

    if wants("proc_par_update") {
        let procedure = bump_hp::procedure();
        let mut vec: Vec<Entity> = (0..n).map(entity).collect();
        for threads in [1, 2] {
            let p = pool(threads);
            let before = db.snapshot().get(table, RecordId(1)).expect("live").hp;
            let (ours, base) = p.install(|| {
                plan.rate_pair(
                    || {
                        let updated = procedure.call(&db, json!({}), 1).expect("bump_hp");
                        assert_eq!(updated, json!(n));
                        n
                    },
                    || {
                        black_box(&mut vec).par_iter_mut().for_each(|e| e.hp = e.hp.wrapping_add(1));
                        n
                    },
                )
            });
            let after = db.snapshot().get(table, RecordId(1)).expect("live").hp;
            assert_ne!(before, after, "the procedure changed the records");
            let mut row = Row::new("proc_par_update", n, threads, ours, base);
            row.note = Some("records updated per second; one transaction per call, committed".into());
            report.add(row);
        }
    }

    if wants("machine_copy") {
        // The machine's limit for an update that copies what it changes: 64-byte lines copied
        // per second with streaming stores (as a parallel update writes its page copies) from
        // one buffer the size of the table to another and back, each copy reading what the one
        // before wrote (as each update reads the version the one before made), each thread its
        // own part. Its two-thread speedup bounds what any copy-on-write update of a whole
        // table can reach.
        let mut a: Vec<Line> = (0..n).map(|i| Line([i; 8])).collect();
        let mut b: Vec<Line> = vec![Line([0; 8]); a.len()];
        for threads in [1, 2] {
            let p = pool(threads);
            let part = a.len().div_ceil(threads);
            let rate = p.install(|| {
                plan.rate(|| {
                    b.par_chunks_mut(part).zip(a.par_chunks(part)).for_each(|(d, s)| stream_copy(d, s));
                    std::mem::swap(&mut a, &mut b);
                    n
                })
            });
            assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0), "every line copied");
            let mut row = Row::new("machine_copy", n, threads, rate, rate);
            row.mb_per_s = Some(rate * 64.0 / 1e6);
            row.note = Some(
                "64-byte lines copied per second with streaming stores; no database: the memory's limit"
                    .into(),
            );
            report.add(row);
        }
    }

    if wants("proc_calls") {
        let registry = ProcedureRegistry::new().with(set_level::procedure()).expect("register");
        let config = RuntimeConfig {
            tick_hz: 120,
            queue_capacity: Some(200_000),
            max_api_requests_per_tick: 100_000,
            max_calls_in_flight: 100_000,
            flush_interval_ticks: 0,
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::start(db.clone(), registry, config).expect("runtime");
        let handle = runtime.handle();
        let mut rates = Vec::new();
        for _ in 0..plan.runs {
            let answered = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let mut sent = 0u64;
            let mut x = 0x9E37_79B9u64;
            while start.elapsed() < plan.min_run {
                // Keep up to 20 000 calls in flight.
                if sent - answered.load(Ordering::Relaxed) > 20_000 {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = 1 + x % n;
                let answered = answered.clone();
                let job = Job::Call {
                    name: "set_level".into(),
                    args: json!({ "id": id, "level": (x >> 40) as u32 }),
                };
                match handle.submit(
                    job,
                    Box::new(move |r| {
                        r.expect("set_level");
                        answered.fetch_add(1, Ordering::Relaxed);
                    }),
                ) {
                    Ok(()) => sent += 1,
                    Err(ProcError::Overloaded) => std::thread::sleep(Duration::from_micros(200)),
                    Err(e) => panic!("{e}"),
                }
            }
            while answered.load(Ordering::Relaxed) < sent {
                std::thread::sleep(Duration::from_millis(1));
            }
            rates.push(sent as f64 / start.elapsed().as_secs_f64());
        }
        runtime.shutdown();
        // Baseline: the same procedure called directly, one transaction each, no runtime.
        let procedure = set_level::procedure();
        let mut x = 7u64;
        let base = plan.rate(|| {
            for _ in 0..1000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let id = 1 + (x >> 33) % n;
                procedure.call(&db, json!({ "id": id, "level": 3 }), 1).expect("set_level");
            }
            1000
        });
        let mut row = Row::new("proc_calls", n, 1, median(&mut rates), base);
        row.note = Some("calls answered per second through the 120 Hz runtime (each its own transaction); baseline: direct calls without the runtime".into());
        report.add(row);
    }
}

/// A 64-byte line, aligned as the blocks a parallel update copies into.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// Copies `src` to `dst` (of the same length) with streaming stores where the processor has
/// them, as tabledb writes page copies; elsewhere a plain copy.
fn stream_copy(dst: &mut [Line], src: &[Line]) {
    assert_eq!(dst.len(), src.len(), "a copy between buffers of the same length");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_sfence, _mm_stream_si128};
        for (d, s) in dst.iter_mut().zip(src) {
            let (d, s) = ((d as *mut Line).cast::<__m128i>(), (s as *const Line).cast::<__m128i>());
            for k in 0..4 {
                // SAFETY: SSE2 is part of x86_64; a line is 64 bytes aligned to 64, so each of
                // its four 16-byte parts is in bounds and 16-byte aligned; `d` is borrowed
                // exclusively and does not overlap `s`.
                unsafe { _mm_stream_si128(d.add(k), _mm_load_si128(s.add(k))) };
            }
        }
        // Streaming stores are weakly ordered: order them before the caller reads `dst`.
        // SAFETY: SSE is part of x86_64; a fence touches no memory.
        unsafe { _mm_sfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}
