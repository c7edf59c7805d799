//! Usage plans in front of a tonic server: `helloworld.Greeter/SayHello` needs an API key in the
//! `x-api-key` metadata, a free key is throttled to 1 request per second (burst 2) and 5 a day,
//! a premium key gets 10 per second (burst 20) on `SayHello` by its plan's per-method override.
//!
//! ```text
//! cargo run --example grpc [-- --listen localhost:50051]
//! cargo run --example grpc -- --help
//! ```
//!
//! Refused calls are answered as gRPC clients expect: `UNAUTHENTICATED` without a key,
//! `PERMISSION_DENIED` for an unknown one, `RESOURCE_EXHAUSTED` when throttled or out of quota,
//! with the delay in the `retry-after` metadata. `examples/greeter/client.py` (Python grpcio) is
//! a client that installs from PyPI; the example prints its commands.

mod greeter;
#[path = "support/stages.rs"]
mod stages;

use std::process::ExitCode;

use clap::Parser;
use greeter::greeter_server::GreeterServer;
use greeter::MyGreeter;
use tonic::transport::server::TcpIncoming;

/// Serves helloworld.Greeter behind usage plans (a free and a premium demo key), and prints
/// the client commands that try it.
#[derive(Debug, Parser)]
#[command(name = "grpc")]
struct Args {
    /// Where to listen: HOST:PORT, HOST a name or an IP address (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    listen: String,
    /// The API id this server is (the demo plans list greeter01).
    #[arg(long, value_name = "ID", default_value = greeter::API)]
    api_id: String,
    /// The stage this server is (the demo plans list prod).
    #[arg(long, value_name = "NAME", default_value = greeter::STAGE)]
    stage: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let store = greeter::store();
    let report = stages::StageReport::new(&store.to_config(), &args.api_id, &args.stage);
    let layer = match greeter::layer(store)
        .stage(args.api_id.as_str(), args.stage.as_str())
        .build()
    {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on --listen {}: {e} (give HOST:PORT, e.g. 127.0.0.1:50051)",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map_or(args.listen.clone(), |a| a.to_string());

    println!(
        "helloworld.Greeter on {addr} (API {} stage {}), behind usage plans.",
        args.api_id, args.stage
    );
    if report.admits_no_key() {
        eprint!("\n{report}\n");
    } else {
        print!("{report}");
    }
    print!("{}", client_commands(&addr));

    if let Err(e) = tonic::transport::Server::builder()
        .layer(layer)
        .add_service(GreeterServer::new(MyGreeter::default()))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
    {
        eprintln!("error: server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The client commands, from the crate root, with the demo keys (public: shown on purpose).
fn client_commands(addr: &str) -> String {
    let client = "  .venv/bin/python examples/greeter/client.py";
    format!(
        "\nTry it from the crate root with the Python client (grpcio; docs/grpc.md):\n\
         \x20 python3 -m venv .venv && .venv/bin/pip install grpcio grpcio-tools   # once\n\
         no key (UNAUTHENTICATED):\n\
         {client} {addr}\n\
         free key (OK twice, then RESOURCE_EXHAUSTED; 5 a day):\n\
         {client} --key {free} --count 3 {addr}\n\
         premium key (burst 20 on SayHello):\n\
         {client} --key {premium} --count 3 {addr}\n",
        free = greeter::FREE_KEY,
        premium = greeter::PREMIUM_KEY,
    )
}
