//! The master's watchers: who hears the master's heartbeats, so that the master's traffic
//! stays flat as the cluster grows (DESIGN.md: no all-to-all heartbeats).
//!
//! - The master sends `Heartbeat` to at most [`MASTER_WATCHERS`] live members: the
//!   best-ranked by `(master_eligible, priority, id)`, greatest first. They are the likely
//!   successors, so the members that notice a dead master first are the ones that take over
//!   without waiting for gossip. In a cluster of at most `MASTER_WATCHERS + 1` nodes every
//!   member is a watcher (the behaviour before this rule).
//! - Each member ranks itself the same way over its own view. A watcher runs the master
//!   watch of [`super::probe`] (silence for `master_timeout`, confirmation probes, short
//!   suspicion). A member that is not a watcher leaves the master to SWIM's round-robin
//!   probes like any other member, and learns of a vacancy from gossip or from a candidate.
//!   Views may differ for a moment: a member that thinks it watches but gets no heartbeats
//!   confirms the master with a ping every `master_timeout`; one that gets heartbeats it did
//!   not expect uses them.
//! - For `master_timeout` after its promotion the master heartbeats every member: its one
//!   `Claim` may have been lost or have overtaken a new session's confirmation.
//! - The other members still hear the master now and then: a datagram the master sends to
//!   a non-watcher anyway (probe, gossip, events) carries a heartbeat when that member had
//!   none for `master_heartbeat_interval`. This repairs a `Claim` lost in a partition (a heartbeat is
//!   the master's own word that it acts) without a message of its own.
//! - **Votes from non-watchers.** "Refuse a candidate while the master is heard" must not
//!   turn into "grant because I never listen": a member that is not a watcher, asked for a
//!   vote (not forced) while it holds a live master it has not heard within
//!   `master_timeout`, first probes the master (direct ping and indirect pings, one
//!   `probe_timeout`) and answers afterwards: no, with the claim, if the master answered;
//!   otherwise as a member that does not hear its master. A node cut off from the master
//!   therefore cannot win the majority's non-watchers by asking them. At most
//!   [`MAX_DEFERRED_VOTES`] such answers wait at once (one per candidate; the oldest is
//!   answered as not heard when more arrive, which only costs the master a vote it was not
//!   asking for).
//!
//! # Example
//!
//! ```text
//! 50 members, master M. M heartbeats W = the 8 best-ranked live members (W1..W8).
//! M crashes: W1..W8 miss heartbeats for master_timeout, confirm, suspect M; W1 (rank 0)
//! becomes candidate at once and asks everyone. A non-watcher X holding M as live and
//! not heard: probes M (200 ms on lan), gets nothing, answers yes. X holding M as suspect
//! or dead (gossip came first, e.g. piggybacked on the request): answers at once.
//! ```

use super::Node;
use crate::membership::Liveness;
use crate::node_info::NodeInfo;
use crate::wire::{Claim, Msg};
use crate::NodeId;
use std::collections::BTreeMap;
use std::time::Instant;

/// Live members the master sends heartbeats to (see the module doc).
pub const MASTER_WATCHERS: usize = 8;

/// Vote requests from different candidates that may wait for a master check at once.
pub(crate) const MAX_DEFERRED_VOTES: usize = 8;

/// A vote request waiting for this node to check its master (non-watchers only).
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeferredVote {
    pub(crate) from: NodeId,
    pub(crate) claim: Claim,
    pub(crate) attempt: u32,
    /// When the request arrived: the master counts as heard only if it answered after.
    pub(crate) since: Instant,
}

/// Master side: the watchers of the last heartbeat round, and when each other member last
/// got a heartbeat riding on a datagram that was sent to it anyway.
#[derive(Default)]
pub(crate) struct WatchState {
    targets: Vec<NodeId>,
    piggybacked: BTreeMap<NodeId, Instant>,
    /// Right after a promotion, heartbeats go to every member until this instant.
    everyone_until: Option<Instant>,
}

impl WatchState {
    /// This node became master: every member gets the heartbeats (the claim's repeats)
    /// until `until`.
    pub(crate) fn promoted(&mut self, until: Instant) {
        self.everyone_until = Some(until);
    }
}

/// Watch rank: eligible members first, then priority, then id (greatest first).
fn watch_key(info: &NodeInfo) -> (bool, u32, NodeId) {
    (info.master_eligible, info.priority, info.id)
}

impl Node {
    /// Master: the live members that get its heartbeats, in `live_ids` order.
    pub(super) fn heartbeat_targets(&self) -> Vec<NodeId> {
        let live = self.members.live_ids();
        if live.len() <= MASTER_WATCHERS {
            return live.to_vec();
        }
        let mut keyed: Vec<(bool, u32, NodeId)> = live
            .iter()
            .filter_map(|id| self.members.get(*id))
            .map(|m| watch_key(&m.info))
            .collect();
        keyed.sort_unstable_by(|a, b| b.cmp(a));
        keyed.truncate(MASTER_WATCHERS);
        live.iter()
            .copied()
            .filter(|id| keyed.iter().any(|k| k.2 == *id))
            .collect()
    }

    /// Whether this node is one of `master`'s watchers, by its own view.
    pub(super) fn watches_master(&self, master: NodeId) -> bool {
        let live = self.members.live_ids();
        let others = live.len() - usize::from(self.members.is_live(master));
        if others < MASTER_WATCHERS {
            return true;
        }
        let mine = watch_key(&self.me);
        let above = live
            .iter()
            .filter(|id| **id != master)
            .filter_map(|id| self.members.get(*id))
            .filter(|m| watch_key(&m.info) > mine)
            .take(MASTER_WATCHERS)
            .count();
        above < MASTER_WATCHERS
    }

    /// Whether this node hears a live master other than the candidate `from`, for a vote
    /// request. `None`: not known yet; this node does not watch the master and must probe
    /// it first (the module doc).
    pub(super) fn hears_master_for_vote(&self, now: Instant, from: NodeId) -> Option<bool> {
        let Some(m) = self.current_master() else {
            return Some(false);
        };
        if m == from {
            return Some(false);
        }
        if m == self.me.id {
            return Some(true);
        }
        // A master we suspect is not heard, although the master watch reset its contact
        // time when the suspicion began: answering "alive" then sent the candidate back
        // for a whole retry (lease promise + back-off) while the master was already gone.
        if !self
            .members
            .get(m)
            .is_some_and(|x| x.state == Liveness::Alive)
        {
            return Some(false);
        }
        if self
            .probe
            .heard_master_within(now, self.config.master_timeout)
        {
            return Some(true);
        }
        if self.watches_master(m) {
            return Some(false);
        }
        None
    }

    /// Keeps a vote request until the master check answers it (non-watchers).
    pub(super) fn defer_vote(&mut self, now: Instant, v: DeferredVote) {
        let Some(master) = self.current_master() else {
            return;
        };
        let pending = &mut self.election.deferred_votes;
        pending.retain(|d| d.from != v.from);
        if pending.len() >= MAX_DEFERRED_VOTES {
            let oldest = pending.remove(0);
            self.answer_vote(now, oldest.from, oldest.claim, oldest.attempt, false, false);
        }
        self.election.deferred_votes.push(v);
        self.stats.votes_deferred += 1;
        if !self.probe.master_check_running() {
            self.start_master_check(now, master, 1);
        }
    }

    /// Answers the deferred vote requests once the master check is over (answered, timed
    /// out, or the master changed).
    pub(super) fn answer_deferred_votes(&mut self, now: Instant) {
        if self.election.deferred_votes.is_empty() || self.probe.master_check_running() {
            return;
        }
        let master_alive = self.current_master().is_some_and(|m| {
            self.members
                .get(m)
                .is_some_and(|x| x.state == Liveness::Alive)
        });
        let heard_at = self.probe.last_master_contact();
        for d in std::mem::take(&mut self.election.deferred_votes) {
            let hears = master_alive && heard_at >= d.since;
            self.answer_vote(now, d.from, d.claim, d.attempt, false, hears);
        }
    }

    /// Master watch of a member that does not watch the master: only the checks started for
    /// deferred votes run; their timeout answers the votes and suspects nobody (SWIM's own
    /// probes judge the master like any member).
    pub(super) fn unwatched_master_timers(&mut self, now: Instant) {
        self.probe.end_master_check_if_due(now);
        self.answer_deferred_votes(now);
    }

    /// Master: heartbeat to its watchers (to every member for `master_timeout` after its
    /// promotion: the one `Claim` each member got may have been lost, or have arrived
    /// before a new session was confirmed).
    pub(super) fn send_heartbeats(&mut self, now: Instant) {
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
        let everyone = self
            .election
            .watch
            .everyone_until
            .is_some_and(|until| now < until);
        let targets = if everyone {
            self.members.live_ids().to_vec()
        } else {
            self.heartbeat_targets()
        };
        for id in &targets {
            self.queue(*id, vec![hb.clone()]);
        }
        let members = &self.members;
        let w = &mut self.election.watch;
        w.targets = targets;
        w.piggybacked.retain(|id, _| members.is_live(*id));
    }

    /// Master: a heartbeat to add to a datagram going to the member `to` anyway, when `to`
    /// is not a watcher and had none for `master_heartbeat_interval`. Members that do not watch learn
    /// the claim this way too (a `Claim` lost in a partition is repaired), at no extra
    /// datagram.
    pub(super) fn piggyback_heartbeat(&mut self, now: Instant, to: NodeId) -> Option<Msg> {
        if self.timers.heartbeat.is_none() || self.election.watch.targets.contains(&to) {
            return None;
        }
        let claim = self.election.claim.filter(|_| self.is_master())?;
        let w = &mut self.election.watch;
        if w.piggybacked
            .get(&to)
            .is_some_and(|at| now < *at + self.config.master_heartbeat_interval)
        {
            return None;
        }
        w.piggybacked.insert(to, now);
        Some(Msg::Heartbeat {
            claim,
            incarnation: self.me.incarnation,
            members: (self.members.live_count() + 1) as u32,
        })
    }
}
