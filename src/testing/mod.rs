//! Conformance suites for [`KeyStore`](crate::store::KeyStore), [`Management`](crate::store::Management) and [`Meter`](crate::meter::Meter)
//! implementations (feature `testing`): every store and meter of this crate runs them in its
//! tests, and so can yours.

pub mod manage;
pub mod meter;
pub mod store;
