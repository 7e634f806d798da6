//! Attacks on the membership statement rules (docs/PROTOCOL.md, "Membership statements"):
//! each test could fail if a rule were missing. Member `B` (an admitted member, so its
//! messages arrive over its authenticated session: `fuzz_as_member`) lies about others.

use crate::membership::statements;
use crate::testkit::{addr, TestNet};
use crate::wire::{Msg, SignedEntry, Update};
use crate::{Cipher, Config, Event, NodeId, NodeInfo, PlaintextTestCipher, RemovalReason};
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::Duration;

fn id_of(net: &TestNet, i: usize) -> NodeId {
    net.nodes[&addr(i)].as_ref().unwrap().id()
}

/// A formed 4-node cluster.
fn cluster() -> TestNet {
    let mut net = TestNet::new(4, Config::lan());
    net.run_for(Duration::from_secs(3));
    assert!(net.full_membership());
    net
}

/// Node `at` receives `msgs` from member `from` over their session.
fn inject(net: &mut TestNet, at: usize, from: usize, msgs: Vec<Msg>) {
    let (fid, faddr) = (id_of(net, from), addr(from));
    net.with(addr(at), |n, now| {
        for m in msgs {
            n.fuzz_as_member(now, fid, faddr, m);
        }
    });
}

fn removals_of(net: &TestNet, id: NodeId) -> usize {
    net.events
        .values()
        .flatten()
        .filter(|e| matches!(e, Event::NodeRemoved { node, .. } if node.id == id))
        .count()
}

fn stats(net: &TestNet, i: usize) -> crate::Stats {
    net.nodes[&addr(i)].as_ref().unwrap().stats()
}

/// `node`'s own signed entry at `incarnation` (what it would have gossiped then).
fn entry_of(net: &TestNet, i: usize, incarnation: u64) -> SignedEntry {
    let n = net.nodes[&addr(i)].as_ref().unwrap();
    let mut info: NodeInfo = n.info().clone();
    info.incarnation = incarnation;
    statements::sign_alive(&PlaintextTestCipher::for_node(n.id()), &info)
}

#[test]
fn a_forged_left_is_dropped_everywhere() {
    let mut net = cluster();
    let (a, b) = (id_of(&net, 0), id_of(&net, 1));
    let inc = net.nodes[&addr(0)].as_ref().unwrap().info().incarnation;
    let b_key = PlaintextTestCipher::for_node(b);
    for at in [2, 3] {
        let forged = Update::Left {
            id: a,
            incarnation: inc,
            // B signs with the key it has: its own.
            signature: statements::sign_left(&b_key, a, inc),
        };
        inject(&mut net, at, 1, vec![Msg::Updates(vec![forged])]);
        assert_eq!(stats(&net, at).statements_rejected, 1);
    }
    net.run_for(Duration::from_secs(5));
    assert_eq!(removals_of(&net, a), 0, "A was removed somewhere");
    assert!(net.full_membership());
    // A's real leave, signed by A, still works.
    net.with(addr(0), |n, now| n.leave(now));
    net.run_for(Duration::from_secs(1));
    for i in 1..4 {
        assert!(net.events[&addr(i)].iter().any(|e| matches!(e,
            Event::NodeRemoved { node, reason: RemovalReason::Left } if node.id == a)));
    }
}

#[test]
fn a_replayed_alive_is_ignored() {
    let mut net = cluster();
    let a = id_of(&net, 0);
    for v in ["5", "6"] {
        let mut md = crate::Metadata::new();
        md.insert("v", v);
        net.with(addr(0), |n, now| n.set_metadata(now, md).unwrap());
        net.run_for(Duration::from_secs(1));
    }
    let now_inc = net.nodes[&addr(0)].as_ref().unwrap().info().incarnation;
    let mut old = entry_of(&net, 0, now_inc - 1);
    old.entry.metadata.insert("v", "5");
    let old = statements::sign_alive(&PlaintextTestCipher::for_node(a), &old.entry);
    inject(&mut net, 2, 1, vec![Msg::Updates(vec![Update::Alive(old)])]);
    net.run_for(Duration::from_secs(2));
    for i in 1..4 {
        let n = net.nodes[&addr(i)].as_ref().unwrap();
        assert_eq!(
            n.member(a).unwrap().metadata.get("v"),
            Some("6"),
            "node {i}"
        );
        assert_eq!(n.member(a).unwrap().incarnation, now_inc);
    }
}

#[test]
fn one_flipped_byte_in_a_relayed_entry_is_dropped_and_counted() {
    let mut net = cluster();
    let a = id_of(&net, 0);
    let inc = net.nodes[&addr(0)].as_ref().unwrap().info().incarnation;
    let good = entry_of(&net, 0, inc + 1);
    let bytes = postcard::to_allocvec(&good).unwrap();
    let sig_start = bytes.len() - good.signature.len();
    let mut tried = 0;
    for pos in 0..sig_start {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[pos] ^= bit;
            let Ok(bad) = postcard::from_bytes::<SignedEntry>(&b) else {
                continue;
            };
            if bad.entry.id != a || bad == good {
                continue; // about someone else (unknown key) or the same value
            }
            tried += 1;
            let before = stats(&net, 2).statements_rejected;
            inject(&mut net, 2, 1, vec![Msg::Updates(vec![Update::Alive(bad)])]);
            if bad_is_fresh(&good, &b) {
                assert_eq!(stats(&net, 2).statements_rejected, before + 1, "byte {pos}");
            }
        }
    }
    assert!(tried > 20, "only {tried} flips decoded");
    net.run_for(Duration::from_secs(3));
    for i in 1..4 {
        let n = net.nodes[&addr(i)].as_ref().unwrap();
        let seen = n.member(a).unwrap();
        assert_eq!(seen.incarnation, inc, "node {i} applied a tampered entry");
        assert_eq!(seen.addr, addr(0));
    }
    assert_eq!(removals_of(&net, a), 0);
}

/// A flip that lowers the incarnation makes the entry stale: ignored before any signature
/// work (not counted). Every other flip must be counted.
fn bad_is_fresh(good: &SignedEntry, flipped: &[u8]) -> bool {
    postcard::from_bytes::<SignedEntry>(flipped)
        .is_ok_and(|b| b.entry.incarnation >= good.entry.incarnation)
}

#[test]
fn extreme_counters_from_an_impersonator_or_a_liar_do_not_split_redirect_or_panic() {
    let mut net = cluster();
    let (a, b, c) = (id_of(&net, 0), id_of(&net, 1), id_of(&net, 2));
    let b_key = PlaintextTestCipher::for_node(b);
    let elsewhere: SocketAddr = "10.9.9.9:27272".parse().unwrap();
    // Impersonation: statements about C that only C could sign.
    let mut redirect = entry_of(&net, 2, u64::MAX).entry;
    redirect.addr = elsewhere;
    let forged_alive_own_key = SignedEntry {
        entry: NodeInfo {
            public_key: b_key.identity_public_key(),
            ..redirect.clone()
        },
        signature: b_key.sign(
            statements::ALIVE_DOMAIN,
            &statements::alive_message(&redirect),
        ),
    };
    let forged_alive_c_key = SignedEntry {
        signature: b_key.sign(
            statements::ALIVE_DOMAIN,
            &statements::alive_message(&redirect),
        ),
        entry: redirect,
    };
    let forged_left = Update::Left {
        id: c,
        incarnation: u64::MAX,
        signature: statements::sign_left(&b_key, c, u64::MAX),
    };
    // Lies a member may tell without a signature: suspicions with extreme numbers.
    let lies = vec![
        Update::Alive(forged_alive_own_key),
        Update::Alive(forged_alive_c_key),
        forged_left,
        Update::Suspect {
            id: c,
            incarnation: u64::MAX,
            by: b,
        },
        Update::Dead {
            id: c,
            incarnation: u64::MAX,
            by: b,
        },
    ];
    for at in [0, 2, 3] {
        inject(&mut net, at, 1, vec![Msg::Updates(lies.clone())]);
    }
    // Suspect{self, u64::MAX}: panicked in publish_self in debug builds.
    inject(
        &mut net,
        0,
        1,
        vec![Msg::Updates(vec![Update::Suspect {
            id: a,
            incarnation: u64::MAX,
            by: b,
        }])],
    );
    assert_eq!(stats(&net, 0).statements_rejected, 3);
    assert!(
        stats(&net, 2).incarnations_refused >= 1,
        "C clamps its refutation"
    );
    net.run_for(Duration::from_secs(10));
    assert!(net.full_membership(), "views split");
    assert_eq!(removals_of(&net, c), 0, "C was removed");
    assert!(net.agreed_master().is_some());
    for i in 0..4 {
        let n = net.nodes[&addr(i)].as_ref().unwrap();
        if i != 2 {
            assert_eq!(
                n.member(c).unwrap().addr,
                addr(2),
                "traffic for C redirected at {i}"
            );
        }
        assert!(
            n.info().incarnation < 100,
            "node {i} jumped its incarnation"
        );
    }
    // C can still refute: its incarnation is far from the top.
    let c_inc = net.nodes[&addr(2)].as_ref().unwrap().info().incarnation;
    assert!((1..100).contains(&c_inc));
}

#[test]
fn a_member_refused_by_one_nodes_filter_is_not_counted_there() {
    let mut net = TestNet::new(3, Config::lan());
    // Node 1 (B) runs a filter (refuses names starting with "reject"); 0 and 2 do not.
    net.with(addr(1), |n, _| n.set_admission_filter(true));
    net.run_for(Duration::from_secs(3));
    assert!(net.full_membership());
    let b = id_of(&net, 1);
    net.add_named(3, Config::lan(), NodeId(0x9999), "reject-x");
    net.with(addr(3), |n, now| n.handle_discovered(now, &[addr(0)]));
    net.run_for(Duration::from_secs(4));
    let x = NodeId(0x9999);
    let bn = net.nodes[&addr(1)].as_ref().unwrap();
    assert!(bn.members().iter().all(|m| m.id != x), "B counts X");
    assert_eq!(bn.members().len(), 3);
    for i in [0, 2] {
        let n = net.nodes[&addr(i)].as_ref().unwrap();
        assert!(
            n.member(x).is_some(),
            "node {i} lost X (accepted by the cluster)"
        );
    }
    let xn = net.nodes[&addr(3)].as_ref().unwrap();
    assert!(xn.join.refused_by.contains(&b), "X was not told");
    assert!(
        !net.events[&addr(3)]
            .iter()
            .any(|e| matches!(e, Event::Rejected { .. })),
        "X was accepted by the cluster: no node_rejected"
    );
    // Events: B never sends to X; X never sends to B.
    for i in [1, 3] {
        net.with(addr(i), |n, now| n.subscribe(now, "jobs").unwrap());
    }
    net.run_for(Duration::from_secs(1));
    let to_x = net
        .with(addr(1), |n, _| {
            n.resolve_targets("jobs", crate::Target::Subscribers)
        })
        .unwrap()
        .unwrap();
    assert!(!to_x.contains(&x));
    let to_b = net
        .with(addr(3), |n, _| {
            n.resolve_targets("jobs", crate::Target::Subscribers)
        })
        .unwrap()
        .unwrap();
    assert!(!to_b.contains(&b));
    // Stable: no flapping, no removals of B or X anywhere over time.
    net.run_for(Duration::from_secs(10));
    assert_eq!(removals_of(&net, b) + removals_of(&net, x), 0);
    assert!(net.events[&addr(1)]
        .iter()
        .all(|e| !matches!(e, Event::NodeAdded { node } if node.id == x)));
    let b_inc = net.nodes[&addr(1)].as_ref().unwrap().info().incarnation;
    assert!(
        b_inc <= 2,
        "B kept refuting suspicions: incarnation {b_inc}"
    );
    // A send X made before it was told (here: X forgets the notice) still gets an outcome:
    // B drops it, repeats the notice, and X reports B failed instead of waiting forever.
    net.with(addr(3), |n, _| n.join.refused_by.clear());
    let send = net
        .with(addr(3), |n, now| {
            n.send(
                now,
                "jobs",
                Bytes::from_static(b"x"),
                crate::Target::Subscribers,
            )
        })
        .unwrap()
        .unwrap();
    net.run_for(Duration::from_secs(5));
    let outcome = net.events[&addr(3)].iter().find_map(|e| match e {
        Event::SendOutcome(o) if o.send == send => Some(o.clone()),
        _ => None,
    });
    let outcome = outcome.expect("the send to a refusing member got no outcome");
    assert_eq!(outcome.failed, vec![b], "{outcome:?}");
    assert_eq!(stats(&net, 3).refused_by_members, 1);
}

/// The signature of the `Left` about `id` that node `at` has queued for gossip, if any.
fn pending_left(net: &TestNet, at: usize, id: NodeId) -> Option<Vec<u8>> {
    match net.nodes[&addr(at)]
        .as_ref()
        .unwrap()
        .broadcasts
        .pending(id)
    {
        Some(Update::Left { signature, .. }) => Some(signature.clone()),
        _ => None,
    }
}

fn removed_as_left(net: &TestNet, at: usize, id: NodeId) -> bool {
    net.events.get(&addr(at)).is_some_and(|evs| {
        evs.iter().any(|e| {
            matches!(e, Event::NodeRemoved { node, reason: RemovalReason::Left } if node.id == id)
        })
    })
}

#[test]
fn a_members_own_left_is_applied_at_once_and_forwarded_only_once_verified() {
    let mut net = cluster();
    let a = id_of(&net, 0);
    let inc = net.nodes[&addr(0)].as_ref().unwrap().info().incarnation;
    // A's own Left over A's session, with a signature that does not verify (A's key over
    // another incarnation): the session says A said it, so node 2 removes A at once, with
    // no signature work on that path...
    let bad = Update::Left {
        id: a,
        incarnation: inc,
        signature: statements::sign_left(&PlaintextTestCipher::for_node(a), a, inc + 1),
    };
    inject(&mut net, 2, 0, vec![Msg::Updates(vec![bad])]);
    assert!(removed_as_left(&net, 2, a), "not removed at once");
    assert_eq!(stats(&net, 2).statements_rejected, 0);
    assert!(pending_left(&net, 2, a).is_none(), "queued unverified");
    // ...checks the signature at its next timer, and never forwards it.
    net.with(addr(2), |n, now| n.handle_timeout(now));
    assert_eq!(stats(&net, 2).statements_rejected, 1);
    assert!(
        pending_left(&net, 2, a).is_none(),
        "forwarded a bad signature"
    );
    net.run_for(Duration::from_secs(2));
    assert_eq!(stats(&net, 2).statements_rejected, 1);
    for i in [1, 3] {
        assert!(!removed_as_left(&net, i, a), "node {i} removed A as left");
        assert_eq!(stats(&net, i).statements_rejected, 0, "node {i} got it");
    }

    // A real leave, sent to node 2 only (A is gone before the others hear it): node 2
    // removes A at once and forwards the verified Left, so the others see `left` too.
    let mut net = cluster();
    let inc = net.nodes[&addr(0)].as_ref().unwrap().info().incarnation;
    net.crash(addr(0));
    let good_sig = statements::sign_left(&PlaintextTestCipher::for_node(a), a, inc);
    let good = Update::Left {
        id: a,
        incarnation: inc,
        signature: good_sig.clone(),
    };
    net.with(addr(2), |n, now| {
        n.fuzz_as_member(now, a, addr(0), Msg::Updates(vec![good]))
    });
    assert!(removed_as_left(&net, 2, a));
    assert!(pending_left(&net, 2, a).is_none(), "queued unverified");
    net.with(addr(2), |n, now| n.handle_timeout(now));
    assert_eq!(
        pending_left(&net, 2, a),
        Some(good_sig),
        "not queued once verified"
    );
    net.run_for(Duration::from_millis(400));
    for i in [1, 3] {
        assert!(removed_as_left(&net, i, a), "node {i} did not get the Left");
    }
    for i in 1..4 {
        assert_eq!(stats(&net, i).statements_rejected, 0, "node {i}");
    }
}
