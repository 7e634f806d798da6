//! Incoming datagrams: decode, open, and route each message by sender status.

use super::Node;
use crate::session::Drop;
use crate::wire::{self, Kind, Msg, Update};
use crate::Event;
use crate::NodeId;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

impl Node {
    /// Reports operator-fixable handshake failures (each address once) as events.
    fn emit_handshake_failures(&mut self) {
        for (addr, reason) in self.sessions.take_failures() {
            self.emit(Event::HandshakeFailed { addr, reason });
        }
    }

    pub(super) fn receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let (kind, body) = match wire::split_header(data, self.config.max_datagram) {
            Ok(x) => x,
            Err(e) => {
                self.stats.decode_errors += 1;
                if let wire::DecodeError::Version(v) = e {
                    self.sessions.report_version(from, v);
                    self.emit_handshake_failures();
                }
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
        self.emit_handshake_failures();
        let opened = match opened {
            Ok(o) => o,
            Err(Drop::UnknownSession(id)) => {
                // A known member sealed with an epoch we do not have (we lost its session):
                // re-handshake with it at its recorded address, never the datagram's source.
                if let Some(addr) = self.members.get(id).map(|m| m.info.addr) {
                    let mut out = Vec::new();
                    self.sessions.heal(
                        now,
                        id,
                        Some(addr),
                        &mut self.rng,
                        &mut self.stats,
                        &mut out,
                    );
                    self.push_transmits(out);
                }
                return;
            }
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

    pub(super) fn dispatch(&mut self, now: Instant, from: NodeId, addr: SocketAddr, msg: Msg) {
        if !matches!(msg, Msg::JoinRequest { .. }) && self.refused_sender(now, from, addr) {
            return; // our filter refused it (a join request asks the filter again)
        }
        let member = self.members.is_live(from);
        if !member
            && self.members.get(from).is_none()
            && !matches!(
                msg,
                Msg::JoinRequest { .. } | Msg::JoinAccept { .. } | Msg::JoinReject { .. }
            )
        {
            // A node we have never heard of talks to us as a member would: our view is
            // probably stale. Pull the state from a member we trust and ask the stranger to
            // (re)admit us, which brings its signed entry and its view (rate-limited; with
            // no live member left the stranger is the only way back to the cluster).
            self.sync_with_stranger(now, from, addr);
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
            Msg::JoinReject { attempt, reason } => {
                self.on_join_reject(now, from, addr, attempt, reason)
            }
            Msg::Ping { seq, members } => {
                // Bare acks to non-members reveal nothing beyond liveness, which the
                // handshake already showed; members get gossip piggybacked.
                if member {
                    self.compare_view_size(now, members);
                    self.queue(from, vec![Msg::Ack { seq }]);
                    if let Some(c) = self
                        .election
                        .claim
                        .filter(|c| c.master == self.me.id && self.election.resigned && !self.left)
                    {
                        // We resigned this claim; a member that missed the resignation
                        // (partitioned) watches us as its master: tell it again.
                        self.queue(from, vec![Msg::Resign(c)]);
                    }
                } else {
                    self.queue_to(from, addr, vec![Msg::Ack { seq }], false);
                    self.notify_if_dead(now, from);
                }
            }
            Msg::Ack { seq } => self.on_ack(now, from, seq),
            Msg::Confirm { .. } | Msg::ConfirmAck => {}
            Msg::Updates(ups) if !member => {
                // From a node we do not count as a member: only a notice that *we* were
                // declared failed (refuted, then we rejoin through it) and the sender's own
                // signed entry when we knew it before (its refutation of our failure or
                // leave record: what re-admits it after a join) are acted on.
                let known = self.members.get(from).is_some();
                let mut acted = false;
                for u in ups {
                    match &u {
                        Update::Dead { id, .. } if *id == self.me.id => {
                            self.apply_update(now, u, false, from);
                            self.try_join(now, addr, false);
                            acted = true;
                        }
                        Update::Alive(s) if s.entry.id == from && known => {
                            self.apply_update(now, u, false, from);
                            acted = true;
                        }
                        _ => {}
                    }
                }
                if !acted {
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
                        let me = Update::Alive(self.my_entry.clone());
                        self.queue(by, vec![Msg::Updates(vec![me])]);
                    }
                    if about_me_dead {
                        // Refuted by gossip where we are still a member; rejoin where not.
                        self.try_join(now, addr, false);
                    }
                }
            }
            Msg::State(chunk) => self.on_state(now, from, chunk),
            Msg::Heartbeat {
                claim,
                incarnation,
                members,
            } => self.on_heartbeat(now, from, claim, incarnation, members),
            // Only the claim's master may claim, resign or send its heartbeats (the session
            // layer authenticated `from`).
            Msg::Claim(c) if c.master == from => self.follow_claim_of_its_master(now, c),
            Msg::Resign(c) if c.master == from => self.on_resign(now, c),
            Msg::SignedClaim { claim, signature }
                if claim.master == from && self.claim_signed(&claim, &signature) =>
            {
                self.consider_signed_claim(now, claim, signature, true)
            }
            Msg::Claim(_) | Msg::Resign(_) | Msg::SignedClaim { .. } => {
                self.stats.election_dropped += 1
            }
            Msg::Delivery(frame) => self.delivery.handle_frame(now, from, frame),
            Msg::LeaseRequest { claim, round } => self.on_lease_request(now, from, claim, round),
            Msg::LeaseAck {
                term,
                round,
                granted,
            } => self.on_lease_ack(now, from, term, round, granted),
            Msg::VoteRequest {
                claim,
                attempt,
                force,
            } => self.on_vote_request(now, from, claim, attempt, force),
            Msg::VoteReply {
                term,
                attempt,
                granted,
                voted_term,
                master,
            } => self.on_vote_reply(now, from, term, attempt, granted, voted_term, master),
            Msg::Nack { seq } => self.on_nack(from, seq),
            Msg::DigestOffer { round, summary } => self.on_digest_offer(now, from, round, summary),
            Msg::DigestEqual { round } => self.on_digest_equal(from, round),
            Msg::Digest(chunk) => self.on_digest(now, from, chunk),
            Msg::DigestRequest { ids, .. } => self.on_digest_request(from, ids),
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
