//! Seeded fault families for the election sweeps: each seed gives one [`Case`] of a small
//! cluster (3–7 nodes) under one kind of fault, so a sweep of 10,000 seeds per family stays
//! cheap. Quorum mode is on for three seeds out of four (its never-two-masters invariant is
//! checked at every step); the others check the available mode's settle invariants.

use crate::schedule::{Case, Op};
use espial_core::rng::Rng;

/// Every family name.
pub const FAMILIES: &[&str] = &["partition", "one-way", "pause", "slow", "drift", "mixed"];

/// Largest clock drift (permille) the families use: the core's default bound
/// (`Config::max_clock_drift`, 1 %).
pub const MAX_DRIFT_PERMILLE: u16 = 10;

fn op(family: &str, r: &mut Rng) -> Op {
    let ms = |r: &mut Rng, lo: u64, hi: u64| lo + r.below((hi - lo) as usize) as u64;
    let fam = if family == "mixed" {
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
    let nodes = 3 + r.below(5);
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
}

/// Available mode: 5 nodes converge; a non-master is cut off for 8 s (long enough for it
/// to remove the others and promote itself), then the fault heals. The majority's master
/// must stay master everywhere: a node that was cut off never takes the role at the heal.
/// Returns the violations (empty when the rule held).
pub fn cut_off_and_heal(seed: u64, how: CutOff) -> Vec<String> {
    use crate::faults::Action;
    use crate::invariants::settle;
    use crate::{Sim, SimConfig};
    use std::time::Duration;
    let mut sim = Sim::new(SimConfig::new(seed)).expect("valid config");
    sim.add_nodes(5);
    sim.run_for(Duration::from_secs(4));
    let mut v = Vec::new();
    let Some(m) = crate::metrics::agreed_master(&sim) else {
        return vec!["no agreed master before the fault".into()];
    };
    let m_slot = sim.slot_of(m).expect("known");
    let x = (m_slot + 1 + (seed as usize % 4)) % 5;
    match how {
        CutOff::Mute => sim.apply(Action::Mute(x)),
        CutOff::Isolate => {
            let rest: Vec<usize> = (0..5).filter(|&s| s != x).collect();
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
