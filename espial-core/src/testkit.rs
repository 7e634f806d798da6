//! A tiny deterministic in-memory network for the core's own tests (the full simulator with
//! faults and invariants is `espial-sim`). Public so integration tests and benches can use it.

use crate::{Config, Event, Node, NodeId, NodeInfo, Output, PlaintextTestCipher};
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A scheduled datagram delivery.
#[derive(PartialEq, Eq)]
struct Pending {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// N nodes on a lossless 1 ms network, all seeded with node 0's address.
pub struct TestNet {
    /// Current virtual time.
    pub now: Instant,
    /// Start time.
    pub start: Instant,
    /// Nodes by address (`None` = crashed).
    pub nodes: BTreeMap<SocketAddr, Option<Node>>,
    /// Events per node address.
    pub events: BTreeMap<SocketAddr, Vec<Event>>,
    queue: BinaryHeap<Pending>,
    seq: u64,
    /// Link filter: `(from, to) -> delivered?`.
    pub blocked: Vec<(SocketAddr, SocketAddr)>,
    /// Latency.
    pub latency: Duration,
    /// Datagrams and bytes sent to each destination (delivered or not).
    pub sent_to: BTreeMap<SocketAddr, (u64, u64)>,
}

/// Address of test node `i`.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 27272))
}

impl TestNet {
    /// Starts `n` nodes with `config`; each is told node 0's address (node 0 is told node 1's).
    pub fn new(n: usize, config: Config) -> Self {
        let start = Instant::now();
        let mut net = TestNet {
            now: start,
            start,
            nodes: BTreeMap::new(),
            events: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            blocked: Vec::new(),
            latency: Duration::from_millis(1),
            sent_to: BTreeMap::new(),
        };
        for i in 0..n {
            net.add(i, config.clone(), NodeId((i as u128 + 1) * 0x1111));
        }
        for i in 0..n {
            let seed = if i == 0 { addr(1) } else { addr(0) };
            if n > 1 {
                net.with(addr(i), |node, now| node.handle_discovered(now, &[seed]));
            }
        }
        net
    }

    /// Adds (or restarts) node `i` with a given id.
    pub fn add(&mut self, i: usize, config: Config, id: NodeId) {
        self.add_named(i, config, id, &format!("n{i}"));
    }

    /// Adds (or restarts) node `i` with a given id and name (the admission filter of nodes
    /// with a filter refuses names starting with `reject`).
    pub fn add_named(&mut self, i: usize, config: Config, id: NodeId, name: &str) {
        let a = addr(i);
        let info = NodeInfo::new(id, name, a);
        let node = Node::new(
            config,
            info,
            Box::new(PlaintextTestCipher::for_node(id)),
            i as u64 + 7,
            self.now,
        )
        .expect("valid config");
        self.nodes.insert(a, Some(node));
        self.drain(a);
    }

    /// Runs `f` on a live node and drains its outputs.
    pub fn with<R>(&mut self, a: SocketAddr, f: impl FnOnce(&mut Node, Instant) -> R) -> Option<R> {
        let now = self.now;
        let r = self.nodes.get_mut(&a)?.as_mut().map(|n| f(n, now));
        self.drain(a);
        r
    }

    fn drain(&mut self, a: SocketAddr) {
        let Some(Some(node)) = self.nodes.get_mut(&a) else {
            return;
        };
        let mut sends = Vec::new();
        while let Some(o) = node.poll_output() {
            match o {
                Output::Transmit(t) => sends.push(t),
                Output::Event(e) => self.events.entry(a).or_default().push(e),
                Output::Admission(req) => {
                    let ok = !req.node.name.starts_with("reject");
                    let d = if ok {
                        crate::Admission::Accept
                    } else {
                        crate::Admission::Reject("name not allowed".into())
                    };
                    node.handle_admission(self.now, req.id, d);
                }
            }
        }
        // Admission answers may have produced more outputs.
        let mut again = false;
        if let Some(Some(node)) = self.nodes.get_mut(&a) {
            while let Some(o) = node.poll_output() {
                again = true;
                match o {
                    Output::Transmit(t) => sends.push(t),
                    Output::Event(e) => self.events.entry(a).or_default().push(e),
                    Output::Admission(_) => {}
                }
            }
        }
        let _ = again;
        for t in sends {
            let c = self.sent_to.entry(t.to).or_default();
            c.0 += 1;
            c.1 += t.data.len() as u64;
            if self.blocked.contains(&(a, t.to)) {
                continue;
            }
            self.seq += 1;
            self.queue.push(Pending {
                at: self.now + self.latency,
                seq: self.seq,
                from: a,
                to: t.to,
                data: t.data,
            });
        }
    }

    /// Runs until `until` (virtual).
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_dgram = self.queue.peek().map(|p| p.at);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|(a, n)| n.as_ref().and_then(|n| n.poll_timeout()).map(|t| (t, *a)))
                .min();
            let t_d = next_dgram.unwrap_or(until + Duration::from_secs(1));
            let t_t = next_timer
                .map(|x| x.0)
                .unwrap_or(until + Duration::from_secs(1));
            let t = t_d.min(t_t);
            if t > until {
                self.now = until;
                return;
            }
            self.now = t.max(self.now);
            if t_d <= t_t {
                let p = self.queue.pop().expect("peeked");
                let now = self.now;
                if let Some(Some(node)) = self.nodes.get_mut(&p.to) {
                    node.handle_datagram(now, p.from, &p.data);
                    self.drain(p.to);
                }
            } else if let Some((_, a)) = next_timer {
                let now = self.now;
                if let Some(Some(node)) = self.nodes.get_mut(&a) {
                    node.handle_timeout(now);
                }
                self.drain(a);
            }
        }
    }

    /// Runs for `d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Crashes a node (no goodbye).
    pub fn crash(&mut self, a: SocketAddr) {
        self.nodes.insert(a, None);
    }

    /// Live nodes.
    pub fn live(&self) -> impl Iterator<Item = (&SocketAddr, &Node)> {
        self.nodes
            .iter()
            .filter_map(|(a, n)| n.as_ref().map(|n| (a, n)))
    }

    /// The master every live node agrees on, if they all agree on one live master.
    pub fn agreed_master(&self) -> Option<NodeId> {
        let mut m = None;
        for (_, n) in self.live() {
            let x = n.master()?;
            if m.is_some_and(|y| y != x) {
                return None;
            }
            m = Some(x);
        }
        m
    }

    /// True when every live node sees exactly the live nodes as members.
    pub fn full_membership(&self) -> bool {
        let mut ids: Vec<NodeId> = self.live().map(|(_, n)| n.id()).collect();
        ids.sort();
        self.live()
            .all(|(_, n)| n.members().iter().map(|m| m.id).collect::<Vec<_>>() == ids)
    }

    /// Milliseconds since start.
    pub fn ms(&self) -> u128 {
        (self.now - self.start).as_millis()
    }
}
