//! Lifeguard-class failure detection (issue 11): local health, nacks, buddy suspicions,
//! confirmations per authenticated sender, stale accusations answered, no false removals
//! when an isolated node comes back.

use super::Node;
use crate::membership::Liveness;
use crate::testkit::{addr, TestNet};
use crate::wire::{Msg, Update};
use crate::{Config, Event, NodeId, RemovalReason};
use std::net::SocketAddr;
use std::time::Duration;

fn node(net: &mut TestNet, a: SocketAddr) -> &mut Node {
    net.nodes.get_mut(&a).unwrap().as_mut().unwrap()
}

fn id(net: &mut TestNet, i: usize) -> NodeId {
    node(net, addr(i)).id()
}

fn isolate(net: &mut TestNet, i: usize, n: usize) {
    for j in (0..n).filter(|j| *j != i) {
        net.blocked.push((addr(i), addr(j)));
        net.blocked.push((addr(j), addr(i)));
    }
}

fn queued(net: &mut TestNet, a: SocketAddr, to: NodeId) -> Vec<Msg> {
    node(net, a)
        .outbox
        .get(&to)
        .map(|o| o.msgs.clone())
        .unwrap_or_default()
}

#[test]
fn isolated_node_loses_health_healthy_probers_do_not_and_nobody_healthy_is_removed() {
    const N: usize = 6;
    let mut net = TestNet::new(N, Config::lan());
    net.run_for(Duration::from_secs(3));
    assert!(net.full_membership());
    let victim = id(&mut net, 5);
    isolate(&mut net, 5, N);
    net.run_for(Duration::from_secs(5));
    let h = node(&mut net, addr(5)).health_score();
    assert!(
        h >= 5,
        "the isolated node's probes fail without nacks: score {h}"
    );
    for i in 0..5 {
        // Their probes of the isolated node fail too, but every helper nacks.
        assert_eq!(node(&mut net, addr(i)).health_score(), 0, "node {i}");
    }
    net.blocked.clear();
    // One success lowers the score by one, probing at interval * (score + 1): from 7 back
    // to 0 takes 4 + 3.5 + ... + 1 = 17.5 s of successful probes.
    net.run_for(Duration::from_secs(25));
    assert!(net.full_membership(), "membership repaired after the heal");
    assert_eq!(node(&mut net, addr(5)).health_score(), 0, "recovered");
    for i in 0..5 {
        for e in &net.events[&addr(i)] {
            if let Event::NodeRemoved {
                node,
                reason: RemovalReason::Failed,
            } = e
            {
                assert_eq!(node.id, victim, "node {i} removed a healthy node");
            }
        }
    }
}

#[test]
fn probes_to_a_suspect_carry_the_suspicion() {
    let mut net = TestNet::new(3, Config::lan());
    net.run_for(Duration::from_secs(2));
    let b = id(&mut net, 1);
    let now = net.now;
    let n = node(&mut net, addr(0));
    let inc = n.members.get(b).unwrap().info.incarnation;
    assert_eq!(n.ping_msgs(b, 7), vec![Msg::Ping { seq: 7, members: 3 }]);
    n.members.apply_suspect(now, b, inc, Duration::from_secs(5));
    let msgs = n.ping_msgs(b, 8);
    assert!(
        msgs.iter().any(|m| matches!(m, Msg::Updates(u)
            if matches!(u[0], Update::Suspect { id, incarnation, .. } if id == b && incarnation == inc))),
        "{msgs:?}"
    );
}

#[test]
fn a_helper_nacks_when_the_target_stays_silent() {
    let mut net = TestNet::new(3, Config::lan());
    net.run_for(Duration::from_secs(2));
    let (a, c) = (id(&mut net, 0), id(&mut net, 2));
    let now = net.now;
    let helper = node(&mut net, addr(1));
    helper.outbox.clear();
    helper.on_ping_req(now, a, 41, c);
    helper.relay_timers(now + Duration::from_millis(100));
    assert!(!queued(&mut net, addr(1), a).contains(&Msg::Nack { seq: 41 }));
    let t = now + Config::lan().probe_timeout;
    node(&mut net, addr(1)).relay_timers(t);
    assert!(queued(&mut net, addr(1), a).contains(&Msg::Nack { seq: 41 }));
}

#[test]
fn confirmations_count_once_per_authenticated_sender_and_shorten_the_suspicion() {
    const N: usize = 6;
    let mut net = TestNet::new(N, Config::lan());
    net.run_for(Duration::from_secs(3));
    let ids: Vec<NodeId> = (0..N).map(|i| id(&mut net, i)).collect();
    let now = net.now;
    let master = net.agreed_master().unwrap();
    let n = node(&mut net, addr(0));
    // Not the master (its suspicion has the master watch's short timeout) nor ourselves.
    let xi = (1..N).rev().find(|i| ids[*i] != master).unwrap();
    let x = ids[xi];
    let others: Vec<NodeId> = (1..N).filter(|i| *i != xi).map(|i| ids[i]).collect();
    let inc = n.members.get(x).unwrap().info.incarnation;
    let deadline = |n: &Node| match n.members.get(x).unwrap().state {
        Liveness::Suspect { deadline, .. } => deadline,
        s => panic!("not suspected: {s:?}"),
    };
    let suspect = |by: NodeId| Update::Suspect {
        id: x,
        incarnation: inc,
        by,
    };
    n.apply_update(now, suspect(others[0]), false, others[0]);
    let c = n.config.clone();
    assert_eq!(deadline(n), now + c.suspicion_max_timeout(N));
    // The first accuser again, and one other sender writing many names: one confirmation.
    n.apply_update(now, suspect(others[0]), false, others[0]);
    assert_eq!(deadline(n), now + c.suspicion_max_timeout(N));
    for k in 0..10 {
        n.apply_update(now, suspect(NodeId(1000 + k)), false, others[1]);
    }
    assert_eq!(deadline(n), now + c.suspicion_timeout_after(N, 1));
    // More distinct senders (our own failed probe counts too): down to the minimum.
    for from in [others[2], others[3]] {
        n.apply_update(now, suspect(from), false, from);
    }
    n.suspect(now, x);
    assert_eq!(deadline(n), now + c.suspicion_timeout(N));
}

#[test]
fn a_received_dead_only_suspects_and_a_stale_accusation_is_answered_with_the_newer_entry() {
    let mut net = TestNet::new(4, Config::lan());
    net.run_for(Duration::from_secs(2));
    let (b, c) = (id(&mut net, 1), id(&mut net, 2));
    // b publishes new metadata (a higher incarnation) and everyone learns it.
    let mut m = crate::Metadata::new();
    m.insert("v", "2");
    net.with(addr(1), |n, now| n.set_metadata(now, m))
        .unwrap()
        .unwrap();
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    let n = node(&mut net, addr(0));
    let newer = n.members.signed(b).expect("b's signed entry");
    let inc = newer.entry.incarnation;
    assert!(inc >= 1);
    n.outbox.clear();
    // An accusation about an older incarnation: ignored, the accuser gets the newer entry.
    let stale = Update::Dead {
        id: b,
        incarnation: inc - 1,
        by: c,
    };
    n.apply_update(now, stale, false, c);
    assert_eq!(n.members.get(b).unwrap().state, Liveness::Alive);
    assert!(queued(&mut net, addr(0), c).contains(&Msg::Updates(vec![Update::Alive(newer)])));
    // A Dead at the current incarnation: only a suspicion here.
    let n = node(&mut net, addr(0));
    let dead = Update::Dead {
        id: b,
        incarnation: inc,
        by: c,
    };
    n.apply_update(now, dead, false, c);
    assert!(matches!(
        n.members.get(b).unwrap().state,
        Liveness::Suspect { .. }
    ));
}
