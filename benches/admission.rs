//! Placeholder, replaced by the admission benchmark.
fn main() {}
