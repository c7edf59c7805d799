//! The stage a layer serves.

use std::fmt;

/// The stage a layer serves: an API's id and a stage name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageRef {
    api_id: Box<str>,
    stage: Box<str>,
    any: bool,
}

impl StageRef {
    /// The stage `stage` of API `api_id`.
    pub fn new(api_id: impl Into<String>, stage: impl Into<String>) -> Self {
        Self {
            api_id: api_id.into().into_boxed_str(),
            stage: stage.into().into_boxed_str(),
            any: false,
        }
    }

    /// Any stage: a key's plan is the first plan it is linked to, whatever stages the plan
    /// lists. This is what [`UsagePlanLayer::new`](crate::UsagePlanLayer::new) serves; name a
    /// stage with the builder when keys have plans on several stages.
    pub fn any() -> Self {
        Self {
            api_id: "*".into(),
            stage: "*".into(),
            any: true,
        }
    }

    /// The API's id (`*` for any).
    pub fn api_id(&self) -> &str {
        &self.api_id
    }

    /// The stage's name (`*` for any).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// Whether this is [`StageRef::any`].
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether a plan's stage `api_id`/`stage` is this one.
    pub fn matches(&self, api_id: &str, stage: &str) -> bool {
        self.any || (*self.api_id == *api_id && *self.stage == *stage)
    }
}

impl fmt::Display for StageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.any {
            f.write_str("any stage")
        } else {
            write!(f, "{}:{}", self.api_id, self.stage)
        }
    }
}
