//! Management at run time: the [`Management`] trait, AWS's operations on keys, plans and their
//! links, with paging and filters, for any store.
//!
//! The layer only ever asks a store [`KeyStore::lookup`](super::KeyStore::lookup); a team that
//! sells access also creates keys, lists them page by page, links them to plans and imports them
//! in bulk. [`Management`] is that half, as AWS's API Gateway names it (`get-api-keys`,
//! `get-usage-plans`, `get-usage-plan-keys`, `import-api-keys`, …), so that the admin API and the
//! usage reports serve any store that implements it ([`MemoryStore`](super::MemoryStore), and the
//! database stores of their own features). The conformance suite `testing::manage` (feature
//! `testing`) checks an implementation.
//!
//! Lists come in pages: [`PageRequest`] carries AWS's `position` (where the previous page stopped,
//! as the store wrote it) and `limit` (1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] if unset); a
//! [`Page`] carries the items, in order of id, and the `position` of the next page (`None` on the
//! last). Key values are shown only when asked (`include_values`).

use std::collections::BTreeMap;
use std::future::Future;

use crate::error::{FieldError, StoreError};
use crate::model::{ApiKey, ApiKeyValue, UsagePlan};
use crate::patch::PatchOperation;

/// The page size when a request sets none (AWS's default).
pub const DEFAULT_LIMIT: u32 = 25;
/// The largest page a request may ask for (AWS's maximum).
pub const MAX_LIMIT: u32 = 500;

/// Which page of a list: AWS's `position` and `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Where to start: the [`Page::position`] of the previous page; `None` for the first.
    pub position: Option<String>,
    /// How many items at most, 1 to [`MAX_LIMIT`]; `None` for [`DEFAULT_LIMIT`].
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The first page, of at most `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            position: None,
            limit: Some(limit),
        }
    }

    /// The page size, checked: 1 to [`MAX_LIMIT`].
    ///
    /// ```
    /// use tower_usage_plans::store::PageRequest;
    /// assert_eq!(PageRequest::default().checked_limit().unwrap(), 25);
    /// let err = PageRequest::first(10_001).checked_limit().unwrap_err();
    /// assert_eq!(err.to_string(), "limit: must be from 1 to 500, not 10001");
    /// ```
    pub fn checked_limit(&self) -> Result<usize, FieldError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT as usize),
            Some(n @ 1..=MAX_LIMIT) => Ok(n as usize),
            Some(n) => Err(FieldError::new(
                "limit",
                format!("must be from 1 to {MAX_LIMIT}, not {n}"),
            )),
        }
    }
}

/// One page of a list, in order of id.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts (pass it as [`PageRequest::position`]); `None` on the last page.
    pub position: Option<String>,
}

/// An API key as management lists it: its value only when asked for.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct ApiKeyInfo {
    /// The key's id.
    pub id: String,
    /// The secret value, if asked for (`includeValue(s)`).
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub value: Option<ApiKeyValue>,
    /// A name.
    pub name: String,
    /// A description.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub description: Option<String>,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// When the key was created, in seconds since the Unix epoch.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub created_date: Option<i64>,
    /// When the key was last changed, in seconds since the Unix epoch.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub last_updated_date: Option<i64>,
    /// An AWS Marketplace customer id.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub customer_id: Option<String>,
    /// Tags.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "BTreeMap::is_empty"))]
    pub tags: BTreeMap<String, String>,
}

impl ApiKeyInfo {
    /// `key`, with its value kept only if `include_value`.
    pub fn new(key: ApiKey, include_value: bool) -> Self {
        Self {
            id: key.id,
            value: include_value.then_some(key.value),
            name: key.name,
            description: key.description,
            enabled: key.enabled,
            created_date: key.created_date,
            last_updated_date: key.last_updated_date,
            customer_id: key.customer_id,
            tags: key.tags,
        }
    }
}

/// A key of a usage plan, as AWS's `get-usage-plan-keys` lists it (`type` is always `API_KEY`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct UsagePlanKey {
    /// The key's id.
    pub id: String,
    /// The key's name.
    pub name: String,
    /// The key's value, if asked for.
    #[cfg_attr(feature = "json", serde(skip_serializing_if = "Option::is_none"))]
    pub value: Option<ApiKeyValue>,
}

/// Filters of [`Management::get_api_keys`] (AWS's `get-api-keys`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeyQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only keys whose name starts with this (AWS's `nameQuery`, a prefix).
    pub name_query: Option<String>,
    /// Only keys with this customer id (AWS's `customerId`).
    pub customer_id: Option<String>,
    /// Show the keys' values (AWS's `includeValues`); hidden by default.
    pub include_values: bool,
}

/// Filters of [`Management::get_usage_plans`] (AWS's `get-usage-plans`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsagePlanQuery {
    /// Which page.
    pub page: PageRequest,
    /// Only the plans this key is in (AWS's `keyId`).
    pub key_id: Option<String>,
}

/// One key to import ([`Management::import_api_keys`]), as a row of a CSV file gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportKey {
    /// The row's line in the file (1 is the header), for warnings.
    pub line: u64,
    /// The key's value; a key with this value already stored is overwritten.
    pub value: ApiKeyValue,
    /// The name.
    pub name: String,
    /// The description.
    pub description: Option<String>,
    /// Whether the key is enabled.
    pub enabled: bool,
    /// The plans to link the key to.
    pub usage_plan_ids: Vec<String>,
}

/// A row that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct ImportWarning {
    /// The row's line in the file (1 is the header).
    pub line: u64,
    /// The column at fault (`Key`, `UsagePlanIds`), as the file's header names it.
    pub column: String,
    /// What is wrong, and what would be right. Never the key's value.
    pub message: String,
}

impl std::fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// What an import did: AWS's `{"ids", "warnings"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "json", derive(serde::Serialize))]
pub struct ImportResult {
    /// The ids of the keys imported (created or overwritten), in the file's order.
    pub ids: Vec<String>,
    /// The rows left out.
    pub warnings: Vec<ImportWarning>,
}

/// What carries tags: a key or a plan, by id (AWS's ARNs `arn:aws:apigateway:{region}::/apikeys/{id}`
/// and `arn:aws:apigateway:{region}::/usageplans/{id}`; the admin API reads those).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The API key with this id.
    ApiKey(String),
    /// The usage plan with this id.
    UsagePlan(String),
}

impl Resource {
    /// AWS's name of what is not found, as [`StoreError::NotFound`] says it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ApiKey(_) => "API key",
            Self::UsagePlan(_) => "usage plan",
        }
    }

    /// The id.
    pub fn id(&self) -> &str {
        match self {
            Self::ApiKey(id) | Self::UsagePlan(id) => id,
        }
    }
}

/// The management operations of a store, as AWS's API Gateway names them.
///
/// The layer only ever asks a store [`KeyStore::lookup`](super::KeyStore::lookup); this is the
/// other half (`get-api-keys`, `get-usage-plans`, `get-usage-plan-keys`, `import-api-keys`, …),
/// so that the usage reports and the admin API serve any store that implements it. Lists come in
/// pages: [`PageRequest`] carries AWS's `position` and `limit` (1 to [`MAX_LIMIT`],
/// [`DEFAULT_LIMIT`] if unset); a [`Page`] carries the items in order of id and the position of
/// the next page (`None` on the last). Key values are shown only when asked.
///
/// Keys and plans carry tags ([`tags`](crate::tags) has AWS's rules and this crate's own
/// grammar): set on creation, changed with [`tag_resource`](Self::tag_resource) and
/// [`untag_resource`](Self::untag_resource), read with [`get_tags`](Self::get_tags).
///
/// Every operation changes all or nothing; an error names what to fix ([`StoreError::Invalid`]
/// names the field, [`StoreError::NotFound`] the id). Lists are in order of id. Implementations
/// never put a key's value in an error.
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use tower_usage_plans::model::{ApiStage, UsagePlan};
/// use tower_usage_plans::store::{
///     ApiKeyQuery, Management, MemoryStore, NewApiKey, PageRequest, Resource,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let mut plan = UsagePlan::new("plan111", "FreePlan");
/// plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
/// store.create_usage_plan(plan).await.unwrap();
/// for name in ["ClientA", "ClientB", "Other"] {
///     let key = store.create_api_key(NewApiKey::named(name)).await.unwrap();
///     store.create_usage_plan_key("plan111", &key.id).await.unwrap();
/// }
///
/// // Names starting "Client", one per page; values hidden unless asked.
/// let mut query = ApiKeyQuery::default();
/// query.name_query = Some("Client".into());
/// query.page = PageRequest::first(1);
/// let page = store.get_api_keys(&query).await.unwrap();
/// assert_eq!(page.items.len(), 1);
/// assert!(page.items[0].value.is_none());
/// query.page.position = page.position.clone();
/// let second = store.get_api_keys(&query).await.unwrap();
/// assert!(second.items[0].name.starts_with("Client"));
/// assert_ne!(second.items[0].id, page.items[0].id);
///
/// // A plan's keys, without scanning every key of the store.
/// let keys = store.get_usage_plan_keys("plan111", &PageRequest::default()).await.unwrap();
/// assert_eq!(keys.items.len(), 3);
/// // A limit of 0 is refused, and says what would do.
/// let err = store.get_usage_plan_keys("plan111", &PageRequest::first(0)).await.unwrap_err();
/// assert!(err.to_string().contains("limit"));
///
/// // Tags, set and changed after creation (AWS's tag-resource, untag-resource, get-tags).
/// let plan = Resource::UsagePlan("plan111".into());
/// let tags = BTreeMap::from([("team".to_owned(), "billing".to_owned())]);
/// store.tag_resource(&plan, tags.clone()).await.unwrap();
/// assert_eq!(store.get_tags(&plan).await.unwrap(), tags);
/// store.untag_resource(&plan, &["team".to_owned()]).await.unwrap();
/// assert!(store.get_tags(&plan).await.unwrap().is_empty());
/// # }
/// ```
pub trait Management: Send + Sync + 'static {
    /// Creates a key (`create-api-key`), with a generated id, and a generated value unless one is
    /// given.
    fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// The key with this id (`get-api-key`), with its value if `include_value`.
    fn get_api_key(
        &self,
        id: &str,
        include_value: bool,
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send;

    /// A page of keys (`get-api-keys`).
    fn get_api_keys(
        &self,
        query: &ApiKeyQuery,
    ) -> impl Future<Output = Result<Page<ApiKeyInfo>, StoreError>> + Send;

    /// Changes a key with patch operations (`update-api-key`).
    fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send;

    /// Deletes a key and its links (`delete-api-key`).
    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a plan (`create-usage-plan`); an empty id is replaced by a generated one.
    fn create_usage_plan(
        &self,
        plan: UsagePlan,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send;

    /// The plan with this id (`get-usage-plan`).
    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send;

    /// A page of plans (`get-usage-plans`); with `key_id`, the plans of that key (an unknown key
    /// is [`StoreError::NotFound`]).
    fn get_usage_plans(
        &self,
        query: &UsagePlanQuery,
    ) -> impl Future<Output = Result<Page<UsagePlan>, StoreError>> + Send;

    /// Changes a plan with patch operations (`update-usage-plan`).
    fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send;

    /// Deletes a plan (`delete-usage-plan`); its keys stay, without it.
    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Links a key to a plan (`create-usage-plan-key`).
    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send;

    /// A page of a plan's keys (`get-usage-plan-keys`), values hidden. Implementations must not
    /// scan every key of the store for it.
    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send;

    /// Unlinks a key from a plan (`delete-usage-plan-key`).
    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Imports keys (`import-api-keys`): a key whose value is stored already is overwritten
    /// (name, description, enabled; its id stays), and each key is linked to its plans. A row that
    /// cannot land (an unknown plan, a stage conflict) is a warning; with `fail_on_warnings` any
    /// warning in `warnings` (given, from reading the file) or found here refuses the whole import
    /// with [`StoreError::Invalid`] naming the first, and nothing changes.
    fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> impl Future<Output = Result<ImportResult, StoreError>> + Send;

    /// Adds `tags` to a key or plan (`tag-resource`), replacing the values of the keys it has.
    /// Refused with [`StoreError::Invalid`] if a tag breaks [AWS's rules or this crate's
    /// grammar](crate::tags), or the key or plan would carry more than
    /// [`MAX_TAGS`](crate::tags::MAX_TAGS); [`StoreError::NotFound`] for an unknown id.
    fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes the tags with these keys from a key or plan (`untag-resource`); a key it does not
    /// have is ignored. [`StoreError::NotFound`] for an unknown id.
    fn untag_resource(
        &self,
        resource: &Resource,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The tags of a key or plan (`get-tags`). By default read with
    /// [`get_api_key`](Self::get_api_key) or [`get_usage_plan`](Self::get_usage_plan).
    fn get_tags(
        &self,
        resource: &Resource,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, StoreError>> + Send {
        async move {
            match resource {
                Resource::ApiKey(id) => self.get_api_key(id, false).await.map(|k| k.tags),
                Resource::UsagePlan(id) => self.get_usage_plan(id).await.map(|p| p.tags),
            }
        }
    }
}

/// The error for an import refused on its first warning.
pub(crate) fn refused(warning: &ImportWarning) -> StoreError {
    StoreError::Invalid(FieldError::new(
        format!("line {} column {}", warning.line, warning.column),
        format!(
            "{}; nothing was imported (failOnWarnings); fix the row or import without \
             failOnWarnings to import the other rows",
            warning.message
        ),
    ))
}

impl<T: Management> Management for std::sync::Arc<T> {
    fn create_api_key(
        &self,
        new: NewApiKey,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send {
        (**self).create_api_key(new)
    }
    fn get_api_key(
        &self,
        id: &str,
        include_value: bool,
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        (**self).get_api_key(id, include_value)
    }
    fn get_api_keys(
        &self,
        query: &ApiKeyQuery,
    ) -> impl Future<Output = Result<Page<ApiKeyInfo>, StoreError>> + Send {
        (**self).get_api_keys(query)
    }
    fn update_api_key(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<ApiKeyInfo, StoreError>> + Send {
        (**self).update_api_key(id, ops)
    }
    fn delete_api_key(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_api_key(id)
    }
    fn create_usage_plan(
        &self,
        plan: UsagePlan,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        (**self).create_usage_plan(plan)
    }
    fn get_usage_plan(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        (**self).get_usage_plan(id)
    }
    fn get_usage_plans(
        &self,
        query: &UsagePlanQuery,
    ) -> impl Future<Output = Result<Page<UsagePlan>, StoreError>> + Send {
        (**self).get_usage_plans(query)
    }
    fn update_usage_plan(
        &self,
        id: &str,
        ops: &[PatchOperation],
    ) -> impl Future<Output = Result<UsagePlan, StoreError>> + Send {
        (**self).update_usage_plan(id, ops)
    }
    fn delete_usage_plan(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_usage_plan(id)
    }
    fn create_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<UsagePlanKey, StoreError>> + Send {
        (**self).create_usage_plan_key(plan_id, key_id)
    }
    fn get_usage_plan_keys(
        &self,
        plan_id: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page<UsagePlanKey>, StoreError>> + Send {
        (**self).get_usage_plan_keys(plan_id, page)
    }
    fn delete_usage_plan_key(
        &self,
        plan_id: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete_usage_plan_key(plan_id, key_id)
    }
    fn import_api_keys(
        &self,
        keys: Vec<ImportKey>,
        warnings: Vec<ImportWarning>,
        fail_on_warnings: bool,
    ) -> impl Future<Output = Result<ImportResult, StoreError>> + Send {
        (**self).import_api_keys(keys, warnings, fail_on_warnings)
    }
    fn tag_resource(
        &self,
        resource: &Resource,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).tag_resource(resource, tags)
    }
    fn untag_resource(
        &self,
        resource: &Resource,
        keys: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).untag_resource(resource, keys)
    }
    fn get_tags(
        &self,
        resource: &Resource,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, StoreError>> + Send {
        (**self).get_tags(resource)
    }
}

/// What to create a key with; see [`Management::create_api_key`].
#[derive(Clone, Debug, Default)]
pub struct NewApiKey {
    /// A name.
    pub name: String,
    /// A description.
    pub description: Option<String>,
    /// Whether the key starts enabled (`None`: enabled).
    pub enabled: Option<bool>,
    /// The secret value; `None` generates 40 characters from the CSPRNG.
    pub value: Option<ApiKeyValue>,
    /// An AWS Marketplace customer id.
    pub customer_id: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl NewApiKey {
    /// An enabled key with this name and a generated value.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}
