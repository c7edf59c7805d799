//! AWS's patch operations (`{"op","path","value"}`) applied to a [`UsagePlan`] or an [`ApiKey`].
//!
//! [`apply_to_plan`] and [`apply_to_key`] apply a batch of [`PatchOperation`]s in order to a copy
//! of the item, as `aws apigateway update-usage-plan` / `update-api-key` do, and return the new
//! item only if every operation applies and the result validates. The input is borrowed and never
//! changed. Every error is a [`FieldError`] naming the operation and its part:
//! `patchOperations[2].path`, `patchOperations[2].value` or `patchOperations[2].op`.
//! (A result that fails [`UsagePlan::validate`] / [`ApiKey::validate`] is reported with that
//! error as is.)
//!
//! Values are strings, as in AWS's API; numbers are parsed strictly (`"NaN"`, `"1e400"`, `"-1"`
//! and `""` are refused). Only `add`, `remove` and `replace` are supported: AWS refuses `move`,
//! `copy` and `test` on these resources, and so does this module.
//!
//! # Usage plan paths
//!
//! | op | path | value |
//! |---|---|---|
//! | replace | `/name` | the new name (not empty) |
//! | replace | `/description`, `/productCode` | the new text; `""` clears it |
//! | replace | `/throttle/rateLimit` | requests per second, a decimal number (`"0.5"`) |
//! | replace | `/throttle/burstLimit` | a whole number (0 blocks) |
//! | remove | `/throttle` | — |
//! | replace | `/quota/limit` | requests per window, a whole number |
//! | replace | `/quota/offset` | the window's first day (see [`Quota`](crate::model::Quota)) |
//! | replace | `/quota/period` | `DAY`, `WEEK` or `MONTH` |
//! | remove | `/quota` | — |
//! | add | `/apiStages` | `"apiId:stage"`, a stage not yet listed |
//! | remove | `/apiStages` | `"apiId:stage"`, a listed stage (its per-method throttles go too) |
//! | replace | `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}/rateLimit` | as `/throttle/rateLimit` |
//! | replace | `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}/burstLimit` | as `/throttle/burstLimit` |
//! | remove | `/apiStages/{apiId}:{stage}/throttle/{resourcePath}/{METHOD}` | — (the override must exist) |
//! | remove | `/apiStages/{apiId}:{stage}/throttle` | — (removes all of the stage's overrides) |
//!
//! In the per-method paths the stage must already be listed in the plan (or added earlier in the
//! batch). `{resourcePath}` is the resource path in any of the forms AWS's API, its CLI examples
//! and Terraform write, each stored under one canonical key:
//!
//! | written | stored as |
//! |---|---|
//! | `items/GET`, `~1items/GET`, `/items/GET` | `"/items/GET"` |
//! | `v1~1items/GET`, `~1v1~1items/GET`, `/v1/items/GET` | `"/v1/items/GET"` |
//! | `items~1{id}/GET` | `"/items/{id}/GET"` |
//! | `/GET`, `~1/GET`, `//GET` (the root) | `"//GET"` |
//! | `items/ANY` | `"/items/ANY"` (every method of `/items` without its own entry) |
//!
//! The resource path is unescaped as a JSON pointer (`~1` is `/`, `~0` is `~`), one leading `/`
//! is dropped, and the method is the last segment; an empty segment (`v1~1~1items`) is refused.
//! Overrides are stored in [`ApiStage::throttle`](crate::model::ApiStage::throttle) under those
//! keys.
//!
//! **Zero.** `rateLimit` and `burstLimit` may be `"0"`, as on AWS: a throttle with a zero blocks
//! every request it meters (429), which is how the console and CDK switch a method off.
//!
//! **Creating a throttle or quota by parts.** Replacing one part of a throttle the plan does not
//! have (the plan's `/throttle/...`, or a method's override) creates it, as AWS does. A throttle
//! has no default for its other part, so the same batch must set both `rateLimit` and
//! `burstLimit`; otherwise the batch fails with an error naming the operation that created it and
//! the path still missing. Likewise, creating a quota needs `/quota/limit` and `/quota/period` in
//! the same batch; `/quota/offset` defaults to 0. Removing the half-made item in the same batch
//! lifts the requirement.
//!
//! # API key paths
//!
//! | op | path | value |
//! |---|---|---|
//! | replace | `/name` | the new name (not empty) |
//! | replace | `/description`, `/customerId` | the new text; `""` clears it |
//! | replace | `/enabled` | `"true"` or `"false"` |
//!
//! A key's value cannot be patched: create a new key instead. Errors about keys never repeat a
//! value given in an operation.
//!
//! # Examples
//!
//! The per-method overrides of the article's `update-usage-plan` example:
//!
//! ```
//! use tower_usage_plans::model::{ApiStage, Throttle, UsagePlan};
//! use tower_usage_plans::patch::{apply_to_plan, PatchOperation};
//!
//! let mut plan = UsagePlan::new("plan111", "Free");
//! plan.throttle = Some(Throttle::new(5.0, 10).unwrap());
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//!
//! let at = "/apiStages/abc123def4:prod/throttle";
//! let ops = [
//!     PatchOperation::replace(format!("{at}/items/GET/burstLimit"), "20"),
//!     PatchOperation::replace(format!("{at}/items/GET/rateLimit"), "10"),
//!     PatchOperation::replace(format!("{at}/orders/POST/burstLimit"), "5"),
//!     PatchOperation::replace(format!("{at}/orders/POST/rateLimit"), "2"),
//! ];
//! let new = apply_to_plan(&plan, &ops).unwrap();
//!
//! let overrides = &new.api_stages[0].throttle;
//! assert_eq!(overrides.len(), 2);
//! assert_eq!(overrides["/items/GET"], Throttle::new(10.0, 20).unwrap());
//! assert_eq!(overrides["/orders/POST"], Throttle::new(2.0, 5).unwrap());
//! assert_eq!(new.throttle, plan.throttle); // the plan's own throttle is unchanged
//! assert!(plan.api_stages[0].throttle.is_empty()); // and so is the input
//!
//! // A half-made override is refused, naming the operation that made it.
//! let err = apply_to_plan(&plan, &ops[..1]).unwrap_err();
//! assert_eq!(err.field, "patchOperations[0].path");
//! assert!(err.reason.contains("rateLimit"), "{err}");
//! ```

mod key;
mod plan;
mod value;

use std::fmt;
use std::str::FromStr;

use crate::error::FieldError;
use crate::model::{ApiKey, UsagePlan};
use value::shown;

/// A patch operation's verb, written in lower case in AWS's JSON (`"replace"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "json",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum PatchOp {
    /// `add`: add an item to a list (`/apiStages`).
    Add,
    /// `remove`: remove a value or a list item.
    Remove,
    /// `replace`: set a value.
    Replace,
    /// `move`: not supported on usage plans or API keys.
    Move,
    /// `copy`: not supported on usage plans or API keys.
    Copy,
    /// `test`: not supported on usage plans or API keys.
    Test,
}

impl PatchOp {
    /// The operation as AWS writes it: `"add"`, `"remove"`, `"replace"`, `"move"`, `"copy"`,
    /// `"test"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
            Self::Move => "move",
            Self::Copy => "copy",
            Self::Test => "test",
        }
    }
}

impl fmt::Display for PatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchOp {
    type Err = FieldError;

    /// Parses the lower-case name; the error's field is `op`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "add" => Ok(Self::Add),
            "remove" => Ok(Self::Remove),
            "replace" => Ok(Self::Replace),
            "move" => Ok(Self::Move),
            "copy" => Ok(Self::Copy),
            "test" => Ok(Self::Test),
            other => Err(FieldError::new(
                "op",
                format!(
                    "must be add, remove, replace, move, copy or test (in lower case), not {}",
                    shown(other)
                ),
            )),
        }
    }
}

/// One patch operation, as AWS's JSON writes it: `{"op":"replace","path":"/name","value":"x"}`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "json", derive(serde::Serialize, serde::Deserialize))]
pub struct PatchOperation {
    /// What to do.
    pub op: PatchOp,
    /// What to do it to, a JSON-pointer-like path (`/throttle/rateLimit`).
    pub path: String,
    /// The new value, always a string (`"10"`); `None` for most removes.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub value: Option<String>,
    /// The source path of `move` and `copy`, which these resources do not support.
    #[cfg_attr(
        feature = "json",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub from: Option<String>,
}

impl PatchOperation {
    /// `replace path` with `value`.
    pub fn replace(path: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(PatchOp::Replace, path.into(), Some(value.into()))
    }

    /// `add path` with `value` (for a plan: `add /apiStages` with `"apiId:stage"`).
    pub fn add(path: impl Into<String>, value: impl Into<String>) -> Self {
        Self::new(PatchOp::Add, path.into(), Some(value.into()))
    }

    /// `remove path`, without a value. (`remove /apiStages` needs one: build it with
    /// [`with_value`](Self::with_value).)
    pub fn remove(path: impl Into<String>) -> Self {
        Self::new(PatchOp::Remove, path.into(), None)
    }

    /// The same operation with this value.
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    fn new(op: PatchOp, path: String, value: Option<String>) -> Self {
        Self {
            op,
            path,
            value,
            from: None,
        }
    }
}

/// Applies `ops` in order to a copy of `plan` and returns it; the result passes
/// [`UsagePlan::validate`].
///
/// On any error `plan` is untouched (it is only borrowed) and the error names the operation:
/// its `field` is `patchOperations[i].path`, `.value` or `.op`, and its `reason` says what is
/// wrong and what would be right. See the [module docs](self) for the paths.
pub fn apply_to_plan(plan: &UsagePlan, ops: &[PatchOperation]) -> Result<UsagePlan, FieldError> {
    let out = plan::apply(plan.clone(), ops)?;
    out.validate()?;
    Ok(out)
}

/// Applies `ops` in order to a copy of `key` and returns it; the result passes
/// [`ApiKey::validate`].
///
/// On any error `key` is untouched and the error names the operation, as for
/// [`apply_to_plan`]. No error repeats a value given in an operation.
pub fn apply_to_key(key: &ApiKey, ops: &[PatchOperation]) -> Result<ApiKey, FieldError> {
    let mut out = key.clone();
    for (i, op) in ops.iter().enumerate() {
        key::apply_op(&mut out, i, op)?;
    }
    out.validate()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ApiKeyValue;
    use crate::model::{ApiStage, Quota, QuotaPeriod, Throttle};

    const AT: &str = "/apiStages/abc123def4:prod/throttle";

    fn plan() -> UsagePlan {
        let mut p = UsagePlan::new("plan111", "Free");
        p.throttle = Some(Throttle::new(5.0, 10).unwrap());
        p.api_stages.push(ApiStage::new("abc123def4", "prod"));
        p
    }

    fn key() -> ApiKey {
        ApiKey::new("k1", "alice", ApiKeyValue::new("a".repeat(24)).unwrap())
    }

    fn r(path: &str, value: &str) -> PatchOperation {
        PatchOperation::replace(path, value)
    }

    /// Applies, expects an error with this field, and checks the input is unchanged.
    fn plan_err(p: &UsagePlan, ops: &[PatchOperation], field: &str) -> FieldError {
        let before = p.clone();
        let e = apply_to_plan(p, ops).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert_eq!(*p, before);
        e
    }

    fn key_err(k: &ApiKey, ops: &[PatchOperation], field: &str) -> FieldError {
        let before = k.clone();
        let e = apply_to_key(k, ops).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert_eq!(*k, before);
        e
    }

    #[test]
    fn patch_op_parses_and_prints() {
        for op in [
            PatchOp::Add,
            PatchOp::Remove,
            PatchOp::Replace,
            PatchOp::Move,
            PatchOp::Copy,
            PatchOp::Test,
        ] {
            assert_eq!(op.to_string().parse::<PatchOp>().unwrap(), op);
        }
        assert_eq!(PatchOp::Replace.to_string(), "replace");
        for bad in ["Replace", "REMOVE", "", "delete", " add"] {
            assert_eq!(bad.parse::<PatchOp>().unwrap_err().field, "op");
        }
    }

    #[test]
    fn constructors() {
        let op = PatchOperation::remove("/apiStages").with_value("a:b");
        assert_eq!(op.op, PatchOp::Remove);
        assert_eq!(op.value.as_deref(), Some("a:b"));
        assert_eq!(op.from, None);
        assert_eq!(PatchOperation::add("/apiStages", "a:b").op, PatchOp::Add);
        assert_eq!(PatchOperation::replace("/name", "x").path, "/name");
    }

    #[test]
    fn plan_text_fields() {
        let p = plan();
        let out = apply_to_plan(
            &p,
            &[
                r("/name", "Gold"),
                r("/description", "the gold plan"),
                r("/productCode", "prod-xyz"),
            ],
        )
        .unwrap();
        assert_eq!(out.name, "Gold");
        assert_eq!(out.description.as_deref(), Some("the gold plan"));
        assert_eq!(out.product_code.as_deref(), Some("prod-xyz"));
        let cleared = apply_to_plan(&out, &[r("/description", ""), r("/productCode", "")]).unwrap();
        assert_eq!((cleared.description, cleared.product_code), (None, None));
        plan_err(&p, &[r("/name", "")], "patchOperations[0].value");
        let no_value = PatchOperation {
            value: None,
            ..r("/description", "")
        };
        let e = plan_err(&p, &[no_value], "patchOperations[0].value");
        assert!(e.reason.contains("needs a value"), "{e}");
    }

    #[test]
    fn plan_throttle_parts() {
        let p = plan();
        let out = apply_to_plan(&p, &[r("/throttle/rateLimit", "0.5")]).unwrap();
        assert_eq!(out.throttle, Some(Throttle::new(0.5, 10).unwrap()));
        let out = apply_to_plan(&p, &[r("/throttle/burstLimit", "200")]).unwrap();
        assert_eq!(out.throttle, Some(Throttle::new(5.0, 200).unwrap()));
        let out = apply_to_plan(&p, &[PatchOperation::remove("/throttle")]).unwrap();
        assert_eq!(out.throttle, None);
    }

    #[test]
    fn creating_a_throttle_needs_both_parts() {
        let mut p = plan();
        p.throttle = None;
        let out = apply_to_plan(
            &p,
            &[
                r("/throttle/burstLimit", "3"),
                r("/throttle/rateLimit", "1"),
            ],
        )
        .unwrap();
        assert_eq!(out.throttle, Some(Throttle::new(1.0, 3).unwrap()));
        let e = plan_err(
            &p,
            &[r("/name", "x"), r("/throttle/rateLimit", "1")],
            "patchOperations[1].path",
        );
        assert!(e.reason.contains("/throttle/burstLimit"), "{e}");
        let e = plan_err(
            &p,
            &[r("/throttle/burstLimit", "1")],
            "patchOperations[0].path",
        );
        assert!(e.reason.contains("/throttle/rateLimit"), "{e}");
        // Removing the half-made throttle lifts the requirement.
        let out = apply_to_plan(
            &p,
            &[
                r("/throttle/rateLimit", "1"),
                PatchOperation::remove("/throttle"),
            ],
        )
        .unwrap();
        assert_eq!(out.throttle, None);
    }

    #[test]
    fn bad_numbers_name_the_value() {
        let p = plan();
        for bad in [
            "NaN", "nan", "inf", "-inf", "1e400", "-1", "-0", "+1", "", " 1", "1 ", "ten", "2e9",
            "1e-12",
        ] {
            let e = plan_err(
                &p,
                &[r("/throttle/rateLimit", bad)],
                "patchOperations[0].value",
            );
            assert!(e.reason.contains("rateLimit"), "{e}");
        }
        for bad in [
            "-1",
            "",
            "1.5",
            "4294967296",
            "+3",
            "1e3",
            "NaN",
            " 2",
            "-0",
        ] {
            let e = plan_err(
                &p,
                &[r("/throttle/burstLimit", bad)],
                "patchOperations[0].value",
            );
            assert!(e.reason.contains("burstLimit"), "{e}");
        }
        for bad in ["-1", "", "1.0", "18446744073709551616", "x"] {
            plan_err(&p, &[r("/quota/limit", bad)], "patchOperations[0].value");
        }
        plan_err(&p, &[r("/quota/offset", "-1")], "patchOperations[0].value");
        plan_err(&p, &[r("/quota/period", "day")], "patchOperations[0].value");
        plan_err(
            &p,
            &[r("/quota/period", "YEAR")],
            "patchOperations[0].value",
        );
    }

    #[test]
    fn quota_parts() {
        let p = plan();
        let e = plan_err(&p, &[r("/quota/limit", "1000")], "patchOperations[0].path");
        assert!(e.reason.contains("/quota/period"), "{e}");
        let e = plan_err(&p, &[r("/quota/offset", "1")], "patchOperations[0].path");
        assert!(
            e.reason.contains("/quota/limit") && e.reason.contains("/quota/period"),
            "{e}"
        );
        let out = apply_to_plan(
            &p,
            &[
                r("/quota/period", "WEEK"),
                r("/quota/offset", "1"),
                r("/quota/limit", "1000"),
            ],
        )
        .unwrap();
        assert_eq!(
            out.quota,
            Some(Quota::new(1000, QuotaPeriod::Week, 1).unwrap())
        );
        let out2 = apply_to_plan(&out, &[r("/quota/limit", "5")]).unwrap();
        assert_eq!(out2.quota.unwrap().limit, 5);
        // The offset is checked against the period at the end of the batch.
        let out3 = apply_to_plan(
            &out,
            &[r("/quota/offset", "20"), r("/quota/period", "MONTH")],
        )
        .unwrap();
        assert_eq!(
            out3.quota,
            Some(Quota::new(1000, QuotaPeriod::Month, 20).unwrap())
        );
        let e = plan_err(&out, &[r("/quota/offset", "20")], "quota.offset");
        assert!(e.reason.contains("0 to 6"), "{e}");
        let removed = apply_to_plan(&out, &[PatchOperation::remove("/quota")]).unwrap();
        assert_eq!(removed.quota, None);
        let out = apply_to_plan(
            &p,
            &[r("/quota/limit", "1"), PatchOperation::remove("/quota")],
        )
        .unwrap();
        assert_eq!(out.quota, None);
    }

    #[test]
    fn api_stages_add_and_remove() {
        let p = plan();
        let out = apply_to_plan(&p, &[PatchOperation::add("/apiStages", "xyz:beta")]).unwrap();
        assert_eq!(out.api_stages.len(), 2);
        assert_eq!(
            (&*out.api_stages[1].api_id, &*out.api_stages[1].stage),
            ("xyz", "beta")
        );
        let e = plan_err(
            &p,
            &[PatchOperation::add("/apiStages", "abc123def4:prod")],
            "patchOperations[0].value",
        );
        assert!(e.reason.contains("already"), "{e}");
        let rm = |v: &str| PatchOperation::remove("/apiStages").with_value(v);
        let out = apply_to_plan(&p, &[rm("abc123def4:prod")]).unwrap();
        assert!(out.api_stages.is_empty());
        let e = plan_err(&p, &[rm("abc123def4:dev")], "patchOperations[0].value");
        assert!(e.reason.contains("does not list"), "{e}");
        for bad in ["", "abc", ":prod", "abc:", ":"] {
            plan_err(
                &p,
                &[PatchOperation::add("/apiStages", bad)],
                "patchOperations[0].value",
            );
            plan_err(&p, &[rm(bad)], "patchOperations[0].value");
        }
        plan_err(
            &p,
            &[PatchOperation::remove("/apiStages")],
            "patchOperations[0].value",
        );
    }

    #[test]
    fn overrides_are_created_and_changed() {
        let p = plan();
        let ops = [
            r(&format!("{AT}/items/GET/burstLimit"), "20"),
            r(&format!("{AT}/items/GET/rateLimit"), "10"),
            r(&format!("{AT}/v1~1items/GET/rateLimit"), "1"),
            r(&format!("{AT}/v1~1items/GET/burstLimit"), "2"),
            r(&format!("{AT}/items~1{{id}}/DELETE/rateLimit"), "3"),
            r(&format!("{AT}/items~1{{id}}/DELETE/burstLimit"), "4"),
            r(&format!("{AT}//GET/rateLimit"), "5"),
            r(&format!("{AT}//GET/burstLimit"), "6"),
            r(&format!("{AT}/a~0b/PUT/rateLimit"), "7"),
            r(&format!("{AT}/a~0b/PUT/burstLimit"), "8"),
        ];
        let out = apply_to_plan(&p, &ops).unwrap();
        let t = &out.api_stages[0].throttle;
        let want = [
            ("/items/GET", 10.0, 20),
            ("/v1/items/GET", 1.0, 2),
            ("/items/{id}/DELETE", 3.0, 4),
            ("//GET", 5.0, 6),
            ("/a~b/PUT", 7.0, 8),
        ];
        assert_eq!(t.len(), want.len());
        for (k, rate, burst) in want {
            assert_eq!(t[k], Throttle::new(rate, burst).unwrap(), "{k}");
        }
        // Changing one part of an existing override keeps the other.
        let out2 = apply_to_plan(&out, &[r(&format!("{AT}/items/GET/rateLimit"), "0.5")]).unwrap();
        assert_eq!(
            out2.api_stages[0].throttle["/items/GET"],
            Throttle::new(0.5, 20).unwrap()
        );
        // A stage added earlier in the batch can take overrides.
        let out3 = apply_to_plan(
            &p,
            &[
                PatchOperation::add("/apiStages", "q:beta"),
                r("/apiStages/q:beta/throttle/x/GET/rateLimit", "1"),
                r("/apiStages/q:beta/throttle/x/GET/burstLimit", "1"),
            ],
        )
        .unwrap();
        assert_eq!(out3.api_stages[1].throttle.len(), 1);
    }

    #[test]
    fn half_made_overrides_are_refused() {
        let p = plan();
        let e = plan_err(
            &p,
            &[
                r(&format!("{AT}/items/GET/burstLimit"), "20"),
                r(&format!("{AT}/items/GET/rateLimit"), "10"),
                r(&format!("{AT}/orders/POST/burstLimit"), "5"),
            ],
            "patchOperations[2].path",
        );
        assert!(e.reason.contains("\"/orders/POST\""), "{e}");
        assert!(
            e.reason.contains(&format!("{AT}/orders/POST/rateLimit")),
            "{e}"
        );
        // Removed in the same batch: fine.
        for rm in [
            PatchOperation::remove(format!("{AT}/orders/POST")),
            PatchOperation::remove(AT),
            PatchOperation::remove("/apiStages").with_value("abc123def4:prod"),
        ] {
            apply_to_plan(&p, &[r(&format!("{AT}/orders/POST/burstLimit"), "5"), rm]).unwrap();
        }
    }

    #[test]
    fn overrides_need_a_plan_throttle() {
        let mut p = plan();
        p.throttle = None;
        let e = plan_err(
            &p,
            &[
                r(&format!("{AT}/items/GET/burstLimit"), "20"),
                r(&format!("{AT}/items/GET/rateLimit"), "10"),
            ],
            "apiStages[0].throttle",
        );
        assert!(e.reason.contains("plan-level throttle"), "{e}");
    }

    #[test]
    fn overrides_are_removed() {
        let p = apply_to_plan(
            &plan(),
            &[
                r(&format!("{AT}/items/GET/burstLimit"), "20"),
                r(&format!("{AT}/items/GET/rateLimit"), "10"),
                r(&format!("{AT}//GET/burstLimit"), "2"),
                r(&format!("{AT}//GET/rateLimit"), "1"),
            ],
        )
        .unwrap();
        let out = apply_to_plan(&p, &[PatchOperation::remove(format!("{AT}//GET"))]).unwrap();
        assert_eq!(
            out.api_stages[0].throttle.keys().collect::<Vec<_>>(),
            ["/items/GET"]
        );
        let out = apply_to_plan(&p, &[PatchOperation::remove(AT)]).unwrap();
        assert!(out.api_stages[0].throttle.is_empty());
        let e = plan_err(
            &p,
            &[PatchOperation::remove(format!("{AT}/orders/POST"))],
            "patchOperations[0].path",
        );
        assert!(e.reason.contains("no per-method throttle"), "{e}");
        // Removing the stage removes its overrides.
        let out = apply_to_plan(
            &p,
            &[PatchOperation::remove("/apiStages").with_value("abc123def4:prod")],
        )
        .unwrap();
        assert!(out.api_stages.is_empty());
    }

    #[test]
    fn override_paths_are_checked() {
        let p = plan();
        let e = plan_err(
            &p,
            &[r(
                "/apiStages/abc123def4:dev/throttle/items/GET/rateLimit",
                "1",
            )],
            "patchOperations[0].path",
        );
        assert!(e.reason.contains("abc123def4:prod"), "{e}");
        plan_err(
            &p,
            &[PatchOperation::remove("/apiStages/zzz:prod/throttle")],
            "patchOperations[0].path",
        );
        for bad in [
            format!("{AT}/items/get/rateLimit"),
            format!("{AT}/items/rateLimit"),
            format!("{AT}/GET/rateLimit"),
            format!("{AT}/~1~1items/GET/rateLimit"),
            format!("{AT}///items/GET/rateLimit"),
            format!("{AT}/v1//items/GET/rateLimit"),
            format!("{AT}/items~1/GET/rateLimit"),
            format!("{AT}/a~1~1b/GET/rateLimit"),
            format!("{AT}/a~2/GET/rateLimit"),
            format!("{AT}/a~/GET/rateLimit"),
            format!("{AT}/items/GET/rate"),
            format!("{AT}/rateLimit"),
            format!("{AT}/"),
            "/apiStages/abc123def4prod/throttle/items/GET/rateLimit".to_owned(),
            "/apiStages/abc123def4:prod/throttles/items/GET/rateLimit".to_owned(),
            "/apiStages/abc123def4:prod".to_owned(),
            "/apiStages/".to_owned(),
        ] {
            plan_err(&p, &[r(&bad, "1")], "patchOperations[0].path");
        }
        let e = plan_err(
            &p,
            &[r(&format!("{AT}/v1~1~1items/GET/rateLimit"), "1")],
            "patchOperations[0].path",
        );
        assert!(e.reason.contains("~1"), "{e}");
    }

    #[test]
    fn zero_throttles_are_accepted_as_aws_accepts_them() {
        let out = apply_to_plan(
            &plan(),
            &[
                r("/throttle/burstLimit", "0"),
                r(&format!("{AT}/items/GET/rateLimit"), "0"),
                r(&format!("{AT}/items/GET/burstLimit"), "0"),
                r(&format!("{AT}/items/POST/rateLimit"), "0.0"),
                r(&format!("{AT}/items/POST/burstLimit"), "7"),
            ],
        )
        .unwrap();
        assert_eq!(out.throttle.unwrap().burst_limit, 0);
        assert!(out.throttle.unwrap().is_blocked());
        let t = &out.api_stages[0].throttle;
        assert_eq!(t["/items/GET"], Throttle::new(0.0, 0).unwrap());
        assert_eq!(t["/items/POST"], Throttle::new(0.0, 7).unwrap());
    }

    #[test]
    fn every_form_of_a_method_path_is_one_key() {
        let forms = [
            ("items/GET", "/items/GET"),
            ("~1items/GET", "/items/GET"),
            ("/items/GET", "/items/GET"),
            ("v1~1items/GET", "/v1/items/GET"),
            ("~1v1~1items/GET", "/v1/items/GET"),
            ("/v1/items/GET", "/v1/items/GET"),
            ("v1/items/GET", "/v1/items/GET"),
            ("~1v1/items/GET", "/v1/items/GET"),
            ("items~1{id}/ANY", "/items/{id}/ANY"),
            ("/GET", "//GET"),
            ("~1/GET", "//GET"),
            ("//GET", "//GET"),
        ];
        for (form, key) in forms {
            let out = apply_to_plan(
                &plan(),
                &[
                    r(&format!("{AT}/{form}/rateLimit"), "1"),
                    r(&format!("{AT}/{form}/burstLimit"), "1"),
                ],
            )
            .unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(
                out.api_stages[0].throttle.keys().collect::<Vec<_>>(),
                [key],
                "{form}"
            );
            // The other forms name the same override.
            for (other, same) in forms {
                if same == key {
                    let gone =
                        apply_to_plan(&out, &[PatchOperation::remove(format!("{AT}/{other}"))])
                            .unwrap_or_else(|e| panic!("{form} then {other}: {e}"));
                    assert!(gone.api_stages[0].throttle.is_empty());
                }
            }
        }
    }

    #[test]
    fn wrong_ops_name_the_op() {
        let p = plan();
        let cases = [
            PatchOperation::add("/name", "x"),
            PatchOperation::remove("/name"),
            PatchOperation::remove("/description"),
            PatchOperation::add("/throttle/rateLimit", "1"),
            PatchOperation::remove("/throttle/rateLimit"),
            r("/throttle", "1"),
            r("/quota", "1"),
            PatchOperation::add("/quota/limit", "1"),
            r("/apiStages", "a:b"),
            r(AT, "1"),
            r(&format!("{AT}/items/GET"), "1"),
            PatchOperation::remove(format!("{AT}/items/GET/rateLimit")),
            PatchOperation::add(format!("{AT}/items/GET/rateLimit"), "1"),
        ];
        for op in cases {
            let e = plan_err(&p, std::slice::from_ref(&op), "patchOperations[0].op");
            assert!(e.reason.contains("supports only"), "{op:?}: {e}");
        }
        for op in [PatchOp::Move, PatchOp::Copy, PatchOp::Test] {
            let o = PatchOperation {
                op,
                path: "/name".into(),
                value: Some("x".into()),
                from: Some("/description".into()),
            };
            let e = plan_err(&p, &[r("/name", "ok"), o.clone()], "patchOperations[1].op");
            assert!(e.reason.contains("does not support"), "{e}");
            key_err(&key(), &[o], "patchOperations[0].op");
        }
    }

    #[test]
    fn unknown_plan_paths_list_the_valid_ones() {
        let p = plan();
        for bad in [
            "/tags",
            "name",
            "/Name",
            "/name/",
            "",
            "/",
            "/throttle/rate",
            "/id",
        ] {
            let e = plan_err(
                &p,
                &[r("/name", "ok"), r("/name", "ok"), r(bad, "1")],
                "patchOperations[2].path",
            );
            assert!(e.reason.contains("/quota/period"), "{e}");
        }
    }

    #[test]
    fn key_fields() {
        let k = key();
        let out = apply_to_key(
            &k,
            &[
                r("/name", "bob"),
                r("/description", "d"),
                r("/enabled", "false"),
                r("/customerId", "c-1"),
            ],
        )
        .unwrap();
        assert_eq!(out.name, "bob");
        assert_eq!(out.description.as_deref(), Some("d"));
        assert!(!out.enabled);
        assert_eq!(out.customer_id.as_deref(), Some("c-1"));
        assert_eq!(out.value, k.value);
        let back = apply_to_key(
            &out,
            &[
                r("/enabled", "true"),
                r("/description", ""),
                r("/customerId", ""),
            ],
        )
        .unwrap();
        assert!(back.enabled);
        assert_eq!((back.description, back.customer_id), (None, None));
    }

    #[test]
    fn key_errors() {
        let k = key();
        let secret = "b".repeat(30);
        let e = key_err(&k, &[r("/value", &secret)], "patchOperations[0].path");
        assert!(e.reason.contains("cannot be changed"), "{e}");
        assert!(!e.to_string().contains(&secret));
        for bad in ["TRUE", "yes", "1", "", "false "] {
            let e = key_err(&k, &[r("/enabled", bad)], "patchOperations[0].value");
            assert!(e.reason.contains("\"true\" or \"false\""), "{e}");
        }
        key_err(&k, &[r("/name", "")], "patchOperations[0].value");
        key_err(
            &k,
            &[PatchOperation::remove("/description")],
            "patchOperations[0].op",
        );
        key_err(
            &k,
            &[PatchOperation::add("/name", "x")],
            "patchOperations[0].op",
        );
        let e = key_err(
            &k,
            &[r("/name", "ok"), r(&format!("/{secret}"), "x")],
            "patchOperations[1].path",
        );
        assert!(e.reason.contains("/customerId"), "{e}");
        let no_value = PatchOperation {
            value: None,
            ..r("/name", "")
        };
        key_err(&k, &[no_value], "patchOperations[0].value");
        // A result that fails validation is reported as validate reports it.
        let mut bad = k.clone();
        bad.id.clear();
        key_err(&bad, &[r("/name", "x")], "id");
    }

    #[test]
    fn empty_batches_return_a_copy() {
        assert_eq!(apply_to_plan(&plan(), &[]).unwrap(), plan());
        assert_eq!(apply_to_key(&key(), &[]).unwrap(), key());
    }

    #[test]
    fn garbage_never_panics() {
        let paths = [
            "",
            "/",
            "//",
            "~",
            "~1",
            "~0",
            "/~",
            "/~1",
            "/apiStages",
            "/apiStages/",
            "/apiStages//",
            "/apiStages/:",
            "/apiStages/::",
            "/apiStages/a:b",
            "/apiStages/a:b/",
            "/apiStages/a:b/throttle/",
            "/apiStages/a:b/throttle//",
            "/apiStages/a:b/throttle///",
            "/apiStages/abc123def4:prod/throttle/",
            "/apiStages/abc123def4:prod/throttle//",
            "/apiStages/abc123def4:prod/throttle///GET",
            "/apiStages/abc123def4:prod/throttle//rateLimit",
            "/apiStages/abc123def4:prod/throttle/rateLimit",
            "/apiStages/abc123def4:prod/throttle/~/GET/rateLimit",
            "/apiStages/abc123def4:prod/throttle/é/GET/rateLimit",
            "/apiStages/abc123def4:prod/throttle/日本/GÉT/burstLimit",
            "/apiStages/abc123def4:prod/throttle/a/\u{0}/rateLimit",
            "/apiStages/abc123def4:prod/throttle/a/GET\n/rateLimit",
            "/apiStages/abc123def4:prod/throttle/a/GET/rateLimit/",
            "/apiStages/é:ü/throttle",
            "/throttle/",
            "/quota/",
            "/日本語",
            "\u{0}",
            "/name\u{0}",
            "/value",
            "/enabled",
            "/customerId",
        ];
        let long = "x".repeat(10_000);
        let values = [
            "",
            " ",
            "~",
            "NaN",
            "-NaN",
            "inf",
            "1e400",
            "-1",
            "0",
            "1",
            "1.5",
            "é",
            "日本:語",
            ":",
            "a:b",
            "abc123def4:prod",
            "\u{0}",
            "DAY",
            "true",
            "99999999999999999999999",
            long.as_str(),
        ];
        let ops = [
            PatchOp::Add,
            PatchOp::Remove,
            PatchOp::Replace,
            PatchOp::Move,
        ];
        let p = plan();
        let k = key();
        for path in paths.iter().copied().chain([long.as_str()]) {
            for value in values.iter().map(|v| Some(v.to_string())).chain([None]) {
                for op in ops {
                    let o = PatchOperation {
                        op,
                        path: path.to_owned(),
                        value: value.clone(),
                        from: None,
                    };
                    if let Err(e) = apply_to_plan(&p, std::slice::from_ref(&o)) {
                        assert!(e.field.starts_with("patchOperations[0]"), "{o:?}: {e}");
                        assert!(e.to_string().len() < 2_000, "{o:?}");
                    }
                    let _ = apply_to_key(&k, &[o]);
                }
            }
        }
        assert_eq!(p, plan());
        assert_eq!(k, key());
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_shape() {
        let op = r("/name", "x");
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"op":"replace","path":"/name","value":"x"}"#
        );
        assert_eq!(
            serde_json::to_string(&PatchOperation::remove("/quota")).unwrap(),
            r#"{"op":"remove","path":"/quota"}"#
        );
        let back: PatchOperation =
            serde_json::from_str(r#"{"op":"replace","path":"/name","value":"x"}"#).unwrap();
        assert_eq!(back, op);
        let list: Vec<PatchOperation> = serde_json::from_str(
            r#"[{"op":"remove","path":"/throttle"},{"op":"move","path":"/a","from":"/b"}]"#,
        )
        .unwrap();
        assert_eq!(list[0], PatchOperation::remove("/throttle"));
        assert_eq!(list[1].from.as_deref(), Some("/b"));
        assert!(serde_json::from_str::<PatchOperation>(r#"{"op":"Replace","path":"/n"}"#).is_err());
    }

    #[test]
    fn offsets_say_the_range_of_each_period() {
        let p = plan();
        let e = plan_err(&p, &[r("/quota/offset", "-1")], "patchOperations[0].value");
        assert!(e.reason.contains("0 to 27 for a MONTH quota"), "{e}");
        assert!(!e.reason.contains("4294967295"), "{e}");
        let with_quota =
            apply_to_plan(&p, &[r("/quota/limit", "10"), r("/quota/period", "DAY")]).unwrap();
        let e = plan_err(&with_quota, &[r("/quota/offset", "2")], "quota.offset");
        assert!(e.reason.contains("a DAY quota takes only offset 0"), "{e}");
        assert!(!e.reason.contains("0 to 0"), "{e}");
        let e = plan_err(
            &p,
            &[r("/throttle/rateLimit", "1e308")],
            "patchOperations[0].value",
        );
        assert!(e.reason.contains("requests per second"), "{e}");
        assert!(e.to_string().len() < 300, "{e}");
    }

    /// Operations as an admin API receives them: malformed JSON is a serde error, and anything
    /// that parses is applied or refused, never a panic.
    #[cfg(feature = "json")]
    #[test]
    fn malformed_operations_are_errors_not_panics() {
        for text in [
            "",
            "{}",
            "[{}]",
            r#"[{"op": "replace"}]"#,
            r#"[{"op": "REPLACE", "path": "/name", "value": "x"}]"#,
            r#"[{"op": "replace", "path": 5, "value": "x"}]"#,
            r#"[{"op": "replace", "path": "/name", "value": 5}]"#,
            r#"[{"op": "replace", "path": "/name", "value": "x"]"#,
        ] {
            assert!(
                serde_json::from_str::<Vec<PatchOperation>>(text).is_err(),
                "{text}"
            );
        }
        let p = plan();
        let k = key();
        for text in [
            r#"[{"op": "replace", "path": "/quota/offset", "value": "-1"}]"#,
            r#"[{"op": "replace", "path": "/throttle/rateLimit", "value": "1e999"}]"#,
            r#"[{"op": "replace", "path": "/throttle/burstLimit"}]"#,
            r#"[{"op": "add", "path": "/apiStages", "value": ":"}]"#,
            r#"[{"op": "remove", "path": "/apiStages/abc123def4:prod/throttle/~2/GET"}]"#,
            r#"[{"op": "move", "path": "/name", "from": "/description"}]"#,
            r#"[{"op": "test", "path": "", "value": ""}]"#,
            r#"[{"op": "replace", "path": "/enabled", "value": "maybe"}]"#,
            r#"[{"op": "replace", "path": "/value", "value": "bbbbbbbbbbbbbbbbbbbbbbbb"}]"#,
        ] {
            let ops: Vec<PatchOperation> = serde_json::from_str(text).unwrap();
            let plan_err = apply_to_plan(&p, &ops).unwrap_err();
            let key_err = apply_to_key(&k, &ops).unwrap_err();
            for e in [plan_err, key_err] {
                assert!(e.field.starts_with("patchOperations[0]"), "{text}: {e}");
                assert!(!e.to_string().contains("bbbbbbbbbbbbbbbbbbbb"), "{e}");
            }
        }
        assert_eq!(p, plan());
        assert_eq!(k, key());
    }
}
