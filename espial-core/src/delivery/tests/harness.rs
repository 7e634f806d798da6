//! A small deterministic network for delivery engines: virtual time, seeded loss,
//! duplication and reordering, frames carried through the real wire codec.
//!
//! Datagram accounting (the efficiency figure): the harness packs frames the way the node
//! does. After every input a node is flushed: each `poll_transmit(now, budget)` starts a new
//! datagram to its peer, whose leftover room is filled with `poll_transmit_to` for the same
//! peer; the datagram is `wire::encode_msgs` of those `Msg::Delivery` frames and its
//! messages never exceed `budget` bytes. Every such datagram, data or ack, from any node,
//! counts once in `datagrams`.

use crate::delivery::{Delivery, DeliveryConfig, Frame};
use crate::rng::Rng;
use crate::wire::{decode_msgs, encode_msgs, msg_size, Msg};
use crate::{Event, NodeId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

/// Fault model of the network.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    pub latency: Duration,
    pub jitter: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            loss: 0.0,
            dup: 0.0,
            latency: Duration::from_micros(200),
            jitter: Duration::ZERO,
        }
    }
}

pub fn id(i: usize) -> NodeId {
    NodeId(i as u128 + 1)
}

pub fn idx(id: NodeId) -> usize {
    id.0 as usize - 1
}

pub struct Net {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Delivery>,
    /// A node that is down neither receives nor is flushed.
    pub up: Vec<bool>,
    /// Directed links that drop everything: `cut[from][to]`.
    pub cut: Vec<Vec<bool>>,
    pub faults: Faults,
    pub budget: usize,
    pub events: Vec<Vec<Event>>,
    pub datagrams: u64,
    pub frames: u64,
    pub bytes: u64,
    rng: Rng,
    order: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    in_flight: BTreeMap<u64, (usize, usize, Vec<u8>)>,
    /// Nodes that answer every request they receive (reply payload = request payload).
    pub auto_reply: Vec<bool>,
}

impl Net {
    pub fn new(n: usize, cfg: DeliveryConfig, faults: Faults, seed: u64) -> Self {
        let start = Instant::now();
        let budget = cfg.max_frame;
        Net {
            start,
            now: start,
            nodes: (0..n)
                .map(|i| Delivery::new(cfg.clone(), id(i), seed.wrapping_mul(31) + i as u64))
                .collect(),
            up: vec![true; n],
            cut: vec![vec![false; n]; n],
            faults,
            budget,
            events: vec![Vec::new(); n],
            datagrams: 0,
            frames: 0,
            bytes: 0,
            rng: Rng::new(seed),
            order: 0,
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            auto_reply: vec![false; n],
        }
    }

    /// Replaces node `i` by a fresh engine (a restart under the same node id).
    pub fn restart(&mut self, i: usize, seed: u64) {
        let cfg = self.nodes[i].config().clone();
        self.nodes[i] = Delivery::new(cfg, id(i), seed);
        self.events[i].clear();
    }

    fn schedule(&mut self, from: usize, to: usize, data: Vec<u8>) {
        if to >= self.nodes.len() {
            return; // a made-up peer
        }
        let mut copies = 1;
        if self.rng.unit() < self.faults.dup {
            copies = 2;
        }
        for _ in 0..copies {
            if self.rng.unit() < self.faults.loss || self.cut[from][to] {
                continue;
            }
            let jitter = self.faults.jitter.mul_f64(self.rng.unit());
            let at = self.now + self.faults.latency + jitter;
            self.order += 1;
            self.queue.push(Reverse((at, self.order)));
            self.in_flight.insert(self.order, (from, to, data.clone()));
        }
    }

    /// Drains node `i`'s transmissions (packing frames per datagram) and events; replies
    /// of an auto-replying node go out in the same flush.
    pub fn flush(&mut self, i: usize) {
        if !self.up[i] {
            return;
        }
        for _ in 0..3 {
            self.transmit(i);
            let mut replied = false;
            while let Some(e) = self.nodes[i].poll_event() {
                if let Event::Custom(c) = &e {
                    if let (Some(r), true) = (c.request, self.auto_reply[i]) {
                        replied |= self.nodes[i]
                            .reply(self.now, c.from, r, c.data.clone())
                            .is_ok();
                    }
                }
                self.events[i].push(e);
            }
            if !replied {
                break;
            }
        }
    }

    fn transmit(&mut self, i: usize) {
        let now = self.now;
        let budget = self.budget;
        for _ in 0..1_000_000 {
            let Some((to, frame)) = self.nodes[i].poll_transmit(now, budget) else {
                return;
            };
            let mut msgs = vec![Msg::Delivery(frame)];
            let mut used = msg_size(&msgs[0]);
            assert!(used <= budget, "frame of {used} bytes over budget {budget}");
            while let Some(f) = self.nodes[i].poll_transmit_to(now, to, budget - used) {
                let m = Msg::Delivery(f);
                let s = msg_size(&m);
                assert!(used + s <= budget, "packed frame over budget");
                used += s;
                msgs.push(m);
            }
            self.frames += msgs.len() as u64;
            let data = encode_msgs(&msgs);
            self.datagrams += 1;
            self.bytes += data.len() as u64;
            self.schedule(i, idx(to), data);
        }
        panic!("poll_transmit never returned None");
    }

    pub fn flush_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.flush(i);
        }
    }

    /// Delivers one datagram to its node and flushes the node.
    fn deliver(&mut self, from: usize, to: usize, data: &[u8]) {
        if !self.up[to] {
            return;
        }
        let msgs = decode_msgs(data).expect("our own datagrams decode");
        for m in msgs {
            if let Msg::Delivery(f) = m {
                self.nodes[to].handle_frame(self.now, id(from), f);
            }
        }
        self.flush(to);
    }

    /// Feeds a frame directly (no codec, no faults).
    pub fn inject(&mut self, from: NodeId, to: usize, frame: Frame) {
        self.nodes[to].handle_frame(self.now, from, frame);
        self.flush(to);
    }

    /// Advances to the next datagram or timer. Returns false when nothing is pending.
    pub fn step(&mut self) -> bool {
        let mut next = self.queue.peek().map(|Reverse((t, _))| *t);
        for (i, n) in self.nodes.iter().enumerate() {
            if !self.up[i] {
                continue;
            }
            if let Some(t) = n.poll_timeout() {
                next = Some(next.map_or(t, |x| x.min(t)));
            }
        }
        let Some(t) = next else {
            return false;
        };
        self.now = self.now.max(t);
        while let Some(Reverse((t, o))) = self.queue.peek().copied() {
            if t > self.now {
                break;
            }
            self.queue.pop();
            if let Some((from, to, data)) = self.in_flight.remove(&o) {
                self.deliver(from, to, &data);
            }
        }
        for i in 0..self.nodes.len() {
            if !self.up[i] {
                continue;
            }
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.nodes[i].handle_timeout(self.now);
                self.flush(i);
            }
        }
        true
    }

    /// Steps until `done` holds; panics past `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) {
        let deadline = self.now + limit;
        for _ in 0..10_000_000u64 {
            if done(self) {
                return;
            }
            assert!(
                self.now <= deadline,
                "condition not reached within {limit:?} of virtual time"
            );
            if !self.step() {
                assert!(done(self), "network idle before the condition held");
                return;
            }
        }
        panic!("step limit reached");
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..10_000_000u64 {
            let next = self.queue.peek().map(|Reverse((t, _))| *t);
            let timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| self.up[*i])
                .filter_map(|(_, n)| n.poll_timeout())
                .min();
            let t = match (next, timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if t > end {
                break;
            }
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Every node is idle (no sends open, nothing queued or owed) and nothing is on the wire.
    pub fn quiet(&self) -> bool {
        self.queue.is_empty()
            && self
                .nodes
                .iter()
                .enumerate()
                .all(|(i, n)| !self.up[i] || n.is_idle())
    }

    /// Custom events received by node `i` from node `from`, as payloads.
    pub fn received(&self, i: usize, from: usize) -> Vec<bytes::Bytes> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::Custom(c) if c.from == id(from) => Some(c.data.clone()),
                _ => None,
            })
            .collect()
    }

    /// Send outcomes reported at node `i`.
    pub fn outcomes(&self, i: usize) -> Vec<crate::SendOutcome> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::SendOutcome(o) => Some(o.clone()),
                _ => None,
            })
            .collect()
    }
}
