//! Seeded fault families for the election sweeps: each seed gives one [`Case`] of a small
//! cluster (3–7 nodes) under one kind of fault, so a sweep of 10,000 seeds per family stays
//! cheap; the `large` family (10–13 nodes, the faults of `mixed`) is larger than the
//! master's watcher set. Quorum mode is on for three seeds out of four (its never-two-masters invariant is
//! checked at every step); the others check the available mode's settle invariants.

use crate::schedule::{Case, Op};
use espial_core::rng::Rng;

/// Every family name.
pub const FAMILIES: &[&str] = &[
    "partition",
    "one-way",
    "pause",
    "slow",
    "drift",
    "mixed",
    "large",
];

/// Largest clock drift (permille) the families use: the core's default bound
/// (`Config::max_clock_drift`, 1 %).
pub const MAX_DRIFT_PERMILLE: u16 = 10;

fn op(family: &str, r: &mut Rng) -> Op {
    let ms = |r: &mut Rng, lo: u64, hi: u64| lo + r.below((hi - lo) as usize) as u64;
    let fam = if family == "mixed" || family == "large" {
        ["partition", "one-way", "pause", "slow"][r.below(4)]
    } else {
        family
    };
    match fam {
        "partition" => match r.below(4) {
            0 => Op::Partition(r.next_u64() as u32),
            1 | 2 => Op::SplitMaster(r.below(8) as u8),
            _ => Op::Heal,
        },
        "one-way" => match r.below(4) {
            0 => Op::MuteMaster(ms(r, 300, 6_000)),
            1 => Op::Mute(r.below(16), ms(r, 300, 6_000)),
            _ => Op::OneWay(r.below(16), r.below(16), ms(r, 300, 6_000)),
        },
        "pause" => match r.below(3) {
            0 | 1 => Op::PauseMaster(ms(r, 100, 4_000)),
            _ => Op::Pause(r.below(16), ms(r, 100, 4_000)),
        },
        "slow" => match r.below(3) {
            0 => Op::Slow(r.below(16), ms(r, 5, 400), ms(r, 500, 5_000)),
            1 => Op::PauseMaster(ms(r, 50, 1_500)),
            _ => Op::SplitMaster(r.below(8) as u8),
        },
        // "drift": clocks drift (see `family_case`); faults that make leases matter.
        _ => match r.below(4) {
            0 => Op::SplitMaster(r.below(8) as u8),
            1 => Op::PauseMaster(ms(r, 100, 2_000)),
            2 => Op::MuteMaster(ms(r, 300, 4_000)),
            _ => Op::Heal,
        },
    }
}

/// The case of `family` for `seed`.
pub fn family_case(family: &str, seed: u64) -> Case {
    let mut r = Rng::new(seed ^ 0x5eed_fa11);
    // "large": more nodes than the master has watchers (`espial_core::MASTER_WATCHERS`), so
    // that non-watchers' votes and failover through the watchers are exercised.
    let nodes = if family == "large" {
        10 + r.below(4)
    } else {
        3 + r.below(5)
    };
    let quorum = r.below(4) != 0;
    let drift = if family == "drift" || family == "mixed" {
        MAX_DRIFT_PERMILLE
    } else {
        0
    };
    let k = 2 + r.below(5);
    let steps = (0..k)
        .map(|_| (50 + r.below(1_500) as u64, op(family, &mut r)))
        .collect();
    Case {
        seed,
        nodes,
        ineligible: 0,
        quorum,
        drift,
        steps,
    }
}

/// How a node is cut off in [`cut_off_and_heal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutOff {
    /// Everything it sends is dropped (it still receives).
    Mute,
    /// Partitioned away from everyone.
    Isolate,
    /// 12 nodes; a watcher of the master (`espial_core::MASTER_WATCHERS`) stops hearing
    /// the master and every other watcher (one-way cuts), but still hears the members that
    /// do not watch the master and reaches everyone. It suspects the master and asks for
    /// votes; the non-watchers must not hand it a majority.
    DeafToWatchers,
}

/// Available mode: 5 nodes (12 for [`CutOff::DeafToWatchers`]) converge; a non-master is
/// cut off for 8 s (long enough for it to remove the others and promote itself), then the
/// fault heals. The majority's master
/// must stay master everywhere: a node that was cut off never takes the role at the heal.
/// Returns the violations (empty when the rule held).
pub fn cut_off_and_heal(seed: u64, how: CutOff) -> Vec<String> {
    use crate::faults::Action;
    use crate::invariants::settle;
    use crate::{Sim, SimConfig};
    use std::time::Duration;
    let mut sim = Sim::new(SimConfig::new(seed)).expect("valid config");
    let n = if how == CutOff::DeafToWatchers { 12 } else { 5 };
    sim.add_nodes(n);
    sim.run_for(Duration::from_secs(if n > 5 { 6 } else { 4 }));
    let mut v = Vec::new();
    let Some(m) = crate::metrics::agreed_master(&sim) else {
        return vec!["no agreed master before the fault".into()];
    };
    let m_slot = sim.slot_of(m).expect("known");
    // The master's watchers by the rule of `espial_core::node::watch`: the best-ranked
    // live members (all eligible, same priority here: the greatest ids).
    let mut by_rank: Vec<usize> = (0..n).filter(|&s| s != m_slot).collect();
    by_rank.sort_by_key(|&s| std::cmp::Reverse(sim.node(s).map(|x| x.id())));
    let watchers: Vec<usize> = by_rank
        .into_iter()
        .take(espial_core::MASTER_WATCHERS)
        .collect();
    let x = if how == CutOff::DeafToWatchers {
        watchers[seed as usize % watchers.len()]
    } else {
        (m_slot + 1 + (seed as usize % 4)) % 5
    };
    match how {
        CutOff::DeafToWatchers => {
            for &w in watchers.iter().chain([&m_slot]) {
                if w != x {
                    sim.apply(Action::CutLink(w, x));
                }
            }
        }
        CutOff::Mute => sim.apply(Action::Mute(x)),
        CutOff::Isolate => {
            let rest: Vec<usize> = (0..n).filter(|&s| s != x).collect();
            sim.apply(Action::Partition(vec![rest, vec![x]]));
        }
    }
    sim.run_for(Duration::from_secs(8));
    let x_promoted = sim.node(x).is_some_and(|n| n.is_master());
    sim.apply(Action::Heal);
    sim.run_for(Duration::from_secs(3));
    let s = settle(&mut sim, Duration::from_secs(30));
    v.extend(sim.violations.iter().cloned());
    v.extend(s.violations);
    match crate::metrics::agreed_master(&sim) {
        Some(after) if after == m => {}
        Some(after) => v.push(format!(
            "the cut-off node n{x} (promoted during the fault: {x_promoted}) took the role: \
             master {} before, {} after the heal",
            m.short(),
            after.short()
        )),
        None => v.push("no agreed master after the heal".into()),
    }
    v
}
