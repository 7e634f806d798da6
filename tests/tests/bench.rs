//! Runs `espial bench all --json --quick` (the real binary) and checks that every figure is
//! produced and sane: present, positive, finite, nothing lost; the failover bench reports the
//! quorum mode (`--quorum 3`) beside the default mode, and in quorum mode no two agents were
//! master at once. Not the bars (CI machines are noisy); those are recorded in
//! docs/BENCHMARKS.md.

use espial_tests::require_netns;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole quick run must end well within this (the acceptance bar is 3 minutes).
const LIMIT: Duration = Duration::from_secs(240);

/// Kills the bench process if the test ends early (panic or deadline).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} in {v}");
    x
}

fn summary(v: &Value, unit: &str) {
    let med = positive(v, &format!("median_{unit}"));
    let min = positive(v, &format!("min_{unit}"));
    let max = positive(v, &format!("max_{unit}"));
    assert!(min <= med && med <= max, "min <= median <= max: {v}");
    assert!(v["trials"].as_u64().is_some_and(|t| t >= 1), "trials: {v}");
}

#[test]
fn bench_all_quick_produces_every_figure() {
    require_netns!();
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_espial-cli"))
        .args(["bench", "all", "--json", "--quick"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run espial bench");
    let mut child = KillOnDrop(child);
    let mut stdout = child.0.stdout.take().expect("piped stdout");
    // Read on a thread so the deadline below holds even if the bench hangs.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st;
        }
        assert!(
            start.elapsed() < LIMIT,
            "espial bench all --json --quick still running after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = start.elapsed();
    let out = reader.join().expect("reader");
    assert!(status.success(), "bench failed ({status:?}):\n{out}");
    let mut by: HashMap<String, Vec<Value>> = HashMap::new();
    for line in out.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("note").is_none(), "bench noted a problem: {v}\n{out}");
        let b = v["bench"]
            .as_str()
            .unwrap_or_else(|| panic!("no bench: {v}"));
        by.entry(b.to_string()).or_default().push(v);
    }
    let one = |b: &str| -> &Value {
        let v = by
            .get(b)
            .unwrap_or_else(|| panic!("no {b} figure in:\n{out}"));
        assert_eq!(v.len(), 1, "{b}: {v:?}");
        &v[0]
    };

    let c = one("crypto");
    for k in ["seal_open_ns", "raw_seal_open_ns", "bulk_ratio_min"] {
        positive(c, k);
    }
    assert_eq!(c["errors"], 0, "{c}");
    for b in ["join", "failover", "failover_quorum", "leave"] {
        summary(one(b), "ms");
        assert_eq!(one(b)["processes"], 5);
    }
    // Failover in both election modes, each with its own trials (2 in --quick).
    let plain = one("failover");
    let quorum = one("failover_quorum");
    assert_eq!(plain["quorum"], Value::Null, "{plain}");
    assert_eq!(quorum["quorum"], 3, "{quorum}");
    for f in [plain, quorum] {
        assert_eq!(f["trials"], 2, "{f}");
        // Bounded by the bench's own 15 s deadline; a failover needs at least the master
        // timeout of the LAN profile, so anything under 100 ms is a measuring error.
        let med = f["median_ms"].as_f64().expect("median");
        assert!((100.0..15_000.0).contains(&med), "{f}");
        let p = positive(f, "promoted_after_kill_ms_min");
        assert!(p <= f["max_ms"].as_f64().expect("max") + 1.0, "{f}");
        assert!(f["two_masters_ms_max"].as_u64().is_some(), "{f}");
        assert!(f["two_masters_trials"].as_u64().is_some(), "{f}");
    }
    // The quorum-mode guarantee, as the bench observes it over the whole trials
    // (formation and failover): never two agents master at once.
    assert_eq!(quorum["two_masters_ms_max"], 0, "{quorum}");
    assert_eq!(quorum["two_masters_trials"], 0, "{quorum}");
    summary(one("udp_raw"), "per_s");
    let e = one("events");
    summary(e, "per_s");
    assert_eq!(e["lost"], 0, "{e}");
    assert_eq!(e["reordered"], 0, "{e}");
    assert_eq!(e["listener_lagged"], 0, "{e}");
    assert_eq!(e["receivers"], 4, "{e}");
    assert!(
        e["mode"]
            .as_str()
            .is_some_and(|m| m.contains("4 subscriber processes")),
        "{e}"
    );
    assert!(e["sent"].as_u64().is_some_and(|n| n > 0), "{e}");
    positive(e, "ratio_to_raw");
    let l = one("latency");
    summary(l, "ms");
    positive(l, "p50_ms");
    positive(l, "p99_ms");
    assert!(l["p50_ms"].as_f64() <= l["p99_ms"].as_f64(), "{l}");
    assert_eq!(l["lost"], 0, "{l}");
    let idle = by.get("idle").expect("idle figures");
    let sizes: Vec<u64> = idle.iter().filter_map(|v| v["nodes"].as_u64()).collect();
    assert_eq!(sizes, [5, 20, 50], "{idle:?}");
    for v in idle {
        summary(v, "bytes_per_s");
        positive(v, "mean_bytes_per_s");
        let cpu = v["cpu_percent_per_node"].as_f64().expect("cpu");
        assert!(cpu.is_finite() && cpu >= 0.0, "{v}");
        assert_eq!(v["converged_at_end"], true, "{v}");
        assert_eq!(
            v["mode"], "one process per node, real UDP on 127.0.x.y",
            "{v}"
        );
    }
    positive(one("idle_growth"), "ratio");
    let done = one("done");
    assert_eq!(done["failures"], 0, "{done}");
    assert!(took < LIMIT, "took {took:?}");
}
