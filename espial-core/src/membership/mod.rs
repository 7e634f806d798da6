//! The member table and the SWIM rules for applying membership updates.
//!
//! Rules (memberlist's, with incarnation numbers): an `Alive` with a higher incarnation
//! overrides anything; `Suspect` and `Dead` apply at an incarnation at least the known one
//! and never change it (only the member's own signed entry does, see [`statements`]); a
//! `Dead` from someone else is a suspicion; a `Dead`/`Left` member comes back only with a
//! higher incarnation. Updates about the local node are refutations to make (see
//! [`Applied::Refute`]). Signatures are checked by the node before anything reaches this
//! table: the table stores each member's last verified signature(s) to re-gossip them.

pub mod digest;
pub mod gossip;
pub mod statements;
pub mod suspicion;

use crate::event::RemovalReason;
use crate::wire::{SignedEntry, Update};
use crate::{NodeId, NodeInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

/// Liveness of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Answering.
    Alive,
    /// Suspected since `since`; declared failed at `deadline` unless refuted.
    Suspect {
        /// When suspicion started.
        since: Instant,
        /// When it becomes `Dead`.
        deadline: Instant,
    },
    /// Declared failed at this instant.
    Dead {
        /// When.
        at: Instant,
    },
    /// Left gracefully at this instant.
    Left {
        /// When.
        at: Instant,
    },
}

impl Liveness {
    /// Alive or suspected: still in the member list.
    pub fn is_live(self) -> bool {
        matches!(self, Liveness::Alive | Liveness::Suspect { .. })
    }
}

/// One member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Latest entry.
    pub info: NodeInfo,
    /// Liveness.
    pub state: Liveness,
    /// The member's signature over `info` (as received; re-gossiped with it).
    pub signature: Vec<u8>,
    /// The member's verified signature of its `Left` at `info.incarnation`, once it left
    /// (empty while the signature of a `Left` received from the member itself awaits
    /// verification, or if it failed: such a `Left` is never forwarded).
    pub left_signature: Vec<u8>,
}

/// What applying an update did; the node turns these into events and gossip.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Nothing changed (stale or duplicate).
    Ignored,
    /// A new member (or one back from the dead).
    Added(NodeInfo),
    /// Metadata/subscriptions/incarnation changed for a live member.
    Updated {
        /// Latest entry.
        node: NodeInfo,
        /// Whether application-visible fields changed (metadata, subscriptions, eligibility).
        visible: bool,
        /// Subscriptions the member dropped.
        unsubscribed: Vec<String>,
    },
    /// Suspicion started (or incarnation moved while suspected).
    Suspected(NodeId),
    /// A suspected member was refuted back to alive.
    Refuted(NodeId),
    /// A member left the list.
    Removed(NodeInfo, RemovalReason),
    /// A suspicion or failure of the local node at this incarnation: refute with a higher one.
    Refute(u64),
    /// An `Alive` entry of the local node at this incarnation: act only if it is higher than
    /// ours (then publish above it).
    SelfAlive(u64),
    /// Another member claims our address: it replaced `old` (restart under a new id).
    Replaced {
        /// The stale member, now removed as failed.
        old: NodeInfo,
        /// The new member, now added.
        new: NodeInfo,
    },
}

/// The member table of one node (the local node is not stored here).
pub struct Members {
    me: NodeId,
    map: BTreeMap<NodeId, Member>,
    live: Vec<NodeId>,
    live_pos: BTreeMap<NodeId, usize>,
    suspicions: BTreeSet<(Instant, NodeId)>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
}

impl Members {
    /// An empty table for node `me`.
    pub fn new(me: NodeId) -> Self {
        Members {
            me,
            map: BTreeMap::new(),
            live: Vec::new(),
            live_pos: BTreeMap::new(),
            suspicions: BTreeSet::new(),
            by_addr: BTreeMap::new(),
        }
    }

    /// A member by id (any liveness).
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.map.get(&id)
    }

    /// Whether `id` is alive or suspected.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.live_pos.contains_key(&id)
    }

    /// Live members other than the local node, in insertion order (use for random picks).
    pub fn live_ids(&self) -> &[NodeId] {
        &self.live
    }

    /// Number of live members other than the local node.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Every member entry, any liveness, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.map.values()
    }

    /// Every member entry with an id in `lo..=hi` (any liveness), by id; none when `lo > hi`.
    pub fn range(&self, lo: NodeId, hi: NodeId) -> impl Iterator<Item = &Member> {
        (lo <= hi)
            .then(|| self.map.range(lo..=hi))
            .into_iter()
            .flatten()
            .map(|(_, m)| m)
    }

    /// The live member at `addr`, if any.
    pub fn live_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr
            .get(&addr)
            .copied()
            .filter(|id| self.is_live(*id))
    }

    /// The member (any liveness) last known at `addr`.
    pub fn get_by_addr(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr.get(&addr).copied()
    }

    /// Earliest suspicion deadline.
    pub fn next_suspicion_deadline(&self) -> Option<Instant> {
        self.suspicions.first().map(|(t, _)| *t)
    }

    /// Suspects whose deadline passed.
    pub fn expired_suspicions(&self, now: Instant) -> Vec<NodeId> {
        self.suspicions
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    fn set_state(&mut self, id: NodeId, state: Liveness) {
        let Some(m) = self.map.get_mut(&id) else {
            return;
        };
        if let Liveness::Suspect { deadline, .. } = m.state {
            self.suspicions.remove(&(deadline, id));
        }
        let was_live = m.state.is_live();
        m.state = state;
        if let Liveness::Suspect { deadline, .. } = state {
            self.suspicions.insert((deadline, id));
        }
        match (was_live, state.is_live()) {
            (false, true) => {
                self.live_pos.insert(id, self.live.len());
                self.live.push(id);
            }
            (true, false) => {
                if let Some(pos) = self.live_pos.remove(&id) {
                    self.live.swap_remove(pos);
                    if pos < self.live.len() {
                        let moved = self.live[pos];
                        self.live_pos.insert(moved, pos);
                    }
                }
            }
            _ => {}
        }
    }

    fn insert_new(&mut self, now: Instant, info: NodeInfo, signature: Vec<u8>, state: Liveness) {
        let id = info.id;
        self.by_addr.insert(info.addr, id);
        // Inserted as not-live, then moved to `state` so the live index stays consistent.
        self.map.insert(
            id,
            Member {
                info,
                state: Liveness::Dead { at: now },
                signature,
                left_signature: Vec::new(),
            },
        );
        self.set_state(id, state);
    }

    /// Stores the verified signature of a departed member's `Left` (see
    /// [`Member::left_signature`]).
    pub fn set_left_signature(&mut self, id: NodeId, signature: Vec<u8>) {
        if let Some(m) = self.map.get_mut(&id) {
            m.left_signature = signature;
        }
    }

    /// The member's identity public key, if known.
    pub fn public_key(&self, id: NodeId) -> Option<&[u8]> {
        self.map.get(&id).map(|m| m.info.public_key.as_slice())
    }

    /// The member's current entry with its signature (what to gossip about it).
    pub fn signed(&self, id: NodeId) -> Option<SignedEntry> {
        self.map.get(&id).map(|m| SignedEntry {
            entry: m.info.clone(),
            signature: m.signature.clone(),
        })
    }

    /// Applies a verified `Alive` entry (gossip, state sync or a join acceptance). A new
    /// member at the address of a live one is added beside it (the old one is found failed
    /// by probing): only [`Members::apply_alive_replacing`] replaces.
    pub fn apply_alive(&mut self, now: Instant, s: SignedEntry) -> Vec<Applied> {
        self.alive(now, s, false)
    }

    /// Like [`Members::apply_alive`], and a new member at a live member's address replaces it
    /// (a restart under a new id). Only for an entry its subject sent directly from that
    /// address (a join request).
    pub fn apply_alive_replacing(&mut self, now: Instant, s: SignedEntry) -> Vec<Applied> {
        self.alive(now, s, true)
    }

    fn alive(&mut self, now: Instant, s: SignedEntry, replace: bool) -> Vec<Applied> {
        let SignedEntry { entry, signature } = s;
        if entry.id == self.me {
            return vec![Applied::SelfAlive(entry.incarnation)];
        }
        let id = entry.id;
        let mut out = Vec::new();
        match self.map.get(&id) {
            None => {
                if let Some(old) = self.live_at(entry.addr).filter(|o| replace && *o != id) {
                    let old_info = self.map[&old].info.clone();
                    self.set_state(old, Liveness::Dead { at: now });
                    self.insert_new(now, entry.clone(), signature, Liveness::Alive);
                    out.push(Applied::Replaced {
                        old: old_info,
                        new: entry,
                    });
                    return out;
                }
                self.insert_new(now, entry.clone(), signature, Liveness::Alive);
                out.push(Applied::Added(entry));
            }
            Some(m) => {
                if entry.incarnation <= m.info.incarnation {
                    return vec![Applied::Ignored];
                }
                let was = m.state;
                let old = m.info.clone();
                if old.addr != entry.addr {
                    if self.by_addr.get(&old.addr) == Some(&id) {
                        self.by_addr.remove(&old.addr);
                    }
                    self.by_addr.insert(entry.addr, id);
                }
                if let Some(mm) = self.map.get_mut(&id) {
                    mm.info = entry.clone();
                    mm.signature = signature;
                    mm.left_signature = Vec::new();
                }
                match was {
                    Liveness::Dead { .. } | Liveness::Left { .. } => {
                        self.set_state(id, Liveness::Alive);
                        out.push(Applied::Added(entry));
                    }
                    Liveness::Suspect { .. } | Liveness::Alive => {
                        if matches!(was, Liveness::Suspect { .. }) {
                            self.set_state(id, Liveness::Alive);
                            out.push(Applied::Refuted(id));
                        }
                        let visible = old.metadata != entry.metadata
                            || old.subscriptions != entry.subscriptions
                            || old.master_eligible != entry.master_eligible
                            || old.priority != entry.priority
                            || old.name != entry.name
                            || old.addr != entry.addr;
                        let unsubscribed = old
                            .subscriptions
                            .difference(&entry.subscriptions)
                            .cloned()
                            .collect();
                        out.push(Applied::Updated {
                            node: entry,
                            visible,
                            unsubscribed,
                        });
                    }
                }
            }
        }
        out
    }

    /// A suspected member showed it is alive at a higher incarnation than we know (e.g. a
    /// master heartbeat) without sending its entry: clear the suspicion but keep the stored
    /// entry and incarnation, so its gossiped entry (with any new metadata) still applies.
    pub fn clear_suspicion(&mut self, id: NodeId) -> Applied {
        match self.map.get(&id).map(|m| m.state) {
            Some(Liveness::Suspect { .. }) => {
                self.set_state(id, Liveness::Alive);
                Applied::Refuted(id)
            }
            _ => Applied::Ignored,
        }
    }

    /// Moves a suspect's deadline to `deadline` (a last-chance check is under way).
    pub fn extend_suspicion(&mut self, id: NodeId, deadline: Instant) {
        if let Some(Liveness::Suspect { since, .. }) = self.map.get(&id).map(|m| m.state) {
            self.set_state(id, Liveness::Suspect { since, deadline });
        }
    }

    /// Applies a suspicion. `timeout` is how long the suspicion lasts if newly started.
    pub fn apply_suspect(
        &mut self,
        now: Instant,
        id: NodeId,
        incarnation: u64,
        timeout: std::time::Duration,
    ) -> Applied {
        if id == self.me {
            return Applied::Refute(incarnation);
        }
        let Some(m) = self.map.get(&id) else {
            return Applied::Ignored;
        };
        if incarnation < m.info.incarnation {
            return Applied::Ignored;
        }
        // The stored incarnation stays: only the member's signed entry moves it, so its
        // refutation at stored + 1 always wins whatever number a suspecter named.
        match m.state {
            Liveness::Alive => {
                self.set_state(
                    id,
                    Liveness::Suspect {
                        since: now,
                        deadline: now + timeout,
                    },
                );
                Applied::Suspected(id)
            }
            _ => Applied::Ignored,
        }
    }

    /// Declares a member failed at its known incarnation (our own suspicion expired).
    pub fn apply_failed(&mut self, now: Instant, id: NodeId) -> Applied {
        if id == self.me {
            return Applied::Ignored;
        }
        let Some(m) = self.map.get(&id) else {
            return Applied::Ignored;
        };
        if !m.state.is_live() {
            return Applied::Ignored;
        }
        let info = m.info.clone();
        self.set_state(id, Liveness::Dead { at: now });
        Applied::Removed(info, RemovalReason::Failed)
    }

    /// Applies a graceful leave whose signature the node verified.
    pub fn apply_left(
        &mut self,
        now: Instant,
        id: NodeId,
        incarnation: u64,
        signature: Vec<u8>,
    ) -> Applied {
        if id == self.me {
            return Applied::Refute(incarnation);
        }
        let Some(m) = self.map.get_mut(&id) else {
            return Applied::Ignored;
        };
        if incarnation < m.info.incarnation {
            return Applied::Ignored;
        }
        match m.state {
            Liveness::Alive | Liveness::Suspect { .. } => {
                m.info.incarnation = incarnation;
                m.left_signature = signature;
                let info = m.info.clone();
                self.set_state(id, Liveness::Left { at: now });
                Applied::Removed(info, RemovalReason::Left)
            }
            Liveness::Dead { at } => {
                // A late leave notice: remember it as a leave (no second event).
                m.info.incarnation = incarnation;
                m.left_signature = signature;
                m.state = Liveness::Left { at };
                Applied::Ignored
            }
            Liveness::Left { .. } => Applied::Ignored,
        }
    }

    /// Applies a verified update. A `Dead` from someone else is applied as a suspicion: a node
    /// removes a member only when its own suspicion expires (see [`statements`]).
    pub fn apply(
        &mut self,
        now: Instant,
        update: Update,
        suspicion_timeout: std::time::Duration,
    ) -> Vec<Applied> {
        match update {
            Update::Alive(s) => self.apply_alive(now, s),
            Update::Suspect {
                id, incarnation, ..
            }
            | Update::Dead {
                id, incarnation, ..
            } => {
                vec![self.apply_suspect(now, id, incarnation, suspicion_timeout)]
            }
            Update::Left {
                id,
                incarnation,
                signature,
            } => {
                vec![self.apply_left(now, id, incarnation, signature)]
            }
        }
    }

    /// Forgets failed and departed members older than `before`; returns their ids.
    pub fn purge(&mut self, before: Instant) -> Vec<NodeId> {
        let old: Vec<NodeId> = self
            .map
            .iter()
            .filter(|(_, m)| match m.state {
                Liveness::Dead { at } | Liveness::Left { at } => at < before,
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            if let Some(m) = self.map.remove(id) {
                if self.by_addr.get(&m.info.addr) == Some(id) {
                    self.by_addr.remove(&m.info.addr);
                }
            }
        }
        old
    }

    /// The update describing a member's current state (for full-state sync).
    pub fn as_update(&self, m: &Member) -> Update {
        match m.state {
            Liveness::Alive => Update::Alive(SignedEntry {
                entry: m.info.clone(),
                signature: m.signature.clone(),
            }),
            Liveness::Suspect { .. } => Update::Suspect {
                id: m.info.id,
                incarnation: m.info.incarnation,
                by: self.me,
            },
            Liveness::Dead { .. } => Update::Dead {
                id: m.info.id,
                incarnation: m.info.incarnation,
                by: self.me,
            },
            Liveness::Left { .. } => Update::Left {
                id: m.info.id,
                incarnation: m.info.incarnation,
                signature: m.left_signature.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
