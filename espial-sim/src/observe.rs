//! What the simulator does with each event a node emits: the bookkeeping behind the
//! invariants (acceptance, membership by events, masters by events, removals of healthy
//! nodes, sends and their outcomes, gap notices) and the trace line it writes.

use crate::cluster::*;
use espial_core::Event;

impl Sim {
    pub(crate) fn on_event(&mut self, slot: usize, e: Event) {
        let now = self.now;
        if self.cfg.keep_trace || !matches!(e, Event::Custom(_)) {
            self.trace.event(now, slot, &describe(&e));
        } else {
            self.trace.event(now, slot, e.name());
        }
        self.counters.on_event(&e);
        if let Some(mut adv) = self.adversary.take() {
            adv.check_event(self, slot, &e);
            self.adversary = Some(adv);
        }
        match &e {
            Event::Accepted { .. } => {
                // A refusal can be temporary (quorum mode full): accepted later, it counts.
                self.slots[slot].accepted = true;
                self.slots[slot].rejected = false;
            }
            // A refusal because quorum mode is full is temporary (the node retries and is
            // expected in the cluster once a crashed member is removed); others are final.
            Event::Rejected { reason, .. } if !reason.starts_with("quorum mode is full") => {
                self.slots[slot].rejected = true
            }
            Event::NodeAdded { .. } => {
                // Part of a cluster after all (e.g. another node joined through it).
                self.slots[slot].rejected = false;
                self.slots[slot].members_by_events += 1;
            }
            Event::NodeRemoved { node, reason } => {
                let s = &mut self.slots[slot];
                s.members_by_events = s.members_by_events.saturating_sub(1);
                if let Some(victim) = self.by_id.get(&node.id).copied() {
                    let v = &self.slots[victim];
                    if v.id == node.id && v.state == SlotState::Running && v.node.is_some() {
                        if *reason == espial_core::RemovalReason::Failed
                            && !v.rejected
                            && self.health.healthy(slot, now)
                            && self.health.healthy(victim, now)
                        {
                            self.health.false_removals += 1;
                            self.violation(format!(
                                "healthy n{slot} removed healthy n{victim} as failed (no fault on either within {} ms)",
                                self.health.window / 1_000_000
                            ));
                        }
                        self.counters.live_removed += 1;
                        if self.counters.live_removed_examples.len() < 10 {
                            self.counters.live_removed_examples.push(format!(
                                "t={:.1}ms n{slot} removed live n{victim}",
                                now as f64 / 1e6
                            ));
                        }
                    }
                }
            }
            Event::Promotion { .. } => {
                if self.slots[slot].master_by_events {
                    self.violation(format!("n{slot}: promotion while already master"));
                }
                self.slots[slot].master_by_events = true;
            }
            Event::Demotion { .. } => {
                if !self.slots[slot].master_by_events {
                    self.violation(format!("n{slot}: demotion while not master"));
                }
                self.slots[slot].master_by_events = false;
            }
            Event::Custom(c) => self.hand_out(slot, c),
            Event::EventsMissed { from, count, .. } => {
                let gen = self.slots[slot].gen;
                self.events.on_missed(slot, gen, *from, *count);
            }
            Event::SendOutcome(o) => {
                let gen = self.slots[slot].gen;
                let problems = self.events.on_outcome(slot, gen, o.clone(), &self.by_id);
                for p in problems {
                    self.violation(format!("n{slot}: {p}"));
                }
            }
            Event::Reply { .. } => self.events.replies_received += 1,
            Event::RequestDone { .. } => self.events.requests_done += 1,
            _ => {}
        }
    }
}

/// A short readable description of an event for the trace.
pub fn describe(e: &Event) -> String {
    match e {
        Event::Listening { node } => format!("listening {}", node.id.short()),
        Event::NodeAdded { node } => format!("added {}", node.id.short()),
        Event::NodeUpdated { node } => {
            format!("updated {} inc={}", node.id.short(), node.incarnation)
        }
        Event::NodeRemoved { node, reason } => {
            format!("removed {} {}", node.id.short(), reason.as_str())
        }
        Event::Accepted { by } => format!("accepted by {}", by.id.short()),
        Event::Rejected { reason, .. } => format!("rejected {reason}"),
        Event::NewMaster { master, term, .. } => format!("new_master {} t{term}", master.short()),
        Event::Promotion { previous, term } => {
            format!("promotion t{term} prev={:?}", previous.map(|p| p.short()))
        }
        Event::Demotion { new_master, term } => {
            format!("demotion t{term} new={:?}", new_master.map(|p| p.short()))
        }
        Event::NoMaster { previous } => format!("no_master prev={}", previous.short()),
        Event::Custom(c) => format!(
            "custom {} from {} len={}",
            c.name,
            c.from.short(),
            c.data.len()
        ),
        Event::SendOutcome(o) => format!(
            "outcome {} ok={} failed={}",
            o.send.0,
            o.delivered.len(),
            o.failed.len()
        ),
        Event::Reply { request, from, .. } => format!("reply {} from {}", request.0, from.short()),
        Event::RequestDone {
            request,
            answered,
            missing,
        } => format!(
            "request_done {} answered={} missing={}",
            request.0,
            answered.len(),
            missing.len()
        ),
        Event::HandshakeFailed { addr, reason } => format!("handshake_failed {addr} {reason}"),
        Event::EventsMissed { from, name, count } => format!(
            "events_missed {count} from {} ({})",
            from.short(),
            name.as_deref().unwrap_or("-")
        ),
        // Event is #[non_exhaustive]: a kind without its own line is named.
        _ => e.name().to_string(),
    }
}
