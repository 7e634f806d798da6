//! Property: under random loss (0–30 %), duplication and reordering, every message to a
//! live target is delivered exactly once, in send order per sender, intact, and every send
//! reports all its targets delivered.

use super::harness::{id, Faults, Net};
use super::{check_payload, payload};
use crate::delivery::DeliveryConfig;
use crate::SendError;
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Plan {
    /// (sender, target mask, payload length, virtual ms to wait before the next send)
    sends: Vec<(usize, u8, usize, u8)>,
}

fn plan(nodes: usize) -> impl Strategy<Value = Plan> {
    let len = prop_oneof![
        6 => 8usize..300,
        2 => 300usize..3000,
        1 => 3000usize..20_000,
    ];
    prop::collection::vec((0..nodes, 1u8..(1 << nodes), len, 0u8..4), 1..60)
        .prop_map(|sends| Plan { sends })
}

fn run(nodes: usize, plan: Plan, faults: Faults, seed: u64, small_window: bool) {
    let cfg = if small_window {
        DeliveryConfig {
            window: 8,
            queue_limit: 16,
            ..DeliveryConfig::default()
        }
    } else {
        DeliveryConfig::default()
    };
    let mut net = Net::new(nodes, cfg, faults, seed);
    // expected[receiver][sender] = indices in send order
    let mut expected = vec![vec![Vec::new(); nodes]; nodes];
    let mut sends = vec![0usize; nodes];
    for (k, (from, mask, len, wait)) in plan.sends.into_iter().enumerate() {
        let targets: Vec<_> = (0..nodes)
            .filter(|t| *t != from && mask & (1 << t) != 0)
            .map(id)
            .collect();
        loop {
            match net.nodes[from].send(net.now, "e", payload(from, k as u32, len), &targets, None) {
                Ok(_) => break,
                Err(SendError::Backpressure(_)) => {
                    net.flush(from);
                    assert!(net.step(), "backpressure with nothing pending");
                }
                Err(e) => panic!("{e}"),
            }
        }
        sends[from] += 1;
        for t in &targets {
            expected[t.0 as usize - 1][from].push(k as u32);
        }
        net.flush(from);
        net.run_for(Duration::from_millis(wait as u64));
    }
    net.run_until(Duration::from_secs(600), |n| n.quiet());
    for (r, per_sender) in expected.iter().enumerate() {
        for (s, want) in per_sender.iter().enumerate() {
            let got: Vec<u32> = net
                .received(r, s)
                .iter()
                .map(|p| {
                    let (from, k) = check_payload(p);
                    assert_eq!(from, s);
                    k
                })
                .collect();
            assert_eq!(&got, want, "receiver {r} from sender {s}");
        }
    }
    for (s, &count) in sends.iter().enumerate() {
        let outs = net.outcomes(s);
        assert_eq!(outs.len(), count, "outcomes of sender {s}");
        assert!(outs.iter().all(|o| o.failed.is_empty()), "failures at {s}");
    }
    for n in &net.nodes {
        assert_eq!(n.stats().reassembly_bytes, 0, "buffers released");
    }
}

fn faults() -> impl Strategy<Value = Faults> {
    (0.0f64..0.3, 0.0f64..0.1, 0u64..2000, 0u64..5000).prop_map(|(loss, dup, lat, jit)| Faults {
        loss,
        dup,
        latency: Duration::from_micros(100 + lat),
        jitter: Duration::from_micros(jit),
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn exactly_once_in_order_under_faults(
        p in plan(3),
        f in faults(),
        seed in any::<u64>(),
        small in any::<bool>(),
    ) {
        run(3, p, f, seed, small);
    }
}
