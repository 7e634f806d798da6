//! The queue of membership updates waiting to be piggybacked or gossiped.

use crate::wire::{msg_size, Msg, Update};
use crate::NodeId;

struct Item {
    update: Update,
    size: usize,
    sent: u32,
}

/// Updates to disseminate; each is sent a limited number of times, fewest-sent first, and
/// a newer update about the same member replaces the older one.
#[derive(Default)]
pub struct Broadcasts {
    items: Vec<Item>,
}

impl Broadcasts {
    /// Queues an update, replacing any pending one about the same member.
    pub fn push(&mut self, update: Update) {
        let subject = update.subject();
        self.items.retain(|i| i.update.subject() != subject);
        let size = msg_size(&Msg::Updates(vec![update.clone()]));
        self.items.push(Item {
            update,
            size,
            sent: 0,
        });
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Number of pending updates.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Takes updates fitting in `budget` bytes (fewest-sent first), counting one transmission
    /// each, dropping those sent `limit` times. `exclude` is the receiver: its own `Alive`
    /// entry is not sent back to it (suspicions are, so it can refute them).
    pub fn take(&mut self, budget: usize, limit: u32, exclude: Option<NodeId>) -> Vec<Update> {
        if self.items.is_empty() || budget < 8 {
            return Vec::new();
        }
        self.items.sort_by_key(|i| i.sent);
        let mut used = 4;
        let mut out = Vec::new();
        for item in self.items.iter_mut() {
            if exclude == Some(item.update.subject()) && matches!(item.update, Update::Alive(_)) {
                continue;
            }
            if used + item.size > budget {
                continue;
            }
            used += item.size;
            item.sent += 1;
            out.push(item.update.clone());
        }
        self.items.retain(|i| i.sent < limit);
        out
    }
}
