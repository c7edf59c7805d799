//! Running usage plans: reports, update-usage, CSV import, management paging, metrics (tracing: tests/layer/tracing.rs).

mod common;
#[path = "support/metrics.rs"]
mod metrics_support;

use std::time::Duration;

use common::*;
use http::Method;
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::{ApiKeyQuery, Management, PageRequest};
use tower_usage_plans::usage::{get_usage, import_csv, update_usage, UsageError, UsageQuery};
use tower_usage_plans::MemoryStore;

fn day(y: u32, m: u32, d: u32) -> Date {
    Date::new(y, m, d).unwrap()
}

#[tokio::test]
async fn memory_store_passes_the_management_suite() {
    tower_usage_plans::testing::manage::management(&MemoryStore::new()).await;
}

#[tokio::test]
async fn get_usage_reports_what_requests_used_day_by_day() {
    let app = app();
    for _ in 0..3 {
        assert_eq!(
            send(&app.router, Method::GET, "/items", Some(FREE))
                .await
                .status,
            200
        );
    }
    // The next day (2024-03-11): two more.
    app.clock.advance(Duration::from_secs(86_400));
    for _ in 0..2 {
        assert_eq!(
            send(&app.router, Method::GET, "/items", Some(FREE))
                .await
                .status,
            200
        );
    }
    let q = UsageQuery::new("plan111", day(2024, 3, 9), day(2024, 3, 11));
    let report = get_usage(&app.store, &app.meter, &q).await.unwrap();
    assert_eq!(
        report.items["key111aaa"],
        [(0, Some(1000)), (3, Some(997)), (2, Some(998))],
        "a DAY quota: each day's remaining is that day's"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["usagePlanId"], "plan111");
    assert_eq!(json["startDate"], "2024-03-09");
    assert_eq!(json["items"]["key111aaa"][1], serde_json::json!([3, 997]));

    // One key, by keyId; a key not in the plan is refused by name.
    let one = get_usage(&app.store, &app.meter, &q.clone().key("key111aaa"))
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    let err = get_usage(&app.store, &app.meter, &q.clone().key("key222bbb"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key222bbb"), "{err}");
}

#[tokio::test]
async fn get_usage_refuses_bad_ranges_limits_and_plans() {
    let app = app();
    let cases = [
        (
            UsageQuery::new("plan111", day(2024, 1, 1), day(2024, 3, 31)),
            "at most 90 days",
        ),
        (
            UsageQuery::new("plan111", day(2024, 3, 2), day(2024, 3, 1)),
            "before the start date",
        ),
        (
            UsageQuery::new("nope", day(2024, 3, 1), day(2024, 3, 1)),
            "\"nope\"",
        ),
        (
            UsageQuery {
                page: PageRequest::first(0),
                ..UsageQuery::new("plan111", day(2024, 3, 1), day(2024, 3, 1))
            },
            "limit",
        ),
        (
            UsageQuery {
                page: PageRequest::first(10_001),
                ..UsageQuery::new("plan111", day(2024, 3, 1), day(2024, 3, 1))
            },
            "limit",
        ),
    ];
    for (q, says) in cases {
        let err = get_usage(&app.store, &app.meter, &q).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err} should say {says}");
    }
    // 90 days is fine.
    let q = UsageQuery::new("plan111", day(2024, 1, 1), day(2024, 3, 30));
    assert_eq!(
        get_usage(&app.store, &app.meter, &q).await.unwrap().items["key111aaa"].len(),
        90
    );
}

#[tokio::test]
async fn get_usage_pages_by_key() {
    let app = app();
    for i in 0..5 {
        let k = app
            .store
            .create_api_key(tower_usage_plans::store::NewApiKey::named(format!("k{i}")))
            .await
            .unwrap();
        app.store
            .create_usage_plan_key("plan222", &k.id)
            .await
            .unwrap();
    }
    let mut q = UsageQuery::new("plan222", day(2024, 3, 10), day(2024, 3, 10));
    q.page = PageRequest::first(2);
    let mut seen = Vec::new();
    loop {
        let r = get_usage(&app.store, &app.meter, &q).await.unwrap();
        assert!(r.items.len() <= 2);
        seen.extend(r.items.keys().cloned());
        match r.position {
            Some(p) => q.page.position = Some(p),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "every key of the plan once: {seen:?}");
}

#[tokio::test]
async fn update_usage_shows_in_the_next_report_and_the_next_ratelimit_header() {
    let app = app();
    let a = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert!(
        a.header("ratelimit").unwrap().contains("\"day\";r=999"),
        "{:?}",
        a.header("ratelimit")
    );
    let op = PatchOperation::replace("/remaining", "5000");
    update_usage(&app.store, &app.meter, "plan111", "key111aaa", &[op])
        .await
        .unwrap();
    let b = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert!(
        b.header("ratelimit").unwrap().contains("\"day\";r=4999"),
        "{:?}",
        b.header("ratelimit")
    );
    let q = UsageQuery::new("plan111", day(2024, 3, 10), day(2024, 3, 10));
    let r = get_usage(&app.store, &app.meter, &q).await.unwrap();
    assert_eq!(r.items["key111aaa"], [(2, Some(4999))]);
    // It lasts until the window ends: the next day is the plan's 1000 again.
    app.clock.advance(Duration::from_secs(86_400));
    let c = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert!(c.header("ratelimit").unwrap().contains("\"day\";r=999"));

    // Bad input changes nothing.
    for (plan, key, value, says) in [
        ("plan111", "key111aaa", "-5", "whole number"),
        ("plan111", "key111aaa", "lots", "whole number"),
        ("nope", "key111aaa", "5", "\"nope\""),
        ("plan111", "nope", "5", "\"nope\""),
    ] {
        let op = PatchOperation::replace("/remaining", value);
        let err = update_usage(&app.store, &app.meter, plan, key, &[op])
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    let d = send(&app.router, Method::GET, "/items", Some(FREE)).await;
    assert!(d.header("ratelimit").unwrap().contains("\"day\";r=998"));
}

#[tokio::test]
async fn csv_import_lands_good_rows_and_warns_of_bad_ones() {
    let store = article_store();
    let file = "NAME,Description,key,UsagePlanIds,enabled,extra\n\
                New,first,newvalue-0123456789abcdef,\"plan111\",TRUE,x\n\
                Again,,aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789,,false,x\n\
                Broken,,short,,,x\n\
                NoPlan,,othervalue-0123456789abc,planZ,,x\n\
                Flag,,flagvalue-0123456789abcde,,maybe,x\n\
                Fields,only three\n";
    let r = import_csv(&store, file.as_bytes(), false).await.unwrap();
    assert_eq!(r.ids.len(), 2, "{r:?}");
    assert_eq!(r.ids[1], "key111aaa", "the same value overwrites its key");
    let again = store.get_api_key("key111aaa", false).await.unwrap();
    assert_eq!(again.name, "Again");
    assert!(!again.enabled);
    let warned: Vec<_> = r
        .warnings
        .iter()
        .map(|w| (w.line, w.column.as_str()))
        .collect();
    assert_eq!(
        warned,
        [(4, "key"), (5, "UsagePlanIds"), (6, "enabled"), (7, "*")]
    );
    for w in &r.warnings {
        assert!(
            !w.message.contains("short"),
            "a warning never repeats a value"
        );
    }

    // fail_on_warnings refuses the whole file; a file without Key refuses too; nothing changes.
    let store = article_store();
    let before = store.to_config();
    let err = import_csv(&store, file.as_bytes(), true).await.unwrap_err();
    assert!(err.to_string().contains("line 4"), "{err}");
    let err = import_csv(
        &store,
        "Name,Value\nA,aBcDeFgHiJkLmNoPqRsTuVwXyZ\n".as_bytes(),
        false,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, UsageError::Invalid(_)));
    assert!(err.to_string().contains("column Key is missing"), "{err}");
    assert_eq!(store.to_config(), before);
}

#[tokio::test]
async fn management_lists_a_plans_keys_and_hides_values() {
    let store = article_store();
    let page = store.get_api_keys(&ApiKeyQuery::default()).await.unwrap();
    assert!(page.items.iter().all(|k| k.value.is_none()));
    let keys = store
        .get_usage_plan_keys("plan111", &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(keys.items[0].id, "key111aaa");
}

#[test]
fn metrics_count_each_outcome_by_route_template_without_key_labels() {
    let handle = metrics_support::with_metrics(async {
        let app = app();
        assert_eq!(
            send(&app.router, Method::GET, "/items/42", Some(FREE))
                .await
                .status,
            200
        );
        assert_eq!(
            send(&app.router, Method::GET, "/items/43", None)
                .await
                .status,
            403
        );
        assert_eq!(
            send(&app.router, Method::GET, "/health", None).await.status,
            200
        );
        // A path no route of the layer names: counted under `*`, never under its own path.
        assert_eq!(
            send(&app.router, Method::GET, "/nowhere/7", Some(FREE))
                .await
                .status,
            404
        );
        for _ in 0..5 {
            send(&app.router, Method::POST, "/orders", Some(FREE)).await;
        }
        // Methods outside the standard nine share one label: a client cannot make series.
        for m in [&b"PURGE"[..], b"BREW", b"X-ANYTHING"] {
            let m = Method::from_bytes(m).unwrap();
            send(&app.router, m, "/items/42", Some(FREE)).await;
        }
        // A CORS preflight passes uncounted against any key, counted as bypassed.
        let preflight = http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/orders")
            .header("origin", "https://example.com")
            .header("access-control-request-method", "POST")
            .body(axum::body::Body::empty())
            .unwrap();
        send_req(&app.router, preflight).await;
        assert_eq!(
            send(&app.router, Method::POST, "/orders", Some(FREE))
                .await
                .status,
            429
        );
    });
    let text = handle.render();
    let count = |outcome: &str, method: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("usage_plans_requests_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains(&format!("method=\"{method}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.to_owned())
    };
    assert_eq!(
        count("admitted", "GET /items/{id}").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("forbidden", "GET /items/{id}").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("bypassed", "GET /health").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("admitted", "POST /orders").as_deref(),
        Some("5"),
        "{text}"
    );
    assert_eq!(
        count("throttled", "POST /orders").as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(text.contains("plan=\"plan111\""));
    assert!(text.contains(&format!("stage=\"{API}:{STAGE}\"")), "{text}");
    assert!(
        text.contains("usage_plans_request_duration_seconds"),
        "{text}"
    );
    assert!(
        text.contains("usage_plans_inner_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("status=\"4xx\""), "{text}");
    // Each answer is timed under its route, method and status class; the inner service only
    // when it was called.
    let series = |name: &str, method: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains(&format!("method=\"{method}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.to_owned())
    };
    let request = "usage_plans_request_duration_seconds_count{";
    let inner = "usage_plans_inner_duration_seconds_count{";
    assert_eq!(series(request, "POST /orders", "2xx").as_deref(), Some("5"));
    assert_eq!(series(inner, "POST /orders", "2xx").as_deref(), Some("5"));
    assert_eq!(series(request, "POST /orders", "4xx").as_deref(), Some("1"));
    assert_eq!(series(inner, "POST /orders", "4xx"), None, "{text}");
    let other: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("usage_plans_requests_total{")
                && l.contains("method=\"_OTHER /items/{id}\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(other, 3, "{text}");
    assert!(!text.contains("PURGE") && !text.contains("BREW"), "{text}");
    assert_eq!(
        count("bypassed", "OPTIONS /orders").as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(
        !text.contains("key111aaa") && !text.contains(FREE),
        "no key in a label:\n{text}"
    );
    assert!(!text.contains("/items/42"), "never the raw path:\n{text}");
    assert_eq!(count("admitted", "GET *").as_deref(), Some("1"), "{text}");
    assert!(!text.contains("/nowhere"), "never the raw path:\n{text}");
}
