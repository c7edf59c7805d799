//! A measurement, not a usage example: what a `PersistedMeter` flush costs when few of many keys
//! changed.
//!
//! `cargo run --release --example flush [KEYS] [CHANGED]` meters KEYS keys (default 1,000,000)
//! once each, writes them all (the first flush), then meters CHANGED of them (default 1,000) and
//! times the next flush, which writes only those. The SQLite file is made in the system's temp
//! directory and removed at the end.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use clap::Parser;
use tower_usage_plans::meter::policy::{BucketLimits, Limits, QuotaLimits};
use tower_usage_plans::meter::{Charge, Counter, Meter, Outcome, PersistedMeter};
use tower_usage_plans::model::QuotaPeriod;
use tower_usage_plans::period::Calendar;
use tower_usage_plans::store::SqliteStore;
use tower_usage_plans::LocalMeter;

#[derive(Debug, Parser)]
#[command(name = "flush")]
struct Args {
    /// How many keys the meter holds.
    #[arg(value_name = "KEYS", default_value_t = 1_000_000)]
    keys: usize,
    /// How many of them change before the timed flush.
    #[arg(value_name = "CHANGED", default_value_t = 1_000)]
    changed: usize,
}

/// The plan: its id, its bucket's name, its limits (1,000,000 rps, burst 1,000,000; 10^9 a
/// day).
struct Plan(Arc<str>, Arc<str>, Limits);

fn admit(meter: &PersistedMeter, key: &Arc<str>, plan: &Plan) {
    let counters = [Counter::new(&plan.0, key, Some(&plan.1), plan.2)];
    let fut = pin!(meter.admit(&Charge::new(&counters, 1).unwrap()));
    let mut cx = Context::from_waker(Waker::noop());
    match fut.poll(&mut cx) {
        Poll::Ready(Ok(v)) => assert_eq!(v.outcome, Outcome::Admitted),
        other => panic!("not admitted at once: {other:?}"),
    }
}

fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("usage-plans-flush-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp directory");
    let store = SqliteStore::open(dir.join("flush.db")).expect("a new SQLite file");
    let plan = Plan(
        "p".into(),
        "plan".into(),
        Limits::new(
            Some(BucketLimits::new(1_000, 1_000_000)),
            Some(QuotaLimits::new(
                1_000_000_000,
                Calendar::aws(QuotaPeriod::Day, 0),
            )),
        ),
    );
    let meter =
        PersistedMeter::with_flush_interval(&store, LocalMeter::new(), Duration::from_secs(3600))
            .expect("the meter");
    let keys: Vec<Arc<str>> = (0..args.keys).map(|i| format!("k{i}").into()).collect();
    for k in &keys {
        admit(&meter, k, &plan);
    }
    let t = Instant::now();
    let written = meter.flush().unwrap();
    println!(
        "first flush: {written} states written in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let written = meter.flush().unwrap();
    println!(
        "flush with nothing changed ({} keys): {written} written in {:.3} ms",
        args.keys,
        t.elapsed().as_secs_f64() * 1e3
    );
    let step = (args.keys / args.changed.max(1)).max(1);
    for k in keys.iter().step_by(step).take(args.changed) {
        admit(&meter, k, &plan);
    }
    let t = Instant::now();
    let written = meter.flush().unwrap();
    println!(
        "flush with {} of {} keys changed: {written} written in {:.3} ms",
        args.changed,
        args.keys,
        t.elapsed().as_secs_f64() * 1e3
    );
    meter.shutdown().unwrap();
    drop(meter);
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
}
