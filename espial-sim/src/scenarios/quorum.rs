//! `quorum`: quorum mode (`quorum = N/2 + 1`); the master is cut off with a minority: the
//! minority must have no master, the majority exactly one; after healing, one master.

use super::partition_heal::random_split;
use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::faults::Action;
use crate::invariants::settle;
use crate::metrics::agreed_master;
use serde_json::json;

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    let q = p.nodes / 2 + 1;
    sim.cfg.core.quorum = Some(q);
    out.set("quorum", json!(q));
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    let minority_size = p.nodes - q;
    if minority_size == 0 {
        return;
    }
    // The minority holds the current master, so the majority must replace it and the old
    // master must step down.
    let master_slot = agreed_master(sim).and_then(|m| sim.slot_of(m));
    let (mut minority, mut majority) = random_split(sim, minority_size);
    if let Some(m) = master_slot {
        if let Some(i) = majority.iter().position(|&x| x == m) {
            let swap = minority.pop().expect("minority is not empty");
            majority[i] = swap;
            minority.push(m);
            minority.sort_unstable();
            majority.sort_unstable();
        }
    }
    out.set("groups", json!([minority.len(), majority.len()]));
    sim.apply(Action::Partition(vec![majority, minority]));
    let t0 = sim.now();
    let s = settle(sim, settle_limit(p.nodes));
    out.set_ms("partition_settled_ms", s.at.map(|t| t - t0));
    out.settled("partitioned (minority must have no master)", s);
    sim.apply(Action::Heal);
    let t0 = sim.now();
    let s = settle(sim, settle_limit(p.nodes));
    out.set_ms("heal_ms", s.at.map(|t| t - t0));
    out.settled("healed", s);
}
