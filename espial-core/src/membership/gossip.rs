//! The queue of membership updates waiting to be piggybacked or gossiped.

use crate::wire::{msg_size, Msg, Update};
use crate::NodeId;
use std::collections::BTreeMap;

/// Items scanned per `take` before giving up on filling the remaining room.
const MAX_SCAN: usize = 64;

struct Item {
    update: Update,
    size: usize,
}

/// Updates to disseminate; each is sent a limited number of times, fewest-sent first (newest
/// first among equals), and a newer update about the same member replaces the older one.
/// `push` and `take` cost O(log n) per update touched, whatever the queue length.
#[derive(Default)]
pub struct Broadcasts {
    /// Ordered by (times sent, reversed sequence).
    order: BTreeMap<(u32, u64), Item>,
    by_subject: BTreeMap<NodeId, (u32, u64)>,
    seq: u64,
}

impl Broadcasts {
    /// Queues an update, replacing any pending one about the same member.
    pub fn push(&mut self, update: Update) {
        let subject = update.subject();
        if let Some(key) = self.by_subject.remove(&subject) {
            self.order.remove(&key);
        }
        self.seq += 1;
        let key = (0, u64::MAX - self.seq);
        let size = msg_size(&Msg::Updates(vec![update.clone()]));
        self.order.insert(key, Item { update, size });
        self.by_subject.insert(subject, key);
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Number of pending updates.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The pending update about `subject`, if any.
    #[cfg(test)]
    pub fn pending(&self, subject: NodeId) -> Option<&Update> {
        let key = self.by_subject.get(&subject)?;
        self.order.get(key).map(|i| &i.update)
    }

    /// Takes updates fitting in `budget` bytes (fewest-sent first), counting one transmission
    /// each, dropping those sent `limit` times. `exclude` is the receiver: its own `Alive`
    /// entry is not sent back to it (suspicions are, so it can refute them).
    pub fn take(&mut self, budget: usize, limit: u32, exclude: Option<NodeId>) -> Vec<Update> {
        if self.order.is_empty() || budget < 8 {
            return Vec::new();
        }
        let mut used = 4;
        let mut picked = Vec::new();
        for (key, item) in self.order.iter().take(MAX_SCAN) {
            if exclude == Some(item.update.subject()) && matches!(item.update, Update::Alive(_)) {
                continue;
            }
            if used + item.size > budget {
                continue;
            }
            used += item.size;
            picked.push(*key);
            if budget - used < 24 {
                break;
            }
        }
        let mut out = Vec::with_capacity(picked.len());
        for key in picked {
            let Some(item) = self.order.remove(&key) else {
                continue;
            };
            let subject = item.update.subject();
            out.push(item.update.clone());
            let sent = key.0 + 1;
            if sent < limit {
                let k = (sent, key.1);
                self.order.insert(k, item);
                self.by_subject.insert(subject, k);
            } else {
                self.by_subject.remove(&subject);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(i: u128) -> Update {
        Update::Left {
            id: NodeId(i),
            incarnation: 0,
            signature: vec![],
        }
    }

    #[test]
    fn newer_update_replaces_older_and_limit_drops() {
        let mut b = Broadcasts::default();
        b.push(left(1));
        b.push(Update::Dead {
            id: NodeId(1),
            incarnation: 3,
            by: NodeId(9),
        });
        assert_eq!(b.len(), 1);
        for _ in 0..3 {
            assert_eq!(b.take(1000, 3, None).len(), 1);
        }
        assert!(b.is_empty());
    }

    #[test]
    fn fewest_sent_first_and_budget_respected() {
        let mut b = Broadcasts::default();
        for i in 0..100 {
            b.push(left(i));
        }
        let first = b.take(200, 10, None);
        assert!(!first.is_empty() && first.len() < 100);
        let size: usize = first
            .iter()
            .map(|u| msg_size(&Msg::Updates(vec![u.clone()])))
            .sum();
        assert!(size <= 200);
        let second = b.take(200, 10, None);
        for u in &second {
            assert!(!first.contains(u), "unsent updates go before resent ones");
        }
    }
}
