//! Metadata propagation and graceful shutdown between real nodes.

use espial::{Espial, Event, RemovalReason};
use espial_tests::cluster::Cluster;
use espial_tests::{addr, require_netns};
use std::time::Duration;

const N: usize = 5;

async fn cluster(net: u8, port: u16) -> Cluster {
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(net, h, port).to_string())
        .collect();
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        let node = Espial::builder()
            .name(format!("n{net}-{h}"))
            .metadata([("version", "1")])
            .bind(addr(net, h, port))
            .peers(peers.clone())
            .start()
            .await
            .expect("start");
        c.add(node);
    }
    let all: Vec<usize> = (0..N).collect();
    c.wait("5 members and a master", Duration::from_secs(15), |c| {
        c.members_are(&all) && c.agreed_master().is_some()
    })
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_update_is_visible_everywhere_within_one_second() {
    require_netns!();
    let mut c = cluster(3, 27340).await;
    let id = c.nodes[2].id();
    c.nodes[2]
        .set_metadata([("version", "2"), ("zone", "b")])
        .await
        .expect("set_metadata");
    let t = c
        .wait("metadata in every nodes()", Duration::from_secs(5), |c| {
            c.nodes.iter().all(|n| {
                n.node(id).is_some_and(|m| {
                    m.metadata.get("version") == Some("2") && m.metadata.get("zone") == Some("b")
                })
            })
        })
        .await;
    println!("metadata visible on all 5 nodes after {} ms", t.as_millis());
    assert!(t < Duration::from_secs(1), "took {t:?}");
    // Others learned it through an updated_node event.
    for i in (0..N).filter(|i| *i != 2) {
        assert!(c
            .events_of(i)
            .any(|e| matches!(e, Event::NodeUpdated { node } if node.id == id)));
    }
    // Oversized metadata is refused with a clear error and the old metadata stays.
    let err = c.nodes[2]
        .set_metadata([("blob", "x".repeat(2000))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("metadata"), "{err}");
    assert_eq!(c.nodes[2].node_info().metadata.get("version"), Some("2"));
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_is_seen_as_left_within_200_ms() {
    require_netns!();
    let mut c = cluster(4, 27350).await;
    // Leave a non-master so the measurement is about membership only.
    let master = c.agreed_master().unwrap();
    let i = (0..N).find(|i| c.nodes[*i].id() != master).unwrap();
    let gone = c.nodes[i].id();
    let start = std::time::Instant::now();
    c.shutdown(i).await;
    let returned = start.elapsed();
    let t = c
        .wait(
            "removed_node (left) on every peer",
            Duration::from_secs(5),
            |c| {
                c.live()
                    .iter()
                    .all(|o| c.saw_removal(*o, gone, RemovalReason::Left))
            },
        )
        .await;
    // When the last peer's removed_node(left) arrived, counted from the shutdown call.
    let seen = c
        .log
        .iter()
        .filter(|(_, _, e)| {
            matches!(e, Event::NodeRemoved { node, reason: RemovalReason::Left } if node.id == gone)
        })
        .map(|(_, at, _)| at.saturating_duration_since(start))
        .max()
        .unwrap();
    println!(
        "shutdown returned after {:.2} ms; the last peer emitted removed_node(left) {:.2} ms after the call",
        returned.as_secs_f64() * 1e3,
        seen.as_secs_f64() * 1e3
    );
    for o in c.live() {
        assert!(!c.saw_removal(o, gone, RemovalReason::Failed));
    }
    assert!(
        returned + t < Duration::from_millis(200),
        "took {:?}",
        returned + t
    );
    assert!(c.nodes[i].is_stopped());
    assert!(matches!(
        c.nodes[i].send("x", "y").await,
        Err(espial::Error::Shutdown)
    ));
    c.shutdown_all().await;
}

/// Kills node 4 and starts it again at the same address; the cluster heals by itself.
async fn restart_heals(net: u8, port: u16, identity: bool) {
    let keys: Vec<Option<espial::IdentityKey>> = (0..N)
        .map(|_| identity.then(|| espial::IdentityKey::generate().unwrap()))
        .collect();
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(net, h, port).to_string())
        .collect();
    let build = |h: u8| {
        let mut b = Espial::builder()
            .name(format!("r{net}-{h}"))
            .bind(addr(net, h, port))
            .peers(peers.clone());
        if let Some(k) = &keys[h as usize - 1] {
            b = b.identity(k.clone());
        }
        b
    };
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        c.add(build(h).start().await.expect("start"));
    }
    let all: Vec<usize> = (0..N).collect();
    c.wait("5 members and a master", Duration::from_secs(15), |c| {
        c.members_are(&all) && c.agreed_master().is_some()
    })
    .await;
    let old = c.nodes[3].id();
    c.kill(3);
    c.wait(
        "the killed node's task to end",
        Duration::from_secs(5),
        |c| c.nodes[3].is_stopped(),
    )
    .await;
    let start = std::time::Instant::now();
    let n = c.add(build(4).start().await.expect("restart on the same address"));
    let new = c.nodes[n].id();
    assert_eq!(
        new == old,
        identity,
        "same id exactly when the identity key is kept"
    );
    let idx = [0, 1, 2, 4, n];
    c.wait(
        "the restarted node is a member everywhere",
        Duration::from_secs(20),
        |c| c.members_are(&idx) && c.agreed_master_among(&idx).is_some(),
    )
    .await;
    println!(
        "restart (identity key: {identity}): cluster whole again {} ms after the restart",
        start.elapsed().as_millis()
    );
    if !identity {
        for i in [0, 1, 2, 4] {
            assert!(
                c.nodes[i].node(old).is_none(),
                "old incarnation still listed"
            );
        }
    }
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_rejoins_with_a_new_id() {
    require_netns!();
    restart_heals(11, 27420, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_with_identity_key_keeps_its_id() {
    require_netns!();
    restart_heals(12, 27430, true).await;
}
