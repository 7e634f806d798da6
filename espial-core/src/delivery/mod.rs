//! Reliable, ordered, exactly-once delivery of custom events and replies: a sans-IO engine
//! the [`crate::Node`] owns.
//!
//! The engine knows nothing about sockets, sessions or membership. The node tells it who
//! to send to ([`Delivery::send`]), who is gone ([`Delivery::peer_gone`]) or unsubscribed
//! ([`Delivery::peer_unsubscribed`]), feeds it the [`Frame`]s that arrive inside sealed
//! records as `Msg::Delivery(frame)` ([`Delivery::handle_frame`]) and carries the frames it
//! produces ([`Delivery::poll_transmit`]).
//!
//! # Protocol
//! - Each engine has a random *stream id* (from `stream_seed`). Messages to each peer are
//!   numbered from a per-peer sequence counter. A receiver releases messages of a stream in
//!   sequence order, exactly once, and resets when the sender's stream id changes (the
//!   sender restarted, even under the same node id); frames of a replaced stream are
//!   ignored (unless the replacing stream stays silent for `stream_silence` while the old
//!   one still sends: then the "new" stream was a late straggler and the old one resumes
//!   where it stood).
//! - Every frame carries the sender's *base*: everything below it is finished (acknowledged
//!   or abandoned), so a receiver that restarted, or whose sender gave up on messages,
//!   skips forward instead of waiting forever.
//! - Acknowledgements are state, not messages: a receiver owes one ack per peer, made of a
//!   cumulative sequence number, ranges of complete messages above it and, for incomplete
//!   messages, the fragments received. It goes out after `ack_every` data frames, at once on
//!   a gap or duplicate, otherwise after `ack_delay`; and it rides on any data frame going
//!   the same way. Several small messages share one frame.
//! - Loss (RACK-like): a fragment is resent when a frame sent three data frames later was
//!   acknowledged and it is older than the RTT plus a reordering window (a quarter of the
//!   minimum RTT, widened on each spurious retransmission detected); otherwise a probe
//!   timeout (SRTT + 4·RTTVAR + ack delay, exponential back-off to `max_rto`; Karn's rule:
//!   no RTT sample from a retransmitted fragment) resends the oldest frame.
//! - Window: at most `window` fragments in flight and `window` numbered messages per peer;
//!   beyond that messages wait in a queue of `queue_limit` messages (and `queue_bytes`),
//!   after which [`Delivery::send`] returns [`SendError::Backpressure`].
//! - Fragmentation: payloads larger than [`DeliveryConfig::frag_size`] are split; the
//!   receiver reassembles up to `max_payload` with accounted memory bounded per peer
//!   (`reassembly_per_peer`) and in total (`reassembly_total`). Head-of-line messages get a
//!   reserved share (out-of-order data never takes the last `message_cap` bytes); an
//!   incomplete message may be evicted (counted: out-of-order ones first, then stalled or
//!   smaller head-of-line ones) and is then resent, so the largest head-of-line message
//!   always completes. Fragment acks are soft (a receiver may drop fragments it reported);
//!   whole-message acks are final.
//! - Subscription-routed events ([`Delivery::send_to_subscribers`]) are taken or declined
//!   at their turn (in order), by the receiver's subscriptions then
//!   ([`Delivery::set_subscriptions`]); a declined event never reaches the application.
//!   Until its turn a complete one is acknowledged by fragment only (not whole). Every ack
//!   lists, below its cumulative point, the messages not taken (declined, or skipped as
//!   abandoned), from the sender's base on, until the sender's base passes them; a list
//!   that does not fit lowers the cumulative point instead.
//! - Outcomes: a target counts as delivered when its engine acknowledged the whole message
//!   and did not list it as not taken (it then releases it in order, even if the sender
//!   later gives up on earlier ones); listed ones are reported failed.
//!   [`Delivery::peer_gone`] and `give_up_after` report the rest failed. An abandoned
//!   message that was already transmitted becomes a tiny `Skip` tombstone so the
//!   receiver's order does not stall; [`Delivery::peer_unsubscribed`] reports failed at
//!   once only what was never transmitted, and the rest by the receiver's verdict (taken
//!   before the tombstone, or not). A message reported failed after `peer_gone` or
//!   `give_up_after` may in rare races still reach the target (its ack was in flight) —
//!   never twice.
//!
//! # How the node drives it
//! - `send`/`reply`/`handle_frame`/`handle_timeout`/`peer_gone`/`peer_unsubscribed`
//!   change state; after each of them (or after a batch of them at the same `now`) the node
//!   *flushes*: `while let Some((peer, frame)) = d.poll_transmit(now, budget)` build one
//!   datagram for `peer` starting with `Msg::Delivery(frame)`, optionally fill its leftover
//!   room with `d.poll_transmit_to(now, peer, leftover)` (and with its own messages), seal
//!   and send it. Then drain `d.poll_event()` and re-arm its timer with `d.poll_timeout()`.
//! - `budget` is the room for the `Msg` in the sealed record: a returned frame always
//!   satisfies `wire::msg_size(&Msg::Delivery(frame)) <= budget`. Pass the full room
//!   (`max_frame`) for a fresh datagram, or else fragments may wait for the next call.
//! - When the node sends any other datagram to a peer (a probe, gossip), it may call
//!   `poll_transmit_to` with the leftover room: an owed ack rides along for free.
//! - Frames from one datagram are fed in order; frames from the local node are ignored.
//!   Feed only frames from live members: a frame from a peer after `peer_gone` recreates
//!   its state (under the same stream it resumes without duplicates).
//! - Map node commands: `send(name, payload, Target)` → resolve the target list (live
//!   subscribers, named ids, or the master) → `send(.., None)`; `request` → allocate a
//!   `RequestId` → `send(.., Some((id, timeout)))` (its `SendOutcome` can be surfaced or
//!   hidden); `reply` → check `to` is a live member → `reply`. On a member's removal call
//!   `peer_gone`; on a member's subscription change dropping `name`, `peer_unsubscribed`.
//!
//! ```
//! use espial_core::delivery::{Delivery, DeliveryConfig};
//! use espial_core::{Event, NodeId};
//! use bytes::Bytes;
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let (a, b) = (NodeId(1), NodeId(2));
//! let mut da = Delivery::new(DeliveryConfig::default(), a, 1);
//! let mut db = Delivery::new(DeliveryConfig::default(), b, 2);
//! da.send(now, "jobs", Bytes::from_static(b"hi"), &[b], None).unwrap();
//! let budget = DeliveryConfig::default().max_frame;
//! while let Some((to, frame)) = da.poll_transmit(now, budget) {
//!     assert_eq!(to, b);
//!     db.handle_frame(now, a, frame);
//! }
//! while let Some((_, frame)) = db.poll_transmit(now, budget) {
//!     da.handle_frame(now, b, frame); // not due yet: the ack waits for `ack_delay`
//! }
//! assert!(matches!(db.poll_event(), Some(Event::Custom(e)) if e.data == "hi"));
//! let later = db.poll_timeout().unwrap();
//! db.handle_timeout(later);
//! while let Some((_, frame)) = db.poll_transmit(later, budget) {
//!     da.handle_frame(later, b, frame);
//! }
//! assert!(matches!(da.poll_event(), Some(Event::SendOutcome(o)) if o.delivered == [b]));
//! ```

mod config;
mod decline;
mod departed;
mod frame;
mod receive;
mod rtt;
mod rx;
mod stats;
mod track;
mod tx;

#[cfg(test)]
mod tests;

pub use config::{DeliveryConfig, DATAGRAM_OVERHEAD, MIN_FRAME};
pub use frame::{Ack, Frame, Head, MsgKind, PartialAck, Run, Segment, MSG_COST};
pub use stats::DeliveryStats;
pub use tx::INITIAL_CREDIT;

use crate::error::SendError;
use crate::event::{check_event_name, CustomEvent, Event, RequestId, SendId};
use crate::NodeId;
use bytes::Bytes;
use decline::Declined;
use frame::{size_of, varint_len};
use rx::{Mem, Released, Rx, Verdict};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::{Duration, Instant};
use track::{ReplyFate, Tracker};
use tx::{Queued, Tx};

/// Streams of one peer remembered as replaced (their late frames are ignored).
const RETIRED_STREAMS: usize = 4;
/// Sequence numbers (and bases) from the network at or above this are malformed: no real
/// stream gets there, and it keeps all arithmetic far from overflow.
const MAX_SEQ: u64 = 1 << 62;
/// Peers whose receive position is remembered after `peer_gone`.
const GRAVEYARD: usize = 1024;

#[derive(Debug)]
struct Peer {
    tx: Tx,
    rx: Option<Rx>,
    /// Replaced streams of this peer: where each stood and what it had declined.
    retired: Vec<(u64, u64, Declined)>,
}

/// The delivery engine: per-peer reliable streams, fragmentation, acks, outcomes and
/// requests. Pure and deterministic: time comes in as `now`, randomness as `stream_seed`.
#[derive(Debug)]
pub struct Delivery {
    cfg: DeliveryConfig,
    local: NodeId,
    stream: u64,
    peers: BTreeMap<NodeId, Peer>,
    mem: Mem,
    seq_floor: u64,
    /// Gone peers: their stream, where it stood and what it had declined.
    graveyard: BTreeMap<NodeId, (u64, u64, Declined)>,
    grave_order: VecDeque<(NodeId, u64)>,
    tracker: Tracker,
    next_send: u64,
    events: VecDeque<Event>,
    stats: DeliveryStats,
    /// The local node's subscriptions (subscription-routed events for other names are
    /// declined on arrival).
    subscriptions: std::collections::BTreeSet<String>,
    /// Set while `send_to_subscribers` queues a message.
    route_by_subscription: bool,
    rr: Option<NodeId>,
    /// Released events handed out and not yet consumed, in the order handed out:
    /// `(peer, its stream, cost)` (see [`Delivery::app_consumed`]).
    unread_order: VecDeque<(NodeId, u64, u64)>,
    /// Where the streams to gone peers stood (next sequence number), so a returning peer's
    /// stream continues exactly there and its gap count is exact.
    tx_grave: BTreeMap<NodeId, u64>,
    tx_grave_order: VecDeque<NodeId>,
    /// Subscription-routed events published per name (for gap notices).
    published: BTreeMap<String, u64>,
    /// Peers removed as failed: the `published` count of each name they subscribed to at
    /// the time (their gap notice on return is the difference).
    departed: BTreeMap<NodeId, Vec<(String, u64)>>,
    departed_order: VecDeque<NodeId>,
}

/// The state of peer `id`, created on first use (its sequence numbers start at `floor`).
fn peer_entry<'a>(
    peers: &'a mut BTreeMap<NodeId, Peer>,
    id: NodeId,
    floor: u64,
    cfg: &DeliveryConfig,
) -> &'a mut Peer {
    peers.entry(id).or_insert_with(|| Peer {
        tx: Tx::new(floor, cfg),
        rx: None,
        retired: Vec::new(),
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Delivery {
    /// Sets the local node's subscriptions (subscription-routed events for other names are
    /// declined on arrival and counted in `events_declined`).
    pub fn set_subscriptions(&mut self, subs: &std::collections::BTreeSet<String>) {
        self.subscriptions = subs.clone();
    }

    /// Like [`Delivery::send`], marking the message as routed by subscription: a target that
    /// is no longer subscribed when it arrives declines it.
    pub fn send_to_subscribers(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        targets: &[NodeId],
        request: Option<(RequestId, Duration)>,
    ) -> Result<SendId, SendError> {
        self.route_by_subscription = true;
        let r = self.send(now, name, payload, targets, request);
        self.route_by_subscription = false;
        if r.is_ok() {
            match self.published.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    self.published.insert(name.to_string(), 1);
                }
            }
        }
        r
    }

    /// Creates an engine for the local node. `stream_seed` must differ between runs of the
    /// same node id (the node passes a value from its seeded generator); memory limits below
    /// workable minimums are raised (see [`DeliveryConfig`]).
    pub fn new(cfg: DeliveryConfig, local: NodeId, stream_seed: u64) -> Self {
        let stream = splitmix(stream_seed).max(1);
        Delivery {
            cfg: cfg.normalized(),
            local,
            stream,
            peers: BTreeMap::new(),
            mem: Mem::default(),
            seq_floor: 0,
            graveyard: BTreeMap::new(),
            grave_order: VecDeque::new(),
            tracker: Tracker::default(),
            next_send: 1,
            events: VecDeque::new(),
            stats: DeliveryStats::default(),
            subscriptions: std::collections::BTreeSet::new(),
            route_by_subscription: false,
            rr: None,
            unread_order: VecDeque::new(),
            tx_grave: BTreeMap::new(),
            tx_grave_order: VecDeque::new(),
            published: BTreeMap::new(),
            departed: BTreeMap::new(),
            departed_order: VecDeque::new(),
        }
        .with_mem_limits()
    }

    fn with_mem_limits(mut self) -> Self {
        self.mem.unread_cap = self.cfg.unread_total as u64;
        self.mem.explicit = self.cfg.app_consumption;
        self
    }

    /// Chooses when a released custom event counts as consumed: `true`, only when the
    /// caller reports it with [`Delivery::app_consumed`] (a driver that buffers events for
    /// its application); `false`, as soon as it is released (the default).
    pub fn set_app_consumption(&mut self, on: bool) {
        self.cfg.app_consumption = on;
        self.mem.explicit = on;
    }

    /// The first sequence number of a new stream to `peer`: where the last one stopped if
    /// it is remembered, else above every number used for a gone peer.
    fn floor_for(&self, peer: NodeId) -> u64 {
        self.tx_grave.get(&peer).copied().unwrap_or(self.seq_floor)
    }

    /// The configuration in force (after normalization).
    pub fn config(&self) -> &DeliveryConfig {
        &self.cfg
    }

    /// This engine's stream id.
    pub fn stream_id(&self) -> u64 {
        self.stream
    }

    fn check_size(&self, len: usize) -> Result<(), SendError> {
        if len > self.cfg.max_payload {
            return Err(SendError::TooLarge {
                size: len,
                limit: self.cfg.max_payload,
            });
        }
        Ok(())
    }

    /// Queues one message to each target (duplicates ignored); all or nothing. Fails with
    /// `TooLarge` over `max_payload`, `Backpressure(n)` when `n` targets' queues are full,
    /// `Name` for an unusable name. The outcome comes later as [`Event::SendOutcome`] (at
    /// once for no targets). The local node among the targets is reported failed (the node
    /// delivers to itself if it wants to). With `request = Some((id, timeout))` the message
    /// is a request: replies come as [`Event::Reply`], and [`Event::RequestDone`] summarizes
    /// at the timeout, or earlier once no target can still answer (all answered, or the rest
    /// are gone or failed).
    pub fn send(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        targets: &[NodeId],
        request: Option<(RequestId, Duration)>,
    ) -> Result<SendId, SendError> {
        check_event_name(name)?;
        self.check_size(payload.len())?;
        let mut remote: Vec<NodeId> = Vec::with_capacity(targets.len());
        let mut failed = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for &t in targets {
            if !seen.insert(t) {
                continue;
            }
            if t == self.local {
                failed.push(t);
            } else {
                remote.push(t);
            }
        }
        let full = remote
            .iter()
            .filter(|t| {
                self.peers
                    .get(t)
                    .is_some_and(|p| !p.tx.can_queue(&self.cfg, payload.len()))
            })
            .count();
        if full > 0 {
            return Err(SendError::Backpressure(full));
        }
        let id = SendId(self.next_send);
        self.next_send += 1;
        for &t in &remote {
            let q = Queued {
                send: Some(id),
                kind: MsgKind::Event {
                    name: name.to_string(),
                    request: request.map(|r| r.0),
                    subscribers_only: self.route_by_subscription,
                },
                payload: payload.clone(),
            };
            let floor = self.floor_for(t);
            let tx = &mut peer_entry(&mut self.peers, t, floor, &self.cfg).tx;
            tx.enqueue(q, &self.cfg);
            tx.refresh_blocked(now, &self.cfg);
            self.stats.messages_queued += 1;
        }
        self.stats.messages_failed += failed.len() as u64;
        let req = request.map(|(r, d)| (r, now + d));
        self.tracker
            .start(&mut self.events, id, &remote, failed, req);
        Ok(id)
    }

    /// Queues a reply to request `request` of node `to` (no outcome is reported for
    /// replies; the requester reports who answered).
    pub fn reply(
        &mut self,
        now: Instant,
        to: NodeId,
        request: RequestId,
        payload: Bytes,
    ) -> Result<(), SendError> {
        self.check_size(payload.len())?;
        if to == self.local {
            return Err(SendError::UnknownTarget(to));
        }
        if self
            .peers
            .get(&to)
            .is_some_and(|p| !p.tx.can_queue(&self.cfg, payload.len()))
        {
            return Err(SendError::Backpressure(1));
        }
        let floor = self.floor_for(to);
        let tx = &mut peer_entry(&mut self.peers, to, floor, &self.cfg).tx;
        tx.enqueue(
            Queued {
                send: None,
                kind: MsgKind::Reply { request },
                payload,
            },
            &self.cfg,
        );
        tx.refresh_blocked(now, &self.cfg);
        self.stats.messages_queued += 1;
        Ok(())
    }

    fn resolve(&mut self, send: Option<SendId>, target: NodeId, delivered: bool) {
        if delivered {
            self.stats.messages_acked += 1;
        } else {
            self.stats.messages_failed += 1;
        }
        if let Some(id) = send {
            self.tracker
                .resolve(&mut self.events, id, target, delivered);
        }
    }

    /// The next frame to send, to some peer, within `budget` bytes (measured as
    /// `wire::msg_size(&Msg::Delivery(frame))`). Peers are served round-robin. Call until
    /// `None` after every input.
    pub fn poll_transmit(&mut self, now: Instant, budget: usize) -> Option<(NodeId, Frame)> {
        let order: Vec<NodeId> = match self.rr {
            Some(r) => self
                .peers
                .range((Bound::Excluded(r), Bound::Unbounded))
                .chain(self.peers.range(..=r))
                .map(|(id, _)| *id)
                .collect(),
            None => self.peers.keys().copied().collect(),
        };
        for id in order {
            let ready = self.peers.get(&id).is_some_and(|p| {
                p.tx.has_data(&self.cfg)
                    || p.tx.probe_pending
                    || p.rx.as_ref().is_some_and(|rx| rx.ack_due(now, &self.cfg))
            });
            if !ready {
                continue;
            }
            if let Some(f) = self.build_frame(now, id, budget, false) {
                self.rr = Some(id);
                return Some((id, f));
            }
        }
        None
    }

    /// A frame for `peer` within `budget` bytes, to fill the leftover room of a datagram
    /// the node is sending to `peer` anyway: data if any is ready, and any owed ack even if
    /// not yet due.
    pub fn poll_transmit_to(&mut self, now: Instant, peer: NodeId, budget: usize) -> Option<Frame> {
        self.build_frame(now, peer, budget, true)
    }

    fn build_frame(
        &mut self,
        now: Instant,
        id: NodeId,
        budget: usize,
        piggyback: bool,
    ) -> Option<Frame> {
        let stream = self.stream;
        let cfg = &self.cfg;
        let peer = self.peers.get_mut(&id)?;
        let base = peer.tx.base();
        // Msg tag, stream, base, Option tag of the ack, length of the segment vector, the
        // blocked flag.
        let fixed = 1 + varint_len(stream) + varint_len(base) + 1 + 1 + 1;
        if fixed > budget {
            return None;
        }
        let has_data = peer.tx.has_data(cfg);
        let (owed, due) = match &peer.rx {
            Some(rx) => (rx.ack.pending, rx.ack_due(now, cfg)),
            None => (false, false),
        };
        let want_ack = owed && (due || piggyback || has_data);
        let probe = peer.tx.probe_pending;
        if !want_ack && !has_data && !probe {
            return None;
        }
        let room = budget - fixed;
        let ack = if want_ack {
            let limit = if has_data { room / 2 } else { room };
            peer.rx.as_mut().and_then(|rx| rx.build_ack(now, limit))
        } else {
            None
        };
        let ack_size = ack.as_ref().map_or(0, size_of);
        let (segs, retransmits) = if has_data {
            peer.tx.build(now, cfg, room - ack_size, base)
        } else {
            (Vec::new(), 0)
        };
        if ack.is_none() && segs.is_empty() && !probe {
            return None;
        }
        let blocked = probe && segs.is_empty();
        if blocked {
            peer.tx.probe_pending = false;
            self.stats.credit_probes_out += 1;
        }
        self.stats.frames_out += 1;
        self.stats.segments_out += segs.len() as u64;
        self.stats.retransmits += retransmits;
        if ack.is_some() {
            self.stats.acks_out += 1;
        }
        if segs.is_empty() {
            self.stats.ack_only_frames_out += 1;
        }
        let frame = Frame {
            stream,
            base,
            ack,
            segs,
            blocked,
        };
        debug_assert!(size_of(&frame) < budget, "frame exceeds its budget");
        Some(frame)
    }

    /// Advances timers: owed acks come due, lost fragments are resent (probe timeout with
    /// back-off), peers silent for `give_up_after` are given up on, requests time out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            peer.tx.refresh_blocked(now, &self.cfg);
            let (give_up, probed) = peer.tx.on_timeout(now, &self.cfg);
            if probed {
                self.stats.probe_timeouts += 1;
            }
            if give_up {
                let failed = peer.tx.fail_all();
                self.stats.gave_up += 1;
                for s in failed {
                    self.resolve(Some(s), id, false);
                }
            }
        }
        self.tracker.on_timeout(&mut self.events, now);
    }

    /// The earliest instant at which [`Delivery::handle_timeout`] must run (`None` when
    /// idle). It may be in the past when an ack is owed at once: call `handle_timeout` and
    /// flush.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.tracker.deadline();
        let mut take = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |x| x.min(d)));
            }
        };
        for p in self.peers.values() {
            take(p.tx.deadline(&self.cfg));
            take(p.rx.as_ref().and_then(|rx| rx.ack_deadline(&self.cfg)));
        }
        t
    }

    /// Next event for the application: [`Event::Custom`], [`Event::SendOutcome`],
    /// [`Event::Reply`], [`Event::RequestDone`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The peer died or left: every unacknowledged send to it is reported failed, its
    /// reassembly buffers and stream state are dropped, it no longer counts for requests.
    /// If it comes back under the same stream, its messages resume where they stopped.
    ///
    /// Returns, per event name, how many of its events the peer cannot see as a gap in its
    /// stream: those still queued without a sequence number, and all of them when the peer
    /// never acknowledged anything (it has no receive state for our stream).
    /// [`Delivery::note_departed`] counts them into its gap notice.
    pub fn peer_gone(&mut self, now: Instant, peer: NodeId) -> BTreeMap<String, u64> {
        let _ = now;
        let mut unsent = BTreeMap::new();
        if let Some(mut p) = self.peers.remove(&peer) {
            // A peer that never acknowledged anything holds no receive state for our
            // stream: it will take the next stream position as its start, so the messages
            // numbered already are invisible to it as well.
            let numbered = p.tx.active.values().filter(|_| !p.tx.acked_once);
            let kinds = p.tx.queue.iter().map(|q| &q.kind);
            for kind in kinds.chain(numbered.map(|m| &m.kind)) {
                if let MsgKind::Event { name, .. } = kind {
                    *unsent.entry(name.clone()).or_insert(0u64) += 1;
                }
            }
            let failed = p.tx.fail_all();
            self.seq_floor = self.seq_floor.max(p.tx.next_seq);
            if self.tx_grave.insert(peer, p.tx.next_seq).is_none() {
                self.tx_grave_order.push_back(peer);
                if self.tx_grave_order.len() > GRAVEYARD {
                    if let Some(old) = self.tx_grave_order.pop_front() {
                        self.tx_grave.remove(&old);
                    }
                }
            }
            if let Some(mut rx) = p.rx.take() {
                rx.clear(&mut self.mem);
                let declined = std::mem::take(&mut rx.declined);
                self.graveyard.insert(peer, (rx.stream, rx.next, declined));
                self.grave_order.push_back((peer, rx.stream));
                while self.grave_order.len() > GRAVEYARD {
                    if let Some((id, s)) = self.grave_order.pop_front() {
                        if self.graveyard.get(&id).is_some_and(|g| g.0 == s) {
                            self.graveyard.remove(&id);
                        }
                    }
                }
            }
            for s in failed {
                self.resolve(Some(s), peer, false);
            }
        }
        self.tracker.peer_gone(&mut self.events, peer);
        unsent
    }

    /// The peer unsubscribed from `name`: unacknowledged events of that name to it are
    /// abandoned (it will skip them) and reported failed: at once if never transmitted,
    /// else when the peer acknowledges the tombstone (delivered instead if it had already
    /// taken the message).
    pub fn peer_unsubscribed(&mut self, now: Instant, peer: NodeId, name: &str) {
        let _ = now;
        let failed = match self.peers.get_mut(&peer) {
            Some(p) => p.tx.abandon_name(name),
            None => return,
        };
        for s in failed {
            self.resolve(Some(s), peer, false);
        }
    }

    /// The application consumed the `count` oldest custom events handed out (in the order
    /// [`Delivery::poll_event`] returned them). Only with `app_consumption` on: their
    /// senders' sends become delivered, credit is granted again, events held back by the
    /// unread limits are released.
    pub fn app_consumed(&mut self, now: Instant, count: usize) {
        for _ in 0..count {
            let Some((from, stream, c)) = self.unread_order.pop_front() else {
                break;
            };
            self.mem.unread = self.mem.unread.saturating_sub(c);
            if let Some(rx) = self
                .peers
                .get_mut(&from)
                .and_then(|p| p.rx.as_mut())
                .filter(|rx| rx.stream == stream)
            {
                rx.consumed_one(now, &self.mem);
            }
        }
        if self.mem.stalled {
            self.mem.stalled = false;
            let ids: Vec<NodeId> = self.peers.keys().copied().collect();
            for id in ids {
                let mut released = Vec::new();
                if let Some(rx) = self.peers.get_mut(&id).and_then(|p| p.rx.as_mut()) {
                    rx.release(&mut self.mem, &self.subscriptions, &mut released);
                }
                self.emit(id, released);
            }
        }
    }

    /// How promptly consumption must be reported with [`Delivery::app_consumed`]:
    /// `(slack, bytes)`. A consumption may wait up to `slack` (the acknowledgement delay:
    /// the ack it frees waits that long anyway) unless `bytes` of consumption (payload +
    /// [`MSG_COST`] each) are pending, enough for an immediate ack with fresh credit; while
    /// released events are held back for the application (unread limits reached), every
    /// consumption is wanted at once (`bytes == 0`).
    pub fn consumption_report(&self) -> (Duration, u64) {
        if self.mem.stalled {
            return (Duration::ZERO, 0);
        }
        (
            self.cfg.ack_delay,
            (self.cfg.credit_window as u64 / 8).max(1),
        )
    }

    /// Custom events handed out and not yet consumed (with `app_consumption`), and their
    /// cost in bytes (payload + [`MSG_COST`] each).
    pub fn unread(&self) -> (usize, u64) {
        (self.unread_order.len(), self.mem.unread)
    }

    /// Makes every acknowledgement this node could owe due at once (for a graceful
    /// leave: the peers hear what this node received and consumed before it goes).
    pub fn owe_acks_now(&mut self, now: Instant) {
        for p in self.peers.values_mut() {
            if let Some(rx) = p.rx.as_mut() {
                rx.owe_now(now);
            }
        }
    }

    /// Ends every open send: what is not confirmed yet is reported failed (not
    /// confirmed) at once. For a graceful leave.
    pub fn close(&mut self, now: Instant) {
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for id in ids {
            let failed = match self.peers.get_mut(&id) {
                Some(p) => p.tx.fail_all(),
                None => continue,
            };
            for s in failed {
                self.resolve(Some(s), id, false);
            }
        }
        self.tracker
            .on_timeout(&mut self.events, now + Duration::from_secs(365 * 86_400));
    }

    /// Messages queued or in transmission to `peer`.
    pub fn outstanding(&self, peer: NodeId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.tx.outstanding())
    }

    /// Fragments in flight to `peer`.
    pub fn in_flight(&self, peer: NodeId) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.tx.inflight())
    }

    /// Sends awaiting their outcome and requests awaiting their summary.
    pub fn open(&self) -> (usize, usize) {
        self.tracker.open()
    }

    /// True when nothing is queued, in flight, owed or awaited.
    pub fn is_idle(&self) -> bool {
        self.tracker.open() == (0, 0)
            && self
                .peers
                .values()
                .all(|p| p.tx.outstanding() == 0 && p.rx.as_ref().is_none_or(|rx| !rx.ack.pending))
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DeliveryStats {
        DeliveryStats {
            reassembly_bytes: self.mem.total() as u64,
            unread_bytes: self.mem.unread,
            ..self.stats.clone()
        }
    }
}
