//! The runnable examples as a user runs them: the built binaries' `--help` and bad flags, a
//! host name for `--listen`, the start-up warning for a stage no plan lists, and the quickstart's
//! printed Step 5 commands run as printed (with curl and bash).
//!
//! `cargo test` builds the examples beside the test binaries (`target/debug/examples/`); a test
//! run that selects only this file (`cargo test --test examples_cli`) builds them first.
#![cfg(feature = "json")]

use crate::example_support;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};

use example_support::{example, Server, PATIENCE};

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(example(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_exits_0_and_shows_the_defaults() {
    for (name, defaults) in [
        (
            "quickstart",
            &[
                "[default: 127.0.0.1:3000]",
                "[default: abc123def4]",
                "[default: prod]",
                "examples/quickstart.json]",
            ][..],
        ),
        (
            "grpc",
            &[
                "[default: 127.0.0.1:50051]",
                "[default: greeter01]",
                "[default: prod]",
            ][..],
        ),
        (
            "bench_server",
            &[
                "[default: 127.0.0.1:3001]",
                "[default: 10000]",
                "--no-layer",
                "--no-headers",
            ][..],
        ),
        ("admit_loop", &["[default: 1000000]", "MODE=tg"][..]),
        ("memory", &["[default: 1000000]"][..]),
        ("latency", &["[default: 1000000]"][..]),
        ("flush", &["[default: 1000000]", "[default: 1000]"][..]),
        ("operate_bench", &["Takes no arguments"][..]),
    ] {
        for flag in ["--help", "-h"] {
            let out = run(name, &[flag]);
            let stdout = text(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{name} {flag}: {stdout}");
            assert!(
                stdout.contains(&format!("Usage: {name}")),
                "{name} {flag}: {stdout}"
            );
            for d in defaults {
                assert!(stdout.contains(d), "{name} {flag} lacks {d:?}:\n{stdout}");
            }
            assert!(
                out.stderr.is_empty(),
                "{name} {flag}: {}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn a_bad_flag_or_value_exits_2_saying_what_to_fix() {
    for (name, args, says) in [
        (
            "quickstart",
            &["--bogus"][..],
            "unexpected argument '--bogus'",
        ),
        ("grpc", &["--bogus"][..], "unexpected argument '--bogus'"),
        (
            "bench_server",
            &["--bogus"][..],
            "unexpected argument '--bogus'",
        ),
        (
            "quickstart",
            &["--listen"][..],
            "a value is required for '--listen <HOST:PORT>'",
        ),
        (
            "bench_server",
            &["--keys", "ten"][..],
            "invalid value 'ten' for '--keys <N>'",
        ),
        (
            "admit_loop",
            &["lots"][..],
            "invalid value 'lots' for '[REQUESTS]'",
        ),
        ("memory", &["-5"][..], "unexpected argument '-5'"),
    ] {
        let out = run(name, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
        assert!(stderr.contains(says), "{name} {args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{name} {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{name} {args:?}");
    }
}

#[test]
fn a_listen_address_that_does_not_resolve_exits_1_naming_the_flag() {
    for name in ["quickstart", "grpc", "bench_server"] {
        let memory: &[&str] = if name == "quickstart" {
            &["--memory"]
        } else {
            &[]
        };
        let out = run(
            name,
            &[&["--listen", "no-such-host.invalid:1"], memory].concat(),
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains("cannot listen on --listen no-such-host.invalid:1"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn listen_takes_a_host_name_in_every_server_example() {
    for (name, args, says) in [
        (
            "quickstart",
            &[][..],
            "Serving API abc123def4 stage prod on http://",
        ),
        ("grpc", &[][..], "helloworld.Greeter on "),
        (
            "bench_server",
            &["--keys", "1"][..],
            "serving GET /items on ",
        ),
    ] {
        let mut server = Server::start(name, &[&["--listen", "localhost:0"], args].concat());
        let line = server.wait_for(false, says);
        assert!(
            line.contains("127.0.0.1:") || line.contains("[::1]:") || line.contains("localhost:0"),
            "{name}: {line}"
        );
    }
}

#[test]
fn a_stage_no_plan_lists_is_warned_of_at_start() {
    for (name, args, stage, listed) in [
        (
            "quickstart",
            &["--api-id", "other"][..],
            "other:prod",
            "abc123def4:prod",
        ),
        (
            "grpc",
            &["--stage", "dev"][..],
            "greeter01:dev",
            "greeter01:prod",
        ),
    ] {
        let mut server = Server::start(name, &[&["--listen", "127.0.0.1:0"], args].concat());
        let warning = server.wait_for(
            true,
            &format!("WARNING: no usage plan lists the stage {stage}"),
        );
        assert!(warning.contains("403 Forbidden"), "{name}: {warning}");
        assert!(
            warning.contains(&format!("The plans list: {listed}.")),
            "{name}: {warning}"
        );
    }
}

#[test]
fn the_chosen_stage_s_plans_and_keys_are_named_at_start() {
    let mut server = Server::start("quickstart", &["--listen", "127.0.0.1:0"]);
    server.wait_for(
        false,
        "Plan plan111 (FreePlan) serves abc123def4:prod with 1 key",
    );
    server.wait_for(
        false,
        "Plan plan222 (PremiumPlan) serves abc123def4:prod with 1 key",
    );
    server.wait_for(false, "# no key needed");
    assert!(
        server.printed(true).iter().all(|l| !l.contains("WARNING")),
        "{:?}",
        server.printed(true)
    );

    let mut server = Server::start("grpc", &["--listen", "127.0.0.1:0"]);
    server.wait_for(
        false,
        "Plan freeplan (Free) serves greeter01:prod with 1 key",
    );
    server.wait_for(
        false,
        "Plan premiumplan (Premium) serves greeter01:prod with 1 key",
    );
}

/// The Step 5 commands `server` (the quickstart) printed, one a line.
fn printed_step_5(server: &mut Server) -> Vec<String> {
    server.wait_for(false, "The article's Step 5");
    server.wait_for(false, "# no key needed");
    let stdout = server.printed(false);
    let start = stdout
        .iter()
        .position(|l| l.starts_with("The article's Step 5"))
        .unwrap();
    stdout[start + 1..]
        .iter()
        .map(|l| l.trim_start().to_owned())
        .collect()
}

/// Runs `script` in bash; its stdout.
fn bash(script: &[String]) -> String {
    let out = Command::new("bash")
        .args(["-c", &script.join("\n")])
        .stdin(Stdio::null())
        .output()
        .expect("bash runs the printed commands");
    let got = text(&out.stdout);
    assert!(out.status.success(), "{got}{}", text(&out.stderr));
    got
}

/// Runs the quickstart's printed Step 5 commands as printed, in bash with curl: 403 without a
/// key, 200 with one, the rate-limit headers, about twenty 200s then 429s, and the rest.
#[test]
fn the_quickstart_s_printed_step_5_runs_as_printed() {
    let mut server = Server::start("quickstart", &["--listen", "127.0.0.1:0"]);
    let script = printed_step_5(&mut server);
    assert!(script[0].starts_with("KEY='"), "{script:?}");
    let got = bash(&script);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[0], "403", "{got}");
    assert_eq!(lines[1], r#"{"items":[1,2,3]}"#, "{got}");
    assert!(
        lines[2].to_ascii_lowercase().starts_with("ratelimit"),
        "{got}"
    );
    // GET /items has its own override in FreePlan (burst 20), and two tokens went above.
    let loop_line = lines
        .iter()
        .find(|l| l.starts_with("200 ") && l.contains("429"))
        .unwrap_or_else(|| panic!("no loop line: {got}"));
    let codes: Vec<&str> = loop_line.split_whitespace().collect();
    let ok = codes.iter().take_while(|c| **c == "200").count();
    assert_eq!(codes.len(), 30, "{got}");
    assert!((15..=25).contains(&ok), "about twenty 200s: {loop_line}");
    assert_eq!(codes[ok], "429", "{loop_line}");
    assert!(got.contains(r#"{"order":"accepted"}"#), "{got}");
    assert_eq!(lines.last(), Some(&"ok"), "{got}");
}

/// With a config of the user's own, the quickstart prints no key value: its printed line reads
/// the key with jq, and works.
#[test]
fn with_another_config_the_key_is_read_with_jq_not_printed() {
    let dir = std::env::temp_dir().join(format!("examples-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("my plans.json");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart.json"),
        &config,
    )
    .unwrap();
    let mut server = Server::start(
        "quickstart",
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let script = printed_step_5(&mut server);
    assert!(script[0].starts_with("KEY=$(jq -r "), "{script:?}");
    // The whole path, so that the line works from another directory; and no promise of the demo
    // file's answers.
    let whole = std::fs::canonicalize(&config).unwrap();
    assert!(script[0].contains(whole.to_str().unwrap()), "{script:?}");
    assert!(
        script
            .iter()
            .any(|l| l.contains("until the plan's burst is spent")),
        "{script:?}"
    );
    assert!(
        !script.iter().any(|l| l.contains("about twenty")),
        "{script:?}"
    );
    for (_, line) in &server.seen {
        assert!(
            !line.contains("aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789"),
            "{line}"
        );
    }
    let got = bash(&script[..3]);
    assert_eq!(got, "403\n{\"items\":[1,2,3]}\n");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// After the Step 5 script (a 403, 200s and 429s), `curl /metrics` on the quickstart's port shows
/// each outcome counted by route template, with no key id or value; at RUST_LOG=trace the log
/// names refusals by key id and never shows a value. (The quickstart serves /metrics with the
/// `metrics` feature.)
#[cfg(feature = "metrics")]
#[test]
fn the_quickstart_serves_metrics_and_logs_without_key_values() {
    let mut server = Server::start_with_env(
        "quickstart",
        &["--listen", "127.0.0.1:0"],
        &[("RUST_LOG", "trace")],
    );
    let script = printed_step_5(&mut server);
    let value = script[0]
        .trim_start_matches("KEY='")
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let base = server
        .printed(false)
        .iter()
        .find_map(|l| {
            l.strip_prefix("Serving API ")
                .and_then(|l| l.split(" on ").nth(1))
        })
        .unwrap()
        .to_owned();
    bash(&script);
    let metrics = bash(&[format!("curl -s {base}/metrics")]);
    for outcome in ["admitted", "forbidden", "throttled", "bypassed"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("usage_plans_requests_total{")
                    && l.contains(&format!("outcome=\"{outcome}\""))),
            "{outcome} not counted:\n{metrics}"
        );
    }
    assert!(metrics.contains("method=\"GET /items\""), "{metrics}");
    assert!(
        metrics.contains("usage_plans_request_duration_seconds"),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&value) && !metrics.contains("key111aaa"),
        "{metrics}"
    );
    server.wait_for(true, "reason=\"throttled\"");
    let log = server.printed(true).join("\n");
    assert!(log.contains("key_id=\"key111aaa\""), "{log}");
    assert!(!log.contains(&value), "a key value in the log:\n{log}");
}

/// GET /items with `key` on `addr`, over a plain socket: the status and the day's quota left, as
/// the `RateLimit` header says (`"day";r=N`).
fn day_remaining(addr: &str, key: &str) -> (u16, u64) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /items HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {key}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let header = raw
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("ratelimit:"))
        .unwrap_or_else(|| panic!("no RateLimit header: {raw}"));
    let day = header.split("\"day\";r=").nth(1).unwrap();
    let left = day.split(';').next().unwrap().parse().unwrap();
    (status, left)
}

/// The demo's ClientA-Free (public).
const DEMO_FREE: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ123456789";

/// Starts the quickstart with `state`, sends three requests, stops it with `signal`; answers the
/// day's quota left after each request.
fn three_requests_then(state: &[&str], signal: &str) -> Vec<u64> {
    let mut server = Server::start(
        "quickstart",
        &[&["--listen", "127.0.0.1:0"], state].concat(),
    );
    let addr = server.base();
    server.wait_for(false, "# no key needed");
    let left: Vec<u64> = (0..3)
        .map(|_| {
            let (status, left) = day_remaining(&addr, DEMO_FREE);
            assert_eq!(status, 200);
            left
        })
        .collect();
    server.signal(signal);
    if !state.contains(&"--memory") {
        server.wait_for(false, "Stopped: usage written to the data file");
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}: {:#?}", server.seen);
    left
}

/// On its data file, a restart (after Ctrl-C, or SIGTERM) goes on counting the day's quota where
/// it was; the second start says the file was not seeded again.
#[test]
fn the_quickstart_keeps_the_day_s_usage_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("examples-cli-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("quickstart.db");
    let data = data.to_str().unwrap();
    let first = three_requests_then(&["--data", data], "INT");
    assert_eq!(first[1], first[0] - 1, "{first:?}");
    assert_eq!(first[2], first[0] - 2, "{first:?}");
    let second = three_requests_then(&["--data", data], "TERM");
    assert_eq!(
        second[0],
        first[2] - 1,
        "reset by a restart: {first:?} {second:?}"
    );
    let third = three_requests_then(&["--data", data], "INT");
    assert_eq!(
        third[0],
        second[2] - 1,
        "reset by a restart: {second:?} {third:?}"
    );

    let mut server = Server::start("quickstart", &["--listen", "127.0.0.1:0", "--data", data]);
    let note = server.wait_for(false, "(SQLite)");
    assert!(
        note.contains("holds 2 keys and 2 plans from before"),
        "{note}"
    );
    assert!(note.contains("--config was not loaded"), "{note}");
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On a data file that already holds keys, the start-up report describes what the file serves,
/// not `--config` (which is not loaded into it), and Step 5 shows no key the file does not serve.
#[test]
fn on_a_data_file_that_holds_keys_the_report_is_of_the_file() {
    let dir = std::env::temp_dir().join(format!("examples-cli-served-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("quickstart.db");
    let data = data.to_str().unwrap();
    // Seeded from the demo configuration.
    three_requests_then(&["--data", data], "INT");
    // Another configuration: its plans list another API, its key another value.
    let mut other: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/quickstart.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for plan in other["usagePlans"].as_array_mut().unwrap() {
        for stage in plan["apiStages"].as_array_mut().unwrap() {
            stage["apiId"] = "elsewhere".into();
        }
    }
    for (i, key) in other["apiKeys"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        key["value"] = format!("a-value-the-data-file-never-held-{i:04}").into();
    }
    let config = dir.join("other.json");
    std::fs::write(&config, other.to_string()).unwrap();
    let mut server = Server::start(
        "quickstart",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data,
            "--config",
            config.to_str().unwrap(),
        ],
    );
    server.wait_for(false, "--config was not loaded");
    server.wait_for(
        false,
        "Plan plan111 (FreePlan) serves abc123def4:prod with 1 key",
    );
    server.wait_for(false, "The article's Step 5 is not shown");
    assert!(
        !server
            .seen
            .iter()
            .any(|(_, l)| l.contains("a-value-the-data-file-never-held")),
        "{:#?}",
        server.seen
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A client that never finishes its request does not hold the quickstart after SIGTERM: it stops
/// once `--grace` has passed, saying so.
#[test]
fn a_stalled_client_does_not_hold_the_quickstart_after_sigterm() {
    let mut server = Server::start("quickstart", &["--listen", "127.0.0.1:0", "--grace", "1"]);
    let addr = server.base();
    server.wait_for(false, "# no key needed");
    // The server's open sockets, from /proc: one more once it has accepted the connection (other
    // files it opens meanwhile, a pipe or an eventfd, are not counted: they made this race).
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).map_or(0, |dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
    };
    let before = fds();
    let mut stalled = std::net::TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    // Half a request's head, never finished.
    stalled
        .write_all(b"GET /items HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let start = std::time::Instant::now();
    while fds() <= before {
        assert!(
            start.elapsed() < PATIENCE,
            "the connection was never accepted"
        );
        std::thread::yield_now();
    }
    server.signal("TERM");
    server.wait_for(true, "requests still open 1s after the signal");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}: {:#?}", server.seen);
    drop(stalled);
}

/// With `--memory`, a restart forgets the day's usage.
#[test]
fn with_memory_a_restart_resets_the_quota() {
    let first = three_requests_then(&["--memory"], "INT");
    let second = three_requests_then(&["--memory"], "INT");
    assert_eq!(first, second, "kept across a restart with --memory");
}

/// A data file in a directory that does not exist: a clear error naming the flag, no panic.
#[test]
fn a_data_file_that_cannot_be_opened_is_a_clear_error() {
    let out = run(
        "quickstart",
        &["--listen", "127.0.0.1:0", "--data", "/nonexistent-dir/q.db"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open --data /nonexistent-dir/q.db"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
