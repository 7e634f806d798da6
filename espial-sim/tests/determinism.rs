//! The same seed gives the same trace; a different seed gives a different one.

use espial_sim::{run_scenario, Params};
use std::time::Duration;

fn hash(scenario: &str, seed: u64) -> (u64, Vec<String>) {
    let mut p = Params::new(scenario, 5, seed);
    p.duration = Some(Duration::from_secs(10));
    p.events = Some(50);
    p.keep_trace = true;
    let r = run_scenario(&p).expect("scenario runs");
    (r.trace_hash, r.trace.expect("kept"))
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    for scenario in ["steady", "churn", "partition-heal", "events-faults"] {
        let (a, ta) = hash(scenario, 11);
        let (b, tb) = hash(scenario, 11);
        assert!(
            ta.len() > 50,
            "{scenario}: trace too short to mean anything"
        );
        if a != b {
            let first = ta.iter().zip(&tb).position(|(x, y)| x != y);
            panic!(
                "{scenario}: same seed gave different traces; first difference at record {first:?}: {:?} vs {:?}",
                first.map(|i| &ta[i]),
                first.map(|i| &tb[i])
            );
        }
        assert_eq!(ta, tb);
        let (c, _) = hash(scenario, 12);
        assert_ne!(a, c, "{scenario}: seeds 11 and 12 gave the same trace");
    }
}
