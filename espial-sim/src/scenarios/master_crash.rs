//! `master-crash`: converge, crash the master at a random phase (failover time), then crash a
//! non-master (detection time).

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::invariants::settle;
use crate::metrics::agreed_master;
use serde_json::json;
use std::time::Duration;

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    if p.nodes < 2 {
        out.set("failover_ms", json!(null));
        return;
    }
    // Random phase relative to heartbeats and probe rounds.
    let phase = Duration::from_micros(sim.rng.below(1_000_000) as u64);
    sim.run_for(phase);
    let Some(old) = agreed_master(sim) else {
        out.fail("no agreed master before the crash".into());
        return;
    };
    let victim = sim.slot_of(old).expect("known");
    sim.crash(victim);
    let t0 = sim.now();
    let step = if p.nodes > 200 {
        Duration::from_millis(5)
    } else {
        Duration::from_millis(1)
    };
    let failover = sim
        .run_until_pred(t0 + Duration::from_secs(30), step, |s| {
            agreed_master(s).is_some_and(|m| m != old)
        })
        .map(|t| t - t0);
    if failover.is_none() {
        out.fail("survivors did not agree on a new master within 30 s of the master crash".into());
    }
    out.set_ms("failover_ms", failover);
    out.set("crashed_master", json!(format!("n{victim}")));
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("after master crash", s);

    // Crash a non-master: time until every survivor removed it.
    let live = sim.live_slots();
    let candidates: Vec<usize> = live
        .iter()
        .copied()
        .filter(|&s| !sim.node(s).is_some_and(|n| n.is_master()))
        .collect();
    if candidates.is_empty() {
        return;
    }
    let victim = candidates[sim.rng.below(candidates.len())];
    let id = sim.slots[victim].id;
    sim.crash(victim);
    let t0 = sim.now();
    let detection = sim
        .run_until_pred(t0 + Duration::from_secs(60), step, |s| {
            s.live_slots()
                .iter()
                .all(|&x| s.node(x).is_some_and(|n| n.member(id).is_none()))
        })
        .map(|t| t - t0);
    if detection.is_none() {
        out.fail(format!(
            "crashed non-master n{victim} still listed by some survivor 60 s later"
        ));
    }
    out.set_ms("detection_ms", detection);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("after non-master crash", s);
}
