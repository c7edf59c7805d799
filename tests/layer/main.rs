//! The layer on a real axum router: who is admitted, how the others are answered (bodies, headers,
//! protocol edges, unknown routes, what real clients send), and what it writes through `tracing`.

#[path = "../common/mod.rs"]
mod common;

mod answers;
mod edges;
mod fidelity;
mod tracing;
mod unknown_route;
