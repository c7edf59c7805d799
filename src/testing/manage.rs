//! The conformance suite for [`Management`] implementations: what the usage reports and the admin
//! API rely on a store to answer.
//!
//! Run [`management`] on an empty store. It creates keys and plans through the trait itself and
//! checks:
//! - pages come in order of id, hold at most `limit` items, and following `position` visits each
//!   item once; the last page has no `position`;
//! - a limit of 0 or above [`MAX_LIMIT`] is refused with an error naming `limit`, a page with the
//!   default limit holds [`DEFAULT_LIMIT`](crate::store::DEFAULT_LIMIT) items;
//! - `nameQuery` is a prefix, `customerId` an exact match, values only with `includeValues`;
//! - the plans of one key (`keyId`), a plan's keys, and unknown ids answer
//!   [`StoreError::NotFound`];
//! - a key in two plans on one stage is refused, and nothing changes;
//! - an import overwrites a value imported before (same id), links plans, reports a row with an
//!   unknown plan as a warning naming its line and column, and with `fail_on_warnings` refuses
//!   the whole import and changes nothing;
//! - tags ([`tags`](crate::tags)): set on creation, merged by `tag_resource` (a key given again takes the new
//!   value), removed by `untag_resource` (an absent key ignored), read by `get_tags` and shown by
//!   `get_api_key` and `get_usage_plan`, for keys and plans alike; a tag that breaks AWS's rules
//!   or this crate's grammar, or more than 50, is refused with [`StoreError::Invalid`] naming it,
//!   on creation too, and changes nothing; an unknown id is [`StoreError::NotFound`].
//!
//! Each check panics with a message naming the promise broken.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::testing::manage;
//! use tower_usage_plans::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! manage::management(&MemoryStore::new()).await;
//! # }
//! ```

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::model::{ApiKeyValue, ApiStage, UsagePlan};
use crate::store::{
    ApiKeyQuery, ImportKey, ImportWarning, Management, NewApiKey, PageRequest, Resource,
    UsagePlanQuery, MAX_LIMIT,
};

fn key(name: &str, customer: Option<&str>, value: &str) -> NewApiKey {
    let mut new = NewApiKey::named(name);
    new.customer_id = customer.map(str::to_owned);
    new.value = Some(ApiKeyValue::new(value).expect("a valid value"));
    new
}

fn plan(id: &str, stage: &str) -> UsagePlan {
    let mut plan = UsagePlan::new(id, format!("{id} plan"));
    plan.api_stages.push(ApiStage::new("api1", stage));
    plan
}

/// Runs the suite on an empty store. See the [module docs](self).
pub async fn management<S: Management>(store: &S) {
    // 30 keys: "Client-00".."Client-24" (customer "c1" for even ones), "Other-0".."Other-4".
    let mut ids = Vec::new();
    let mut created = Vec::new();
    for i in 0..30 {
        let (name, customer) = if i < 25 {
            (format!("Client-{i:02}"), (i % 2 == 0).then_some("c1"))
        } else {
            (format!("Other-{}", i - 25), None)
        };
        let value = format!("conformance-value-{i:04}-xxxxxxxx");
        let k = store
            .create_api_key(key(&name, customer, &value))
            .await
            .expect("create_api_key must accept a new key");
        ids.push(k.id.clone());
        created.push(k.id);
    }
    ids.sort();

    // Paging visits every key once, in order.
    let mut seen = Vec::new();
    let mut query = ApiKeyQuery {
        page: PageRequest::first(7),
        ..ApiKeyQuery::default()
    };
    loop {
        let page = store.get_api_keys(&query).await.expect("get_api_keys");
        assert!(
            page.items.len() <= 7,
            "a page must hold at most `limit` items"
        );
        seen.extend(page.items.iter().map(|k| k.id.clone()));
        assert!(
            page.items.iter().all(|k| k.value.is_none()),
            "values must be hidden unless include_values"
        );
        match page.position {
            Some(p) => query.page.position = Some(p),
            None => break,
        }
    }
    assert_eq!(
        seen, ids,
        "following position must visit every key once, in order of id"
    );

    let page = store
        .get_api_keys(&ApiKeyQuery::default())
        .await
        .expect("get_api_keys");
    assert_eq!(page.items.len(), 25, "the default limit must be 25");

    for bad in [0, MAX_LIMIT + 1, 10_001] {
        let err = store
            .get_api_keys(&ApiKeyQuery {
                page: PageRequest::first(bad),
                ..ApiKeyQuery::default()
            })
            .await
            .expect_err("a limit out of range must be refused");
        assert!(
            err.to_string().contains("limit"),
            "the error must name `limit`: {err}"
        );
    }

    // Filters.
    let filtered = |name_query: Option<&str>, customer: Option<&str>, values: bool| ApiKeyQuery {
        page: PageRequest::first(MAX_LIMIT),
        name_query: name_query.map(str::to_owned),
        customer_id: customer.map(str::to_owned),
        include_values: values,
    };
    let others = store
        .get_api_keys(&filtered(Some("Other"), None, true))
        .await
        .expect("get_api_keys");
    assert_eq!(
        others.items.len(),
        5,
        "nameQuery must be a prefix of the name"
    );
    assert!(
        others.items.iter().all(|k| k.value.is_some()),
        "include_values must show values"
    );
    let c1 = store
        .get_api_keys(&filtered(Some("Client-1"), Some("c1"), false))
        .await
        .expect("get_api_keys");
    let names: Vec<_> = c1.items.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(
        names.len(),
        5,
        "nameQuery and customerId must both apply: {names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("Client-1")));

    // Plans and their keys.
    store
        .create_usage_plan(plan("planA", "prod"))
        .await
        .expect("create_usage_plan");
    store
        .create_usage_plan(plan("planB", "prod"))
        .await
        .expect("create_usage_plan");
    store
        .create_usage_plan(plan("planC", "dev"))
        .await
        .expect("create_usage_plan");
    for id in &ids[..12] {
        store
            .create_usage_plan_key("planA", id)
            .await
            .expect("create_usage_plan_key");
    }
    store
        .create_usage_plan_key("planC", &ids[0])
        .await
        .expect("a key may be in plans on different stages");
    let err = store
        .create_usage_plan_key("planB", &ids[0])
        .await
        .expect_err("a key in two plans on one stage must be refused");
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    let mut plan_keys = Vec::new();
    let mut page = PageRequest::first(5);
    loop {
        let got = store
            .get_usage_plan_keys("planA", &page)
            .await
            .expect("get_usage_plan_keys");
        plan_keys.extend(got.items.into_iter().map(|k| k.id));
        match got.position {
            Some(p) => page.position = Some(p),
            None => break,
        }
    }
    assert_eq!(plan_keys, ids[..12], "a plan's keys, paged, in order of id");

    let of_key = store
        .get_usage_plans(&UsagePlanQuery {
            key_id: Some(ids[0].clone()),
            ..UsagePlanQuery::default()
        })
        .await
        .expect("get_usage_plans");
    let plan_ids: Vec<_> = of_key.items.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(plan_ids, ["planA", "planC"], "the plans of one key");
    let all = store
        .get_usage_plans(&UsagePlanQuery {
            page: PageRequest::first(2),
            ..UsagePlanQuery::default()
        })
        .await
        .expect("get_usage_plans");
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.position.as_deref(), Some("planC"));

    // Unknown ids.
    for err in [
        store
            .get_usage_plan_keys("nope", &PageRequest::default())
            .await
            .err(),
        store
            .get_usage_plans(&UsagePlanQuery {
                key_id: Some("nope".into()),
                ..UsagePlanQuery::default()
            })
            .await
            .err(),
        store.get_api_key("nope", false).await.err(),
        store.get_usage_plan("nope").await.err(),
        store.create_usage_plan_key("planA", "nope").await.err(),
    ] {
        let err = err.expect("an unknown id must be an error");
        assert!(
            matches!(err, StoreError::NotFound { ref id, .. } if id == "nope"),
            "an unknown id must be NotFound naming it: {err}"
        );
    }

    // Import: an overwrite, a new key, a row with an unknown plan.
    let row = |line, value: &str, name: &str, plans: &[&str]| ImportKey {
        line,
        value: ApiKeyValue::new(value).expect("a valid value"),
        name: name.into(),
        description: None,
        enabled: true,
        usage_plan_ids: plans.iter().map(|p| (*p).to_owned()).collect(),
    };
    let rows = vec![
        row(2, "conformance-value-0029-xxxxxxxx", "Renamed", &["planC"]),
        row(3, "imported-value-000000000001", "New", &["planA"]),
        row(4, "imported-value-000000000002", "Bad", &["planZ"]),
    ];
    let before = store
        .get_api_keys(&filtered(None, None, false))
        .await
        .expect("get_api_keys");
    let err = store
        .import_api_keys(rows.clone(), Vec::new(), true)
        .await
        .expect_err("fail_on_warnings must refuse a file with a warning");
    assert!(
        err.to_string().contains("line 4") && err.to_string().contains("planZ"),
        "the refusal must name the line and the plan: {err}"
    );
    let after = store
        .get_api_keys(&filtered(None, None, false))
        .await
        .expect("get_api_keys");
    assert_eq!(before, after, "a refused import must change nothing");

    let given = vec![ImportWarning {
        line: 5,
        column: "Key".into(),
        message: "missing".into(),
    }];
    let result = store
        .import_api_keys(rows, given, false)
        .await
        .expect("an import without fail_on_warnings lands the good rows");
    assert_eq!(result.ids.len(), 2, "two rows land: {result:?}");
    assert_eq!(
        result.ids[0], created[29],
        "a value imported again keeps its key's id"
    );
    let lines: Vec<_> = result
        .warnings
        .iter()
        .map(|w| (w.line, w.column.as_str()))
        .collect();
    assert_eq!(lines, [(4, "UsagePlanIds"), (5, "Key")], "warnings by line");
    let renamed = store
        .get_api_key(&created[29], false)
        .await
        .expect("get_api_key");
    assert_eq!(renamed.name, "Renamed", "an import overwrites the name");
    let plans = store
        .get_usage_plans(&UsagePlanQuery {
            key_id: Some(result.ids[1].clone()),
            ..UsagePlanQuery::default()
        })
        .await
        .expect("get_usage_plans");
    assert_eq!(
        plans.items[0].id, "planA",
        "an import links the key to its plans"
    );

    // Deletes.
    store
        .delete_usage_plan_key("planA", &ids[1])
        .await
        .expect("delete_usage_plan_key");
    store.delete_api_key(&ids[2]).await.expect("delete_api_key");
    let left = store
        .get_usage_plan_keys("planA", &PageRequest::first(MAX_LIMIT))
        .await
        .expect("get_usage_plan_keys");
    assert!(
        !left.items.iter().any(|k| k.id == ids[1] || k.id == ids[2]),
        "unlinked and deleted keys must leave the plan's keys"
    );
    assert_eq!(left.items.len(), 11);

    tags(store).await;
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The tag operations on one key and one plan (part of [`management`]; runs on any store,
/// empty or not, and adds the key `Tagged` and the plan `planTags`).
pub async fn tags<S: Management>(store: &S) {
    let mut new = NewApiKey::named("Tagged");
    new.tags = map(&[("team", "billing"), ("usageplans:soft-quota", "80")]);
    let key = store
        .create_api_key(new)
        .await
        .expect("create_api_key with tags");
    let mut with_tags = plan("planTags", "tags");
    with_tags.tags = map(&[("tier", "free")]);
    store
        .create_usage_plan(with_tags)
        .await
        .expect("create_usage_plan with tags");
    let resources = [
        (
            Resource::ApiKey(key.id.clone()),
            map(&[("team", "billing"), ("usageplans:soft-quota", "80")]),
        ),
        (
            Resource::UsagePlan("planTags".into()),
            map(&[("tier", "free")]),
        ),
    ];
    for (resource, created) in &resources {
        let get = || async {
            store
                .get_tags(resource)
                .await
                .unwrap_or_else(|e| panic!("get_tags {resource:?}: {e}"))
        };
        assert_eq!(
            get().await,
            *created,
            "tags given on creation, {resource:?}"
        );
        let shown = match resource {
            Resource::ApiKey(id) => {
                store
                    .get_api_key(id, false)
                    .await
                    .expect("get_api_key")
                    .tags
            }
            Resource::UsagePlan(id) => store.get_usage_plan(id).await.expect("get_usage_plan").tags,
        };
        assert_eq!(
            shown, *created,
            "get_api_key / get_usage_plan show the tags"
        );

        store
            .tag_resource(resource, map(&[("team", "search"), ("env", "prod eu")]))
            .await
            .expect("tag_resource");
        let mut want = created.clone();
        want.extend(map(&[("team", "search"), ("env", "prod eu")]));
        assert_eq!(get().await, want, "tag_resource adds, and replaces a value");

        store
            .untag_resource(resource, &["team".to_owned(), "absent".to_owned()])
            .await
            .expect("untag_resource");
        want.remove("team");
        assert_eq!(
            get().await,
            want,
            "untag_resource removes, ignoring absent keys"
        );

        for (bad, says) in [
            (map(&[("aws:owner", "x")]), "aws:"),
            (map(&[("usageplans:Soft_Quota", "1")]), "kebab-case"),
            (map(&[("ok", "a,b")]), "letters, digits"),
            (map(&[("", "x")]), "1 to 128"),
        ] {
            let err = store
                .tag_resource(resource, bad.clone())
                .await
                .expect_err("a bad tag must be refused");
            assert!(
                matches!(err, StoreError::Invalid(_)) && err.to_string().contains(says),
                "{bad:?} on {resource:?}: {err} should say {says:?}"
            );
        }
        let fifty: BTreeMap<String, String> = (0..50)
            .map(|i| (format!("n{i:02}"), String::new()))
            .collect();
        let err = store
            .tag_resource(resource, fifty)
            .await
            .expect_err("more than 50 tags must be refused");
        assert!(err.to_string().contains("at most 50"), "{err}");
        assert_eq!(get().await, want, "refused tag changes change nothing");

        let gone = match resource {
            Resource::ApiKey(_) => Resource::ApiKey("no-such-key".into()),
            Resource::UsagePlan(_) => Resource::UsagePlan("no-such-plan".into()),
        };
        let one = map(&[("a", "b")]);
        for err in [
            store
                .tag_resource(&gone, one.clone())
                .await
                .expect_err("tag unknown"),
            store
                .untag_resource(&gone, &["a".to_owned()])
                .await
                .expect_err("untag unknown"),
            store.get_tags(&gone).await.expect_err("get_tags unknown"),
        ] {
            assert!(
                matches!(err, StoreError::NotFound { .. }),
                "{gone:?}: {err}"
            );
        }
    }

    // Bad tags on creation: refused, and nothing is created.
    let before = store
        .get_api_keys(&ApiKeyQuery {
            page: PageRequest::first(MAX_LIMIT),
            ..ApiKeyQuery::default()
        })
        .await
        .expect("get_api_keys");
    let mut bad = NewApiKey::named("BadTags");
    bad.tags = map(&[("aws:x", "y")]);
    let err = store
        .create_api_key(bad)
        .await
        .expect_err("bad tags on a new key");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let mut bad = plan("planBadTags", "bad");
    bad.tags = map(&[("usageplans:", "y")]);
    let err = store
        .create_usage_plan(bad)
        .await
        .expect_err("bad tags on a new plan");
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let after = store
        .get_api_keys(&ApiKeyQuery {
            page: PageRequest::first(MAX_LIMIT),
            ..ApiKeyQuery::default()
        })
        .await
        .expect("get_api_keys");
    assert_eq!(before, after, "a key refused for its tags was not created");
    assert!(
        matches!(
            store.get_usage_plan("planBadTags").await,
            Err(StoreError::NotFound { .. })
        ),
        "a plan refused for its tags was not created"
    );
}
