//! The simulated application's reading of custom events (see `SimConfig::reader`): at once
//! (`Direct`), or from an inbox it reads when its reader is not paused (`Consumed`, with
//! consumption reports to the node; `LegacyListener`, the old lossy broadcast).
//!
//! An event is judged (routing, gap invariant) by what held when the node *handed it out*:
//! an event handed out while subscribed and read after the application unsubscribed was
//! correctly delivered (it waited in the application's own queue).

use crate::cluster::{ReaderModel, Sim};
use espial_core::CustomEvent;

/// A custom event the node handed to the application, with what held at that moment.
#[derive(Debug, Clone)]
pub struct Handed {
    /// The event.
    pub event: CustomEvent,
    /// The node was subscribed to the event's name.
    pub subscribed: bool,
    /// The node had been refused by the cluster (`node_rejected`, not accepted since).
    pub rejected: bool,
    /// Simulated time of the hand-out (ns).
    pub at: u64,
}

impl Sim {
    /// The node of `slot` hands a custom event to its application.
    pub(crate) fn hand_out(&mut self, slot: usize, c: &CustomEvent) {
        let handed = Handed {
            event: c.clone(),
            subscribed: self.slots[slot]
                .node
                .as_ref()
                .is_some_and(|n| n.info().subscriptions.contains(&c.name)),
            rejected: self.slots[slot].rejected,
            at: self.now().as_nanos() as u64,
        };
        if self.cfg.reader == ReaderModel::Direct {
            self.app_reads(slot, &handed);
            return;
        }
        let s = &mut self.slots[slot];
        s.app_inbox.push_back(handed);
        if let ReaderModel::LegacyListener(cap) = self.cfg.reader {
            if s.app_inbox.len() > cap {
                s.app_inbox.pop_front();
                s.app_dropped += 1;
            }
        }
    }

    /// The application of `slot` reads its inbox (unless its reader is paused) and reports
    /// what it consumed. Returns true when the node may have new outputs.
    pub(crate) fn read_app_inbox(&mut self, slot: usize) -> bool {
        let now = self.now().as_nanos() as u64;
        if self.slots[slot].app_inbox.is_empty() || now < self.slots[slot].reader_paused_until {
            return false;
        }
        let batch: Vec<Handed> = self.slots[slot].app_inbox.drain(..).collect();
        let n = batch.len();
        for h in &batch {
            self.app_reads(slot, h);
        }
        if self.cfg.reader == ReaderModel::Consumed {
            let now = self.instant();
            if let Some(node) = self.slots[slot].node.as_mut() {
                node.events_consumed(now, n);
                return true;
            }
        }
        false
    }

    /// The application of `slot` handles a custom event: answers a request, records it.
    fn app_reads(&mut self, slot: usize, h: &Handed) {
        let c = &h.event;
        if let (Some(req), true) = (c.request, h.subscribed) {
            let now_i = self.local_instant(slot);
            if let Some(node) = self.slots[slot].node.as_mut() {
                if node
                    .reply(now_i, c.from, req, bytes::Bytes::from_static(b"pong"))
                    .is_ok()
                {
                    self.events.replies_sent += 1;
                }
            }
        }
        let gen = self.slots[slot].gen;
        let problems = self
            .events
            .on_custom(slot, gen, h.at, c, h.subscribed, h.rejected);
        for p in problems {
            self.violation(format!("n{slot}: {p}"));
        }
    }
}
