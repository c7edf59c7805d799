//! Tags on keys and plans: AWS's rules for every tag, and the grammar of this crate's own.
//!
//! API keys and usage plans carry `tags`, a map of strings that the aws CLI and boto3 send and
//! print (`create-api-key --tags`, `tag-resource`, `untag-resource`, `get-tags`). They are
//! where this crate's extensions to AWS's shapes live, so that AWS's tools set and change them
//! after creation and never fail on them.
//!
//! # Every tag (AWS's rules)
//!
//! | | rule |
//! |---|---|
//! | key | 1 to 128 characters; not starting with `aws:` (AWS's own, in any case) |
//! | value | 0 to 256 characters |
//! | characters | letters, digits, spaces and `_ . : / = + - @` |
//! | count | at most 50 tags on a key or plan |
//!
//! A change that breaks a rule is refused whole, naming the tag and the rule
//! ([`FieldError`], a `400 BadRequestException` at the admin API), and changes nothing.
//!
//! # This crate's own tags
//!
//! A tag whose key starts with `usageplans:` (in any case) belongs to this crate, and follows
//! one grammar:
//!
//! ```text
//! own-key   = "usageplans:" name
//! name      = word *( "-" word )          ; kebab-case: "expires", "soft-quota"
//! word      = lower *( lower / digit )    ; lower = a-z, digit = 0-9, the first a letter
//! own-value = 0*256( ALPHA / DIGIT / "_" / "." / ":" / "/" / "=" / "+" / "-" / "@" )
//! ```
//!
//! so `usageplans:soft-quota=80` is one; `usageplans:Soft_Quota`, `UsagePlans:x` and a value
//! with a space are refused. The prefix is in lowercase, the name is kebab-case ASCII, and the
//! value is ASCII without spaces, within AWS's character set; what a value means (a number, a
//! date as RFC 3339 `2026-01-31T00:00:00Z`, a list joined by `+`) is the tag's own, documented
//! where the crate reads it. No tag is read yet: the prefix is reserved, and the grammar holds
//! now so that the features that will read them (soft quotas, shadow mode, customer quotas, key
//! expiry) find only well-formed ones. Tags this crate does not read are kept and shown as they
//! are. Any other key is the user's: only AWS's rules apply.
//!
//! A configuration that loads ([`Config`](crate::config::Config)) is held to the grammar of this
//! crate's own tags and to the count, not to AWS's other rules: AWS's exports carry tags AWS set
//! itself (`aws:cloudformation:stack-name`), which a migration loads as they are.
//!
//! # Examples
//!
//! ```
//! use std::collections::BTreeMap;
//! use tower_usage_plans::tags;
//!
//! let mut t = BTreeMap::new();
//! t.insert("team".to_owned(), "billing/eu".to_owned());
//! t.insert("usageplans:soft-quota".to_owned(), "80".to_owned());
//! assert!(tags::check(&t).is_ok());
//!
//! t.insert("usageplans:Soft_Quota".to_owned(), "80".to_owned());
//! let err = tags::check(&t).unwrap_err();
//! assert!(err.to_string().contains("kebab-case"), "{err}");
//!
//! let mut t = BTreeMap::new();
//! t.insert("aws:cloudformation:stack-name".to_owned(), "x".to_owned());
//! assert!(tags::check(&t).unwrap_err().to_string().contains("aws:"));
//! ```

use std::collections::BTreeMap;

use crate::error::FieldError;
use crate::model::shown;

/// The prefix of this crate's own tag keys.
pub const OWN_PREFIX: &str = "usageplans:";
/// The most tags a key or plan carries (AWS's limit).
pub const MAX_TAGS: usize = 50;
/// The longest tag key, in characters (AWS's limit).
pub const MAX_KEY_CHARS: usize = 128;
/// The longest tag value, in characters (AWS's limit).
pub const MAX_VALUE_CHARS: usize = 256;

/// Whether `c` is in AWS's tag character set: letters, digits, spaces and `_ . : / = + - @`.
fn aws_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// Whether `key` is one of this crate's own (starts with [`OWN_PREFIX`], in any case).
pub fn is_own(key: &str) -> bool {
    key.get(..OWN_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(OWN_PREFIX))
}

/// Whether `name` is kebab-case: lowercase ASCII words of letters and digits, each starting with a
/// letter, joined by single `-`.
fn kebab(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|w| {
            w.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks one tag against AWS's rules and, for one of this crate's own, its grammar.
pub fn check_tag(key: &str, value: &str) -> Result<(), FieldError> {
    let field = || format!("tags[{}]", shown(key));
    let keys = key.chars().count();
    if !(1..=MAX_KEY_CHARS).contains(&keys) {
        return Err(FieldError::new(
            field(),
            format!("a tag key must be 1 to {MAX_KEY_CHARS} characters long, this one has {keys}"),
        ));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(FieldError::new(
            field(),
            "a tag key must not start with aws: (AWS keeps those for itself)",
        ));
    }
    let values = value.chars().count();
    if values > MAX_VALUE_CHARS {
        return Err(FieldError::new(
            field(),
            format!("a tag value must be at most {MAX_VALUE_CHARS} characters long, this one has {values}"),
        ));
    }
    for (what, text) in [("key", key), ("value", value)] {
        if let Some(c) = text.chars().find(|c| !aws_char(*c)) {
            return Err(FieldError::new(
                field(),
                format!(
                    "the tag {what} has {c:?}; tags hold letters, digits, spaces and _ . : / = + - @"
                ),
            ));
        }
    }
    if is_own(key) {
        let name = &key[OWN_PREFIX.len()..];
        if !key.starts_with(OWN_PREFIX) || !kebab(name) {
            return Err(FieldError::new(
                field(),
                "a usageplans: tag is this crate's own: write the prefix in lowercase and the \
                 name in kebab-case (lowercase letters and digits, words joined by -), as \
                 usageplans:soft-quota",
            ));
        }
        if let Some(c) = value.chars().find(|c| !c.is_ascii() || *c == ' ') {
            return Err(FieldError::new(
                field(),
                format!("the value of a usageplans: tag is ASCII without spaces, not {c:?}"),
            ));
        }
    }
    Ok(())
}

/// Checks this crate's own tags in `tags` (keys starting `usageplans:`) against their grammar,
/// and the number of tags (at most [`MAX_TAGS`]), leaving the others' text alone: what a
/// configuration loads. AWS's exports carry tags AWS set
/// itself (`aws:cloudformation:stack-name`), which [`check_tag`] refuses for a change but a
/// migration must load as they are.
pub fn check_own(tags: &BTreeMap<String, String>) -> Result<(), FieldError> {
    for (k, v) in tags.iter().filter(|(k, _)| is_own(k)) {
        check_tag(k, v)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(
            "tags",
            format!(
                "a key or plan carries at most {MAX_TAGS} tags (AWS's limit), this one {}",
                tags.len()
            ),
        ));
    }
    Ok(())
}

/// Checks a whole map of tags: each tag ([`check_tag`]) and their number (at most
/// [`MAX_TAGS`]). See the [module docs](self).
pub fn check(tags: &BTreeMap<String, String>) -> Result<(), FieldError> {
    for (k, v) in tags {
        check_tag(k, v)?;
    }
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(
            "tags",
            format!(
                "a key or plan carries at most {MAX_TAGS} tags; this change would leave {}: \
                 remove some first (untag-resource)",
                tags.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> Result<(), FieldError> {
        check_tag(k, v)
    }

    #[test]
    fn aws_s_rules() {
        assert!(one("k", "").is_ok());
        assert!(one("Team Name_1 .:/=+-@", "Zürich 2026-01-31T00:00:00+01:00").is_ok());
        assert!(one(&"k".repeat(128), &"v".repeat(256)).is_ok());
        assert!(one("", "v").is_err());
        assert!(one(&"k".repeat(129), "v").is_err());
        assert!(one("k", &"v".repeat(257)).is_err());
        assert!(one("AWS:x", "v").is_err());
        assert!(one("k", "a,b").unwrap_err().to_string().contains("','"));
        assert!(one("k*", "v").is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check(&many).unwrap_err().to_string().contains("at most 50"));
    }

    #[test]
    fn this_crate_s_grammar() {
        for good in [
            "usageplans:expires",
            "usageplans:soft-quota",
            "usageplans:v2-a1",
        ] {
            assert!(one(good, "2026-01-31T00:00:00Z").is_ok(), "{good}");
        }
        for bad in [
            "usageplans:",
            "UsagePlans:expires",
            "usageplans:Expires",
            "usageplans:soft_quota",
            "usageplans:soft--quota",
            "usageplans:-x",
            "usageplans:1x",
            "usageplans:a b",
        ] {
            assert!(one(bad, "1").is_err(), "{bad}");
        }
        assert!(one("usageplans:expires", "a b").is_err());
        assert!(one("usageplansx", "a b").is_ok(), "not the prefix");
    }
}
