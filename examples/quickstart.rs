//! The article on one machine: API `abc123def4`, stage `prod`, with its keys, plans and
//! per-method throttles, served on 127.0.0.1:3000.
//!
//! ```text
//! cargo run --example quickstart
//! cargo run --example quickstart -- --config FILE --listen ADDR [--api-id ID --stage NAME]
//! cargo run --example quickstart -- --help
//! cargo run --example quickstart --features redis -- --redis redis://127.0.0.1:6379 --listen 127.0.0.1:3001
//! ```
//!
//! The configuration is AWS's own JSON (see `tower_usage_plans::config`). At start it says
//! which plans and how many keys serve the chosen stage, and warns when none do.

#[path = "quickstart/admin.rs"]
mod admin;
#[path = "quickstart/app.rs"]
mod app;
#[path = "quickstart/redis.rs"]
mod redis;
#[path = "support/stages.rs"]
mod stages;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use tower_usage_plans::config::Config;
use tower_usage_plans::{LocalMeter, MemoryStore};

/// The bundled demo configuration: the article's keys and plans.
const DEMO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.json");

/// Serves the article's API (GET /items, GET /items/{id}, POST /orders, GET /health) behind
/// usage plans read from AWS-shaped JSON, and prints the curl commands that try it.
#[derive(Debug, Parser)]
#[command(name = "quickstart")]
struct Args {
    /// The keys, plans and links, as AWS's CLI prints them (apiKeys, usagePlans, usagePlanKeys).
    #[arg(long, value_name = "FILE", default_value = DEMO_CONFIG)]
    config: PathBuf,
    /// Where to listen: HOST:PORT, HOST a name or an IP address (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
    listen: String,
    /// The API id this app is, as the plans' apiStages name it.
    #[arg(long, value_name = "ID", default_value = "abc123def4")]
    api_id: String,
    /// The stage this app is, as the plans' apiStages name it.
    #[arg(long, value_name = "NAME", default_value = "prod")]
    stage: String,
    #[command(flatten)]
    admin: admin::AdminArgs,
    /// Keep keys, plans and limits in Redis, shared by every quickstart given the same Redis:
    /// redis://HOST:PORT, or a cluster's seed nodes separated by commas (feature `redis`). The
    /// first to find Redis empty loads --config into it.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// Whether `path` is the bundled demo configuration, whose key values may be shown.
fn is_demo(path: &Path) -> bool {
    match (path.canonicalize(), Path::new(DEMO_CONFIG).canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// An error and each of its causes, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Logs through tracing: RUST_LOG=info shows each refusal (key id, plan, route, reason).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Metrics: a Prometheus recorder, served on GET /metrics (no key needed).
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let prometheus = recorder.handle();
    if let Err(e) = metrics::set_global_recorder(recorder) {
        eprintln!("error: cannot install the metrics recorder: {e}");
        return ExitCode::FAILURE;
    }
    let shown = args.config.display().to_string();
    let config = match Config::from_file(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: cannot load --config {shown}: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let report = stages::StageReport::new(&config, &args.api_id, &args.stage);
    // The first enabled key with a plan on the stage: the one Step 5 uses.
    let first = report.plans.iter().find_map(|p| {
        config.usage_plan_keys.get(&p.id)?.iter().find_map(|id| {
            config
                .api_keys
                .iter()
                .find(|k| &k.id == id && k.enabled)
                .map(|k| (k.id.clone(), k.name.clone(), k.value.expose().to_owned()))
        })
    });
    let demo = is_demo(&args.config);
    let store = match MemoryStore::from_config(config) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: cannot load --config {shown}: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let meter = LocalMeter::new();
    let admin_store = store.clone();
    let router = match &args.redis {
        None => app::router(store, meter.clone(), &args.api_id, &args.stage)
            .map_err(|e| format!("error: {}", chain(&e))),
        Some(url) => redis::router(url, store.to_config(), &args.api_id, &args.stage)
            .await
            .map(|(router, note)| {
                println!("{note}");
                router
            }),
    };
    let router = match router {
        Ok(router) => router.route(
            "/metrics",
            axum::routing::get(move || std::future::ready(prometheus.render())),
        ),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on --listen {}: {e} (give HOST:PORT, e.g. 127.0.0.1:3000)",
                args.listen
            );
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
    if report.admits_no_key() {
        eprint!("\n{report}\n");
    } else {
        print!("{report}");
    }
    println!(
        "GET /items, GET /items/{{id}} and POST /orders need a key; GET /health and GET /metrics do not.\n"
    );
    if let Some((id, name, value)) = first {
        let key_line = if demo {
            // The bundled demo keys are public: shown so that the commands need only curl.
            app::demo_key_line(&value, &name)
        } else {
            // The whole path, so that the line works from another terminal's directory.
            let path = std::fs::canonicalize(&args.config)
                .map_or_else(|_| shown.clone(), |p| p.display().to_string());
            app::jq_key_line(&id, &name, &path)
        };
        print!("{}", app::step_5(&base, &key_line, demo));
    }
    // The admin API: the same store and meter, on a port of its own (the in-memory ones: with
    // --redis, it is not served).
    if args.redis.is_some()
        && (args.admin.admin_no_auth || !args.admin.admin_credentials.is_empty())
    {
        eprintln!("error: --redis and the admin API (--admin-credentials, --admin-no-auth) do not go together in the quickstart yet: the admin API serves the in-memory store");
        return ExitCode::FAILURE;
    }
    match admin::spawn(&args.admin, admin_store, meter).await {
        Ok(Some(lines)) => print!("{lines}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = axum::serve(listener, router).await {
        eprintln!("error: server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
