//! Gray failures (issue 11): a node isolated for 5 s and healed, or a node that handles
//! every received datagram 10 x probe_timeout late, while another node sends 100 events/s.
//! The step-level invariant "no healthy node is removed by a healthy node"
//! (`espial_sim::health`) and the settle invariants must hold.
//!
//! On the code before Lifeguard-class detection, `isolate-heal --nodes 10 --seed 1` failed
//! (7 healthy nodes removed healthy n2: the returning node gossiped Dead at n2's current
//! incarnation), and the CI sweep below failed 17 of its first 40 seeds (e.g. N = 5 seed 1,
//! N = 7 seed 11). 256 seeds in CI; `ESPIAL_LONG=1` runs 10,000 (5,000 per family).

use espial_sim::{run_scenario, Params};
use std::time::Duration;

fn check(p: &Params) {
    let r = run_scenario(p).expect("scenario runs");
    // Every invariant counts, the end-to-end delivery ones included ("silent gap": a read
    // after events that never arrived without an `events_missed` report).
    let v: Vec<&String> = r
        .violations
        .iter()
        .filter(|v| !v.starts_with("... and "))
        .collect();
    assert!(
        v.is_empty(),
        "{} violation(s); reproduce with: {}\n{}",
        v.len(),
        p.command(),
        v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}

/// Seed `s` of the sweep: isolate-heal (one heal) on even seeds, slow-node (5 s) on odd
/// ones, with 4 to 7 nodes.
fn sweep_case(seed: u64) -> Params {
    let nodes = 4 + (seed % 4) as usize;
    if seed.is_multiple_of(2) {
        let mut p = Params::new("isolate-heal", nodes, seed);
        p.rounds = Some(1);
        p
    } else {
        let mut p = Params::new("slow-node", nodes, seed);
        p.duration = Some(Duration::from_secs(5));
        p
    }
}

fn seeds(part: u64, parts: u64) -> impl Iterator<Item = u64> {
    let total = if std::env::var("ESPIAL_LONG").is_ok_and(|v| v == "1") {
        10_000
    } else {
        256
    };
    (1..=total).filter(move |s| s % parts == part)
}

/// A subscriber cut off exactly when a sender starts publishing: the sender's first events
/// to it were numbered but never acknowledged (the subscriber holds no receive state for
/// that stream) or still queued, so the subscriber could not see them as a gap; they were
/// reported failed to the sender but never announced to the subscriber (261 missed, 245
/// reported: a silent gap). The gap notice on its return now counts them.
#[test]
fn isolate_heal_n4_seed12_reports_every_missed_event() {
    let mut p = Params::new("isolate-heal", 4, 12);
    p.rounds = Some(1);
    check(&p);
}

#[test]
fn isolate_heal_n10_seed1_that_failed_before_lifeguard() {
    let mut p = Params::new("isolate-heal", 10, 1);
    p.rounds = Some(3);
    check(&p);
}

#[test]
fn slow_node_10x_probe_timeout_n10_no_healthy_node_declared_dead() {
    for seed in 1..=2 {
        check(&Params::new("slow-node", 10, seed));
    }
}

macro_rules! sweep {
    ($name:ident, $part:expr) => {
        #[test]
        fn $name() {
            for seed in seeds($part, 4) {
                check(&sweep_case(seed));
            }
        }
    };
}

sweep!(gray_sweep_part0, 0);
sweep!(gray_sweep_part1, 1);
sweep!(gray_sweep_part2, 2);
sweep!(gray_sweep_part3, 3);
