//! [`Management`] for [`SqliteStore`]: each change is made in memory, then written to the file in
//! one transaction, under the file's lock (so changes reach the file in the order they were
//! made). If the write fails, memory is read back from the file and the error returned.

use std::collections::BTreeMap;
use std::future::{ready, Future};

use rusqlite::{params, Connection, Transaction};

use crate::config::Config;
use crate::error::StoreError;
use crate::model::{ApiKey, UsagePlan};
use crate::patch::PatchOperation;
use crate::store::manage::{
    ApiKeyInfo, ApiKeyQuery, ImportKey, ImportResult, ImportWarning, Management, Page, PageRequest,
    Resource, UsagePlanKey, UsagePlanQuery,
};
use crate::store::memory::Retagged;
use crate::store::{MemoryStore, NewApiKey};

use super::{schema, Db, DigestHex, SqliteStore};

/// Writes `key` (as memory holds it: its value is the digest), with `clear` as its value in clear
/// if given, else keeping the one the file has.
fn write_key(tx: &Transaction<'_>, key: &ApiKey, clear: Option<&str>) -> rusqlite::Result<()> {
    let tags = serde_json::to_string(&key.tags)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT INTO api_keys (id, digest, value, name, description, enabled, created_date, \
         last_updated_date, customer_id, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT (id) DO UPDATE SET digest = excluded.digest, \
         value = coalesce(excluded.value, value), name = excluded.name, \
         description = excluded.description, enabled = excluded.enabled, \
         created_date = excluded.created_date, last_updated_date = excluded.last_updated_date, \
         customer_id = excluded.customer_id, tags = excluded.tags",
        params![
            key.id,
            key.value.expose(),
            clear,
            key.name,
            key.description,
            key.enabled,
            key.created_date,
            key.last_updated_date,
            key.customer_id,
            tags
        ],
    )?;
    Ok(())
}

/// Writes the links of key `key_id` as `plan_ids`, in order.
fn write_links(tx: &Transaction<'_>, key_id: &str, plan_ids: &[String]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM usage_plan_keys WHERE key_id = ?1", [key_id])?;
    for (i, plan_id) in plan_ids.iter().enumerate() {
        tx.execute(
            "INSERT INTO usage_plan_keys (plan_id, key_id, position) VALUES (?1, ?2, ?3)",
            params![plan_id, key_id, i as i64],
        )?;
    }
    Ok(())
}

fn write_plan(tx: &Transaction<'_>, plan: &UsagePlan) -> rusqlite::Result<()> {
    let json = serde_json::to_string(plan)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.execute(
        "INSERT INTO usage_plans (id, definition) VALUES (?1, ?2) \
         ON CONFLICT (id) DO UPDATE SET definition = excluded.definition",
        params![plan.id, json],
    )?;
    Ok(())
}

/// Replaces the file's keys, plans and links by `hashed` (values as digests); `clear` is the
/// same configuration with the values, written too if `keep_values`.
pub(super) fn write_all(
    conn: &mut Connection,
    hashed: &Config,
    clear: &Config,
    keep_values: bool,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "DELETE FROM usage_plan_keys; DELETE FROM api_keys; DELETE FROM usage_plans;",
    )?;
    for plan in &hashed.usage_plans {
        write_plan(&tx, plan)?;
    }
    for (key, original) in hashed.api_keys.iter().zip(&clear.api_keys) {
        let value = keep_values.then(|| original.value.expose());
        write_key(&tx, key, value)?;
    }
    for (plan_id, key_ids) in &hashed.usage_plan_keys {
        for key_id in key_ids {
            tx.execute(
                "INSERT OR IGNORE INTO usage_plan_keys (plan_id, key_id, position) \
                 VALUES (?1, ?2, 0)",
                params![plan_id, key_id],
            )?;
        }
    }
    tx.commit()
}

impl SqliteStore {
    fn mem(&self) -> &MemoryStore {
        &self.inner.mem
    }

    /// Makes a change in memory with `change`, then writes it with `write`, both under the file's
    /// lock; reads memory back from the file if the write fails.
    fn change<T>(
        &self,
        change: impl FnOnce(&MemoryStore) -> Result<T, StoreError>,
        write: impl FnOnce(&Transaction<'_>, &MemoryStore, &T) -> rusqlite::Result<()>,
    ) -> Result<T, StoreError> {
        let mut conn = self.inner.db.conn.lock();
        let out = change(self.mem())?;
        let written = conn.transaction().and_then(|tx| {
            write(&tx, self.mem(), &out)?;
            tx.commit()
        });
        if let Err(e) = written {
            self.reload(&conn);
            return Err(Db::backend(e));
        }
        Ok(out)
    }

    fn create_key(&self, mut new: NewApiKey) -> Result<ApiKey, StoreError> {
        let value = new
            .value
            .take()
            .unwrap_or_else(crate::model::ApiKeyValue::generate);
        new.value = Some(DigestHex::of(value.expose()).value()?);
        let keep = self.inner.keep_values;
        let mut key = self.change(
            |mem| mem.insert_new_key(new),
            |tx, _, key| write_key(tx, key, keep.then(|| value.expose())),
        )?;
        key.value = value;
        Ok(key)
    }

    /// `key` as management shows it, with its value in clear if asked and kept.
    fn info(&self, key: ApiKeyInfo, include_value: bool) -> Result<ApiKeyInfo, StoreError> {
        let mut key = ApiKeyInfo { value: None, ..key };
        if include_value && self.inner.keep_values {
            let conn = self.inner.db.conn.lock();
            let value = schema::kept_value(&conn, &key.id).map_err(Db::backend)?;
            key.value = value.and_then(|v| crate::model::ApiKeyValue::new(v).ok());
        }
        Ok(key)
    }

    /// Changes a key's or plan's tags in memory, then writes the key or plan.
    fn retag(
        &self,
        resource: &Resource,
        add: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), StoreError> {
        self.change(
            |mem| mem.retag(resource, add, remove),
            |tx, _, changed| match changed {
                Retagged::Key(key) => write_key(tx, key, None),
                Retagged::Plan(plan) => write_plan(tx, plan),
            },
        )
        .map(drop)
    }

    fn import(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> Result<ImportResult, StoreError> {
        let mut rows = Vec::with_capacity(keys.len());
        let mut clear = Vec::with_capacity(keys.len());
        for mut row in keys {
            let digest = DigestHex::of(row.value.expose());
            let value = std::mem::replace(&mut row.value, digest.value()?);
            clear.push((digest, value));
            rows.push(row);
        }
        let keep = self.inner.keep_values;
        self.change(
            |mem| mem.import(rows, warnings, fail_on_warnings),
            |tx, mem, _| {
                for (digest, value) in &clear {
                    let Some(grant) = mem.grant(digest.as_str(), &crate::model::StageRef::any())
                    else {
                        continue;
                    };
                    if let Some(key) = mem.key(&grant.key_id) {
                        write_key(tx, &key, keep.then(|| value.expose()))?;
                        write_links(tx, &key.id, &mem.key_plan_ids(&key.id))?;
                    }
                }
                Ok(())
            },
        )
    }
}

impl Management for SqliteStore {
    fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        ready(self.create_key(new))
    }

    async fn get_api_key(&self, id: &str, include_value: bool) -> Result<ApiKeyInfo, StoreError> {
        let key = self.mem().get_api_key(id, false).await?;
        self.info(key, include_value)
    }

    async fn get_api_keys(&self, query: &ApiKeyQuery) -> Result<Page<ApiKeyInfo>, StoreError> {
        let hidden = ApiKeyQuery {
            include_values: false,
            ..query.clone()
        };
        let page = self.mem().get_api_keys(&hidden).await?;
        let items = page
            .items
            .into_iter()
            .map(|k| self.info(k, query.include_values))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            position: page.position,
        })
    }

    fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        ready(
            self.change(
                |mem| mem.patch_key(id, ops),
                |tx, _, key| write_key(tx, key, None),
            )
            .map(|k| ApiKeyInfo::new(k, false)),
        )
    }

    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.change(
            |mem| mem.remove_key(id),
            |tx, _, ()| {
                tx.execute("DELETE FROM usage_plan_keys WHERE key_id = ?1", [id])?;
                tx.execute("DELETE FROM api_keys WHERE id = ?1", [id])?;
                Ok(())
            },
        ))
    }

    fn create_usage_plan(
        &self,
        plan: UsagePlan,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        ready(self.change(
            |mem| mem.insert_plan(plan),
            |tx, _, plan| write_plan(tx, plan),
        ))
    }

    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        self.mem().get_usage_plan(id)
    }

    fn get_usage_plans(
        &self,
        query: &UsagePlanQuery,
    ) -> impl Future<Output = Result<Page<UsagePlan>, StoreError>> + Send {
        self.mem().get_usage_plans(query)
    }

    fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        ready(self.change(
            |mem| mem.patch_plan(id, ops),
            |tx, _, plan| write_plan(tx, plan),
        ))
    }

    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.change(
            |mem| mem.remove_plan(id),
            |tx, _, ()| {
                tx.execute("DELETE FROM usage_plan_keys WHERE plan_id = ?1", [id])?;
                tx.execute("DELETE FROM usage_plans WHERE id = ?1", [id])?;
                Ok(())
            },
        ))
    }

    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        ready(
            self.change(
                |mem| mem.link(plan_id, key_id),
                |tx, mem, ()| write_links(tx, key_id, &mem.key_plan_ids(key_id)),
            )
            .and_then(|()| {
                let key = self.mem().key(key_id).ok_or_else(|| StoreError::NotFound {
                    kind: "API key",
                    id: key_id.to_owned(),
                })?;
                Ok(UsagePlanKey {
                    id: key.id,
                    name: key.name,
                    value: None,
                })
            }),
        )
    }

    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        self.mem().get_usage_plan_keys(plan_id, page)
    }

    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.change(
            |mem| mem.unlink(plan_id, key_id),
            |tx, mem, ()| write_links(tx, key_id, &mem.key_plan_ids(key_id)),
        ))
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
        ready(self.retag(resource, tags, &[]))
    }

    fn untag_resource(
        &self,
        resource: &Resource,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.retag(resource, BTreeMap::new(), keys))
    }
}
