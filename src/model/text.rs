//! Values in error messages: short, and never more than a user gave.

/// A user-given string for an error message: quoted, and cut to 64 characters.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
    }
}

/// A number for an error message: short, whatever its size (`1e308`, not 309 digits).
pub(crate) fn number(n: f64) -> String {
    let a = n.abs();
    if n.is_finite() && a != 0.0 && !(1e-4..1e16).contains(&a) {
        format!("{n:e}")
    } else {
        format!("{n}")
    }
}
