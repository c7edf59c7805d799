//! The store's own tests: what management keeps, and many changes against a plain model.

use std::collections::BTreeMap;
use std::mem::size_of;

use super::*;
use crate::model::ApiStage;

fn value(i: usize) -> ApiKeyValue {
    ApiKeyValue::new(format!("testvalue{i:031}")).unwrap()
}

fn plan(id: &str, api: &str) -> UsagePlan {
    let mut p = UsagePlan::new(id, id);
    p.api_stages.push(ApiStage::new(api, "prod"));
    p
}

fn plan_of(store: &MemoryStore, value: &ApiKeyValue, stage: &StageRef) -> Option<String> {
    store
        .grant(value.expose(), stage)
        .and_then(|g| g.plan_id().map(str::to_owned))
}

#[test]
fn a_request_reads_one_small_record() {
    // The index's slot: the value's pointer, the key id's, the plans' and the flag.
    assert_eq!(size_of::<(Arc<str>, Hot)>(), 48);
}

#[test]
fn a_key_comes_back_as_it_was_stored() {
    let store = MemoryStore::new();
    let mut full = ApiKey::new("full", "x".repeat(300), value(1));
    full.description = Some("d".into());
    full.enabled = false;
    full.created_date = Some(0);
    full.last_updated_date = Some(-5);
    full.customer_id = Some("c".into());
    full.tags.insert("t".into(), "v".into());
    let long = ApiKey::new(
        "long",
        "ü".repeat(60),
        ApiKeyValue::new("v".repeat(128)).unwrap(),
    );
    let bare = ApiKey::new("bare", "", ApiKeyValue::new("w".repeat(20)).unwrap());
    for key in [&full, &long, &bare] {
        store.put_api_key(key.clone()).unwrap();
        assert_eq!(store.key(&key.id).as_ref(), Some(key));
    }
    let mut dated = bare.clone();
    dated.created_date = Some(i64::MIN);
    store.put_api_key(dated.clone()).unwrap();
    assert_eq!(store.key("bare"), Some(dated.clone()));
    assert_eq!(store.to_config().api_keys, vec![dated, full, long]);
}

#[test]
fn links_keep_their_order_and_survive_plan_changes() {
    let store = MemoryStore::new();
    store.insert_plan(plan("b", "api1")).unwrap();
    store.insert_plan(plan("a", "api2")).unwrap();
    for i in 0..3 {
        store
            .put_api_key(ApiKey::new(format!("k{i}"), "n", value(i)))
            .unwrap();
    }
    // k0 is linked to b then a; k1 to a only; k2 to none.
    store.link("b", "k0").unwrap();
    store.link("a", "k0").unwrap();
    store.link("a", "k1").unwrap();
    let any = StageRef::any();
    assert_eq!(plan_of(&store, &value(0), &any).as_deref(), Some("b"));
    assert_eq!(plan_of(&store, &value(1), &any).as_deref(), Some("a"));
    assert_eq!(plan_of(&store, &value(2), &any), None);
    let ids = |plan: &str| -> Vec<String> { store.to_config().usage_plan_keys[plan].clone() };
    assert_eq!(ids("a"), ["k0", "k1"]);
    assert_eq!(ids("b"), ["k0"]);

    // A plan moved onto the other's stage conflicts for k0, and changes nothing.
    let err = store.put_usage_plan(plan("a", "api1")).unwrap_err();
    assert!(
        err.to_string().contains("\"k0\" is in usage plan \"b\""),
        "{err}"
    );
    assert_eq!(store.plan("a").unwrap().api_stages[0].api_id, "api2");
    // A change that conflicts with nothing reaches every key on the plan.
    store.put_usage_plan(plan("a", "api3")).unwrap();
    let api3 = StageRef::new("api3", "prod");
    assert_eq!(plan_of(&store, &value(0), &api3).as_deref(), Some("a"));
    assert_eq!(plan_of(&store, &value(1), &api3).as_deref(), Some("a"));

    // Without b, k0 and k1 hold the same plans: one shared list.
    store.remove_plan("b").unwrap();
    assert_eq!(plan_of(&store, &value(0), &any).as_deref(), Some("a"));
    {
        let mut data = store.inner.data.lock();
        data.drop_unused_combos();
        assert_eq!(data.combos_len(), 1);
    }
    let config = store.to_config();
    assert_eq!(config.usage_plan_keys.len(), 1);
    assert_eq!(config.usage_plan_keys["a"], ["k0", "k1"]);

    // Unlinking every key keeps the plan's (empty) list in the configuration.
    store.unlink("a", "k0").unwrap();
    store.unlink("a", "k1").unwrap();
    assert!(store.unlink("a", "k1").is_err());
    assert!(store.unlink("a", "nobody").is_err());
    assert_eq!(plan_of(&store, &value(0), &any), None);
    let config = store.to_config();
    assert_eq!(config.usage_plan_keys["a"], Vec::<String>::new());
    assert_eq!(
        MemoryStore::from_config(config.clone())
            .unwrap()
            .to_config(),
        config
    );
}

#[test]
fn replace_all_keeps_keys_that_stay() {
    let store = MemoryStore::new();
    store.insert_plan(plan("p", "api")).unwrap();
    for i in 0..100 {
        store
            .put_api_key(ApiKey::new(format!("k{i}"), "n", value(i)))
            .unwrap();
        store.link("p", &format!("k{i}")).unwrap();
    }
    let mut config = store.to_config();
    // Half the keys go, one changes its value, one changes its id.
    config.api_keys.retain(|k| k.id.as_str() < "k5");
    config.api_keys[0].value = value(1000);
    config.api_keys[1].id = "renamed".into();
    for keys in config.usage_plan_keys.values_mut() {
        keys.retain(|k| k.as_str() < "k5" && k != "k1");
    }
    store.replace_all(config.clone()).unwrap();
    let mut want = config.clone();
    want.api_keys.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(store.to_config(), want);
    assert_eq!(store.inner.index.len(), want.api_keys.len());
    let any = StageRef::any();
    let found = |v: &ApiKeyValue| store.grant(v.expose(), &any).map(|g| g.key_id.to_string());
    assert_eq!(found(&value(1000)).as_deref(), Some("k0"));
    assert_eq!(found(&value(0)), None);
    assert_eq!(found(&value(1)).as_deref(), Some("renamed"));
    assert_eq!(found(&value(99)), None);
    assert_eq!(plan_of(&store, &value(10), &any).as_deref(), Some("p"));
    assert_eq!(plan_of(&store, &value(1), &any), None);
    assert!(store.key("k1").is_none());
    assert!(store.key("renamed").is_some());
}

/// Many keys put, changed, relinked and deleted, checked against a plain model.
#[test]
fn many_changes_agree_with_a_model() {
    let store = MemoryStore::new();
    for p in ["p0", "p1", "p2"] {
        store.insert_plan(plan(p, p)).unwrap();
    }
    let mut model: BTreeMap<String, (ApiKey, Vec<&str>)> = BTreeMap::new();
    let mut seed = 12345u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for step in 0..20_000 {
        let id = format!("key{}", next(2000));
        match next(6) {
            0 | 1 => {
                let v = value(step + 10_000);
                let mut key = ApiKey::new(id.clone(), format!("n{step}"), v);
                key.enabled = step % 3 != 0;
                store.put_api_key(key.clone()).unwrap();
                let plans = model.remove(&id).map(|(_, p)| p).unwrap_or_default();
                model.insert(id, (key, plans));
            }
            2 => {
                let gone = store.remove_key(&id).is_ok();
                assert_eq!(gone, model.remove(&id).is_some());
            }
            3 | 4 => {
                let p = ["p0", "p1", "p2"][next(3)];
                let linked = store.link(p, &id).is_ok();
                let want = model.get_mut(&id).is_some_and(|(_, ps)| {
                    !ps.contains(&p) && {
                        ps.push(p);
                        true
                    }
                });
                assert_eq!(linked, want);
            }
            _ => {
                let p = ["p0", "p1", "p2"][next(3)];
                let unlinked = store.unlink(p, &id).is_ok();
                let want = model.get_mut(&id).is_some_and(|(_, ps)| {
                    let before = ps.len();
                    ps.retain(|x| *x != p);
                    ps.len() < before
                });
                assert_eq!(unlinked, want);
            }
        }
    }
    let keys: Vec<ApiKey> = model.values().map(|(k, _)| k.clone()).collect();
    assert_eq!(store.to_config().api_keys, keys);
    assert_eq!(store.inner.index.len(), model.len());
    for (id, (key, plans)) in &model {
        assert_eq!(store.key(id).as_ref(), Some(key));
        assert_eq!(
            plan_of(&store, &key.value, &StageRef::any()).as_deref(),
            plans.first().copied()
        );
    }
    for p in ["p0", "p1", "p2"] {
        let want: Vec<&str> = model
            .iter()
            .filter(|(_, (_, ps))| ps.contains(&p))
            .map(|(id, _)| id.as_str())
            .collect();
        let got = store
            .to_config()
            .usage_plan_keys
            .get(p)
            .cloned()
            .unwrap_or_default();
        assert_eq!(got, want);
    }
    assert!(store.inner.data.lock().combos_len() < 64);
}

#[test]
fn a_value_is_kept_once_and_failed_changes_change_nothing() {
    let store = MemoryStore::new();
    store.insert_plan(plan("p", "api")).unwrap();
    store.put_api_key(ApiKey::new("k0", "n", value(0))).unwrap();
    store.link("p", "k0").unwrap();
    // Renamed and relinked, then the same configuration loaded again: still one allocation.
    store
        .patch_key("k0", &[PatchOperation::replace("/name", "m")])
        .unwrap();
    store.replace_all(store.to_config()).unwrap();
    let shared = |store: &MemoryStore| {
        let data = store.inner.data.lock();
        let cold = &data.keys["k0"];
        let found = store.inner.index.get(value(0).expose()).unwrap();
        Arc::ptr_eq(found.key(), &cold.value) && Arc::strong_count(&cold.value) == 2
    };
    assert!(shared(&store));

    let version = || store.inner.version.load(Ordering::SeqCst);
    let before = (version(), store.to_config());
    let mut dup = ApiKey::new("k1", "n", value(0));
    assert!(matches!(
        store.put_api_key(dup.clone()),
        Err(StoreError::Conflict(_))
    ));
    dup.value = value(1);
    dup.id = String::new();
    assert!(matches!(
        store.put_api_key(dup),
        Err(StoreError::Invalid(_))
    ));
    assert!(store
        .patch_key("k0", &[PatchOperation::replace("/enabled", "maybe")])
        .is_err());
    assert!(store.insert_plan(plan("p", "other")).is_err());
    assert!(store.link("p", "k0").is_err());
    assert!(store.remove_plan("nope").is_err());
    let mut bad = store.to_config();
    bad.usage_plan_keys.insert("nope".into(), vec!["k0".into()]);
    assert!(store.replace_all(bad).is_err());
    assert_eq!((version(), store.to_config()), before);
    assert!(shared(&store));

    store.remove_key("k0").unwrap();
    assert!(version() > before.0);
    assert_eq!(store.inner.index.len(), 0);
}
