//! A measurement, not a usage example: loading a large configuration (`Config::from_file` on an
//! AWS-shaped file).
//!
//! `cargo run --release --example config_load -- write PATH [KEYS]` writes a configuration of KEYS
//! keys (default 16,500, about 10 MB) with a plan for every ten keys, each plan with a throttle,
//! a quota and two stages with per-method throttles, and every key linked to its plan.
//! `cargo run --release --example config_load -- load PATH` loads it and prints the time taken;
//! run it under `/usr/bin/time -v` for the peak memory. See BENCHMARKS.md.

use std::time::Instant;

use tower_usage_plans::config::Config;
use tower_usage_plans::model::{
    ApiKey, ApiKeyValue, ApiStage, Quota, QuotaPeriod, Throttle, UsagePlan,
};

fn generate(keys: usize) -> Config {
    let mut config = Config::default();
    for i in 0..keys {
        let value = format!("{i:0>12}aBcDeFgHiJkLmNoPqRsTuVwXyZ");
        let mut key = ApiKey::new(
            format!("key{i:07}"),
            format!("Client {i}"),
            ApiKeyValue::new(value).expect("a valid value"),
        );
        key.description = Some(format!("The key of client number {i}"));
        key.created_date = Some(1_705_312_800 + i as i64);
        key.last_updated_date = Some(1_705_312_800 + 2 * i as i64);
        key.customer_id = Some(format!("customer-{i}"));
        key.tags.insert("team".into(), format!("team-{}", i % 7));
        config.api_keys.push(key);
    }
    for p in 0..keys.div_ceil(10) {
        let mut plan = UsagePlan::new(format!("plan{p:06}"), format!("Plan {p}"));
        plan.description = Some(format!("Usage plan number {p}"));
        plan.throttle = Some(Throttle::new(100.0 + p as f64, 200).expect("a valid throttle"));
        plan.quota = Some(Quota::new(100_000, QuotaPeriod::Month, 3).expect("a valid quota"));
        for stage in ["prod", "beta"] {
            let mut st = ApiStage::new("abc123def4", stage);
            st.throttle.insert(
                "/items/GET".into(),
                Throttle::new(10.0, 20).expect("a valid throttle"),
            );
            st.throttle.insert(
                "/orders/{id}/POST".into(),
                Throttle::new(2.5, 5).expect("a valid throttle"),
            );
            plan.api_stages.push(st);
        }
        plan.tags.insert("tier".into(), format!("tier-{}", p % 3));
        let linked = (p * 10..(p * 10 + 10).min(keys))
            .map(|i| format!("key{i:07}"))
            .collect();
        config.usage_plan_keys.insert(plan.id.clone(), linked);
        config.usage_plans.push(plan);
    }
    config
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["write", path, rest @ ..] => {
            let keys = rest
                .first()
                .map_or(16_500, |n| n.parse().expect("a number"));
            let config = generate(keys);
            config.to_file(path).expect("written");
            let size = std::fs::metadata(path).expect("written").len();
            println!("wrote {path}: {keys} keys, {size} bytes");
        }
        ["load", path] => {
            let start = Instant::now();
            let config = Config::from_file(path).expect("a valid configuration");
            let took = start.elapsed();
            println!(
                "loaded {} keys, {} plans in {:.1} ms",
                config.api_keys.len(),
                config.usage_plans.len(),
                took.as_secs_f64() * 1e3
            );
        }
        _ => eprintln!("usage: config_load write PATH [KEYS] | config_load load PATH"),
    }
}
