//! Send side of one peer: queue, window, fragmentation, acknowledgement processing, loss
//! detection (packet threshold + probe timeout) and retransmission.

use super::frame::{decode_runs, Ack, Head, MsgKind, Segment, MSG_COST};
use super::rtt::Rtt;
use super::DeliveryConfig;
use crate::event::SendId;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// A frame older by this many data frames than an acknowledged one is declared lost.
const PACKET_THRESHOLD: u64 = 3;
/// At most this many segments per frame (keeps the vector's length prefix at one byte).
pub(crate) const MAX_SEGS: usize = 127;
/// Most runs and partial reports read from one ack.
const MAX_ACK_ITEMS: usize = 256;
/// Credit a sender assumes towards a peer before the peer's first acknowledgement (cost
/// units: payload + [`MSG_COST`] per message).
pub const INITIAL_CREDIT: u64 = 64 * 1024;

/// Flow-control cost of a message with this payload length.
pub(crate) fn cost(len: usize) -> u64 {
    len as u64 + MSG_COST
}

/// A message waiting behind the window (no sequence number yet).
#[derive(Debug)]
pub(crate) struct Queued {
    pub send: Option<SendId>,
    pub kind: MsgKind,
    pub payload: Bytes,
}

/// State of one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FragTx {
    Unsent,
    InFlight {
        tx: u64,
        sent: Instant,
        count: u32,
    },
    Lost {
        count: u32,
    },
    /// Reported received inside an incomplete message (may be withdrawn if the receiver
    /// evicts the partial message).
    Acked {
        count: u32,
    },
}

/// A message with a sequence number, being transmitted.
#[derive(Debug)]
pub(crate) struct OutMsg {
    pub send: Option<SendId>,
    pub kind: MsgKind,
    payload: Bytes,
    frag_size: usize,
    frags: Vec<FragTx>,
    next_unsent: u32,
}

impl OutMsg {
    fn n(&self) -> u32 {
        self.frags.len() as u32
    }
}

#[derive(Debug)]
struct SentFrame {
    sent: Instant,
    frags: Vec<(u64, u32)>,
    live: u32,
}

/// What an acknowledgement changed.
#[derive(Debug, Default)]
pub(crate) struct AckOutcome {
    /// Sends now resolved for this peer: `true` when the receiver's application consumed
    /// the message (delivered), `false` when the receiver declined it (failed).
    pub finished: Vec<(Option<SendId>, bool)>,
}

/// Send state toward one peer.
#[derive(Debug)]
pub(crate) struct Tx {
    pub queue: VecDeque<Queued>,
    pub queue_bytes: usize,
    pub active: BTreeMap<u64, OutMsg>,
    pub next_seq: u64,
    unsent: usize,
    inflight: usize,
    lost: BTreeSet<(u64, u32)>,
    frames: BTreeMap<u64, SentFrame>,
    next_tx: u64,
    largest_acked_tx: Option<u64>,
    /// When the oldest frame past the packet threshold becomes old enough to call lost.
    loss_at: Option<Instant>,
    /// Reordering tolerance in quarters of the minimum RTT; grows on each spurious
    /// retransmission detected.
    reo_steps: u32,
    pub rtt: Rtt,
    backoff: u32,
    pub last_serial: u64,
    last_ack_at: Option<Instant>,
    /// The peer acknowledged progress at least once: it holds receive state for our
    /// stream, so it sees failed sequence numbers as a gap in it.
    pub acked_once: bool,
    waiting_since: Option<Instant>,
    unsent_cursor: u64,
    /// Start offset (cost units) of every admitted message not yet known consumed, by
    /// sequence number from `offs_first` on (messages are admitted in sequence order, so
    /// this is contiguous up to `next_seq`).
    offs: VecDeque<u64>,
    /// Sequence number of `offs[0]`.
    offs_first: u64,
    /// Offset after the last admitted message.
    off_next: u64,
    /// Absolute flow-control limit: a message may be admitted while its end offset is at
    /// most this. Only grows.
    pub limit: u64,
    /// Highest `consumed` reported by the receiver.
    consumed: u64,
    /// True once the receiver sent credit (before that, `INITIAL_CREDIT` applies).
    credit_known: bool,
    /// Taken by the receiver (acknowledged whole), waiting for its application to consume
    /// them: their sends are reported delivered when `consumed` passes them.
    /// Sorted by sequence number (acks mostly finish messages in order: appended at the
    /// back).
    received: VecDeque<(u64, SendId)>,
    /// Next blocked probe (set while messages wait for credit).
    probe_at: Option<Instant>,
    probe_backoff: u32,
    /// A blocked probe is due in the next frame.
    pub probe_pending: bool,
}

impl Tx {
    pub(crate) fn new(first_seq: u64, cfg: &DeliveryConfig) -> Self {
        Tx {
            queue: VecDeque::new(),
            queue_bytes: 0,
            active: BTreeMap::new(),
            next_seq: first_seq,
            unsent: 0,
            inflight: 0,
            lost: BTreeSet::new(),
            frames: BTreeMap::new(),
            next_tx: 0,
            largest_acked_tx: None,
            loss_at: None,
            reo_steps: 1,
            rtt: Rtt::new(cfg.initial_rtt),
            backoff: 0,
            last_serial: 0,
            last_ack_at: None,
            acked_once: false,
            waiting_since: None,
            unsent_cursor: first_seq,
            offs: VecDeque::new(),
            offs_first: first_seq,
            off_next: 0,
            limit: INITIAL_CREDIT,
            consumed: first_seq,
            credit_known: false,
            received: VecDeque::new(),
            probe_at: None,
            probe_backoff: 0,
            probe_pending: false,
        }
    }

    /// True when the next queued message waits for credit (and nothing else holds it).
    pub(crate) fn blocked(&self, cfg: &DeliveryConfig) -> bool {
        match self.queue.front() {
            Some(q) => {
                self.next_seq - self.base() < cfg.window as u64
                    && self.unsent < cfg.window
                    && !self.credit_ok(q.payload.len())
            }
            None => false,
        }
    }

    fn credit_ok(&self, len: usize) -> bool {
        self.off_next.saturating_add(cost(len)) <= self.limit
    }

    /// Keeps the blocked-probe timer in step with the credit state: armed while blocked
    /// (at once before any credit was heard, else after one probe timeout), cleared when
    /// not.
    pub(crate) fn refresh_blocked(&mut self, now: Instant, cfg: &DeliveryConfig) {
        // Also while messages wait only for the receiver's consumption report: that ack may
        // be lost, and nothing else would make the receiver send another.
        let awaiting = !self.received.is_empty() && self.active.is_empty();
        if self.blocked(cfg) || awaiting {
            if self.probe_at.is_none() {
                let wait = if self.credit_known {
                    self.rtt.rto(cfg, 0)
                } else {
                    Duration::ZERO
                };
                self.probe_at = Some(now + wait);
            }
        } else {
            self.probe_at = None;
            self.probe_backoff = 0;
            self.probe_pending = false;
        }
    }

    /// Every message below this is finished (acknowledged or abandoned).
    pub(crate) fn base(&self) -> u64 {
        self.active
            .first_key_value()
            .map(|(s, _)| *s)
            .unwrap_or(self.next_seq)
    }

    /// True when one more message may be queued.
    pub(crate) fn can_queue(&self, cfg: &DeliveryConfig, len: usize) -> bool {
        if self.queue.is_empty() {
            return true;
        }
        self.queue.len() < cfg.queue_limit
            && self.queue_bytes.saturating_add(len) <= cfg.queue_bytes
    }

    /// Queues a message and numbers what the window admits.
    pub(crate) fn enqueue(&mut self, q: Queued, cfg: &DeliveryConfig) {
        self.queue_bytes += q.payload.len();
        self.queue.push_back(q);
        while self.admit_one(cfg) {}
    }

    /// Messages queued or in transmission.
    pub(crate) fn outstanding(&self) -> usize {
        self.queue.len() + self.active.len()
    }

    fn can_admit(&self, cfg: &DeliveryConfig) -> bool {
        match self.queue.front() {
            Some(q) => {
                self.next_seq - self.base() < cfg.window as u64
                    && self.unsent < cfg.window
                    && self.credit_ok(q.payload.len())
            }
            None => false,
        }
    }

    fn admit_one(&mut self, cfg: &DeliveryConfig) -> bool {
        if !self.can_admit(cfg) {
            return false;
        }
        let Some(q) = self.queue.pop_front() else {
            return false;
        };
        self.queue_bytes -= q.payload.len();
        if self.offs.is_empty() {
            self.offs_first = self.next_seq;
        }
        debug_assert_eq!(self.offs_first + self.offs.len() as u64, self.next_seq);
        self.offs.push_back(self.off_next);
        self.off_next = self.off_next.saturating_add(cost(q.payload.len()));
        let frag_size = cfg.frag_size();
        let n = q.payload.len().div_ceil(frag_size).max(1);
        self.unsent += n;
        self.active.insert(
            self.next_seq,
            OutMsg {
                send: q.send,
                kind: q.kind,
                payload: q.payload,
                frag_size,
                frags: vec![FragTx::Unsent; n],
                next_unsent: 0,
            },
        );
        self.next_seq += 1;
        true
    }

    /// True when a data segment could be sent now.
    pub(crate) fn has_data(&self, cfg: &DeliveryConfig) -> bool {
        self.inflight < cfg.window
            && (!self.lost.is_empty() || self.unsent > 0 || self.can_admit(cfg))
    }

    /// The next fragment to send: a lost one first, then new ones in order.
    fn candidate(&mut self, cfg: &DeliveryConfig) -> Option<(u64, u32, bool)> {
        if let Some(&(seq, frag)) = self.lost.first() {
            return Some((seq, frag, true));
        }
        loop {
            if self.unsent > 0 {
                for (&seq, m) in self.active.range(self.unsent_cursor..) {
                    if m.next_unsent < m.n() {
                        self.unsent_cursor = seq;
                        return Some((seq, m.next_unsent, false));
                    }
                }
            }
            self.unsent_cursor = self.next_seq;
            if !self.admit_one(cfg) {
                return None;
            }
        }
    }

    fn segment(&self, seq: u64, frag: u32, base: u64) -> Option<Segment> {
        let m = self.active.get(&seq)?;
        let start = (frag as usize)
            .saturating_mul(m.frag_size)
            .min(m.payload.len());
        let end = start.saturating_add(m.frag_size).min(m.payload.len());
        Some(Segment {
            off: seq - base,
            frag,
            frags: m.n(),
            head: (frag == 0).then(|| Head {
                total_len: m.payload.len() as u32,
                kind: m.kind.clone(),
            }),
            data: m.payload.slice(start..end),
        })
    }

    /// Fills up to `budget` bytes with segments (each counted with its exact encoded size).
    /// Returns the segments and how many were retransmissions.
    pub(crate) fn build(
        &mut self,
        now: Instant,
        cfg: &DeliveryConfig,
        budget: usize,
        base: u64,
    ) -> (Vec<Segment>, u64) {
        let mut segs = Vec::new();
        let mut ids = Vec::new();
        let mut used = 0usize;
        let mut retransmits = 0;
        let tx = self.next_tx;
        while segs.len() < MAX_SEGS && self.inflight < cfg.window {
            let Some((seq, frag, retx)) = self.candidate(cfg) else {
                break;
            };
            let Some(seg) = self.segment(seq, frag, base) else {
                // Cannot happen (candidates come from `active`); drop the stale entry.
                self.lost.remove(&(seq, frag));
                continue;
            };
            let size = super::frame::size_of(&seg);
            if used + size > budget {
                break;
            }
            used += size;
            let Some(m) = self.active.get_mut(&seq) else {
                break;
            };
            let count = match m.frags[frag as usize] {
                FragTx::Lost { count } | FragTx::Acked { count } => count,
                FragTx::InFlight { count, .. } => count,
                FragTx::Unsent => 0,
            };
            m.frags[frag as usize] = FragTx::InFlight {
                tx,
                sent: now,
                count: count.saturating_add(1),
            };
            if retx {
                self.lost.remove(&(seq, frag));
                retransmits += 1;
            } else {
                m.next_unsent += 1;
                self.unsent -= 1;
            }
            self.inflight += 1;
            ids.push((seq, frag));
            segs.push(seg);
        }
        if !ids.is_empty() {
            let live = ids.len() as u32;
            self.frames.insert(
                tx,
                SentFrame {
                    sent: now,
                    frags: ids,
                    live,
                },
            );
            self.next_tx += 1;
            self.waiting_since.get_or_insert(now);
        }
        (segs, retransmits)
    }

    fn dec_frame(&mut self, tx: u64) {
        if let Some(f) = self.frames.get_mut(&tx) {
            f.live = f.live.saturating_sub(1);
            if f.live == 0 {
                self.frames.remove(&tx);
            }
        }
    }

    /// Removes a message, releasing its window and bookkeeping.
    fn finish(&mut self, seq: u64) -> Option<OutMsg> {
        let m = self.active.remove(&seq)?;
        for (i, f) in m.frags.iter().enumerate() {
            match *f {
                FragTx::InFlight { tx, .. } => {
                    self.inflight -= 1;
                    self.dec_frame(tx);
                }
                FragTx::Lost { .. } => {
                    self.lost.remove(&(seq, i as u32));
                }
                _ => {}
            }
        }
        self.unsent -= (m.n() - m.next_unsent) as usize;
        Some(m)
    }

    /// Applies an acknowledgement of this stream.
    pub(crate) fn on_ack(&mut self, now: Instant, cfg: &DeliveryConfig, ack: &Ack) -> AckOutcome {
        let mut out = AckOutcome::default();
        let fresh = ack.serial > self.last_serial;
        if fresh {
            self.last_serial = ack.serial;
        }
        let mut newest: Option<(u64, Instant, bool)> = None; // (tx, sent, first transmission)
        let mut progress = false;
        // An ack that comes back faster than any round trip answers an earlier copy: the
        // retransmission was spurious (reordering, not loss).
        let min_rtt = self.rtt.min_rtt();
        let mut spurious = false;
        let too_soon =
            |sent: Instant, count: u32| count > 1 && now.saturating_duration_since(sent) < min_rtt;

        // Declined messages, as sorted disjoint ranges (none if the origin is malformed).
        let declined = match ack.cumulative.checked_sub(ack.declined_back) {
            Some(origin) => decode_runs(origin, &ack.declined, MAX_ACK_ITEMS),
            None => Vec::new(),
        };
        let is_declined = |seq: u64| {
            let i = declined.partition_point(|r| r.1 <= seq);
            declined.get(i).is_some_and(|r| r.0 <= seq)
        };

        // Whole messages: cumulative, then selective ranges.
        let cum = ack.cumulative.min(self.next_seq);
        let mut done: Vec<u64> = self.active.range(..cum).map(|(s, _)| *s).collect();
        for (start, end) in decode_runs(cum, &ack.ranges, MAX_ACK_ITEMS) {
            let end = end.min(self.next_seq);
            if start >= end {
                break;
            }
            done.extend(self.active.range(start..end).map(|(s, _)| *s));
        }
        for seq in done {
            if let Some(m) = self.active.get(&seq) {
                for f in &m.frags {
                    match *f {
                        FragTx::InFlight { tx, sent, count } => {
                            note(tx, sent, count, &mut newest);
                            spurious |= too_soon(sent, count);
                        }
                        FragTx::Lost { .. } => spurious = true,
                        _ => {}
                    }
                }
            }
            if let Some(m) = self.finish(seq) {
                progress = true;
                if is_declined(seq) {
                    out.finished.push((m.send, false));
                } else if let Some(send) = m.send {
                    // Taken: delivered once the receiver's application consumed it.
                    self.note_received(seq, send);
                }
            }
        }

        // Fragments of incomplete messages.
        for p in ack.partials.iter().take(MAX_ACK_ITEMS) {
            let Some(seq) = cum.checked_add(p.off) else {
                continue;
            };
            let runs = decode_runs(0, &p.frags, MAX_ACK_ITEMS);
            let Some(m) = self.active.get_mut(&seq) else {
                continue;
            };
            if m.kind == MsgKind::Skip {
                // A tombstone is only done when acknowledged whole: fragments reported under
                // its number belong to the message it replaced.
                continue;
            }
            let n = m.n() as u64;
            let covered = runs.last().map(|r| r.1.min(n)).unwrap_or(0);
            let mut r = 0;
            let mut released: Vec<u64> = Vec::new();
            for i in 0..n {
                while r < runs.len() && runs[r].1 <= i {
                    r += 1;
                }
                let has = r < runs.len() && runs[r].0 <= i;
                let f = &mut m.frags[i as usize];
                match *f {
                    FragTx::InFlight { tx, sent, count } if has => {
                        note(tx, sent, count, &mut newest);
                        spurious |= too_soon(sent, count);
                        *f = FragTx::Acked { count };
                        self.inflight -= 1;
                        released.push(tx);
                        progress = true;
                    }
                    FragTx::Lost { count } if has => {
                        spurious = true;
                        *f = FragTx::Acked { count };
                        self.lost.remove(&(seq, i as u32));
                        progress = true;
                    }
                    FragTx::Acked { count } if !has && fresh && i < covered => {
                        // The receiver dropped it (evicted the partial message): resend.
                        *f = FragTx::Lost { count };
                        self.lost.insert((seq, i as u32));
                    }
                    _ => {}
                }
            }
            for tx in released {
                self.dec_frame(tx);
            }
        }

        if let Some((tx, sent, first)) = newest {
            if fresh && first {
                let delay = Duration::from_micros(ack.delay_us).min(cfg.ack_delay);
                self.rtt.sample(now.saturating_duration_since(sent), delay);
            }
            self.largest_acked_tx = Some(self.largest_acked_tx.map_or(tx, |l| l.max(tx)));
        }
        if progress {
            self.acked_once = true;
            self.backoff = 0;
            self.last_ack_at = Some(now);
            self.waiting_since = Some(now);
        }
        if spurious {
            self.reo_steps = (self.reo_steps + 1).min(16);
        }
        self.detect_lost(now);
        if self.active.is_empty() {
            self.waiting_since = None;
        }
        self.on_credit(ack, &mut out);
        out
    }

    /// Records a message taken by the receiver, waiting for its application's consumption
    /// (kept sorted by sequence number; usually an append).
    fn note_received(&mut self, seq: u64, send: SendId) {
        match self.received.back() {
            Some(&(last, _)) if last > seq => {
                let i = self.received.partition_point(|r| r.0 < seq);
                if self.received.get(i).is_some_and(|r| r.0 == seq) {
                    self.received[i] = (seq, send);
                } else {
                    self.received.insert(i, (seq, send));
                }
            }
            Some(&(last, _)) if last == seq => {
                if let Some(b) = self.received.back_mut() {
                    *b = (seq, send);
                }
            }
            _ => self.received.push_back((seq, send)),
        }
    }

    /// Applies the consumed point and credit of an acknowledgement: sends consumed below
    /// it are delivered; the limit becomes `offset(consumed) + credit` if that is larger.
    /// Stale values (below what was already reported) change nothing.
    fn on_credit(&mut self, ack: &Ack, out: &mut AckOutcome) {
        let consumed = ack.consumed.min(ack.cumulative).min(self.next_seq);
        if consumed < self.consumed {
            return;
        }
        if consumed > self.consumed {
            while let Some(&(seq, send)) = self.received.front() {
                if seq >= consumed {
                    break;
                }
                self.received.pop_front();
                out.finished.push((Some(send), true));
            }
            self.consumed = consumed;
        }
        let off = if consumed == self.next_seq {
            self.off_next
        } else {
            let i = consumed.checked_sub(self.offs_first);
            match i.and_then(|i| self.offs.get(usize::try_from(i).ok()?)) {
                Some(o) => *o,
                None => return,
            }
        };
        // Forget the offsets below `consumed`.
        let drop = consumed
            .saturating_sub(self.offs_first)
            .min(self.offs.len() as u64) as usize;
        self.offs.drain(..drop);
        self.offs_first = self.offs_first.max(consumed);
        self.credit_known = true;
        if let Some(l) = off.checked_add(ack.credit) {
            self.limit = self.limit.max(l);
        }
    }

    /// Declares lost the fragments still in flight in frames sent at least
    /// `PACKET_THRESHOLD` data frames before the newest acknowledged one, once they are also
    /// older than the RTT plus a reordering window (RACK-like: reordering is not loss).
    /// Arms `loss_at` for the next frame that meets the first rule but not yet the second.
    fn detect_lost(&mut self, now: Instant) {
        self.loss_at = None;
        let Some(largest) = self.largest_acked_tx else {
            return;
        };
        let reo = (self.rtt.min_rtt() / 4 * self.reo_steps).min(self.rtt.srtt());
        let wait = self.rtt.latest().max(self.rtt.srtt()) + reo;
        while let Some((&tx, f)) = self.frames.first_key_value() {
            if tx + PACKET_THRESHOLD > largest {
                break;
            }
            if now < f.sent + wait {
                self.loss_at = Some(f.sent + wait);
                break;
            }
            self.declare_frame_lost(tx);
        }
    }

    fn declare_frame_lost(&mut self, tx: u64) {
        let Some(frame) = self.frames.remove(&tx) else {
            return;
        };
        for (seq, frag) in frame.frags {
            let Some(m) = self.active.get_mut(&seq) else {
                continue;
            };
            let Some(f) = m.frags.get_mut(frag as usize) else {
                continue;
            };
            if let FragTx::InFlight { tx: t, count, .. } = *f {
                if t == tx {
                    *f = FragTx::Lost { count };
                    self.inflight -= 1;
                    self.lost.insert((seq, frag));
                }
            }
        }
    }

    /// When `on_timeout` must run next.
    pub(crate) fn deadline(&self, cfg: &DeliveryConfig) -> Option<Instant> {
        let rto = self.rtt.rto(cfg, self.backoff);
        let probe = if let Some((_, f)) = self.frames.first_key_value() {
            Some(self.loss_at.map_or(f.sent + rto, |l| l.min(f.sent + rto)))
        } else if self.lost.is_empty() && self.unsent == 0 && !self.active.is_empty() {
            self.last_ack_at.or(self.waiting_since).map(|t| t + rto)
        } else {
            None
        };
        let give_up = match (self.waiting_since, cfg.give_up_after) {
            (Some(w), Some(g)) if !self.active.is_empty() => Some(w + g),
            _ => None,
        };
        [
            probe,
            give_up,
            self.probe_at.filter(|_| !self.probe_pending),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the probe timeout. Returns `true` when the peer should be given up on.
    pub(crate) fn on_timeout(&mut self, now: Instant, cfg: &DeliveryConfig) -> (bool, bool) {
        if let (Some(w), Some(g)) = (self.waiting_since, cfg.give_up_after) {
            if !self.active.is_empty() && now >= w + g {
                return (true, false);
            }
        }
        if self.loss_at.is_some_and(|l| now >= l) {
            self.detect_lost(now);
        }
        if let Some(at) = self.probe_at {
            if now >= at && !self.probe_pending {
                // Blocked for credit: ask the receiver for its current credit (a lost
                // update must not deadlock the pair), backing off to `max_rto`.
                self.probe_pending = true;
                let wait = self.rtt.rto(cfg, self.probe_backoff.saturating_add(1));
                self.probe_backoff = self.probe_backoff.saturating_add(1);
                self.probe_at = Some(now + wait);
            }
        }
        let rto = self.rtt.rto(cfg, self.backoff);
        if let Some((&tx, f)) = self.frames.first_key_value() {
            if now >= f.sent + rto {
                // Probe: resend the oldest frame's fragments; the ack of the probe reveals
                // (by packet threshold) what else was lost.
                self.declare_frame_lost(tx);
                self.backoff = self.backoff.saturating_add(1);
                return (false, true);
            }
            return (false, false);
        }
        if self.lost.is_empty() && self.unsent == 0 {
            let since = self.last_ack_at.or(self.waiting_since);
            if let Some(t) = since {
                if now >= t + rto {
                    // Every fragment was reported but the message is not acknowledged whole:
                    // resend its last fragment to get a fresh report.
                    if let Some((&seq, m)) = self.active.iter_mut().next() {
                        let last = m.n() - 1;
                        if let FragTx::Acked { count } = m.frags[last as usize] {
                            m.frags[last as usize] = FragTx::Lost { count };
                            self.lost.insert((seq, last));
                        }
                    }
                    self.backoff = self.backoff.saturating_add(1);
                    self.last_ack_at = Some(now);
                    return (false, true);
                }
            }
        }
        (false, false)
    }

    /// Drops every queued and transmitting message; returns their sends (to report failed).
    /// The sequence counter is kept so the peer skips what was abandoned.
    pub(crate) fn fail_all(&mut self) -> Vec<SendId> {
        let mut failed: Vec<SendId> = self.active.values().filter_map(|m| m.send).collect();
        failed.extend(self.queue.iter().filter_map(|q| q.send));
        failed.extend(std::mem::take(&mut self.received).into_iter().map(|r| r.1));
        self.active.clear();
        self.queue.clear();
        self.queue_bytes = 0;
        self.unsent = 0;
        self.inflight = 0;
        self.lost.clear();
        self.frames.clear();
        self.loss_at = None;
        self.waiting_since = None;
        self.last_ack_at = None;
        self.backoff = 0;
        self.unsent_cursor = self.next_seq;
        failed
    }

    /// Abandons every unacknowledged event named `name`: queued ones are removed, those with
    /// a sequence number become `Skip` tombstones. Returns the sends that certainly failed
    /// (never transmitted); a tombstone of a transmitted message keeps its send, resolved
    /// by the receiver's verdict (it may have taken the message before the tombstone came).
    pub(crate) fn abandon_name(&mut self, name: &str) -> Vec<SendId> {
        let matches = |k: &MsgKind| matches!(k, MsgKind::Event { name: n, .. } if n == name);
        let mut failed = Vec::new();
        let mut kept = VecDeque::new();
        for q in self.queue.drain(..) {
            if matches(&q.kind) {
                self.queue_bytes -= q.payload.len();
                failed.extend(q.send);
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
        let seqs: Vec<u64> = self
            .active
            .iter()
            .filter(|(_, m)| matches(&m.kind))
            .map(|(s, _)| *s)
            .collect();
        for seq in seqs {
            if let Some(m) = self.finish(seq) {
                let transmitted = m.frags.iter().any(|f| *f != FragTx::Unsent);
                let send = if transmitted {
                    m.send
                } else {
                    failed.extend(m.send);
                    None
                };
                self.active.insert(
                    seq,
                    OutMsg {
                        send,
                        kind: MsgKind::Skip,
                        payload: Bytes::new(),
                        frag_size: m.frag_size,
                        frags: vec![FragTx::Unsent],
                        next_unsent: 0,
                    },
                );
                self.unsent += 1;
                self.unsent_cursor = self.unsent_cursor.min(seq);
            }
        }
        failed
    }

    /// Fragments in flight (for tests and stats).
    pub(crate) fn inflight(&self) -> usize {
        self.inflight
    }
}

/// Remembers the most recently sent fragment among those newly acknowledged.
fn note(tx: u64, sent: Instant, count: u32, newest: &mut Option<(u64, Instant, bool)>) {
    if newest.is_none_or(|(t, _, _)| tx > t) {
        *newest = Some((tx, sent, count == 1));
    }
}
