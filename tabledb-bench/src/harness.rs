//! Measurement: warm-up, repeated timed runs of at least a minimum duration, medians, and the
//! report (a table on stdout, JSON lines on request).

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long and how often each workload runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub runs: usize,
    pub min_run: Duration,
    pub warmup: Duration,
}

impl Plan {
    /// Runs `step` (which returns the operations it did) repeatedly: first for the warm-up,
    /// then `runs` times for at least `min_run` each; returns the median rate in ops/s.
    pub fn rate(&self, mut step: impl FnMut() -> u64) -> f64 {
        let start = Instant::now();
        while start.elapsed() < self.warmup {
            std::hint::black_box(step());
        }
        let mut rates = Vec::with_capacity(self.runs);
        for _ in 0..self.runs {
            let start = Instant::now();
            let mut ops = 0u64;
            while start.elapsed() < self.min_run {
                ops += step();
            }
            rates.push(ops as f64 / start.elapsed().as_secs_f64());
        }
        median(&mut rates)
    }

    /// Like [`rate`](Self::rate) for a workload and its baseline, with their timed runs taking
    /// turns, so that a change in the machine's speed during the measurement (other load,
    /// memory bandwidth) affects both alike instead of skewing their ratio. Returns the two
    /// median rates.
    pub fn rate_pair(&self, mut ours: impl FnMut() -> u64, mut base: impl FnMut() -> u64) -> (f64, f64) {
        let timed = |step: &mut dyn FnMut() -> u64, least: Duration| {
            let start = Instant::now();
            let mut ops = 0u64;
            while start.elapsed() < least {
                ops += step();
            }
            ops as f64 / start.elapsed().as_secs_f64()
        };
        timed(&mut ours, self.warmup);
        timed(&mut base, self.warmup);
        let (mut a, mut b) = (Vec::with_capacity(self.runs), Vec::with_capacity(self.runs));
        for _ in 0..self.runs {
            a.push(timed(&mut ours, self.min_run));
            b.push(timed(&mut base, self.min_run));
        }
        (median(&mut a), median(&mut b))
    }
}

pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).expect("rates are finite"));
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// One line of the report.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Row {
    pub workload: String,
    pub records: u64,
    pub threads: usize,
    pub ops_per_s: f64,
    pub baseline_ops_per_s: f64,
    pub ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
    /// For a row run with more than one thread: its rate over the same workload's
    /// one-thread rate, and the same for the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_speedup: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    pub fn new(workload: &str, records: u64, threads: usize, ops: f64, baseline: f64) -> Row {
        Row {
            workload: workload.to_owned(),
            records,
            threads,
            ops_per_s: ops,
            baseline_ops_per_s: baseline,
            ratio: if baseline > 0.0 { ops / baseline } else { 0.0 },
            ..Row::default()
        }
    }
}

/// Collects rows, prints each as it is measured, and writes JSON lines at the end.
pub struct Report {
    rows: Vec<Row>,
    json: Option<std::path::PathBuf>,
}

impl Report {
    pub fn new(json: Option<std::path::PathBuf>) -> Report {
        println!(
            "{:<18} {:>10} {:>7} {:>14} {:>14} {:>7} {:>9} {:>9} {:>7} {:>9} {:>11}",
            "workload",
            "records",
            "threads",
            "ops/s",
            "baseline/s",
            "ratio",
            "p50_us",
            "p99_us",
            "bytes",
            "MB/s",
            "speedup"
        );
        Report { rows: Vec::new(), json }
    }

    /// Prints a row and keeps it for the JSON file. A row with more than one thread gets its
    /// speedups from the one-thread row of the same workload, if that was added before.
    pub fn add(&mut self, mut row: Row) {
        if row.threads > 1
            && let Some(one) = self
                .rows
                .iter()
                .find(|r| r.workload == row.workload && r.records == row.records && r.threads == 1)
        {
            let over = |a: f64, b: f64| (b > 0.0).then(|| a / b);
            row.speedup = over(row.ops_per_s, one.ops_per_s);
            row.baseline_speedup = over(row.baseline_ops_per_s, one.baseline_ops_per_s);
        }
        let speedup = match (row.speedup, row.baseline_speedup) {
            (Some(a), Some(b)) => format!("{a:.2}/{b:.2}"),
            _ => "-".to_owned(),
        };
        let opt = |v: Option<f64>, prec: usize| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"));
        println!(
            "{:<18} {:>10} {:>7} {:>14.0} {:>14.0} {:>7.3} {:>9} {:>9} {:>7} {:>9} {:>11}{}",
            row.workload,
            row.records,
            row.threads,
            row.ops_per_s,
            row.baseline_ops_per_s,
            row.ratio,
            opt(row.p50_us, 2),
            opt(row.p99_us, 2),
            opt(row.bytes_ratio, 3),
            opt(row.mb_per_s, 0),
            speedup,
            row.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default(),
        );
        std::io::stdout().flush().ok();
        self.rows.push(row);
    }

    pub fn finish(self) -> std::io::Result<()> {
        if let Some(path) = self.json {
            let mut out = std::fs::File::create(&path)?;
            for row in &self.rows {
                serde_json::to_writer(&mut out, row)?;
                out.write_all(b"\n")?;
            }
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// A small, fast, deterministic random number generator for workload inputs.
#[derive(Clone, Debug)]
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next() as u128 * n as u128) >> 64) as u64
    }
}
