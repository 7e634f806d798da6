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
