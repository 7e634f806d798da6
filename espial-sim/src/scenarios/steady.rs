//! `steady`: N nodes start at once; election and full-membership times, then idle traffic.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::invariants::{check_settled, settle};
use crate::metrics::TrafficWindow;
use serde_json::json;
use std::time::Duration;

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    let settled_at = s.at;
    out.settled("settle", s);
    out.set_ms("settled_ms", settled_at);
    // Idle window: until the requested duration (default 30 s), at least 5 s.
    let total = p.duration.unwrap_or(Duration::from_secs(30));
    let end = total.max(sim.now() + Duration::from_secs(5));
    let w = TrafficWindow::start(sim);
    let idle_start = sim.now();
    sim.cfg.classify_traffic = sim.cfg.cipher == crate::CipherKind::Test;
    sim.counters.by_kind.clear();
    let terms_before = sim.counters.election_events();
    // The last 10 s alone: the steady state, once join gossip and new sessions have drained.
    let tail_start = (end - Duration::from_secs(10)).max(idle_start);
    sim.run_until(tail_start);
    let tail = TrafficWindow::start(sim);
    sim.run_until(end);
    let rate = w.rate(sim);
    let tail = tail.rate(sim);
    out.set(
        "bytes_per_node_per_s_last_10s",
        json!({"mean": tail.mean.round(), "max": tail.max.round()}),
    );
    out.set(
        "bytes_per_node_per_s",
        json!({"mean": rate.mean.round(), "max": rate.max.round()}),
    );
    out.set("idle_window_s", json!((end - idle_start).as_secs_f64()));
    let secs = (end - idle_start).as_secs_f64().max(1e-9);
    let live = sim.live_slots().len().max(1) as f64;
    let kinds: serde_json::Map<String, serde_json::Value> = sim
        .counters
        .by_kind
        .iter()
        .map(|(k, (n, b))| {
            let per = json!({"msgs_per_node_per_s": (*n as f64 / secs / live * 100.0).round() / 100.0,
                             "bytes_per_node_per_s": (*b as f64 / secs / live).round()});
            (k.to_string(), per)
        })
        .collect();
    if !kinds.is_empty() {
        out.set("idle_traffic_by_kind", serde_json::Value::Object(kinds));
    }
    let changes = sim.counters.election_events() - terms_before;
    out.set("idle_election_events", json!(changes));
    if changes > 0 {
        out.fail(format!("{changes} election events while idle"));
    }
    for v in check_settled(sim) {
        out.fail(format!("end: {v}"));
    }
}
