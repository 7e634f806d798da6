//! Quorum mode: the master lease and the voters' promises, so that two nodes never act as
//! master at the same instant (under partitions, one-way links, pauses, slow nodes and
//! clock-rate drift up to `Config::max_clock_drift` = ρ).
//!
//! - **Lease.** Every `master_heartbeat_interval` the master sends `LeaseRequest` to
//!   `quorum − 1 + LEASE_SPARES` members (those that answered the last round first, then
//!   random ones), never to every member. When `quorum − 1` of them granted a round, the
//!   lease runs until that round's *send* time plus `lease` (L), on the master's clock. The
//!   master checks the lease on every input and before every master-only action; a lapsed
//!   lease demotes it at once (a node that cannot send gets no grants and loses the role).
//! - **Promise.** A member grants a `LeaseRequest` (or a vote) only when it follows that
//!   claim, has not voted in a higher term, and holds no running promise to another node;
//!   granting promises, for `lease_promise` L' ≥ L·(1+ρ)/(1−ρ) from *receipt*, to vote for
//!   no one else and to renew no one else's lease. A master's lease counted from before the
//!   receipt on a clock at least `1−ρ` fast ends in real time before a promise counted on a
//!   clock at most `1+ρ` fast.
//! - **Votes.** A candidate needs `quorum` yeses, itself included, each from a member whose
//!   promises have run out; a yes is itself a promise, so the new master's first lease runs
//!   from the send time of the requests answered. Any two quorums share a member, which
//!   either promised the old master (and refuses the vote until the promise runs out, when
//!   the old lease has lapsed) or voted first (and then refuses the old master's lower
//!   term). Members that still hear a live master refuse unless the request is forced
//!   (`promote()`); a forced request also stops their renewals of lower terms, so the old
//!   master's lease lapses and the takeover completes once the promises run out.

use super::election::MAX_TERM;
use super::watch::DeferredVote;
use super::Node;
use crate::wire::{Claim, Msg};
use crate::NodeId;
use std::collections::VecDeque;
use std::time::Instant;

/// Members asked each lease round beyond the `quorum − 1` needed (loss, slow members).
pub(crate) const LEASE_SPARES: usize = 2;
/// Lease rounds remembered (acks to older rounds are ignored).
const ROUNDS_KEPT: usize = 8;

struct Round {
    round: u64,
    sent_at: Instant,
    acks: Vec<NodeId>,
}

/// Lease bookkeeping: master side (`until`, rounds) and voter side (votes, promise).
#[derive(Default)]
pub(crate) struct LeaseState {
    /// Master side: the lease runs until this instant (this node's clock).
    until: Option<Instant>,
    rounds: VecDeque<Round>,
    next_round: u64,
    /// Members that granted the last complete round (asked again first).
    voters: Vec<NodeId>,
    /// Voter side: highest term voted or promised in.
    pub(crate) voted_term: u64,
    /// Voter side: whom it voted for or renewed in `voted_term` (`None`: nobody yet).
    pub(crate) voted_for: Option<NodeId>,
    /// Voter side: no support for anyone but `.0` until `.1`.
    promise: Option<(NodeId, Instant)>,
    /// Voter side: a forced takeover (`promote()`) by `.0` is under way until `.1`; other
    /// candidates are refused meanwhile, so they do not race it.
    transfer: Option<(NodeId, Instant)>,
}

impl LeaseState {
    /// Whether this node may vote for (or renew) `id` in `term` now.
    pub(crate) fn may_vote_for(&self, id: NodeId, term: u64, now: Instant) -> bool {
        let free = self
            .promise
            .is_none_or(|(holder, until)| holder == id || now >= until);
        let term_ok = term > self.voted_term
            || (term == self.voted_term && self.voted_for.is_none_or(|v| v == id));
        free && term_ok
    }

    /// Records a vote or renewal for `id` in `term`, with a promise until `promise`.
    pub(crate) fn vote(&mut self, id: NodeId, term: u64, promise: Option<Instant>) {
        self.voted_term = term;
        self.voted_for = Some(id);
        if let Some(until) = promise {
            self.promise = Some((id, until));
        }
    }

    /// A claim was adopted: no renewal below its term any more.
    pub(crate) fn saw_claim(&mut self, c: Claim) {
        if c.term > self.voted_term {
            self.voted_term = c.term;
            self.voted_for = None;
        }
    }

    /// Master side: a new lease (won election).
    pub(crate) fn start(&mut self, until: Instant) {
        self.until = Some(until);
        self.rounds.clear();
        self.voters.clear();
    }

    /// Master side: the role is given up.
    pub(crate) fn stop(&mut self) {
        self.until = None;
        self.rounds.clear();
    }

    /// Master side: the lease runs at `now`.
    pub(crate) fn valid(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// Master side: end of the lease.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Voter side: the end of a running promise to another node than `me`.
    pub(crate) fn promised_other(&self, me: NodeId, now: Instant) -> Option<Instant> {
        self.promise
            .filter(|(holder, until)| *holder != me && now < *until)
            .map(|p| p.1)
    }
}

impl Node {
    /// Quorum mode: a master whose lease lapsed steps down at once. Called before every
    /// input is handled and before every master-only action.
    pub(super) fn check_lease(&mut self, now: Instant) {
        if self.config.quorum.is_none() || self.left {
            return;
        }
        let Some(c) = self.election.claim else {
            return;
        };
        if c.master != self.me.id || self.election.resigned || self.election.lease.valid(now) {
            return;
        }
        self.resign(now);
        self.reconcile(now);
    }

    /// Master, quorum mode: one lease round (with every heartbeat).
    pub(super) fn lease_round(&mut self, now: Instant) {
        let Some(q) = self.config.quorum else {
            return;
        };
        let Some(claim) = self.election.claim else {
            return;
        };
        if !self.is_master() {
            return;
        }
        let need = q.saturating_sub(1);
        if need == 0 {
            // A quorum of one: the node alone is the quorum.
            self.election.lease.until = Some(now + self.config.lease);
            return;
        }
        let live = self.members.live_ids();
        let want = (need + LEASE_SPARES).min(live.len());
        let mut targets: Vec<NodeId> = self
            .election
            .lease
            .voters
            .iter()
            .copied()
            .filter(|id| self.members.is_live(*id))
            .take(want)
            .collect();
        let mut tries = 0;
        while targets.len() < want && tries < 4 * want + 8 {
            tries += 1;
            let id = live[self.rng.below(live.len())];
            if !targets.contains(&id) {
                targets.push(id);
            }
        }
        if targets.len() < want {
            for id in live {
                if targets.len() == want {
                    break;
                }
                if !targets.contains(id) {
                    targets.push(*id);
                }
            }
        }
        let l = &mut self.election.lease;
        let round = l.next_round;
        l.next_round += 1;
        l.rounds.push_back(Round {
            round,
            sent_at: now,
            acks: Vec::new(),
        });
        while l.rounds.len() > ROUNDS_KEPT {
            l.rounds.pop_front();
        }
        for id in targets {
            self.queue(id, vec![Msg::LeaseRequest { claim, round }]);
        }
    }

    /// A master asks us to renew its lease.
    pub(super) fn on_lease_request(
        &mut self,
        now: Instant,
        from: NodeId,
        claim: Claim,
        round: u64,
    ) {
        if claim.master != from || claim.term > MAX_TERM {
            self.stats.election_dropped += 1;
            return;
        }
        let mut granted = false;
        if self.config.quorum.is_some() {
            self.consider_claim(now, claim);
            let following = self.election.claim == Some(claim) && !self.election.resigned;
            granted = following && self.election.lease.may_vote_for(from, claim.term, now);
            if granted {
                let until = now + self.config.lease_promise();
                self.election.lease.vote(from, claim.term, Some(until));
                self.probe.master_contact(now);
            }
        }
        self.queue(
            from,
            vec![Msg::LeaseAck {
                term: claim.term,
                round,
                granted,
            }],
        );
    }

    /// A member answered a lease round.
    pub(super) fn on_lease_ack(
        &mut self,
        _now: Instant,
        from: NodeId,
        term: u64,
        round: u64,
        granted: bool,
    ) {
        let (Some(q), Some(c)) = (self.config.quorum, self.election.claim) else {
            return;
        };
        if !granted || c.master != self.me.id || self.election.resigned || c.term != term {
            return;
        }
        let need = q.saturating_sub(1);
        let lease = self.config.lease;
        let l = &mut self.election.lease;
        let Some(r) = l.rounds.iter_mut().find(|r| r.round == round) else {
            return;
        };
        if !r.acks.contains(&from) {
            r.acks.push(from);
        }
        if r.acks.len() >= need {
            let until = r.sent_at + lease;
            if l.until.is_none_or(|u| u < until) {
                l.until = Some(until);
            }
            l.voters = r.acks.clone();
        }
    }

    /// A candidate asks for our vote (quorum mode) or whether it reaches us (available
    /// mode).
    pub(super) fn on_vote_request(
        &mut self,
        now: Instant,
        from: NodeId,
        claim: Claim,
        attempt: u32,
        force: bool,
    ) {
        if claim.master != from || claim.term > MAX_TERM {
            self.stats.election_dropped += 1;
            return;
        }
        if self
            .election
            .claim
            .is_some_and(|c| c.master == from && c.term < claim.term)
            && !self.election.resigned
        {
            // Our master asks for a new term: it no longer holds the old one.
            self.election.resigned = true;
            self.reconcile(now);
        }
        let higher = self
            .members
            .get(from)
            .is_some_and(|m| m.info.rank() > self.me.rank());
        if self.config.quorum.is_some()
            && higher
            && self.election.candidacy.as_ref().is_some_and(|c| !c.force)
        {
            // Yield to a better-ranked candidate rather than split the votes.
            self.election.candidacy = None;
            self.retry_election_later(now);
        }
        let hears_master = match self.hears_master_for_vote(now, from) {
            Some(h) => h,
            None if !force => {
                let v = DeferredVote {
                    from,
                    claim,
                    attempt,
                    since: now,
                };
                self.defer_vote(now, v);
                return;
            }
            None => false,
        };
        self.answer_vote(now, from, claim, attempt, force, hears_master);
    }

    /// Answers a vote request, knowing whether this node hears a live master.
    pub(super) fn answer_vote(
        &mut self,
        now: Instant,
        from: NodeId,
        claim: Claim,
        attempt: u32,
        force: bool,
        hears_master: bool,
    ) {
        let eligible = self
            .members
            .get(from)
            .is_some_and(|m| m.info.master_eligible);
        let (granted, voted_term) = match self.config.quorum {
            None => (eligible && (force || !hears_master), self.election.max_term),
            Some(_) => {
                if force && eligible {
                    let until = now + self.config.lease_promise() * 3;
                    self.election.lease.transfer = Some((from, until));
                }
                let other_transfer = self
                    .election
                    .lease
                    .transfer
                    .is_some_and(|(c, until)| c != from && now < until);
                if force && eligible && claim.term > self.election.lease.voted_term {
                    // A takeover: renew nobody below this term any more.
                    self.election.lease.voted_term = claim.term;
                    self.election.lease.voted_for = None;
                    if self.is_master() {
                        self.resign(now);
                        self.reconcile(now);
                    }
                }
                // A candidate keeps its own vote (it yielded above if the other ranks
                // better and its candidacy was not forced).
                let candidate = self.election.candidacy.is_some();
                let ok = eligible
                    && !candidate
                    && (force || !hears_master)
                    && !other_transfer
                    && self.election.lease.may_vote_for(from, claim.term, now);
                if ok {
                    let until = now + self.config.lease_promise();
                    self.election.lease.vote(from, claim.term, Some(until));
                }
                // Report a term at or above the one asked for only when the term is what
                // refused it (the candidate then asks again above it).
                let l = &self.election.lease;
                let term_ok = claim.term > l.voted_term
                    || (claim.term == l.voted_term && l.voted_for.is_none_or(|v| v == from));
                let reported = if term_ok {
                    l.voted_term.min(claim.term.saturating_sub(1))
                } else {
                    l.voted_term
                };
                (ok, reported)
            }
        };
        let master = if !granted && hears_master {
            self.election.claim
        } else {
            None
        };
        self.queue(
            from,
            vec![Msg::VoteReply {
                term: claim.term,
                attempt,
                granted,
                voted_term,
                master,
            }],
        );
    }
}
