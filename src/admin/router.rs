//! The routes of the botocore model's subset on axum's router, one handler per operation.
//!
//! SigV4 verification, the body limit and the log are layers (see [`AdminApi::router`]); a
//! handler only reads its parameters and calls the store. Every refusal is an [`AdminError`].
//!
//! [`AdminApi::router`]: super::AdminApi::router

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use serde::Serialize;

use super::arn;
use super::error::AdminError;
use super::extract::{unknown, Body, Ids, Limits};
use super::wire::{self, List, Query, UsagePlanKeyOut};
use crate::clock::Clock;
use crate::meter::Meter;
use crate::model::{shown, ApiKeyValue};
use crate::period::Date;
use crate::store::{
    ApiKeyInfo, ApiKeyQuery, Management, NewApiKey, PageRequest, UsagePlanQuery, MAX_LIMIT,
};
use crate::usage::{self, UsageQuery};

/// What every request shares.
pub(crate) struct Shared<S, M> {
    pub(crate) store: S,
    pub(crate) meter: M,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) body_limit: usize,
    /// What a plan must pass before it is stored (`AdminApi::check_plans_with`).
    pub(crate) checks: Vec<PlanCheck>,
}

/// A check of a plan about to be stored: the layer's
/// [`check_plan`](crate::UsagePlanLayer::check_plan).
pub(crate) type PlanCheck =
    Arc<dyn Fn(&crate::model::UsagePlan) -> Result<(), crate::error::ConfigError> + Send + Sync>;

impl<S, M> Shared<S, M> {
    /// Runs every plan check on `plan`: a refusal is a `BadRequestException` saying why.
    fn check(&self, plan: &crate::model::UsagePlan) -> Result<(), AdminError> {
        for check in &self.checks {
            check(plan).map_err(|e| AdminError::bad_request(e.to_string()))?;
        }
        Ok(())
    }
}

impl<S, M> Limits for Arc<Shared<S, M>> {
    fn body_limit(&self) -> usize {
        self.body_limit
    }
}

/// The router's state.
type Api<S, M> = State<Arc<Shared<S, M>>>;
/// What a handler answers.
type Answer = Result<Response, AdminError>;

/// Every operation's route. Anything else, a path or a method, is a `NotFoundException`.
pub(crate) fn routes<S: Management, M: Meter>() -> Router<Arc<Shared<S, M>>> {
    Router::new()
        .route(
            "/apikeys",
            post(create_or_import_api_keys::<S, M>).get(get_api_keys::<S, M>),
        )
        .route(
            "/apikeys/{api_Key}",
            get(get_api_key::<S, M>)
                .patch(update_api_key::<S, M>)
                .delete(delete_api_key::<S, M>),
        )
        .route(
            "/usageplans",
            post(create_usage_plan::<S, M>).get(get_usage_plans::<S, M>),
        )
        .route(
            "/usageplans/{usageplanId}",
            get(get_usage_plan::<S, M>)
                .patch(update_usage_plan::<S, M>)
                .delete(delete_usage_plan::<S, M>),
        )
        .route(
            "/usageplans/{usageplanId}/keys",
            post(create_usage_plan_key::<S, M>).get(get_usage_plan_keys::<S, M>),
        )
        .route(
            "/usageplans/{usageplanId}/keys/{keyId}",
            get(get_usage_plan_key::<S, M>).delete(delete_usage_plan_key::<S, M>),
        )
        .route("/usageplans/{usageplanId}/usage", get(get_usage::<S, M>))
        .route(
            "/usageplans/{usageplanId}/keys/{keyId}/usage",
            patch(update_usage::<S, M>),
        )
        // botocore writes the ARN as one segment (`/` as `%2F`); a client that leaves the
        // slashes as they are is served too.
        .route(
            "/tags/{*resource_arn}",
            get(get_tags::<S, M>)
                .put(tag_resource::<S, M>)
                .delete(untag_resource::<S, M>),
        )
        .fallback(no_operation)
        .method_not_allowed_fallback(no_operation)
}

/// The log layer's function: one line per request, with its answer's status.
pub(crate) async fn log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let res = next.run(req).await;
    tracing::info!(
        method = %method,
        path = path,
        status = res.status().as_u16(),
        "admin API"
    );
    res
}

async fn no_operation(method: Method, uri: Uri) -> AdminError {
    unknown(&method, uri.path())
}

/// A JSON answer with a status.
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = (status, body).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => AdminError::unavailable("answer's encoding", &e).into_response(),
    }
}

fn ok<T: Serialize>(value: &T) -> Answer {
    Ok(json(StatusCode::OK, value))
}

fn created<T: Serialize>(value: &T) -> Answer {
    Ok(json(StatusCode::CREATED, value))
}

fn accepted() -> Answer {
    Ok(StatusCode::ACCEPTED.into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------------------------------ API keys

/// `POST /apikeys`: `create-api-key`, or `import-api-keys` with `?mode=import` (both are this
/// route in AWS's model).
async fn create_or_import_api_keys<S: Management, M: Meter>(
    State(api): Api<S, M>,
    q: Query,
    Body(body): Body,
) -> Answer {
    match q.get("mode") {
        None => create_api_key(&api.store, wire::body(&body)?).await,
        Some("import") => import_api_keys(&api.store, &q, &body).await,
        Some(other) => Err(AdminError::bad_request(format!(
            "mode: must be import (or absent to create one key), not {}",
            shown(other)
        ))),
    }
}

/// `create-api-key`.
async fn create_api_key<S: Management>(store: &S, req: wire::CreateApiKey) -> Answer {
    if req.stage_keys.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(AdminError::bad_request(
            "stageKeys: is not supported; link the key to a usage plan with \
             create-usage-plan-key instead",
        ));
    }
    let value = req.value.map(ApiKeyValue::new).transpose()?;
    let new = NewApiKey {
        name: req.name.unwrap_or_default(),
        description: req.description,
        // AWS's create-api-key makes a disabled key unless `enabled` is true.
        enabled: Some(req.enabled.unwrap_or(false)),
        value,
        customer_id: req.customer_id,
        tags: req.tags.unwrap_or_default(),
    };
    let key = store.create_api_key(new).await?;
    // create-api-key is the one answer that shows the new key's value.
    created(&ApiKeyInfo::new(key, true))
}

/// `import-api-keys`.
async fn import_api_keys<S: Management>(store: &S, q: &Query, body: &[u8]) -> Answer {
    match q.get("format") {
        Some(f) if f.eq_ignore_ascii_case("csv") => {}
        Some(f) => {
            return Err(AdminError::bad_request(format!(
                "format: must be csv, not {}",
                shown(f)
            )))
        }
        None => return Err(AdminError::bad_request("format: is required: csv")),
    }
    let fail = q.flag("failonwarnings")?;
    let result = usage::import_csv(store, body, fail).await?;
    created(&wire::ApiKeyIds {
        ids: result.ids,
        warnings: result.warnings.iter().map(ToString::to_string).collect(),
    })
}

/// `get-api-keys`.
async fn get_api_keys<S: Management, M: Meter>(State(api): Api<S, M>, q: Query) -> Answer {
    let query = ApiKeyQuery {
        page: q.page()?,
        name_query: q.string("name"),
        customer_id: q.string("customerId"),
        include_values: q.flag("includeValues")?,
    };
    let page = api.store.get_api_keys(&query).await?;
    ok(&List {
        position: page.position,
        item: page.items,
    })
}

/// `get-api-key`.
async fn get_api_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
    q: Query,
) -> Answer {
    ok(&api.store.get_api_key(&id, q.flag("includeValue")?).await?)
}

/// `update-api-key`.
async fn update_api_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
    Body(body): Body,
) -> Answer {
    let patch: wire::Patch = wire::body(&body)?;
    ok(&api.store.update_api_key(&id, &patch.ops()).await?)
}

/// `delete-api-key`.
async fn delete_api_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
) -> Answer {
    api.store.delete_api_key(&id).await?;
    accepted()
}

// --------------------------------------------------------------------------------- usage plans

/// `create-usage-plan`.
async fn create_usage_plan<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Body(body): Body,
) -> Answer {
    let new: wire::CreateUsagePlan = wire::body(&body)?;
    let plan = new.model()?;
    api.check(&plan)?;
    created(&api.store.create_usage_plan(plan).await?)
}

/// `get-usage-plans`.
async fn get_usage_plans<S: Management, M: Meter>(State(api): Api<S, M>, q: Query) -> Answer {
    let query = UsagePlanQuery {
        page: q.page()?,
        key_id: q.string("keyId"),
    };
    let page = api.store.get_usage_plans(&query).await?;
    ok(&List {
        position: page.position,
        item: page.items,
    })
}

/// `get-usage-plan`.
async fn get_usage_plan<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
) -> Answer {
    ok(&api.store.get_usage_plan(&id).await?)
}

/// `update-usage-plan`.
async fn update_usage_plan<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
    Body(body): Body,
) -> Answer {
    let patch: wire::Patch = wire::body(&body)?;
    let ops = patch.ops();
    if !api.checks.is_empty() {
        // The plan as the patch would leave it (a patch the store would refuse is left for the
        // store to refuse, in its words).
        let now = api.store.get_usage_plan(&id).await?;
        if let Ok(next) = crate::patch::apply_to_plan(&now, &ops) {
            api.check(&next)?;
        }
    }
    ok(&api.store.update_usage_plan(&id, &ops).await?)
}

/// `delete-usage-plan`.
async fn delete_usage_plan<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
) -> Answer {
    api.store.delete_usage_plan(&id).await?;
    accepted()
}

// ----------------------------------------------------------------------------- usage plan keys

/// `create-usage-plan-key`.
async fn create_usage_plan_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
    Body(body): Body,
) -> Answer {
    let new: wire::CreateUsagePlanKey = wire::body(&body)?;
    if new.key_type != "API_KEY" {
        return Err(AdminError::bad_request(format!(
            "keyType: must be API_KEY, not {}",
            shown(&new.key_type)
        )));
    }
    let key = api.store.create_usage_plan_key(&id, &new.key_id).await?;
    created(&UsagePlanKeyOut {
        id: key.id,
        kind: "API_KEY",
        name: key.name,
    })
}

/// `get-usage-plan-keys`: a page of a plan's keys, filtered by a name prefix (AWS's
/// `nameQuery`) if given: the store's pages are read until one holds a match, so a page is never
/// larger than `limit`.
async fn get_usage_plan_keys<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(plan_id): Ids<String>,
    q: Query,
) -> Answer {
    let mut page = q.page()?;
    let name = q.get("name");
    loop {
        let got = api.store.get_usage_plan_keys(&plan_id, &page).await?;
        let item: Vec<UsagePlanKeyOut> = got
            .items
            .into_iter()
            .filter(|k| name.is_none_or(|n| k.name.starts_with(n)))
            .map(|k| UsagePlanKeyOut {
                id: k.id,
                kind: "API_KEY",
                name: k.name,
            })
            .collect();
        if !item.is_empty() || got.position.is_none() {
            return ok(&List {
                position: got.position,
                item,
            });
        }
        page.position = got.position;
    }
}

/// `get-usage-plan-key`.
async fn get_usage_plan_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids((id, key_id)): Ids<(String, String)>,
) -> Answer {
    let plans = api
        .store
        .get_usage_plans(&UsagePlanQuery {
            page: PageRequest::first(MAX_LIMIT),
            key_id: Some(key_id.clone()),
        })
        .await;
    let in_plan = match plans {
        Ok(p) => p.items.iter().any(|p| p.id == id),
        Err(crate::error::StoreError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    if !in_plan {
        api.store.get_usage_plan(&id).await?;
        return Err(AdminError::not_found(format!(
            "the API key {key_id:?} is not in the usage plan {id:?}"
        )));
    }
    let key = api.store.get_api_key(&key_id, false).await?;
    ok(&UsagePlanKeyOut {
        id: key.id,
        kind: "API_KEY",
        name: key.name,
    })
}

/// `delete-usage-plan-key`.
async fn delete_usage_plan_key<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids((id, key_id)): Ids<(String, String)>,
) -> Answer {
    api.store.delete_usage_plan_key(&id, &key_id).await?;
    accepted()
}

// ------------------------------------------------------------------------------------- usage

/// `get-usage`.
async fn get_usage<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(id): Ids<String>,
    q: Query,
) -> Answer {
    let date = |name: &str| -> Result<Date, AdminError> {
        let v = q.get(name).ok_or_else(|| {
            AdminError::bad_request(format!("{name}: is required, a date YYYY-MM-DD"))
        })?;
        Date::parse(v).ok_or_else(|| {
            AdminError::bad_request(format!(
                "{name}: must be a date YYYY-MM-DD, not {}",
                shown(v)
            ))
        })
    };
    let query = UsageQuery {
        usage_plan_id: id,
        key_id: q.string("keyId"),
        start_date: date("startDate")?,
        end_date: date("endDate")?,
        page: q.page()?,
    };
    let report = usage::get_usage(&api.store, &api.meter, &query).await?;
    ok(&wire::UsageOut::from(report))
}

/// `update-usage`.
async fn update_usage<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids((id, key_id)): Ids<(String, String)>,
    Body(body): Body,
) -> Answer {
    let patch: wire::Patch = wire::body(&body)?;
    usage::update_usage(&api.store, &api.meter, &id, &key_id, &patch.ops()).await?;
    let today = Date::from_unix_secs(api.clock.unix_nanos() / 1_000_000_000);
    let query = UsageQuery::new(&*id, today, today).key(&*key_id);
    let report = usage::get_usage(&api.store, &api.meter, &query).await?;
    ok(&wire::UsageOut::from(report))
}

// -------------------------------------------------------------------------------------- tags

/// `tag-resource`: `PUT /tags/{resource_arn}` with `{"tags": {...}}`; 204.
async fn tag_resource<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(resource_arn): Ids<String>,
    Body(body): Body,
) -> Answer {
    let resource = arn::resource(&resource_arn)?;
    let req: wire::TagResource = wire::body(&body)?;
    api.store.tag_resource(&resource, req.tags).await?;
    no_content()
}

/// `untag-resource`: `DELETE /tags/{resource_arn}?tagKeys=a&tagKeys=b`; 204.
async fn untag_resource<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(resource_arn): Ids<String>,
    q: Query,
) -> Answer {
    let resource = arn::resource(&resource_arn)?;
    let keys: Vec<String> = q.all("tagKeys").map(str::to_owned).collect();
    if keys.is_empty() {
        return Err(AdminError::bad_request(
            "tagKeys: is required: the keys of the tags to remove (tagKeys=a&tagKeys=b)",
        ));
    }
    api.store.untag_resource(&resource, &keys).await?;
    no_content()
}

/// `get-tags`: `GET /tags/{resource_arn}` answers `{"tags": {...}}` (AWS's `position` and
/// `limit` are "not currently supported": every tag comes at once).
async fn get_tags<S: Management, M: Meter>(
    State(api): Api<S, M>,
    Ids(resource_arn): Ids<String>,
) -> Answer {
    let resource = arn::resource(&resource_arn)?;
    let tags: BTreeMap<String, String> = api.store.get_tags(&resource).await?;
    ok(&wire::Tags { tags })
}
