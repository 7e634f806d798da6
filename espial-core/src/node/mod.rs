//! The node state machine: the one type a driver owns.
//!
//! A `Node` combines the session layer (`session`), the member table (`membership`), SWIM
//! probing (`probe`), the election (`election`), joins (`join`), anti-entropy (`anti_entropy`)
//! and, for
//! custom events, the delivery engine (`delivery`). Messages to the same peer produced in one
//! call are packed into one sealed record, with pending membership updates piggybacked in the
//! remaining room.

mod adversary;
mod anti_entropy;
mod beacons;
mod custom_events;
mod dispatch;
mod election;
mod fuzz_hooks;
mod join;
mod lease;
mod probe;
mod updates;
mod watch;

pub use watch::MASTER_WATCHERS;

use crate::cipher::Cipher;
use crate::config::{Config, ConfigError};
use crate::delivery::{Delivery, DeliveryConfig};
use crate::error::{MetadataError, PromoteError, SendError, SubscribeError};
use crate::event::{check_event_name, Event, RequestId, SendId};
use crate::membership::gossip::Broadcasts;
use crate::membership::Members;
use crate::output::{Admission, AdmissionId, Output, Transmit};
use crate::rng::Rng;
use crate::session::Sessions;
use crate::stats::Stats;
use crate::wire::{msg_size, Claim, Msg, Update};
use crate::{Metadata, NodeId, NodeInfo};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use beacons::designation_rank;
pub(crate) use election::ElectionState;
pub(crate) use join::JoinState;
pub(crate) use probe::ProbeState;

/// Last-chance rounds (direct + indirect pings, one probe timeout each) before a suspect
/// is declared failed.
const LAST_CHANCE_ROUNDS: u8 = 1;

/// Who a custom event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every live member subscribed to the event name.
    Subscribers,
    /// These nodes (they need not be subscribed).
    Nodes(Vec<NodeId>),
    /// The current master.
    Master,
}

/// Messages queued for one member during the current call.
struct Outgoing {
    addr: SocketAddr,
    msgs: Vec<Msg>,
    /// Fill spare room with gossip.
    piggyback: bool,
}

/// Periodic timers.
struct Timers {
    gossip: Instant,
    /// Last full state exchange (push-pull or join); the next is due a scaled period later.
    last_state_sync: Instant,
    push_pull: Instant,
    reconnect: Instant,
    sweep: Instant,
    heartbeat: Option<Instant>,
}

/// One espial node as a pure state machine.
///
/// Inputs: [`Node::handle_datagram`], [`Node::handle_discovered`], [`Node::handle_admission`],
/// [`Node::handle_timeout`] and the command methods. After each, drain
/// [`Node::poll_output`] and sleep until [`Node::poll_timeout`]. The same inputs at the same
/// instants with the same seed give the same outputs.
pub struct Node {
    config: Config,
    me: NodeInfo,
    rng: Rng,
    sessions: Sessions,
    members: Members,
    broadcasts: Broadcasts,
    outputs: VecDeque<Output>,
    outbox: BTreeMap<NodeId, Outgoing>,
    /// Messages for an address with no known member; `true`: one Hello, no retries.
    outbox_addr: Vec<(SocketAddr, Vec<Msg>, bool)>,
    drop_sessions: Vec<NodeId>,
    stats: Stats,
    left: bool,
    admission_filter: bool,
    timers: Timers,
    probe: ProbeState,
    election: ElectionState,
    join: JoinState,
    anti_entropy: anti_entropy::AntiEntropy,
    delivery: Delivery,
    next_request: u64,
    /// Sends queued since the last flush: flushed by the next `poll_output` (or any input),
    /// so events sent together share datagrams.
    deferred_flush: Option<Instant>,
    /// Our entry, signed by us (what we gossip and send in joins).
    my_entry: crate::wire::SignedEntry,
    /// Set while a full-state chunk is applied: entries learned from it are not re-gossiped
    /// (the sender already has them; re-gossiping a whole cluster on every join is O(n^2)).
    applying_state_sync: bool,
    /// Our `Left` signed ahead, with the incarnation it names: signed at the first timer
    /// after each incarnation change, so that [`Node::leave`] does not wait for a signature.
    left_ahead: Option<(u64, Vec<u8>)>,
    /// `Left` statements applied on their subject's own session (id, incarnation,
    /// signature): their signatures are verified at the next [`Node::handle_timeout`],
    /// before they are forwarded (`node/updates.rs`, `verify_direct_lefts`).
    unverified_lefts: Vec<(NodeId, u64, Vec<u8>)>,
}

impl Node {
    /// Creates a node. `seed` drives every random choice (probe order, jitter); give each
    /// node a different one (the driver uses OS randomness, the simulator a seeded one).
    /// Emits `Listening`.
    pub fn new(
        config: Config,
        me: NodeInfo,
        cipher: Box<dyn Cipher>,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        let mut me = me;
        if cipher.node_id() != me.id {
            return Err(ConfigError(format!(
                "node id {} is not the id of the cipher's identity key ({}); derive the id \
                 from the key (Cipher::node_id)",
                me.id,
                cipher.node_id()
            )));
        }
        me.public_key = cipher.identity_public_key();
        me.metadata
            .check(config.max_metadata_bytes)
            .map_err(|e| ConfigError(e.to_string()))?;
        for name in &me.subscriptions {
            check_event_name(name).map_err(|e| ConfigError(e.to_string()))?;
        }
        let my_entry = crate::membership::statements::sign_alive(&*cipher, &me);
        let mut rng = Rng::new(seed ^ (me.id.0 as u64) ^ ((me.id.0 >> 64) as u64));
        let jitter = |rng: &mut Rng, d: Duration| d.mul_f64(rng.unit());
        let timers = Timers {
            last_state_sync: now,
            gossip: now + jitter(&mut rng, config.gossip_interval),
            push_pull: now
                + config.push_pull_interval / 2
                + jitter(&mut rng, config.push_pull_interval),
            reconnect: now
                + config.reconnect_interval / 2
                + jitter(&mut rng, config.reconnect_interval),
            sweep: now + Duration::from_secs(1),
            heartbeat: None,
        };
        let probe = ProbeState::new(now + jitter(&mut rng, config.probe_interval), now);
        let mut sessions = Sessions::new(me.id, cipher, &config);
        sessions.seed_guard(seed);
        let mut delivery =
            Delivery::new(DeliveryConfig::from_config(&config), me.id, rng.next_u64());
        delivery.set_subscriptions(&me.subscriptions);
        let mut node = Node {
            members: Members::new(me.id),
            sessions,
            broadcasts: Broadcasts::default(),
            outputs: VecDeque::new(),
            outbox: BTreeMap::new(),
            outbox_addr: Vec::new(),
            drop_sessions: Vec::new(),
            stats: Stats::default(),
            left: false,
            admission_filter: false,
            timers,
            probe,
            election: ElectionState::new(now + config.election_timeout),
            join: JoinState::default(),
            anti_entropy: Default::default(),
            delivery,
            next_request: 0,
            deferred_flush: None,
            applying_state_sync: false,
            left_ahead: None,
            unverified_lefts: Vec::new(),
            my_entry,
            rng,
            config,
            me: me.clone(),
        };
        node.emit(Event::Listening { node: me });
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me.id
    }

    /// This node's current entry (incarnation, metadata, subscriptions).
    pub fn info(&self) -> &NodeInfo {
        &self.me
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The cipher in use (e.g. for discovery beacon MACs).
    pub fn cipher(&self) -> &dyn Cipher {
        self.sessions.cipher()
    }

    /// When `true`, every join request is reported as [`Output::Admission`] and waits for
    /// [`Node::handle_admission`]; when `false` (default) every node is admitted.
    pub fn set_admission_filter(&mut self, enabled: bool) {
        self.admission_filter = enabled;
    }

    /// Feeds a received datagram. Malformed, forged or replayed datagrams are dropped and
    /// counted in [`Node::stats`]; this never panics. What it produces is packed into
    /// datagrams at the next [`Node::poll_output`]: feed a burst, then drain once.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        if self.left {
            return;
        }
        self.check_lease(now);
        self.receive(now, from, data);
        // Packed at the next `poll_output`: a driver that feeds a burst of datagrams before
        // draining sends one round of acknowledgements and replies for all of them.
        self.deferred_flush = Some(now);
    }

    /// Feeds addresses found by discovery; the node joins through those that are not
    /// already live members.
    pub fn handle_discovered(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.announced(now, addrs, false);
    }

    /// Addresses announced by an unauthenticated source (open multicast beacons, which
    /// anyone can forge from a victim's address): each announcement makes at most one
    /// member of the cluster send one Hello (see `node::beacons` and docs/PROTOCOL.md,
    /// "Discovery"), so nothing amplifies the announcement's bytes.
    pub fn handle_discovered_unverified(&mut self, now: Instant, addrs: &[SocketAddr]) {
        self.announced(now, addrs, true);
    }

    fn announced(&mut self, now: Instant, addrs: &[SocketAddr], unverified: bool) {
        if self.left {
            return;
        }
        self.check_lease(now);
        for addr in addrs {
            if unverified {
                self.discovered_unverified(now, *addr);
            } else {
                self.discovered(now, *addr);
            }
        }
        self.flush(now);
    }

    /// Answers an [`Output::Admission`] request. Unknown or expired ids are ignored.
    pub fn handle_admission(&mut self, now: Instant, id: AdmissionId, decision: Admission) {
        if self.left {
            return;
        }
        self.check_lease(now);
        self.admission_decided(now, id, decision);
        self.flush(now);
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.check_lease(now);
        self.verify_direct_lefts();
        self.sign_left_ahead();
        let mut out = Vec::new();
        self.sessions.handle_timeout(now, &mut self.stats, &mut out);
        self.push_transmits(out);
        self.expire_suspicions(now);
        self.delivery.handle_timeout(now);
        self.probe_timers(now);
        self.master_timers(now);
        self.election_timer(now);
        if now >= self.timers.gossip {
            self.timers.gossip = now + self.config.gossip_interval;
            self.gossip_round();
        }
        if now >= self.timers.push_pull {
            // A differing view costs O(n) digest bytes, so the period grows with n: bytes/s per
            // node stay flat (equal views cost two small messages).
            let scale = (self.members.live_count() + 1).div_ceil(32).max(1) as u32;
            let period = self.config.push_pull_interval * scale;
            if now >= self.timers.last_state_sync + period / 2 {
                self.push_pull(now);
                self.timers.last_state_sync = now;
            }
            self.timers.push_pull = now + period.mul_f64(0.75 + self.rng.unit() / 2.0);
        }
        if now >= self.timers.reconnect {
            self.timers.reconnect = now
                + self
                    .config
                    .reconnect_interval
                    .mul_f64(0.75 + self.rng.unit() / 2.0);
            self.reconnect(now);
        }
        if now >= self.timers.sweep {
            self.timers.sweep = now + Duration::from_secs(1);
            self.sweep(now);
        }
        if let Some(at) = self.timers.heartbeat {
            if now >= at {
                self.timers.heartbeat = Some(now + self.config.master_heartbeat_interval);
                self.send_heartbeats(now);
                self.lease_round(now);
            }
        }
        self.flush(now);
    }

    /// Next output to act on, if any. Sends made since the last input are packed into
    /// datagrams here (several events to one peer share a datagram), so drain this after
    /// every call.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(now) = self.deferred_flush.take() {
            self.flush(now);
        }
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`Node::handle_timeout`] must be called (`None` once the
    /// node has left).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        let t = &self.timers;
        [
            Some(t.gossip),
            Some(t.push_pull),
            Some(t.reconnect),
            Some(t.sweep),
            t.heartbeat,
            self.sessions.poll_timeout(),
            self.members.next_suspicion_deadline(),
            self.probe.next_deadline(),
            self.election.next_deadline(),
            self.master_lease_until(),
            self.delivery.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Forces this node to take over as master with a higher term: it asks every live
    /// member, telling them to disregard the master they still hear, and claims once enough
    /// answered (available mode: a majority of the members it knows, or anyway after two
    /// probe timeouts; quorum mode: `quorum` votes, which may take until the old master's
    /// promises have run out, about `lease_promise`). `Promotion` reports the takeover.
    /// Errors leave the election state unchanged.
    pub fn promote(&mut self, now: Instant) -> Result<(), PromoteError> {
        if self.left {
            return Err(PromoteError::Shutdown);
        }
        self.check_lease(now);
        if !self.me.master_eligible {
            return Err(PromoteError::NotEligible);
        }
        if let Some(q) = self.config.quorum {
            let live = self.members.live_count() + 1;
            if live < q {
                return Err(PromoteError::NoQuorum { live, quorum: q });
            }
        }
        if !self.is_master() {
            self.start_candidacy(now, true);
        }
        self.flush(now);
        Ok(())
    }

    /// Replaces this node's metadata (gossiped to every member). On error the previous
    /// metadata stays in force.
    pub fn set_metadata(&mut self, now: Instant, metadata: Metadata) -> Result<(), MetadataError> {
        if self.left {
            return Err(MetadataError::Shutdown);
        }
        metadata.check(self.config.max_metadata_bytes)?;
        if metadata != self.me.metadata {
            self.me.metadata = metadata;
            self.publish_self();
            self.flush(now);
        }
        Ok(())
    }

    /// Leaves the cluster gracefully: every live member is told at once (twice, against
    /// loss), and a master resigns. The node is inert afterwards.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.sign_left_ahead();
        let left = Update::Left {
            id: self.me.id,
            incarnation: self.me.incarnation,
            signature: self
                .left_ahead
                .take()
                .map(|(_, sig)| sig)
                .unwrap_or_default(),
        };
        // What this node received and consumed goes out first, in datagrams of its own
        // (an ack behind the Left would reach a peer that already dropped its sends).
        self.delivery.owe_acks_now(now);
        self.flush(now);
        self.delivery.owe_acks_now(now);
        self.flush(now);
        let resign = self.is_master().then_some(self.election.claim).flatten();
        let ids: Vec<NodeId> = self.members.live_ids().to_vec();
        let mut msgs = vec![Msg::Updates(vec![left])];
        if let Some(c) = resign {
            msgs.push(Msg::Resign(c));
        }
        // Every member gets the notice twice, each copy in a datagram of its own: first one
        // copy to every member, then the second copies (a loss-tolerance repeat that must not
        // delay the other members' first copy).
        for _copy in 0..2 {
            for id in &ids {
                self.queue(*id, msgs.clone());
            }
            self.flush(now);
        }
        // Sends still open are not confirmed: report them now rather than never.
        self.delivery.close(now);
        while let Some(e) = self.delivery.poll_event() {
            self.outputs.push_back(Output::Event(e));
        }
        self.left = true;
        self.timers.heartbeat = None;
    }

    /// Makes custom-event flow control reach the application: a released event counts as
    /// consumed only when [`Node::events_consumed`] says so (a driver that buffers events
    /// for its listeners turns this on). Off by default: an event counts as consumed when
    /// [`Node::poll_output`] hands it out.
    pub fn set_app_consumption(&mut self, on: bool) {
        self.delivery.set_app_consumption(on);
    }

    /// The application consumed the `count` oldest [`Event::Custom`] events handed out by
    /// [`Node::poll_output`] (with [`Node::set_app_consumption`] on): their senders learn
    /// they were delivered, and credit opens again.
    pub fn events_consumed(&mut self, now: Instant, count: usize) {
        if count == 0 {
            return;
        }
        self.delivery.app_consumed(now, count);
        self.deferred_flush = Some(now);
    }

    /// How promptly [`Node::events_consumed`] must be called: `(slack, bytes)`. A driver
    /// may hold a consumption back for up to `slack`, or until `bytes` of consumed events
    /// (payload + [`crate::delivery::MSG_COST`] each) are pending, whichever comes first;
    /// `bytes == 0` means at once. Waking the node's task for every event an application
    /// reads would cost a wake-up per event for nothing: the acknowledgement it frees waits
    /// for `slack` anyway.
    ///
    /// ```
    /// # use espial_core::{Config, Node, NodeId, NodeInfo, PlaintextTestCipher};
    /// # use std::time::Instant;
    /// let me = NodeInfo::new(NodeId(1), "a", "127.0.0.1:27272".parse().unwrap());
    /// let cipher = Box::new(PlaintextTestCipher::for_node(NodeId(1)));
    /// let node = Node::new(Config::lan(), me, cipher, 42, Instant::now()).unwrap();
    /// let (slack, bytes) = node.consumption_report();
    /// assert!(bytes > 0 && slack > std::time::Duration::ZERO, "nothing held back");
    /// ```
    pub fn consumption_report(&self) -> (std::time::Duration, u64) {
        self.delivery.consumption_report()
    }

    /// Custom events handed out and not yet consumed, and their cost in bytes (payload +
    /// 64 each; bounded by `Config::max_unread_event_bytes` plus one event per peer).
    pub fn unread_events(&self) -> (usize, u64) {
        self.delivery.unread()
    }

    /// True once [`Node::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Live members (alive or suspected), this node included, sorted by id.
    pub fn members(&self) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> = self
            .members
            .iter()
            .filter(|m| m.state.is_live())
            .map(|m| m.info.clone())
            .collect();
        v.push(self.me.clone());
        v.sort_by_key(|n| n.id);
        v
    }

    /// A live member's entry by id (this node included).
    pub fn member(&self, id: NodeId) -> Option<&NodeInfo> {
        if id == self.me.id {
            return Some(&self.me);
        }
        self.members
            .get(id)
            .filter(|m| m.state.is_live())
            .map(|m| &m.info)
    }

    /// The master this node currently follows (itself when master), if it is alive.
    pub fn master(&self) -> Option<NodeId> {
        self.current_master()
    }

    /// True when this node is the master.
    pub fn is_master(&self) -> bool {
        self.master() == Some(self.me.id)
    }

    /// Quorum mode, while this node is master: the end of its lease on its own clock. It
    /// acts as master only before that instant and steps down at it (`demotion`). `None`
    /// otherwise (available mode has no lease).
    pub fn master_lease_until(&self) -> Option<Instant> {
        if self.config.quorum.is_some() && self.is_master() {
            self.election.lease.until()
        } else {
            None
        }
    }

    /// The latest master claim known (its master may be dead or resigned).
    pub fn claim(&self) -> Option<Claim> {
        self.election.claim
    }

    /// Highest election term seen.
    pub fn max_term(&self) -> u64 {
        self.election.max_term
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let d = self.delivery.stats();
        let mut s = self.stats.clone();
        s.events_delivered = d.events_delivered;
        s.retransmits = d.retransmits;
        s.unread_event_bytes = d.unread_bytes;
        s.events_missed = d.events_missed;
        s.refused_by_members = self.join.refused_by.len() as u64;
        s
    }

    /// The delivery engine's counters (queued, acknowledged, failed, retransmitted...).
    pub fn delivery_stats(&self) -> crate::delivery::DeliveryStats {
        self.delivery.stats()
    }

    /// Sessions and handshakes currently held (memory-bound checks).
    pub fn session_footprint(&self) -> (usize, usize) {
        self.sessions.footprint()
    }

    // ----- internals shared by the submodules -----

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    /// Queues messages for a member (sent at the end of the current call). Nothing is sent
    /// to a member whose connection filter refused us (it would drop it).
    fn queue(&mut self, id: NodeId, msgs: Vec<Msg>) {
        if self.join.refused_by.contains(&id) {
            return;
        }
        let addr = match self.members.get(id) {
            Some(m) => m.info.addr,
            None => return,
        };
        self.queue_to(id, addr, msgs, true);
    }

    /// Queues messages for a peer at a known address (members or not).
    fn queue_to(&mut self, id: NodeId, addr: SocketAddr, msgs: Vec<Msg>, piggyback: bool) {
        let o = self.outbox.entry(id).or_insert(Outgoing {
            addr,
            msgs: Vec::new(),
            piggyback,
        });
        o.piggyback &= piggyback;
        o.msgs.extend(msgs);
    }

    fn push_transmits(&mut self, out: Vec<(SocketAddr, Vec<u8>)>) {
        for (to, data) in out {
            self.stats.packets_out += 1;
            self.stats.bytes_out += data.len() as u64;
            self.outputs
                .push_back(Output::Transmit(Transmit { to, data }));
        }
    }

    /// Packs queued messages into sealed records (piggybacking gossip) and emits them.
    fn flush(&mut self, now: Instant) {
        self.deferred_flush = None;
        let budget = self.sessions.plaintext_budget();
        let limit = self.config.retransmits(self.members.live_count() + 1);
        let outbox = std::mem::take(&mut self.outbox);
        let mut out = Vec::new();
        for (id, mut o) in outbox {
            let live = self.members.is_live(id);
            if live && o.piggyback {
                if let Some(hb) = self.piggyback_heartbeat(now, id) {
                    o.msgs.push(hb);
                }
            }
            let mut records: Vec<Vec<Msg>> = Vec::new();
            let mut cur: Vec<Msg> = Vec::new();
            let mut used = 4;
            for m in o.msgs {
                let size = msg_size(&m);
                if !cur.is_empty() && used + size > budget {
                    records.push(std::mem::take(&mut cur));
                    used = 4;
                }
                used += size;
                cur.push(m);
            }
            if live && budget > used + 32 {
                // Owed acknowledgements and ready event data ride along for free.
                if let Some(f) = self.delivery.poll_transmit_to(now, id, budget - used - 8) {
                    let m = Msg::Delivery(f);
                    used += msg_size(&m);
                    cur.push(m);
                }
            }
            if o.piggyback && live && !self.broadcasts.is_empty() && budget > used + 16 {
                let ups = self.broadcasts.take(budget - used - 8, limit, Some(id));
                if !ups.is_empty() {
                    cur.push(Msg::Updates(ups));
                }
            }
            if !cur.is_empty() {
                records.push(cur);
            }
            for r in records {
                self.sessions.send(
                    now,
                    Some(id),
                    o.addr,
                    r,
                    &mut self.rng,
                    &mut self.stats,
                    &mut out,
                );
            }
        }
        // Event data and acknowledgements not yet carried: one record per frame (plus any
        // room left for another frame to the same peer).
        let max_frame = self.delivery.config().max_frame;
        while let Some((id, f)) = self.delivery.poll_transmit(now, max_frame) {
            let Some(addr) = self
                .members
                .get(id)
                .filter(|m| m.state.is_live())
                .map(|m| m.info.addr)
            else {
                continue; // gone: the engine is told by peer_gone and reports the failure
            };
            let first = Msg::Delivery(f);
            let mut used = 4 + msg_size(&first);
            let mut record = vec![first];
            while budget > used + 64 {
                match self.delivery.poll_transmit_to(now, id, budget - used - 8) {
                    Some(f) => {
                        let m = Msg::Delivery(f);
                        used += msg_size(&m);
                        record.push(m);
                    }
                    None => break,
                }
            }
            self.sessions.send(
                now,
                Some(id),
                addr,
                record,
                &mut self.rng,
                &mut self.stats,
                &mut out,
            );
        }
        while let Some(e) = self.delivery.poll_event() {
            self.outputs.push_back(Output::Event(e));
        }
        for (addr, msgs, once) in std::mem::take(&mut self.outbox_addr) {
            let tries = if once {
                1
            } else {
                crate::session::MAX_HELLO_TRIES
            };
            self.sessions.send_with_tries(
                now,
                addr,
                msgs,
                tries,
                &mut self.rng,
                &mut self.stats,
                &mut out,
            );
        }
        for id in std::mem::take(&mut self.drop_sessions) {
            if !self.members.is_live(id) {
                self.sessions.remove_peer(id);
            }
        }
        self.push_transmits(out);
    }

    /// Purges long-dead members and expired bookkeeping.
    fn sweep(&mut self, now: Instant) {
        if let Some(before) = now.checked_sub(self.config.dead_retention) {
            for id in self.members.purge(before) {
                self.sessions.remove_peer(id);
            }
        }
        self.join_sweep(now);
        self.probe.sweep(now);
        let members = &self.members;
        self.probe.suspicions.retain(|id| {
            members
                .get(id)
                .is_some_and(|m| matches!(m.state, crate::membership::Liveness::Suspect { .. }))
        });
    }

    /// Sends pending gossip to `gossip_fanout` random live members.
    fn gossip_round(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let live = self.members.live_ids();
        if live.is_empty() {
            return;
        }
        let mut picks = Vec::new();
        for _ in 0..self.config.gossip_fanout.min(live.len()) * 2 {
            let id = live[self.rng.below(live.len())];
            if !picks.contains(&id) && !self.join.refused_by.contains(&id) {
                picks.push(id);
            }
            if picks.len() >= self.config.gossip_fanout {
                break;
            }
        }
        for id in picks {
            self.queue(id, Vec::new());
        }
    }
}

#[cfg(test)]
mod election_tests;
#[cfg(test)]
mod lifeguard_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_anti_entropy;
#[cfg(test)]
mod tests_security;
#[cfg(test)]
mod tests_statements;
#[cfg(test)]
mod watch_tests;
