//! Gray failures (issue 11 item 3): nodes that come back from isolation or run slow must not
//! make healthy nodes remove other healthy nodes. The step-level invariant lives in
//! [`crate::health`]; these scenarios create the conditions.
//!
//! - `isolate-heal`: converge; one node (not the sender) is isolated for 5 s and healed,
//!   `--rounds` times (default 3), while another node sends 100 events/s to the subscribers.
//! - `slow-node`: converge; one node handles every received datagram `10 × probe_timeout`
//!   late (its timers stay on time) for 20 s while a node sends 100 events/s; then it
//!   recovers.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::faults::Action;
use crate::invariants::settle;
use crate::schedule::{publish, EVENT_NAME};
use serde_json::json;
use std::time::Duration;

/// Runs `sim` for `d` while `sender` publishes one event every 10 ms (100 events/s).
fn send_for(sim: &mut Sim, sender: usize, d: Duration) -> u64 {
    let end = sim.now() + d;
    let mut sent = 0;
    while sim.now() < end {
        if publish(sim, sender) {
            sent += 1;
        }
        let next = (sim.now() + Duration::from_millis(10)).min(end);
        sim.run_until(next);
    }
    sent
}

/// Converges `p.nodes` nodes and subscribes every node but the sender; returns the sender.
fn start(sim: &mut Sim, p: &Params, out: &mut Out) -> Option<usize> {
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    if p.nodes < 3 {
        out.fail("gray-failure scenarios need at least 3 nodes".into());
        return None;
    }
    let sender = sim.rng.below(p.nodes);
    for s in sim.live_slots() {
        if s != sender {
            sim.apply(Action::Subscribe(s, EVENT_NAME.into()));
        }
    }
    sim.run_for(Duration::from_secs(2));
    Some(sender)
}

/// A random live slot other than `not`.
fn pick_other(sim: &mut Sim, not: usize) -> usize {
    let live: Vec<usize> = sim.live_slots().into_iter().filter(|&s| s != not).collect();
    live[sim.rng.below(live.len())]
}

pub(super) fn isolate_heal(sim: &mut Sim, p: &Params, out: &mut Out) {
    let Some(sender) = start(sim, p, out) else {
        return;
    };
    let rounds = p.rounds.unwrap_or(3);
    let mut sent = 0;
    for _ in 0..rounds {
        let victim = pick_other(sim, sender);
        let rest: Vec<usize> = sim
            .live_slots()
            .into_iter()
            .filter(|&s| s != victim)
            .collect();
        sim.apply(Action::Partition(vec![rest, vec![victim]]));
        sent += send_for(sim, sender, Duration::from_secs(5));
        sim.apply(Action::Heal);
        sent += send_for(sim, sender, Duration::from_secs(10));
    }
    out.set("rounds", json!(rounds));
    out.set("events_sent", json!(sent));
    out.set("false_removals", json!(sim.health.false_removals));
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("after the heals", s);
}

pub(super) fn slow_node(sim: &mut Sim, p: &Params, out: &mut Out) {
    let Some(sender) = start(sim, p, out) else {
        return;
    };
    let victim = pick_other(sim, sender);
    let lag = sim.cfg.core.probe_timeout * 10;
    out.set("slow_lag_ms", json!(lag.as_millis() as u64));
    sim.apply(Action::Slow(victim, lag));
    let mut sent = send_for(sim, sender, p.duration.unwrap_or(Duration::from_secs(20)));
    sim.apply(Action::Slow(victim, Duration::ZERO));
    sent += send_for(sim, sender, Duration::from_secs(10));
    out.set("events_sent", json!(sent));
    out.set("false_removals", json!(sim.health.false_removals));
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("after the slow period", s);
}
