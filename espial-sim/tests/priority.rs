//! Priority at formation (issue 11, item 6): nodes that start within the election timeout
//! of each other elect the highest-priority eligible node, whatever the start order; a node
//! that starts after a master exists never deposes it (sticky master, DESIGN.md), whatever
//! its priority. 200 seeds each.

use espial_sim::cluster::{NodeOpts, Sim, SimConfig};
use std::time::Duration;

/// Starts 5 nodes `gap` apart, node 3 with priority 10 and the others 1; returns the slots
/// acting as master after 5 s.
fn masters(seed: u64, gap: Duration) -> Vec<usize> {
    let mut sim = Sim::new(SimConfig::new(seed)).expect("valid config");
    for i in 0..5 {
        let priority = if i == 3 { 10 } else { 1 };
        sim.add_node(NodeOpts {
            priority,
            ..NodeOpts::default()
        });
        sim.run_for(gap);
    }
    sim.run_for(Duration::from_secs(5));
    (0..5)
        .filter(|s| sim.node(*s).is_some_and(|n| n.is_master()))
        .collect()
}

#[test]
fn highest_priority_wins_when_nodes_start_together() {
    // Up to 200 ms apart (the whole start spans 800 ms, more than the 500 ms election
    // timeout of the LAN profile: each member a node gains restarts its wait).
    for gap_ms in [0u64, 10, 50, 200] {
        let gap = Duration::from_millis(gap_ms);
        for seed in 0..200 {
            assert_eq!(
                masters(seed, gap),
                vec![3],
                "seed {seed}, nodes started {gap_ms} ms apart"
            );
        }
    }
}

#[test]
fn a_node_started_after_a_master_exists_does_not_depose_it() {
    for seed in 0..200 {
        // Node 3 starts 1.8 s after node 0, which is master by then.
        assert_eq!(
            masters(seed, Duration::from_millis(600)),
            vec![0],
            "seed {seed}"
        );
    }
}
