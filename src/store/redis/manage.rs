//! [`Management`] for [`RedisStore`]: each change is made on a copy of the store as read, checked
//! by [`MemoryStore`]'s own rules, and written as one script that refuses the write if the store
//! moved meanwhile (then the change is made again on a fresh read). Reads answer from the copy
//! once its version is checked.

use std::collections::BTreeMap;
use std::future::Future;

use crate::config::Config;
use crate::error::StoreError;
use crate::model::{ApiKey, ApiKeyValue, StageRef, UsagePlan};
use crate::patch::PatchOperation;
use crate::store::manage::{
    ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, Management, Page, PageRequest,
    Resource, UsagePlanKey, UsagePlanQuery,
};
use crate::store::{KeyStore, MemoryStore, NewApiKey};

use super::{backend, digest, digest_str, Inner, RedisStore};

/// How many times a change is made again when the store moved under it.
const ATTEMPTS: usize = 24;

/// How long to wait before attempt `attempt` (1 and up) of a change: a random time up to 2 ms
/// doubled per attempt, at most 100 ms ("full jitter"). The 24 attempts then span under two
/// seconds.
fn backoff(attempt: usize) -> std::time::Duration {
    let cap_micros = (2_000u64 << attempt.min(6)).min(100_000);
    // The operating system's random source (getrandom); without it, the whole cap.
    let random = getrandom::u64().unwrap_or(cap_micros);
    std::time::Duration::from_micros(random % (cap_micros + 1))
}

/// Index in the commit script's KEYS of each table.
const KEYS: u8 = 2;
const PLANS: u8 = 3;
const LINKS: u8 = 4;
const VALUES: u8 = 5;

/// One write of a change: set (`Some`) or delete (`None`) a field of a table.
struct Write {
    table: u8,
    field: String,
    value: Option<String>,
}

/// Values to keep sealed: (key id, value).
type Sealed = Vec<(String, ApiKeyValue)>;

fn json<T: serde::Serialize>(item: &T) -> Result<String, StoreError> {
    serde_json::to_string(item).map_err(backend)
}

/// Each table's fields as `config` has them.
fn tables(config: &Config) -> Result<[BTreeMap<String, String>; 3], StoreError> {
    let mut keys = BTreeMap::new();
    for k in &config.api_keys {
        keys.insert(k.id.clone(), json(k)?);
    }
    let mut plans = BTreeMap::new();
    for p in &config.usage_plans {
        plans.insert(p.id.clone(), json(p)?);
    }
    let mut links = BTreeMap::new();
    for (plan, ids) in &config.usage_plan_keys {
        if !ids.is_empty() {
            let mut ids = ids.clone();
            ids.sort_unstable();
            links.insert(plan.clone(), json(&ids)?);
        }
    }
    Ok([keys, plans, links])
}

/// The writes that turn `old` into `new`.
fn diff(old: &Config, new: &Config) -> Result<Vec<Write>, StoreError> {
    let (old, new) = (tables(old)?, tables(new)?);
    let mut writes = Vec::new();
    for ((table, old), new) in [KEYS, PLANS, LINKS].into_iter().zip(&old).zip(&new) {
        for (field, value) in new {
            if old.get(field) != Some(value) {
                writes.push(Write {
                    table,
                    field: field.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for field in old.keys().filter(|f| !new.contains_key(*f)) {
            writes.push(Write {
                table,
                field: field.clone(),
                value: None,
            });
            if table == KEYS {
                writes.push(Write {
                    table: VALUES,
                    field: field.clone(),
                    value: None,
                });
            }
        }
    }
    Ok(writes)
}

/// `value` as the copy holds it: its digest.
fn digested(value: &ApiKeyValue) -> ApiKeyValue {
    let d = digest(value.expose());
    ApiKeyValue::new(digest_str(&d)).expect("a digest in hex is a valid key value")
}

fn copy(store: &MemoryStore) -> Result<(Config, MemoryStore), StoreError> {
    let config = store.to_config();
    let scratch = MemoryStore::from_config(config.clone()).map_err(backend)?;
    Ok((config, scratch))
}

impl Inner {
    /// Writes `writes` if the store is still at `version`: the new version, or `None` if it
    /// moved.
    async fn commit(&self, version: u64, writes: Vec<Write>) -> Result<Option<u64>, StoreError> {
        let n = &self.names;
        let mut inv = self.commit.prepare_invoke();
        inv.key(&n.version)
            .key(&n.keys)
            .key(&n.plans)
            .key(&n.links)
            .key(&n.values)
            .arg(version);
        for w in writes {
            match w.value {
                Some(v) => inv.arg("S").arg(w.table).arg(w.field).arg(v),
                None => inv.arg("D").arg(w.table).arg(w.field),
            };
        }
        let (done, now): (u8, u64) = self
            .run(|conn| async move { conn.invoke(&inv).await })
            .await?;
        Ok((done == 1).then_some(now))
    }

    /// The sealed values of these keys, opened (`None` where none is kept).
    async fn values(&self, ids: &[String]) -> Result<Vec<Option<ApiKeyValue>>, StoreError> {
        let Some(sealer) = &self.sealer else {
            return Ok(vec![None; ids.len()]);
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(&self.names.values).arg(ids);
        let sealed: Vec<Option<String>> = self
            .run(|conn| async move { conn.query(&cmd).await })
            .await?;
        ids.iter()
            .zip(sealed)
            .map(|(id, s)| s.map(|s| sealer.open(id, &s)).transpose())
            .collect()
    }
}

impl RedisStore {
    /// Makes a change: `op` on a copy of the store as read now, then one write of what changed,
    /// made again on a fresh read if the store moved meanwhile.
    /// Runs `op` on a copy of the store and commits what it changed if the store did not move
    /// meanwhile; else reads again and retries, after a random backoff ([`backoff`]), up to
    /// [`ATTEMPTS`] times.
    async fn change<T, F, Fut>(&self, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(MemoryStore) -> Fut,
        Fut: Future<Output = Result<(T, Sealed), StoreError>>,
    {
        let inner = &*self.inner;
        let _held = inner.sync.lock().await;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Another instance committed first: wait a random while, longer each time, so
                // that writers on several instances stop colliding.
                tokio::time::sleep(backoff(attempt)).await;
            }
            let snap = inner.refresh_held().await?;
            let (old, scratch) = copy(&snap.store)?;
            let (out, values) = op(scratch.clone()).await?;
            let new = scratch.to_config();
            let mut writes = diff(&old, &new)?;
            if let Some(sealer) = &inner.sealer {
                for (id, value) in values {
                    writes.push(Write {
                        table: VALUES,
                        value: Some(sealer.seal(&id, &value)?),
                        field: id,
                    });
                }
            }
            if writes.is_empty() {
                // Nothing changed (an empty patch, an import that refused every row): no write,
                // and no new version for every instance to read the whole store again for.
                return Ok(out);
            }
            if let Some(version) = inner.commit(snap.version, writes).await? {
                // The copy as every other instance will read it.
                let store = MemoryStore::from_config(new).map_err(backend)?;
                inner.install(version, store);
                return Ok(out);
            }
        }
        Err(StoreError::Conflict(format!(
            "the store in Redis changed under this change {ATTEMPTS} times in a row; try again"
        )))
    }

    /// Replaces everything the store holds by `config` (validated first), in one write: what
    /// every instance serves from its next refresh. Keys' values are written as digests (and
    /// sealed, if values are kept). Usage already counted by a meter is kept (it is the meter's).
    ///
    /// ```no_run
    /// use tower_usage_plans::config::Config;
    /// use tower_usage_plans::store::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::builder().connect("redis://127.0.0.1:6379").await?;
    /// let config = Config::from_file("usage-plans.json")?;
    /// store.replace_all(config).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn replace_all(&self, config: Config) -> Result<(), StoreError> {
        config.validate().map_err(invalid_config)?;
        let sealed: Sealed = config
            .api_keys
            .iter()
            .map(|k| (k.id.clone(), k.value.clone()))
            .collect();
        let mut stored = config;
        for k in &mut stored.api_keys {
            k.value = digested(&k.value);
        }
        self.change(|s| {
            let r = s
                .replace_all(stored.clone())
                .map(|()| ((), sealed.clone()))
                .map_err(invalid_config);
            async move { r }
        })
        .await
    }

    /// The copy, its version checked first.
    async fn fresh(&self) -> Result<MemoryStore, StoreError> {
        Ok(self.inner.refresh().await?.store.clone())
    }

    /// `info` with its value, if asked and kept.
    async fn with_value(
        &self,
        mut info: ApiKeyInfo,
        include_value: bool,
    ) -> Result<ApiKeyInfo, StoreError> {
        if include_value {
            info.value = self
                .inner
                .values(std::slice::from_ref(&info.id))
                .await?
                .pop()
                .flatten();
        }
        Ok(info)
    }
}

fn invalid_config(e: crate::error::ConfigError) -> StoreError {
    StoreError::Invalid(crate::error::FieldError::new(
        "configuration",
        e.to_string(),
    ))
}

fn not_found(kind: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

impl Management for RedisStore {
    /// The value is shown in the answer, and only there unless values are kept
    /// ([`keep_values`](super::RedisStoreBuilder::keep_values)).
    async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey, StoreError> {
        let value = new.value.clone().unwrap_or_else(ApiKeyValue::generate);
        let mut stored = new;
        stored.value = Some(digested(&value));
        let mut key = self
            .change(|s| {
                let (stored, value) = (stored.clone(), value.clone());
                async move {
                    let key = s.insert_new_key(stored)?;
                    let sealed = vec![(key.id.clone(), value)];
                    Ok((key, sealed))
                }
            })
            .await?;
        key.value = value;
        Ok(key)
    }

    /// With `include_value`, the value only if values are kept
    /// ([`keep_values`](super::RedisStoreBuilder::keep_values)); else `None`.
    async fn get_api_key(&self, id: &str, include_value: bool) -> Result<ApiKeyInfo, StoreError> {
        let key = self
            .fresh()
            .await?
            .key(id)
            .ok_or_else(|| not_found("API key", id))?;
        self.with_value(ApiKeyInfo::new(key, false), include_value)
            .await
    }

    async fn get_api_keys(&self, query: &ApiKeyQuery) -> Result<Page<ApiKeyInfo>, StoreError> {
        let copy = self.fresh().await?;
        let hidden = ApiKeyQuery {
            include_values: false,
            ..query.clone()
        };
        let mut page = copy.get_api_keys(&hidden).await?;
        if query.include_values {
            let ids: Vec<String> = page.items.iter().map(|k| k.id.clone()).collect();
            let values = self.inner.values(&ids).await?;
            for (item, value) in page.items.iter_mut().zip(values) {
                item.value = value;
            }
        }
        Ok(page)
    }

    async fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<ApiKeyInfo, StoreError> {
        self.change(|s| {
            let r = s.patch_key(id, ops);
            async move { Ok((ApiKeyInfo::new(r?, false), Vec::new())) }
        })
        .await
    }

    async fn delete_api_key(&self, id: &str) -> Result<(), StoreError> {
        self.change(|s| {
            let r = s.remove_key(id);
            async move { r.map(|()| ((), Vec::new())) }
        })
        .await
    }

    async fn create_usage_plan(&self, plan: UsagePlan) -> Result<UsagePlan, StoreError> {
        self.change(|s| {
            let r = s.insert_plan(plan.clone());
            async move { r.map(|p| (p, Vec::new())) }
        })
        .await
    }

    async fn get_usage_plan(&self, id: &str) -> Result<UsagePlan, StoreError> {
        self.fresh()
            .await?
            .plan(id)
            .ok_or_else(|| not_found("usage plan", id))
    }

    async fn get_usage_plans(&self, query: &UsagePlanQuery) -> Result<Page<UsagePlan>, StoreError> {
        self.fresh().await?.get_usage_plans(query).await
    }

    async fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> Result<UsagePlan, StoreError> {
        self.change(|s| {
            let r = s.patch_plan(id, ops);
            async move { r.map(|p| (p, Vec::new())) }
        })
        .await
    }

    async fn delete_usage_plan(&self, id: &str) -> Result<(), StoreError> {
        self.change(|s| {
            let r = s.remove_plan(id);
            async move { r.map(|()| ((), Vec::new())) }
        })
        .await
    }

    async fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> Result<UsagePlanKey, StoreError> {
        self.change(|s| {
            let r = s.link(plan_id, key_id).map(|()| {
                let name = s.key(key_id).map(|k| k.name).unwrap_or_default();
                UsagePlanKey {
                    id: key_id.to_owned(),
                    name,
                    value: None,
                }
            });
            async move { r.map(|k| (k, Vec::new())) }
        })
        .await
    }

    async fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        self.fresh().await?.get_usage_plan_keys(plan_id, page).await
    }

    async fn delete_usage_plan_key(&self, plan_id: &str, key_id: &str) -> Result<(), StoreError> {
        self.change(|s| {
            let r = s.unlink(plan_id, key_id);
            async move { r.map(|()| ((), Vec::new())) }
        })
        .await
    }

    async fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> Result<ImportResult, StoreError> {
        let values: Vec<ApiKeyValue> = keys.iter().map(|k| k.value.clone()).collect();
        let rows: Vec<ImportKey> = keys
            .into_iter()
            .map(|mut k| {
                k.value = digested(&k.value);
                k
            })
            .collect();
        let keep = self.inner.sealer.is_some();
        self.change(|s| {
            let (rows, warnings, values) = (rows.clone(), warnings.clone(), values.clone());
            async move {
                let digests: Vec<ApiKeyValue> = rows.iter().map(|r| r.value.clone()).collect();
                let result = s.import_api_keys(rows, warnings, fail_on_warnings).await?;
                let mut sealed = Vec::new();
                if keep {
                    let any = StageRef::any();
                    for (d, value) in digests.iter().zip(values) {
                        if let Ok(Some(grant)) = s.lookup(d.expose(), &any).await {
                            sealed.push((grant.key_id.to_string(), value));
                        }
                    }
                }
                Ok((result, sealed))
            }
        })
        .await
    }

    async fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.change(|s| {
            let r = s.retag(resource, tags.clone(), &[]);
            async move { r.map(|_| ((), Vec::new())) }
        })
        .await
    }

    async fn untag_resource(&self, resource: &Resource, keys: &[String]) -> Result<(), StoreError> {
        self.change(|s| {
            let r = s.retag(resource, BTreeMap::new(), keys);
            async move { r.map(|_| ((), Vec::new())) }
        })
        .await
    }
}
