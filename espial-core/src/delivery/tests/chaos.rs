//! Property: random interleavings of sends, crashes (with `peer_gone` at the survivors),
//! restarts under the same node id, unsubscriptions, partitions that heal, and network
//! faults. Invariants:
//! - every receiver incarnation gets each sender incarnation's messages at most once and
//!   in send order (a restarted node is a new sender);
//! - every send of a sender that stayed up reports every target exactly once;
//! - a target reported `delivered` by a sender that stayed up received the message, when
//!   the target stayed up too;
//! - between two nodes that stayed up, every message of a name the target never
//!   unsubscribed from is delivered.

use super::harness::{id, idx, Faults, Net};
use super::{check_payload, payload};
use crate::delivery::DeliveryConfig;
use crate::{Event, SendError};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const NAMES: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone)]
enum Op {
    Send {
        from: usize,
        mask: u16,
        name: usize,
        len: usize,
        count: usize,
    },
    Wait {
        ms: u16,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    Unsubscribe {
        node: usize,
        name: usize,
    },
    Cut {
        a: usize,
        b: usize,
    },
    HealAll,
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..n, any::<u16>(), 0..2usize, prop_oneof![4 => 8usize..200, 1 => 200usize..5000], 1usize..12)
            .prop_map(|(from, mask, name, len, count)| Op::Send { from, mask, name, len, count }),
        4 => (0u16..200).prop_map(|ms| Op::Wait { ms }),
        1 => (0..n).prop_map(|node| Op::Crash { node }),
        1 => (0..n).prop_map(|node| Op::Restart { node }),
        1 => (0..n, 0..2usize).prop_map(|(node, name)| Op::Unsubscribe { node, name }),
        1 => (0..n, 0..n).prop_map(|(a, b)| Op::Cut { a, b }),
        1 => Just(Op::HealAll),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, f64, f64, u64, u64)> {
    (3usize..=6).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(op(n), 1..60),
            0.0f64..0.3,
            0.0f64..0.1,
            0u64..3000,
            any::<u64>(),
        )
    })
}

#[derive(Default)]
struct World {
    /// Incarnation of each node (bumped on restart).
    inc: Vec<u32>,
    crashed_ever: Vec<bool>,
    /// subscribed[node][name]
    subscribed: Vec<[bool; 2]>,
    unsubscribed_ever: Vec<[bool; 2]>,
    /// k -> (sender, targets, name)
    sent: BTreeMap<u32, (usize, Vec<usize>, usize)>,
    /// k -> sender incarnation
    sent_inc: BTreeMap<u32, u32>,
    /// SendId per sender: send id -> k
    ids: Vec<BTreeMap<u64, u32>>,
}

fn run(n: usize, ops: Vec<Op>, faults: Faults, seed: u64) {
    let mut net = Net::new(n, DeliveryConfig::default(), faults, seed);
    let mut w = World {
        inc: vec![0; n],
        crashed_ever: vec![false; n],
        subscribed: vec![[true; 2]; n],
        unsubscribed_ever: vec![[false; 2]; n],
        ids: vec![BTreeMap::new(); n],
        ..World::default()
    };
    // Events per (node, incarnation), collected before a restart wipes them.
    let mut log: BTreeMap<(usize, u32), Vec<Event>> = BTreeMap::new();
    let mut k: u32 = 0;
    for o in ops {
        match o {
            Op::Send {
                from,
                mask,
                name,
                len,
                count,
            } => {
                if !net.up[from] {
                    continue;
                }
                for _ in 0..count {
                    // Like the node: only live subscribers.
                    let targets: Vec<usize> = (0..n)
                        .filter(|t| *t != from && mask & (1 << t) != 0)
                        .filter(|t| net.up[*t] && w.subscribed[*t][name])
                        .collect();
                    let ids: Vec<_> = targets.iter().map(|t| id(*t)).collect();
                    let r = net.nodes[from].send(
                        net.now,
                        NAMES[name],
                        payload(from, k, len),
                        &ids,
                        None,
                    );
                    match r {
                        Ok(sid) => {
                            w.ids[from].insert(sid.0 + ((w.inc[from] as u64) << 40), k);
                            w.sent.insert(k, (from, targets, name));
                            w.sent_inc.insert(k, w.inc[from]);
                            k += 1;
                        }
                        Err(SendError::Backpressure(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                net.flush(from);
            }
            Op::Wait { ms } => net.run_for(Duration::from_millis(ms as u64)),
            Op::Crash { node } => {
                if !net.up[node] {
                    continue;
                }
                net.up[node] = false;
                w.crashed_ever[node] = true;
                for i in 0..n {
                    if i != node && net.up[i] {
                        net.nodes[i].peer_gone(net.now, id(node));
                        net.flush(i);
                    }
                }
            }
            Op::Restart { node } => {
                if net.up[node] {
                    continue;
                }
                log.entry((node, w.inc[node]))
                    .or_default()
                    .append(&mut net.events[node]);
                w.inc[node] += 1;
                net.restart(node, seed ^ (node as u64) << 32 ^ w.inc[node] as u64);
                net.up[node] = true;
                w.subscribed[node] = [true; 2];
            }
            Op::Unsubscribe { node, name } => {
                if !net.up[node] || !w.subscribed[node][name] {
                    continue;
                }
                w.subscribed[node][name] = false;
                w.unsubscribed_ever[node][name] = true;
                for i in 0..n {
                    if i != node && net.up[i] {
                        net.nodes[i].peer_unsubscribed(net.now, id(node), NAMES[name]);
                        net.flush(i);
                    }
                }
            }
            Op::Cut { a, b } => {
                if a != b {
                    net.cut[a][b] = true;
                    net.cut[b][a] = true;
                }
            }
            Op::HealAll => {
                for row in net.cut.iter_mut() {
                    row.iter_mut().for_each(|c| *c = false);
                }
            }
        }
    }
    for row in net.cut.iter_mut() {
        row.iter_mut().for_each(|c| *c = false);
    }
    net.run_until(Duration::from_secs(600), |n| n.quiet());
    for node in 0..n {
        log.entry((node, w.inc[node]))
            .or_default()
            .append(&mut net.events[node]);
    }

    // At most once, in order, per (receiver incarnation, sender).
    let mut got: BTreeMap<(usize, usize), Vec<u32>> = BTreeMap::new(); // (receiver, sender) -> ks
    for ((r, _inc), events) in &log {
        // Per sender incarnation: a restarted node is a new sender.
        let mut last: BTreeMap<(usize, u32), Vec<u32>> = BTreeMap::new();
        for e in events {
            if let Event::Custom(c) = e {
                let (s, kk) = check_payload(&c.data);
                assert_eq!(id(s), c.from);
                let (from, targets, name) = &w.sent[&kk];
                assert_eq!(*from, s);
                assert!(targets.contains(r), "misrouted {kk} to {r}");
                assert_eq!(c.name, NAMES[*name]);
                let seen = last.entry((s, w.sent_inc[&kk])).or_default();
                assert!(
                    seen.last().is_none_or(|p| *p < kk),
                    "receiver {r} got {kk} from {s} after {seen:?}"
                );
                seen.push(kk);
                got.entry((*r, s)).or_default().push(kk);
            }
        }
    }
    for s in 0..n {
        if w.crashed_ever[s] {
            continue;
        }
        let empty = Vec::new();
        let outcomes: Vec<_> = log
            .get(&(s, 0))
            .unwrap_or(&empty)
            .iter()
            .filter_map(|e| match e {
                Event::SendOutcome(o) => Some(o.clone()),
                _ => None,
            })
            .collect();
        let mut reported = BTreeSet::new();
        for o in &outcomes {
            let kk = w.ids[s][&o.send.0];
            assert!(reported.insert(kk), "two outcomes for {kk}");
            let (_, targets, _) = &w.sent[&kk];
            let mut all: Vec<usize> = o
                .delivered
                .iter()
                .chain(&o.failed)
                .map(|t| idx(*t))
                .collect();
            all.sort();
            assert_eq!(&all, targets, "outcome of {kk} covers its targets once");
            for t in &o.delivered {
                let t = idx(*t);
                if !w.crashed_ever[t] {
                    assert!(
                        got.get(&(t, s)).is_some_and(|v| v.contains(&kk)),
                        "{kk} reported delivered to {t} but not received"
                    );
                }
            }
        }
        let mine = w.sent.values().filter(|(f, _, _)| *f == s).count();
        assert_eq!(reported.len(), mine, "every send of {s} has an outcome");
        for (kk, (_, targets, name)) in w.sent.iter().filter(|(_, v)| v.0 == s) {
            for t in targets {
                if !w.crashed_ever[*t] && !w.unsubscribed_ever[*t][*name] {
                    assert!(
                        got.get(&(*t, s)).is_some_and(|v| v.contains(kk)),
                        "{kk} from {s} never reached {t}"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn crashes_restarts_unsubscribes_partitions_keep_the_invariants(
        (n, ops, loss, dup, jitter, seed) in scenario()
    ) {
        let faults = Faults {
            loss,
            dup,
            latency: Duration::from_micros(300),
            jitter: Duration::from_micros(jitter),
        };
        run(n, ops, faults, seed);
    }
}
