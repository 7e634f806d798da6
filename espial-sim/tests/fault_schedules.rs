//! proptest-generated fault schedules over 3–20 nodes: crashes, restarts, partitions, heals,
//! loss bursts, pauses, promote() calls, joins, leaves and metadata updates. After the
//! faults stop and the cluster settles, the membership and election invariants must hold.
//! 256 cases by default; more with `PROPTEST_CASES`. Failures shrink and print the seed and
//! the case as JSON (replay it with `cargo run -p espial-sim --example replay -- 'JSON'`).
//! `ESPIAL_SIM_SKIP=metadata,promote` leaves those operations out (to look past a known bug).

use espial_sim::schedule::{run_case, run_case_with, Case, Op};
use proptest::prelude::*;
use std::time::Duration;

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
            drift: 0,
            steps,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        max_shrink_iters: 400,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_after_random_fault_schedules(c in case()) {
        let skip = std::env::var("ESPIAL_SIM_SKIP").unwrap_or_default();
        let skip: Vec<&str> = skip.split(',').collect();
        let (_, v) = run_case(&c, false, Duration::from_secs(40), &skip);
        prop_assert!(
            v.is_empty(),
            "seed {} nodes {} quorum {} failed:\n{}\nreplay: cargo run -p espial-sim --example replay -- '{}'",
            c.seed, c.nodes, c.quorum, v.join("\n"), c.to_json()
        );
    }
}

fn event_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..16).prop_map(Op::Crash),
        1 => (0usize..16).prop_map(Op::Restart),
        1 => (0usize..16).prop_map(Op::Leave),
        1 => Just(Op::Join),
        2 => any::<u32>().prop_map(Op::Partition),
        2 => Just(Op::Heal),
        1 => (5u8..40, 200u64..2_000).prop_map(|(p, d)| Op::LossBurst(p, d)),
        3 => (0usize..16).prop_map(Op::Subscribe),
        2 => (0usize..16).prop_map(Op::Unsubscribe),
        6 => (0usize..16, 1u8..20).prop_map(|(s, k)| Op::Send(s, k)),
        2 => (0usize..16, 100u64..3_000).prop_map(|(s, d)| Op::PauseReader(s, d)),
    ]
}

fn event_case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        3usize..=10,
        prop::collection::vec((20u64..800, event_op()), 0..20),
    )
        .prop_map(|(seed, nodes, steps)| Case {
            seed,
            nodes,
            ineligible: 0,
            quorum: false,
            drift: 0,
            steps,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        max_shrink_iters: 400,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Issue 3: join/leave/send/crash/partition interleavings over 3–10 nodes keep the
    /// membership invariants and exactly-once in-order delivery to stable subscribers.
    #[test]
    fn events_exactly_once_under_random_schedules(c in event_case()) {
        let (_, v) = run_case(&c, false, Duration::from_secs(40), &[]);
        prop_assert!(
            v.is_empty(),
            "seed {} nodes {} failed:\n{}\nreplay: cargo run -p espial-sim --example replay -- '{}'",
            c.seed, c.nodes, v.join("\n"), c.to_json()
        );
    }
}

/// Whether some node was refused because quorum mode was full (its trace line).
fn refused_as_full(sim: &espial_sim::Sim) -> bool {
    sim.trace
        .records()
        .unwrap_or_default()
        .iter()
        .any(|r| r.contains("rejected quorum mode is full"))
}

/// Regression (found by a random run of `invariants_hold_after_random_fault_schedules`):
/// 3 nodes with quorum 2, the master is cut off, a 4th node joins through it, then the heal.
/// The old master counted the newcomer's vote as a quorum of 2 while the majority side
/// elected its own master: two masters at t = 4080.9 ms. Nodes now refuse a join that
/// would make the quorum less than a majority (here without the simulator's own guard).
#[test]
fn quorum_join_during_a_partition_never_makes_two_masters() {
    let c: Case = serde_json::from_str(
        r#"{"seed":0,"nodes":3,"ineligible":0,"quorum":true,"drift":0,
            "steps":[[20,{"Partition":517082549}],[631,"Join"],[356,{"Partition":0}]]}"#,
    )
    .unwrap();
    let (sim, v) = run_case_with(&c, true, Duration::from_secs(40), &[], |cfg| {
        cfg.quorum_precondition = false
    });
    assert!(v.is_empty(), "{}", v.join("\n"));
    assert!(refused_as_full(&sim), "the 4th node was not refused");
}

/// Regressions of the quorum-mode join refusal (random runs, seeds 0 and 11 with 10,000
/// cases): a node restarted under a new id at its old address was refused while its old id
/// still counted (17 nodes: never back in time; 8 nodes: accepted at the very end of the
/// run). A restart at a member's address replaces that member and is not refused.
#[test]
fn quorum_restart_under_a_new_id_is_not_refused() {
    for json in [
        r#"{"seed":0,"nodes":17,"ineligible":0,"quorum":true,"drift":0,"steps":[[836,{"Restart":26}]]}"#,
        r#"{"seed":10867233988763150441,"nodes":8,"ineligible":0,"quorum":true,"drift":0,
            "steps":[[728,{"Restart":6}],[465,{"Crash":27}],[477,{"Crash":1}],[985,"Join"],
            [1046,"Join"],[217,"Join"],[1026,{"Restart":55}],[327,{"Leave":1}]]}"#,
    ] {
        let c: Case = serde_json::from_str(json).unwrap();
        let (sim, v) = run_case(&c, true, Duration::from_secs(40), &[]);
        assert!(v.is_empty(), "{}", v.join("\n"));
        assert!(!refused_as_full(&sim), "a restart was refused");
    }
}

/// A joiner refused because the views still count crashed members (quorum mode full) retries
/// with back-off and is admitted once they are removed; the simulator expects it in the
/// cluster (found with 10,000 random cases, seed 11).
#[test]
fn quorum_full_refusal_is_temporary() {
    let c: Case = serde_json::from_str(
        r#"{"seed":6491020015288994330,"nodes":9,"ineligible":25976840,"quorum":true,"drift":0,
            "steps":[[895,{"Crash":52}],[819,{"Promote":62}],[1232,"Join"],[620,{"Pause":[63,477]}],
            [1400,{"Crash":2}],[1011,{"Partition":2416616587}],[498,"Join"],[20,{"Leave":4}],
            [163,"Join"],[573,{"Crash":33}]]}"#,
    )
    .unwrap();
    let (sim, v) = run_case(&c, true, Duration::from_secs(40), &[]);
    assert!(v.is_empty(), "{}", v.join("\n"));
    assert!(refused_as_full(&sim));
    let joiner = sim.node(10).expect("the refused joiner runs");
    assert!(
        joiner.members().len() > 1,
        "the refused joiner never got in"
    );
}

/// 13 nodes, more than the master's watchers: the master crashed during a partition, and
/// after the heal the new master's `Claim` (without a majority, so lower than the dead
/// master's) reached the members that do not watch it. Found by the random fault schedules
/// when heartbeats went to watchers only: those members kept the dead master's void claim
/// and had no master for good (a heartbeat used to be what made them follow the lower,
/// acting claim). A claim sent by its own master is now followed like its heartbeat, and
/// non-watchers get heartbeats on datagrams the master sends them anyway.
#[test]
fn non_watchers_follow_a_lower_claim_sent_by_its_master() {
    let c: Case = serde_json::from_str(
        r#"{"seed":1075594296705975450,"nodes":13,"ineligible":1056968736,"quorum":false,
            "drift":0,"steps":[[20,{"Promote":60}],[20,"Join"],[20,{"Partition":623500299}],
            [245,{"Crash":50}],[1357,{"Partition":0}]]}"#,
    )
    .unwrap();
    let (_, v) = run_case(&c, false, Duration::from_secs(30), &[]);
    assert!(v.is_empty(), "{}", v.join("\n"));
}
