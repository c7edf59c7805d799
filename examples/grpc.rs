//! Usage plans in front of a tonic server: `helloworld.Greeter/SayHello` needs an API key in the
//! `x-api-key` metadata, a free key is throttled to 1 request per second (burst 2) and 5 a day,
//! a premium key gets 10 per second (burst 20) on `SayHello` by its plan's per-method override.
//!
//! ```text
//! cargo run --example grpc [-- --listen 127.0.0.1:50051]
//! ```
//!
//! Refused calls are answered as gRPC clients expect: `UNAUTHENTICATED` without a key,
//! `PERMISSION_DENIED` for an unknown one, `RESOURCE_EXHAUSTED` when throttled or out of quota,
//! with the delay in the `retry-after` metadata.

mod greeter;

use std::net::SocketAddr;

use greeter::greeter_server::GreeterServer;
use greeter::MyGreeter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:50051".parse()?;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().ok_or("--listen needs an address")?.parse()?,
            other => return Err(format!("unknown argument {other:?}; try --listen ADDR").into()),
        }
    }

    let layer = greeter::layer(greeter::store()).build()?;

    println!(
        "helloworld.Greeter on {addr}, behind usage plans. Try (grpcurl, from the crate root):"
    );
    let call = |key: Option<&str>| {
        let header = key.map_or(String::new(), |k| format!("-H 'x-api-key: {k}' "));
        format!(
            "  grpcurl -plaintext -import-path examples/greeter -proto helloworld.proto \
             {header}-d '{{\"name\":\"you\"}}' {addr} helloworld.Greeter/SayHello"
        )
    };
    println!("no key (Unauthenticated):\n{}", call(None));
    println!(
        "free key (OK twice, then ResourceExhausted; 5 a day):\n{}",
        call(Some(greeter::FREE_KEY))
    );
    println!(
        "premium key (burst 20 on SayHello):\n{}",
        call(Some(greeter::PREMIUM_KEY))
    );

    tonic::transport::Server::builder()
        .layer(layer)
        .add_service(GreeterServer::new(MyGreeter::default()))
        .serve(addr)
        .await?;
    Ok(())
}
