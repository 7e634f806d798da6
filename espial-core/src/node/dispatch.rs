//! Incoming datagrams: decode, open, and route each message by sender status.

use super::Node;
use crate::wire::{self, Kind, Msg, Update};
use crate::NodeId;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl Node {
    pub(super) fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let (kind, body) = match wire::split_header(data, self.config.max_datagram) {
            Ok(x) => x,
            Err(_) => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        if kind == Kind::Beacon {
            // Beacons belong to the discovery layer; a node socket ignores them.
            self.stats.beacons_ignored += 1;
            return;
        }
        let mut out = Vec::new();
        let opened = self.sessions.handle(
            now,
            from,
            kind,
            body,
            &mut self.rng,
            &mut self.stats,
            &mut out,
        );
        self.push_transmits(out);
        let opened = match opened {
            Ok(o) => o,
            Err(_) => return, // counted by the session layer
        };
        let sender = opened.from;
        if sender == self.me.id {
            self.stats.non_member_dropped += 1;
            return;
        }
        for msg in opened.msgs {
            self.dispatch(now, sender, opened.addr, msg);
        }
    }

    fn dispatch(&mut self, now: Instant, from: NodeId, addr: SocketAddr, msg: Msg) {
        let member = self.members.is_live(from);
        if !member
            && self.members.get(from).is_none()
            && !matches!(
                msg,
                Msg::JoinRequest { .. } | Msg::JoinAccept { .. } | Msg::JoinReject { .. }
            )
        {
            // A node we have never heard of talks to us as a member would: our view is
            // probably stale. Pull the state from a member we trust (rate-limited).
            self.sync_soon(now);
        }
        if member && self.election.claim.map(|c| c.master) == Some(from) {
            self.probe.master_contact(now);
        }
        if member {
            // An authenticated message from a suspect is direct evidence it is alive: clear
            // our own suspicion (its incarnation bump, gossiped, clears everyone else's).
            let a = self.members.clear_suspicion(from);
            if a != crate::membership::Applied::Ignored {
                self.on_applied(now, vec![a], None);
            }
        }
        match msg {
            Msg::JoinRequest { node, attempt } => {
                self.on_join_request(now, from, addr, node, attempt)
            }
            Msg::JoinAccept { attempt, by } => self.on_join_accept(now, from, attempt, by),
            Msg::JoinReject { attempt, reason } => self.on_join_reject(from, addr, attempt, reason),
            Msg::Ping { seq } => {
                // Bare acks to non-members reveal nothing beyond liveness, which the
                // handshake already showed; members get gossip piggybacked.
                if member {
                    self.queue(from, vec![Msg::Ack { seq }]);
                } else {
                    self.queue_to(from, addr, vec![Msg::Ack { seq }], false);
                    self.notify_if_dead(now, from);
                }
            }
            Msg::Ack { seq } => self.on_ack(now, from, seq),
            Msg::Confirm { .. } | Msg::ConfirmAck => {}
            Msg::Updates(ups) if !member => {
                // From a node we do not count as a member: only a notice that *we* were
                // declared failed is acted on (by rejoining through it).
                let dead_notice = ups
                    .iter()
                    .any(|u| matches!(u, Update::Dead { id, .. } if *id == self.me.id));
                if dead_notice {
                    self.try_join(now, addr);
                } else {
                    self.stats.non_member_dropped += 1;
                }
                self.notify_if_dead(now, from);
            }
            _ if !member => {
                self.stats.non_member_dropped += 1;
                self.notify_if_dead(now, from);
            }
            Msg::PingReq { seq, target } => self.on_ping_req(now, from, seq, target),
            Msg::IndirectAck { seq, target } => self.on_indirect_ack(now, seq, target),
            Msg::Updates(ups) => {
                for u in ups {
                    let about_me_dead = matches!(u, Update::Dead { id, .. } if id == self.me.id);
                    let suspecter = match u {
                        Update::Suspect { id, by, .. } if id == self.me.id => Some(by),
                        _ => None,
                    };
                    self.apply_update(now, u, false, from);
                    if let Some(by) = suspecter {
                        // Refute straight to the suspecter too, not only by gossip.
                        let me = Update::Alive(self.me.clone());
                        self.queue(by, vec![Msg::Updates(vec![me])]);
                    }
                    if about_me_dead {
                        // Refuted by gossip where we are still a member; rejoin where not.
                        self.try_join(now, addr);
                    }
                }
            }
            Msg::State(chunk) => self.on_state(now, from, chunk),
            Msg::Heartbeat {
                claim,
                incarnation,
                members,
            } => self.on_heartbeat(now, from, claim, incarnation, members),
            Msg::Claim(c) => self.consider_claim(now, c),
            Msg::Resign(c) => self.on_resign(now, c),
            Msg::Delivery(frame) => self.delivery.handle_frame(now, from, frame),
            Msg::Nack { seq } => self.on_nack(from, seq),
        }
    }

    /// Tells a node we consider failed that it is, so it can refute and rejoin (at most
    /// once per second per node). The notice carries nothing about other members.
    fn notify_if_dead(&mut self, now: Instant, from: NodeId) {
        let Some(m) = self.members.get(from) else {
            return;
        };
        if m.state.is_live() || matches!(m.state, crate::membership::Liveness::Left { .. }) {
            return;
        }
        let (addr, inc) = (m.info.addr, m.info.incarnation);
        let last = self.join.dead_notices.get(&from).copied();
        if last.is_some_and(|t| now < t + Duration::from_secs(1)) {
            return;
        }
        self.join.dead_notices.insert(from, now);
        let notice = Update::Dead {
            id: from,
            incarnation: inc,
            by: self.me.id,
        };
        self.queue_to(from, addr, vec![Msg::Updates(vec![notice])], false);
    }
}
