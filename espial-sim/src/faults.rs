//! Scripted faults and commands, applied now or scheduled at a simulated time. Time-boxed
//! faults schedule their own end.

use crate::cluster::{NodeOpts, Sim};
use espial_core::Metadata;
use std::time::Duration;

/// Something done to the cluster at a point in simulated time.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a new node in a new slot.
    Join(NodeOpts),
    /// Crash a node (gone at once, in-flight datagrams dropped).
    Crash(usize),
    /// Restart a slot: new node, new id, same address.
    Restart(usize),
    /// Graceful leave.
    Leave(usize),
    /// Pause a node for a while.
    Pause(usize, Duration),
    /// Split the nodes into groups (unlisted slots join the first group).
    Partition(Vec<Vec<usize>>),
    /// Cut the directed link `a → b`.
    CutLink(usize, usize),
    /// Restore the directed link `a → b`.
    RestoreLink(usize, usize),
    /// Drop everything a node sends (it still receives): a one-way mute.
    Mute(usize),
    /// End a mute.
    Unmute(usize),
    /// Make a node slow: every input is handled this much late (zero: normal again).
    Slow(usize, Duration),
    /// Remove every partition and cut link.
    Heal,
    /// Set the loss probability (a cluster-wide fault while above 0).
    SetLoss(f64),
    /// Set the duplication probability.
    SetDuplicate(f64),
    /// Set the reordering probability.
    SetReorder(f64),
    /// Call `promote()` on a node.
    Promote(usize),
    /// Replace a node's metadata.
    SetMetadata(usize, Metadata),
    /// Subscribe a node to a custom event name.
    Subscribe(usize, String),
    /// Unsubscribe a node from a custom event name.
    Unsubscribe(usize, String),
    /// The node's application stops reading custom events for a while (reader models with
    /// an inbox, see `SimConfig::reader`); the node itself keeps running.
    PauseReader(usize, Duration),
    /// The node's application reads again (scheduled by `PauseReader`).
    ResumeReader(usize),
}

impl Sim {
    /// Quorum mode's precondition (README, "Election guarantees"): `quorum(q)` is a majority
    /// only while at most `2q − 1` nodes run at once. Unless `SimConfig::quorum_precondition`
    /// is off, a join or restart that would start more is not applied (it is traced as
    /// skipped); nodes refuse such a join themselves while their view is accurate, but not
    /// after a partition shrank it. `replacing`: the slot a restart reuses.
    fn keeps_quorum_a_majority(&self, replacing: Option<usize>) -> bool {
        let Some(q) = self
            .cfg
            .core
            .quorum
            .filter(|_| self.cfg.quorum_precondition)
        else {
            return true;
        };
        let running = (0..self.slots.len())
            .filter(|&s| self.slots[s].exists() && Some(s) != replacing)
            .count();
        running < 2 * q - 1
    }

    /// Applies an action now.
    pub fn apply(&mut self, a: Action) {
        let t = self.now().as_nanos() as u64;
        match a {
            Action::Join(opts) => {
                if self.keeps_quorum_a_majority(None) {
                    self.add_node(opts);
                } else {
                    self.trace.fault(t, "skip join: quorum mode is full");
                }
            }
            Action::Crash(s) => self.crash(s),
            Action::Restart(s) => {
                if self.keeps_quorum_a_majority(Some(s)) {
                    self.restart(s);
                } else {
                    self.trace
                        .fault(t, &format!("skip restart n{s}: quorum mode is full"));
                }
            }
            Action::Leave(s) => self.leave(s),
            Action::Pause(s, d) => self.pause(s, d),
            Action::PauseReader(s, d) => {
                self.trace.fault(t, &format!("pause reader n{s} {d:?}"));
                let until = self.now() + d;
                if let Some(slot) = self.slots.get_mut(s) {
                    slot.reader_paused_until = until.as_nanos() as u64;
                }
                self.schedule(until, Action::ResumeReader(s));
            }
            Action::ResumeReader(s) => {
                self.trace.fault(t, &format!("resume reader n{s}"));
                if s < self.slots.len() {
                    self.drain(s);
                }
            }
            Action::Partition(groups) => {
                self.trace.fault(t, &format!("partition {groups:?}"));
                self.health.partition(&groups, self.slots.len(), t);
                self.net.partition.split(&groups);
            }
            Action::CutLink(a, b) => {
                self.trace.fault(t, &format!("cut {a}->{b}"));
                self.health.cut(a, b);
                self.net.partition.cut_link(a, b);
            }
            Action::RestoreLink(a, b) => {
                self.trace.fault(t, &format!("restore {a}->{b}"));
                self.net.partition.restore_link(a, b);
            }
            Action::Mute(s) => {
                self.trace.fault(t, &format!("mute n{s}"));
                self.health.cut(s, s);
                self.net.partition.mute(s);
            }
            Action::Unmute(s) => {
                self.trace.fault(t, &format!("unmute n{s}"));
                self.health.end(s, t);
                self.net.partition.unmute(s);
            }
            Action::Slow(s, d) => {
                if d.is_zero() {
                    self.health.end(s, t);
                } else {
                    self.health.start(s);
                }
                self.set_slow(s, d);
            }
            Action::Heal => {
                self.trace.fault(t, "heal");
                self.health.heal(t);
                self.net.partition.heal();
            }
            Action::SetLoss(p) => {
                self.trace.fault(t, &format!("loss {p}"));
                self.health.global(p > 0.0, t);
                self.net.config.loss = p;
            }
            Action::SetDuplicate(p) => {
                self.trace.fault(t, &format!("duplicate {p}"));
                self.net.config.duplicate = p;
            }
            Action::SetReorder(p) => {
                self.trace.fault(t, &format!("reorder {p}"));
                self.net.config.reorder = p;
            }
            Action::Promote(s) => {
                self.trace.fault(t, &format!("promote n{s}"));
                let r = self.with_node(s, |n, now| n.promote(now));
                if let Some(Err(e)) = r {
                    self.trace.fault(t, &format!("promote n{s} refused: {e}"));
                }
            }
            Action::SetMetadata(s, m) => {
                self.trace.fault(t, &format!("metadata n{s}"));
                let r = self.with_node(s, |n, now| n.set_metadata(now, m));
                if let Some(Err(e)) = r {
                    self.violation(format!("set_metadata on n{s} refused: {e}"));
                }
            }
            Action::Subscribe(s, name) => {
                self.trace.fault(t, &format!("subscribe n{s} {name}"));
                let gen = self.slots.get(s).map(|x| x.gen).unwrap_or(0);
                if let Some(Ok(())) = self.with_node(s, |n, now| n.subscribe(now, &name)) {
                    self.events.on_subscribe(s, gen, &name, t, true);
                }
            }
            Action::Unsubscribe(s, name) => {
                self.trace.fault(t, &format!("unsubscribe n{s} {name}"));
                let gen = self.slots.get(s).map(|x| x.gen).unwrap_or(0);
                if let Some(Ok(())) = self.with_node(s, |n, now| n.unsubscribe(now, &name)) {
                    self.events.on_subscribe(s, gen, &name, t, false);
                }
            }
        }
    }

    /// Schedules `action` at `at` and `undo` at `at + d` (a time-boxed fault).
    pub fn schedule_for(&mut self, at: Duration, d: Duration, action: Action, undo: Action) {
        self.schedule(at, action);
        self.schedule(at + d, undo);
    }
}
