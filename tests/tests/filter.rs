//! A connection filter that admits only names ending in ".internal": the outsider gets
//! `node_rejected` and nothing about the cluster, never appears in anyone's `nodes()`, and
//! no sealed record of the members' custom events reaches its socket.

use async_trait::async_trait;
use espial::{Espial, Event, Transport};
use espial_core::wire::{Kind, HEADER_LEN, MAGIC};
use espial_net::UdpTransport;
use espial_tests::cluster::Cluster;
use espial_tests::{addr, require_netns};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NET: u8 = 2;
const PORT: u16 = 27330;
/// Custom event payload: far bigger than any handshake or rejection datagram.
const SECRET_LEN: usize = 1100;

/// Counts, at the outsider's socket, the sealed records it receives after rejection.
#[derive(Default)]
struct Counters {
    rejected: AtomicBool,
    sealed_after: AtomicU64,
    large_sealed_after: AtomicU64,
    total_in: AtomicU64,
}

struct CountingTransport {
    inner: UdpTransport,
    c: Arc<Counters>,
}

#[async_trait]
impl Transport for CountingTransport {
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> std::io::Result<()> {
        self.inner.send_to(data, to).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let (n, from) = self.inner.recv_from(buf).await?;
        self.c.total_in.fetch_add(1, Ordering::Relaxed);
        let sealed = n > HEADER_LEN && buf[..2] == MAGIC && buf[3] == Kind::Sealed as u8;
        if sealed && self.c.rejected.load(Ordering::Relaxed) {
            self.c.sealed_after.fetch_add(1, Ordering::Relaxed);
            if n >= SECRET_LEN {
                self.c.large_sealed_after.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok((n, from))
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_rejects_outsider_which_learns_nothing() {
    require_netns!();
    let seeds: Vec<String> = (1..=3).map(|h| addr(NET, h, PORT).to_string()).collect();
    let mut c = Cluster::new();
    for h in 1..=3u8 {
        let node = Espial::builder()
            .name(format!("m{h}.internal"))
            .bind(addr(NET, h, PORT))
            .peers(seeds.clone())
            .connection_filter(|req| async move { req.name.ends_with(".internal") })
            .start()
            .await
            .expect("start member");
        node.join("secrets").await.unwrap();
        c.add(node);
    }
    let members = [0, 1, 2];
    c.wait("3 members and a master", Duration::from_secs(10), |c| {
        c.members_are(&members) && c.agreed_master().is_some()
    })
    .await;

    let counters = Arc::new(Counters::default());
    let udp = UdpTransport::bind(addr(NET, 9, PORT)).expect("bind outsider");
    let outsider = Espial::builder()
        .name("intruder.example.com")
        .transport(CountingTransport {
            inner: udp,
            c: counters.clone(),
        })
        .peers(seeds.clone())
        .start()
        .await
        .expect("start outsider");
    outsider.join("secrets").await.unwrap();
    let o = c.add(outsider);
    let outsider_id = c.nodes[o].id();

    c.wait(
        "node_rejected at the outsider",
        Duration::from_secs(10),
        |c| c.events_of(o).any(|e| matches!(e, Event::Rejected { .. })),
    )
    .await;
    counters.rejected.store(true, Ordering::Relaxed);
    let reason = c
        .events_of(o)
        .find_map(|e| match e {
            Event::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    println!("outsider rejected: {reason:?}");

    // Members publish secrets to every subscriber; the outsider subscribed too.
    for (k, m) in members.iter().enumerate() {
        let payload = vec![b'A' + k as u8; SECRET_LEN];
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            c.nodes[*m].send_confirmed("secrets", payload),
        )
        .await
        .expect("send outcome in time")
        .expect("send");
        assert!(!outcome.delivered.contains(&outsider_id));
        assert!(
            !outcome.failed.contains(&outsider_id),
            "outsider was a target"
        );
        for other in members.iter().filter(|o| *o != m) {
            let id = c.nodes[*other].id();
            assert!(outcome.delivered.contains(&id), "{outcome:?}");
        }
    }
    c.pump();

    for m in members {
        assert!(
            c.nodes[m].nodes().iter().all(|n| n.id != outsider_id),
            "member {m} lists the outsider"
        );
        assert!(!c
            .events_of(m)
            .any(|e| matches!(e, Event::NodeAdded { node } if node.id == outsider_id)));
    }
    assert_eq!(c.nodes[o].nodes().len(), 1, "outsider knows only itself");
    for e in c.events_of(o) {
        match e {
            Event::Listening { .. } | Event::Rejected { .. } => {}
            // Alone, an eligible node may lead its own one-node cluster.
            Event::Promotion { previous: None, .. } => {}
            other => panic!("outsider received {other:?}"),
        }
    }
    let large = counters.large_sealed_after.load(Ordering::Relaxed);
    let sealed = counters.sealed_after.load(Ordering::Relaxed);
    println!(
        "outsider after rejection: {sealed} sealed datagram(s), {large} of custom-event size; \
         {} rejection(s); {} datagrams in total",
        c.events_of(o)
            .filter(|e| matches!(e, Event::Rejected { .. }))
            .count(),
        counters.total_in.load(Ordering::Relaxed)
    );
    assert_eq!(
        large, 0,
        "a sealed record the size of a custom event reached the outsider"
    );
    c.shutdown_all().await;
}

/// Every node applies its own filter: m3 refuses names starting with "x-", m1 and m2 admit
/// everyone. The joiner (seeded with m1 only) is a member for m1 and m2, absent from m3's
/// `nodes()`, gets no custom event from m3 and sends none to it; it does not report
/// `node_rejected` (the cluster accepted it). Nobody removes anybody meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_runs_its_own_filter_on_each_member() {
    require_netns!();
    const PORT3: u16 = 27331;
    let seeds: Vec<String> = (1..=3).map(|h| addr(NET, h, PORT3).to_string()).collect();
    let mut c = Cluster::new();
    for h in 1..=3u8 {
        let strict = h == 3;
        let node = Espial::builder()
            .name(format!("m{h}"))
            .bind(addr(NET, h, PORT3))
            .peers(seeds.clone())
            .connection_filter(move |req| async move { !(strict && req.name.starts_with("x-")) })
            .start()
            .await
            .expect("start member");
        node.join("jobs").await.unwrap();
        c.add(node);
    }
    c.wait("3 members and a master", Duration::from_secs(10), |c| {
        c.members_are(&[0, 1, 2]) && c.agreed_master().is_some()
    })
    .await;
    let joiner = Espial::builder()
        .name("x-joiner")
        .bind(addr(NET, 4, PORT3))
        .peers(vec![addr(NET, 1, PORT3).to_string()])
        .start()
        .await
        .expect("start joiner");
    joiner.join("jobs").await.unwrap();
    let j = c.add(joiner);
    let jid = c.nodes[j].id();
    c.wait("m1 and m2 list the joiner", Duration::from_secs(10), |c| {
        [0, 1]
            .iter()
            .all(|m| c.nodes[*m].nodes().iter().any(|n| n.id == jid))
            && c.nodes[j].nodes().len() == 4
    })
    .await;
    // m3 learns of it by gossip, refuses it and tells it (the notice may wait for a
    // handshake: m3 had no session with the joiner).
    c.wait(
        "the joiner is told m3 refuses it",
        Duration::from_secs(10),
        |c| c.nodes[j].stats().core.refused_by_members == 1,
    )
    .await;
    let m3 = c.nodes[2].id();
    assert!(
        c.nodes[2].nodes().iter().all(|n| n.id != jid),
        "m3 lists a member its own filter refuses"
    );
    let from_m3 = tokio::time::timeout(
        Duration::from_secs(10),
        c.nodes[2].send_confirmed("jobs", b"from m3".to_vec()),
    )
    .await
    .expect("m3 outcome in time")
    .expect("m3 send");
    assert!(!from_m3.delivered.contains(&jid) && !from_m3.failed.contains(&jid));
    let from_j = tokio::time::timeout(
        Duration::from_secs(10),
        c.nodes[j].send_confirmed("jobs", b"from joiner".to_vec()),
    )
    .await
    .expect("joiner outcome in time")
    .expect("joiner send");
    assert!(
        !from_j.delivered.contains(&m3) && !from_j.failed.contains(&m3),
        "{from_j:?}"
    );
    assert_eq!(from_j.delivered.len(), 2, "{from_j:?}");
    c.pump();
    assert!(
        !c.events_of(j).any(|e| matches!(e, Event::Rejected { .. })),
        "the cluster accepted the joiner: no node_rejected"
    );
    assert!(!c
        .events_of(j)
        .any(|e| matches!(e, Event::Custom(ce) if ce.from == m3)));
    for i in 0..4 {
        assert!(
            !c.events_of(i)
                .any(|e| matches!(e, Event::NodeRemoved { .. })),
            "node {i} removed someone"
        );
    }
    c.shutdown_all().await;
}
