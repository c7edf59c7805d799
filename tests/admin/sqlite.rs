//! The admin API serves a `SqliteStore` (and a `CachingStore` in front of one, with feature
//! `cache`): over real sockets, a key, a plan and a link created through it, and a key disabled
//! through it, reach the data path at the next request; after the process's store is dropped and
//! the file reopened, what the admin API made is still served, and the file holds no key value.
#![cfg(all(feature = "sqlite", feature = "testing"))]

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_usage_plans::admin::AdminApi;
use tower_usage_plans::meter::{Meter, PersistedMeter};
use tower_usage_plans::store::{KeyStore, Management, SqliteStore};
use tower_usage_plans::{LocalMeter, UsagePlanLayer};

/// A server on a free port, stopped (and its router dropped) by [`Server::stop`].
struct Server {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// One HTTP/1.1 request on a new connection: the status, and the body as JSON (or a string).
async fn send(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\
         {headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, body)
}

/// GET /items on the data port with `value` as the key: the status.
async fn get_items(data: &str, value: &str) -> u16 {
    send(
        data,
        "GET",
        "/items",
        &format!("x-api-key: {value}\r\n"),
        "",
    )
    .await
    .0
}

/// Serves the admin API and the data path over `store` and `meter`; answers (admin, data).
async fn serve_both<S, M>(store: S, meter: M) -> (Server, Server)
where
    S: KeyStore + Management + Clone,
    M: Meter + Clone,
{
    let admin = AdminApi::new(store.clone(), meter.clone())
        .no_auth()
        .router()
        .unwrap();
    let layer = UsagePlanLayer::builder(store)
        .stage("abc123def4", "prod")
        .meter(meter)
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/items", axum::routing::get(|| async { "items" }))
        .layer(layer);
    (Server::start(admin).await, Server::start(app).await)
}

/// Through the admin API: a key, a plan (burst 3) and their link, each reaching the next
/// request; answers the key's id and value.
async fn create_and_link(admin: &str, data: &str) -> (String, String) {
    let (status, key) = send(
        admin,
        "POST",
        "/apikeys",
        "",
        r#"{"name":"A","enabled":true}"#,
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let id = key["id"].as_str().unwrap().to_owned();
    let value = key["value"].as_str().expect("shown once").to_owned();
    assert_eq!(get_items(data, &value).await, 403, "no plan yet");

    let plan = json!({
        "name": "Free",
        "apiStages": [{"apiId": "abc123def4", "stage": "prod"}],
        "throttle": {"burstLimit": 3, "rateLimit": 0.001},
        "quota": {"limit": 1000, "period": "DAY"}
    });
    let (status, plan) = send(admin, "POST", "/usageplans", "", &plan.to_string()).await;
    assert_eq!(status, 201, "{plan}");
    let plan_id = plan["id"].as_str().unwrap();
    let link = json!({"keyId": id, "keyType": "API_KEY"}).to_string();
    let (status, body) = send(
        admin,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        "",
        &link,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        get_items(data, &value).await,
        200,
        "linked at the next request"
    );
    (id, value)
}

fn temp_file(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tup-admin-sqlite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir.join("usage.db"), dir)
}

/// Every file of the data file's directory (the file, its WAL, its shared memory) as bytes.
fn bytes_at_rest(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_a_sqlite_store_and_its_changes_reach_the_next_request() {
    let (path, dir) = temp_file("plain");
    let store = SqliteStore::open(&path).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::new()).unwrap();
    let (admin_server, data_server) = serve_both(store.clone(), meter.clone()).await;
    let (admin, data) = (admin_server.addr.clone(), data_server.addr.clone());
    let (id, value) = create_and_link(&admin, &data).await;

    // Values are not kept: includeValue has nothing to show.
    let (status, shown) = send(
        &admin,
        "GET",
        &format!("/apikeys/{id}?includeValue=true"),
        "",
        "",
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.get("value").is_none(), "{shown}");

    // Disabled through the admin API: refused at the next request.
    let off = json!({"patchOperations": [{"op": "replace", "path": "/enabled", "value": "false"}]});
    let (status, body) = send(
        &admin,
        "PATCH",
        &format!("/apikeys/{id}"),
        "",
        &off.to_string(),
    )
    .await;
    assert_eq!((status, &body["enabled"]), (200, &json!(false)), "{body}");
    assert_eq!(get_items(&data, &value).await, 403, "disabled at once");
    let on = json!({"patchOperations": [{"op": "replace", "path": "/enabled", "value": "true"}]});
    send(
        &admin,
        "PATCH",
        &format!("/apikeys/{id}"),
        "",
        &on.to_string(),
    )
    .await;
    admin_server.stop().await;
    data_server.stop().await;
    meter.shutdown().unwrap();
    drop((store, meter));

    // Reopened (as a restarted process would): the admin API's key, plan and link are there.
    let store = SqliteStore::open(&path).unwrap();
    assert!(!store.created());
    let meter = PersistedMeter::new(&store, LocalMeter::new()).unwrap();
    let (admin_server, data_server) = serve_both(store.clone(), meter.clone()).await;
    let data = data_server.addr.clone();
    assert_eq!(get_items(&data, &value).await, 200, "kept across a reopen");
    admin_server.stop().await;
    data_server.stop().await;
    meter.shutdown().unwrap();
    let at_rest = bytes_at_rest(&dir);
    assert!(
        !at_rest.windows(value.len()).any(|w| w == value.as_bytes()),
        "a key value in the data file"
    );
    drop((store, meter));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same through a `CachingStore` in front of the SQLite store: management through the cache
/// empties it, so answers it cached are never served stale.
#[cfg(feature = "cache")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_a_cached_sqlite_store_without_stale_answers() {
    use tower_usage_plans::store::CachingStore;

    let (path, dir) = temp_file("cached");
    let sqlite = SqliteStore::open(&path).unwrap();
    let meter = PersistedMeter::new(&sqlite, LocalMeter::new()).unwrap();
    let store = CachingStore::builder(sqlite)
        .time_to_live(Duration::from_secs(3600))
        .unknown_time_to_live(Duration::from_secs(3600))
        .build();
    let (admin_server, data_server) = serve_both(store.clone(), meter.clone()).await;
    let (admin, data) = (admin_server.addr.clone(), data_server.addr.clone());
    let (id, value) = create_and_link(&admin, &data).await;
    let off = json!({"patchOperations": [{"op": "replace", "path": "/enabled", "value": "false"}]});
    send(
        &admin,
        "PATCH",
        &format!("/apikeys/{id}"),
        "",
        &off.to_string(),
    )
    .await;
    assert_eq!(get_items(&data, &value).await, 403, "a cached grant served");
    let (status, _) = send(&admin, "DELETE", &format!("/apikeys/{id}"), "", "").await;
    assert_eq!(status, 202);
    assert_eq!(get_items(&data, &value).await, 403);
    admin_server.stop().await;
    data_server.stop().await;
    meter.shutdown().unwrap();
    drop((store, meter));
    std::fs::remove_dir_all(&dir).unwrap();
}
