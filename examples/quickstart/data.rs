//! The quickstart's default state: a SQLite file (`SqliteStore` and `PersistedMeter`) that keeps
//! keys (as SHA-256 digests), plans, links, quota counts and daily usage across restarts.
//!
//! The file is seeded from `--config` when it is new or holds no key and no plan; a file that
//! holds any is served as it is, and `--config` is not loaded into it.

use std::path::{Path, PathBuf};

use tower_usage_plans::config::Config;
use tower_usage_plans::meter::PersistedMeter;
use tower_usage_plans::store::{ApiKeyQuery, Management, PageRequest, SqliteStore, UsagePlanQuery};
use tower_usage_plans::LocalMeter;

/// `quickstart.db` in the build's target directory (`target/debug/examples/quickstart` ->
/// `target/quickstart.db`), or in `target/` under the working directory if the binary is
/// elsewhere.
pub fn default_path() -> PathBuf {
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(|exe| {
        let examples = exe.parent()?;
        (examples.file_name()? == "examples").then_some(())?;
        Some(examples.parent()?.parent()?.to_owned())
    });
    target
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("quickstart.db")
}

/// How many keys and plans `store` holds (up to one page of each: enough to tell empty).
async fn held(store: &SqliteStore) -> Result<(usize, usize), String> {
    let unreadable = |e: tower_usage_plans::error::StoreError| {
        format!(
            "error: cannot read --data {}: {}",
            store.path().display(),
            super::chain(&e)
        )
    };
    let page = PageRequest::first(500);
    let keys = store
        .get_api_keys(&ApiKeyQuery {
            page: page.clone(),
            ..ApiKeyQuery::default()
        })
        .await
        .map_err(unreadable)?;
    let plans = store
        .get_usage_plans(&UsagePlanQuery {
            page,
            ..UsagePlanQuery::default()
        })
        .await
        .map_err(unreadable)?;
    Ok((keys.items.len(), plans.items.len()))
}

/// Opens (or creates) the data file at `path`, seeds it from `config` if it is new or empty,
/// and starts its meter; answers the line to print about it.
pub async fn open(
    path: &Path,
    config: Config,
    config_shown: &str,
) -> Result<(SqliteStore, PersistedMeter, String), String> {
    let shown = path.display();
    let store = SqliteStore::open(path)
        .map_err(|e| format!("error: cannot open --data {shown}: {}", super::chain(&e)))?;
    let (keys, plans) = held(&store).await?;
    let note = if keys == 0 && plans == 0 {
        store.replace_all(config).map_err(|e| {
            format!(
                "error: cannot load --config {config_shown} into --data {shown}: {}",
                super::chain(&e)
            )
        })?;
        format!(
            "Keys, plans and usage in {shown} (SQLite): new, loaded from --config; kept across \
             restarts (--memory keeps nothing)"
        )
    } else {
        let more = |n: usize| {
            if n == 500 {
                "500 or more".to_owned()
            } else {
                n.to_string()
            }
        };
        format!(
            "Keys, plans and usage in {shown} (SQLite): it holds {} keys and {} plans from before; \
             --config was not loaded (delete the file to start again from --config)",
            more(keys),
            more(plans)
        )
    };
    let meter = PersistedMeter::new(&store, LocalMeter::new()).map_err(|e| {
        format!(
            "error: cannot read the usage in --data {shown}: {}",
            super::chain(&e)
        )
    })?;
    Ok((store, meter, note))
}
