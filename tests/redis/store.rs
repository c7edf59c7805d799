//! RedisStore against real redis-servers started here on loopback: the KeyStore and Management
//! conformance suites on one server and on a three-master cluster; two instances, where a change
//! made through one applies on the other within the refresh interval; usage reports and
//! update-usage answered by any instance; and no key value in clear in Redis.
//!
//! Without redis-server these tests print SKIPPED and pass, unless `CI` is set: then they fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis_server;
use redis::AsyncCommands;
use redis_server::{RedisCluster, RedisServer};
use tower_usage_plans::meter::{Charge, Meter, RedisMeter};
use tower_usage_plans::model::{ApiKeyValue, ApiStage, Quota, QuotaPeriod, StageRef, UsagePlan};
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::{
    ApiKeyQuery, KeyStore, Management, NewApiKey, PageRequest, RedisStore,
};
use tower_usage_plans::testing::store::{self as suite, Change};
use tower_usage_plans::usage::{get_usage, set_remaining, UsageQuery};

const REFRESH: Duration = Duration::from_millis(50);

/// Waits (bounded by `within`) until `check` holds; answers how long it took.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn apply(store: &RedisStore, change: Change) {
    suite::apply_with_management(store, change).await;
}

async fn conforms(connect: impl AsyncFn(&str) -> RedisStore) {
    let store = connect("look:").await;
    store.replace_all(suite::fixture()).await.unwrap();
    suite::key_store(&store).await;

    let store = connect("change:").await;
    store.replace_all(suite::fixture()).await.unwrap();
    suite::key_store_changes(&store, |c| apply(&store, c)).await;

    // The Management suite needs values shown: values kept, sealed.
    let store = connect("manage:").await;
    tower_usage_plans::testing::manage::management(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    conforms(async |prefix| {
        RedisStore::builder()
            .prefix(prefix)
            .keep_values([9; 32])
            .connect(&url)
            .await
            .unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_conforms_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls();
    conforms(async |prefix| {
        RedisStore::builder()
            .prefix(prefix)
            .keep_values([9; 32])
            .connect_cluster(urls.clone())
            .await
            .unwrap()
    })
    .await;
}

fn prod_plan() -> UsagePlan {
    let mut plan = UsagePlan::new("plan111", "Free");
    plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
    plan.quota = Some(Quota::new(100, QuotaPeriod::Month, 0).unwrap());
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_instance_applies_on_the_other_within_the_refresh_interval() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let connect = || {
        RedisStore::builder()
            .refresh_interval(REFRESH)
            .connect(&url)
    };
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let prod = StageRef::new("abc123def4", "prod");
    // The documented delay: one refresh interval, plus reading the store again.
    let delay = REFRESH + Duration::from_secs(1);

    a.create_usage_plan(prod_plan()).await.unwrap();
    let key = a.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
    a.create_usage_plan_key("plan111", &key.id).await.unwrap();
    // At once on the instance that made it.
    let g = a.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
    assert!(g.enabled && g.plan_id().is_some());

    let took = until(delay, "a key created through a reaches b", || async {
        b.lookup(key.value.expose(), &prod)
            .await
            .unwrap()
            .is_some_and(|g| g.enabled && g.plan_id().is_some())
    })
    .await;
    eprintln!("created through a, applied on b after {took:?}");

    // Disabled through b: refused on a within the delay.
    let off = PatchOperation::replace("/enabled", "false");
    b.update_api_key(&key.id, &[off]).await.unwrap();
    until(
        delay,
        "a key disabled through b is disabled on a",
        || async {
            a.lookup(key.value.expose(), &prod)
                .await
                .unwrap()
                .is_some_and(|g| !g.enabled)
        },
    )
    .await;

    // Management reads check the version: b answers a's change at once.
    let renamed = PatchOperation::replace("/name", "Renamed");
    a.update_api_key(&key.id, &[renamed]).await.unwrap();
    assert_eq!(b.get_api_key(&key.id, false).await.unwrap().name, "Renamed");

    // Deleted through a: unknown on b.
    a.delete_api_key(&key.id).await.unwrap();
    until(delay, "a key deleted through a is gone on b", || async {
        b.lookup(key.value.expose(), &prod).await.unwrap().is_none()
    })
    .await;
}

/// Many writers on each of two instances at once (as an admin API on each gets them): every
/// change lands, none gives up with a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_writers_on_two_instances_all_land() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let connect = || RedisStore::builder().connect(&url);
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let mut tasks = Vec::new();
    for t in 0..16 {
        let s = if t % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                s.create_api_key(NewApiKey::named(format!("w{t:02}-{i:02}")))
                    .await
                    .unwrap_or_else(|e| panic!("writer {t}, change {i}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = a
        .get_api_keys(&ApiKeyQuery {
            page: PageRequest::first(500),
            ..ApiKeyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_through_two_instances_all_land() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let connect = || RedisStore::builder().connect(&url);
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let make = |s: RedisStore, tag: &'static str| async move {
        for i in 0..20 {
            s.create_api_key(NewApiKey::named(format!("{tag}-{i:02}")))
                .await
                .unwrap();
        }
    };
    let (x, y) = tokio::join!(
        tokio::spawn(make(a.clone(), "a")),
        tokio::spawn(make(b.clone(), "b"))
    );
    x.unwrap();
    y.unwrap();
    let all = a
        .get_api_keys(&ApiKeyQuery {
            page: PageRequest::first(500),
            ..ApiKeyQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.items.len(), 40, "every key created on either instance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_key_value_in_clear_and_values_show_only_when_kept() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let plain = RedisStore::builder()
        .prefix("plain:")
        .connect(&server.url())
        .await
        .unwrap();
    let kept = RedisStore::builder()
        .prefix("kept:")
        .keep_values([1; 32])
        .connect(&server.url())
        .await
        .unwrap();
    let value = ApiKeyValue::new("Secret-Value-That-Must-Not-Leak-0001").unwrap();
    let mut ids = Vec::new();
    for store in [&plain, &kept] {
        let mut new = NewApiKey::named("Secret");
        new.value = Some(value.clone());
        let key = store.create_api_key(new).await.unwrap();
        assert_eq!(key.value, value, "the value is shown at creation");
        ids.push(key.id);
    }
    // Shown later only when kept.
    assert!(plain
        .get_api_key(&ids[0], true)
        .await
        .unwrap()
        .value
        .is_none());
    assert_eq!(
        kept.get_api_key(&ids[1], true).await.unwrap().value,
        Some(value.clone())
    );
    assert!(kept
        .get_api_key(&ids[1], false)
        .await
        .unwrap()
        .value
        .is_none());

    // Nothing in Redis holds the value, nor does any Debug output or error.
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = c.keys("*").await.unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let text = if kind == "hash" {
            format!(
                "{:?}",
                c.hgetall::<_, Vec<(String, String)>>(&k).await.unwrap()
            )
        } else {
            c.get::<_, String>(&k).await.unwrap()
        };
        assert!(
            !text.contains(value.expose()),
            "{k} holds a key's value in clear"
        );
    }
    for store in [&plain, &kept] {
        assert!(!format!("{store:?}").contains(value.expose()));
        let mut dup = NewApiKey::named("Again");
        dup.value = Some(value.clone());
        let err = store.create_api_key(dup).await.unwrap_err();
        assert!(!err.to_string().contains(value.expose()), "{err}");
    }
    // A store given another secret does not show a wrong value: it says what is wrong.
    let other = RedisStore::builder()
        .prefix("kept:")
        .keep_values([2; 32])
        .connect(&server.url())
        .await
        .unwrap();
    let err = other.get_api_key(&ids[1], true).await.unwrap_err();
    assert!(err.to_string().contains("backend"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_instance_answers_usage_and_update_usage_for_all() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let store_a = RedisStore::builder().connect(&url).await.unwrap();
    let store_b = RedisStore::builder().connect(&url).await.unwrap();
    let meter_a = RedisMeter::builder().connect(&url).await.unwrap();
    let meter_b = RedisMeter::builder().connect(&url).await.unwrap();

    store_a.create_usage_plan(prod_plan()).await.unwrap();
    let key = store_a
        .create_api_key(NewApiKey::named("ClientA"))
        .await
        .unwrap();
    store_a
        .create_usage_plan_key("plan111", &key.id)
        .await
        .unwrap();

    // Three requests admitted by instance a...
    // The plan's quota counter, as the layer charges it.
    let plan = tower_usage_plans::testing::meter::plan(
        "plan111",
        Some((100, QuotaPeriod::Month, 0)),
        None,
    );
    let id: Arc<str> = key.id.as_str().into();
    for _ in 0..3 {
        meter_a
            .admit(&Charge::new(&[plan.counter(&id)], 1).unwrap())
            .await
            .unwrap();
    }
    // ...are reported by instance b, whose store never saw the key created.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Yesterday and today, so that a midnight between the requests and the report is no matter.
    let query = UsageQuery::new(
        "plan111",
        Date::from_unix_secs(now - 86_400),
        Date::from_unix_secs(now),
    );
    let report = get_usage(&store_b, &meter_b, &query).await.unwrap();
    let used: u64 = report.items[&key.id].iter().map(|(u, _)| *u).sum();
    assert_eq!(used, 3);

    // Quota granted through b shows on a.
    set_remaining(&store_b, &meter_b, "plan111", &key.id, 500)
        .await
        .unwrap();
    let report = get_usage(&store_a, &meter_a, &query).await.unwrap();
    assert_eq!(report.items[&key.id].last().unwrap().1, Some(500));
}

/// A change that changes nothing (an empty patch) writes nothing: the version every instance
/// watches stays, so none reads the whole store again for it.
#[tokio::test]
async fn a_change_that_changes_nothing_keeps_the_version() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder().connect(&server.url()).await.unwrap();
    let plan = store.create_usage_plan(prod_plan()).await.unwrap();
    let before = store.version().await.unwrap();
    let same = store.update_usage_plan(&plan.id, &[]).await.unwrap();
    assert_eq!(same, plan);
    assert_eq!(store.version().await.unwrap(), before);
    store
        .update_usage_plan(
            &plan.id,
            &[PatchOperation::replace("/description", "changed")],
        )
        .await
        .unwrap();
    assert!(store.version().await.unwrap() > before);
}
