//! Gap notices for a subscriber that was removed as failed and came back: the events it
//! could never see as a gap in its stream (published while it was gone, or queued for it
//! without a sequence number when it was removed) are announced to it with one
//! `MsgKind::Missed` per name, before anything sent after its return.

use super::{peer_entry, Delivery, MsgKind, Queued, GRAVEYARD};
use crate::NodeId;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

impl Delivery {
    /// The peer was removed as failed while subscribed to `subscriptions`: remembers how
    /// many events of those names were published so far, less those still `unsent` to it
    /// (what [`Delivery::peer_gone`] returned), so that on its return
    /// ([`Delivery::peer_returned`]) it is told how many it missed.
    pub fn note_departed(
        &mut self,
        peer: NodeId,
        subscriptions: &BTreeSet<String>,
        unsent: &BTreeMap<String, u64>,
    ) {
        let marks: Vec<(String, u64)> = subscriptions
            .iter()
            .map(|n| {
                let published = self.published.get(n).copied().unwrap_or(0);
                let lost = unsent.get(n).copied().unwrap_or(0);
                (n.clone(), published.saturating_sub(lost))
            })
            .collect();
        if self.departed.insert(peer, marks).is_none() {
            self.departed_order.push_back(peer);
            if self.departed_order.len() > GRAVEYARD {
                if let Some(old) = self.departed_order.pop_front() {
                    self.departed.remove(&old);
                }
            }
        }
    }

    /// A peer removed as failed is back: for each name it still subscribes to, events of
    /// that name published meanwhile (which did not go to it) are announced to it with a
    /// gap notice, in its stream before anything sent from now on.
    pub fn peer_returned(&mut self, now: Instant, peer: NodeId, subscriptions: &BTreeSet<String>) {
        let Some(marks) = self.departed.remove(&peer) else {
            return;
        };
        self.departed_order.retain(|p| *p != peer);
        for (name, mark) in marks {
            if !subscriptions.contains(&name) {
                continue;
            }
            let count = self
                .published
                .get(&name)
                .copied()
                .unwrap_or(0)
                .saturating_sub(mark);
            if count == 0 {
                continue;
            }
            let floor = self.floor_for(peer);
            let tx = &mut peer_entry(&mut self.peers, peer, floor, &self.cfg).tx;
            tx.enqueue(
                Queued {
                    send: None,
                    kind: MsgKind::Missed { name, count },
                    payload: Bytes::new(),
                },
                &self.cfg,
            );
            tx.refresh_blocked(now, &self.cfg);
            self.stats.messages_queued += 1;
        }
    }
}
