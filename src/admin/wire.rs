//! The admin API's shapes on the wire, as botocore's `apigateway` service model defines them:
//! request bodies (unknown fields refused), query strings, and responses (timestamps as epoch
//! seconds, lists under `item`, the usage map under `values`).

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::error::AdminError;
use crate::model::{ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan};
use crate::patch::{PatchOp, PatchOperation};
use crate::store::{PageRequest, MAX_LIMIT};
use crate::usage::Usage;

/// Reads a JSON body into `T`; an empty body is `{}`. Errors name the field and what to fix.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // serde reads a struct from an array too (its fields in order): AWS's bodies are objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AdminError::bad_request(
            "the body is not a JSON object; send a JSON object (`{...}`)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            AdminError::bad_request(format!(
                "the body is not valid JSON ({inner}); send a JSON object"
            ))
        } else if path == "." {
            AdminError::bad_request(format!(
                "the body: {}",
                crate::model::wire::json_reason(&inner)
            ))
        } else {
            AdminError::bad_request(format!(
                "{path}: {}",
                crate::model::wire::json_reason(&inner)
            ))
        }
    })?;
    de.end().map_err(|e| {
        AdminError::bad_request(format!(
            "the body has more after its JSON object ({e}); send one object"
        ))
    })?;
    Ok(value)
}

// ------------------------------------------------------------------------------------- requests

/// `create-api-key`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateApiKey {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) enabled: Option<bool>,
    /// Ids are always distinct here; accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) generate_distinct_id: Option<bool>,
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) stage_keys: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub(crate) customer_id: Option<String>,
    #[serde(default)]
    pub(crate) tags: Option<BTreeMap<String, String>>,
}

/// A throttle in a request: both parts optional, as AWS's model has them (0 when missing).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ThrottleIn {
    #[serde(default)]
    burst_limit: Option<u32>,
    #[serde(default)]
    rate_limit: Option<f64>,
}

impl ThrottleIn {
    fn model(&self, field: &str) -> Result<Throttle, AdminError> {
        Throttle::new(
            self.rate_limit.unwrap_or(0.0),
            self.burst_limit.unwrap_or(0),
        )
        .map_err(|e| AdminError::bad_request(format!("{field}.{e}")))
    }
}

/// A quota in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct QuotaIn {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(default)]
    period: Option<String>,
}

impl QuotaIn {
    fn model(&self) -> Result<Quota, AdminError> {
        let limit = self
            .limit
            .ok_or_else(|| AdminError::bad_request("quota.limit: is required"))?;
        let period: QuotaPeriod = self
            .period
            .as_deref()
            .ok_or_else(|| {
                AdminError::bad_request("quota.period: is required: DAY, WEEK or MONTH")
            })?
            .parse()
            .map_err(|e: crate::error::FieldError| {
                AdminError::bad_request(format!("quota.period: {}", e.reason))
            })?;
        Quota::new(limit, period, self.offset.unwrap_or(0))
            .map_err(|e| AdminError::bad_request(format!("quota.{e}")))
    }
}

/// A stage in `create-usage-plan`'s `apiStages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ApiStageIn {
    api_id: String,
    stage: String,
    #[serde(default)]
    throttle: Option<BTreeMap<String, ThrottleIn>>,
}

/// `create-usage-plan`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateUsagePlan {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    api_stages: Option<Vec<ApiStageIn>>,
    #[serde(default)]
    throttle: Option<ThrottleIn>,
    #[serde(default)]
    quota: Option<QuotaIn>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

impl CreateUsagePlan {
    /// The plan to create, with an empty id for the store to fill in.
    pub(crate) fn model(self) -> Result<UsagePlan, AdminError> {
        let mut plan = UsagePlan::new("", self.name);
        plan.description = self.description;
        plan.tags = self.tags.unwrap_or_default();
        plan.throttle = self
            .throttle
            .as_ref()
            .map(|t| t.model("throttle"))
            .transpose()?;
        plan.quota = self.quota.as_ref().map(QuotaIn::model).transpose()?;
        for (i, s) in self.api_stages.unwrap_or_default().into_iter().enumerate() {
            let mut stage = ApiStage::new(s.api_id, s.stage);
            for (method, t) in s.throttle.unwrap_or_default() {
                let field = format!("apiStages[{i}].throttle[{method:?}]");
                stage.throttle.insert(method, t.model(&field)?);
            }
            plan.api_stages.push(stage);
        }
        Ok(plan)
    }
}

/// One patch operation in a request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchIn {
    op: PatchOp,
    path: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    from: Option<String>,
}

/// The body of every `update-*`: `{"patchOperations": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Patch {
    #[serde(default)]
    patch_operations: Option<Vec<PatchIn>>,
}

impl Patch {
    pub(crate) fn ops(self) -> Vec<PatchOperation> {
        self.patch_operations
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let mut op = PatchOperation::remove(p.path);
                op.op = p.op;
                op.value = p.value;
                op.from = p.from;
                op
            })
            .collect()
    }
}

/// `create-usage-plan-key`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateUsagePlanKey {
    pub(crate) key_id: String,
    pub(crate) key_type: String,
}

/// `tag-resource`'s body: `{"tags": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagResource {
    pub(crate) tags: BTreeMap<String, String>,
}

// ------------------------------------------------------------------------------------- queries

/// The query parameters that are lists in AWS's model, given once per item
/// (`tagKeys=a&tagKeys=b`).
const LISTS: &[&str] = &["tagKeys"];

/// A query string's parameters, each named at most once except the lists ([`LISTS`]).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, AdminError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !LISTS.contains(&&*k) && out.iter().any(|(seen, _)| *seen == k) {
                return Err(AdminError::bad_request(format!(
                    "the query parameter {k} is given twice; give it once"
                )));
            }
            out.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(out))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list parameter, in order.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// `true` or `false` (any case); absent is `false`.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, AdminError> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(AdminError::bad_request(format!(
                "{name}: must be true or false, not {}",
                crate::model::shown(v)
            ))),
        }
    }

    /// `position` and `limit` (1 to 500).
    pub(crate) fn page(&self) -> Result<PageRequest, AdminError> {
        let limit = match self.get("limit") {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                AdminError::bad_request(format!(
                    "limit: must be a whole number from 1 to {MAX_LIMIT}, not {}",
                    crate::model::shown(v)
                ))
            })?),
        };
        let page = PageRequest {
            position: self.string("position"),
            limit,
        };
        page.checked_limit()?;
        Ok(page)
    }
}

// ------------------------------------------------------------------------------------- responses

/// A page of a list: AWS's `{"position", "item": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct List<T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) position: Option<String>,
    pub(crate) item: Vec<T>,
}

/// A usage plan key: `{"id", "type": "API_KEY", "name"}` (its value is not shown).
#[derive(Debug, Serialize)]
pub(crate) struct UsagePlanKeyOut {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) name: String,
}

/// `import-api-keys`' answer: `{"ids", "warnings"}`, each warning a sentence.
#[derive(Debug, Serialize)]
pub(crate) struct ApiKeyIds {
    pub(crate) ids: Vec<String>,
    pub(crate) warnings: Vec<String>,
}

/// `get-tags`' answer: `{"tags": {...}}`.
#[derive(Debug, Serialize)]
pub(crate) struct Tags {
    pub(crate) tags: BTreeMap<String, String>,
}

/// A usage report as the model puts it on the wire: the map is `values`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageOut {
    usage_plan_id: String,
    start_date: String,
    end_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<String>,
    values: BTreeMap<String, Vec<(u64, Option<u64>)>>,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            usage_plan_id: u.usage_plan_id,
            start_date: u.start_date.to_string(),
            end_date: u.end_date.to_string(),
            position: u.position,
            values: u.items,
        }
    }
}
