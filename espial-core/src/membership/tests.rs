use super::*;
use std::time::Duration;

fn info(id: u128, inc: u64) -> NodeInfo {
    let mut n = NodeInfo::new(
        NodeId(id),
        format!("n{id}"),
        SocketAddr::from(([10, 0, 0, id as u8], 1)),
    );
    n.incarnation = inc;
    n
}

const T: Duration = Duration::from_secs(2);

#[test]
fn alive_adds_then_higher_incarnation_updates_and_lower_is_ignored() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    assert!(matches!(
        m.apply_alive(now, info(2, 0))[0],
        Applied::Added(_)
    ));
    assert_eq!(m.apply_alive(now, info(2, 0)), vec![Applied::Ignored]);
    let mut newer = info(2, 1);
    newer.metadata.insert("role", "db");
    assert!(matches!(
        m.apply_alive(now, newer)[0],
        Applied::Updated { visible: true, .. }
    ));
    assert_eq!(m.apply_alive(now, info(2, 0)), vec![Applied::Ignored]);
    assert_eq!(
        m.get(NodeId(2)).unwrap().info.metadata.get("role"),
        Some("db")
    );
}

#[test]
fn suspicion_is_refuted_only_by_a_higher_incarnation() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 3));
    assert_eq!(
        m.apply_suspect(now, NodeId(2), 2, T),
        Applied::Ignored,
        "stale suspicion"
    );
    assert_eq!(
        m.apply_suspect(now, NodeId(2), 3, T),
        Applied::Suspected(NodeId(2))
    );
    assert_eq!(m.next_suspicion_deadline(), Some(now + T));
    assert_eq!(m.apply_alive(now, info(2, 3)), vec![Applied::Ignored]);
    let r = m.apply_alive(now, info(2, 4));
    assert_eq!(r[0], Applied::Refuted(NodeId(2)));
    assert_eq!(m.next_suspicion_deadline(), None);
    assert!(m.is_live(NodeId(2)));
}

#[test]
fn a_received_dead_only_suspects_and_a_local_verdict_is_final_for_its_incarnation() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 1));
    let dead = Update::Dead {
        id: NodeId(2),
        incarnation: 1,
        by: NodeId(3),
    };
    // From a full state: only a suspicion (the member gets a chance to refute).
    assert_eq!(
        m.apply(now, dead.clone(), T, true),
        vec![Applied::Suspected(NodeId(2))]
    );
    // From gossip: also only a suspicion (issue 11: a node back from isolation gossips
    // stale verdicts; each node declares a death only from its own expired suspicion).
    assert_eq!(m.apply(now, dead, T, false), vec![Applied::Ignored]);
    assert!(m.is_live(NodeId(2)));
    assert!(matches!(
        m.apply_down(now, NodeId(2), 1, RemovalReason::Failed),
        Applied::Removed(_, RemovalReason::Failed)
    ));
    assert!(!m.is_live(NodeId(2)));
    assert_eq!(
        m.apply_alive(now, info(2, 1)),
        vec![Applied::Ignored],
        "no resurrection"
    );
    assert!(matches!(
        m.apply_alive(now, info(2, 2))[0],
        Applied::Added(_)
    ));
}

#[test]
fn updates_about_self_ask_for_refutation() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    assert_eq!(m.apply_suspect(now, NodeId(1), 4, T), Applied::Refute(4));
    assert_eq!(
        m.apply_down(now, NodeId(1), 4, RemovalReason::Failed),
        Applied::Refute(4)
    );
    assert_eq!(m.apply_alive(now, info(1, 9)), vec![Applied::SelfAlive(9)]);
}

#[test]
fn a_new_id_at_a_live_address_replaces_the_stale_member() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 0));
    let mut restarted = info(7, 0);
    restarted.addr = info(2, 0).addr;
    assert!(matches!(
        m.apply_alive(now, restarted)[0],
        Applied::Replaced { .. }
    ));
    assert!(!m.is_live(NodeId(2)));
    assert!(m.is_live(NodeId(7)));
}

#[test]
fn live_index_stays_consistent_and_purge_forgets_the_dead() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    for i in 2..20 {
        m.apply_alive(now, info(i, 0));
    }
    for i in (2..20).step_by(3) {
        m.apply_down(now, NodeId(i), 0, RemovalReason::Left);
    }
    let mut live: Vec<NodeId> = m.live_ids().to_vec();
    live.sort();
    let want: Vec<NodeId> = (2..20).filter(|i| (i - 2) % 3 != 0).map(NodeId).collect();
    assert_eq!(live, want);
    assert_eq!(m.purge(now + Duration::from_secs(1)).len(), 6);
    assert_eq!(m.live_count(), 12);
}
