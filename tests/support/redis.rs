//! Real Redis servers for the tests and benches (included with `#[path]`): a [`RedisServer`] or a
//! [`RedisCluster`] of three masters (with a replica each, or none) started on free loopback
//! ports, and stopped (killed, their directories removed) when dropped.
//!
//! They run the `redis-server` and `redis-cli` found on the `PATH` (Debian's `redis-server` and
//! `redis-tools`). When `redis-server` is missing, [`RedisServer::start`] and
//! [`RedisCluster::start`] return `None` after printing why, so that a test can skip; but if the
//! environment variable `CI` is set (to anything but `false` or `0`), they panic instead: in CI a
//! missing Redis is a failure, never a skip.
//!
//! ```text
//! let Some(server) = RedisServer::start() else { return };
//! println!("Redis on {}", server.url());
//! // Stopped here.
//! ```
#![allow(dead_code, unreachable_pub)]

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

/// A Redis Cluster of three masters on free loopback ports, its slots assigned by
/// `redis-cli --cluster create`: without replicas ([`start`](Self::start)), or with one replica
/// each ([`start_with_replicas`](Self::start_with_replicas)), whose masters a test can
/// [stop](Self::stop_node) or hand over ([`failover`](Self::failover)). Stopped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    /// `None` once stopped.
    nodes: Vec<Option<RedisServer>>,
    ports: Vec<u16>,
}

impl RedisCluster {
    /// Starts three masters and waits (bounded) until every node says `cluster_state:ok`;
    /// `None` if `redis-server` is missing outside CI (see the [module docs](self)).
    pub fn start() -> Option<Self> {
        Self::start_nodes(0, 5000)
    }

    /// Starts three masters and three replicas (one each), and waits (bounded) until every node
    /// says `cluster_state:ok` and every replica's link to its master is up, so that a replica
    /// can take over. A node is deemed failed after 2 seconds without an answer
    /// (`cluster-node-timeout`), so its replica takes over a few seconds after
    /// [`stop_node`](Self::stop_node). `None` if `redis-server` is missing outside CI.
    pub fn start_with_replicas() -> Option<Self> {
        Self::start_nodes(1, 2000)
    }

    fn start_nodes(replicas: usize, node_timeout_ms: u32) -> Option<Self> {
        if !redis_available() {
            return None;
        }
        let node_timeout = node_timeout_ms.to_string();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                RedisServer::spawn(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &node_timeout,
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
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create (Debian: redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            ports: nodes.iter().map(|n| n.port).collect(),
            nodes: nodes.into_iter().map(Some).collect(),
        };
        cluster.wait_until_ok();
        if replicas > 0 {
            let deadline = Instant::now() + START_TIMEOUT;
            for i in 0..cluster.ports.len() {
                loop {
                    let info = cluster.cli(i, &["info", "replication"]);
                    if info.contains("role:master") || info.contains("master_link_status:up") {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "a replica did not reach its master within {START_TIMEOUT:?}"
                    );
                    std::thread::yield_now();
                }
            }
        }
        Some(cluster)
    }

    /// Runs `redis-cli` against node `i` and answers what it printed.
    fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.ports[i].to_string()])
            .args(args)
            .output()
            .expect("run redis-cli (Debian: redis-tools)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (bounded) until every running node says `cluster_state:ok` and sees every slot
    /// served (`cluster_slots_ok:16384`).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        for i in self.running() {
            loop {
                let info = self.cli(i, &["cluster", "info"]);
                if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok within {START_TIMEOUT:?}: node \
                     {} says\n{info}",
                    self.ports[i]
                );
                std::thread::yield_now();
            }
        }
    }

    /// The indices of the nodes not stopped.
    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// `CLUSTER NODES` as a running node sees it: (port, id, master's id or `-`, flags, slots).
    fn table(&self) -> Vec<(u16, String, String, String, String)> {
        let i = self.running()[0];
        self.cli(i, &["cluster", "nodes"])
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let port = f.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                Some((
                    port,
                    f[0].to_owned(),
                    f.get(3)?.to_string(),
                    f.get(2)?.to_string(),
                    f.get(8..).map(|s| s.join(" ")).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The index of the node that serves `key` as master now.
    pub fn master_of(&self, key: &str) -> usize {
        let i = self.running()[0];
        let slot: u16 = self
            .cli(i, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        let covers = |ranges: &str| {
            ranges.split_whitespace().any(|r| {
                let mut ends = r.split('-').map(|n| n.parse::<u16>().ok());
                match (ends.next().flatten(), ends.next().flatten()) {
                    (Some(a), Some(b)) => (a..=b).contains(&slot),
                    (Some(a), None) => a == slot,
                    _ => false,
                }
            })
        };
        let port = self
            .table()
            .into_iter()
            .find(|(_, _, _, flags, slots)| flags.contains("master") && covers(slots))
            .map(|(port, ..)| port)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"));
        self.index(port)
    }

    /// The index of a replica of master `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let table = self.table();
        let id = &table
            .iter()
            .find(|(port, ..)| *port == self.ports[master])
            .expect("the master is in CLUSTER NODES")
            .1;
        let port = table
            .iter()
            .find(|(_, _, of, flags, _)| of == id && flags.contains("slave"))
            .map(|(port, ..)| *port)
            .unwrap_or_else(|| panic!("node {} has no replica", self.ports[master]));
        self.index(port)
    }

    fn index(&self, port: u16) -> usize {
        self.ports
            .iter()
            .position(|&p| p == port)
            .expect("a node of this cluster")
    }

    /// Kills node `i` (its directory removed): its replica, if it has one, takes over once the
    /// others deem it failed.
    pub fn stop_node(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Runs `CLUSTER FAILOVER` on replica `i`: it and its master swap roles, the master first
    /// handing over every write it took. Does not wait: see [`wait_master`](Self::wait_master).
    pub fn failover(&self, i: usize) {
        let said = self.cli(i, &["cluster", "failover"]);
        assert!(said.trim() == "OK", "CLUSTER FAILOVER said: {said}");
    }

    /// Waits (bounded) until node `i` is a master and the cluster (every running node) says
    /// `cluster_state:ok` with every slot served.
    pub fn wait_master(&self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let role = self.cli(i, &["role"]);
            if role.lines().next() == Some("master") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not become a master within {START_TIMEOUT:?}",
                self.ports[i]
            );
            std::thread::yield_now();
        }
        self.wait_until_ok();
    }

    /// Every running node's `redis://127.0.0.1:{port}`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().flatten().map(RedisServer::url).collect()
    }
}
