//! Point 8 of issue 13: admissions per second through `RedisMeter` against `redis-benchmark`
//! running the same script (`EVALSHA` of the meter's own SHA, the same key shape and arguments)
//! at the same concurrency, both on a redis-server this bench starts on loopback.
//!
//! Then hot-key leases: the same admissions over `TUP_HOT_KEYS` busy keys, without and with
//! `RedisMeterBuilder::lease(20, 200 ms)`, counting the script calls Redis ran.
//!
//! `cargo bench --features testing,redis --bench redis_meter` (a release build). Environment:
//! `TUP_CONCURRENCY` (default 50), `TUP_REQUESTS` (default 200000), `TUP_KEYS` (default 10000),
//! `TUP_HOT_KEYS` (default 100).

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tower_usage_plans::meter::{Charge, Meter, Outcome, RedisMeter};
use tower_usage_plans::model::QuotaPeriod;
use tower_usage_plans::period::Calendar;
use tower_usage_plans::testing::meter::{plan, TestPlan};
#[path = "../tests/support/redis.rs"]
mod redis_server;
use redis_server::RedisServer;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would run this too: only benchmark
    // when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let concurrency = env("TUP_CONCURRENCY", 50);
    let requests = env("TUP_REQUESTS", 200_000);
    let keys = env("TUP_KEYS", 10_000);
    // A throttle and a quota that admit everything: every call runs the whole script.
    let p = Arc::new(plan(
        "bench",
        Some((u64::from(u32::MAX), QuotaPeriod::Month, 0)),
        Some((1e6, 1_000_000)),
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let meter = rt
        .block_on(RedisMeter::builder().connect(&server.url()))
        .unwrap();

    // RedisMeter: `concurrency` tasks sharing the meter, `requests` admissions in all.
    let ours = run(&rt, &meter, &p, concurrency, requests, keys);

    // redis-benchmark: the same script by SHA, a key of the same shape (__rand_int__ picks one of
    // `keys`), the arguments RedisMeter sends for this plan on Redis's clock.
    let t = 1_000u64; // ns per token at 1e6/s
                      // The month's window, and the next one's end, as the crate works them out for the script.
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let month = Calendar::aws(QuotaPeriod::Month, 0);
    let (w, next) = (
        month.window_at(unix),
        month.window_at(month.window_at(unix).end),
    );
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string()])
        .args(["-c", &concurrency.to_string(), "-n", &requests.to_string()])
        .args(["-r", &keys.to_string(), "-q", "--csv"])
        .args([
            "EVALSHA",
            meter.script_sha(),
            "1",
            "tup:m:{bench:key__rand_int__}",
        ])
        .args(["a", "", "0", "0", "0", "90", "1", "0", "0", "b:plan", "0"])
        .args([t.to_string(), (t * 1_000_000).to_string(), t.to_string()])
        .args([u32::MAX.to_string(), w.start.to_string(), w.end.to_string()])
        .args([next.end.to_string(), "0".to_string()])
        .output()
        .expect("run redis-benchmark (Debian: redis-tools)");
    let csv = String::from_utf8_lossy(&out.stdout);
    let theirs: f64 = csv
        .lines()
        .filter_map(|l| l.split(',').nth(1))
        .filter_map(|v| v.trim_matches('"').parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no rate from redis-benchmark: {csv}"));
    // Both ran the whole script and admitted every request: the day's usage, summed over each
    // side's keys, is the number of requests (unless midnight UTC fell inside the run).
    let admitted = |pattern: &str| -> u64 {
        let pattern = pattern.to_owned();
        rt.block_on(async {
            let client = redis::Client::open(server.url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let names: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut c)
                .await
                .unwrap();
            let mut sum = 0;
            for name in names {
                let du: u64 = redis::cmd("HGET")
                    .arg(name)
                    .arg("du")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                sum += du;
            }
            sum
        })
    };
    let by_theirs = admitted("tup:m:{bench:key0000*");
    let by_ours = admitted("tup:m:{bench:key*") - by_theirs;
    println!(
        "admitted (the day's usage summed): RedisMeter {by_ours}, redis-benchmark {by_theirs}"
    );
    assert_eq!(
        by_theirs, requests,
        "redis-benchmark's calls did not all run the script"
    );
    println!(
        "RedisMeter::admit: {ours:.0}/s; redis-benchmark EVALSHA: {theirs:.0}/s; {:.0} % \
         (concurrency {concurrency}, {requests} requests over {keys} keys, loopback)",
        100.0 * ours / theirs
    );

    // Hot keys, without and with leases: the rate, and the script's calls per 1,000 admissions.
    let hot = env("TUP_HOT_KEYS", 100);
    let calls = || -> u64 {
        rt.block_on(async {
            let client = redis::Client::open(server.url()).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut c)
                .await
                .unwrap();
            info.lines()
                .filter(|l| l.starts_with("cmdstat_evalsha:"))
                .filter_map(|l| l.split("calls=").nth(1))
                .filter_map(|v| v.split(',').next()?.parse().ok())
                .next()
                .unwrap_or(0)
        })
    };
    let leasing = rt
        .block_on(
            RedisMeter::builder()
                .prefix("tup:hot:")
                .lease(20, std::time::Duration::from_millis(200))
                .connect(&server.url()),
        )
        .unwrap();
    for (name, m) in [
        ("without leases", &meter),
        ("leases of 20, 200 ms", &leasing),
    ] {
        let before = calls();
        let rate = run(&rt, m, &p, concurrency, requests, hot);
        let per_1000 = (calls() - before) as f64 * 1000.0 / requests as f64;
        println!(
            "RedisMeter::admit, {hot} hot keys, {name}: {rate:.0}/s, {per_1000:.0} script calls \
             per 1,000 admissions (concurrency {concurrency}, {requests} requests)"
        );
    }
}

/// Admissions per second: `concurrency` tasks sharing `meter`, `requests` admissions in all,
/// over `keys` keys in turn.
fn run(
    rt: &tokio::runtime::Runtime,
    meter: &RedisMeter,
    p: &Arc<TestPlan>,
    concurrency: u64,
    requests: u64,
    keys: u64,
) -> f64 {
    let ids: Arc<Vec<Arc<str>>> = Arc::new((0..keys).map(|i| format!("key{i}").into()).collect());
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| {
                let (meter, p, ids, next) = (meter.clone(), p.clone(), ids.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests {
                            return;
                        }
                        let key = &ids[(i % keys) as usize];
                        let v = meter
                            .admit(&Charge::new(&[p.counter(key)], 1).unwrap())
                            .await
                            .expect("the meter answers");
                        assert_eq!(v.outcome, Outcome::Admitted);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    requests as f64 / start.elapsed().as_secs_f64()
}
