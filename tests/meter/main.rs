//! Meters: the conformance suite on the in-process meter, its buckets against governor's, and two
//! meters written outside the crate with its public API only.

mod gcra;
mod local;
mod outside_meters;
