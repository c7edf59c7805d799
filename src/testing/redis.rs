//! Real Redis servers for tests (features `testing` and `redis`): a [`RedisServer`] or a
//! three-master [`RedisCluster`] started on free loopback ports, and stopped (killed, their
//! directories removed) when dropped.
//!
//! They run the `redis-server` and `redis-cli` found on the `PATH` (Debian's `redis-server` and
//! `redis-tools`). When `redis-server` is missing, [`RedisServer::start`] and
//! [`RedisCluster::start`] return `None` after printing why, so that a test can skip; but if the
//! environment variable `CI` is set (to anything but `false` or `0`), they panic instead: in CI a
//! missing Redis is a failure, never a skip.
//!
//! # Examples
//!
//! ```no_run
//! use tower_usage_plans::testing::redis::RedisServer;
//!
//! let Some(server) = RedisServer::start() else { return };
//! println!("Redis on {}", server.url());
//! // Stopped here.
//! ```

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to start accepting, or a cluster to agree on its slots.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether the tests run in CI (`CI` set, and not to `false` or `0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether `redis-server` can be run; if not, panics in CI, else prints why and says no.
fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !in_ci(),
            "redis-server is not installed, and CI is set: install it (Debian: apt-get install \
             redis-server redis-tools; .ci/run does)"
        );
        eprintln!(
            "SKIPPED: redis-server is not installed (Debian: apt-get install redis-server \
             redis-tools); the Redis tests did not run"
        );
    }
    found
}

/// A loopback port free now, whose cluster bus port (+10000) is free too.
fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .expect("bind a loopback port");
        let port = l.local_addr().expect("a local address").port();
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Waits (bounded) until `port` answers `PING` with `PONG`.
fn wait_for_ping(port: u16, child: &mut Child) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited: {status}");
        }
        if let Ok(mut s) = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 64];
            if s.write_all(b"PING\r\n").is_ok() {
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"+PONG") {
                        return;
                    }
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer within {START_TIMEOUT:?}"
        );
        std::thread::yield_now();
    }
}

/// One `redis-server` on a free loopback port, with no persistence, in a directory of its own.
/// Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Child,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server, or `None` if `redis-server` is missing outside CI (see the
    /// [module docs](self)).
    pub fn start() -> Option<Self> {
        redis_available().then(|| Self::spawn(&[]))
    }

    fn spawn(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tup-redis-{}-{port}", std::process::id()));
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = Self::run(port, &dir, &extra);
        Self {
            port,
            child,
            dir,
            extra,
        }
    }

    /// Runs redis-server on `port` and waits (bounded) until it answers.
    fn run(port: u16, dir: &PathBuf, extra: &[String]) -> Child {
        std::fs::create_dir_all(dir).expect("make the server's directory");
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        wait_for_ping(port, &mut child);
        child
    }

    /// Stops the server (killed; what it held is lost, as it keeps nothing on disk): clients
    /// see connections refused until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again, empty, on the same port, and waits (bounded) until it answers.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Self::run(self.port, &self.dir, &self.extra);
    }

    /// Freezes the server (`SIGSTOP`): it accepts connections but answers nothing, as a Redis
    /// that hangs does, until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a [paused](Self::pause) server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server failed");
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of three masters (no replicas) on free loopback ports, its slots assigned by
/// `redis-cli --cluster create`. Stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the cluster and waits (bounded) until every node says `cluster_state:ok`; `None`
    /// if `redis-server` is missing outside CI (see the [module docs](self)).
    pub fn start() -> Option<Self> {
        if !redis_available() {
            return None;
        }
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::spawn(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (Debian: redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + START_TIMEOUT;
        for n in &cluster.nodes {
            loop {
                let info = Command::new("redis-cli")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &n.port.to_string(),
                        "cluster",
                        "info",
                    ])
                    .output()
                    .expect("run redis-cli");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok within {START_TIMEOUT:?}"
                );
                std::thread::yield_now();
            }
        }
        Some(cluster)
    }

    /// Every node's `redis://127.0.0.1:{port}`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}
