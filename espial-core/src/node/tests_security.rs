//! Node-level denial-of-service and operator-report tests (virtual time).

use crate::rng::Rng;
use crate::testkit::{addr, TestNet};
use crate::wire::{self, Hello};
use crate::{Config, Event, NodeId};
use std::net::SocketAddr;
use std::time::Duration;

/// Whether node `i` has reported `Accepted` (it joined the cluster).
fn joined(net: &TestNet, i: usize) -> bool {
    net.events
        .get(&addr(i))
        .is_some_and(|ev| ev.iter().any(|e| matches!(e, Event::Accepted { .. })))
}

/// Feeds `n` forged Hellos (random ids, random source addresses) to node `to`.
fn flood(net: &mut TestNet, rng: &mut Rng, fed: &mut usize, to: usize, n: usize) {
    *fed += n;
    let target = addr(to);
    net.with(target, |node, now| {
        for _ in 0..n {
            let r = rng.next_u64();
            let src = SocketAddr::from(([172, 16 + (r >> 60) as u8, (r >> 8) as u8, r as u8], 9));
            let hello = wire::encode_hello(
                &Hello {
                    from: NodeId(((r as u128) << 64) | rng.next_u64() as u128),
                    to: None,
                    attempt: rng.next_u64(),
                    share: r.to_le_bytes().to_vec(),
                    cookie: None,
                },
                0,
            );
            node.handle_datagram(now, src, &hello);
        }
        let (_, half_open) = node.session_footprint();
        assert!(half_open <= 2 * node.config().max_pending_handshakes);
    });
}

/// Joins node `i` through node 0 while the flood goes on; returns the join time.
fn join_during(
    net: &mut TestNet,
    rng: &mut Rng,
    fed: &mut usize,
    i: usize,
    per_10ms: usize,
) -> Option<Duration> {
    net.add(i, Config::lan(), NodeId((i as u128 + 1) * 0x1111));
    let t0 = net.now;
    net.with(addr(i), |node, now| node.handle_discovered(now, &[addr(0)]));
    for _ in 0..200 {
        if per_10ms > 0 {
            flood(net, rng, fed, 0, per_10ms);
        }
        net.run_for(Duration::from_millis(10));
        if joined(net, i) {
            return Some(net.now - t0);
        }
    }
    None
}

/// A legitimate newcomer joins within 1 s during and after a flood of 100,000 Hellos from
/// random ids and source addresses (100,000 per second of virtual time).
#[test]
fn newcomer_joins_within_a_second_during_and_after_a_hello_flood() {
    let mut net = TestNet::new(3, Config::lan());
    net.run_for(Duration::from_secs(2));
    assert!(net.full_membership());
    let mut rng = Rng::new(42);
    let mut fed = 0;
    // Half a second of flood first: the node is under load when the newcomer comes.
    for _ in 0..50 {
        flood(&mut net, &mut rng, &mut fed, 0, 1_000);
        net.run_for(Duration::from_millis(10));
    }
    let during =
        join_during(&mut net, &mut rng, &mut fed, 3, 1_000).expect("joins during the flood");
    // Finish the 100,000 forged Hellos, then a second newcomer right after.
    while fed < 100_000 {
        let n = (100_000 - fed).min(1_000);
        flood(&mut net, &mut rng, &mut fed, 0, n);
        net.run_for(Duration::from_millis(10));
    }
    assert_eq!(fed, 100_000);
    let after = join_during(&mut net, &mut rng, &mut fed, 4, 0).expect("joins after the flood");
    let stats = net.nodes[&addr(0)].as_ref().unwrap().stats().clone();
    println!("join during {during:?}, after {after:?}; node 0: {stats:?}");
    assert!(during <= Duration::from_secs(1), "during: {during:?}");
    assert!(after <= Duration::from_secs(1), "after: {after:?}");
    assert!(
        stats.cookies_sent > 90_000,
        "the flood got cookies, not key exchanges"
    );
    // The spoofed half-open state is gone once it expires.
    net.run_for(Duration::from_secs(2));
    let (_, half_open) = net.nodes[&addr(0)].as_ref().unwrap().session_footprint();
    assert_eq!(half_open, 0);
}

/// The seed table fed by discovery (beacons) is bounded and expires.
#[test]
fn seed_table_is_bounded_and_expires() {
    let mut net = TestNet::new(1, Config::lan());
    let n = super::join::MAX_SEEDS + 1;
    net.with(addr(0), |node, now| {
        let seeds: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([192, 168, (i >> 8) as u8, i as u8], 7)))
            .collect();
        node.handle_discovered(now, &seeds);
        assert_eq!(node.seed_count(), super::join::MAX_SEEDS);
    });
    net.run_for(super::join::SEED_TTL + Duration::from_secs(2));
    net.with(addr(0), |node, _| assert_eq!(node.seed_count(), 0));
}

/// A node of another protocol version is reported once, as an event naming its address.
#[test]
fn wrong_version_is_reported_once_per_address() {
    let mut net = TestNet::new(1, Config::lan());
    let from: SocketAddr = "10.9.9.9:1".parse().unwrap();
    let mut d = wire::encode_hello(
        &Hello {
            from: NodeId(5),
            to: None,
            attempt: 1,
            share: vec![0; 8],
            cookie: None,
        },
        0,
    );
    d[2] = 1; // a version-1 node
    for _ in 0..3 {
        net.with(addr(0), |node, now| node.handle_datagram(now, from, &d));
    }
    let reports: Vec<&Event> = net.events[&addr(0)]
        .iter()
        .filter(|e| matches!(e, Event::HandshakeFailed { addr, .. } if *addr == from))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
}

/// A forged open beacon naming a victim (the form the source check lets through) makes
/// exactly one member of a 3-node cluster send exactly one Hello to it, never retried; a
/// node alone answers too, once per announcement, and its reconnect loop never retries the
/// address. (Before: every member sent up to 8 padded Hellos.)
#[test]
fn unverified_announcements_cost_one_hello_from_one_member() {
    let mut net = TestNet::new(3, Config::lan());
    net.run_for(Duration::from_secs(3));
    assert!(net.full_membership());
    for k in 0..20u8 {
        let victim: std::net::SocketAddr = format!("127.0.9.{k}:7000").parse().unwrap();
        for i in 0..3 {
            net.with(addr(i), |n, now| {
                n.handle_discovered_unverified(now, &[victim])
            });
        }
        net.run_for(Duration::from_secs(20));
        let (datagrams, bytes) = net.sent_to.get(&victim).copied().unwrap_or_default();
        assert_eq!(
            datagrams, 1,
            "victim {victim}: {datagrams} datagrams, {bytes} B"
        );
        assert_eq!(bytes, crate::wire::HELLO_MIN_LEN as u64);
        let designated = (0..3)
            .filter(|i| {
                net.nodes[&addr(*i)]
                    .as_ref()
                    .unwrap()
                    .designated_for(victim)
            })
            .count();
        assert_eq!(designated, 1);
    }
    // Alone: one Hello per announcement, none from the reconnect loop.
    let mut alone = TestNet::new(0, Config::lan());
    alone.add(0, Config::lan(), NodeId(0x77));
    let victim: std::net::SocketAddr = "127.0.9.200:7000".parse().unwrap();
    alone.with(addr(0), |n, now| {
        n.handle_discovered_unverified(now, &[victim])
    });
    alone.run_for(Duration::from_secs(60));
    assert_eq!(alone.sent_to.get(&victim).map(|c| c.0), Some(1));
    // A trusted announcement of the same address is retried as before.
    alone.with(addr(0), |n, now| n.handle_discovered(now, &[victim]));
    alone.run_for(Duration::from_secs(10));
    assert!(alone.sent_to[&victim].0 > 2, "a configured seed is retried");
}
