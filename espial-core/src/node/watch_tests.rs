//! The master's watchers (`super::watch`): heartbeats to a bounded set, deferred votes of
//! the other members, failover beyond the watchers.

use super::watch::MASTER_WATCHERS;
use crate::testkit::TestNet;
use crate::wire::{Claim, Msg};
use crate::{Config, NodeId};
use std::net::SocketAddr;
use std::time::Duration;

const N: usize = 14;

fn addr_of(net: &TestNet, id: NodeId) -> SocketAddr {
    net.live()
        .find(|(_, n)| n.id() == id)
        .map(|(a, _)| *a)
        .unwrap()
}

fn formed(config: Config) -> (TestNet, SocketAddr) {
    let mut net = TestNet::new(N, config);
    net.run_for(Duration::from_secs(6));
    assert!(net.full_membership(), "the cluster formed");
    let m = net.agreed_master().expect("one master");
    let ma = addr_of(&net, m);
    (net, ma)
}

fn quorum(q: usize) -> Config {
    let mut c = Config::lan();
    c.quorum = Some(q);
    c
}

#[test]
fn the_master_heartbeats_only_its_best_ranked_watchers() {
    let (net, ma) = formed(Config::lan());
    let master = net.nodes[&ma].as_ref().unwrap();
    let targets = master.heartbeat_targets();
    assert_eq!(
        targets.len(),
        MASTER_WATCHERS,
        "{N} members, {MASTER_WATCHERS} watchers"
    );
    let rank = |id: NodeId| {
        let n = net.live().find(|(_, n)| n.id() == id).unwrap().1;
        (n.me.master_eligible, n.me.priority, id)
    };
    let worst_watcher = targets.iter().map(|id| rank(*id)).min().unwrap();
    for (_, n) in net.live() {
        if n.id() == master.id() {
            continue;
        }
        let watcher = targets.contains(&n.id());
        assert_eq!(
            n.watches_master(master.id()),
            watcher,
            "{} agrees with the master on whether it watches",
            n.id()
        );
        if !watcher {
            assert!(rank(n.id()) < worst_watcher, "watchers are the best-ranked");
        }
    }
}

#[test]
fn a_small_cluster_is_all_watchers() {
    let mut net = TestNet::new(MASTER_WATCHERS + 1, Config::lan());
    net.run_for(Duration::from_secs(4));
    let m = net.agreed_master().expect("one master");
    let ma = addr_of(&net, m);
    let targets = net.nodes[&ma].as_ref().unwrap().heartbeat_targets();
    assert_eq!(targets.len(), MASTER_WATCHERS);
    assert!(net.live().all(|(_, n)| n.watches_master(m)));
}

/// A non-watcher asked for its vote while its master lives probes the master and refuses;
/// once the master is gone, the same check grants the vote one probe timeout later.
#[test]
fn a_non_watcher_probes_the_master_before_it_votes() {
    let (mut net, ma) = formed(quorum(8));
    let m = net.nodes[&ma].as_ref().unwrap().id();
    let watchers = net.nodes[&ma].as_ref().unwrap().heartbeat_targets();
    let now = net.now;
    // A voter that does not watch the master and holds no lease promise to it.
    let (xa, x) = net
        .live()
        .map(|(a, n)| (*a, n))
        .find(|(_, n)| {
            n.id() != m
                && !watchers.contains(&n.id())
                && n.election.lease.promised_other(n.id(), now).is_none()
        })
        .map(|(a, n)| (a, n.id()))
        .expect("a free non-watcher");
    let (ca, c) = net
        .live()
        .find(|(a, n)| **a != xa && n.id() != m)
        .map(|(a, n)| (*a, n.id()))
        .unwrap();
    let ask = |net: &mut TestNet, term: u64| {
        let claim = Claim {
            majority: true,
            term,
            priority: 0,
            master: c,
        };
        net.with(ca, |n, now| {
            n.queue(
                x,
                vec![Msg::VoteRequest {
                    claim,
                    attempt: 1,
                    force: false,
                }],
            );
            n.flush(now);
        });
    };
    let term = net.nodes[&xa].as_ref().unwrap().max_term() + 1;
    ask(&mut net, term);
    net.run_for(Duration::from_millis(400));
    let xn = net.nodes[&xa].as_ref().unwrap();
    assert_eq!(
        xn.stats().votes_deferred,
        1,
        "the request waited for a check"
    );
    assert!(
        xn.election.lease.voted_term < term,
        "the master answered the check: the vote is refused"
    );
    assert_eq!(xn.master(), Some(m));

    // The master is gone: the same question, asked once the last contact is older than
    // `master_timeout`, is granted after the check times out.
    net.crash(ma);
    net.run_for(Duration::from_millis(600));
    ask(&mut net, term + 1);
    net.run_for(Duration::from_millis(400));
    let xn = net.nodes[&xa].as_ref().unwrap();
    assert_eq!(xn.stats().votes_deferred, 2);
    assert_eq!(
        xn.election.lease.voted_term,
        term + 1,
        "granted without a master"
    );
    assert_eq!(xn.election.lease.voted_for, Some(c));
}

/// Failover does not need every member to watch the master: the watchers detect the crash
/// and the best-ranked of them takes over, in either mode.
#[test]
fn failover_beyond_the_watchers_stays_fast() {
    for config in [Config::lan(), quorum(8)] {
        let (mut net, ma) = formed(config);
        let m = net.nodes[&ma].as_ref().unwrap().id();
        net.crash(ma);
        let crashed = net.now;
        let mut new = None;
        while net.now < crashed + Duration::from_secs(3) {
            net.run_for(Duration::from_millis(10));
            if let Some(x) = net.agreed_master().filter(|x| *x != m) {
                new = Some(x);
                break;
            }
        }
        let took = net.now - crashed;
        assert!(new.is_some(), "a new master within 3 s");
        assert!(
            took <= Duration::from_millis(1500),
            "failover took {took:?}"
        );
    }
}
