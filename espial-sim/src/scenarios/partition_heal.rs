//! `partition-heal`: converge, split into two groups, let each side settle (each elects a
//! master in the default available mode), heal, check one master everywhere.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::Sim;
use crate::faults::Action;
use crate::invariants::{components, settle};
use serde_json::json;

/// Splits the live slots randomly into a group of `k` and the rest.
pub(super) fn random_split(sim: &mut Sim, k: usize) -> (Vec<usize>, Vec<usize>) {
    let mut live = sim.live_slots();
    sim.rng.shuffle(&mut live);
    let (a, b) = live.split_at(k.min(live.len()));
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    if p.nodes < 2 {
        return;
    }
    let k = (p.nodes * 2 / 5).max(1);
    let (a, b) = random_split(sim, k);
    out.set("groups", json!([a.len(), b.len()]));
    sim.apply(Action::Partition(vec![b, a]));
    let t0 = sim.now();
    let s = settle(sim, settle_limit(p.nodes));
    out.set_ms("partition_settled_ms", s.at.map(|t| t - t0));
    out.set("components_during_partition", json!(components(sim).len()));
    out.settled("partitioned", s);
    sim.apply(Action::Heal);
    let t0 = sim.now();
    let s = settle(sim, settle_limit(p.nodes));
    out.set_ms("heal_ms", s.at.map(|t| t - t0));
    out.settled("healed", s);
}
