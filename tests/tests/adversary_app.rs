//! Adversary suite, part 3 (issue 10): what an application relies on. In-process nodes
//! (the agent has no filter option and always reads its events), real sockets in the
//! private namespace:
//! - every node applies its own connection filter: a joiner admitted by a permissive member
//!   is not listed by, and gets no events from, a member whose filter rejects it;
//! - unread events are bounded in bytes: a sender tries to send 300 × 1 MiB to a node whose
//!   application never reads its events (for at most 8 s; backpressure refuses sends once
//!   the receiver's unread backlog is full) and this process's RSS stays bounded.
//!
//! `bash scripts/netns cargo nextest run -p espial-tests --test adversary_app --no-capture`

use espial::{Espial, Event};
use espial_tests::attacker::rss_kib;
use espial_tests::cluster::Cluster;
use espial_tests::{addr, require_netns};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_applies_its_own_connection_filter() {
    require_netns!();
    let (net, port) = (49, 27590);
    let seeds: Vec<String> = (1..=2).map(|h| addr(net, h, port).to_string()).collect();
    let mut c = Cluster::new();
    // m1 admits anyone; m2 refuses names starting with "evil".
    for h in 1..=2u8 {
        let strict = h == 2;
        let node = Espial::builder()
            .name(format!("m{h}"))
            .bind(addr(net, h, port))
            .peers(seeds.clone())
            .connection_filter(move |req| async move { !(strict && req.name.starts_with("evil")) })
            .start()
            .await
            .expect("start member");
        node.join("jobs").await.unwrap();
        c.add(node);
    }
    c.wait("2 members and a master", Duration::from_secs(10), |c| {
        c.members_are(&[0, 1]) && c.agreed_master().is_some()
    })
    .await;
    // The joiner knows only the permissive member.
    let evil = Espial::builder()
        .name("evil-joiner")
        .bind(addr(net, 3, port))
        .peers([addr(net, 1, port).to_string()])
        .start()
        .await
        .expect("start joiner");
    evil.join("jobs").await.unwrap();
    let evil_id = evil.id();
    let e = c.add(evil);
    c.wait("m1 admitted the joiner", Duration::from_secs(10), |c| {
        c.nodes[0].nodes().iter().any(|n| n.id == evil_id)
    })
    .await;
    // m2 publishes to every subscriber of "jobs" for 3 s while we watch its member list.
    let m2_id = c.nodes[1].id();
    let start = Instant::now();
    let mut listed_by_m2 = false;
    let mut k = 0;
    while start.elapsed() < Duration::from_secs(3) {
        listed_by_m2 |= c.nodes[1].nodes().iter().any(|n| n.id == evil_id);
        let _ = c.nodes[1]
            .send("jobs", format!("secret {k}").into_bytes())
            .await;
        k += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.pump();
    let from_m2 = c
        .events_of(e)
        .filter(|ev| matches!(ev, Event::Custom(ce) if ce.from == m2_id))
        .count();
    println!(
        "filter on every node: m1 admitted the joiner; m2 (rejecting) listed it: {listed_by_m2}; \
         events from m2 delivered to it: {from_m2} of {k} sent"
    );
    assert!(!listed_by_m2, "m2 lists a member its own filter rejects");
    assert_eq!(
        from_m2, 0,
        "m2 sent events to a member its own filter rejects"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_events_are_bounded_in_bytes() {
    require_netns!();
    let (net, port) = (50, 27600);
    let seeds: Vec<String> = (1..=2).map(|h| addr(net, h, port).to_string()).collect();
    let start = |h: u8| {
        Espial::builder()
            .name(format!("u{h}"))
            .bind(addr(net, h, port))
            .peers(seeds.clone())
            .start()
    };
    let sender = start(1).await.expect("sender");
    // The receiver's application never calls `events()`.
    let receiver = start(2).await.expect("receiver");
    receiver.join("big").await.unwrap();
    let rid = receiver.id();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !sender
        .nodes()
        .iter()
        .any(|n| n.id == rid && n.subscriptions.contains("big"))
    {
        assert!(
            Instant::now() < deadline,
            "the receiver's subscription never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = std::process::id();
    let before = rss_kib(me);
    let payload = vec![0x5au8; 1 << 20];
    let t0 = Instant::now();
    let mut queued = 0;
    // 300 × 1 MiB, refused sends (backpressure) retried for at most 8 s in total.
    while queued < 300 && t0.elapsed() < Duration::from_secs(8) {
        match sender.send("big", payload.clone()).await {
            Ok(_) => queued += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(me);
    println!(
        "unread events: {queued} x 1 MiB accepted by the sender in {} ms; process RSS {before} \
         -> {after} KiB (+{} MiB)",
        t0.elapsed().as_millis(),
        after.saturating_sub(before) / 1024
    );
    assert!(
        after < before + 128 * 1024,
        "unread events grew RSS by {} MiB",
        (after - before) / 1024
    );
    let _ = sender.shutdown().await;
    let _ = receiver.shutdown().await;
}
