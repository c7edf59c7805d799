//! An admin API that speaks Amazon API Gateway's own management protocol (feature `admin`), so
//! that the aws CLI and boto3 manage keys, plans and usage with `--endpoint-url`.
//!
//! [`AdminApi`] builds an axum [`Router`](axum::Router) serving the subset of API Gateway's
//! REST API that usage plans need, on the wire exactly as botocore's `apigateway` service model
//! defines it (rest-json):
//!
//! | CLI command | request |
//! |---|---|
//! | `create-api-key`, `get-api-keys`, `import-api-keys` | `POST`, `GET /apikeys`; `POST /apikeys?mode=import&format=csv` |
//! | `get-api-key`, `update-api-key`, `delete-api-key` | `GET`, `PATCH`, `DELETE /apikeys/{api_Key}` |
//! | `create-usage-plan`, `get-usage-plans` | `POST`, `GET /usageplans` |
//! | `get-usage-plan`, `update-usage-plan`, `delete-usage-plan` | `GET`, `PATCH`, `DELETE /usageplans/{usageplanId}` |
//! | `create-usage-plan-key`, `get-usage-plan-keys` | `POST`, `GET /usageplans/{usageplanId}/keys` |
//! | `get-usage-plan-key`, `delete-usage-plan-key` | `GET`, `DELETE /usageplans/{usageplanId}/keys/{keyId}` |
//! | `get-usage` | `GET /usageplans/{usageplanId}/usage` |
//! | `update-usage` | `PATCH /usageplans/{usageplanId}/keys/{keyId}/usage` |
//! | `tag-resource`, `untag-resource`, `get-tags` | `PUT`, `DELETE` (`?tagKeys=..`), `GET /tags/{resource_arn}` |
//!
//! Each operation is one handler on axum's [`Router`](axum::Router); the signature check, the
//! body limit and a log line per request are layers around them. Any other path or method is 404
//! `NotFoundException` naming what the server serves.
//!
//! **Tags.** `create-api-key --tags` and `create-usage-plan --tags` set a key's or plan's tags;
//! `tag-resource` adds or replaces some (204), `untag-resource` removes some (204), `get-tags`
//! answers `{"tags": {...}}`. The resource is named by the ARN AWS gives it,
//! `arn:aws:apigateway:{region}::/apikeys/{id}` or `arn:aws:apigateway:{region}::/usageplans/{id}`
//! (any partition and region are read; the region is not checked). A malformed ARN is 400
//! `BadRequestException`, an unknown key or plan (or another kind of resource) 404
//! `NotFoundException`, and a tag that breaks AWS's limits or this crate's own grammar for
//! `usageplans:` keys ([`tags`](crate::tags)) 400 naming the tag. For example (the prefix is
//! reserved for the crate's extensions; no `usageplans:` tag changes what the layer does yet):
//!
//! ```text
//! aws apigateway tag-resource --resource-arn arn:aws:apigateway:us-east-1::/apikeys/KEYID \
//!     --tags usageplans:note=trial,team=billing
//! aws apigateway get-tags --resource-arn arn:aws:apigateway:us-east-1::/apikeys/KEYID
//! aws apigateway untag-resource --resource-arn arn:aws:apigateway:us-east-1::/apikeys/KEYID \
//!     --tag-keys team
//! ```
//!
//! It serves any store that implements [`Management`] (and reads usage from any [`Meter`]); give
//! it clones of the store and meter the [`UsagePlanLayer`](crate::UsagePlanLayer) uses, and every
//! change applies to the data path at its next request. Lists come under `item` with a
//! `position`; timestamps are epoch seconds; get-usage's map is `values`. A key's value is shown
//! only by create-api-key and by `includeValue(s)`.
//!
//! **Errors** are AWS's: the status, the `x-amzn-ErrorType` header and `{"message": "..."}`
//! (one error type answers them all). Bad input (malformed JSON, an unknown field, a wrong type, a patch path AWS
//! rejects, a page size outside 1 to 500, a body over the [limit](AdminApi::body_limit)) is 400
//! `BadRequestException` naming what to fix; an unknown id 404 `NotFoundException`; a broken
//! rule 409 `ConflictException`. A refused request changes nothing.
//!
//! **Authentication** is AWS Signature Version 4, as the CLI and boto3 sign every request,
//! verified against the configured [`AccessKey`]s: the arithmetic is the `aws-sigv4` crate's,
//! the signatures are compared in constant time, and `X-Amz-Date` must be within
//! [`max_skew`](AdminApi::max_skew) (5 minutes) of the server's clock. No signature: 403
//! `MissingAuthenticationTokenException`; an unknown access key: 403
//! `UnrecognizedClientException`; a wrong or stale signature: 403 `InvalidSignatureException`; a
//! malformed `Authorization` header: 400 `IncompleteSignatureException`. The check comes before
//! anything else, so a refused request reads and changes nothing. For local use only,
//! [`no_auth`](AdminApi::no_auth) switches it off, explicitly: a router without access keys and
//! without `no_auth` is refused.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::admin::{AccessKey, AdminApi};
//! use tower_usage_plans::{LocalMeter, MemoryStore};
//!
//! let (store, meter) = (MemoryStore::new(), LocalMeter::new());
//! // The layer on the data path gets clones of the same store and meter.
//! let admin: axum::Router = AdminApi::new(store.clone(), meter.clone())
//!     .access_key(AccessKey::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
//!     .router()
//!     .unwrap();
//! // Serve it on its own port: axum::serve(listener, admin), then
//! // aws apigateway get-usage-plans --endpoint-url http://127.0.0.1:3001
//!
//! // Neither access keys nor an explicit opt-out: refused.
//! let err = AdminApi::new(store, meter).router().unwrap_err();
//! assert!(err.to_string().contains("no_auth"));
//! ```

mod arn;
mod auth;
mod error;
mod extract;
mod router;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::meter::Meter;
use crate::store::Management;

pub use auth::{AccessKey, SERVICE};
pub use error::AdminConfigError;

/// The largest request body read by default: 512 KiB (a CSV of several thousand keys).
pub const DEFAULT_BODY_LIMIT: usize = 512 * 1024;

/// How far `X-Amz-Date` may be from the server's clock by default: 5 minutes, as AWS allows.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// The builder of the admin API's [`Router`](axum::Router). See the [module docs](self).
#[must_use]
pub struct AdminApi<S, M> {
    store: S,
    meter: M,
    keys: Vec<AccessKey>,
    no_auth: bool,
    max_skew: Duration,
    clock: Arc<dyn Clock>,
    body_limit: usize,
    checks: Vec<router::PlanCheck>,
}

impl<S, M> fmt::Debug for AdminApi<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminApi")
            .field("keys", &self.keys)
            .field("no_auth", &self.no_auth)
            .field("max_skew", &self.max_skew)
            .field("body_limit", &self.body_limit)
            .field("plan_checks", &self.checks.len())
            .finish_non_exhaustive()
    }
}

impl<S: Management, M: Meter> AdminApi<S, M> {
    /// An admin API over `store` (keys, plans, links) and `meter` (usage), with no access keys
    /// yet.
    pub fn new(store: S, meter: M) -> Self {
        Self {
            store,
            meter,
            keys: Vec::new(),
            no_auth: false,
            max_skew: DEFAULT_MAX_SKEW,
            clock: Arc::new(SystemClock),
            body_limit: DEFAULT_BODY_LIMIT,
            checks: Vec::new(),
        }
    }

    /// Accepts requests signed with this access key.
    pub fn access_key(mut self, key: AccessKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts requests signed with any of these access keys.
    pub fn access_keys(mut self, keys: impl IntoIterator<Item = AccessKey>) -> Self {
        self.keys.extend(keys);
        self
    }

    /// Serves every request without checking a signature. For local use only: anyone who
    /// reaches the port can then create keys and read their values.
    pub fn no_auth(mut self) -> Self {
        self.no_auth = true;
        self
    }

    /// How far a request's `X-Amz-Date` may be from the server's clock (default
    /// [`DEFAULT_MAX_SKEW`]).
    pub fn max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// The clock that signatures' dates and update-usage's "today" are read from (default
    /// [`SystemClock`]).
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The largest request body read, in bytes (default [`DEFAULT_BODY_LIMIT`]); a larger one is
    /// refused with `BadRequestException`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Refuses a plan created or changed (`create-usage-plan`, `update-usage-plan`) that `layer`
    /// could never apply, with `400 BadRequestException` naming the throttle and why
    /// ([`UsagePlanLayer::check_plan`](crate::UsagePlanLayer::check_plan)), as AWS refuses a
    /// method throttle for a method its API does not have. Without it such a change is stored,
    /// never applies, and makes [`build`](crate::UsagePlanLayerBuilder::build) refuse the
    /// plans at the next start. Call it once per layer the store serves.
    pub fn check_plans_with<St, Me>(mut self, layer: &crate::UsagePlanLayer<St, Me>) -> Self
    where
        St: Send + Sync + 'static,
        Me: Send + Sync + 'static,
    {
        let layer = layer.clone();
        self.checks
            .push(Arc::new(move |plan: &crate::model::UsagePlan| {
                layer.check_plan(plan)
            }));
        self
    }

    /// The router. Serve it on a port of its own (it answers every path).
    pub fn router(self) -> Result<axum::Router, AdminConfigError> {
        let verifier = match (self.keys.is_empty(), self.no_auth) {
            (true, false) => return Err(AdminConfigError::NoAccessKeys),
            (false, true) => return Err(AdminConfigError::Contradictory),
            (true, true) => None,
            (false, false) => {
                let mut ids: Vec<&str> = self.keys.iter().map(AccessKey::id).collect();
                ids.sort_unstable();
                if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
                    return Err(AdminConfigError::DuplicateAccessKey(w[0].to_owned()));
                }
                Some(auth::Verifier::new(
                    &self.keys,
                    self.max_skew,
                    self.clock.clone(),
                ))
            }
        };
        let shared = Arc::new(router::Shared {
            store: self.store,
            meter: self.meter,
            clock: self.clock,
            body_limit: self.body_limit,
            checks: self.checks,
        });
        let mut router = router::routes::<S, M>().with_state(shared);
        // Layers run outside in: the log, the body limit, then the signature (which reads the
        // body within the limit), then the operation's handler.
        if let Some(verifier) = verifier {
            let auth = Arc::new(auth::Auth {
                verifier,
                body_limit: self.body_limit,
            });
            router = router.layer(axum::middleware::from_fn_with_state(
                auth,
                auth::require_sigv4,
            ));
        }
        Ok(router
            .layer(axum::extract::DefaultBodyLimit::max(self.body_limit))
            .layer(axum::middleware::from_fn(router::log)))
    }
}
