//! The responder's half-open handshakes: answered Hellos whose initiator has not yet proven
//! its key (with the `Confirm` record). Bounded and expiring: entries live `ttl`, each class
//! (cookie-verified or not) holds at most `cap` entries and one claimed id at most
//! [`MAX_PER_ID`]; the oldest entry of the class is evicted first. Established sessions live
//! elsewhere and are never evicted for half-open ones.

use super::Keys;
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Half-open entries per claimed id (several retries with fresh attempts may overlap).
pub const MAX_PER_ID: usize = 4;

/// One answered Hello.
pub(super) struct HalfOpen {
    /// Where the Hello came from (the only address its HelloAck is ever resent to).
    pub addr: SocketAddr,
    /// The initiator's share (a Hello with the same attempt and share is a duplicate).
    pub share: Vec<u8>,
    /// The session keys, used once the initiator's Confirm proves its identity.
    pub keys: Keys,
    /// The HelloAck datagram, for duplicates.
    pub ack: Vec<u8>,
    /// Times the HelloAck was resent for duplicates.
    pub resends: u32,
    /// When the Hello was answered.
    pub created: Instant,
    /// Whether the Hello carried a valid cookie.
    pub verified: bool,
}

type Key = (NodeId, u64);

/// The half-open table.
pub(super) struct HalfOpenTable {
    map: BTreeMap<Key, HalfOpen>,
    /// Age order per class: `[unverified, verified]`.
    order: [BTreeSet<(Instant, NodeId, u64)>; 2],
    cap: usize,
    ttl: Duration,
}

impl HalfOpenTable {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        HalfOpenTable {
            map: BTreeMap::new(),
            order: [BTreeSet::new(), BTreeSet::new()],
            cap: cap.max(1),
            ttl,
        }
    }

    /// Entries of a class.
    pub fn count(&self, verified: bool) -> usize {
        self.order[verified as usize].len()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get_mut(&mut self, id: NodeId, attempt: u64) -> Option<&mut HalfOpen> {
        self.map.get_mut(&(id, attempt))
    }

    /// The attempt of `id`'s half-open session with key epoch `epoch`.
    pub fn find_epoch(&self, id: NodeId, epoch: u32) -> Option<u64> {
        self.map
            .range((id, 0)..=(id, u64::MAX))
            .find(|(_, h)| h.keys.epoch == epoch)
            .map(|((_, a), _)| *a)
    }

    /// Inserts an entry, evicting the oldest of its class (or of its id) to stay bounded.
    /// Returns how many entries were evicted.
    pub fn insert(&mut self, id: NodeId, attempt: u64, h: HalfOpen) -> usize {
        let mut evicted = 0;
        self.remove(id, attempt);
        let same_id: Vec<(Instant, u64)> = self
            .map
            .range((id, 0)..=(id, u64::MAX))
            .map(|((_, a), h)| (h.created, *a))
            .collect();
        if same_id.len() >= MAX_PER_ID {
            if let Some((_, a)) = same_id.iter().min() {
                self.remove(id, *a);
                evicted += 1;
            }
        }
        let class = h.verified as usize;
        while self.order[class].len() >= self.cap {
            let Some(&(_, oid, oa)) = self.order[class].iter().next() else {
                break;
            };
            self.remove(oid, oa);
            evicted += 1;
        }
        self.order[class].insert((h.created, id, attempt));
        self.map.insert((id, attempt), h);
        evicted
    }

    pub fn remove(&mut self, id: NodeId, attempt: u64) -> Option<HalfOpen> {
        let h = self.map.remove(&(id, attempt))?;
        self.order[h.verified as usize].remove(&(h.created, id, attempt));
        Some(h)
    }

    /// Removes every entry of `id`.
    pub fn remove_id(&mut self, id: NodeId) {
        let keys: Vec<u64> = self
            .map
            .range((id, 0)..=(id, u64::MAX))
            .map(|((_, a), _)| *a)
            .collect();
        for a in keys {
            self.remove(id, a);
        }
    }

    /// Drops entries older than the ttl; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for class in 0..2 {
            while let Some(&(t, id, a)) = self.order[class].iter().next() {
                if t + self.ttl > now {
                    break;
                }
                self.remove(id, a);
                n += 1;
            }
        }
        n
    }

    /// When the oldest entry expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.order
            .iter()
            .filter_map(|o| o.iter().next().map(|(t, _, _)| *t + self.ttl))
            .min()
    }
}
