//! The admin API (API Gateway's management protocol) on a real socket, on the in-memory and the
//! SQLite stores.

mod api;
mod sqlite;
