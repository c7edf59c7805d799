//! The SQLite store and the persisted meter, on real files.

mod store;
