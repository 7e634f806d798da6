//! Applying membership statements: authentication (the rules live in
//! [`crate::membership::statements`]), statements about the local node (refutation, with
//! checked and bounded incarnations), suspicion expiry, and the consequences of each change
//! (events, re-gossip of exactly what was verified, election).

use super::{Node, LAST_CHANCE_ROUNDS};
use crate::event::Event;
use crate::membership::statements::{self, Refused};
use crate::membership::{Applied, Liveness};
use crate::wire::{Msg, Update};
use crate::{NodeId, RemovalReason};
use std::time::{Duration, Instant};

impl Node {
    /// Bumps our incarnation (checked) and gossips our newly signed entry (metadata or
    /// subscription change, or refutation). At `u64::MAX` nothing is published (counted).
    pub(super) fn publish_self(&mut self) {
        self.delivery.set_subscriptions(&self.me.subscriptions);
        let Some(next) = self.me.incarnation.checked_add(1) else {
            self.stats.incarnations_refused += 1;
            return;
        };
        self.me.incarnation = next;
        self.sign_self();
        self.broadcasts.push(Update::Alive(self.my_entry.clone()));
    }

    /// Re-signs our entry after a change.
    pub(super) fn sign_self(&mut self) {
        self.my_entry = statements::sign_alive(self.sessions.cipher(), &self.me);
    }

    /// Signs our `Left` for the current incarnation unless that is done already (called at
    /// every timer, so an incarnation change costs one signature soon after, off the path
    /// of the refutation or update that caused it; [`Node::leave`] then only sends).
    pub(super) fn sign_left_ahead(&mut self) {
        let inc = self.me.incarnation;
        if self.left_ahead.as_ref().is_some_and(|(i, _)| *i == inc) {
            return;
        }
        let sig = statements::sign_left(self.sessions.cipher(), self.me.id, inc);
        self.left_ahead = Some((inc, sig));
    }

    /// Verifies the signatures of the `Left` statements applied on their subject's own
    /// session since the last timer, and forwards those that verify (a signature that
    /// fails is counted and never forwarded; the removal stands: the subject said it over
    /// its authenticated session). A statement superseded meanwhile (the member came back
    /// at a higher incarnation, or was forgotten) is dropped unchecked.
    pub(super) fn verify_direct_lefts(&mut self) {
        for (id, incarnation, signature) in std::mem::take(&mut self.unverified_lefts) {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if m.info.incarnation != incarnation
                || !matches!(m.state, Liveness::Left { .. })
                || !m.left_signature.is_empty()
            {
                continue;
            }
            if let Err(r) = statements::verify_left(
                self.sessions.cipher(),
                Some(m.info.public_key.as_slice()),
                id,
                incarnation,
                &signature,
            ) {
                self.statement_refused(r);
                continue;
            }
            self.members.set_left_signature(id, signature.clone());
            self.broadcasts.push(Update::Left {
                id,
                incarnation,
                signature,
            });
        }
    }

    /// Counts a statement that failed authentication (dropped, never applied or forwarded).
    fn statement_refused(&mut self, why: Refused) {
        self.stats.statements_rejected += 1;
        tracing::debug!(?why, "membership statement refused");
    }

    /// Answers a statement that we are suspected, failed or gone at `claimed`: publish a
    /// higher incarnation (bounded unless the claim is our own signature, see
    /// [`statements::refutation`]).
    fn refute(&mut self, now: Instant, claimed: u64, signed_by_me: bool) {
        let mine = self.me.incarnation;
        match statements::refutation(mine, claimed, signed_by_me) {
            None => {
                if claimed >= mine {
                    self.stats.incarnations_refused += 1; // u64::MAX: cannot refute
                }
            }
            Some((next, implausible)) => {
                if implausible {
                    self.stats.incarnations_refused += 1;
                }
                // Having to refute is a sign of our own slowness (Lifeguard local health).
                self.health_delta(1);
                self.me.incarnation = next - 1; // publish_self adds the 1 (next >= 1)
                self.publish_self();
                if self.is_master() {
                    self.timers.heartbeat = Some(now);
                }
            }
        }
    }

    /// A statement about the local node.
    fn statement_about_me(&mut self, now: Instant, u: Update) {
        let mine = self.me.incarnation;
        match u {
            Update::Alive(s) => {
                if s == self.my_entry {
                    return;
                }
                let e = &s.entry;
                let differs = e.metadata != self.me.metadata
                    || e.subscriptions != self.me.subscriptions
                    || e.master_eligible != self.me.master_eligible
                    || e.priority != self.me.priority
                    || e.name != self.me.name
                    || e.addr != self.me.addr;
                // Someone holds an entry of ours at a higher incarnation, or at ours with other
                // content (an earlier life under the same key): publish above it. Only our
                // own signature can say that.
                if !(e.incarnation > mine || (e.incarnation == mine && differs)) {
                    return;
                }
                if e.public_key != self.me.public_key {
                    return self.statement_refused(Refused::KeyMismatch);
                }
                if let Err(r) = statements::verify_alive(self.sessions.cipher(), &s) {
                    return self.statement_refused(r);
                }
                self.refute(now, e.incarnation, true);
            }
            Update::Suspect { incarnation, .. } | Update::Dead { incarnation, .. } => {
                self.refute(now, incarnation, false)
            }
            Update::Left {
                id,
                incarnation,
                signature,
            } => {
                if incarnation < mine {
                    return;
                }
                let key = Some(self.me.public_key.as_slice());
                if let Err(r) = statements::verify_left(
                    self.sessions.cipher(),
                    key,
                    id,
                    incarnation,
                    &signature,
                ) {
                    return self.statement_refused(r);
                }
                self.refute(now, incarnation, true);
            }
        }
    }

    /// Applies one update from the network (carried by a record from the authenticated
    /// member `from`) and handles the consequences. Signed statements are verified here,
    /// after the cheap staleness checks (so duplicates cost no signature work) and before
    /// anything is applied or forwarded; the one exception is a `Left` sent by its subject
    /// itself, authenticated by that session, whose signature is verified at the next timer
    /// before it is forwarded (`verify_direct_lefts`).
    pub(super) fn apply_update(
        &mut self,
        now: Instant,
        u: Update,
        from_state_sync: bool,
        from: NodeId,
    ) {
        let subject = u.subject();
        if self.join.refused_members.contains_key(&subject) {
            return; // our filter refused it: not part of our view
        }
        if subject == self.me.id {
            return self.statement_about_me(now, u);
        }
        let timeout = self.suspicion_timeout_for(subject);
        let mut accusation = None;
        let mut direct_left = false;
        match &u {
            Update::Dead { incarnation, .. } | Update::Suspect { incarnation, .. } => {
                if let Some(m) = self.members.get(subject).filter(|m| m.state.is_live()) {
                    if *incarnation < m.info.incarnation {
                        // A stale accusation: send the newer signed entry toward the accuser
                        // and check the subject ourselves soon.
                        if let Some(s) = self.members.signed(subject) {
                            self.queue(from, vec![Msg::Updates(vec![Update::Alive(s)])]);
                        }
                        self.probe.probe_next(subject);
                    } else {
                        accusation = Some((*incarnation, m.state == Liveness::Alive));
                    }
                }
            }
            Update::Alive(s) => {
                // Fast path: most gossip repeats what we know (stale or duplicate).
                if self
                    .members
                    .get(subject)
                    .is_some_and(|m| m.info.incarnation >= s.entry.incarnation)
                {
                    return;
                }
                if let Err(r) = statements::verify_alive(self.sessions.cipher(), s) {
                    return self.statement_refused(r);
                }
                if self.admission_filter && self.members.get(subject).is_none() {
                    // A member new to us: our own connection filter decides first.
                    return self.vet_member(now, s.clone(), !from_state_sync);
                }
            }
            Update::Left {
                incarnation,
                signature,
                ..
            } => {
                let Some(m) = self.members.get(subject) else {
                    return; // never seen: nothing to remove
                };
                if *incarnation < m.info.incarnation || matches!(m.state, Liveness::Left { .. }) {
                    return;
                }
                if from == subject && !from_state_sync {
                    // Said by its subject over its own session, which the handshake bound to
                    // the subject's identity key: applied now; the signature is verified
                    // before the statement is forwarded (`verify_direct_lefts`), off the
                    // path of the `node_removed` event.
                    direct_left = true;
                } else {
                    let key = Some(m.info.public_key.as_slice());
                    if let Err(r) = statements::verify_left(
                        self.sessions.cipher(),
                        key,
                        subject,
                        *incarnation,
                        signature,
                    ) {
                        return self.statement_refused(r);
                    }
                }
            }
        }
        // A direct `Left` is stored without its signature until that is verified: only a
        // verified signature is ever forwarded (gossip, state sync).
        let u = match u {
            Update::Left {
                id,
                incarnation,
                signature,
            } if direct_left => {
                self.unverified_lefts.push((id, incarnation, signature));
                Update::Left {
                    id,
                    incarnation,
                    signature: Vec::new(),
                }
            }
            u => u,
        };
        let back_from_dead = matches!(&u, Update::Alive(_)
            if self.members.get(subject).is_some_and(|m| !m.state.is_live()));
        // A relayed `Dead` is only a suspicion here: re-gossip it as one.
        let relay = match &u {
            Update::Dead {
                id,
                incarnation,
                by,
            } if !from_state_sync => Some(Update::Suspect {
                id: *id,
                incarnation: *incarnation,
                by: *by,
            }),
            Update::Suspect { .. } if !from_state_sync => Some(u.clone()),
            _ => None,
        };
        let applied = self.members.apply(now, u, timeout);
        self.applying_state_sync = from_state_sync;
        if back_from_dead && self.current_master().is_none() && self.members.is_live(subject) {
            // A partition healed while we have no master: its side may have one. Pull its
            // state (with its claim) before our election timer can fire.
            self.push_full_state(subject);
        }
        self.on_applied(now, applied, relay.as_ref());
        self.applying_state_sync = false;
        // Lifeguard: a new suspicion remembers its first accuser; a further accusation is a
        // confirmation by its authenticated sender.
        if let Some((inc, was_alive)) = accusation {
            let suspected = self
                .members
                .get(subject)
                .is_some_and(|m| matches!(m.state, Liveness::Suspect { .. }));
            if was_alive && suspected {
                self.probe.suspicions.start(now, subject, inc, from);
            } else if suspected {
                self.confirm_suspicion(now, subject, inc, from);
            }
        }
    }

    /// Turns the results of applying updates into events, re-gossip and election changes.
    /// Only verified statements are re-gossiped, with their signatures.
    pub(super) fn on_applied(
        &mut self,
        now: Instant,
        applied: Vec<Applied>,
        original: Option<&Update>,
    ) {
        let mut membership_changed = false;
        for a in applied {
            match a {
                Applied::Ignored => {}
                Applied::Added(info) => {
                    membership_changed = true;
                    self.election.last_gain = Some(now);
                    self.probe.add_target(info.id, &mut self.rng);
                    if !self.applying_state_sync {
                        self.gossip_entry(info.id);
                    }
                    self.delivery
                        .peer_returned(now, info.id, &info.subscriptions);
                    self.emit(Event::NodeAdded { node: info });
                }
                Applied::Updated {
                    node,
                    visible,
                    unsubscribed,
                } => {
                    for name in &unsubscribed {
                        self.delivery.peer_unsubscribed(now, node.id, name);
                    }
                    if node.master_eligible {
                        membership_changed = true;
                    }
                    self.gossip_entry(node.id);
                    if visible {
                        self.emit(Event::NodeUpdated { node });
                    }
                }
                Applied::Suspected(id) => {
                    if let Some(u) = original {
                        self.broadcasts.push(u.clone());
                    } else if let Some(m) = self.members.get(id) {
                        self.broadcasts.push(Update::Suspect {
                            id,
                            incarnation: m.info.incarnation,
                            by: self.me.id,
                        });
                    }
                }
                Applied::Refuted(id) => {
                    self.probe.last_chance.remove(&id);
                }
                Applied::Removed(info, reason) => {
                    membership_changed = true;
                    let u = match reason {
                        RemovalReason::Left => {
                            let signature = self
                                .members
                                .get(info.id)
                                .map(|m| m.left_signature.clone())
                                .unwrap_or_default();
                            // Empty: a direct `Left` whose signature is still to be
                            // verified; `verify_direct_lefts` forwards it then.
                            (!signature.is_empty()).then_some(Update::Left {
                                id: info.id,
                                incarnation: info.incarnation,
                                signature,
                            })
                        }
                        RemovalReason::Failed => Some(Update::Dead {
                            id: info.id,
                            incarnation: info.incarnation,
                            by: self.me.id,
                        }),
                    };
                    if let Some(u) = u {
                        self.broadcasts.push(u);
                    }
                    self.probe.last_chance.remove(&info.id);
                    let unsent = self.delivery.peer_gone(now, info.id);
                    if reason == RemovalReason::Failed {
                        self.delivery
                            .note_departed(info.id, &info.subscriptions, &unsent);
                    }
                    self.emit(Event::NodeRemoved { node: info, reason });
                }
                Applied::Refute(incarnation) => self.refute(now, incarnation, false),
                // Statements about us are handled before the table (statement_about_me).
                Applied::SelfAlive(_) => {}
                Applied::Replaced { old, new } => {
                    membership_changed = true;
                    self.probe.add_target(new.id, &mut self.rng);
                    self.broadcasts.push(Update::Dead {
                        id: old.id,
                        incarnation: old.incarnation,
                        by: self.me.id,
                    });
                    self.gossip_entry(new.id);
                    self.delivery.peer_gone(now, old.id);
                    self.emit(Event::NodeRemoved {
                        node: old,
                        reason: RemovalReason::Failed,
                    });
                    self.emit(Event::NodeAdded { node: new });
                }
            }
        }
        if membership_changed {
            self.reconcile(now);
        }
    }

    /// Queues a member's signed entry for gossip.
    fn gossip_entry(&mut self, id: NodeId) {
        if let Some(s) = self.members.signed(id) {
            self.broadcasts.push(Update::Alive(s));
        }
    }

    /// How long a new suspicion of `id` lasts: the master's short timeout (the master
    /// watch confirmed it first), else Lifeguard's longest timeout, which independent
    /// confirmations shorten (see `membership::suspicion`).
    pub(super) fn suspicion_timeout_for(&self, id: NodeId) -> Duration {
        if self.election.claim.map(|c| c.master) == Some(id) {
            self.config.master_suspicion_timeout
        } else {
            crate::membership::suspicion::start_timeout(&self.config, self.members.live_count() + 1)
        }
    }

    /// Local health score (Lifeguard): 0 when our probes succeed; our probe interval and
    /// timeout are stretched by `score + 1`.
    pub fn health_score(&self) -> u32 {
        self.probe.health
    }

    /// Declares failed the suspects whose suspicion expired, after a last chance: the expiry
    /// sends a direct and `indirect_checks` indirect pings and waits one probe timeout more,
    /// `LAST_CHANCE_ROUNDS` times; any answer from the suspect clears the suspicion (a node that only
    /// relayed a suspicion checks for itself before declaring a death). The master is
    /// exempt: the master watch already confirmed it.
    pub(super) fn expire_suspicions(&mut self, now: Instant) {
        let master = self.election.claim.map(|c| c.master);
        for id in self.members.expired_suspicions(now) {
            // The master needs no last chance: every member confirmed it itself (two rounds
            // of direct and indirect probes) before suspecting it.
            let round = self.probe.last_chance.get(&id).copied().unwrap_or(0);
            if Some(id) != master && round < LAST_CHANCE_ROUNDS {
                self.probe.last_chance.insert(id, round + 1);
                let seq = self.probe.seq();
                self.probe.last_chance_seqs.insert(seq, id);
                let msgs = self.ping_msgs(id, seq);
                self.queue(id, msgs);
                self.send_ping_reqs(id, seq);
                let wait = self.scaled(self.config.probe_timeout);
                self.members.extend_suspicion(id, now + wait);
                continue;
            }
            self.probe.last_chance.remove(&id);
            let a = self.members.apply_failed(now, id);
            if matches!(a, Applied::Removed(..)) {
                self.stats.failures_declared += 1;
            }
            self.on_applied(now, vec![a], None);
        }
    }
}
