//! Runs `espial demo --json` (the real binary) and checks its output covers every step.

use espial_tests::require_netns;
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_json_covers_every_step() {
    require_netns!();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_espial-cli"))
        .args(["demo", "--json"])
        .output()
        .expect("run espial demo");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(60), "demo took {took:?}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let mut events: HashMap<String, usize> = HashMap::new();
    let mut steps = Vec::new();
    for v in &lines {
        assert!(v["ts_ms"].as_u64().is_some(), "no ts_ms: {v}");
        if let Some(e) = v["event"].as_str() {
            assert!(
                v["at"].as_str().is_some_and(|a| a.starts_with("node-")),
                "no at: {v}"
            );
            *events.entry(e.to_string()).or_default() += 1;
        } else {
            steps.push(v["demo"].as_str().expect("event or demo line").to_string());
        }
    }
    let count = |e: &str| events.get(e).copied().unwrap_or(0);
    assert_eq!(count("listening"), 5);
    assert!(count("node_accepted") >= 4, "{events:?}");
    assert!(count("added_node") >= 20, "{events:?}");
    assert!(
        count("promotion") >= 2,
        "first election and re-election: {events:?}"
    );
    assert!(count("new_master") >= 4 + 3, "{events:?}");
    assert!(
        count("custom") >= 9,
        "3 events to 3 subscribers: {events:?}"
    );
    let removed = |reason: &str| {
        lines
            .iter()
            .filter(|v| v["event"] == "removed_node" && v["reason"] == reason)
            .count()
    };
    assert!(
        removed("failed") >= 4,
        "the killed master, seen by 4 survivors"
    );
    assert!(
        removed("left") >= 3,
        "the leaver, seen by 3 remaining nodes"
    );
    for step in [
        "start",
        "formed",
        "subscribe",
        "send",
        "delivered",
        "kill",
        "failover",
        "leave",
        "left",
        "done",
    ] {
        assert!(
            steps.iter().any(|s| s == step),
            "step {step} missing: {steps:?}"
        );
    }
    let failover = lines
        .iter()
        .find(|v| v["demo"] == "failover")
        .and_then(|v| v["failover_ms"].as_u64())
        .unwrap();
    println!("demo finished in {took:?}; failover {failover} ms");
}
