//! The data file: opening it (with a clear [`OpenError`] for each way that fails), its schema and
//! migrations, and reading it whole into a [`Config`].

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::config::Config;
use crate::error::{BoxError, ConfigError};
use crate::model::{ApiKey, ApiKeyValue, UsagePlan};

/// The schema's migrations, in order: the file's `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    // 1: keys, plans, links, and the meter's counts.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        value TEXT,
        name TEXT NOT NULL,
        description TEXT,
        enabled INTEGER NOT NULL,
        created_date INTEGER,
        last_updated_date INTEGER,
        customer_id TEXT,
        tags TEXT NOT NULL
    ) STRICT;
    CREATE TABLE usage_plans (
        id TEXT PRIMARY KEY NOT NULL,
        definition TEXT NOT NULL
    ) STRICT;
    CREATE TABLE usage_plan_keys (
        plan_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (plan_id, key_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX usage_plan_keys_by_key ON usage_plan_keys (key_id, position);
    CREATE TABLE meter_state (
        plan_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        window_end INTEGER NOT NULL,
        window_used INTEGER NOT NULL,
        day INTEGER NOT NULL,
        day_used INTEGER NOT NULL,
        PRIMARY KEY (plan_id, key_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE meter_usage (
        plan_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        used INTEGER NOT NULL,
        PRIMARY KEY (plan_id, key_id, day)
    ) STRICT, WITHOUT ROWID;",
    // 2: quota windows as instants (seconds since the epoch), no longer as days, so that a
    // window may start at any time of day (the meter's second contract).
    "UPDATE meter_state SET window_start = window_start * 86400, window_end = window_end * 86400;",
];

/// The schema version this build writes.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The data file could not be opened. Nothing in it was changed.
///
/// Each message names the file and what to do; the driver's error, if any, is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file's directory does not exist.
    #[error(
        "the directory of the data file {path} does not exist; create it, or choose another path"
    )]
    MissingDirectory {
        /// The file's path.
        path: String,
    },
    /// The file (or its directory) is read-only.
    #[error("the data file {path} is read-only; make it writable, or choose another path")]
    ReadOnly {
        /// The file's path.
        path: String,
    },
    /// Another process (or another store in this one) has the file open.
    #[error(
        "the data file {path} is locked: another process has it open (one process owns a data \
         file at a time); stop it, or choose another path"
    )]
    Locked {
        /// The file's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: BoxError,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error(
        "the data file {path} is not a SQLite database, or is damaged; it was left as it is: \
         restore it from a backup, or move it away to start with an empty one"
    )]
    Corrupt {
        /// The file's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: BoxError,
    },
    /// The file is a SQLite database of another application.
    #[error(
        "the data file {path} holds tables of another application; it was left as it is: \
         choose another path"
    )]
    Foreign {
        /// The file's path.
        path: String,
    },
    /// The file was written by a newer version of this crate.
    #[error(
        "the data file {path} has schema version {found}, newer than this version of \
         tower-usage-plans knows ({known}); it was left as it is: upgrade, or choose another path"
    )]
    Newer {
        /// The file's path.
        path: String,
        /// The file's schema version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The file's keys or plans do not make a valid configuration (it was edited by hand).
    #[error("the data file {path} holds keys or plans that are not valid; it was left as it is")]
    Invalid {
        /// The file's path.
        path: String,
        /// What is wrong, naming the item and field.
        #[source]
        source: ConfigError,
    },
    /// SQLite failed otherwise.
    #[error("cannot open the data file {path}")]
    Sqlite {
        /// The file's path.
        path: String,
        /// SQLite's error.
        #[source]
        source: BoxError,
    },
}

impl OpenError {
    /// The error for SQLite's `e` on the file `path`, by its code.
    fn sqlite(path: &str, e: rusqlite::Error) -> Self {
        let path = path.to_owned();
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Self::Locked {
                path,
                source: e.into(),
            },
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Self::Corrupt {
                path,
                source: e.into(),
            },
            Some(ErrorCode::ReadOnly) => Self::ReadOnly { path },
            _ => Self::Sqlite {
                path,
                source: e.into(),
            },
        }
    }
}

/// Opens (creating if need be) the data file at `path`, migrated to [`VERSION`] and locked for
/// this process; answers whether it was new (no schema before).
pub(super) fn open(path: &Path, busy: Duration) -> Result<(Connection, bool), OpenError> {
    let shown = path.display().to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(OpenError::MissingDirectory { path: shown });
    }
    // Checked here too, because root may write to a read-only file, and SQLite would.
    let read_only = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.permissions().readonly());
    if read_only(path) || read_only(dir) {
        return Err(OpenError::ReadOnly { path: shown });
    }
    let err = |e| OpenError::sqlite(&shown, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(busy).map_err(err)?;
    // Reads the header first: a file that is not a database is refused before anything is
    // written to it.
    let (version, tables): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), \
             (SELECT count(*) FROM sqlite_schema)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(err)?;
    if version > VERSION {
        return Err(OpenError::Newer {
            path: shown,
            found: version,
            known: VERSION,
        });
    }
    if version == 0 && tables > 0 {
        return Err(OpenError::Foreign { path: shown });
    }
    // One process owns the file: its lookups answer from memory, so a second writer would go
    // unseen. The exclusive lock is taken by the first write below and kept until closed.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Sqlite {
            path: shown,
            source: format!("SQLite kept journal mode {mode:?} instead of WAL").into(),
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok((conn, version == 0))
}

/// Everything the file holds of keys, plans and links, as a configuration whose key values are
/// the keys' digests (as the store's memory holds them).
pub(super) fn load(conn: &Connection) -> Result<Config, rusqlite::Error> {
    let mut config = Config::default();
    let mut keys = conn.prepare(
        "SELECT id, digest, name, description, enabled, created_date, last_updated_date, \
         customer_id, tags FROM api_keys ORDER BY id",
    )?;
    let rows = keys.query_map([], |r| {
        let digest: String = r.get(1)?;
        let value = ApiKeyValue::new(digest).map_err(|e| conversion(1, e))?;
        let mut key = ApiKey::new(r.get::<_, String>(0)?, r.get::<_, String>(2)?, value);
        key.description = r.get(3)?;
        key.enabled = r.get(4)?;
        key.created_date = r.get(5)?;
        key.last_updated_date = r.get(6)?;
        key.customer_id = r.get(7)?;
        let tags: String = r.get(8)?;
        key.tags = serde_json::from_str(&tags).map_err(|e| conversion(8, e))?;
        Ok(key)
    })?;
    for key in rows {
        config.api_keys.push(key?);
    }
    let mut plans = conn.prepare("SELECT definition FROM usage_plans ORDER BY id")?;
    let rows = plans.query_map([], |r| {
        let json: String = r.get(0)?;
        serde_json::from_str::<UsagePlan>(&json).map_err(|e| conversion(0, e))
    })?;
    for plan in rows {
        let plan = plan?;
        config.usage_plan_keys.insert(plan.id.clone(), Vec::new());
        config.usage_plans.push(plan);
    }
    // In each key's link order, so that the rebuilt store lists a key's plans as it did.
    let mut links =
        conn.prepare("SELECT plan_id, key_id FROM usage_plan_keys ORDER BY key_id, position")?;
    let rows = links.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for link in rows {
        let (plan_id, key_id) = link?;
        config
            .usage_plan_keys
            .entry(plan_id)
            .or_default()
            .push(key_id);
    }
    Ok(config)
}

fn conversion(column: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

/// The clear value kept for key `id`, if values are kept.
pub(super) fn kept_value(conn: &Connection, id: &str) -> Result<Option<String>, rusqlite::Error> {
    Ok(conn
        .query_row("SELECT value FROM api_keys WHERE id = ?1", [id], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}
