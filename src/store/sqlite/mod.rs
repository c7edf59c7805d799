//! [`SqliteStore`]: keys, plans and their links in a SQLite file, answered from memory; and the
//! file the [`PersistedMeter`](crate::meter::PersistedMeter) keeps quota counts and usage in.
//!
//! A lookup runs no SQL: the store keeps every key in memory (a [`MemoryStore`] whose index holds
//! each key's SHA-256 digest instead of its value), hashes the presented value once, and answers
//! from the index. Every management change is made in memory and written to the file in one
//! transaction before it returns; if the write fails, memory is read back from the file, so a
//! failed change changes nothing. The next request sees a change.
//!
//! # Key values at rest
//!
//! The file holds each key's SHA-256 digest (hex), never its value, so a copy of the file (or its
//! WAL) gives away no key. A value is shown once: in what [`Management::create_api_key`](super::Management::create_api_key)
//! returns, or in the CSV file an import read. `includeValue(s)` then has nothing to show: keys
//! are listed without values. A team that needs AWS's `get-api-key --include-value` opts in with
//! [`SqliteStoreBuilder::keep_values`], and the file then holds values in clear beside their
//! digests (protect it as you would the keys).
//!
//! # The file
//!
//! One process owns a data file at a time (SQLite's exclusive locking mode): the store answers
//! from memory, so it must be the file's only writer. The journal is SQLite's WAL, with
//! `synchronous = NORMAL`: a change that returned survives the process's crash; a power loss may
//! lose the last changes (never the file). The schema's version is the file's
//! `PRAGMA user_version`; opening a file of an older version migrates it, a newer one is refused.
//!
//! | table | columns |
//! |---|---|
//! | `api_keys` | `id` (primary key), `digest` (SHA-256 of the value, hex, unique), `value` (only with `keep_values`), `name`, `description`, `enabled`, `created_date`, `last_updated_date`, `customer_id`, `tags` (JSON) |
//! | `usage_plans` | `id` (primary key), `definition` (the plan in AWS's JSON shape) |
//! | `usage_plan_keys` | `plan_id`, `key_id` (primary key together), `position` (the key's link order) |
//! | `meter_state` | `plan_id`, `key_id`, the quota window (`window_start`, `window_end`, in days since the epoch), `window_used`, the latest `day` and its `day_used` |
//! | `meter_usage` | `plan_id`, `key_id`, `day`, `used`: earlier days' usage, kept for the meter's retention |
//!
//! Opening fails with an [`OpenError`] that names the file and what to do when its directory is
//! missing, it is read-only, another process holds it, it is not a database (or is damaged), it
//! holds another application's tables, or a newer version wrote it; the file is left as it was.
//!
//! # Examples
//!
//! ```
//! use tower_usage_plans::model::{ApiStage, StageRef, UsagePlan};
//! use tower_usage_plans::store::{KeyStore, Management, NewApiKey, SqliteStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let dir = std::env::temp_dir().join(format!("tup-doc-sqlite-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("usage.db");
//! # let _ = std::fs::remove_file(&path);
//! let store = SqliteStore::open(&path).unwrap();
//! let mut plan = UsagePlan::new("plan111", "FreePlan");
//! plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
//! store.create_usage_plan(plan).await.unwrap();
//! let key = store.create_api_key(NewApiKey::named("ClientA")).await.unwrap();
//! store.create_usage_plan_key("plan111", &key.id).await.unwrap();
//! drop(store);
//!
//! // Reopened: the key, its plan and its link are there; its value is not in the file.
//! let store = SqliteStore::open(&path).unwrap();
//! let prod = StageRef::new("abc123def4", "prod");
//! let grant = store.lookup(key.value.expose(), &prod).await.unwrap().unwrap();
//! assert_eq!(&*grant.key_id, key.id.as_str());
//! assert!(grant.plan_id().is_some());
//! let shown = store.get_api_key(&key.id, true).await.unwrap();
//! assert!(shown.value.is_none(), "only digests are kept");
//! let bytes = std::fs::read(&path).unwrap();
//! let value = key.value.expose().as_bytes();
//! assert!(!bytes.windows(value.len()).any(|w| w == value));
//! # drop(store);
//! # let _ = std::fs::remove_dir_all(&dir);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{ConfigError, StoreError};
use crate::model::{ApiKeyValue, StageRef};

use super::{KeyGrant, KeyStore, MemoryStore};

mod manage;
mod schema;

pub use schema::OpenError;

/// The SHA-256 digest of a key value, in lowercase hex: what the store keeps instead of the
/// value. Made on the stack, once per request.
pub(crate) struct DigestHex([u8; 64]);

impl DigestHex {
    pub(crate) fn of(value: &str) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(value.as_bytes());
        let mut out = [0u8; 64];
        for (i, b) in digest.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        Self(out)
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits were written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The digest as a value the memory index accepts (64 visible characters).
    pub(crate) fn value(&self) -> Result<ApiKeyValue, StoreError> {
        Ok(ApiKeyValue::new(self.as_str())?)
    }
}

/// The file, shared by the store and its persisted meter.
pub(crate) struct Db {
    pub(crate) conn: Mutex<Connection>,
    pub(crate) path: PathBuf,
}

impl Db {
    /// The error for a failed statement: the driver's error as the source (it never holds a
    /// bound value in its message).
    pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(Box::new(e))
    }
}

struct Inner {
    /// Every key (value replaced by its digest), plan and link: what lookups answer from.
    mem: MemoryStore,
    db: Arc<Db>,
    keep_values: bool,
    created: bool,
}

/// A [`KeyStore`] and [`Management`](super::Management) that keeps keys, plans and links in a
/// SQLite file and answers lookups from memory. See the [module docs](self).
///
/// Clones share the same store. Management calls write through to the file before they return
/// (they run SQLite's I/O on the calling thread: a few milliseconds at most per change).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.db.path)
            .field("keep_values", &self.inner.keep_values)
            .field("memory", &self.inner.mem)
            .finish()
    }
}

/// Opens a [`SqliteStore`] with options.
#[derive(Clone, Debug)]
#[must_use]
pub struct SqliteStoreBuilder {
    path: PathBuf,
    keep_values: bool,
    busy_timeout: Duration,
}

impl SqliteStoreBuilder {
    /// Keeps key values in clear in the file, beside their digests, so that `includeValue(s)`
    /// can show them (AWS's `get-api-key --include-value`). Off by default: the file then holds
    /// only digests. Only keys created or imported while it is on have a value to show.
    pub fn keep_values(mut self, keep: bool) -> Self {
        self.keep_values = keep;
        self
    }

    /// How long to wait for a file another connection holds before answering
    /// [`OpenError::Locked`] (default 5 seconds).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens the file, creating it if it does not exist, and reads its keys and plans into
    /// memory.
    pub fn open(self) -> Result<SqliteStore, OpenError> {
        let shown = self.path.display().to_string();
        let (conn, created) = schema::open(&self.path, self.busy_timeout)?;
        let config = schema::load(&conn).map_err(|e| match e.sqlite_error_code() {
            Some(_) => OpenError::Corrupt {
                path: shown.clone(),
                source: e.into(),
            },
            None => OpenError::Invalid {
                path: shown.clone(),
                source: ConfigError::Io {
                    path: shown.clone(),
                    writing: false,
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                },
            },
        })?;
        let mem = MemoryStore::from_config(config).map_err(|source| OpenError::Invalid {
            path: shown.clone(),
            source,
        })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                mem,
                db: Arc::new(Db {
                    conn: Mutex::new(conn),
                    path: self.path,
                }),
                keep_values: self.keep_values,
                created,
            }),
        })
    }
}

impl SqliteStore {
    /// Opens the data file at `path` (creating it if need be) with the default options: digests
    /// only, a 5-second wait for a busy file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::builder(path).open()
    }

    /// A builder, to set options before opening `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteStoreBuilder {
        SqliteStoreBuilder {
            path: path.as_ref().to_owned(),
            keep_values: false,
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// Whether this open created the file's schema (the file was new or empty): the time to seed
    /// it, for instance with [`replace_all`](Self::replace_all).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("tup-doc-created-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let path = dir.join("usage.db");
    /// # let _ = std::fs::remove_file(&path);
    /// use tower_usage_plans::store::SqliteStore;
    /// assert!(SqliteStore::open(&path).unwrap().created());
    /// assert!(!SqliteStore::open(&path).unwrap().created());
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// ```
    pub fn created(&self) -> bool {
        self.inner.created
    }

    /// The data file's path.
    pub fn path(&self) -> &Path {
        &self.inner.db.path
    }

    /// Replaces every key, plan and link by `config`, in memory and in the file, all at once:
    /// if `config` is invalid or the write fails, nothing changes. Key values are written as
    /// digests (and in clear too with [`keep_values`](SqliteStoreBuilder::keep_values)). The
    /// meter's counts are kept.
    pub fn replace_all(&self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        let mut hashed = config.clone();
        for key in &mut hashed.api_keys {
            key.value = DigestHex::of(key.value.expose())
                .value()
                .map_err(|e| ConfigError::Io {
                    path: self.inner.db.path.display().to_string(),
                    writing: true,
                    source: std::io::Error::other(e),
                })?;
        }
        let io = |e: StoreError| ConfigError::Io {
            path: self.inner.db.path.display().to_string(),
            writing: true,
            source: std::io::Error::other(e),
        };
        let mut conn = self.inner.db.conn.lock();
        self.inner.mem.replace_all(hashed.clone())?;
        let written = manage::write_all(&mut conn, &hashed, &config, self.inner.keep_values);
        if let Err(e) = written {
            self.reload(&conn);
            return Err(io(Db::backend(e)));
        }
        Ok(())
    }

    /// Reads memory back from the file, after a write that failed: the file is the truth.
    fn reload(&self, conn: &Connection) {
        match schema::load(conn) {
            Ok(config) => {
                if let Err(e) = self.inner.mem.replace_all(config) {
                    tracing::error!(error = %e, "the data file no longer loads; memory kept");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the data file back"),
        }
    }

    pub(crate) fn db(&self) -> &Arc<Db> {
        &self.inner.db
    }
}

impl KeyStore for SqliteStore {
    type Lookup = std::future::Ready<Result<Option<KeyGrant>, StoreError>>;

    /// Answered from memory: the file is read at start and written through.
    #[inline]
    fn lookup(&self, value: &str, stage: &StageRef) -> Self::Lookup {
        std::future::ready(Ok(self
            .inner
            .mem
            .grant(DigestHex::of(value).as_str(), stage)))
    }

    fn version(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        self.inner.mem.version()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_in_hex() {
        assert_eq!(
            DigestHex::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
