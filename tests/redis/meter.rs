//! RedisMeter against real redis-servers started here on loopback: the meter conformance suite on
//! one server and on a three-master cluster, keys spread over the cluster's slots, and exactness
//! across two OS processes (this test binary, run again as a child) on Redis's own clock.
//!
//! Without redis-server these tests print SKIPPED and pass, unless `CI` is set: then they fail.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis_server;
use redis::AsyncCommands;
use redis_server::{RedisCluster, RedisServer};
use tower_usage_plans::meter::{Charge, Meter, Outcome, RedisMeter};
use tower_usage_plans::model::QuotaPeriod;
use tower_usage_plans::testing::meter::{plan, TestPlan};

/// The suite's `make`: meters on `base`'s connection, each with a prefix of its own (so that
/// checks never share state) and the suite's clock.
fn maker(
    base: RedisMeter,
    tag: &'static str,
) -> impl Fn(tower_usage_plans::clock::ManualClock) -> RedisMeter {
    let n = AtomicU64::new(0);
    move |clock| {
        base.with_clock_and_prefix(
            clock,
            &format!("{tag}{}:", n.fetch_add(1, Ordering::SeqCst)),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_meter_conforms() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let base = RedisMeter::builder().connect(&server.url()).await.unwrap();
    tower_usage_plans::testing::meter::meter(maker(base, "conf")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_meter_conforms_on_a_cluster_and_keys_spread_over_its_slots() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let base = RedisMeter::builder()
        .connect_cluster(cluster.urls())
        .await
        .unwrap();
    tower_usage_plans::testing::meter::meter(maker(base.clone(), "conf")).await;

    // 60 keys land on all three masters, and each one's quota holds on its own.
    let p = plan("p", Some((3, QuotaPeriod::Day, 0)), None);
    for i in 0..60 {
        let key: Arc<str> = format!("key-{i}").into();
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            let v = base
                .admit(&Charge::new(&[p.counter(&key)], 1).unwrap())
                .await
                .unwrap();
            outcomes.push(v.outcome);
        }
        assert_eq!(outcomes[..3], [Outcome::Admitted; 3], "key {i}");
        assert!(
            matches!(outcomes[3], Outcome::QuotaExceeded { .. }),
            "key {i}"
        );
    }
    for url in cluster.urls() {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = c.keys(format!("{}*", "tup:m:{p:key-")).await.unwrap();
        assert!(
            keys.len() >= 5,
            "{url} holds {} of the 60 keys: the keys should spread over the slots",
            keys.len()
        );
    }
}

/// What a child process runs: set by the parent through the environment.
const CHILD: &str = "TUP_REDIS_CHILD";

/// The plan the children share: `quota:L` or `throttle:RATE:BURST`.
fn shared_plan(spec: &str) -> TestPlan {
    let parts: Vec<&str> = spec.split(':').collect();
    match parts[..] {
        ["quota", l] => plan(
            "shared",
            Some((l.parse().unwrap(), QuotaPeriod::Month, 0)),
            None,
        ),
        ["throttle", rate, burst] => plan(
            "shared",
            None,
            Some((rate.parse().unwrap(), burst.parse().unwrap())),
        ),
        _ => panic!("unknown plan {spec}"),
    }
}

/// The child's side: connects on its own, waits for the other child (a counter in Redis), then
/// sends its requests from `tasks` concurrent tasks and prints how many were admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_process() {
    let Ok(spec) = std::env::var(CHILD) else {
        return; // Run only as a child of the tests below.
    };
    let env = |k: &str| std::env::var(k).unwrap();
    let urls: Vec<String> = env("TUP_REDIS_URLS").split(',').map(String::from).collect();
    let (tasks, per_task): (u64, u64) = (
        env("TUP_TASKS").parse().unwrap(),
        env("TUP_PER_TASK").parse().unwrap(),
    );
    let for_ms: u64 = env("TUP_FOR_MS").parse().unwrap();
    let prefix = env("TUP_PREFIX");
    let builder = RedisMeter::builder().prefix(&prefix);
    let meter = if urls.len() > 1 {
        builder.connect_cluster(urls.clone()).await.unwrap()
    } else {
        builder.connect(&urls[0]).await.unwrap()
    };
    // The barrier: both children connected before either sends a request.
    let barrier = format!("{prefix}{{barrier}}");
    let mut bc = if urls.len() > 1 {
        Barrier::Cluster(
            redis::cluster::ClusterClient::new(urls.clone())
                .unwrap()
                .get_async_connection()
                .await
                .unwrap(),
        )
    } else {
        Barrier::Single(
            redis::Client::open(urls[0].as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
    };
    bc.incr(&barrier).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bc.get(&barrier).await < 2 {
        assert!(Instant::now() < deadline, "the other child never came");
        tokio::task::yield_now().await;
    }
    let plan = Arc::new(shared_plan(&spec));
    let admitted = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (meter, plan, admitted) = (meter.clone(), plan.clone(), admitted.clone());
            tokio::spawn(async move {
                let key: Arc<str> = "shared-key".into();
                let start = Instant::now();
                let mut sent = 0;
                loop {
                    let v = meter
                        .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
                        .await
                        .unwrap();
                    if v.outcome == Outcome::Admitted {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                    sent += 1;
                    if sent >= per_task && start.elapsed() >= Duration::from_millis(for_ms) {
                        break;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    println!("\nADMITTED={}", admitted.load(Ordering::SeqCst));
}

enum Barrier {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Barrier {
    async fn incr(&mut self, key: &str) {
        let _: i64 = match self {
            Barrier::Single(c) => c.incr(key, 1).await.unwrap(),
            Barrier::Cluster(c) => c.incr(key, 1).await.unwrap(),
        };
    }

    async fn get(&mut self, key: &str) -> i64 {
        match self {
            Barrier::Single(c) => c.get(key).await.unwrap(),
            Barrier::Cluster(c) => c.get(key).await.unwrap(),
        }
    }
}

/// Runs two children on `urls` with this plan, and returns what each admitted.
fn two_children(
    urls: &[String],
    spec: &str,
    prefix: &str,
    tasks: u64,
    per_task: u64,
    for_ms: u64,
) -> [u64; 2] {
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "meter::child_process",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD, spec)
                .env("TUP_REDIS_URLS", urls.join(","))
                .env("TUP_TASKS", tasks.to_string())
                .env("TUP_PER_TASK", per_task.to_string())
                .env("TUP_FOR_MS", for_ms.to_string())
                .env("TUP_PREFIX", prefix)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let counts: Vec<u64> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "a child failed: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
                .lines()
                .find_map(|l| l.split("ADMITTED=").nth(1))
                .unwrap_or_else(|| panic!("no count from a child: {stdout}"))
                .parse()
                .unwrap()
        })
        .collect();
    [counts[0], counts[1]]
}

/// Redis's clock, in seconds.
async fn redis_time(url: &str) -> f64 {
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    s as f64 + us as f64 / 1e6
}

fn exact_across_processes(urls: &[String], tag: &str) {
    // 2 processes x 8 tasks x 50 requests = 800 against quotas of 500 and 1000.
    for (limit, want) in [(500u64, 500u64), (1000, 800), (1, 1)] {
        let [a, b] = two_children(
            urls,
            &format!("quota:{limit}"),
            &format!("{tag}q{limit}:"),
            8,
            50,
            0,
        );
        assert_eq!(
            a + b,
            want,
            "N=800 against L={limit} admit min(N, L) across two processes ({a} + {b})"
        );
    }
}

async fn throttle_across_processes(urls: &[String], tag: &str) {
    // A bucket of 50 refilled at 100/s, hammered by two processes for 600 ms.
    let (rate, burst) = (100.0, 50.0);
    let t0 = redis_time(&urls[0]).await;
    let [a, b] = tokio::task::block_in_place(|| {
        two_children(urls, "throttle:100:50", &format!("{tag}t:"), 4, 1, 600)
    });
    let t = redis_time(&urls[0]).await - t0;
    let total = (a + b) as f64;
    assert!(
        total <= burst + rate * t + 1.0,
        "the throttle holds burst + rate x t across both: {total} admitted in {t:.3} s"
    );
    assert!(
        total >= burst + rate * 0.3,
        "both processes hammered for 600 ms: the refill should have admitted more than {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_quotas_and_throttles_exactly() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(server) = RedisServer::start() else {
        return;
    };
    let urls = vec![server.url()];
    tokio::task::block_in_place(|| exact_across_processes(&urls, "x1"));
    throttle_across_processes(&urls, "x1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_quotas_and_throttles_exactly_on_a_cluster() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    tokio::task::block_in_place(|| exact_across_processes(&urls, "xc"));
    throttle_across_processes(&urls, "xc").await;
}
