//! Redis meter tests.
