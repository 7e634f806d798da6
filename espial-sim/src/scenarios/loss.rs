//! `loss`: datagram loss for the whole run (default 10 simulated minutes). No live node may
//! ever be removed and the master may not change after the first election.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::invariants::settle;
use crate::metrics::TrafficWindow;
use serde_json::json;
use std::time::Duration;

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    let loss = p.loss.unwrap_or(0.1);
    sim.net.config.loss = loss;
    out.set("loss", json!(loss));
    let (election, _) = start_and_elect(sim, p.nodes, out);
    let elections_before = sim.counters.election_events();
    let total = p.duration.unwrap_or(Duration::from_secs(600));
    let w = TrafficWindow::start(sim);
    if election.is_some() {
        sim.run_until(total.max(sim.now()));
    }
    let rate = w.rate(sim);
    out.set(
        "bytes_per_node_per_s",
        json!({"mean": rate.mean.round(), "max": rate.max.round()}),
    );
    let removed = sim.counters.live_removed;
    let changes = sim.counters.election_events() - elections_before;
    out.set("live_nodes_removed", json!(removed));
    out.set("master_changes", json!(changes));
    if removed > 0 {
        out.fail(format!(
            "{removed} removal(s) of live nodes under {loss} loss, e.g. {:?}",
            sim.counters.live_removed_examples
        ));
    }
    if changes > 0 {
        out.fail(format!(
            "{changes} election event(s) after the first election under {loss} loss"
        ));
    }
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("end (loss still on)", s);
}
