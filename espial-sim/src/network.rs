//! The seeded network model: latency with jitter, loss, duplication, reordering and
//! partitions between arbitrary groups of nodes.

use espial_core::rng::Rng;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Port every simulated node listens on.
pub const SIM_PORT: u16 = 27272;

/// The fake address of the node in slot `slot`: `10.a.b.c:27272` with `a.b.c = slot + 1`.
/// Nothing ever touches a socket; the address only routes inside the simulator.
pub fn slot_addr(slot: usize) -> SocketAddr {
    let v = slot as u32 + 1;
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, (v >> 16) as u8, (v >> 8) as u8, v as u8),
        SIM_PORT,
    ))
}

/// The slot an address belongs to, if it is a simulator address.
pub fn addr_slot(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(a) if a.port() == SIM_PORT => {
            let o = a.ip().octets();
            if o[0] != 10 {
                return None;
            }
            let v = (o[1] as u32) << 16 | (o[2] as u32) << 8 | o[3] as u32;
            v.checked_sub(1).map(|s| s as usize)
        }
        _ => None,
    }
}

/// Parameters of the network model. All probabilities are in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// Mean one-way latency.
    pub latency: Duration,
    /// Uniform jitter: the latency is drawn in `latency ± jitter`.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram gets an extra delay (reordering).
    pub reorder: f64,
    /// Largest extra delay of a reordered datagram (uniform in `0..=reorder_delay`).
    pub reorder_delay: Duration,
}

impl Default for NetConfig {
    /// A LAN: 1 ms ± 0.5 ms, no loss, no duplication, no reordering.
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(500),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
        }
    }
}

/// Who can reach whom. Nodes are in numbered groups (all in group 0 when healed); a datagram
/// passes when sender and receiver share a group and the directed link is not cut.
#[derive(Debug, Clone, Default)]
pub struct Partition {
    groups: Vec<u32>,
    cut: BTreeSet<(usize, usize)>,
    /// Slots whose every outgoing datagram is dropped (one-way mute).
    muted: BTreeSet<usize>,
}

impl Partition {
    /// Whether `a` can send to `b`.
    pub fn can_reach(&self, a: usize, b: usize) -> bool {
        let g = |s: usize| self.groups.get(s).copied().unwrap_or(0);
        g(a) == g(b)
            && (self.cut.is_empty() || !self.cut.contains(&(a, b)))
            && (self.muted.is_empty() || !self.muted.contains(&a))
    }

    /// Drops every datagram `slot` sends (it still receives) until [`Partition::unmute`].
    pub fn mute(&mut self, slot: usize) {
        self.muted.insert(slot);
    }

    /// Ends a mute.
    pub fn unmute(&mut self, slot: usize) {
        self.muted.remove(&slot);
    }

    /// Restores the directed link `a → b`.
    pub fn restore_link(&mut self, a: usize, b: usize) {
        self.cut.remove(&(a, b));
    }

    /// Puts each listed slot in the group of its list's index (lists after the first are
    /// groups 1, 2, ...); unlisted slots stay in group 0 with the first list.
    pub fn split(&mut self, groups: &[Vec<usize>]) {
        self.groups.clear();
        for (g, members) in groups.iter().enumerate() {
            for &s in members {
                if self.groups.len() <= s {
                    self.groups.resize(s + 1, 0);
                }
                self.groups[s] = g as u32;
            }
        }
    }

    /// The group of a slot (0 when not partitioned).
    pub fn group(&self, slot: usize) -> u32 {
        self.groups.get(slot).copied().unwrap_or(0)
    }

    /// Cuts the directed link `a → b` (asymmetric partitions).
    pub fn cut_link(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
    }

    /// Removes every partition and cut link.
    pub fn heal(&mut self) {
        self.groups.clear();
        self.cut.clear();
        self.muted.clear();
    }

    /// True when some directed links are cut (components then need a pairwise check).
    pub fn has_cut_links(&self) -> bool {
        !self.cut.is_empty() || !self.muted.is_empty()
    }

    /// True when everyone reaches everyone.
    pub fn is_healed(&self) -> bool {
        self.cut.is_empty() && self.muted.is_empty() && self.groups.iter().all(|&g| g == 0)
    }
}

/// What the network does with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Dropped (loss or partition).
    Dropped,
    /// Delivered after each of these delays (two entries when duplicated).
    Deliver(Vec<Duration>),
}

/// The network: configuration, partition state and its own seeded random stream.
#[derive(Debug, Clone)]
pub struct Network {
    /// Current parameters (faults may change them).
    pub config: NetConfig,
    /// Current partition.
    pub partition: Partition,
    rng: Rng,
    /// Datagrams dropped by loss.
    pub lost: u64,
    /// Datagrams dropped by a partition.
    pub blocked: u64,
    /// Extra copies delivered by duplication.
    pub duplicated: u64,
}

impl Network {
    /// A network with its own random stream.
    pub fn new(config: NetConfig, seed: u64) -> Self {
        Network {
            config,
            partition: Partition::default(),
            rng: Rng::new(seed),
            lost: 0,
            blocked: 0,
            duplicated: 0,
        }
    }

    fn delay(&mut self) -> Duration {
        let c = &self.config;
        let j = c.jitter.as_nanos() as f64;
        let base = c.latency.as_nanos() as f64 + (self.rng.unit() * 2.0 - 1.0) * j;
        let mut d = Duration::from_nanos(base.max(1_000.0) as u64);
        if c.reorder > 0.0 && self.rng.unit() < c.reorder {
            let extra = c.reorder_delay.as_nanos() as f64 * self.rng.unit();
            d += Duration::from_nanos(extra as u64);
        }
        d
    }

    /// Decides the fate of a datagram from `from` to `to`.
    pub fn route(&mut self, from: usize, to: usize) -> Fate {
        if !self.partition.can_reach(from, to) {
            self.blocked += 1;
            return Fate::Dropped;
        }
        if self.config.loss > 0.0 && self.rng.unit() < self.config.loss {
            self.lost += 1;
            return Fate::Dropped;
        }
        let mut delays = vec![self.delay()];
        if self.config.duplicate > 0.0 && self.rng.unit() < self.config.duplicate {
            self.duplicated += 1;
            let d = self.delay();
            delays.push(d);
        }
        Fate::Deliver(delays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for s in [0usize, 1, 255, 256, 999, 70_000] {
            assert_eq!(addr_slot(slot_addr(s)), Some(s));
        }
        assert_eq!(addr_slot("127.0.0.1:27272".parse().unwrap()), None);
    }

    #[test]
    fn partition_groups_and_cuts() {
        let mut p = Partition::default();
        assert!(p.can_reach(0, 5));
        p.split(&[vec![0, 1], vec![2, 3]]);
        assert!(p.can_reach(0, 1) && p.can_reach(2, 3));
        assert!(!p.can_reach(1, 2) && !p.can_reach(3, 0));
        assert!(p.can_reach(0, 9), "unlisted slots are with the first group");
        p.heal();
        p.cut_link(0, 1);
        assert!(!p.can_reach(0, 1) && p.can_reach(1, 0));
    }

    #[test]
    fn latency_stays_in_bounds_and_loss_is_seeded() {
        let mut n = Network::new(NetConfig::default(), 7);
        for _ in 0..1000 {
            match n.route(0, 1) {
                Fate::Deliver(d) => {
                    assert_eq!(d.len(), 1);
                    assert!(
                        d[0] >= Duration::from_micros(500) && d[0] <= Duration::from_micros(1500)
                    );
                }
                Fate::Dropped => panic!("no loss configured"),
            }
        }
        let cfg = NetConfig {
            loss: 0.3,
            ..NetConfig::default()
        };
        let run = |seed| {
            let mut n = Network::new(cfg.clone(), seed);
            (0..2000)
                .map(|_| n.route(0, 1) == Fate::Dropped)
                .collect::<Vec<_>>()
        };
        let a = run(1);
        assert_eq!(a, run(1));
        assert_ne!(a, run(2));
        let lost = a.iter().filter(|x| **x).count();
        assert!((450..750).contains(&lost), "lost {lost} of 2000 at p=0.3");
    }
}
