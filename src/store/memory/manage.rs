//! [`Management`] for [`MemoryStore`]: pages by id over ordered tables, a plan's keys from the
//! plan's own set (never a scan of every key), and imports under one hold of the management lock.
//!
//! None of this takes a lock the request path takes, except the lookup index's shards, one key at
//! a time, as every change does.

use std::collections::BTreeMap;
use std::future::{ready, Future};
use std::ops::Bound;

use crate::error::StoreError;
use crate::model::{random_id, ApiKey, UsagePlan};
use crate::patch::PatchOperation;
use crate::store::manage::{
    refused, ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, Management, Page,
    PageRequest, Resource, UsagePlanKey, UsagePlanQuery,
};
use crate::store::NewApiKey;

use super::data::{plan_ids, stage_conflict, Data};
use super::{not_found, MemoryStore};

/// Takes up to `limit` items from `iter` (in order of id, starting at the page's position), and
/// the position of the next page: the id of the first item left out.
fn page_of<'a, T, I>(iter: I, limit: usize) -> Page<T>
where
    I: Iterator<Item = (&'a str, Option<T>)>,
{
    let mut items = Vec::with_capacity(limit.min(64));
    for (id, item) in iter {
        let Some(item) = item else { continue };
        if items.len() == limit {
            return Page {
                items,
                position: Some(id.to_owned()),
            };
        }
        items.push(item);
    }
    Page {
        items,
        position: None,
    }
}

/// Where a page starts: the position given, or the start.
fn from(page: &PageRequest) -> Bound<&str> {
    page.position
        .as_deref()
        .map_or(Bound::Unbounded, Bound::Included)
}

impl MemoryStore {
    fn key_info(&self, id: &str, include_value: bool) -> Result<ApiKeyInfo, StoreError> {
        self.key(id)
            .map(|k| ApiKeyInfo::new(k, include_value))
            .ok_or_else(|| not_found("API key", id))
    }

    fn list_keys(&self, query: &ApiKeyQuery) -> Result<Page<ApiKeyInfo>, StoreError> {
        let limit = query.page.checked_limit()?;
        let data = self.inner.data.lock();
        let range = data
            .keys
            .range::<str, _>((from(&query.page), Bound::Unbounded));
        Ok(page_of(
            range.map(|(id, cold)| {
                let key = cold.api_key(id);
                let keep = query
                    .name_query
                    .as_deref()
                    .is_none_or(|q| key.name.starts_with(q))
                    && query
                        .customer_id
                        .as_deref()
                        .is_none_or(|c| key.customer_id.as_deref() == Some(c));
                (
                    &**id,
                    keep.then(|| ApiKeyInfo::new(key, query.include_values)),
                )
            }),
            limit,
        ))
    }

    fn list_plans(&self, query: &UsagePlanQuery) -> Result<Page<UsagePlan>, StoreError> {
        let limit = query.page.checked_limit()?;
        let data = self.inner.data.lock();
        let of_key = match query.key_id.as_deref() {
            Some(key_id) => Some(plan_ids(
                &data
                    .keys
                    .get(key_id)
                    .ok_or_else(|| not_found("API key", key_id))?
                    .plans,
            )),
            None => None,
        };
        let range = data
            .plans
            .range::<str, _>((from(&query.page), Bound::Unbounded));
        Ok(page_of(
            range.map(|(id, rec)| {
                let keep = of_key.is_none_or(|ids| ids.iter().any(|p| **p == **id));
                (id.as_str(), keep.then(|| rec.plan.clone()))
            }),
            limit,
        ))
    }

    fn list_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> Result<Page<UsagePlanKey>, StoreError> {
        let limit = page.checked_limit()?;
        let data = self.inner.data.lock();
        if !data.plans.contains_key(plan_id) {
            return Err(not_found("usage plan", plan_id));
        }
        let Some(ids) = data.plan_keys.get(plan_id) else {
            return Ok(Page {
                items: Vec::new(),
                position: None,
            });
        };
        let range = ids.range::<str, _>((from(page), Bound::Unbounded));
        Ok(page_of(
            range.map(|id| {
                let item = data.keys.get(id).map(|cold| UsagePlanKey {
                    id: id.to_string(),
                    name: cold.api_key(id).name,
                    value: None,
                });
                (&**id, item)
            }),
            limit,
        ))
    }

    fn plan_key(&self, plan_id: &str, key_id: &str) -> Result<UsagePlanKey, StoreError> {
        let key = self
            .key(key_id)
            .ok_or_else(|| not_found("API key", key_id))?;
        let _ = plan_id;
        Ok(UsagePlanKey {
            id: key.id,
            name: key.name,
            value: None,
        })
    }

    /// The warning for `row` if it cannot land as the store is now, without changing anything.
    fn check_row(
        data: &Data,
        index_holder: Option<&str>,
        row: &ImportKey,
    ) -> Option<ImportWarning> {
        let warn = |message: String| {
            Some(ImportWarning {
                line: row.line,
                column: "UsagePlanIds".into(),
                message,
            })
        };
        let linked = index_holder
            .and_then(|id| data.keys.get(id))
            .map(|cold| plan_ids(&cold.plans).to_vec())
            .unwrap_or_default();
        let mut ids = linked;
        for plan_id in &row.usage_plan_ids {
            let Some(rec) = data.plans.get(plan_id.as_str()) else {
                return warn(format!(
                    "no usage plan with id {plan_id:?}; create it first, or remove it from the row"
                ));
            };
            if ids.iter().any(|p| **p == **plan_id) {
                continue;
            }
            if let Some(c) = stage_conflict(data, &ids, &rec.plan) {
                let who =
                    index_holder.map_or_else(|| format!("on line {}", row.line), str::to_owned);
                return warn(c.error(&who).to_string());
            }
            ids.push(plan_id.as_str().into());
        }
        None
    }

    /// Imports `keys`; see [`Management::import_api_keys`].
    pub(crate) fn import(
        &self,
        keys: Vec<ImportKey>,
        mut warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> Result<ImportResult, StoreError> {
        let inner = &*self.inner;
        let mut data = inner.data.lock();
        let mut good = Vec::with_capacity(keys.len());
        for row in keys {
            let holder = inner
                .index
                .get(row.value.expose())
                .map(|h| h.key_id.clone());
            match Self::check_row(&data, holder.as_deref(), &row) {
                Some(w) => warnings.push(w),
                None => good.push((row, holder)),
            }
        }
        if fail_on_warnings {
            warnings.sort_by_key(|w| w.line);
            if let Some(first) = warnings.first() {
                return Err(refused(first));
            }
        }
        let now = inner.unix_now();
        let mut ids = Vec::with_capacity(good.len());
        for (row, holder) in good {
            // A value repeated in the file: the earlier row made the key; overwrite it.
            let holder = holder.or_else(|| {
                inner
                    .index
                    .get(row.value.expose())
                    .map(|h| h.key_id.clone())
            });
            let key = match holder.as_deref().and_then(|id| data.keys.get(id)) {
                Some(cold) => {
                    let mut key = cold.api_key(holder.as_deref().unwrap_or_default());
                    key.name = row.name;
                    key.description = row.description;
                    key.enabled = row.enabled;
                    key.last_updated_date = Some(now);
                    key
                }
                None => {
                    let mut id = random_id();
                    while data.keys.contains_key(id.as_str()) {
                        id = random_id();
                    }
                    let mut key = ApiKey::new(id, row.name, row.value);
                    key.description = row.description;
                    key.enabled = row.enabled;
                    key.created_date = Some(now);
                    key.last_updated_date = Some(now);
                    key
                }
            };
            let landed = inner.put_key(&mut data, &key).and_then(|()| {
                for plan_id in &row.usage_plan_ids {
                    let linked = data
                        .keys
                        .get(key.id.as_str())
                        .is_some_and(|c| plan_ids(&c.plans).iter().any(|p| **p == **plan_id));
                    if !linked {
                        inner.link_key(&mut data, plan_id, &key.id)?;
                    }
                }
                Ok(())
            });
            match landed {
                Ok(()) => ids.push(key.id),
                Err(e) => warnings.push(ImportWarning {
                    line: row.line,
                    column: "UsagePlanIds".into(),
                    message: e.to_string(),
                }),
            }
        }
        warnings.sort_by_key(|w| w.line);
        inner.changed();
        Ok(ImportResult { ids, warnings })
    }
}

impl Management for MemoryStore {
    fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        ready(self.insert_new_key(new))
    }

    fn get_api_key(
        &self,
        id: &str,
        include_value: bool,
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        ready(self.key_info(id, include_value))
    }

    fn get_api_keys(
        &self,
        query: &ApiKeyQuery,
    ) -> impl Future<Output = Result<Page<ApiKeyInfo>, StoreError>> + Send {
        ready(self.list_keys(query))
    }

    fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        ready(self.patch_key(id, ops).map(|k| ApiKeyInfo::new(k, false)))
    }

    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.remove_key(id))
    }

    fn create_usage_plan(
        &self,
        plan: UsagePlan,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        ready(self.insert_plan(plan))
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        ready(self.plan(id).ok_or_else(|| not_found("usage plan", id)))
    }

    fn get_usage_plans(
        &self,
        query: &UsagePlanQuery,
    ) -> impl Future<Output = Result<Page<UsagePlan>, StoreError>> + Send {
        ready(self.list_plans(query))
    }

    fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        ready(self.patch_plan(id, ops))
    }

    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.remove_plan(id))
    }

    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        ready(
            self.link(plan_id, key_id)
                .and_then(|()| self.plan_key(plan_id, key_id)),
        )
    }

    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        ready(self.list_plan_keys(plan_id, page))
    }

    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.unlink(plan_id, key_id))
    }

    fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> impl Future<Output = Result<ImportResult, StoreError>> + Send {
        ready(self.import(keys, warnings, fail_on_warnings))
    }

    fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.retag(resource, tags, &[]).map(drop))
    }

    fn untag_resource(
        &self,
        resource: &Resource,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.retag(resource, BTreeMap::new(), keys).map(drop))
    }
}
