//! The SQLite store and the persisted meter, on real files: the conformance suites, drop and
//! reopen, a child process killed with SIGKILL mid-traffic, bad data files, and key values never
//! at rest in clear.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_usage_plans::clock::ManualClock;
use tower_usage_plans::meter::{Charge, LocalMeter, Meter, Outcome, PersistedMeter};
use tower_usage_plans::model::{ApiKeyValue, ApiStage, QuotaPeriod, StageRef, UsagePlan};
use tower_usage_plans::patch::PatchOperation;
use tower_usage_plans::period::Date;
use tower_usage_plans::store::{
    ApiKeyQuery, ImportKey, KeyStore, Management, NewApiKey, OpenError, Resource, SqliteStore,
};
use tower_usage_plans::testing::meter::TestPlan;
use tower_usage_plans::testing::store as suite;

/// A fresh directory of this test process, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tup-sqlite-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Self(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("usage.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bytes of the data file and its WAL.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    bytes
}

fn holds(bytes: &[u8], value: &str) -> bool {
    bytes.windows(value.len()).any(|w| w == value.as_bytes())
}

#[tokio::test]
async fn conformance_on_a_reopened_file() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.file()).unwrap();
    assert!(store.created());
    store.replace_all(suite::fixture()).unwrap();
    drop(store);
    let store = SqliteStore::open(dir.file()).unwrap();
    assert!(!store.created());
    suite::key_store(&store).await;
    let bytes = file_bytes(&dir.file());
    for key in &suite::fixture().api_keys {
        assert!(
            !holds(&bytes, key.value.expose()),
            "a value in clear in the file"
        );
    }
}

#[tokio::test]
async fn changes_apply_and_survive_a_reopen() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.file()).unwrap();
    store.replace_all(suite::fixture()).unwrap();
    suite::key_store_changes(&store, |change| {
        let store = store.clone();
        async move { suite::apply_with_management(&store, change).await }
    })
    .await;
    // What the changes left is what the file gives back.
    let prod = StageRef::new(suite::API, suite::PROD);
    let mut before = Vec::new();
    for v in [
        suite::ENABLED_VALUE,
        suite::DISABLED_VALUE,
        suite::PLANLESS_VALUE,
    ] {
        before.push(summary(store.lookup(v, &prod).await.unwrap()));
    }
    let plans = store.get_usage_plan(suite::PLAN_PROD).await.unwrap();
    drop(store);
    let store = SqliteStore::open(dir.file()).unwrap();
    let mut after = Vec::new();
    for v in [
        suite::ENABLED_VALUE,
        suite::DISABLED_VALUE,
        suite::PLANLESS_VALUE,
    ] {
        after.push(summary(store.lookup(v, &prod).await.unwrap()));
    }
    assert_eq!(before, after);
    assert_eq!(store.get_usage_plan(suite::PLAN_PROD).await.unwrap(), plans);
}

fn summary(
    g: Option<tower_usage_plans::store::KeyGrant>,
) -> Option<(String, bool, Option<String>)> {
    g.map(|g| {
        (
            g.key_id.to_string(),
            g.enabled,
            g.plan_id().map(str::to_owned),
        )
    })
}

#[tokio::test]
async fn management_conformance_with_values_kept() {
    let dir = TempDir::new();
    let store = SqliteStore::builder(dir.file())
        .keep_values(true)
        .open()
        .unwrap();
    tower_usage_plans::testing::manage::management(&store).await;
    drop(store);
    // The suite's work is all in the file.
    let store = SqliteStore::builder(dir.file())
        .keep_values(true)
        .open()
        .unwrap();
    let mut query = ApiKeyQuery {
        include_values: true,
        ..ApiKeyQuery::default()
    };
    query.page.limit = Some(500);
    let page = store.get_api_keys(&query).await.unwrap();
    assert!(page.items.len() > 10);
    assert!(page.items.iter().all(|k| k.value.is_some()));
    // The suite's tag changes are in the file too.
    let plan = Resource::UsagePlan("planTags".into());
    let tags = store.get_tags(&plan).await.unwrap();
    assert_eq!(
        tags.get("env").map(String::as_str),
        Some("prod eu"),
        "{tags:?}"
    );
    assert!(!tags.contains_key("team"), "{tags:?}");
    let tagged = page.items.iter().find(|k| k.name == "Tagged").unwrap();
    let key_tags = store
        .get_tags(&Resource::ApiKey(tagged.id.clone()))
        .await
        .unwrap();
    assert_eq!(key_tags, tagged.tags);
    assert_eq!(
        key_tags.get("usageplans:soft-quota").map(String::as_str),
        Some("80")
    );
}

#[tokio::test]
async fn values_are_shown_once_and_never_written() {
    let dir = TempDir::new();
    let store = SqliteStore::open(dir.file()).unwrap();
    let mut plan = UsagePlan::new("plan1", "Free");
    plan.api_stages.push(ApiStage::new("api", "prod"));
    store.create_usage_plan(plan).await.unwrap();
    let mut values = Vec::new();
    for i in 0..50 {
        let key = store
            .create_api_key(NewApiKey::named(format!("k{i}")))
            .await
            .unwrap();
        store.create_usage_plan_key("plan1", &key.id).await.unwrap();
        let off = PatchOperation::replace("/name", format!("renamed{i}"));
        store.update_api_key(&key.id, &[off]).await.unwrap();
        values.push(key.value.expose().to_owned());
    }
    let imported = "ImportedValue-0123456789-abcdefghij".to_string();
    let rows = vec![ImportKey {
        line: 2,
        value: ApiKeyValue::new(imported.clone()).unwrap(),
        name: "imported".into(),
        description: None,
        enabled: true,
        usage_plan_ids: vec!["plan1".into()],
    }];
    let result = store.import_api_keys(rows, Vec::new(), true).await.unwrap();
    assert_eq!(result.ids.len(), 1);
    values.push(imported.clone());
    // Nothing shows a value again.
    let shown = store.get_api_key(&result.ids[0], true).await.unwrap();
    assert!(shown.value.is_none());
    assert!(!format!("{store:?}").contains(&imported));
    let bytes = file_bytes(&dir.file());
    assert!(bytes.len() > 4096);
    for v in &values {
        assert!(!holds(&bytes, v), "a key value is in the file or its WAL");
    }
    // And they still work, after a reopen too.
    drop(store);
    let store = SqliteStore::open(dir.file()).unwrap();
    let prod = StageRef::new("api", "prod");
    for v in &values {
        let g = store.lookup(v, &prod).await.unwrap().expect("a stored key");
        assert_eq!(g.plan_id(), Some("plan1"));
    }
}

fn quota_plan(limit: u64) -> TestPlan {
    tower_usage_plans::testing::meter::plan("plan-q", Some((limit, QuotaPeriod::Day, 0)), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_conformance() {
    let dir = Arc::new(TempDir::new());
    let n = AtomicUsize::new(0);
    tower_usage_plans::testing::meter::meter(|clock| {
        let path = dir
            .0
            .join(format!("m{}.db", n.fetch_add(1, Ordering::Relaxed)));
        let store = SqliteStore::open(path).unwrap();
        PersistedMeter::new(&store, LocalMeter::with_clock(clock)).unwrap()
    })
    .await;
}

#[tokio::test]
async fn usage_and_quota_survive_a_reopen() {
    let dir = TempDir::new();
    let plan = quota_plan(10);
    let key: Arc<str> = "key-1".into();
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let yesterday = Date::from_unix_secs(1_700_000_000).days() - 1;
    {
        let store = SqliteStore::open(dir.file()).unwrap();
        // A long interval: only the shutdown writes.
        let meter = PersistedMeter::with_flush_interval(
            &store,
            LocalMeter::with_clock(clock.clone()),
            Duration::from_secs(3600),
        )
        .unwrap();
        for _ in 0..3 {
            meter
                .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
                .await
                .unwrap();
        }
        meter.set_remaining(&plan.counter(&key), 4).await.unwrap();
        assert_eq!(
            meter.flush().unwrap(),
            0,
            "update-usage was written before it returned"
        );
        meter.shutdown().unwrap();
    }
    let store = SqliteStore::open(dir.file()).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock.clone())).unwrap();
    let v = meter
        .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
        .await
        .unwrap();
    assert_eq!(v.quota.unwrap().remaining, 3, "the quota count survived");
    let today = Date::from_unix_secs(1_700_000_000);
    let usage = meter
        .usage(&plan.counter(&key), Date::from_days(yesterday), today)
        .await
        .unwrap();
    assert_eq!(usage[1].used, 4, "today's usage survived");
    // A day later, yesterday's usage is history, and survives a reopen too.
    clock.advance(Duration::from_secs(86_400));
    meter
        .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
        .await
        .unwrap();
    meter.shutdown().unwrap();
    drop((meter, store));
    let store = SqliteStore::open(dir.file()).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::with_clock(clock.clone())).unwrap();
    let tomorrow = Date::from_days(today.days() + 1);
    let usage = meter
        .usage(&plan.counter(&key), today, tomorrow)
        .await
        .unwrap();
    assert_eq!((usage[0].used, usage[1].used), (4, 1));
}

/// A flush writes the states that changed since the last one, and only those.
#[tokio::test]
async fn a_flush_writes_what_changed_since_the_last() {
    let dir = TempDir::new();
    let plan = quota_plan(10);
    let (k1, k2): (Arc<str>, Arc<str>) = ("key-1".into(), "key-2".into());
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let today = Date::from_unix_secs(1_700_000_000);
    let store = SqliteStore::open(dir.file()).unwrap();
    let local = LocalMeter::builder()
        .clock(clock.clone())
        .retention_days(1)
        .build();
    let meter =
        PersistedMeter::with_flush_interval(&store, local, Duration::from_secs(3600)).unwrap();
    let admit = |key: &Arc<str>| {
        let (meter, key, plan) = (&meter, key.clone(), &plan);
        async move {
            let v = meter
                .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
                .await
                .unwrap();
            assert_eq!(v.outcome, Outcome::Admitted);
        }
    };
    admit(&k1).await;
    admit(&k2).await;
    assert_eq!(meter.flush().unwrap(), 2);
    assert_eq!(meter.flush().unwrap(), 0, "nothing changed");
    admit(&k1).await;
    assert_eq!(meter.flush().unwrap(), 1, "only key-1 changed");

    admit(&k2).await;
    admit(&k2).await;
    assert_eq!(meter.flush().unwrap(), 1, "only key-2 changed");
    meter.shutdown().unwrap();
    drop((meter, store));

    let conn = rusqlite::Connection::open(dir.file()).unwrap();
    let used = |key: &str| -> (u32, i64) {
        conn.query_row(
            "SELECT day, day_used FROM meter_state WHERE key_id = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(used("key-1"), (today.days(), 2));
    assert_eq!(used("key-2"), (today.days(), 3));
}

/// Rows in the meter tables of the file at `path` (closed: the store locks it while open).
fn meter_rows(path: &Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |table: &str| {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("meter_state"), count("meter_usage"))
}

/// The file forgets what the sweep forgets: a key idle past the retention whose quota window
/// ended, and usage older than the retention; at start, and once a day while running.
#[tokio::test]
async fn the_file_forgets_keys_idle_past_the_retention() {
    let dir = TempDir::new();
    let plan = quota_plan(10);
    let (old, busy): (Arc<str>, Arc<str>) = ("key-old".into(), "key-busy".into());
    let clock = ManualClock::at_unix_secs(1_700_000_000);
    let open = || {
        let store = SqliteStore::open(dir.file()).unwrap();
        let local = LocalMeter::builder()
            .clock(clock.clone())
            .retention_days(2)
            .build();
        let meter =
            PersistedMeter::with_flush_interval(&store, local, Duration::from_secs(3600)).unwrap();
        (store, meter)
    };
    let (store, meter) = open();
    for key in [&old, &busy] {
        meter
            .admit(&Charge::new(&[plan.counter(key)], 1).unwrap())
            .await
            .unwrap();
    }
    // The next day both are used once more: a day of history each.
    clock.advance(Duration::from_secs(86_400));
    for key in [&old, &busy] {
        meter
            .admit(&Charge::new(&[plan.counter(key)], 1).unwrap())
            .await
            .unwrap();
    }
    meter.shutdown().unwrap();
    drop((meter, store));
    assert_eq!(meter_rows(&dir.file()), (2, 2));

    // Three days on, while running, only key-busy is used: the flush prunes key-old.
    let (store, meter) = open();
    clock.advance(Duration::from_secs(3 * 86_400));
    meter
        .admit(&Charge::new(&[plan.counter(&busy)], 1).unwrap())
        .await
        .unwrap();
    meter.flush().unwrap();
    meter.shutdown().unwrap();
    drop((meter, store));
    assert_eq!(
        meter_rows(&dir.file()),
        (1, 0),
        "key-old's state and the usage of days before the two-day retention are gone; key-busy's state stays"
    );

    // Days later, at start: key-busy is idle past the retention too, and is not loaded.
    clock.advance(Duration::from_secs(5 * 86_400));
    let (store, meter) = open();
    assert_eq!(meter.local().sweep(), 0, "nothing stale was loaded");
    meter.shutdown().unwrap();
    drop((meter, store));
    assert_eq!(meter_rows(&dir.file()), (0, 0));
}

/// The child of [`sigkill_mid_traffic_loses_at_most_one_flush`]: admits without end, flushing
/// every `EVERY` admissions, and says so.
const EVERY: u64 = 500;

#[tokio::test]
#[ignore = "run by sigkill_mid_traffic_loses_at_most_one_flush as a child process"]
async fn child_traffic() {
    let Ok(path) = std::env::var("TUP_SQLITE_CHILD") else {
        return;
    };
    let store = SqliteStore::open(&path).unwrap();
    // The background thread writes too, every 20 ms, alongside the child's own flushes.
    let meter =
        PersistedMeter::with_flush_interval(&store, LocalMeter::new(), Duration::from_millis(20))
            .unwrap();
    let plan = quota_plan(1_000_000_000);
    let key: Arc<str> = "key-child".into();
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    let mut admitted = 0u64;
    loop {
        let v = meter
            .admit(&Charge::new(&[plan.counter(&key)], 1).unwrap())
            .await
            .unwrap();
        assert_eq!(v.outcome, tower_usage_plans::meter::Outcome::Admitted);
        admitted += 1;
        writeln!(out, "admitted {admitted}").unwrap();
        if admitted.is_multiple_of(EVERY) {
            meter.flush().unwrap();
            writeln!(out, "flushed {admitted}").unwrap();
        }
        out.flush().unwrap();
    }
}

#[tokio::test]
async fn sigkill_mid_traffic_loses_at_most_one_flush() {
    let dir = TempDir::new();
    let path = dir.file();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::child_traffic",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TUP_SQLITE_CHILD", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut admitted, mut flushed) = (0u64, 0u64);
    // Mid-traffic: after a few flushes, between two of them.
    while flushed < 3 * EVERY || admitted < flushed + EVERY / 2 {
        let line = lines.next().expect("the child runs").unwrap();
        parse(&line, &mut admitted, &mut flushed);
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for line in lines {
        parse(&line.unwrap(), &mut admitted, &mut flushed);
    }
    let store = SqliteStore::open(&path).unwrap();
    let meter = PersistedMeter::new(&store, LocalMeter::new()).unwrap();
    let plan = quota_plan(1_000_000_000);
    let today = Date::from_unix_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    let key: Arc<str> = "key-child".into();
    let used: u64 = meter
        .usage(
            &plan.counter(&key),
            Date::from_days(today.days() - 1),
            today,
        )
        .await
        .unwrap()
        .iter()
        .map(|d| d.used)
        .sum();
    // At most one admission was not yet printed when the signal landed.
    assert!(used <= admitted + 1, "saved {used}, admitted {admitted}");
    assert!(
        used >= flushed,
        "saved {used}, but {flushed} were flushed before the kill"
    );
    assert!(admitted + 1 - used <= EVERY + 1, "lost more than one flush");
}

fn parse(line: &str, admitted: &mut u64, flushed: &mut u64) {
    if let Some(n) = line.strip_prefix("admitted ") {
        *admitted = n.parse().unwrap();
    } else if let Some(n) = line.strip_prefix("flushed ") {
        *flushed = n.parse().unwrap();
    }
}

#[test]
fn bad_data_files_give_clear_errors_and_stay_as_they_were() {
    let dir = TempDir::new();

    // Missing directory.
    let err = SqliteStore::open(dir.0.join("nope/usage.db")).unwrap_err();
    assert!(matches!(err, OpenError::MissingDirectory { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"));
    assert!(!dir.0.join("nope").exists());

    // Not a database.
    let garbage = dir.0.join("garbage.db");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&garbage, &junk).unwrap();
    let err = SqliteStore::open(&garbage).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("not a SQLite database"));
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        junk,
        "the file was changed"
    );

    // A database damaged inside: a page of the keys' table overwritten.
    let damaged = dir.0.join("damaged.db");
    {
        let store = SqliteStore::open(&damaged).unwrap();
        store.replace_all(suite::fixture()).unwrap();
    }
    let mut bytes = std::fs::read(&damaged).unwrap();
    let n = bytes.len();
    for b in &mut bytes[4096..n.min(3 * 4096)] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    let err = SqliteStore::open(&damaged).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&damaged).unwrap(),
        bytes,
        "the file was changed"
    );

    // Locked: another store (here, in this process) owns it.
    let owned = dir.0.join("owned.db");
    let first = SqliteStore::open(&owned).unwrap();
    let err = SqliteStore::builder(&owned)
        .busy_timeout(Duration::ZERO)
        .open()
        .unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("another process"));
    drop(first);
    SqliteStore::open(&owned).unwrap();

    // Read-only.
    let ro = dir.0.join("ro.db");
    drop(SqliteStore::open(&ro).unwrap());
    let before = std::fs::read(&ro).unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&ro, perms.clone()).unwrap();
    let err = SqliteStore::open(&ro).unwrap_err();
    assert!(matches!(err, OpenError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"));
    assert_eq!(std::fs::read(&ro).unwrap(), before);
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&ro, perms).unwrap();

    // Another application's database.
    let foreign = dir.0.join("foreign.db");
    make_foreign(&foreign);
    let before = std::fs::read(&foreign).unwrap();
    let err = SqliteStore::open(&foreign).unwrap_err();
    assert!(matches!(err, OpenError::Foreign { .. }), "{err}");
    assert_eq!(std::fs::read(&foreign).unwrap(), before);
}

/// A SQLite file with a table of its own: a copy of an empty store's file whose schema version
/// is reset to 0 would do, but the simplest is the bytes of a store file with `user_version`
/// zeroed in its header (offset 60).
fn make_foreign(path: &Path) {
    drop(SqliteStore::open(path).unwrap());
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&[0, 0, 0, 0]);
    std::fs::write(path, bytes).unwrap();
}
