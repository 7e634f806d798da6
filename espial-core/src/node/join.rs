//! Joining: discovery feeds seed addresses; a join request runs the admission decision on the
//! contacted member, whose acceptance admits the newcomer to the whole cluster (it gossips the
//! new member's entry and sends the cluster state). Also push-pull anti-entropy and periodic
//! reconnection to seeds and failed members, which heals partitions.

use super::Node;
use crate::event::Event;
use crate::membership::Liveness;
use crate::output::{Admission, AdmissionId, AdmissionRequest, Output};
use crate::wire::{msg_size, Msg, StateChunk, Update};
use crate::{NodeId, NodeInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long an admission decision may take before the join is refused.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a join attempt waits for its answer.
const JOIN_ATTEMPT_TTL: Duration = Duration::from_secs(10);
/// Seeds tried at once while alone.
const MAX_SEEDS_PER_ROUND: usize = 8;

struct PendingAdmission {
    from: NodeId,
    addr: SocketAddr,
    node: NodeInfo,
    attempt: u64,
    deadline: Instant,
}

/// Join bookkeeping.
#[derive(Default)]
pub(crate) struct JoinState {
    /// Seed addresses from discovery, with the last attempt through each.
    seeds: BTreeMap<SocketAddr, Option<Instant>>,
    /// Seeds that refused us: not retried.
    refused: BTreeSet<SocketAddr>,
    /// Join attempts in flight: attempt → (address, sent at).
    attempts: BTreeMap<u64, (SocketAddr, Instant)>,
    /// `node_accepted` was reported.
    accepted_once: bool,
    admissions: BTreeMap<AdmissionId, PendingAdmission>,
    next_admission: u64,
    /// Last "you were declared failed" notice per node.
    pub(crate) dead_notices: BTreeMap<NodeId, Instant>,
    /// Last state pull triggered by a message from an unknown node.
    last_sync: Option<Instant>,
}

impl Node {
    pub(super) fn discovered(&mut self, now: Instant, addr: SocketAddr) {
        if addr == self.me.addr || self.join.refused.contains(&addr) {
            return;
        }
        let last = *self.join.seeds.entry(addr).or_insert(None);
        if self.members.live_at(addr).is_some() {
            return;
        }
        let alone = self.members.live_count() == 0;
        let gap = if alone {
            self.config.handshake_timeout * 2
        } else {
            self.config.reconnect_interval
        };
        if last.is_none_or(|t| now >= t + gap) {
            self.try_join(now, addr);
        }
    }

    /// Sends a join request to `addr`.
    pub(super) fn try_join(&mut self, now: Instant, addr: SocketAddr) {
        if addr == self.me.addr || self.join.refused.contains(&addr) {
            return;
        }
        // One attempt in flight per address.
        if self
            .join
            .attempts
            .values()
            .any(|(a, t)| *a == addr && now < *t + self.config.handshake_timeout * 4)
        {
            return;
        }
        if let Some(t) = self.join.seeds.get_mut(&addr) {
            *t = Some(now);
        }
        let attempt = self.rng.next_u64();
        self.join.attempts.insert(attempt, (addr, now));
        let msg = Msg::JoinRequest {
            node: self.me.clone(),
            attempt,
        };
        match self.members.get_by_addr(addr) {
            Some(id) => self.queue_to(id, addr, vec![msg], false),
            None => self.outbox_addr.push((addr, vec![msg])),
        }
    }

    pub(super) fn on_join_request(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        mut node: NodeInfo,
        attempt: u64,
    ) {
        if node.id != from || node.metadata.check(self.config.max_metadata_bytes).is_err() {
            self.stats.non_member_dropped += 1;
            return;
        }
        if node
            .subscriptions
            .iter()
            .any(|n| crate::event::check_event_name(n).is_err())
        {
            self.stats.non_member_dropped += 1;
            return;
        }
        node.addr = if node.addr.ip().is_unspecified() {
            addr
        } else {
            node.addr
        };
        if self.members.is_live(from) || !self.admission_filter {
            self.accept_join(now, from, addr, node, attempt);
            return;
        }
        if self.join.admissions.values().any(|p| p.from == from) {
            return; // already being decided
        }
        if self.join.admissions.len() >= self.config.max_pending_handshakes {
            self.reject_join(
                from,
                addr,
                attempt,
                "admission queue full, retry later".into(),
            );
            return;
        }
        self.join.next_admission += 1;
        let id = AdmissionId(self.join.next_admission);
        let verified_key = self.sessions.verified_key(from).map(<[u8]>::to_vec);
        self.outputs.push_back(Output::Admission(AdmissionRequest {
            id,
            node: node.clone(),
            source: addr,
            verified_key,
        }));
        self.join.admissions.insert(
            id,
            PendingAdmission {
                from,
                addr,
                node,
                attempt,
                deadline: now + ADMISSION_TIMEOUT,
            },
        );
    }

    pub(super) fn admission_decided(&mut self, now: Instant, id: AdmissionId, decision: Admission) {
        let Some(p) = self.join.admissions.remove(&id) else {
            return;
        };
        match decision {
            Admission::Accept => self.accept_join(now, p.from, p.addr, p.node, p.attempt),
            Admission::Reject(reason) => self.reject_join(p.from, p.addr, p.attempt, reason),
        }
    }

    fn accept_join(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        mut node: NodeInfo,
        attempt: u64,
    ) {
        if let Some(m) = self.members.get(from) {
            if !m.state.is_live() && node.incarnation <= m.info.incarnation {
                // Back from the dead: it will adopt this incarnation from our state.
                node.incarnation = m.info.incarnation + 1;
            }
        }
        let applied = self.members.apply_alive(now, node);
        self.on_applied(now, applied, None);
        let accept = Msg::JoinAccept {
            attempt,
            by: self.me.clone(),
        };
        let mut msgs = vec![accept];
        msgs.extend(self.state_chunks(true).into_iter().map(Msg::State));
        self.queue_to(from, addr, msgs, false);
    }

    fn reject_join(&mut self, from: NodeId, addr: SocketAddr, attempt: u64, reason: String) {
        let mut reason = reason;
        reason.truncate(200);
        self.queue_to(from, addr, vec![Msg::JoinReject { attempt, reason }], false);
        self.drop_sessions.push(from);
    }

    pub(super) fn on_join_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        attempt: u64,
        by: NodeInfo,
    ) {
        if self.join.attempts.remove(&attempt).is_none() || by.id != from {
            self.stats.non_member_dropped += 1;
            return;
        }
        let applied = self.members.apply_alive(now, by.clone());
        self.on_applied(now, applied, None);
        self.timers.last_state_sync = now;
        if !self.join.accepted_once {
            self.join.accepted_once = true;
            self.emit(Event::Accepted { by });
        }
    }

    pub(super) fn on_join_reject(
        &mut self,
        from: NodeId,
        addr: SocketAddr,
        attempt: u64,
        reason: String,
    ) {
        let Some((seed, _)) = self.join.attempts.remove(&attempt) else {
            self.stats.non_member_dropped += 1;
            return;
        };
        self.join.refused.insert(seed);
        self.join.refused.insert(addr);
        self.drop_sessions.push(from);
        if !self.join.accepted_once {
            self.emit(Event::Rejected { by: addr, reason });
        }
    }

    /// Our full state as chunks that each fit one record.
    pub(super) fn state_chunks(&self, reply: bool) -> Vec<StateChunk> {
        let budget = self.sessions.plaintext_budget().saturating_sub(96);
        let mut updates = vec![Update::Alive(self.me.clone())];
        for m in self.members.iter() {
            if let Liveness::Suspect { .. } = m.state {
                updates.push(Update::Alive(m.info.clone()));
            }
            updates.push(self.members.as_update(m));
        }
        let mut chunks: Vec<Vec<Update>> = vec![Vec::new()];
        let mut used = 0;
        for u in updates {
            let size = msg_size(&Msg::Updates(vec![u.clone()]));
            if used + size > budget && !chunks.last().is_some_and(Vec::is_empty) {
                chunks.push(Vec::new());
                used = 0;
            }
            used += size;
            if let Some(c) = chunks.last_mut() {
                c.push(u);
            }
        }
        let total = chunks.len() as u16;
        let master_alive = self.current_master().is_some();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, members)| StateChunk {
                claim: self.election.claim,
                master_alive,
                max_term: self.election.max_term,
                members,
                reply,
                index: i as u16,
                total,
            })
            .collect()
    }

    pub(super) fn on_state(&mut self, now: Instant, from: NodeId, chunk: StateChunk) {
        self.election.max_term = self.election.max_term.max(chunk.max_term);
        for u in chunk.members {
            self.apply_update(now, u, true, from);
        }
        if let Some(c) = chunk.claim {
            if chunk.master_alive || c.master == self.me.id {
                self.consider_claim(now, c);
            } else {
                self.election.max_term = self.election.max_term.max(c.term);
            }
        }
        if chunk.reply && chunk.index == 0 {
            let msgs = self
                .state_chunks(false)
                .into_iter()
                .map(Msg::State)
                .collect();
            self.queue(from, msgs);
        }
    }

    /// Pulls state from a random member (at most once per 2 s): used when an unknown node
    /// contacts us as if we knew it, or when the master's member count differs from ours.
    pub(super) fn sync_soon(&mut self, now: Instant) {
        if self
            .join
            .last_sync
            .is_some_and(|t| now < t + Duration::from_secs(2))
        {
            return;
        }
        self.join.last_sync = Some(now);
        self.push_pull(now);
    }

    /// Anti-entropy with one random live member.
    pub(super) fn push_pull(&mut self, _now: Instant) {
        let live = self.members.live_ids();
        if live.is_empty() {
            return;
        }
        let id = live[self.rng.below(live.len())];
        let msgs = self
            .state_chunks(true)
            .into_iter()
            .map(Msg::State)
            .collect();
        self.queue(id, msgs);
    }

    /// Retries seeds (all of them while alone) and one failed member, which heals partitions
    /// and restarts.
    pub(super) fn reconnect(&mut self, now: Instant) {
        let mut candidates: Vec<SocketAddr> = self
            .join
            .seeds
            .keys()
            .filter(|a| !self.join.refused.contains(a) && self.members.live_at(**a).is_none())
            .copied()
            .collect();
        if self.members.live_count() == 0 {
            self.rng.shuffle(&mut candidates);
            for a in candidates.into_iter().take(MAX_SEEDS_PER_ROUND) {
                self.try_join(now, a);
            }
            return;
        }
        candidates.extend(
            self.members
                .iter()
                .filter(|m| matches!(m.state, Liveness::Dead { .. }))
                .map(|m| m.info.addr)
                .filter(|a| self.members.live_at(*a).is_none()),
        );
        if !candidates.is_empty() {
            let a = candidates[self.rng.below(candidates.len())];
            self.try_join(now, a);
        }
    }

    pub(super) fn join_sweep(&mut self, now: Instant) {
        self.join
            .attempts
            .retain(|_, (_, t)| now < *t + JOIN_ATTEMPT_TTL);
        let expired: Vec<AdmissionId> = self
            .join
            .admissions
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.join.admissions.remove(&id) {
                self.reject_join(
                    p.from,
                    p.addr,
                    p.attempt,
                    "admission decision timed out".into(),
                );
            }
        }
        self.join
            .dead_notices
            .retain(|_, t| now < *t + Duration::from_secs(5));
    }
}
