//! Real partitions with nftables between two groups of loopback addresses: each side
//! follows the election rules (available by default, quorum mode on request), and after
//! the rules are removed there is one master everywhere.

use espial::{Espial, Event};
use espial_tests::cluster::Cluster;
use espial_tests::nft::Partition;
use espial_tests::{addr, ip, require_netns};
use std::net::Ipv4Addr;
use std::time::Duration;

const N: usize = 5;
const SIDE_A: [usize; 3] = [0, 1, 2];
const SIDE_B: [usize; 2] = [3, 4];

async fn cluster(
    net: u8,
    port: u16,
    quorum: Option<usize>,
    priority: impl Fn(u8) -> u32,
) -> Cluster {
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(net, h, port).to_string())
        .collect();
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        let mut b = Espial::builder()
            .name(format!("p{net}-{h}"))
            .bind(addr(net, h, port))
            .peers(peers.clone())
            .priority(priority(h));
        if let Some(q) = quorum {
            b = b.quorum(q);
        }
        c.add(b.start().await.expect("start"));
    }
    let all: Vec<usize> = (0..N).collect();
    c.wait("5 members and a master", Duration::from_secs(15), |c| {
        c.members_are(&all) && c.agreed_master().is_some()
    })
    .await;
    c
}

fn ips(net: u8, side: &[usize]) -> Vec<Ipv4Addr> {
    side.iter().map(|i| ip(net, *i as u8 + 1)).collect()
}

fn side_of(c: &Cluster, side: &[usize], id: espial::NodeId) -> bool {
    side.iter().any(|i| c.nodes[*i].id() == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_without_quorum_each_side_elects_then_heals_to_one_master() {
    require_netns!();
    const NET: u8 = 7;
    let mut c = cluster(NET, 27380, None, |_| 0).await;
    let before = c.agreed_master().unwrap();
    let cut = Partition::new("espial_test_p7", &ips(NET, &SIDE_A), &ips(NET, &SIDE_B));
    let t = c
        .wait(
            "each side with its own master",
            Duration::from_secs(20),
            |c| {
                c.members_are(&SIDE_A)
                    && c.members_are(&SIDE_B)
                    && c.agreed_master_among(&SIDE_A)
                        .is_some_and(|m| side_of(c, &SIDE_A, m))
                    && c.agreed_master_among(&SIDE_B)
                        .is_some_and(|m| side_of(c, &SIDE_B, m))
            },
        )
        .await;
    let (ma, mb) = (
        c.agreed_master_among(&SIDE_A).unwrap(),
        c.agreed_master_among(&SIDE_B).unwrap(),
    );
    println!(
        "partitioned: two sides with their own master after {} ms",
        t.as_millis()
    );
    // Sticky master: the side that kept the old master did not re-elect.
    if side_of(&c, &SIDE_A, before) {
        assert_eq!(ma, before);
    } else {
        assert_eq!(mb, before);
    }
    cut.heal();
    let all: Vec<usize> = (0..N).collect();
    let t = c
        .wait(
            "one master everywhere after healing",
            Duration::from_secs(30),
            |c| c.members_are(&all) && c.agreed_master().is_some(),
        )
        .await;
    let after = c.agreed_master().unwrap();
    println!(
        "healed: one master everywhere {} ms after removing the rules",
        t.as_millis()
    );
    assert!(
        after == ma || after == mb,
        "the winner is one of the two masters"
    );
    let loser = if after == ma { mb } else { ma };
    let li = c.nodes.iter().position(|n| n.id() == loser).unwrap();
    assert!(
        c.events_of(li).any(|e| matches!(e, Event::Demotion { .. })),
        "the losing master emitted demotion"
    );
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_with_quorum_minority_master_steps_down() {
    require_netns!();
    const NET: u8 = 8;
    // Node 5 (side B, the minority) has the highest priority, so it is the first master.
    let mut c = cluster(NET, 27390, Some(3), |h| if h == 5 { 10 } else { 0 }).await;
    make_master(&mut c, 4).await;
    let before = c.agreed_master().unwrap();
    assert_eq!(before, c.nodes[4].id(), "node 5 leads before the partition");
    let cut = Partition::new("espial_test_p8", &ips(NET, &SIDE_A), &ips(NET, &SIDE_B));
    let t = c
        .wait(
            "majority elects, minority has no master",
            Duration::from_secs(20),
            |c| {
                c.agreed_master_among(&SIDE_A)
                    .is_some_and(|m| side_of(c, &SIDE_A, m))
                    && SIDE_B.iter().all(|i| c.nodes[*i].master_id().is_none())
                    && !c.nodes[4].is_master()
            },
        )
        .await;
    println!(
        "quorum partition: minority without master, majority re-elected after {} ms",
        t.as_millis()
    );
    assert!(
        c.events_of(4).any(|e| matches!(e, Event::Demotion { .. })),
        "the minority master stepped down"
    );
    // The minority may still count the majority as live (SWIM has not removed it yet), so
    // promote() can be accepted; it must not produce a master without a quorum's votes.
    let _ = c.nodes[3].promote().await;
    let (most, overlaps) = sample_masters(&mut c, Duration::from_secs(2)).await;
    assert!(overlaps == 0 && most <= 1, "two masters at once");
    assert!(
        SIDE_B.iter().all(|i| !c.nodes[*i].is_master()),
        "promotion without quorum must not make a master"
    );
    let ma = c.agreed_master_among(&SIDE_A).unwrap();
    cut.heal();
    let all: Vec<usize> = (0..N).collect();
    let t = c
        .wait(
            "one master everywhere after healing",
            Duration::from_secs(30),
            |c| c.members_are(&all) && c.agreed_master().is_some(),
        )
        .await;
    println!(
        "quorum partition healed: one master everywhere after {} ms",
        t.as_millis()
    );
    if c.agreed_master() != Some(ma) {
        let elections: Vec<String> = c
            .log
            .iter()
            .filter(|e| matches!(e.2, Event::Promotion { .. } | Event::Demotion { .. }))
            .map(|e| format!("{} {:?}", c.nodes[e.0].node_info().name, e.2))
            .collect();
        panic!(
            "the majority's master was deposed after healing\n{}\n{}",
            c.dump(),
            elections.join("\n")
        );
    }
    c.shutdown_all().await;
}

/// Makes node `i` the agreed master. Priority is not always honoured at formation yet
/// (issue 11 item 6, open), so when another node won, `i` takes over with `promote()`.
async fn make_master(c: &mut Cluster, i: usize) {
    if c.agreed_master() == Some(c.nodes[i].id()) {
        return;
    }
    c.nodes[i]
        .promote()
        .await
        .expect("the chosen node may promote");
    c.wait("the chosen node leads", Duration::from_secs(10), |c| {
        c.agreed_master() == Some(c.nodes[i].id())
    })
    .await;
}

/// Samples every node's `is_master()` every millisecond for `d` and returns the most nodes
/// seen acting as master at one sample, and how many samples had more than one.
async fn sample_masters(c: &mut Cluster, d: Duration) -> (usize, usize) {
    let end = std::time::Instant::now() + d;
    let (mut most, mut overlaps) = (0, 0);
    while std::time::Instant::now() < end {
        let n = c.nodes.iter().filter(|n| n.is_master()).count();
        most = most.max(n);
        if n > 1 {
            overlaps += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (most, overlaps)
}

/// Issue 11 item 1, master on the majority side: the 2-node minority must not promote its
/// own master (it did at ~1.15 s before leases), and no two nodes are master at any sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_with_quorum_master_on_majority_side_minority_stays_masterless() {
    require_netns!();
    const NET: u8 = 9;
    // Node 1 (side A, the majority) has the highest priority: the first master.
    let mut c = cluster(NET, 27400, Some(3), |h| if h == 1 { 10 } else { 0 }).await;
    make_master(&mut c, 0).await;
    let before = c.agreed_master().unwrap();
    assert_eq!(before, c.nodes[0].id(), "node 1 leads before the partition");
    let cut = Partition::new("espial_test_p9", &ips(NET, &SIDE_A), &ips(NET, &SIDE_B));
    let (most, overlaps) = sample_masters(&mut c, Duration::from_secs(4)).await;
    assert_eq!(overlaps, 0, "two masters at the same sample");
    assert!(most <= 1);
    assert!(
        c.nodes[0].is_master(),
        "the majority's master kept the role"
    );
    for i in SIDE_B {
        assert!(!c.nodes[i].is_master(), "minority node {i} became master");
    }
    cut.heal();
    let all: Vec<usize> = (0..N).collect();
    c.wait(
        "one master everywhere after healing",
        Duration::from_secs(30),
        |c| c.members_are(&all) && c.agreed_master() == Some(before),
    )
    .await;
    c.shutdown_all().await;
}

/// Issue 11 item 1, master on the minority side: it steps down before the majority elects,
/// so no sample ever sees two masters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_with_quorum_master_on_minority_side_never_overlaps() {
    require_netns!();
    const NET: u8 = 10;
    let mut c = cluster(NET, 27410, Some(3), |h| if h == 5 { 10 } else { 0 }).await;
    make_master(&mut c, 4).await;
    assert_eq!(c.agreed_master(), Some(c.nodes[4].id()));
    let cut = Partition::new("espial_test_p10", &ips(NET, &SIDE_A), &ips(NET, &SIDE_B));
    let (most, overlaps) = sample_masters(&mut c, Duration::from_secs(4)).await;
    assert_eq!(overlaps, 0, "two masters at the same sample");
    assert!(most <= 1);
    assert!(
        c.agreed_master_among(&SIDE_A)
            .is_some_and(|m| side_of(&c, &SIDE_A, m)),
        "the majority elected within 4 s"
    );
    cut.heal();
    c.shutdown_all().await;
}
