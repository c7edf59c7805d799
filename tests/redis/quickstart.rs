//! Two quickstarts (`--redis URL`) on two ports share one set of keys and limits, on a real
//! redis-server started here: the first loads the demo configuration into Redis, the second
//! serves what Redis holds, and a key's throttle holds across both.
//!
//! `cargo test` builds the examples beside the test binaries; a run of this file alone builds
//! them first (with every feature). Without redis-server this test prints SKIPPED and passes,
//! unless `CI` is set: then it fails.
#![cfg(all(feature = "json", feature = "metrics"))]

use crate::example_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::redis_server;
use example_support::{Server, PATIENCE};
use redis_server::RedisServer;

/// ClientA-Free's value in the bundled demo configuration (public).
const FREE: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789";

/// A quickstart on the Redis at `redis`, with `more` flags.
fn quickstart(redis: &str, more: &[&str]) -> Server {
    Server::start(
        "quickstart",
        &[&["--listen", "127.0.0.1:0", "--redis", redis], more].concat(),
    )
}

/// Sends one HTTP/1.1 request; the status and the body.
fn send(addr: &str, method: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let key = key.map_or(String::new(), |k| format!("x-api-key: {k}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{key}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// `POST /orders` with ClientA-Free's key; the status.
fn post_order(addr: &str) -> u16 {
    send(addr, "POST", "/orders", Some(FREE), "").0
}

#[test]
fn two_quickstarts_on_one_redis_share_keys_and_limits() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut a = quickstart(&server.url(), &[]);
    a.wait_for(false, "loaded --config into it");
    let a_addr = a.base();
    let mut b = quickstart(&server.url(), &[]);
    b.wait_for(false, "it holds 2 keys and 2 plans already");
    let b_addr = b.base();

    // FreePlan's POST /orders: burst 5, 2 per second. Alternating between the two, the pair
    // admits one bucket's worth (plus what refilled meanwhile), not two.
    let start = Instant::now();
    let statuses: Vec<u16> = (0..12)
        .map(|i| post_order(if i % 2 == 0 { &a_addr } else { &b_addr }))
        .collect();
    let refilled = (start.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=5 + refilled).contains(&admitted),
        "admitted {admitted} of 12 across both (refill allowance {refilled}): {statuses:?}"
    );
    assert!(statuses.contains(&429));
}

/// The admin API over Redis: a key made and linked through one quickstart's admin API (as
/// `aws apigateway create-api-key` and `create-usage-plan-key` send them) works on the other
/// quickstart at once.
#[test]
fn a_key_made_through_one_quickstarts_admin_api_works_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut a = quickstart(
        &server.url(),
        &["--admin-listen", "127.0.0.1:0", "--admin-no-auth"],
    );
    let a_addr = a.base();
    // "Admin API (…) on http://127.0.0.1:PORT: no signature checked (--admin-no-auth)"
    let line = a.wait_for(false, "Admin API");
    let admin = line
        .split_once("http://")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map(|(addr, _)| addr.to_owned())
        .unwrap_or_else(|| panic!("no admin address in {line:?}"));
    let mut b = quickstart(&server.url(), &[]);
    let b_addr = b.base();

    let value = "made-through-the-admin-api-0123456789";
    assert_eq!(send(&b_addr, "GET", "/items", Some(value), "").0, 403);
    let (status, body) = send(
        &admin,
        "POST",
        "/apikeys",
        None,
        &format!(r#"{{"name":"ClientC","value":"{value}","enabled":true}}"#),
    );
    assert_eq!(status, 201, "{body}");
    let key: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = key["id"].as_str().unwrap();
    let (status, body) = send(
        &admin,
        "POST",
        "/usageplans/plan111/keys",
        None,
        &format!(r#"{{"keyId":"{id}","keyType":"API_KEY"}}"#),
    );
    assert_eq!(status, 201, "{body}");
    // The instance whose admin API made it knows it at once; the other within its refresh
    // interval (1 s: RedisStore's documented staleness), which this waits out.
    assert_eq!(send(&a_addr, "GET", "/items", Some(value), "").0, 200);
    let start = Instant::now();
    while send(&b_addr, "GET", "/items", Some(value), "").0 != 200 {
        assert!(
            start.elapsed() < PATIENCE,
            "the other quickstart never saw the key"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
