//! The routes of the botocore model's subset, one `match`, and the operations behind them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};
use serde::Serialize;

use super::auth::Verifier;
use super::error::AdminError;
use super::wire::{self, List, Query, UsagePlanKeyOut};
use crate::clock::Clock;
use crate::meter::Meter;
use crate::model::ApiKeyValue;
use crate::period::Date;
use crate::store::{
    ApiKeyInfo, ApiKeyQuery, Management, NewApiKey, PageRequest, UsagePlanQuery, MAX_LIMIT,
};
use crate::usage::{self, UsageQuery};

/// What every request shares.
pub(crate) struct Shared<S, M> {
    pub(crate) store: S,
    pub(crate) meter: M,
    /// `None`: authentication switched off (`no_auth`).
    pub(crate) verifier: Option<Verifier>,
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

fn ok<T: Serialize>(value: &T) -> Result<Response, AdminError> {
    Ok(json(StatusCode::OK, value))
}

fn created<T: Serialize>(value: &T) -> Result<Response, AdminError> {
    Ok(json(StatusCode::CREATED, value))
}

fn accepted() -> Result<Response, AdminError> {
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The one handler: reads the body (bounded), verifies the signature, then routes.
pub(crate) async fn dispatch<S, M>(State(api): State<Arc<Shared<S, M>>>, req: Request) -> Response
where
    S: Management,
    M: Meter,
{
    let (parts, body) = req.into_parts();
    let result = async {
        let body = read_body(body, &parts.headers, api.body_limit).await?;
        if let Some(verifier) = &api.verifier {
            verifier.verify(&parts, &body)?;
        }
        route(
            &api,
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &body,
        )
        .await
    }
    .await;
    let res = result.unwrap_or_else(IntoResponse::into_response);
    tracing::info!(
        method = %parts.method,
        path = parts.uri.path(),
        status = res.status().as_u16(),
        "admin API"
    );
    res
}

async fn read_body(
    body: Body,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<bytes::Bytes, AdminError> {
    let too_large = || {
        AdminError::bad_request(format!(
            "the request body is larger than {limit} bytes, the most this server reads; send \
             less (import keys in several files)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// The path's segments, percent-decoded; `None` if one is not UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .collect()
}

async fn route<S: Management, M: Meter>(
    api: &Shared<S, M>,
    method: &Method,
    path: &str,
    raw_query: Option<&str>,
    body: &[u8],
) -> Result<Response, AdminError> {
    let unknown = || {
        AdminError::not_found(format!(
            "no operation {method} {path}: this server serves /apikeys[/{{api_Key}}], \
             /usageplans[/{{usageplanId}}], /usageplans/{{usageplanId}}/keys[/{{keyId}}], \
             /usageplans/{{usageplanId}}/usage and /usageplans/{{usageplanId}}/keys/{{keyId}}/usage"
        ))
    };
    let segs = segments(path).ok_or_else(unknown)?;
    if segs.iter().any(String::is_empty) {
        return Err(unknown());
    }
    let q = Query::parse(raw_query)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let store = &api.store;
    match (method.clone(), segs.as_slice()) {
        (Method::POST, ["apikeys"]) => match q.get("mode") {
            None => create_api_key(store, wire::body(body)?).await,
            Some("import") => import_api_keys(store, &q, body).await,
            Some(other) => Err(AdminError::bad_request(format!(
                "mode: must be import (or absent to create one key), not {}",
                crate::model::shown(other)
            ))),
        },
        (Method::GET, ["apikeys"]) => {
            let query = ApiKeyQuery {
                page: q.page()?,
                name_query: q.string("name"),
                customer_id: q.string("customerId"),
                include_values: q.flag("includeValues")?,
            };
            let page = store.get_api_keys(&query).await?;
            ok(&List {
                position: page.position,
                item: page.items,
            })
        }
        (Method::GET, ["apikeys", id]) => {
            ok(&store.get_api_key(id, q.flag("includeValue")?).await?)
        }
        (Method::PATCH, ["apikeys", id]) => {
            let patch: wire::Patch = wire::body(body)?;
            ok(&store.update_api_key(id, &patch.ops()).await?)
        }
        (Method::DELETE, ["apikeys", id]) => {
            store.delete_api_key(id).await?;
            accepted()
        }
        (Method::POST, ["usageplans"]) => {
            let new: wire::CreateUsagePlan = wire::body(body)?;
            let plan = new.model()?;
            api.check(&plan)?;
            created(&store.create_usage_plan(plan).await?)
        }
        (Method::GET, ["usageplans"]) => {
            let query = UsagePlanQuery {
                page: q.page()?,
                key_id: q.string("keyId"),
            };
            let page = store.get_usage_plans(&query).await?;
            ok(&List {
                position: page.position,
                item: page.items,
            })
        }
        (Method::GET, ["usageplans", id]) => ok(&store.get_usage_plan(id).await?),
        (Method::PATCH, ["usageplans", id]) => {
            let patch: wire::Patch = wire::body(body)?;
            let ops = patch.ops();
            if !api.checks.is_empty() {
                // The plan as the patch would leave it (a patch the store would refuse is left
                // for the store to refuse, in its words).
                let now = store.get_usage_plan(id).await?;
                if let Ok(next) = crate::patch::apply_to_plan(&now, &ops) {
                    api.check(&next)?;
                }
            }
            ok(&store.update_usage_plan(id, &ops).await?)
        }
        (Method::DELETE, ["usageplans", id]) => {
            store.delete_usage_plan(id).await?;
            accepted()
        }
        (Method::POST, ["usageplans", id, "keys"]) => {
            let new: wire::CreateUsagePlanKey = wire::body(body)?;
            if new.key_type != "API_KEY" {
                return Err(AdminError::bad_request(format!(
                    "keyType: must be API_KEY, not {}",
                    crate::model::shown(&new.key_type)
                )));
            }
            let key = store.create_usage_plan_key(id, &new.key_id).await?;
            created(&UsagePlanKeyOut {
                id: key.id,
                kind: "API_KEY",
                name: key.name,
            })
        }
        (Method::GET, ["usageplans", id, "keys"]) => {
            plan_keys(store, id, q.page()?, q.get("name")).await
        }
        (Method::GET, ["usageplans", id, "keys", key_id]) => {
            let plans = store
                .get_usage_plans(&UsagePlanQuery {
                    page: PageRequest::first(MAX_LIMIT),
                    key_id: Some((*key_id).to_owned()),
                })
                .await;
            let in_plan = match plans {
                Ok(p) => p.items.iter().any(|p| p.id == *id),
                Err(crate::error::StoreError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            if !in_plan {
                store.get_usage_plan(id).await?;
                return Err(AdminError::not_found(format!(
                    "the API key {key_id:?} is not in the usage plan {id:?}"
                )));
            }
            let key = store.get_api_key(key_id, false).await?;
            ok(&UsagePlanKeyOut {
                id: key.id,
                kind: "API_KEY",
                name: key.name,
            })
        }
        (Method::DELETE, ["usageplans", id, "keys", key_id]) => {
            store.delete_usage_plan_key(id, key_id).await?;
            accepted()
        }
        (Method::GET, ["usageplans", id, "usage"]) => {
            let date = |name: &str| -> Result<Date, AdminError> {
                let v = q.get(name).ok_or_else(|| {
                    AdminError::bad_request(format!("{name}: is required, a date YYYY-MM-DD"))
                })?;
                Date::parse(v).ok_or_else(|| {
                    AdminError::bad_request(format!(
                        "{name}: must be a date YYYY-MM-DD, not {}",
                        crate::model::shown(v)
                    ))
                })
            };
            let query = UsageQuery {
                usage_plan_id: (*id).to_owned(),
                key_id: q.string("keyId"),
                start_date: date("startDate")?,
                end_date: date("endDate")?,
                page: q.page()?,
            };
            let report = usage::get_usage(store, &api.meter, &query).await?;
            ok(&wire::UsageOut::from(report))
        }
        (Method::PATCH, ["usageplans", id, "keys", key_id, "usage"]) => {
            let patch: wire::Patch = wire::body(body)?;
            usage::update_usage(store, &api.meter, id, key_id, &patch.ops()).await?;
            let today = Date::from_unix_secs(api.clock.unix_nanos() / 1_000_000_000);
            let query = UsageQuery::new(*id, today, today).key(*key_id);
            let report = usage::get_usage(store, &api.meter, &query).await?;
            ok(&wire::UsageOut::from(report))
        }
        _ => Err(unknown()),
    }
}

async fn create_api_key<S: Management>(
    store: &S,
    req: wire::CreateApiKey,
) -> Result<Response, AdminError> {
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

async fn import_api_keys<S: Management>(
    store: &S,
    q: &Query,
    body: &[u8],
) -> Result<Response, AdminError> {
    match q.get("format") {
        Some(f) if f.eq_ignore_ascii_case("csv") => {}
        Some(f) => {
            return Err(AdminError::bad_request(format!(
                "format: must be csv, not {}",
                crate::model::shown(f)
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

/// A page of a plan's keys, filtered by a name prefix (AWS's `nameQuery`) if given: the store's
/// pages are read until one holds a match, so a page is never larger than `limit`.
async fn plan_keys<S: Management>(
    store: &S,
    plan_id: &str,
    mut page: PageRequest,
    name: Option<&str>,
) -> Result<Response, AdminError> {
    loop {
        let got = store.get_usage_plan_keys(plan_id, &page).await?;
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
