//! The shapes of Amazon API Gateway's usage plans and API keys, and their validation.
//!
//! The types mirror the JSON that AWS's CLI prints: [`ApiKey`], [`UsagePlan`] with its
//! [`Throttle`], [`Quota`] and [`ApiStage`]s, and the per-method throttle keys
//! (`"/items/GET"`, `"//GET"` for the root) parsed as [`MethodPath`]. Every constructor and
//! [`validate`](UsagePlan::validate) says which field is wrong and why.
//!
//! With the `json` feature (on by default) the types implement serde's `Serialize` and
//! `Deserialize` in AWS's camelCase shapes; [`Config`](crate::config::Config) reads and writes
//! whole configurations with them and names the item and field of any error.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiKeyValue, MethodPath, Quota, QuotaPeriod, Throttle};
//!
//! let t = Throttle::new(0.1, 1).unwrap(); // one request every ten seconds
//! assert_eq!(t.rate_limit, 0.1);
//! assert!(Throttle::new(f64::NAN, 1).is_err());
//!
//! let q = Quota::new(1000, QuotaPeriod::Week, 1).unwrap(); // weeks start on Monday
//! assert!(Quota::new(1000, QuotaPeriod::Day, 1).is_err());
//!
//! let m: MethodPath = "/items/{id}/GET".parse().unwrap();
//! assert_eq!((m.resource(), m.method().as_str()), ("/items/{id}", "GET"));
//!
//! let v = ApiKeyValue::generate();
//! assert_eq!(v.expose().len(), 40);
//! assert!(!format!("{v:?}").contains(v.expose()));
//! ```

mod key;
mod method;
mod plan;
mod stage;
mod text;
#[cfg(feature = "json")]
pub(crate) mod wire;

pub(crate) use key::{check_id, random_id};
pub use key::{ApiKey, ApiKeyValue, GENERATED_KEY_LEN, MAX_KEY_LEN, MIN_KEY_LEN};
pub use method::MethodPath;
pub(crate) use plan::{valid_rate, RATE_RANGE};
pub use plan::{ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan, MAX_RATE, MIN_RATE};
pub use stage::StageRef;
pub(crate) use text::shown;

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_messages_stay_short() {
        assert_eq!(super::text::number(1e308), "1e308");
        assert_eq!(super::text::number(-1.5e300), "-1.5e300");
        assert_eq!(super::text::number(5.0), "5");
        assert_eq!(super::text::number(0.1), "0.1");
        assert_eq!(super::text::number(1e-12), "1e-12");
        assert_eq!(super::text::number(f64::NAN), "NaN");
        assert_eq!(super::text::number(f64::INFINITY), "inf");
        assert_eq!(super::text::number(4_294_967_296.0), "4294967296");
    }
}
