//! Joining: discovery feeds seed addresses; a join request runs the admission decision on the
//! contacted member, whose acceptance admits the newcomer to the cluster (it gossips the
//! new member's signed entry and sends the cluster state). Also push-pull anti-entropy and
//! periodic reconnection to seeds and failed members, which heals partitions.
//!
//! **Every node applies its own connection filter.** With a filter set, a member learned from
//! the cluster (gossip, state, the node we joined through) is not counted until this node's
//! filter accepted it (`Output::Admission`, with the member's verified public key, name and
//! metadata). A member this node refuses is never added here: it gets no events from this
//! node, is not probed, not a subscriber, not a quorum voter, is not in `members()`, and
//! statements about it are ignored. It is told with `JoinReject { attempt: 0 }`; on that
//! notice the refused node stops sending to the refusing member (no probes, gossip or events;
//! sends naming it fail with `UnknownTarget`) but keeps it in its view and follows its
//! master claim (it is a member of the cluster). A member's refusal never makes the refused
//! node emit `node_rejected`: that event means no member accepted it at all (its join
//! requests were refused).

use super::Node;
use crate::event::Event;
use crate::membership::statements;
use crate::membership::Liveness;
use crate::output::{Admission, AdmissionId, AdmissionRequest, Output};
use crate::wire::{msg_size, Msg, SignedEntry, StateChunk, Update};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long an admission decision may take before the join is refused.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a join attempt waits for its answer.
const JOIN_ATTEMPT_TTL: Duration = Duration::from_secs(10);
/// Seeds tried at once while alone.
const MAX_SEEDS_PER_ROUND: usize = 8;
/// Seed addresses remembered (discovery can be fed forged beacons: the table is bounded,
/// the least recently announced seed is evicted first).
pub(crate) const MAX_SEEDS: usize = 1024;
/// A seed not announced by discovery for this long is forgotten (static peers and live
/// beacons re-announce theirs well within it).
pub(crate) const SEED_TTL: Duration = Duration::from_secs(300);

/// A seed address: last join attempt through it and last time discovery announced it.
#[derive(Clone, Copy)]
pub(super) struct Seed {
    pub(super) tried: Option<Instant>,
    pub(super) seen: Instant,
    /// Announced only by an unauthenticated source (open multicast beacons): contacted
    /// once per announcement, never by the reconnect loop (see `node::beacons`).
    pub(super) unverified: bool,
}

/// A seed that refused our join is tried again after this, doubling with each refusal up
/// to [`REFUSAL_RETRY_MAX`]: a refusal may be temporary (quorum mode full, admission queue
/// full, a filter that changes its mind).
const REFUSAL_RETRY_FIRST: Duration = Duration::from_secs(5);
/// Longest wait before a seed that keeps refusing us is tried again.
const REFUSAL_RETRY_MAX: Duration = Duration::from_secs(300);

/// A seed that refused us: not tried before `until`; `count` refusals in a row.
struct Refusal {
    until: Instant,
    count: u32,
}

/// Members refused by our filter (or refusing us) remembered at most (oldest forgotten).
const MAX_REFUSALS: usize = 4096;
/// Interval between repeated refusal notices to the same refused member.
const REFUSAL_NOTICE_GAP: Duration = Duration::from_secs(1);

struct PendingAdmission {
    from: NodeId,
    addr: SocketAddr,
    node: SignedEntry,
    /// The join attempt to answer; `None`: a member learned from the cluster being vetted.
    attempt: Option<u64>,
    /// Re-gossip the entry once accepted (not when it came in a full state: the sender has it).
    regossip: bool,
    deadline: Instant,
}

/// Join bookkeeping.
#[derive(Default)]
pub(crate) struct JoinState {
    /// Seed addresses from discovery, with the last attempt through each.
    pub(super) seeds: BTreeMap<SocketAddr, Seed>,
    /// Seeds that refused us, retried with back-off (bounded by `MAX_SEEDS`).
    refused: BTreeMap<SocketAddr, Refusal>,
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
    /// Members our connection filter refused, with when (never counted, never talked to).
    pub(crate) refused_members: BTreeMap<NodeId, Instant>,
    /// Members whose connection filter refused us (we send them nothing).
    pub(crate) refused_by: BTreeSet<NodeId>,
    /// Last refusal notice sent to each refused member.
    refusal_notices: BTreeMap<NodeId, Instant>,
}

impl Node {
    pub(super) fn discovered(&mut self, now: Instant, addr: SocketAddr) {
        if addr == self.me.addr || self.seed_refused(now, addr) {
            return;
        }
        let last = self.note_seed(now, addr, false);
        if self.members.live_at(addr).is_some() {
            return;
        }
        if last.is_none_or(|t| now >= t + self.join_gap()) {
            self.try_join(now, addr, false);
        }
    }

    /// Records an announced seed (bounded table, least recently announced evicted first);
    /// returns when it was last tried. A seed announced by a trusted source stays trusted.
    pub(super) fn note_seed(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        unverified: bool,
    ) -> Option<Instant> {
        if !self.join.seeds.contains_key(&addr) && self.join.seeds.len() >= MAX_SEEDS {
            let oldest = self.join.seeds.iter().min_by_key(|(_, s)| s.seen);
            if let Some(a) = oldest.map(|(a, _)| *a) {
                self.join.seeds.remove(&a);
            }
        }
        let seed = self.join.seeds.entry(addr).or_insert(Seed {
            tried: None,
            seen: now,
            unverified,
        });
        seed.seen = now;
        seed.unverified &= unverified;
        seed.tried
    }

    /// Least time between two join attempts through the same seed.
    pub(super) fn join_gap(&self) -> Duration {
        if self.members.live_count() == 0 {
            self.config.handshake_timeout * 2
        } else {
            self.config.reconnect_interval
        }
    }

    /// Whether `addr` refused our join recently (retried after a back-off).
    pub(super) fn seed_refused(&self, now: Instant, addr: SocketAddr) -> bool {
        self.join.refused.get(&addr).is_some_and(|r| now < r.until)
    }

    /// Records a refusal by the seed at `addr`: its next try waits 5 s, 10 s, ... 5 min.
    fn note_refusal(&mut self, now: Instant, addr: SocketAddr) {
        let count = self.join.refused.get(&addr).map_or(0, |r| r.count);
        let wait = REFUSAL_RETRY_FIRST
            .saturating_mul(1 << count.min(16))
            .min(REFUSAL_RETRY_MAX);
        if !self.join.refused.contains_key(&addr) && self.join.refused.len() >= MAX_SEEDS {
            let first = self.join.refused.iter().min_by_key(|(_, r)| r.until);
            if let Some(a) = first.map(|(a, _)| *a) {
                self.join.refused.remove(&a);
            }
        }
        let refusal = Refusal {
            until: now + wait,
            count: count.saturating_add(1),
        };
        self.join.refused.insert(addr, refusal);
    }

    /// Sends a join request to `addr`. `once`: a handshake it needs sends one Hello, no
    /// retries (the address is unverified: see `node::beacons`).
    pub(super) fn try_join(&mut self, now: Instant, addr: SocketAddr, once: bool) {
        self.try_join_via(now, addr, None, once);
    }

    /// [`Node::try_join`] to the node `via` at `addr` when its id is known (it talked to us
    /// over its session), else to whichever member our view places at `addr`, which may be
    /// a stale entry of a node that restarted there under a new id.
    pub(super) fn try_join_via(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        via: Option<NodeId>,
        once: bool,
    ) {
        if addr == self.me.addr || self.seed_refused(now, addr) {
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
        if let Some(s) = self.join.seeds.get_mut(&addr) {
            s.tried = Some(now);
        }
        let attempt = self.rng.next_u64().max(1); // 0 is a member's refusal notice
        self.join.attempts.insert(attempt, (addr, now));
        let msg = Msg::JoinRequest {
            node: self.my_entry.clone(),
            attempt,
        };
        match via.or_else(|| self.members.get_by_addr(addr)) {
            Some(id) => self.queue_to(id, addr, vec![msg], false),
            None => self.outbox_addr.push((addr, vec![msg], once)),
        }
    }

    pub(super) fn on_join_request(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        node: SignedEntry,
        attempt: u64,
    ) {
        let e = &node.entry;
        if e.id != from
            || e.metadata.check(self.config.max_metadata_bytes).is_err()
            || e.subscriptions
                .iter()
                .any(|n| crate::event::check_event_name(n).is_err())
        {
            self.stats.non_member_dropped += 1;
            return;
        }
        if let Err(why) = statements::verify_alive(self.sessions.cipher(), &node) {
            self.stats.statements_rejected += 1;
            tracing::debug!(?why, "join request with a bad signed entry");
            return;
        }
        if e.addr.ip().is_unspecified() || e.addr.port() == 0 {
            // The entry is signed: we cannot fill in the address for it.
            let reason = "advertise a reachable address, not an unspecified one".into();
            self.reject_join(from, addr, attempt, reason, true);
            return;
        }
        if let Some(q) = self.config.quorum {
            // Quorum mode: `q` is a majority only of at most 2q − 1 nodes; one more and two
            // disjoint quorums (two masters) become possible. Refuse, saying why.
            // A node restarted at a member's address replaces that entry: no new voter.
            let voters = 1 + self.members.live_count();
            let replaces = self.members.live_at(addr).is_some() && node.entry.addr == addr;
            if !self.members.is_live(from) && !replaces && voters >= 2 * q - 1 {
                let reason = format!(
                    "quorum mode is full: quorum {q} is a majority of at most {} nodes and \
                     this member counts {voters}; raise the quorum or remove a node",
                    2 * q - 1
                );
                self.reject_join(from, addr, attempt, reason, true);
                return;
            }
        }
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
                true,
            );
            return;
        }
        let verified_key = self.sessions.verified_key(from).map(<[u8]>::to_vec);
        self.ask_admission(now, from, addr, node, Some(attempt), verified_key, true);
    }

    /// Asks the application's filter about a node (a joiner, or a member learned from the
    /// cluster).
    #[allow(clippy::too_many_arguments)]
    fn ask_admission(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        node: SignedEntry,
        attempt: Option<u64>,
        verified_key: Option<Vec<u8>>,
        regossip: bool,
    ) {
        self.join.next_admission += 1;
        let id = AdmissionId(self.join.next_admission);
        let verified_key = verified_key
            .or_else(|| (!node.entry.public_key.is_empty()).then(|| node.entry.public_key.clone()));
        self.outputs.push_back(Output::Admission(AdmissionRequest {
            id,
            node: node.entry.clone(),
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
                regossip,
                deadline: now + ADMISSION_TIMEOUT,
            },
        );
    }

    /// A member learned from the cluster (its signed entry verified) that this node's filter
    /// has not accepted yet: ask the filter; it is counted only once accepted.
    pub(super) fn vet_member(&mut self, now: Instant, s: SignedEntry, regossip: bool) {
        let id = s.entry.id;
        if let Some(p) = self.join.admissions.values_mut().find(|p| p.from == id) {
            if s.entry.incarnation > p.node.entry.incarnation {
                p.node = s; // apply the newest entry once accepted
            }
            return;
        }
        if self.join.admissions.len() >= self.config.max_pending_handshakes {
            return; // it comes again with later gossip or state
        }
        let addr = s.entry.addr;
        self.ask_admission(now, id, addr, s, None, None, regossip);
    }

    pub(super) fn admission_decided(&mut self, now: Instant, id: AdmissionId, decision: Admission) {
        let Some(p) = self.join.admissions.remove(&id) else {
            return;
        };
        match (decision, p.attempt) {
            (Admission::Accept, Some(attempt)) => {
                self.accept_join(now, p.from, p.addr, p.node, attempt)
            }
            (Admission::Reject(reason), Some(attempt)) => {
                self.reject_join(p.from, p.addr, attempt, reason, true)
            }
            (Admission::Accept, None) => {
                self.join.refused_members.remove(&p.from);
                let applied = self.members.apply_alive(now, p.node);
                self.applying_state_sync = !p.regossip;
                self.on_applied(now, applied, None);
                self.applying_state_sync = false;
            }
            (Admission::Reject(reason), None) => self.refuse_member(now, p.from, p.addr, reason),
        }
    }

    /// Our filter refused a member of the cluster: never count it, tell it once.
    fn refuse_member(&mut self, now: Instant, id: NodeId, addr: SocketAddr, reason: String) {
        if self.join.refused_members.len() >= MAX_REFUSALS {
            let oldest = self
                .join
                .refused_members
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.join.refused_members.remove(&k);
            }
        }
        self.join.refused_members.insert(id, now);
        self.join.refusal_notices.insert(id, now);
        // The session is kept: a member learned from gossip often has none yet, and the
        // notice waits in the handshake that starts now (dropping it would lose the notice
        // and leave the refused node's sends to us without an outcome).
        self.reject_join(id, addr, 0, reason, false);
    }

    /// A message from a member our filter refused: drop it, and repeat the notice (at most
    /// once per second) in case it was lost. Returns true when `from` is refused.
    pub(super) fn refused_sender(&mut self, now: Instant, from: NodeId, addr: SocketAddr) -> bool {
        if !self.join.refused_members.contains_key(&from) {
            return false;
        }
        self.stats.non_member_dropped += 1;
        let last = self.join.refusal_notices.get(&from).copied();
        if last.is_none_or(|t| now >= t + REFUSAL_NOTICE_GAP) {
            self.join.refusal_notices.insert(from, now);
            let reason = "refused by this member's connection filter".to_string();
            self.reject_join(from, addr, 0, reason, false);
        }
        true
    }

    fn accept_join(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        node: SignedEntry,
        attempt: u64,
    ) {
        self.join.refused_members.remove(&from);
        // A member we hold as failed or gone at an incarnation >= the request's is not added
        // yet: our state (sent below) tells it, and its signed refutation re-admits it.
        let applied = if node.entry.addr == addr {
            self.members.apply_alive_replacing(now, node)
        } else {
            self.members.apply_alive(now, node)
        };
        self.on_applied(now, applied, None);
        let accept = Msg::JoinAccept {
            attempt,
            by: self.my_entry.clone(),
        };
        let mut msgs = vec![accept];
        msgs.extend(self.state_chunks(true).into_iter().map(Msg::State));
        self.queue_to(from, addr, msgs, false);
    }

    /// Sends `JoinReject`; `drop_session` forgets the session once the notice is sealed (a
    /// refused join request came over an established session).
    fn reject_join(
        &mut self,
        from: NodeId,
        addr: SocketAddr,
        attempt: u64,
        reason: String,
        drop_session: bool,
    ) {
        let mut reason = reason;
        if reason.len() > 200 {
            let mut cut = 200;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        self.queue_to(from, addr, vec![Msg::JoinReject { attempt, reason }], false);
        if drop_session {
            self.drop_sessions.push(from);
        }
    }

    pub(super) fn on_join_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        attempt: u64,
        by: SignedEntry,
    ) {
        if self.join.attempts.remove(&attempt).is_none() || by.entry.id != from {
            self.stats.non_member_dropped += 1;
            return;
        }
        if let Err(why) = statements::verify_alive(self.sessions.cipher(), &by) {
            self.stats.statements_rejected += 1;
            tracing::debug!(?why, "join accept with a bad signed entry");
            return;
        }
        let info = by.entry.clone();
        if self.admission_filter && self.members.get(from).is_none() {
            self.vet_member(now, by, true);
        } else {
            let applied = self.members.apply_alive(now, by);
            self.on_applied(now, applied, None);
        }
        self.timers.last_state_sync = now;
        if !self.join.accepted_once {
            self.join.accepted_once = true;
            self.emit(Event::Accepted { by: info });
        }
    }

    pub(super) fn on_join_reject(
        &mut self,
        now: Instant,
        from: NodeId,
        addr: SocketAddr,
        attempt: u64,
        reason: String,
    ) {
        if attempt == 0 {
            // A member's filter refuses us: stop talking to it (see the module doc).
            if !self.join.refused_by.contains(&from) {
                if self.join.refused_by.len() >= MAX_REFUSALS {
                    self.join.refused_by.pop_first();
                }
                self.join.refused_by.insert(from);
                // Sends still open to it will never be acknowledged: they fail now.
                self.delivery.peer_gone(now, from);
            }
            tracing::info!(member = %from, %reason, "a member's connection filter refuses us");
            return;
        }
        let Some((seed, _)) = self.join.attempts.remove(&attempt) else {
            self.stats.non_member_dropped += 1;
            return;
        };
        self.note_refusal(now, seed);
        if addr != seed {
            self.note_refusal(now, addr);
        }
        self.drop_sessions.push(from);
        if !self.join.accepted_once {
            self.emit(Event::Rejected { by: addr, reason });
        }
    }

    /// Our full state as chunks that each fit one record.
    pub(super) fn state_chunks(&self, reply: bool) -> Vec<StateChunk> {
        let budget = self.sessions.plaintext_budget().saturating_sub(96);
        let mut updates = vec![Update::Alive(self.my_entry.clone())];
        for m in self.members.iter() {
            if matches!(m.state, Liveness::Left { .. }) && m.left_signature.is_empty() {
                continue; // its `Left` is not verified yet (or failed): never forwarded
            }
            if let Liveness::Suspect { .. } = m.state {
                updates.push(Update::Alive(SignedEntry {
                    entry: m.info.clone(),
                    signature: m.signature.clone(),
                }));
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
                claim_signature: self.election.claim_sig.clone(),
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
        if chunk.max_term <= super::election::MAX_TERM {
            self.election.max_term = self.election.max_term.max(chunk.max_term);
        } else {
            self.stats.election_dropped += 1;
        }
        for u in chunk.members {
            self.apply_update(now, u, true, from);
        }
        if let Some(c) = chunk.claim {
            // A relayed claim counts only with its master's signature.
            if !self.claim_signed(&c, &chunk.claim_signature) {
                self.stats.election_dropped += 1;
            } else if chunk.master_alive || c.master == self.me.id {
                self.consider_signed_claim(now, c, chunk.claim_signature);
            } else if c.term <= super::election::MAX_TERM {
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
        if self.sync_due(now) {
            self.push_pull(now);
        }
    }

    /// At most one state pull per 2 s: true (and the time noted) when one may go now.
    fn sync_due(&mut self, now: Instant) -> bool {
        if self
            .join
            .last_sync
            .is_some_and(|t| now < t + Duration::from_secs(2))
        {
            return false;
        }
        self.join.last_sync = Some(now);
        true
    }

    /// An unknown node talked to us as a member (see `dispatch`): at most once per 2 s,
    /// pull state from a random member and send the stranger a join request.
    pub(super) fn sync_with_stranger(&mut self, now: Instant, stranger: NodeId, addr: SocketAddr) {
        if !self.sync_due(now) {
            return;
        }
        self.push_pull(now);
        self.try_join_via(now, addr, Some(stranger), false);
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
            .iter()
            .filter(|(a, s)| {
                !s.unverified && !self.seed_refused(now, **a) && self.members.live_at(**a).is_none()
            })
            .map(|(a, _)| *a)
            .collect();
        if self.members.live_count() == 0 {
            self.rng.shuffle(&mut candidates);
            for a in candidates.into_iter().take(MAX_SEEDS_PER_ROUND) {
                self.try_join(now, a, false);
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
            self.try_join(now, a, false);
        }
    }

    /// Number of remembered seed addresses (for bound tests).
    pub fn seed_count(&self) -> usize {
        self.join.seeds.len()
    }

    pub(super) fn join_sweep(&mut self, now: Instant) {
        self.join.seeds.retain(|_, s| now < s.seen + SEED_TTL);
        self.join
            .refused
            .retain(|_, r| now < r.until + REFUSAL_RETRY_MAX);
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
            self.admission_decided(
                now,
                id,
                Admission::Reject("admission decision timed out".into()),
            );
        }
        self.join
            .dead_notices
            .retain(|_, t| now < *t + Duration::from_secs(5));
        self.join
            .refusal_notices
            .retain(|_, t| now < *t + Duration::from_secs(5));
    }
}
