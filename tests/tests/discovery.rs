//! Five real nodes find each other (multicast on lo, or static peers), all emit the right
//! node_accepted / added_node events and agree on one master.

use espial::{Espial, Event, MulticastConfig, MulticastInterface, NodeId};
use espial_tests::cluster::Cluster;
use espial_tests::{addr, ip, require_netns};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const N: usize = 5;

/// Checks the join events of a formed cluster: every node saw `added_node` for each of the
/// others, and `node_accepted` was emitted once per join (at most once per node; every node
/// but the founders was accepted).
fn check_join_events(c: &Cluster) {
    let ids: Vec<NodeId> = c.nodes.iter().map(|n| n.id()).collect();
    let mut accepted = 0;
    for i in 0..N {
        let added: HashSet<NodeId> = c
            .events_of(i)
            .filter_map(|e| match e {
                Event::NodeAdded { node } => Some(node.id),
                _ => None,
            })
            .collect();
        let others: HashSet<NodeId> = ids.iter().copied().filter(|id| *id != ids[i]).collect();
        assert_eq!(added, others, "node {i} added_node events");
        let acc = c
            .events_of(i)
            .filter(|e| matches!(e, Event::Accepted { .. }))
            .count();
        assert!(acc <= 1, "node {i} emitted node_accepted {acc} times");
        accepted += acc;
        assert!(
            !c.events_of(i).any(|e| matches!(e, Event::Rejected { .. })),
            "node {i} was rejected"
        );
        assert!(matches!(
            c.events_of(i).next(),
            Some(Event::Listening { .. })
        ));
    }
    // A cluster that forms from scratch has at least one founder that joined nobody; with
    // concurrent starts two founders may merge, so allow N-2.
    assert!(
        accepted >= N - 2,
        "only {accepted} of {N} nodes emitted node_accepted"
    );
}

async fn formed(c: &mut Cluster) -> Duration {
    let all: Vec<usize> = (0..N).collect();
    c.wait(
        "5 members everywhere and one master",
        Duration::from_secs(15),
        |c| c.members_are(&all) && c.agreed_master().is_some(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_find_each_other_by_multicast_on_lo() {
    require_netns!();
    let group = IpAddr::V4(Ipv4Addr::new(239, 192, 27, 1));
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        let mut mc = MulticastConfig::with_group(group, 27301);
        mc.interface = MulticastInterface::V4(Ipv4Addr::LOCALHOST);
        mc.cluster = "test-multicast".into();
        let node = Espial::builder()
            .name(format!("mc-{h}"))
            .bind(SocketAddr::from((ip(0, h), 0)))
            .multicast_config(mc)
            .start()
            .await
            .expect("start");
        c.add(node);
    }
    let t = formed(&mut c).await;
    println!(
        "multicast: 5 nodes formed a cluster in {} ms",
        t.as_millis()
    );
    check_join_events(&c);
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_form_a_cluster_with_static_peers_only() {
    require_netns!();
    const NET: u8 = 1;
    const PORT: u16 = 27310;
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(NET, h, PORT).to_string())
        .collect();
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        let node = Espial::builder()
            .name(format!("static-{h}"))
            .bind(addr(NET, h, PORT))
            .peers(peers.clone())
            .start()
            .await
            .expect("start");
        c.add(node);
    }
    let t = formed(&mut c).await;
    println!(
        "static peers: 5 nodes formed a cluster in {} ms",
        t.as_millis()
    );
    check_join_events(&c);
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_nodes_on_loopback() {
    require_netns!();
    let a: SocketAddr = "[::1]:27320".parse().unwrap();
    let b: SocketAddr = "[::1]:27321".parse().unwrap();
    let mut c = Cluster::new();
    for (name, me) in [("v6-a", a), ("v6-b", b)] {
        let node = Espial::builder()
            .name(name)
            .bind(me)
            .peers([a.to_string(), b.to_string()])
            .start()
            .await
            .expect("start on ::1");
        c.add(node);
    }
    c.wait(
        "two IPv6 members and a master",
        Duration::from_secs(10),
        |c| c.members_are(&[0, 1]) && c.agreed_master().is_some(),
    )
    .await;
    assert_eq!(c.nodes[0].advertised_addr(), a);
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multicast_beacons_are_authenticated_with_the_cluster_key() {
    require_netns!();
    let group = IpAddr::V4(Ipv4Addr::new(239, 192, 27, 2));
    let mc = || {
        let mut mc = MulticastConfig::with_group(group, 27302);
        mc.interface = MulticastInterface::V4(Ipv4Addr::LOCALHOST);
        mc
    };
    let mut c = Cluster::new();
    for h in 1..=4u8 {
        // Nodes 1-3 share a key; node 4 has another one (same group, same cluster name).
        let key: &[u8] = if h <= 3 {
            b"the right cluster key, 32 bytes!"
        } else {
            b"some other cluster key, 32 bytes"
        };
        let node = Espial::builder()
            .name(format!("psk-{h}"))
            .bind(SocketAddr::from((ip(9, h), 0)))
            .multicast_config(mc())
            .psk(key.to_vec())
            .start()
            .await
            .expect("start");
        c.add(node);
    }
    c.wait(
        "the 3 key holders form a cluster; the 4th ignores their beacons",
        Duration::from_secs(15),
        |c| {
            c.members_are(&[0, 1, 2])
                && c.agreed_master_among(&[0, 1, 2]).is_some()
                && c.nodes[3].stats().beacons_ignored >= 3
                && (0..3).all(|i| c.nodes[i].stats().beacons_ignored >= 1)
        },
    )
    .await;
    let stranger = c.nodes[3].id();
    for i in 0..3 {
        assert!(c.nodes[i].nodes().iter().all(|n| n.id != stranger));
        assert!(c.nodes[i].stats().beacons_received >= 2);
    }
    assert_eq!(c.nodes[3].nodes().len(), 1);
    assert_eq!(
        c.nodes[3].stats().beacons_received,
        0,
        "no valid beacon for the wrong key"
    );
    c.shutdown_all().await;
}
