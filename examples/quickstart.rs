//! The article on one machine: API `abc123def4`, stage `prod`, with its keys, plans and
//! per-method throttles, served on 127.0.0.1:3000.
//!
//! ```text
//! cargo run --example quickstart
//! cargo run --example quickstart -- --config FILE --listen ADDR [--api-id ID --stage NAME]
//! ```
//!
//! The configuration is AWS's own JSON (see `tower_usage_plans::config`).

#[path = "quickstart/app.rs"]
mod app;

use std::process::ExitCode;

use tower_usage_plans::config::Config;
use tower_usage_plans::{LocalMeter, MemoryStore};

struct Args {
    config: String,
    listen: String,
    api_id: String,
    stage: String,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        config: concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.json").into(),
        listen: "127.0.0.1:3000".into(),
        api_id: "abc123def4".into(),
        stage: "prod".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--config" => &mut args.config,
            "--listen" => &mut args.listen,
            "--api-id" => &mut args.api_id,
            "--stage" => &mut args.stage,
            "-h" | "--help" => return Err(
                "usage: quickstart [--config FILE] [--listen ADDR] [--api-id ID] [--stage NAME]"
                    .into(),
            ),
            other => return Err(format!("unknown argument {other:?}; try --help")),
        };
        *slot = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_file(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cannot load {}: {e}", args.config);
            return ExitCode::FAILURE;
        }
    };
    let keys: Vec<(String, String)> = config
        .api_keys
        .iter()
        .map(|k| (k.id.clone(), k.name.clone()))
        .collect();
    let store = match MemoryStore::from_config(config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("cannot load {}: {e}", args.config);
            return ExitCode::FAILURE;
        }
    };
    let router = match app::router(store, LocalMeter::new(), &args.api_id, &args.stage) {
        Ok(router) => router,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map_or(args.listen.clone(), |a| a.to_string())
    );
    println!("Serving API {} stage {} on {base}", args.api_id, args.stage);
    println!("GET /items, GET /items/{{id}} and POST /orders need a key; GET /health does not.\n");
    println!("The article's Step 5 (key values are read from the config, not printed):");
    if let Some((id, name)) = keys.first() {
        println!(
            "  KEY=$(python3 -c 'import json,sys; print([k[\"value\"] for k in json.load(open(sys.argv[1]))[\"apiKeys\"] if k[\"id\"]==\"{id}\"][0])' {})   # {name}",
            args.config
        );
    }
    println!(
        "  curl -s -o /dev/null -w \"%{{http_code}}\\n\" {base}/items                     # 403"
    );
    println!(
        "  curl -s -H \"x-api-key: $KEY\" {base}/items                                  # 200"
    );
    println!("  curl -s -i -H \"x-api-key: $KEY\" {base}/items | grep -i ratelimit            # the IETF headers");
    println!("  for i in $(seq 30); do curl -s -o /dev/null -w \"%{{http_code}} \" -H \"x-api-key: $KEY\" {base}/items; done; echo   # 200s, then 429 Too Many Requests");
    println!("  curl -s -H \"x-api-key: $KEY\" -X POST {base}/orders                          # POST /orders has its own bucket");
    println!("  curl -s {base}/health                                                         # no key needed");
    if keys.len() > 1 {
        println!(
            "\nOther keys: {}",
            keys[1..]
                .iter()
                .map(|(id, n)| format!("{id} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
