//! The article on one machine: API `abc123def4`, stage `prod`, with its keys, plans and
//! per-method throttles, served on 127.0.0.1:3000; its keys, plans and usage in a SQLite file
//! (`target/quickstart.db`) that survives a restart.
//!
//! ```text
//! cargo run --example quickstart
//! cargo run --example quickstart -- --config FILE --listen ADDR [--api-id ID --stage NAME]
//! cargo run --example quickstart -- --data FILE      # another data file
//! cargo run --example quickstart -- --memory         # nothing kept across a restart
//! cargo run --example quickstart -- --help
//! cargo run --example quickstart --features redis -- --redis redis://127.0.0.1:6379 --listen 127.0.0.1:3001
//! ```
//!
//! The configuration is AWS's own JSON (see `tower_usage_plans::config`); it seeds the data file
//! when the file is new (or empty), and is not loaded into a file that holds keys or plans. At
//! start it says which plans and how many keys serve the chosen stage, and warns when none do.
//! Ctrl-C (SIGINT) or SIGTERM stops it gracefully and writes the meter's last counts. The
//! `/metrics` route (feature `metrics`), the admin API (feature `admin`) and `--redis` (feature
//! `redis`) are built in when their features are on (`--all-features`).

#[path = "quickstart/admin.rs"]
mod admin;
#[path = "quickstart/app.rs"]
mod app;
#[path = "quickstart/data.rs"]
mod data;
#[path = "quickstart/redis.rs"]
mod redis;
#[path = "support/stages.rs"]
mod stages;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use std::collections::{BTreeMap, HashSet};
use tower_usage_plans::config::Config;
use tower_usage_plans::meter::Meter;

use tower_usage_plans::error::StoreError;
use tower_usage_plans::model::StageRef;
use tower_usage_plans::store::{
    ApiKeyQuery, KeyStore, Management, Page, PageRequest, UsagePlanQuery,
};
use tower_usage_plans::{LocalMeter, MemoryStore};

/// The bundled demo configuration: the article's keys and plans.
const DEMO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.json");

/// Serves the article's API (GET /items, GET /items/{id}, POST /orders, GET /health) behind
/// usage plans read from AWS-shaped JSON, and prints the curl commands that try it.
#[derive(Debug, Parser)]
#[command(name = "quickstart")]
struct Args {
    /// The keys, plans and links, as AWS's CLI prints them (apiKeys, usagePlans, usagePlanKeys);
    /// loaded into the data file only when the file is new or empty.
    #[arg(long, value_name = "FILE", default_value = DEMO_CONFIG)]
    config: PathBuf,
    /// The SQLite file that keeps keys (as SHA-256 digests), plans, quota counts and daily usage
    /// across restarts [default: target/quickstart.db, in the build's target directory].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["memory", "redis"])]
    data: Option<PathBuf>,
    /// Keep everything in memory: a restart forgets usage and resets every quota.
    #[arg(long, conflicts_with = "redis")]
    memory: bool,
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
    /// After SIGINT or SIGTERM, how long open requests may take to finish before the quickstart
    /// stops without them (a client that never finishes its request would hold it forever).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    grace: u64,
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

/// A key of `--config`, enabled there: (id, name, value). Step 5 shows the first that the store
/// serves, with a plan on the stage.
type Candidate = (String, String, String);

/// What `serve_on` built, and what to print about it.
struct Served {
    router: axum::Router,
    /// The admin API's lines, if it is served.
    admin: Option<String>,
    /// The plans and keys the store serves on the stage.
    report: stages::StageReport,
    /// The key Step 5 uses.
    first: Option<Candidate>,
}

/// The app on `store` and `meter`, the admin API over them if asked for, and what the store
/// serves on the stage (which is not `--config` when a data file or Redis already held keys).
async fn serve_on<S, M>(
    store: S,
    meter: M,
    args: &Args,
    candidates: &[Candidate],
) -> Result<Served, String>
where
    S: KeyStore + Management + Clone,
    M: Meter + Clone,
{
    let (report, first) = served(&store, candidates, &args.api_id, &args.stage)
        .await
        .map_err(|e| format!("error: cannot read the store: {}", chain(&e)))?;
    let (router, layer) = app::app(store.clone(), meter.clone(), &args.api_id, &args.stage)
        .map_err(|e| format!("error: {}", chain(&e)))?;
    let admin = admin::spawn(&args.admin, store, meter, &layer)
        .await
        .map_err(|e| format!("error: {e}"))?;
    Ok(Served {
        router,
        admin,
        report,
        first,
    })
}

/// Every item of a paged listing.
async fn all<T, F, Fut>(mut page: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, StoreError>>,
{
    let mut items = Vec::new();
    let mut request = PageRequest::first(500);
    loop {
        let got = page(request.clone()).await?;
        items.extend(got.items);
        match got.position {
            Some(position) => request.position = Some(position),
            None => return Ok(items),
        }
    }
}

/// The stage's plans and keys as `store` serves them (through its management API), and the first
/// of `candidates` that the store admits on the stage (checked by a lookup, so a value changed
/// since `--config` is never shown).
async fn served<S: KeyStore + Management>(
    store: &S,
    candidates: &[Candidate],
    api_id: &str,
    stage: &str,
) -> Result<(stages::StageReport, Option<Candidate>), StoreError> {
    let plans = all(|page| async move {
        let query = UsagePlanQuery {
            page,
            ..UsagePlanQuery::default()
        };
        store.get_usage_plans(&query).await
    })
    .await?;
    let enabled: HashSet<String> = all(|page| async move {
        let query = ApiKeyQuery {
            page,
            ..ApiKeyQuery::default()
        };
        store.get_api_keys(&query).await
    })
    .await?
    .into_iter()
    .filter(|k| k.enabled)
    .map(|k| k.id)
    .collect();
    let mut links = BTreeMap::new();
    for plan in &plans {
        let keys = all(|page| {
            let id = plan.id.clone();
            async move { store.get_usage_plan_keys(&id, &page).await }
        })
        .await?;
        links.insert(plan.id.clone(), keys.into_iter().map(|k| k.id).collect());
    }
    let report =
        stages::StageReport::from_parts(&plans, &links, |id| enabled.contains(id), api_id, stage);
    let on_stage = StageRef::new(api_id, stage);
    let mut first = None;
    'plans: for p in &report.plans {
        for id in links.get(&p.id).into_iter().flatten() {
            let Some(c) = candidates.iter().find(|c| &c.0 == id) else {
                continue;
            };
            if let Ok(Some(grant)) = store.lookup(&c.2, &on_stage).await {
                if &*grant.key_id == id && grant.enabled && grant.plan_id().is_some() {
                    first = Some(c.clone());
                    break 'plans;
                }
            }
        }
    }
    Ok((report, first))
}

/// Ends when the process gets SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    eprintln!("warning: cannot watch for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
    #[cfg(feature = "metrics")]
    let prometheus = {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            eprintln!("error: cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
        handle
    };
    let shown = args.config.display().to_string();
    let config = match Config::from_file(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: cannot load --config {shown}: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    // The keys Step 5 may show: --config's enabled ones (the store is checked for each).
    let candidates: Vec<Candidate> = config
        .api_keys
        .iter()
        .filter(|k| k.enabled)
        .map(|k| (k.id.clone(), k.name.clone(), k.value.expose().to_owned()))
        .collect();
    let demo = is_demo(&args.config);
    // Where the state lives: Redis, memory, or (by default) the SQLite data file.
    let mut notes = Vec::new();
    let mut persisted = None;
    let served = if let Some(url) = &args.redis {
        redis::serve(url, config, &args, &candidates)
            .await
            .map(|(served, note)| {
                notes.push(note);
                served
            })
    } else if args.memory {
        match MemoryStore::from_config(config) {
            Ok(store) => {
                notes.push(
                    "Keys, plans and usage in memory (--memory): a restart forgets usage and \
                     resets every quota"
                        .to_owned(),
                );
                serve_on(store, LocalMeter::new(), &args, &candidates).await
            }
            Err(e) => Err(format!(
                "error: cannot load --config {shown}: {}",
                chain(&e)
            )),
        }
    } else {
        let path = args.data.clone().unwrap_or_else(data::default_path);
        match data::open(&path, config, &shown).await {
            Ok((store, meter, note)) => {
                notes.push(note);
                persisted = Some(meter.clone());
                serve_on(store, meter, &args, &candidates).await
            }
            Err(e) => Err(e),
        }
    };
    let Served {
        router,
        admin: admin_lines,
        report,
        first,
    } = match served {
        Ok(served) => served,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(feature = "metrics")]
    let router = router.route(
        "/metrics",
        axum::routing::get(move || std::future::ready(prometheus.render())),
    );
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
    for note in &notes {
        println!("{note}");
    }
    println!("Serving API {} stage {} on {base}", args.api_id, args.stage);
    if report.admits_no_key() {
        eprint!("\n{report}\n");
    } else {
        print!("{report}");
    }
    if cfg!(feature = "metrics") {
        println!(
            "GET /items, GET /items/{{id}} and POST /orders need a key; GET /health and GET /metrics do not.\n"
        );
    } else {
        println!(
            "GET /items, GET /items/{{id}} and POST /orders need a key; GET /health does not.\n\
             (GET /metrics is off: add --features metrics.)\n"
        );
    }
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
    } else if !report.admits_no_key() {
        println!(
            "(The article's Step 5 is not shown: no enabled key of --config {shown} is served on \
             this stage with the same value. Use a key value you hold.)\n"
        );
    }
    if let Some(lines) = admin_lines {
        print!("{lines}");
    }
    // Graceful: on a signal, stop accepting and let open requests finish, for --grace at most.
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = signalled.send(true);
    });
    let grace = std::time::Duration::from_secs(args.grace);
    let served = tokio::select! {
        served = std::future::IntoFuture::into_future(serve) => served,
        _ = async {
            let _ = on_signal.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            eprintln!(
                "warning: requests still open {}s after the signal (--grace): stopping without them",
                args.grace
            );
            Ok(())
        }
    };
    // Stopped (a signal, or the server failed): write the meter's last counts.
    if let Some(meter) = persisted {
        match meter.shutdown() {
            Ok(()) => println!("Stopped: usage written to the data file"),
            Err(e) => {
                eprintln!("error: cannot write the last usage: {}", chain(&e));
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = served {
        eprintln!("error: server failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
