//! proptest-generated fault schedules over 3–20 nodes: crashes, restarts, partitions, heals,
//! loss bursts, pauses, promote() calls, joins, leaves and metadata updates. After the
//! faults stop and the cluster settles, the membership and election invariants must hold.
//! 256 cases by default; more with `PROPTEST_CASES`. Failures shrink and print the seed.

use espial_core::Metadata;
use espial_sim::invariants::settle;
use espial_sim::{Action, NodeOpts, Sim, SimConfig};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Crash(usize),
    Restart(usize),
    Leave(usize),
    Join,
    Pause(usize, u64),
    Partition(u32),
    Heal,
    LossBurst(u8, u64),
    Promote(usize),
    Metadata(usize, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..64).prop_map(Op::Crash),
        2 => (0usize..64).prop_map(Op::Restart),
        1 => (0usize..64).prop_map(Op::Leave),
        2 => Just(Op::Join),
        1 => (0usize..64, 100u64..2_000).prop_map(|(s, d)| Op::Pause(s, d)),
        3 => any::<u32>().prop_map(Op::Partition),
        2 => Just(Op::Heal),
        2 => (5u8..60, 200u64..3_000).prop_map(|(p, d)| Op::LossBurst(p, d)),
        3 => (0usize..64).prop_map(Op::Promote),
        2 => (0usize..64, any::<u16>()).prop_map(|(s, v)| Op::Metadata(s, v)),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    nodes: usize,
    ineligible: u32,
    quorum: bool,
    steps: Vec<(u64, Op)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        3usize..=20,
        any::<u32>(),
        prop::bool::weighted(0.15),
        prop::collection::vec((20u64..1_500, op()), 0..14),
    )
        .prop_map(|(seed, nodes, ineligible, quorum, steps)| Case {
            seed,
            nodes,
            // About a quarter of the nodes are not master-eligible; node 0 always is.
            ineligible: ineligible & ineligible >> 1 & !1,
            quorum,
            steps,
        })
}

fn run(c: &Case) -> Result<(), String> {
    let mut cfg = SimConfig::new(c.seed);
    if c.quorum {
        cfg.core.quorum = Some(c.nodes / 2 + 1);
    }
    let mut sim = Sim::new(cfg)?;
    let opts = (0..c.nodes)
        .map(|i| NodeOpts {
            eligible: c.ineligible >> (i % 32) & 1 == 0,
            ..NodeOpts::default()
        })
        .collect();
    sim.add_nodes_with(opts);
    sim.run_for(Duration::from_secs(3));
    for (gap, op) in &c.steps {
        sim.run_for(Duration::from_millis(*gap));
        let n = sim.slots.len();
        let action = match op {
            Op::Crash(s) => Action::Crash(s % n),
            Op::Restart(s) => Action::Restart(s % n),
            Op::Leave(s) => Action::Leave(s % n),
            Op::Join => Action::Join(NodeOpts::default()),
            Op::Pause(s, d) => Action::Pause(s % n, Duration::from_millis(*d)),
            Op::Partition(mask) => {
                let (a, b): (Vec<usize>, Vec<usize>) =
                    (0..n).partition(|s| mask >> (s % 32) & 1 == 0);
                Action::Partition(vec![a, b])
            }
            Op::Heal => Action::Heal,
            Op::LossBurst(p, d) => {
                let now = sim.now();
                sim.schedule(now + Duration::from_millis(*d), Action::SetLoss(0.0));
                Action::SetLoss(*p as f64 / 100.0)
            }
            Op::Promote(s) => Action::Promote(s % n),
            Op::Metadata(s, v) => {
                let mut m = Metadata::new();
                m.insert("v", v.to_string());
                Action::SetMetadata(s % n, m)
            }
        };
        sim.apply(action);
    }
    // Faults stop: heal, no loss (pending loss-burst ends are harmless), then settle.
    sim.apply(Action::Heal);
    sim.apply(Action::SetLoss(0.0));
    sim.run_for(Duration::from_secs(3));
    sim.apply(Action::SetLoss(0.0));
    let s = settle(&mut sim, Duration::from_secs(40));
    let mut v = sim.violations.clone();
    v.extend(s.violations);
    if v.is_empty() {
        Ok(())
    } else {
        Err(v.join("\n"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        max_shrink_iters: 200,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_after_random_fault_schedules(c in case()) {
        if let Err(e) = run(&c) {
            prop_assert!(false, "seed {} nodes {} quorum {} failed:\n{}\ncase: {:?}", c.seed, c.nodes, c.quorum, e, c);
        }
    }
}
