//! Patch operations on usage plans: the paths, and what each does.

use super::value::{
    field, non_empty, optional_text, parse_burst, parse_digits, parse_rate, required_value, shown,
    unsupported_op, wrong_op,
};
use super::{PatchOp, PatchOperation};
use crate::error::FieldError;
use crate::model::{check_id, ApiStage, MethodPath, Quota, QuotaPeriod, Throttle, UsagePlan};

const PLAN_PATHS: &str = "replace /name, /description, /productCode, /throttle/rateLimit, \
    /throttle/burstLimit, /quota/limit, /quota/offset, /quota/period; remove /throttle, /quota; \
    add or remove /apiStages (value \"apiId:stage\"); replace \
    /apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}/rateLimit or /burstLimit; remove \
    /apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD} or \
    /apiStages/{apiId}:{stage}/throttle";

/// Applies `ops` in order to `plan` (a copy), refusing a throttle or quota left half made.
pub(super) fn apply(mut plan: UsagePlan, ops: &[PatchOperation]) -> Result<UsagePlan, FieldError> {
    let mut pending: Vec<Pending> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        apply_op(&mut plan, &mut pending, i, op)?;
    }
    if let Some(p) = pending.first() {
        return Err(p.error());
    }
    Ok(plan)
}

/// A quota's offset; checked against the period when the batch is done.
fn parse_offset(i: usize, v: &str) -> Result<u32, FieldError> {
    match v.parse::<u32>() {
        Ok(n) if v.bytes().all(|c| c.is_ascii_digit()) => Ok(n),
        _ => Err(FieldError::new(
            field(i, "value"),
            format!(
                "the quota's offset must be the day its window starts on: 0 for a DAY quota, 0 to \
                 6 for a WEEK quota (0 is Sunday), 0 to 27 for a MONTH quota; not {}",
                shown(v)
            ),
        )),
    }
}

/// A throttle or quota created by parts in this batch, still missing some.
#[derive(Debug)]
struct Pending {
    /// The operation that created it.
    op: usize,
    target: Target,
    /// The path up to the part (`/quota/`, `/apiStages/a:b/throttle/items/GET/`).
    base: String,
    /// The parts still to set (`rateLimit`).
    missing: Vec<&'static str>,
}

#[derive(Debug, PartialEq)]
enum Target {
    PlanThrottle,
    PlanQuota,
    Override {
        api_id: String,
        stage: String,
        key: String,
    },
}

impl Pending {
    fn error(&self) -> FieldError {
        let what = match &self.target {
            Target::PlanThrottle => "the plan's throttle".to_owned(),
            Target::PlanQuota => "the plan's quota".to_owned(),
            Target::Override {
                api_id, stage, key, ..
            } => format!("the per-method throttle {key:?} of stage {api_id}:{stage}"),
        };
        let missing: Vec<String> = self
            .missing
            .iter()
            .map(|m| format!("{}{m}", self.base))
            .collect();
        let rule = match self.target {
            Target::PlanQuota => "a quota needs a limit and a period; its offset defaults to 0",
            _ => "a throttle needs both a rateLimit and a burstLimit, and neither has a default",
        };
        FieldError::new(
            field(self.op, "path"),
            format!(
                "creates {what}, which also needs replace {} in the same batch ({rule})",
                missing.join(" and ")
            ),
        )
    }
}

/// Marks `part` of `target` as set.
fn fill(pending: &mut Vec<Pending>, target: &Target, part: &str) {
    if let Some(pos) = pending.iter().position(|p| p.target == *target) {
        pending[pos].missing.retain(|m| *m != part);
        if pending[pos].missing.is_empty() {
            pending.remove(pos);
        }
    }
}

fn drop_pending(pending: &mut Vec<Pending>, keep: impl Fn(&Target) -> bool) {
    pending.retain(|p| keep(&p.target));
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Part {
    Rate,
    Burst,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Self::Rate => "rateLimit",
            Self::Burst => "burstLimit",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Rate => Self::Burst,
            Self::Burst => Self::Rate,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum QuotaPart {
    Limit,
    Offset,
    Period,
}

/// A parsed usage-plan path.
#[derive(Debug)]
enum PlanPath<'a> {
    Name,
    Description,
    ProductCode,
    Throttle,
    ThrottlePart(Part),
    Quota,
    QuotaPart(QuotaPart),
    ApiStages,
    /// `/apiStages/{apiId}:{stage}/throttle`
    StageThrottles {
        api_id: &'a str,
        stage: &'a str,
    },
    /// `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}`
    Override {
        api_id: &'a str,
        stage: &'a str,
        key: String,
    },
    /// `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}/{part}`
    OverridePart {
        api_id: &'a str,
        stage: &'a str,
        key: String,
        part: Part,
    },
}

impl PlanPath<'_> {
    fn allowed(&self) -> &'static str {
        match self {
            Self::Name
            | Self::Description
            | Self::ProductCode
            | Self::ThrottlePart(_)
            | Self::QuotaPart(_) => "replace",
            Self::OverridePart { .. } => {
                "replace (to remove the method's override, remove the path without /rateLimit or \
                 /burstLimit)"
            }
            Self::Throttle | Self::Quota => "remove (to set it, replace its parts)",
            Self::ApiStages => "add and remove, with the value \"apiId:stage\"",
            Self::StageThrottles { .. } => "remove",
            Self::Override { .. } => {
                "remove (to set the method's override, replace .../rateLimit and .../burstLimit)"
            }
        }
    }
}

fn parse_plan_path(path: &str) -> Result<PlanPath<'_>, String> {
    let p = match path {
        "/name" => PlanPath::Name,
        "/description" => PlanPath::Description,
        "/productCode" => PlanPath::ProductCode,
        "/throttle" => PlanPath::Throttle,
        "/throttle/rateLimit" => PlanPath::ThrottlePart(Part::Rate),
        "/throttle/burstLimit" => PlanPath::ThrottlePart(Part::Burst),
        "/quota" => PlanPath::Quota,
        "/quota/limit" => PlanPath::QuotaPart(QuotaPart::Limit),
        "/quota/offset" => PlanPath::QuotaPart(QuotaPart::Offset),
        "/quota/period" => PlanPath::QuotaPart(QuotaPart::Period),
        "/apiStages" => PlanPath::ApiStages,
        _ => match path.strip_prefix("/apiStages/") {
            Some(rest) => return parse_stage_path(rest),
            None => {
                return Err(format!(
                    "{} is not a usage plan path; valid: {PLAN_PATHS}",
                    shown(path)
                ))
            }
        },
    };
    Ok(p)
}

/// Parses what follows `/apiStages/`.
fn parse_stage_path(rest: &str) -> Result<PlanPath<'_>, String> {
    const FORM: &str = "a stage's path is /apiStages/{apiId}:{stage}/throttle, optionally \
        followed by /{resourcePath}/{METHOD} and then /rateLimit or /burstLimit";
    let (seg, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let (api_id, stage) = match seg.split_once(':') {
        Some((a, s)) if !a.is_empty() && !s.is_empty() => (a, s),
        _ => {
            return Err(format!(
                "names the stage {}, which is not \"{{apiId}}:{{stage}}\"; {FORM}",
                shown(seg)
            ))
        }
    };
    let methods = match tail {
        "throttle" => return Ok(PlanPath::StageThrottles { api_id, stage }),
        _ => match tail.strip_prefix("throttle/") {
            Some(m) => m,
            None => return Err(FORM.to_owned()),
        },
    };
    let (method_part, part) = if let Some(m) = methods.strip_suffix("/rateLimit") {
        (m, Some(Part::Rate))
    } else if let Some(m) = methods.strip_suffix("/burstLimit") {
        (m, Some(Part::Burst))
    } else {
        (methods, None)
    };
    let key = method_key(method_part)?;
    Ok(match part {
        Some(part) => PlanPath::OverridePart {
            api_id,
            stage,
            key,
            part,
        },
        None => PlanPath::Override { api_id, stage, key },
    })
}

/// A method-throttle path, in any form AWS's API and tools write it, as its canonical key:
/// `items/GET`, `~1items/GET` and `/items/GET` are `"/items/GET"`; `v1~1items/GET`,
/// `~1v1~1items/GET` and `/v1/items/GET` are `"/v1/items/GET"`; `/GET`, `~1/GET` and `//GET` are
/// the root's `"//GET"`.
///
/// The resource path is unescaped as a JSON pointer (`~1` is `/`, `~0` is `~`); one leading `/`
/// (escaped or not) is dropped; a raw `/` inside it is kept, as Terraform writes a throttle's
/// `path` into the patch path unescaped. The method is the last segment.
fn method_key(escaped: &str) -> Result<String, String> {
    let form = "the method is written {resourcePath}/{METHOD}: the resource path (items, \
        v1~1items or ~1v1~1items for /v1/items; an empty one or ~1 for the root), then the \
        upper-case method (items/GET for /items GET, //GET for the root)";
    let Some((res, method)) = escaped.rsplit_once('/') else {
        return Err(format!("{} has no method; {form}", shown(escaped)));
    };
    let decoded = unescape(res).map_err(|e| format!("{e}; {form}"))?;
    let resource = decoded.strip_prefix('/').unwrap_or(&decoded);
    let key = if resource.is_empty() {
        format!("//{method}")
    } else if resource.starts_with('/') || resource.ends_with('/') || resource.contains("//") {
        return Err(format!(
            "the resource path {} decodes to {}, which has an empty segment; {form}",
            shown(res),
            shown(&decoded)
        ));
    } else {
        format!("/{resource}/{method}")
    };
    key.parse::<MethodPath>()
        .map_err(|e| format!("{}; {form}", e.reason))?;
    Ok(key)
}

/// JSON-pointer unescaping: `~1` is `/`, `~0` is `~`.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('1') => out.push('/'),
            Some('0') => out.push('~'),
            _ => {
                return Err(format!(
                    "{} has a '~' that is not ~1 (for '/') or ~0 (for '~')",
                    shown(s)
                ))
            }
        }
    }
    Ok(out)
}

fn parse_stage_value(i: usize, v: &str) -> Result<(String, String), FieldError> {
    let err = |why: String| {
        FieldError::new(
            field(i, "value"),
            format!(
                "must name a stage as \"apiId:stage\" (such as \"abc123def4:prod\"); {}",
                why
            ),
        )
    };
    let Some((api_id, stage)) = v.split_once(':') else {
        return Err(err(format!("{} has no ':'", shown(v))));
    };
    check_id("apiId", api_id).map_err(|e| err(e.to_string()))?;
    check_id("stage", stage).map_err(|e| err(e.to_string()))?;
    Ok((api_id.to_owned(), stage.to_owned()))
}

fn find_stage<'p>(
    plan: &'p mut UsagePlan,
    i: usize,
    api_id: &str,
    stage: &str,
) -> Result<&'p mut ApiStage, FieldError> {
    let listed: Vec<String> = plan
        .api_stages
        .iter()
        .map(|s| format!("{}:{}", s.api_id, s.stage))
        .collect();
    match plan
        .api_stages
        .iter_mut()
        .find(|s| s.api_id == api_id && s.stage == stage)
    {
        Some(s) => Ok(s),
        None => Err(FieldError::new(
            field(i, "path"),
            format!(
                "names stage {}, which this plan does not list (it lists: {}); add it first with \
                 add /apiStages and the value \"{api_id}:{stage}\"",
                shown(&format!("{api_id}:{stage}")),
                if listed.is_empty() {
                    "none".to_owned()
                } else {
                    listed.join(", ")
                }
            ),
        )),
    }
}

fn apply_op(
    plan: &mut UsagePlan,
    pending: &mut Vec<Pending>,
    i: usize,
    op: &PatchOperation,
) -> Result<(), FieldError> {
    if matches!(op.op, PatchOp::Move | PatchOp::Copy | PatchOp::Test) {
        return Err(unsupported_op(i, op.op, "usage plans"));
    }
    let path = parse_plan_path(&op.path).map_err(|r| FieldError::new(field(i, "path"), r))?;
    match (op.op, path) {
        (PatchOp::Replace, PlanPath::Name) => {
            plan.name = non_empty(i, required_value(i, op)?, "a usage plan's name")?;
        }
        (PatchOp::Replace, PlanPath::Description) => {
            plan.description = optional_text(required_value(i, op)?);
        }
        (PatchOp::Replace, PlanPath::ProductCode) => {
            plan.product_code = optional_text(required_value(i, op)?);
        }
        (PatchOp::Remove, PlanPath::Throttle) => {
            plan.throttle = None;
            drop_pending(pending, |t| *t != Target::PlanThrottle);
        }
        (PatchOp::Replace, PlanPath::ThrottlePart(part)) => {
            let v = required_value(i, op)?;
            let t = plan.throttle.get_or_insert_with(|| {
                pending.push(Pending {
                    op: i,
                    target: Target::PlanThrottle,
                    base: "/throttle/".to_owned(),
                    missing: vec![part.other().name()],
                });
                placeholder_throttle()
            });
            set_part(t, part, i, v)?;
            fill(pending, &Target::PlanThrottle, part.name());
        }
        (PatchOp::Remove, PlanPath::Quota) => {
            plan.quota = None;
            drop_pending(pending, |t| *t != Target::PlanQuota);
        }
        (PatchOp::Replace, PlanPath::QuotaPart(part)) => {
            let v = required_value(i, op)?;
            let q = plan.quota.get_or_insert_with(|| {
                pending.push(Pending {
                    op: i,
                    target: Target::PlanQuota,
                    base: "/quota/".to_owned(),
                    missing: vec!["limit", "period"],
                });
                Quota {
                    limit: 0,
                    period: QuotaPeriod::Day,
                    offset: 0,
                }
            });
            let name = match part {
                QuotaPart::Limit => {
                    q.limit = parse_digits(i, v, "the quota's limit", u64::MAX)?;
                    "limit"
                }
                QuotaPart::Offset => {
                    // Checked against the period when the batch is done, as the period may change.
                    q.offset = parse_offset(i, v)?;
                    "offset"
                }
                QuotaPart::Period => {
                    q.period = v.parse().map_err(|_| {
                        FieldError::new(
                            field(i, "value"),
                            format!(
                                "the quota's period must be DAY, WEEK or MONTH (in upper case), \
                                 not {}",
                                shown(v)
                            ),
                        )
                    })?;
                    "period"
                }
            };
            fill(pending, &Target::PlanQuota, name);
        }
        (PatchOp::Add, PlanPath::ApiStages) => {
            let (api_id, stage) = parse_stage_value(i, required_value(i, op)?)?;
            if plan
                .api_stages
                .iter()
                .any(|s| s.api_id == api_id && s.stage == stage)
            {
                return Err(FieldError::new(
                    field(i, "value"),
                    format!(
                        "the plan already lists stage {}; a plan lists a stage once",
                        shown(&format!("{api_id}:{stage}"))
                    ),
                ));
            }
            plan.api_stages.push(ApiStage::new(api_id, stage));
        }
        (PatchOp::Remove, PlanPath::ApiStages) => {
            let (api_id, stage) = parse_stage_value(i, required_value(i, op)?)?;
            let Some(pos) = plan
                .api_stages
                .iter()
                .position(|s| s.api_id == api_id && s.stage == stage)
            else {
                return Err(FieldError::new(
                    field(i, "value"),
                    format!(
                        "the plan does not list stage {}, so it cannot be removed",
                        shown(&format!("{api_id}:{stage}"))
                    ),
                ));
            };
            plan.api_stages.remove(pos);
            drop_pending(pending, |t| !is_stage(t, &api_id, &stage));
        }
        (PatchOp::Remove, PlanPath::StageThrottles { api_id, stage }) => {
            find_stage(plan, i, api_id, stage)?.throttle.clear();
            drop_pending(pending, |t| !is_stage(t, api_id, stage));
        }
        (PatchOp::Remove, PlanPath::Override { api_id, stage, key }) => {
            let st = find_stage(plan, i, api_id, stage)?;
            if st.throttle.remove(&key).is_none() {
                return Err(FieldError::new(
                    field(i, "path"),
                    format!(
                        "stage {} has no per-method throttle for {key:?}, so it cannot be removed",
                        shown(&format!("{api_id}:{stage}"))
                    ),
                ));
            }
            let target = override_target(api_id, stage, key);
            drop_pending(pending, |t| *t != target);
        }
        (
            PatchOp::Replace,
            PlanPath::OverridePart {
                api_id,
                stage,
                key,
                part,
            },
        ) => {
            let v = required_value(i, op)?;
            let st = find_stage(plan, i, api_id, stage)?;
            let target = override_target(api_id, stage, key.clone());
            if !st.throttle.contains_key(&key) {
                let base = op.path.len().saturating_sub(part.name().len());
                pending.push(Pending {
                    op: i,
                    target: override_target(api_id, stage, key.clone()),
                    base: op.path.get(..base).unwrap_or_default().to_owned(),
                    missing: vec![part.other().name()],
                });
            }
            let t = st.throttle.entry(key).or_insert_with(placeholder_throttle);
            set_part(t, part, i, v)?;
            fill(pending, &target, part.name());
        }
        (o, p) => return Err(wrong_op(i, o, &op.path, p.allowed())),
    }
    Ok(())
}

fn override_target(api_id: &str, stage: &str, key: String) -> Target {
    Target::Override {
        api_id: api_id.to_owned(),
        stage: stage.to_owned(),
        key,
    }
}

fn is_stage(t: &Target, a: &str, s: &str) -> bool {
    matches!(t, Target::Override { api_id, stage, .. } if api_id == a && stage == s)
}

/// A throttle being made by parts; the pending list makes sure it never leaves this module.
fn placeholder_throttle() -> Throttle {
    Throttle {
        rate_limit: f64::NAN,
        burst_limit: 0,
    }
}

fn set_part(t: &mut Throttle, part: Part, i: usize, v: &str) -> Result<(), FieldError> {
    match part {
        Part::Rate => t.rate_limit = parse_rate(i, v)?,
        Part::Burst => t.burst_limit = parse_burst(i, v)?,
    }
    Ok(())
}
