//! Master election: claims `(majority, term, priority, id)` ordered lexicographically;
//! sticky master; ranked back-off instead of a promotion herd; candidacies that ask the
//! members before claiming; `promote()`; step-down on a greater claim.
//!
//! Rules (proved in `espial-sim`; `docs/PROTOCOL.md` has the exact wire rules):
//! - A node adopts any claim greater than the one it holds; a master that adopts a greater
//!   claim has been replaced (`demotion`).
//! - When the claimed master is not a live member (dead, left or resigned), an eligible node
//!   waits until `election_timeout` after start (and after the last member it gained or the
//!   moment it regained quorum: newcomers' state may carry a live claim), then ranks the
//!   live eligible members it knows (priority, then id, greatest first). Rank r becomes a
//!   candidate `r * election_backoff` after the vacancy began, unless a claim arrives first.
//! - A candidate proposes `term = max(max_term, voted_term) + 1` in a `VoteRequest` to every
//!   live member and raises no term of its own until it wins:
//!   - available mode: it claims as soon as a majority of the members it knows (live and
//!     failed, itself included) answered yes, with `majority = true`; if the answers do not
//!     come within two probe timeouts it claims anyway with `majority = false` (partitions
//!     stay available), so a node that was cut off never wins over the majority's master at
//!     the heal. A member that still hears a live master answers no with its claim and the
//!     candidate steps back;
//!   - quorum mode: it needs `quorum` votes, itself included; see [`super::lease`] for the
//!     vote and lease rules that keep two masters from acting at the same instant.
//! - Every claim, heartbeat, resignation, lease or vote request is accepted only from the
//!   session authenticated as the claim's master; terms above [`MAX_TERM`] are refused.

use super::lease::LeaseState;
use super::Node;
use crate::cipher::DOMAIN_CLAIM;
use crate::event::Event;
use crate::wire::{Claim, Msg};
use crate::NodeId;
use std::collections::BTreeMap;
use std::time::Instant;

/// Highest plausible term (2^48: one election per microsecond for nine years). Claims,
/// requests and state above it are refused, so `term + 1` never overflows.
pub(crate) const MAX_TERM: u64 = 1 << 48;

/// The signed bytes of a claim: its postcard encoding.
pub(crate) fn claim_bytes(c: &Claim) -> Vec<u8> {
    postcard::to_allocvec(c).unwrap_or_default()
}

/// A candidacy in progress.
pub(crate) struct Candidacy {
    /// The claim proposed (`majority` is set when it wins).
    pub(crate) claim: Claim,
    /// Forced by `promote()`.
    pub(crate) force: bool,
    /// Attempts sent: id and send time.
    pub(crate) attempts: Vec<(u32, Instant)>,
    /// Members that said yes, with the send time of the attempt they answered.
    pub(crate) granted: BTreeMap<NodeId, Instant>,
    /// Highest `voted_term` reported by a refusal (ask again above it).
    pub(crate) bump: u64,
    /// A member answered that it still follows a live master.
    pub(crate) master_alive: bool,
    /// Next attempt (quorum mode) is sent at this instant.
    pub(crate) retry_at: Instant,
    /// The candidacy ends here (available mode: claims without a majority).
    pub(crate) give_up: Instant,
}

/// Election state of one node.
pub(crate) struct ElectionState {
    /// Greatest claim adopted.
    pub(crate) claim: Option<Claim>,
    /// Highest term seen.
    pub(crate) max_term: u64,
    /// The claim's master resigned (lease or quorum lost, or left).
    pub(crate) resigned: bool,
    /// The master last reported to the application.
    pub(crate) reported: Option<NodeId>,
    /// When the current vacancy began (no live master).
    pub(crate) vacancy_since: Option<Instant>,
    /// Earliest instant this node may promote itself.
    pub(crate) not_before: Instant,
    /// Pending election timer.
    pub(crate) at: Option<Instant>,
    /// Last time a member was added: newcomers may bring a live claim in their state, so a
    /// vacancy election waits a little after a gain (never after a loss: failover is fast).
    pub(crate) last_gain: Option<Instant>,
    /// Quorum was satisfied at the last reconcile.
    pub(crate) had_quorum: bool,
    /// The candidacy in progress.
    pub(crate) candidacy: Option<Candidacy>,
    /// Next vote request attempt id.
    pub(crate) next_attempt: u32,
    /// Quorum mode: lease (master side) and promises (voter side).
    pub(crate) lease: LeaseState,
    /// The master's signature over `claim` (empty when not known): relayed in `State`.
    pub(crate) claim_sig: Vec<u8>,
    /// Vote requests waiting for a master check (`super::watch`).
    pub(crate) deferred_votes: Vec<super::watch::DeferredVote>,
    /// Master side: its watchers and the heartbeats piggybacked to the others.
    pub(crate) watch: super::watch::WatchState,
}

impl ElectionState {
    pub(crate) fn new(not_before: Instant) -> Self {
        ElectionState {
            claim: None,
            max_term: 0,
            resigned: false,
            reported: None,
            vacancy_since: None,
            not_before,
            at: Some(not_before),
            last_gain: None,
            had_quorum: true,
            candidacy: None,
            next_attempt: 0,
            lease: LeaseState::default(),
            claim_sig: Vec::new(),
            deferred_votes: Vec::new(),
            watch: Default::default(),
        }
    }

    /// Earliest election deadline (timer, candidacy retry or end).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let c = self.candidacy.as_ref().map(|c| c.retry_at.min(c.give_up));
        [self.at, c].into_iter().flatten().min()
    }
}

impl Node {
    /// The master this node follows: the claim's master while it is a live member (or us)
    /// and has not resigned.
    pub(super) fn current_master(&self) -> Option<NodeId> {
        let c = self.election.claim?;
        if self.election.resigned {
            return None;
        }
        if c.master == self.me.id {
            return (!self.left).then_some(c.master);
        }
        self.members.is_live(c.master).then_some(c.master)
    }

    pub(super) fn quorum_ok(&self) -> bool {
        match self.config.quorum {
            Some(q) => self.members.live_count() + 1 >= q,
            None => true,
        }
    }

    /// Re-evaluates who the master is after any membership or claim change: emits
    /// promotion / demotion / new_master / no_master, resigns without quorum, schedules an
    /// election during a vacancy.
    pub(super) fn reconcile(&mut self, now: Instant) {
        if self.is_master() && !self.quorum_ok() {
            self.resign(now);
        }
        let m = self.current_master();
        if m != self.election.reported {
            let previous = self.election.reported;
            let term = self.election.claim.map(|c| c.term).unwrap_or(0);
            if previous == Some(self.me.id) {
                self.election.lease.stop();
                self.emit(Event::Demotion {
                    new_master: m,
                    term,
                });
            }
            match m {
                Some(id) if id == self.me.id => {
                    self.emit(Event::Promotion { previous, term });
                    self.timers.heartbeat = Some(now);
                    self.election
                        .watch
                        .promoted(now + self.config.master_timeout);
                }
                Some(id) => {
                    let node = self.members.get(id).map(|mm| mm.info.clone());
                    self.emit(Event::NewMaster {
                        master: id,
                        node,
                        term,
                    });
                    self.probe.master_contact(now);
                }
                None => {
                    if let Some(previous) = previous {
                        self.emit(Event::NoMaster { previous });
                    }
                }
            }
            self.election.reported = m;
        }
        if m.is_some() {
            self.election.vacancy_since = None;
            self.election.at = None;
            if self.election.candidacy.as_ref().is_some_and(|c| !c.force) {
                self.election.candidacy = None;
            }
        } else {
            let since = *self.election.vacancy_since.get_or_insert(now);
            let quorum_ok = self.quorum_ok();
            if quorum_ok && !self.election.had_quorum {
                // Regaining quorum (a partition healed) is a gain: learn the others' claim
                // before competing with it.
                self.election.last_gain = Some(now);
            }
            self.election.had_quorum = quorum_ok;
            if self.me.master_eligible && quorum_ok && self.election.at.is_none() {
                self.election.at = Some(since.max(self.election.not_before));
            }
            if !quorum_ok {
                self.election.at = None;
            }
        }
    }

    /// Election timer: become a candidate once this node's rank's back-off has passed;
    /// candidacy retries and ends.
    pub(super) fn election_timer(&mut self, now: Instant) {
        self.candidacy_timer(now);
        match self.election.at {
            Some(at) if at <= now => {}
            _ => return,
        }
        self.election.at = None;
        if self.current_master().is_some() || !self.me.master_eligible || !self.quorum_ok() {
            return;
        }
        let rank = self.eligible_members_above_me();
        let mut since = self
            .election
            .vacancy_since
            .unwrap_or(now)
            .max(self.election.not_before);
        if let Some(gain) = self.election.last_gain {
            since = since.max(gain + self.config.election_timeout);
        }
        let due = since + self.config.election_backoff * rank;
        if now >= due {
            self.start_candidacy(now, false);
        } else {
            self.election.at = Some(due);
        }
    }

    /// Starts asking the members for their votes (see the module doc). `force`: a
    /// `promote()` takeover.
    pub(super) fn start_candidacy(&mut self, now: Instant, force: bool) {
        if let Some(c) = self.election.candidacy.as_mut() {
            c.force |= force;
            return;
        }
        if self.config.quorum.is_some() && !force {
            if let Some(until) = self.election.lease.promised_other(self.me.id, now) {
                // Our own vote is promised to another node: ask once it is free.
                self.election.at = Some(until);
                return;
            }
        }
        let base = self.election.max_term.max(self.election.lease.voted_term);
        let Some(term) = base.checked_add(1).filter(|t| *t <= MAX_TERM) else {
            return;
        };
        let claim = Claim {
            majority: false,
            term,
            priority: self.me.priority,
            master: self.me.id,
        };
        let span = match self.config.quorum {
            // A forced takeover waits for the old master's promises to run out.
            Some(_) if force => self.config.lease_promise() * 3,
            Some(_) => self.config.lease_promise() + self.config.probe_timeout * 2,
            None => self.config.probe_timeout * 2,
        };
        self.election.candidacy = Some(Candidacy {
            claim,
            force,
            attempts: Vec::new(),
            granted: BTreeMap::new(),
            bump: 0,
            master_alive: false,
            retry_at: now,
            give_up: now + span,
        });
        self.send_vote_requests(now);
        self.maybe_win(now);
    }

    /// Sends one attempt of vote requests to the live members that have not said yes.
    fn send_vote_requests(&mut self, now: Instant) {
        let attempt = self.election.next_attempt;
        self.election.next_attempt = attempt.wrapping_add(1);
        let retry = match self.config.quorum {
            Some(_) => self.config.probe_timeout,
            None => self.config.probe_timeout * 4,
        };
        let Some(c) = self.election.candidacy.as_mut() else {
            return;
        };
        c.attempts.push((attempt, now));
        if c.attempts.len() > 16 {
            c.attempts.remove(0);
        }
        c.retry_at = now + retry;
        let msg = Msg::VoteRequest {
            claim: c.claim,
            attempt,
            force: c.force,
        };
        let ids: Vec<NodeId> = self
            .members
            .live_ids()
            .iter()
            .copied()
            .filter(|id| !c.granted.contains_key(id))
            .collect();
        for id in ids {
            self.queue(id, vec![msg.clone()]);
        }
    }

    /// Retries and ends of the candidacy.
    fn candidacy_timer(&mut self, now: Instant) {
        let Some(c) = self.election.candidacy.as_ref() else {
            return;
        };
        let vacancy = self.current_master().is_none() || c.force;
        if now >= c.give_up || !vacancy {
            let c = self.election.candidacy.take().expect("checked");
            if self.config.quorum.is_none() && vacancy && !c.master_alive {
                // Available mode: no majority answered in time; claim anyway, marked.
                self.win(now, c.claim, false);
            } else if self.current_master().is_none() && self.me.master_eligible {
                self.retry_election_later(now);
            }
            return;
        }
        if now >= c.retry_at && self.config.quorum.is_some() {
            if let Some(c) = self.election.candidacy.as_mut() {
                if c.bump >= c.claim.term {
                    match c.bump.checked_add(1).filter(|t| *t <= MAX_TERM) {
                        Some(t) => {
                            c.claim.term = t;
                            c.granted.clear();
                        }
                        None => {
                            self.election.candidacy = None;
                            return;
                        }
                    }
                }
            }
            self.send_vote_requests(now);
        }
    }

    /// How many live eligible members outrank this node (its place in the promotion order).
    fn eligible_members_above_me(&self) -> u32 {
        let my_rank = self.me.rank();
        self.members
            .live_ids()
            .iter()
            .filter_map(|id| self.members.get(*id))
            .filter(|m| m.info.master_eligible && m.info.rank() > my_rank)
            .count() as u32
    }

    /// After a failed or abandoned candidacy: try again once the promises given in this
    /// round have run out (quorum mode), best-ranked first, with jitter.
    pub(super) fn retry_election_later(&mut self, now: Instant) {
        let rank = self.eligible_members_above_me();
        let backoff = self.config.election_backoff;
        let base = match self.config.quorum {
            Some(_) => self.config.lease_promise(),
            None => backoff,
        };
        let jitter = backoff.mul_f64(self.rng.unit() / 2.0);
        self.election.at = Some(now + base + backoff * rank + jitter);
    }

    /// A member answered a vote request.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_vote_reply(
        &mut self,
        now: Instant,
        from: NodeId,
        term: u64,
        attempt: u32,
        granted: bool,
        voted_term: u64,
        master: Option<Claim>,
    ) {
        let Some(c) = self.election.candidacy.as_mut() else {
            return;
        };
        if c.claim.term != term {
            return;
        }
        let Some(sent) = c.attempts.iter().find(|a| a.0 == attempt).map(|a| a.1) else {
            return;
        };
        if granted {
            c.granted.entry(from).or_insert(sent);
        } else {
            if voted_term <= MAX_TERM {
                c.bump = c.bump.max(voted_term);
            }
            if master.is_some() && !c.force {
                c.master_alive = true;
                if self.config.quorum.is_none() {
                    // It still follows a live master we lost: step back and pull its state.
                    self.election.candidacy = None;
                    self.sync_with(from);
                    let jitter = self.config.election_timeout.mul_f64(1.0 + self.rng.unit());
                    self.election.at = Some(now + jitter);
                    return;
                }
            }
        }
        self.maybe_win(now);
    }

    /// Claims mastership when the candidacy has enough yeses.
    fn maybe_win(&mut self, now: Instant) {
        let Some(c) = self.election.candidacy.as_mut() else {
            return;
        };
        match self.config.quorum {
            Some(q) => {
                // Only yeses whose promise still covers the lease count.
                let lease = self.config.lease;
                c.granted.retain(|_, sent| *sent + lease > now);
                let me = self.me.id;
                if !self.election.lease.may_vote_for(me, c.claim.term, now) {
                    return;
                }
                if c.granted.len() + 1 < q {
                    return;
                }
                let from = c.granted.values().min().copied().unwrap_or(now);
                let claim = c.claim;
                self.election.candidacy = None;
                self.election.lease.vote(me, claim.term, None);
                self.election.lease.start(from + lease);
                self.win(now, claim, true);
            }
            None => {
                let known = self
                    .members
                    .iter()
                    .filter(|m| !matches!(m.state, crate::membership::Liveness::Left { .. }))
                    .count()
                    + 1;
                if (c.granted.len() + 1) * 2 > known {
                    let claim = c.claim;
                    self.election.candidacy = None;
                    self.win(now, claim, true);
                }
            }
        }
    }

    /// Becomes master with `claim` and tells every member (once per election).
    fn win(&mut self, now: Instant, mut claim: Claim, majority: bool) {
        claim.majority = majority;
        if self.config.quorum.is_none() && claim.term <= self.election.max_term {
            // A claim seen meanwhile raised the terms (its master is gone, or we would not
            // be here): claim above it so every member adopts ours.
            match self
                .election
                .max_term
                .checked_add(1)
                .filter(|t| *t <= MAX_TERM)
            {
                Some(t) => claim.term = t,
                None => return,
            }
        }
        self.election.max_term = self.election.max_term.max(claim.term);
        self.election.claim = Some(claim);
        self.election.resigned = false;
        let signature = self
            .sessions
            .cipher()
            .sign(DOMAIN_CLAIM, &claim_bytes(&claim));
        self.election.claim_sig = signature.clone();
        let msg = Msg::SignedClaim { claim, signature };
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        for id in ids {
            self.queue(id, vec![msg.clone()]);
        }
        self.reconcile(now);
    }

    /// Whether `sig` is the signature of `c`'s master over `c` (its key from the member
    /// table, checked against its id). The claim we hold with the same signature bytes is
    /// not verified again: `claim_sig` is only ever our own signature or one that verified
    /// (every state and digest chunk relays the claim: without this, each chunk cost one
    /// signature verification).
    pub(super) fn claim_signed(&self, c: &Claim, sig: &[u8]) -> bool {
        if sig.is_empty() {
            return false;
        }
        if self.election.claim == Some(*c) && self.election.claim_sig == sig {
            return true;
        }
        let key = if c.master == self.me.id {
            self.sessions.cipher().identity_public_key()
        } else {
            match self.members.get(c.master) {
                Some(m) => m.info.public_key.clone(),
                None => return false,
            }
        };
        let cipher = self.sessions.cipher();
        cipher.node_id_for(&key) == Some(c.master)
            && cipher
                .verify(&key, DOMAIN_CLAIM, &claim_bytes(c), sig)
                .is_ok()
    }

    /// Adopts a claim (see `consider_claim`) and keeps its master's signature to relay it.
    /// `direct`: sent by the claim's master itself (see `follow_claim_of_its_master`).
    pub(super) fn consider_signed_claim(
        &mut self,
        now: Instant,
        c: Claim,
        sig: Vec<u8>,
        direct: bool,
    ) {
        if direct {
            self.follow_claim_of_its_master(now, c);
        } else {
            self.consider_claim(now, c);
        }
        if self.election.claim == Some(c) && self.election.claim_sig.is_empty() {
            self.election.claim_sig = sig;
        }
    }

    /// A claim sent by its own master (claim, signed claim or heartbeat: that master acts
    /// on it). Adopted like any claim; also when it is lower than ours but ours is void
    /// (its master is gone): then this is the master there is.
    pub(super) fn follow_claim_of_its_master(&mut self, now: Instant, c: Claim) {
        let ours_void_and_greater = self.current_master().is_none()
            && self.election.claim.is_some_and(|mine| c < mine)
            && c.term <= MAX_TERM;
        if !ours_void_and_greater {
            self.consider_claim(now, c);
            return;
        }
        // Terms seen never decrease: max_term keeps the higher one.
        self.election.claim = Some(c);
        self.election.claim_sig = Vec::new();
        self.election.resigned = false;
        self.reconcile(now);
    }

    /// Adopts a claim greater than ours.
    pub(super) fn consider_claim(&mut self, now: Instant, c: Claim) {
        if c.term > MAX_TERM {
            self.stats.election_dropped += 1;
            return;
        }
        self.election.max_term = self.election.max_term.max(c.term);
        if self.election.claim.is_some_and(|mine| c <= mine) {
            return;
        }
        self.election.claim = Some(c);
        self.election.claim_sig = Vec::new();
        // Quorum mode: our own old claim (state sync after a restart) is no mastership
        // without a lease.
        self.election.resigned = c.master == self.me.id
            && self.config.quorum.is_some()
            && !self.election.lease.valid(now);
        self.election.lease.saw_claim(c);
        self.reconcile(now);
    }

    /// The master of `c` resigned (sent by that master itself).
    pub(super) fn on_resign(&mut self, now: Instant, c: Claim) {
        if c.term > MAX_TERM {
            self.stats.election_dropped += 1;
            return;
        }
        self.election.max_term = self.election.max_term.max(c.term);
        if self.election.claim == Some(c) && !self.election.resigned {
            self.election.resigned = true;
            self.reconcile(now);
        }
    }

    /// Gives the role up: tells every live member and stops heartbeats.
    pub(super) fn resign(&mut self, _now: Instant) {
        let Some(c) = self.election.claim else {
            return;
        };
        self.election.resigned = true;
        self.election.lease.stop();
        self.timers.heartbeat = None;
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        for id in ids {
            self.queue(id, vec![Msg::Resign(c)]);
        }
    }

    /// Full state exchange with one member (learns its claim).
    fn sync_with(&mut self, id: NodeId) {
        self.push_full_state(id);
    }
}
