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
