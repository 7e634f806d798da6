use super::*;
use std::time::Duration;

fn info(id: u128, inc: u64) -> SignedEntry {
    let mut n = NodeInfo::new(
        NodeId(id),
        format!("n{id}"),
        SocketAddr::from(([10, 0, 0, id as u8], 1)),
    );
    n.incarnation = inc;
    SignedEntry {
        entry: n,
        signature: vec![7; 4],
    }
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
    newer.entry.metadata.insert("role", "db");
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
fn a_relayed_dead_only_suspects_and_suspicion_never_moves_the_incarnation() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 1));
    let dead = Update::Dead {
        id: NodeId(2),
        incarnation: u64::MAX,
        by: NodeId(3),
    };
    // Someone else's verdict is a suspicion here (our own checks decide), and its number
    // does not become the member's incarnation.
    assert_eq!(m.apply(now, dead, T), vec![Applied::Suspected(NodeId(2))]);
    assert_eq!(m.get(NodeId(2)).unwrap().info.incarnation, 1);
    assert!(m.is_live(NodeId(2)));
    // So the member's own refutation at stored + 1 wins.
    assert_eq!(
        m.apply_alive(now, info(2, 2))[0],
        Applied::Refuted(NodeId(2))
    );
    // Our own expiry removes it, at the known incarnation.
    assert!(matches!(
        m.apply_failed(now, NodeId(2)),
        Applied::Removed(ref i, RemovalReason::Failed) if i.incarnation == 2
    ));
    assert!(!m.is_live(NodeId(2)));
    assert_eq!(
        m.apply_alive(now, info(2, 2)),
        vec![Applied::Ignored],
        "no resurrection"
    );
    assert!(matches!(
        m.apply_alive(now, info(2, 3))[0],
        Applied::Added(_)
    ));
}

#[test]
fn a_left_keeps_its_signature_for_re_gossip() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 4));
    assert_eq!(
        m.apply_left(now, NodeId(2), 3, vec![1]),
        Applied::Ignored,
        "stale"
    );
    assert!(matches!(
        m.apply_left(now, NodeId(2), 4, vec![9, 9]),
        Applied::Removed(_, RemovalReason::Left)
    ));
    let u = m.as_update(m.get(NodeId(2)).unwrap());
    assert_eq!(
        u,
        Update::Left {
            id: NodeId(2),
            incarnation: 4,
            signature: vec![9, 9]
        }
    );
}

#[test]
fn updates_about_self_ask_for_refutation() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    assert_eq!(m.apply_suspect(now, NodeId(1), 4, T), Applied::Refute(4));
    assert_eq!(m.apply_left(now, NodeId(1), 4, vec![]), Applied::Refute(4));
    assert_eq!(m.apply_failed(now, NodeId(1)), Applied::Ignored);
    assert_eq!(m.apply_alive(now, info(1, 9)), vec![Applied::SelfAlive(9)]);
}

#[test]
fn a_new_id_at_a_live_address_replaces_only_when_it_says_so_itself() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    m.apply_alive(now, info(2, 0));
    let mut restarted = info(7, 0);
    restarted.entry.addr = info(2, 0).entry.addr;
    // Gossip cannot prove the address: added beside it, the old one is left to probing.
    assert!(matches!(
        m.apply_alive(now, restarted.clone())[0],
        Applied::Added(_)
    ));
    assert!(m.is_live(NodeId(2)));
    let mut again = info(8, 0);
    again.entry.addr = info(2, 0).entry.addr;
    assert!(matches!(
        m.apply_alive_replacing(now, again)[0],
        Applied::Replaced { .. }
    ));
    assert!(m.is_live(NodeId(8)));
}

#[test]
fn live_index_stays_consistent_and_purge_forgets_the_dead() {
    let now = Instant::now();
    let mut m = Members::new(NodeId(1));
    for i in 2..20 {
        m.apply_alive(now, info(i, 0));
    }
    for i in (2..20).step_by(3) {
        m.apply_left(now, NodeId(i), 0, vec![]);
    }
    let mut live: Vec<NodeId> = m.live_ids().to_vec();
    live.sort();
    let want: Vec<NodeId> = (2..20).filter(|i| (i - 2) % 3 != 0).map(NodeId).collect();
    assert_eq!(live, want);
    assert_eq!(m.purge(now + Duration::from_secs(1)).len(), 6);
    assert_eq!(m.live_count(), 12);
}
