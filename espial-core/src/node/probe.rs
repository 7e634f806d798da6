//! SWIM failure detection with Lifeguard's extensions: one probe per interval, indirect
//! probes through `k` members on timeout (who answer with a `Nack` when the target stays
//! silent), suspicion at the end of the interval; probes to a suspect carry the suspicion
//! (buddy), and the local health score stretches our own probe interval and timeout when
//! our probes fail without the nacks that healthy links would bring. Also the master watch,
//! which confirms a silent master through direct and indirect probes before suspecting it
//! with a short timeout.

use super::Node;
use crate::membership::suspicion::Suspicions;
use crate::membership::{Applied, Liveness};
use crate::rng::Rng;
use crate::wire::{Claim, Msg, Update};
use crate::NodeId;
use std::collections::BTreeMap;
use std::time::Instant;

/// Master confirmation attempts (each: direct ping + indirect pings) before suspicion.
const MASTER_CONFIRM_ATTEMPTS: u32 = 2;

struct Probe {
    target: NodeId,
    seq: u64,
    indirect_at: Option<Instant>,
    acked: bool,
    /// Members asked to probe indirectly (each owes an ack or a nack).
    helpers: Vec<NodeId>,
    /// Helpers whose nack arrived.
    nacked: Vec<NodeId>,
}

/// An indirect probe we run for another member.
struct Relay {
    requester: NodeId,
    their_seq: u64,
    target: NodeId,
    expiry: Instant,
    /// When to nack if the target stayed silent (`None` once nacked).
    nack_at: Option<Instant>,
}

struct MasterCheck {
    seq: u64,
    deadline: Instant,
    attempt: u32,
}

/// Probe scheduling state.
pub(crate) struct ProbeState {
    order: Vec<NodeId>,
    idx: usize,
    next_probe: Instant,
    current: Option<Probe>,
    next_seq: u64,
    /// Indirect probes we run for others, by our seq.
    relays: BTreeMap<u64, Relay>,
    /// Local health score (Lifeguard's LHM) in `0..awareness_max`: probe interval and
    /// timeout are multiplied by `health + 1`.
    pub(crate) health: u32,
    /// Confirmations of current suspicions.
    pub(crate) suspicions: Suspicions,
    master_last_contact: Instant,
    master_check: Option<MasterCheck>,
    /// Consecutive master heartbeats whose member count differed from ours.
    pub(crate) digest_mismatches: u32,
    /// Suspects whose last-chance check is under way, with the rounds done.
    pub(crate) last_chance: BTreeMap<NodeId, u8>,
    /// Probe sequence numbers of last-chance checks.
    pub(crate) last_chance_seqs: BTreeMap<u64, NodeId>,
}

impl ProbeState {
    pub(crate) fn new(first_probe: Instant, now: Instant) -> Self {
        ProbeState {
            order: Vec::new(),
            idx: 0,
            next_probe: first_probe,
            current: None,
            next_seq: 1,
            relays: BTreeMap::new(),
            health: 0,
            suspicions: Suspicions::default(),
            master_last_contact: now,
            master_check: None,
            digest_mismatches: 0,
            last_chance: Default::default(),
            last_chance_seqs: BTreeMap::new(),
        }
    }

    /// Inserts a new member at a random position of the round-robin order.
    pub(crate) fn add_target(&mut self, id: NodeId, rng: &mut Rng) {
        if self.order.contains(&id) {
            return;
        }
        let pos = rng.below(self.order.len() + 1);
        self.order.insert(pos, id);
        if pos < self.idx {
            self.idx += 1;
        }
    }

    /// Makes `id` the next probe target (someone reported it down at an older incarnation
    /// than ours: check it ourselves rather than wait a whole round-robin cycle).
    pub(crate) fn probe_next(&mut self, id: NodeId) {
        if let Some(pos) = self.order.iter().position(|x| *x == id) {
            if pos >= self.idx {
                self.order.remove(pos);
            } else {
                self.order.remove(pos);
                self.idx -= 1;
            }
        }
        let at = self.idx.min(self.order.len());
        self.order.insert(at, id);
    }

    /// Whether the master was heard from within `d` before `now`.
    pub(crate) fn heard_master_within(&self, now: Instant, d: std::time::Duration) -> bool {
        now < self.master_last_contact + d
    }

    pub(crate) fn master_contact(&mut self, now: Instant) {
        self.master_last_contact = now;
        self.master_check = None;
    }

    pub(crate) fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let a = self
            .current
            .as_ref()
            .and_then(|p| if p.acked { None } else { p.indirect_at });
        let b = self.master_check.as_ref().map(|c| c.deadline);
        let c = self.relays.values().filter_map(|r| r.nack_at).min();
        [Some(self.next_probe), a, b, c].into_iter().flatten().min()
    }

    pub(crate) fn sweep(&mut self, now: Instant) {
        self.relays.retain(|_, r| r.expiry > now);
        // Last-chance seqs are tiny and short-lived; keep only the newest few hundred.
        while self.last_chance_seqs.len() > 256 {
            self.last_chance_seqs.pop_first();
        }
    }
}

impl Node {
    /// `d` stretched by the local health score: `d * (score + 1)`.
    pub(super) fn scaled(&self, d: std::time::Duration) -> std::time::Duration {
        d * (self.probe.health + 1)
    }

    /// Moves the local health score by `delta`, within `0..awareness_max`.
    pub(super) fn health_delta(&mut self, delta: i32) {
        let max = self.config.awareness_max.saturating_sub(1) as i64;
        let h = (self.probe.health as i64 + delta as i64).clamp(0, max);
        self.probe.health = h as u32;
    }

    /// A ping to `target`, with our suspicion of it when we hold one (Lifeguard's buddy
    /// rule: the suspect learns of it from the probe itself and can refute at once).
    pub(super) fn ping_msgs(&self, target: NodeId, seq: u64) -> Vec<Msg> {
        let mut msgs = vec![Msg::Ping { seq }];
        if let Some(m) = self.members.get(target) {
            if matches!(m.state, Liveness::Suspect { .. }) {
                msgs.push(Msg::Updates(vec![Update::Suspect {
                    id: target,
                    incarnation: m.info.incarnation,
                    by: self.me.id,
                }]));
            }
        }
        msgs
    }

    /// Nacks owed for indirect probes whose target stayed silent.
    pub(super) fn relay_timers(&mut self, now: Instant) {
        let due: Vec<(NodeId, u64)> = self
            .probe
            .relays
            .values_mut()
            .filter(|r| r.nack_at.is_some_and(|t| t <= now))
            .map(|r| {
                r.nack_at = None;
                (r.requester, r.their_seq)
            })
            .collect();
        for (requester, seq) in due {
            self.queue(requester, vec![Msg::Nack { seq }]);
        }
    }

    /// The SWIM probe cycle.
    pub(super) fn probe_timers(&mut self, now: Instant) {
        self.relay_timers(now);
        // Indirect stage of the current probe.
        let pending_indirect = self
            .probe
            .current
            .as_ref()
            .filter(|p| !p.acked && p.indirect_at.is_some_and(|t| t <= now))
            .map(|p| (p.target, p.seq));
        if let Some((target, seq)) = pending_indirect {
            if let Some(p) = self.probe.current.as_mut() {
                p.indirect_at = None;
            }
            if self.members.is_live(target) {
                let msgs = self.ping_msgs(target, seq);
                self.queue(target, msgs);
                let helpers = self.send_ping_reqs(target, seq);
                if let Some(p) = self.probe.current.as_mut() {
                    p.helpers = helpers;
                }
            }
        }
        if now < self.probe.next_probe {
            return;
        }
        self.probe.next_probe = now + self.scaled(self.config.probe_interval);
        // End of the previous probe: local health, then suspect an unanswered target.
        if let Some(p) = self.probe.current.take() {
            if p.acked {
                self.health_delta(-1);
            } else {
                // Helpers that neither acked nor nacked: our own links (or CPU) are the
                // likelier culprit. No helper at all: +1.
                let missing = p.helpers.len().saturating_sub(p.nacked.len());
                let delta = if p.helpers.is_empty() { 1 } else { missing };
                self.health_delta(delta as i32);
                self.suspect(now, p.target);
            }
        }
        let Some(target) = self.next_probe_target(now) else {
            return;
        };
        let seq = self.probe.seq();
        self.stats.probes += 1;
        self.probe.current = Some(super::probe::Probe {
            target,
            seq,
            indirect_at: Some(now + self.scaled(self.config.probe_timeout)),
            acked: false,
            helpers: Vec::new(),
            nacked: Vec::new(),
        });
        let msgs = self.ping_msgs(target, seq);
        self.queue(target, msgs);
    }

    fn next_probe_target(&mut self, _now: Instant) -> Option<NodeId> {
        let master = self.current_master();
        for _ in 0..2 {
            while self.probe.idx < self.probe.order.len() {
                let id = self.probe.order[self.probe.idx];
                if !self.members.get(id).is_some_and(|m| m.state.is_live()) {
                    self.probe.order.remove(self.probe.idx);
                    continue;
                }
                self.probe.idx += 1;
                if self.join.refused_by.contains(&id) {
                    continue; // it refuses us: it would not answer
                }
                if Some(id) == master && self.members.live_count() > 1 {
                    continue; // the master watch covers it
                }
                return Some(id);
            }
            self.probe.idx = 0;
            self.rng.shuffle(&mut self.probe.order);
        }
        None
    }

    /// Asks up to `indirect_checks` random members to probe `target`; returns them.
    pub(super) fn send_ping_reqs(&mut self, target: NodeId, seq: u64) -> Vec<NodeId> {
        let live = self.members.live_ids();
        let n = live.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = self.config.indirect_checks.min(n - 1);
        let mut picks: Vec<NodeId> = Vec::with_capacity(k);
        let mut tries = 0;
        while picks.len() < k && tries < 4 * k + 4 {
            tries += 1;
            let id = live[self.rng.below(n)];
            if id != target && !picks.contains(&id) && !self.join.refused_by.contains(&id) {
                picks.push(id);
            }
        }
        for id in &picks {
            self.queue(*id, vec![Msg::PingReq { seq, target }]);
        }
        picks
    }

    /// Starts suspecting a live member (gossiped, and told directly so it can refute); a
    /// failed probe of a member we already suspect is our own confirmation of it.
    pub(super) fn suspect(&mut self, now: Instant, id: NodeId) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let inc = m.info.incarnation;
        if matches!(m.state, Liveness::Suspect { .. }) {
            self.confirm_suspicion(now, id, inc, self.me.id);
            return;
        }
        if m.state != Liveness::Alive {
            return;
        }
        let timeout = self.suspicion_timeout_for(id);
        let a = self.members.apply_suspect(now, id, inc, timeout);
        if matches!(a, Applied::Suspected(_)) {
            self.probe.suspicions.start(now, id, inc, self.me.id);
            let u = Update::Suspect {
                id,
                incarnation: inc,
                by: self.me.id,
            };
            self.queue(id, vec![Msg::Updates(vec![u.clone()])]);
            self.on_applied(now, vec![a], Some(&u));
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, from: NodeId, seq: u64) {
        self.probe_answered(now, seq, from);
        if let Some(r) = self.probe.relays.remove(&seq) {
            if r.target == from {
                self.queue(
                    r.requester,
                    vec![Msg::IndirectAck {
                        seq: r.their_seq,
                        target: r.target,
                    }],
                );
            } else {
                self.probe.relays.insert(seq, r);
            }
        }
    }

    /// A helper we asked to probe our current target reports it silent: our own links work.
    pub(super) fn on_nack(&mut self, from: NodeId, seq: u64) {
        if let Some(p) = self.probe.current.as_mut() {
            if p.seq == seq && p.helpers.contains(&from) && !p.nacked.contains(&from) {
                p.nacked.push(from);
            }
        }
    }

    /// `from` (an authenticated sender, or we ourselves) confirms our suspicion of `id`:
    /// the suspicion may end sooner (never later, and not during a last-chance check).
    pub(super) fn confirm_suspicion(&mut self, now: Instant, id: NodeId, inc: u64, from: NodeId) {
        if self.election.claim.map(|c| c.master) == Some(id)
            || self.probe.last_chance.contains_key(&id)
        {
            return;
        }
        let n = self.members.live_count() + 1;
        let Some(at) = self
            .probe
            .suspicions
            .confirm(&self.config, n, id, inc, from)
        else {
            return;
        };
        if let Some(Liveness::Suspect { deadline, .. }) = self.members.get(id).map(|m| m.state) {
            if at < deadline {
                self.members.extend_suspicion(id, at.max(now));
            }
        }
    }

    pub(super) fn on_ping_req(&mut self, now: Instant, from: NodeId, seq: u64, target: NodeId) {
        if !self.members.is_live(target) || target == self.me.id {
            return;
        }
        let my_seq = self.probe.seq();
        let expiry = now + self.config.probe_interval * 2;
        self.probe.relays.insert(
            my_seq,
            Relay {
                requester: from,
                their_seq: seq,
                target,
                expiry,
                nack_at: Some(now + self.config.probe_timeout),
            },
        );
        let msgs = self.ping_msgs(target, my_seq);
        self.queue(target, msgs);
    }

    pub(super) fn on_indirect_ack(&mut self, now: Instant, seq: u64, target: NodeId) {
        self.probe_answered(now, seq, target);
    }

    /// `target` answered probe `seq` (directly or through another member): settles the
    /// current SWIM probe, the master check or a last-chance check that used this seq.
    fn probe_answered(&mut self, now: Instant, seq: u64, target: NodeId) {
        if self.probe.last_chance_seqs.get(&seq) == Some(&target) {
            self.probe.last_chance_seqs.remove(&seq);
            self.probe.last_chance.remove(&target);
            let a = self.members.clear_suspicion(target);
            self.on_applied(now, vec![a], None);
        }
        if let Some(p) = self.probe.current.as_mut() {
            if p.seq == seq && p.target == target {
                p.acked = true;
            }
        }
        if self
            .probe
            .master_check
            .as_ref()
            .is_some_and(|c| c.seq == seq)
        {
            self.probe.master_contact(now);
        }
    }

    /// Watches the master: silence for `master_timeout` starts confirmation probes; failed
    /// confirmations lead to suspicion with the short master suspicion timeout.
    pub(super) fn master_timers(&mut self, now: Instant) {
        let Some(master) = self.current_master() else {
            self.probe.master_check = None;
            return;
        };
        if master == self.me.id || self.join.refused_by.contains(&master) {
            // A master that refuses us is watched by the others for us.
            self.probe.master_check = None;
            return;
        }
        match self
            .probe
            .master_check
            .as_ref()
            .map(|c| (c.deadline, c.attempt))
        {
            None => {
                if now >= self.probe.master_last_contact + self.config.master_timeout
                    && self
                        .members
                        .get(master)
                        .is_some_and(|m| m.state == Liveness::Alive)
                {
                    self.start_master_check(now, master, 1);
                }
            }
            Some((deadline, attempt)) if now >= deadline => {
                if attempt < MASTER_CONFIRM_ATTEMPTS {
                    self.start_master_check(now, master, attempt + 1);
                } else {
                    self.probe.master_check = None;
                    self.probe.master_last_contact = now;
                    self.suspect(now, master);
                }
            }
            Some(_) => {}
        }
    }

    fn start_master_check(&mut self, now: Instant, master: NodeId, attempt: u32) {
        let seq = self.probe.seq();
        self.probe.master_check = Some(MasterCheck {
            seq,
            deadline: now + self.config.probe_timeout,
            attempt,
        });
        self.queue(master, vec![Msg::Ping { seq }]);
        self.send_ping_reqs(master, seq);
    }

    /// Master: heartbeat to every live member.
    pub(super) fn send_heartbeats(&mut self) {
        let Some(claim) = self.election.claim else {
            return;
        };
        if !self.is_master() {
            self.timers.heartbeat = None;
            return;
        }
        let hb = Msg::Heartbeat {
            claim,
            incarnation: self.me.incarnation,
            members: (self.members.live_count() + 1) as u32,
        };
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        for id in ids {
            self.queue(id, vec![hb.clone()]);
        }
    }

    pub(super) fn on_heartbeat(
        &mut self,
        now: Instant,
        from: NodeId,
        claim: Claim,
        incarnation: u64,
        members: u32,
    ) {
        if claim.master != from || claim.term > super::election::MAX_TERM {
            self.stats.election_dropped += 1;
            return;
        }
        // Membership digest: two heartbeats in a row with a different member count mean our
        // view (or the master's) missed an update; a full-state push-pull repairs both sides'
        // gaps in one round trip (node::anti_entropy).
        let mine = (self.members.live_count() + 1) as u32;
        if members != mine {
            self.probe.digest_mismatches += 1;
            if self.probe.digest_mismatches >= 2 {
                self.probe.digest_mismatches = 0;
                self.sync_soon(now);
            }
        } else {
            self.probe.digest_mismatches = 0;
        }
        if self
            .members
            .get(from)
            .is_some_and(|m| incarnation > m.info.incarnation)
        {
            // A refutation: its entry (maybe with new metadata) comes by gossip.
            let a = self.members.clear_suspicion(from);
            self.on_applied(now, vec![a], None);
        }
        if claim.master == from {
            if self.current_master().is_none() && self.election.claim.is_some_and(|c| claim < c) {
                // Our greater claim is void (its master is gone) and this node acts as master:
                // follow it. Terms seen never decrease: max_term keeps the higher one.
                self.election.claim = Some(claim);
                self.election.resigned = false;
                self.reconcile(now);
            } else {
                self.consider_claim(now, claim);
            }
            if self.election.claim == Some(claim) {
                self.probe.master_contact(now);
            }
        }
    }
}
