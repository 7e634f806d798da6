//! Master election: claims `(term, priority, id)` ordered lexicographically; sticky master;
//! ranked back-off instead of a promotion herd; `promote()`; step-down on a greater claim;
//! optional quorum mode.
//!
//! Rules (proved in `espial-sim`):
//! - A node adopts any claim greater than the one it holds; a master that adopts a greater
//!   claim has been replaced (`demotion`).
//! - When the claimed master is not a live member (dead, left or resigned), an eligible node
//!   waits until `election_timeout` after start (and after the last member it gained or the
//!   moment it regained quorum: newcomers' state may carry a live claim), then ranks the live eligible members it
//!   knows (priority, then id, greatest first). Rank r promotes itself `r * election_backoff`
//!   after the vacancy began, unless a claim arrives first, with `term = max seen + 1`.
//! - Quorum mode: a node promotes itself or stays master only while it sees at least
//!   `quorum` live members, itself included; below that a master resigns.

use super::Node;
use crate::event::Event;
use crate::wire::{Claim, Msg};
use crate::NodeId;
use std::time::Instant;

/// Election state of one node.
pub(crate) struct ElectionState {
    /// Greatest claim adopted.
    pub(crate) claim: Option<Claim>,
    /// Highest term seen.
    pub(crate) max_term: u64,
    /// The claim's master resigned (quorum lost or left).
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
        }
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

    fn quorum_ok(&self) -> bool {
        match self.config.quorum {
            Some(q) => self.members.live_count() + 1 >= q,
            None => true,
        }
    }

    /// Re-evaluates who the master is after any membership or claim change: emits
    /// promotion / demotion / new_master, resigns without quorum, schedules an election
    /// during a vacancy.
    pub(super) fn reconcile(&mut self, now: Instant) {
        if self.is_master() && !self.quorum_ok() {
            self.resign(now);
        }
        let m = self.current_master();
        if m != self.election.reported {
            let previous = self.election.reported;
            let term = self.election.claim.map(|c| c.term).unwrap_or(0);
            if previous == Some(self.me.id) {
                self.emit(Event::Demotion {
                    new_master: m,
                    term,
                });
            }
            match m {
                Some(id) if id == self.me.id => {
                    self.emit(Event::Promotion { previous, term });
                    self.timers.heartbeat = Some(now);
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
                None => {}
            }
            self.election.reported = m;
        }
        if m.is_some() {
            self.election.vacancy_since = None;
            self.election.at = None;
        } else {
            let since = *self.election.vacancy_since.get_or_insert(now);
            let quorum_ok = self.quorum_ok();
            if quorum_ok && !self.election.had_quorum {
                // Regaining quorum (a partition healed) is a gain: learn the others' claim
                // before competing with it.
                self.election.last_gain = Some(now);
            }
            self.election.had_quorum = quorum_ok;
            if self.me.master_eligible && self.quorum_ok() && self.election.at.is_none() {
                self.election.at = Some(since.max(self.election.not_before));
            }
            if !self.quorum_ok() {
                self.election.at = None;
            }
        }
    }

    /// Election timer: promote if this node's rank's back-off has passed.
    pub(super) fn election_timer(&mut self, now: Instant) {
        match self.election.at {
            Some(at) if at <= now => {}
            _ => return,
        }
        self.election.at = None;
        if self.current_master().is_some() || !self.me.master_eligible || !self.quorum_ok() {
            return;
        }
        let my_rank = self.me.rank();
        let rank = self
            .members
            .live_ids()
            .iter()
            .filter_map(|id| self.members.get(*id))
            .filter(|m| m.info.master_eligible && m.info.rank() > my_rank)
            .count() as u32;
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
            self.claim_mastership(now);
        } else {
            self.election.at = Some(due);
        }
    }

    /// Claims mastership with a term above every term seen and tells every member.
    pub(super) fn claim_mastership(&mut self, now: Instant) {
        let term = self.election.max_term + 1;
        let claim = Claim {
            term,
            priority: self.me.priority,
            master: self.me.id,
        };
        self.election.max_term = term;
        self.election.claim = Some(claim);
        self.election.resigned = false;
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        for id in ids {
            self.queue(id, vec![Msg::Claim(claim)]);
        }
        self.reconcile(now);
    }

    /// Adopts a claim greater than ours.
    pub(super) fn consider_claim(&mut self, now: Instant, c: Claim) {
        self.election.max_term = self.election.max_term.max(c.term);
        if self.election.claim.is_some_and(|mine| c <= mine) {
            return;
        }
        self.election.claim = Some(c);
        self.election.resigned = false;
        self.reconcile(now);
    }

    /// A master resigned its claim.
    pub(super) fn on_resign(&mut self, now: Instant, c: Claim) {
        self.election.max_term = self.election.max_term.max(c.term);
        if self.election.claim == Some(c) && !self.election.resigned {
            self.election.resigned = true;
            self.reconcile(now);
        }
    }

    fn resign(&mut self, _now: Instant) {
        let Some(c) = self.election.claim else {
            return;
        };
        self.election.resigned = true;
        self.timers.heartbeat = None;
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        for id in ids {
            self.queue(id, vec![Msg::Resign(c)]);
        }
    }
}
