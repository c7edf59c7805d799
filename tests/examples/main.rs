//! The runnable examples as a user runs them: the quickstart's answers and printed commands,
//! and the built binaries.

#[path = "../support/example.rs"]
mod example_support;

#[cfg(feature = "json")]
#[path = "../../examples/quickstart/app.rs"]
#[allow(dead_code)] // jq_key_line: cli.rs runs it through the binary
mod app;

mod cli;
mod quickstart;
