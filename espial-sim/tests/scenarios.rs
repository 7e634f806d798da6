//! Every scenario for a few seeds at N = 5 (CI), and the acceptance grid of the foundation
//! and events issues when `ESPIAL_LONG=1`.

use espial_sim::{run_scenario, Params, SCENARIOS};
use std::time::Duration;

fn check(p: &Params) -> serde_json::Map<String, serde_json::Value> {
    let r = run_scenario(p).expect("scenario runs");
    assert!(
        r.ok(),
        "{} violation(s) with seed {}; reproduce with: {}\n{}",
        r.violations.len(),
        p.seed,
        p.command(),
        r.violations.join("\n")
    );
    r.json
}

fn short(scenario: &str, seed: u64) -> Params {
    let mut p = Params::new(scenario, 5, seed);
    // Short variants: the default durations are for the CLI.
    match scenario {
        "loss" => p.duration = Some(Duration::from_secs(30)),
        "churn" => p.duration = Some(Duration::from_secs(10)),
        "events" => p.events = Some(300),
        "events-faults" => p.events = Some(100),
        _ => {}
    }
    p
}

macro_rules! scenario_test {
    ($name:ident, $scenario:expr) => {
        #[test]
        fn $name() {
            for seed in 1..=3 {
                check(&short($scenario, seed));
            }
        }
    };
}

scenario_test!(steady_n5, "steady");
scenario_test!(master_crash_n5, "master-crash");
scenario_test!(partition_heal_n5, "partition-heal");
scenario_test!(churn_n5, "churn");
scenario_test!(loss_n5, "loss");
scenario_test!(quorum_n5, "quorum");
scenario_test!(events_n5, "events");
scenario_test!(events_faults_n5, "events-faults");

/// Issue 11 item 4: a reader paused for 300 windows, a subscriber paused out of the cluster:
/// no event reported delivered before its application consumed it, no silent gap, nothing
/// lost, the sender backpressured, unread bytes within the window. The model of the old
/// facade fails the same script (seed 1).
#[test]
fn slow_reader_end_to_end() {
    let p = Params::new("slow-reader", 3, 1);
    let j = check(&p);
    assert!(j["backpressure"].as_u64().unwrap() > 0);
    assert!(j["gap_events"].as_u64().unwrap() > 0);
    let legacy = run_scenario(&Params::new("slow-reader-legacy", 3, 1)).unwrap();
    assert!(!legacy.ok(), "the pre-flow-control model must fail");
    if std::env::var("ESPIAL_LONG").as_deref() == Ok("1") {
        for seed in 2..=200 {
            check(&Params::new("slow-reader", 3, seed));
        }
    }
}

#[test]
fn steady_reports_the_contract_fields() {
    let j = check(&short("steady", 1));
    for k in [
        "scenario",
        "nodes",
        "seed",
        "sim_ms",
        "wall_ms",
        "converged",
        "masters",
        "violations",
        "election_ms",
        "full_membership_ms",
        "bytes_per_node_per_s",
    ] {
        assert!(j.contains_key(k), "missing {k} in {j:?}");
    }
    assert_eq!(j["masters"], 1);
}

/// The acceptance grid (slow): every scenario, N = 5 and 50, seeds 1..=20.
#[test]
fn long_acceptance_grid() {
    if std::env::var("ESPIAL_LONG").as_deref() != Ok("1") {
        eprintln!("long_acceptance_grid: set ESPIAL_LONG=1 to run");
        return;
    }
    let mut failures = Vec::new();
    // `slow-reader-legacy` models the facade before flow control: it must fail.
    for scenario in SCENARIOS.iter().filter(|s| !s.ends_with("legacy")) {
        for n in [5, 50] {
            for seed in 1..=20 {
                let p = Params::new(scenario, n, seed);
                let r = run_scenario(&p).expect("scenario runs");
                if !r.ok() {
                    failures.push(format!("{}: {}", p.command(), r.violations[0]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 50 nodes, more than the master's watchers (`espial_core::MASTER_WATCHERS`): the master's
/// crash is still followed by one agreed new master within 1.5 s (issue 11's bar). When a
/// new master heartbeated its watchers alone right after its promotion, seeds 1 and 3 took 3.1 and
/// 4.3 s: a new master's one `Claim` had overtaken the handshake confirmation of a session
/// it opened for it, and nothing repeated it.
#[test]
fn master_crash_n50_fails_over_through_the_watchers() {
    for seed in 1..=4 {
        let j = check(&Params::new("master-crash", 50, seed));
        let failover = j["failover_ms"].as_f64().expect("failover_ms");
        assert!(failover <= 1_500.0, "seed {seed}: failover {failover} ms");
    }
}
