//! [`RedisStore`]: keys, plans and their links shared by several instances in Redis or Redis
//! Cluster (feature `redis`), answered from a copy in each instance's memory.
//!
//! See [`RedisStore`].

use std::fmt;
use std::future::{ready, Future, Ready};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::RwLock;
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::error::{BoxError, StoreError};
use crate::model::{ApiKey, StageRef, UsagePlan};
use crate::redis_conn::Conn;

use super::{KeyGrant, KeyStore, MemoryStore};

mod manage;
mod seal;

use seal::Sealer;

/// The default prefix of the store's keys in Redis.
const DEFAULT_PREFIX: &str = "tup:s:";

const READ: &str = include_str!("read.lua");
const COMMIT: &str = include_str!("commit.lua");

/// The Redis keys of one store.
#[derive(Debug)]
struct Names {
    version: String,
    keys: String,
    plans: String,
    links: String,
    values: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        let name = |n: &str| format!("{{{prefix}}}{n}");
        Self {
            version: name("version"),
            keys: name("keys"),
            plans: name("plans"),
            links: name("links"),
            values: name("values"),
        }
    }
}

/// The store as read at one version, indexed by digest.
struct Snapshot {
    version: u64,
    store: MemoryStore,
}

struct Inner {
    conn: Conn,
    names: Names,
    read: ::redis::Script,
    commit: ::redis::Script,
    cache: RwLock<Arc<Snapshot>>,
    /// Held while the copy is read again or a change is made, so that copies are installed in
    /// the order Redis made them.
    sync: tokio::sync::Mutex<()>,
    sealer: Option<Sealer>,
    timeout: Duration,
    refresh: Duration,
    /// Whether the last check of the version failed (logged once per outage).
    failing: AtomicBool,
}

/// The [`KeyStore`] and [`Management`](super::Management) whose keys, plans and links live in
/// Redis or Redis Cluster, shared by every instance that uses the same Redis and prefix.
///
/// Clones share the connection and the copy. Built by [`RedisStore::builder`].
///
/// # What Redis holds
///
/// Four hashes and a version, all under one hash tag (`{prefix}`), so that they sit in one
/// Cluster slot and every change is one atomic script:
///
/// | Redis key | field | value |
/// |---|---|---|
/// | `{tup:s:}version` | | a number, moved by every change |
/// | `{tup:s:}keys` | key id | the key in AWS's JSON, its `value` replaced by the SHA-256 digest of the value (hex) |
/// | `{tup:s:}plans` | plan id | the plan in AWS's JSON |
/// | `{tup:s:}links` | plan id | the ids of the plan's keys, a JSON array |
/// | `{tup:s:}values` | key id | only with [`keep_values`](RedisStoreBuilder::keep_values): the value, sealed |
///
/// A key's value is never written in clear: Redis holds its digest, and a request's value is
/// digested once and looked up by digest. So [`get_api_key`](super::Management::get_api_key) with
/// `include_value` (and `includeValues` of the lists) cannot show a value, and answers it as
/// `None`; the value is shown once, when the key is created. A team that needs values shown
/// later opts in with [`keep_values`](RedisStoreBuilder::keep_values): the values are then also
/// kept sealed (ChaCha20-Poly1305) under a secret every instance is given, never in clear.
///
/// # The copy in each instance, and how long a change takes to reach it
///
/// Each instance keeps the whole store in memory (a [`MemoryStore`] indexed by digest) and
/// answers every lookup from it, without a round trip: a request costs one SHA-256 of its key's
/// value and a read of the copy. The copy is read again (one script, atomically) when the
/// version in Redis differs from the copy's; each instance checks the version every
/// [`refresh_interval`](RedisStoreBuilder::refresh_interval) (1 second by default) in a
/// background task, and before every management operation.
///
/// So a change made through one instance applies to that instance's next request, and to every
/// other instance's requests **within one refresh interval** (plus the time to read the store
/// again). Management reads (`get-api-keys`, `get-usage-plan-keys`, the usage reports) check the
/// version first, so any instance answers them for all.
///
/// Management operations are optimistic: an instance makes the change on a copy of the store as
/// it read it, checks it as [`MemoryStore`] does (the same rules, the same errors), and writes
/// what changed in one script that refuses the write if the version moved meanwhile; it then
/// reads again and retries after a random backoff that doubles each time (up to 24 times,
/// under two seconds in all; then `StoreError::Conflict`, the admin API's 409
/// `ConflictException`, as AWS answers a concurrent modification). A change costs time in proportion to the size of the
/// store on the instance making it (the copy is rebuilt), which suits stores of up to some
/// hundred thousand keys; lookups do not pay it.
///
/// # When Redis is down
///
/// Lookups go on being answered from the last copy, so keys keep working while Redis is away
/// (the meter, not the store, decides whether requests pass: see
/// [`FailMode`](crate::FailMode)). A change made elsewhere meanwhile applies once this instance
/// can read Redis again. Management operations fail with [`StoreError::Backend`] after at most
/// [`response_timeout`](RedisStoreBuilder::response_timeout) per round trip.
///
/// # Examples
///
/// ```no_run
/// use tower_usage_plans::model::{ApiStage, StageRef, UsagePlan};
/// use tower_usage_plans::store::{KeyStore, Management, NewApiKey, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder().connect("redis://127.0.0.1:6379").await?;
/// let mut plan = UsagePlan::new("plan111", "FreePlan");
/// plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
/// store.create_usage_plan(plan).await?;
/// let key = store.create_api_key(NewApiKey::named("ClientA")).await?;
/// store.create_usage_plan_key("plan111", &key.id).await?;
///
/// let prod = StageRef::new("abc123def4", "prod");
/// let grant = store.lookup(key.value.expose(), &prod).await?.unwrap();
/// assert_eq!(&*grant.key_id, key.id.as_str());
/// // The value is not kept: it was shown once, at creation.
/// assert!(store.get_api_key(&key.id, true).await?.value.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.inner.cache.read().clone();
        f.debug_struct("RedisStore")
            .field("conn", &self.inner.conn.kind())
            .field("version", &snap.version)
            .field("copy", &snap.store)
            .field("keeps_values", &self.inner.sealer.is_some())
            .field("refresh_interval", &self.inner.refresh)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`].
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    prefix: String,
    refresh: Duration,
    timeout: Duration,
    sealer: Option<Sealer>,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("prefix", &self.prefix)
            .field("refresh_interval", &self.refresh)
            .field("response_timeout", &self.timeout)
            .field("keeps_values", &self.sealer.is_some())
            .finish()
    }
}

pub(super) fn backend(e: impl Into<BoxError>) -> StoreError {
    StoreError::Backend(e.into())
}

/// The hex SHA-256 digest of a key's value: what Redis and the copy hold instead of it.
pub(crate) fn digest(value: &str) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let sum = Sha256::digest(value.as_bytes());
    let mut out = [0u8; 64];
    for (i, b) in sum.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

fn digest_str(d: &[u8; 64]) -> &str {
    std::str::from_utf8(d).unwrap_or_default()
}

impl RedisStore {
    /// A builder: prefix, refresh interval, timeout, then
    /// [`connect`](RedisStoreBuilder::connect) or
    /// [`connect_cluster`](RedisStoreBuilder::connect_cluster).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_usage_plans::store::RedisStore;
    ///
    /// let builder = RedisStore::builder()
    ///     .prefix("shop:")
    ///     .refresh_interval(Duration::from_millis(200))
    ///     .response_timeout(Duration::from_millis(300));
    /// // Debug never shows a secret.
    /// let sealed = builder.keep_values([7; 32]);
    /// assert!(!format!("{sealed:?}").contains("7, 7"));
    /// ```
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder {
            prefix: DEFAULT_PREFIX.to_owned(),
            refresh: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            sealer: None,
        }
    }

    /// Checks the version in Redis now and reads the store again if it moved; answers the
    /// version the copy is at. The background task does this every refresh interval; call it to
    /// see a change made elsewhere at once.
    pub async fn refresh(&self) -> Result<u64, StoreError> {
        self.inner.refresh().await.map(|s| s.version)
    }

    /// Everything the store holds, in AWS's shapes, as read now; each key's `value` is the
    /// digest of its value (hex), as Redis holds it.
    pub async fn to_config(&self) -> Result<Config, StoreError> {
        Ok(self.inner.refresh().await?.store.to_config())
    }

    /// The grant for `value` on `stage`, from the copy.
    #[inline]
    fn grant(&self, value: &str, stage: &StageRef) -> Result<Option<KeyGrant>, StoreError> {
        let d = digest(value);
        let snap = self.inner.cache.read();
        Ok(snap.store.grant(digest_str(&d), stage))
    }
}

impl Inner {
    /// Runs `f` on the connection, giving up after the response timeout.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = ::redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(self.conn.clone())).await {
            Ok(r) => r.map_err(backend),
            Err(_) => Err(backend(format!(
                "Redis did not answer within {:?} (RedisStoreBuilder::response_timeout)",
                self.timeout
            ))),
        }
    }

    /// The version Redis holds now.
    async fn remote_version(&self) -> Result<u64, StoreError> {
        let key = self.names.version.clone();
        let v: Option<u64> = self
            .run(|conn| async move {
                let mut cmd = ::redis::cmd("GET");
                cmd.arg(key);
                conn.query(&cmd).await
            })
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Reads the whole store at one version.
    async fn load(&self) -> Result<Snapshot, StoreError> {
        type Flat = Vec<(String, String)>;
        let n = &self.names;
        let mut inv = self.read.prepare_invoke();
        inv.key(&n.version).key(&n.keys).key(&n.plans).key(&n.links);
        let (version, keys, plans, links): (u64, Flat, Flat, Flat) = self
            .run(|conn| async move { conn.invoke(&inv).await })
            .await?;
        let config = decode(keys, plans, links)?;
        let store = MemoryStore::from_config(config).map_err(|e| {
            backend(format!(
                "the store in Redis at version {version} breaks a rule of the model: {e}"
            ))
        })?;
        Ok(Snapshot { version, store })
    }

    /// The copy, read again if Redis's version differs from it.
    async fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        let _held = self.sync.lock().await;
        self.refresh_held().await
    }

    /// [`refresh`](Self::refresh), with `sync` held by the caller.
    async fn refresh_held(&self) -> Result<Arc<Snapshot>, StoreError> {
        let result = async {
            let current = self.cache.read().clone();
            if self.remote_version().await? == current.version {
                return Ok(current);
            }
            let snap = Arc::new(self.load().await?);
            *self.cache.write() = snap.clone();
            Ok(snap)
        }
        .await;
        let was_failing = self.failing.swap(result.is_err(), Ordering::Relaxed);
        match (&result, was_failing) {
            (Err(e), false) => tracing::warn!(
                error = %e,
                "RedisStore cannot read Redis; lookups are answered from the last copy"
            ),
            (Ok(_), true) => tracing::info!("RedisStore reads Redis again"),
            _ => {}
        }
        result
    }

    /// Installs the copy a change of this instance made, at `version`.
    fn install(&self, version: u64, store: MemoryStore) {
        *self.cache.write() = Arc::new(Snapshot { version, store });
    }
}

/// The store's records, read from Redis, as a [`Config`].
fn decode(
    keys: Vec<(String, String)>,
    plans: Vec<(String, String)>,
    links: Vec<(String, String)>,
) -> Result<Config, StoreError> {
    let bad = |what: &str, id: &str, e: serde_json::Error| {
        backend(format!(
            "the record of {what} {id:?} in Redis cannot be read ({e}); was it written by hand?"
        ))
    };
    let mut config = Config {
        api_keys: Vec::with_capacity(keys.len()),
        usage_plans: Vec::with_capacity(plans.len()),
        usage_plan_keys: Default::default(),
    };
    for (id, json) in keys {
        let key: ApiKey = serde_json::from_str(&json).map_err(|e| bad("API key", &id, e))?;
        config.api_keys.push(key);
    }
    for (id, json) in plans {
        let plan: UsagePlan = serde_json::from_str(&json).map_err(|e| bad("usage plan", &id, e))?;
        config.usage_plans.push(plan);
    }
    for (id, json) in links {
        let ids: Vec<String> =
            serde_json::from_str(&json).map_err(|e| bad("the keys of usage plan", &id, e))?;
        config.usage_plan_keys.insert(id, ids);
    }
    config.api_keys.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    config.usage_plans.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(config)
}

/// Checks the version every `every`, for as long as a clone of the store lives.
fn spawn_refresher(inner: Weak<Inner>, every: Duration) {
    crate::redis_conn::spawn_every(inner, every, |inner| async move {
        // Errors are logged by refresh_held, once per outage.
        let _ = inner.refresh().await;
    });
}

impl RedisStoreBuilder {
    /// The prefix of the store's keys (default `tup:s:`). Instances that share keys
    /// use the same prefix. A `{` or `}` in it is escaped (they would break the hash tag).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.replace('{', "%7B").replace('}', "%7D");
        self
    }

    /// How often each instance checks whether the store changed (default 1 second, at least
    /// 10 ms): the longest a change made through another instance takes to apply here, besides
    /// the time to read the store again.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(10));
        self
    }

    /// How long to wait for Redis's answer to each round trip (default 1 second, at least 1 ms);
    /// past it, the operation fails with [`StoreError::Backend`].
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Keeps key values too, sealed with ChaCha20-Poly1305 under `secret` (32 bytes, the same on
    /// every instance; keep it out of Redis), so that `include_value` shows them. Without it
    /// (the default) Redis holds only digests and values are shown once, at creation. A value
    /// sealed under another secret is an error when shown, never a wrong value.
    pub fn keep_values(mut self, secret: [u8; 32]) -> Self {
        self.sealer = Some(Sealer::new(&secret));
        self
    }

    /// Connects to one Redis at `url` (`redis://host:port/db`) through redis-rs's connection
    /// manager, which reconnects by itself; reads the store; and starts the task that checks for
    /// changes (on the current tokio runtime).
    pub async fn connect(self, url: &str) -> Result<RedisStore, StoreError> {
        let conn = Conn::single(url, self.timeout)
            .await
            .map_err(StoreError::Backend)?;
        self.build(conn).await
    }

    /// Connects to a Redis Cluster from some of its nodes (`redis://host:port` each), reads the
    /// store, and starts the task that checks for changes.
    pub async fn connect_cluster<I, T>(self, nodes: I) -> Result<RedisStore, StoreError>
    where
        I: IntoIterator<Item = T>,
        T: ::redis::IntoConnectionInfo,
    {
        let conn = Conn::cluster(nodes, self.timeout)
            .await
            .map_err(StoreError::Backend)?;
        self.build(conn).await
    }

    async fn build(self, conn: Conn) -> Result<RedisStore, StoreError> {
        let inner = Arc::new(Inner {
            conn,
            names: Names::new(&self.prefix),
            read: ::redis::Script::new(READ),
            commit: ::redis::Script::new(COMMIT),
            cache: RwLock::new(Arc::new(Snapshot {
                version: u64::MAX,
                store: MemoryStore::new(),
            })),
            sync: tokio::sync::Mutex::new(()),
            sealer: self.sealer,
            timeout: self.timeout,
            refresh: self.refresh,
            failing: AtomicBool::new(false),
        });
        inner.refresh().await?;
        spawn_refresher(Arc::downgrade(&inner), self.refresh);
        Ok(RedisStore { inner })
    }
}

impl KeyStore for RedisStore {
    type Lookup = Ready<Result<Option<KeyGrant>, StoreError>>;

    /// Answered from the instance's copy, without a round trip.
    #[inline]
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        ready(self.grant(value, stage))
    }

    /// The version of the copy: Redis's version when it was last read.
    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        ready(Ok(Some(self.inner.cache.read().version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_in_hex() {
        let d = digest("abc");
        assert_eq!(
            digest_str(&d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_share_one_hash_tag() {
        let n = Names::new("tup:s:");
        assert_eq!(n.keys, "{tup:s:}keys");
        assert_eq!(n.version, "{tup:s:}version");
    }
}
