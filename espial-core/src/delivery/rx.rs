//! Receive side of one peer's stream: duplicate filter, reorder buffer, reassembly with
//! accounted memory, in-order release (declining subscription-routed events of names the
//! local node no longer subscribes to), and the acknowledgement it owes.

use super::config::{ENTRY_COST, FRAG_COST};
use super::decline::Declined;
use super::frame::{size_of, Ack, Head, MsgKind, PartialAck, Run, Segment, MSG_COST};
use super::DeliveryConfig;
use crate::event::MAX_EVENT_NAME;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

/// Most runs per list in an ack we build (keeps each length prefix at one byte).
const MAX_RUNS: usize = 127;

/// Buffered memory over all peers, split into head-of-line messages (`seq == next`, always
/// incomplete: complete ones are released at once) and out-of-order ones.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Mem {
    pub hol: usize,
    pub ooo: usize,
    /// Released custom events the application has not consumed yet (cost units), over
    /// all peers and streams.
    pub unread: u64,
    /// Limit of `unread` (`DeliveryConfig::unread_total`).
    pub unread_cap: u64,
    /// Set when a release stopped because the unread limits were reached.
    pub stalled: bool,
    /// Released events wait for the application's consumption (`app_consumption`).
    pub explicit: bool,
}

impl Mem {
    pub(crate) fn total(&self) -> usize {
        self.hol + self.ooo
    }
}

#[derive(Debug)]
pub(crate) struct Partial {
    frags: u32,
    head: Option<Head>,
    parts: BTreeMap<u32, Bytes>,
    pub last: Instant,
}

#[derive(Debug)]
pub(crate) enum Entry {
    Partial(Partial),
    /// A whole message. Subscription-routed events stay *soft* until released: reported
    /// as fragments, not as a whole message, because the decision to take or decline them
    /// is made at their turn.
    Complete {
        kind: MsgKind,
        data: Bytes,
        frags: u32,
    },
    Skip,
}

/// True for a subscription-routed event (taken or declined only at its turn).
fn soft(kind: &MsgKind) -> bool {
    matches!(
        kind,
        MsgKind::Event {
            subscribers_only: true,
            ..
        }
    )
}

/// True when the local node, subscribed to `subs`, declines a message of this kind.
fn declines(kind: &MsgKind, subs: &BTreeSet<String>) -> bool {
    matches!(kind, MsgKind::Event { name, subscribers_only: true, .. } if !subs.contains(name))
}

/// Entries not acknowledged whole before their turn: incomplete ones, and those not yet
/// known to be taken (subscription-routed events, reported by fragment; skipped ones, not
/// reported at all, and listed as not taken once passed).
fn reported_by_fragment(entry: &Entry) -> bool {
    match entry {
        Entry::Partial(_) | Entry::Skip => true,
        Entry::Complete { kind, .. } => soft(kind),
    }
}

#[derive(Debug)]
struct Slot {
    entry: Entry,
    cost: usize,
}

/// A message released in order (or declined at its turn: then it must not reach the
/// application).
#[derive(Debug)]
pub(crate) struct Released {
    pub kind: MsgKind,
    pub data: Bytes,
    pub declined: bool,
    /// Waits for the application's consumption (cost units), when flow-controlled.
    pub unread: Option<u64>,
}

/// What to do with an arriving segment.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Already received (or released): drop, but acknowledge soon.
    Duplicate,
    /// Too far ahead of the reorder window.
    BeyondWindow,
    /// Invalid in itself: drop and count.
    Malformed,
    /// The message can never be delivered (abandoned by the sender, or its header is
    /// invalid): record the sequence number as skipped. `malformed` tells which.
    Skip { malformed: bool },
    /// Store it; it costs this many accounted bytes.
    Store { cost: usize },
}

/// The acknowledgement a receiver owes.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    pub pending: bool,
    pub immediate: bool,
    pub eliciting: u32,
    pub since: Option<Instant>,
    pub serial: u64,
}

/// Receive state for one sender stream.
#[derive(Debug)]
pub(crate) struct Rx {
    pub stream: u64,
    /// Lowest sequence number not yet released or skipped.
    pub next: u64,
    slots: BTreeMap<u64, Slot>,
    pub hol: usize,
    pub ooo: usize,
    pub ack: AckState,
    /// Last frame of this stream.
    pub last_heard: Instant,
    /// Declined messages still to be reported.
    pub declined: Declined,
    /// Most declined messages remembered (see [`Declined::insert`]).
    decline_cap: usize,
    /// Released events not yet consumed by the application: `(seq, cost)`, in order.
    unread: VecDeque<(u64, u64)>,
    /// Sum of the costs in `unread`.
    pub unread_bytes: u64,
    /// Cost of every message of this stream consumed (or not taken) so far.
    consumed_bytes: u64,
    /// Absolute credit granted, in the units of `consumed_bytes` (only grows).
    granted: u64,
    /// `granted` as last sent in an ack.
    advertised: u64,
    /// Flow-control window (`DeliveryConfig::credit_window`).
    window: u64,
}

impl Rx {
    /// Receive state starting at `next`, with the declined messages remembered so far
    /// (`None`: nothing declined at or above `next`).
    pub(crate) fn new(
        cfg: &DeliveryConfig,
        stream: u64,
        next: u64,
        now: Instant,
        declined: Option<Declined>,
    ) -> Self {
        Rx {
            stream,
            next,
            slots: BTreeMap::new(),
            hol: 0,
            ooo: 0,
            ack: AckState::default(),
            last_heard: now,
            declined: declined.unwrap_or_else(|| Declined::new(next)),
            decline_cap: cfg.window.saturating_mul(2).max(64),
            unread: VecDeque::new(),
            unread_bytes: 0,
            consumed_bytes: 0,
            granted: cfg.credit_window as u64,
            advertised: 0,
            window: cfg.credit_window as u64,
        }
    }

    /// Lowest sequence number not yet consumed by the application.
    pub(crate) fn consumed_seq(&self) -> u64 {
        self.unread.front().map_or(self.next, |u| u.0)
    }

    /// Credit the next ack carries (cost units from `consumed_seq` on).
    fn credit(&self) -> u64 {
        self.granted.saturating_sub(self.consumed_bytes)
    }

    /// Grows the grant to `consumed + window` unless the node's unread events are at their
    /// limit (then credit is withheld: the senders see backpressure). Returns true when it
    /// grew by at least an eighth of the window since the last ack (worth an ack now).
    fn regrant(&mut self, mem: &Mem) -> bool {
        if mem.unread < mem.unread_cap {
            self.granted = self
                .granted
                .max(self.consumed_bytes.saturating_add(self.window));
        }
        self.granted.saturating_sub(self.advertised) >= (self.window / 8).max(1)
    }

    /// The application consumed this stream's oldest unread event (`cost` as recorded).
    /// Owes an ack (at once when the credit grew enough, else after the ack delay).
    pub(crate) fn consumed_one(&mut self, now: Instant, mem: &Mem) {
        if let Some((_, c)) = self.unread.pop_front() {
            self.unread_bytes = self.unread_bytes.saturating_sub(c);
            self.consumed_bytes = self.consumed_bytes.saturating_add(c);
        }
        let urgent = self.regrant(mem);
        let a = &mut self.ack;
        a.pending = true;
        a.since.get_or_insert(now);
        a.immediate |= urgent;
    }

    /// The sender is blocked and asks for credit: answer at once.
    pub(crate) fn note_probe(&mut self, now: Instant, mem: &Mem) {
        self.regrant(mem);
        let a = &mut self.ack;
        a.pending = true;
        a.since = Some(now);
        a.immediate = true;
    }

    /// Owes an ack at once (a graceful leave flushes what the peer must hear).
    pub(crate) fn owe_now(&mut self, now: Instant) {
        let a = &mut self.ack;
        a.pending = true;
        a.since = Some(now);
        a.immediate = true;
    }

    /// A message leaves the buffers at its turn: a taken custom event waits for the
    /// application when flow-controlled; everything else counts as consumed at once.
    fn hand_over(
        &mut self,
        mem: &mut Mem,
        seq: u64,
        kind: MsgKind,
        data: Bytes,
        declined: bool,
    ) -> Released {
        let c = data.len() as u64 + MSG_COST;
        let flow = mem.explicit && !declined && matches!(kind, MsgKind::Event { .. });
        let unread = if flow {
            self.unread.push_back((seq, c));
            self.unread_bytes += c;
            mem.unread += c;
            Some(c)
        } else {
            self.consumed_bytes = self.consumed_bytes.saturating_add(c);
            None
        };
        Released {
            kind,
            data,
            declined,
            unread,
        }
    }

    /// True when releasing a taken event of `len` bytes now would exceed the unread limits
    /// (one event always fits when nothing is unread).
    fn over_limit(&self, mem: &Mem, len: usize) -> bool {
        let c = len as u64 + MSG_COST;
        mem.explicit
            && ((self.unread_bytes > 0 && self.unread_bytes + c > self.window)
                || (mem.unread > 0 && mem.unread + c > mem.unread_cap))
    }

    fn charge(&mut self, mem: &mut Mem, seq: u64, cost: usize) {
        if seq == self.next {
            self.hol += cost;
            mem.hol += cost;
        } else {
            self.ooo += cost;
            mem.ooo += cost;
        }
    }

    fn uncharge(&mut self, mem: &mut Mem, seq: u64, cost: usize) {
        if seq == self.next {
            self.hol -= cost;
            mem.hol -= cost;
        } else {
            self.ooo -= cost;
            mem.ooo -= cost;
        }
    }

    /// Moves `next` and re-files the new head-of-line slot's memory.
    fn set_next(&mut self, mem: &mut Mem, next: u64) {
        debug_assert_eq!(
            self.hol, 0,
            "the head-of-line slot is removed before moving on"
        );
        self.next = next;
        if let Some(s) = self.slots.get(&next) {
            let c = s.cost;
            self.ooo -= c;
            mem.ooo -= c;
            self.hol += c;
            mem.hol += c;
        }
    }

    /// Accounted bytes of message `seq`, if any part of it is buffered.
    pub(crate) fn slot_cost(&self, seq: u64) -> Option<usize> {
        self.slots.get(&seq).map(|s| s.cost)
    }

    /// Judges a segment whose message is `seq`. Pure: nothing changes.
    pub(crate) fn classify(&self, cfg: &DeliveryConfig, seq: u64, seg: &Segment) -> Verdict {
        if seq < self.next {
            return Verdict::Duplicate;
        }
        if seq - self.next >= 2 * cfg.window as u64 {
            return Verdict::BeyondWindow;
        }
        if seg.frags == 0
            || seg.frag >= seg.frags
            || (seg.frag == 0) != seg.head.is_some()
            || seg.data.len() > cfg.max_payload
        {
            return Verdict::Malformed;
        }
        let existing = self.slots.get(&seq);
        let tombstone = matches!(&seg.head, Some(h) if h.kind == MsgKind::Skip);
        match existing.map(|s| &s.entry) {
            // A tombstone replaces whatever part of the message arrived, and a complete
            // subscription-routed event not yet taken (the sender reported it failed).
            Some(Entry::Complete { kind, .. }) if tombstone && soft(kind) => {
                return Verdict::Skip { malformed: false }
            }
            Some(Entry::Complete { .. }) | Some(Entry::Skip) => return Verdict::Duplicate,
            _ if tombstone => return Verdict::Skip { malformed: false },
            Some(Entry::Partial(p)) => {
                if p.parts.contains_key(&seg.frag) {
                    return Verdict::Duplicate;
                }
                if p.frags != seg.frags {
                    return Verdict::Malformed;
                }
            }
            None => {}
        }
        let mut name_len = 0;
        if let Some(h) = &seg.head {
            match &h.kind {
                MsgKind::Skip => return Verdict::Skip { malformed: false },
                MsgKind::Event { name, .. } | MsgKind::Missed { name, .. } => {
                    if name.is_empty() || name.len() > MAX_EVENT_NAME {
                        return Verdict::Skip { malformed: true };
                    }
                    name_len = name.len();
                }
                MsgKind::Reply { .. } => {}
            }
            if h.total_len as usize > cfg.max_payload
                || (seg.frags == 1 && seg.data.len() != h.total_len as usize)
            {
                return Verdict::Skip { malformed: true };
            }
        }
        let entry = if existing.is_none() { ENTRY_COST } else { 0 };
        Verdict::Store {
            cost: entry + name_len + FRAG_COST + seg.data.len(),
        }
    }

    /// Records `seq` as skipped (replacing any partial).
    pub(crate) fn mark_skip(&mut self, mem: &mut Mem, seq: u64) {
        if let Some(old) = self.slots.remove(&seq) {
            self.uncharge(mem, seq, old.cost);
        }
        self.slots.insert(
            seq,
            Slot {
                entry: Entry::Skip,
                cost: ENTRY_COST,
            },
        );
        self.charge(mem, seq, ENTRY_COST);
    }

    /// Stores a segment judged `Store { cost }`. Returns `Some(false)` when the message
    /// completed, `Some(true)` when it completed but failed validation (skipped), `None` when
    /// it is still incomplete.
    pub(crate) fn store(
        &mut self,
        now: Instant,
        mem: &mut Mem,
        seq: u64,
        seg: Segment,
        cost: usize,
    ) -> Option<bool> {
        let slot = self.slots.entry(seq).or_insert_with(|| Slot {
            entry: Entry::Partial(Partial {
                frags: seg.frags,
                head: None,
                parts: BTreeMap::new(),
                last: now,
            }),
            cost: 0,
        });
        slot.cost += cost;
        let complete = match &mut slot.entry {
            Entry::Partial(p) => {
                p.last = now;
                if seg.head.is_some() {
                    p.head = seg.head;
                }
                p.parts.insert(seg.frag, seg.data);
                p.head.is_some() && p.parts.len() as u64 == p.frags as u64
            }
            _ => false,
        };
        self.charge(mem, seq, cost);
        if !complete {
            return None;
        }
        let slot = self.slots.remove(&seq)?;
        self.uncharge(mem, seq, slot.cost);
        let Entry::Partial(p) = slot.entry else {
            return None;
        };
        let frags = p.frags;
        match assemble(p) {
            Some((kind, data)) => {
                let name = match &kind {
                    MsgKind::Event { name, .. } => name.len(),
                    _ => 0,
                };
                let cost = ENTRY_COST + name + data.len();
                self.slots.insert(
                    seq,
                    Slot {
                        entry: Entry::Complete { kind, data, frags },
                        cost,
                    },
                );
                self.charge(mem, seq, cost);
                Some(false)
            }
            None => {
                self.mark_skip(mem, seq);
                Some(true)
            }
        }
    }

    /// Releases complete messages from `next` on, in order; subscription-routed events of
    /// names not in `subs` are declined (remembered for the acks, marked in `out`).
    pub(crate) fn release(
        &mut self,
        mem: &mut Mem,
        subs: &BTreeSet<String>,
        out: &mut Vec<Released>,
    ) {
        while let Some(slot) = self.slots.get(&self.next) {
            if matches!(slot.entry, Entry::Partial(_)) {
                break;
            }
            if let Entry::Complete { kind, data, .. } = &slot.entry {
                if !declines(kind, subs)
                    && matches!(kind, MsgKind::Event { .. })
                    && self.over_limit(mem, data.len())
                {
                    // The application is behind: the event waits here (its credit was
                    // granted, so the sender is not retransmitting it).
                    mem.stalled = true;
                    break;
                }
            }
            let seq = self.next;
            let Some(slot) = self.slots.remove(&seq) else {
                break;
            };
            self.uncharge(mem, seq, slot.cost);
            match slot.entry {
                Entry::Complete { kind, data, .. } => {
                    let declined = declines(&kind, subs);
                    if declined {
                        self.declined.insert(seq, self.decline_cap);
                    }
                    let r = self.hand_over(mem, seq, kind, data, declined);
                    out.push(r);
                }
                // Abandoned by the sender or invalid: not taken either.
                Entry::Skip => {
                    self.consumed_bytes = self.consumed_bytes.saturating_add(MSG_COST);
                    self.declined.insert(seq, self.decline_cap)
                }
                Entry::Partial(_) => {}
            }
            self.set_next(mem, seq + 1);
        }
    }

    /// The sender says everything below `base` is finished: release what is complete below
    /// it (in order), drop incomplete messages and subscription-routed events not yet taken
    /// (never acknowledged whole, so the sender reported them failed), and continue from
    /// `base`. Returns how many sequence numbers were skipped without a message.
    pub(crate) fn skip_to(
        &mut self,
        mem: &mut Mem,
        base: u64,
        subs: &BTreeSet<String>,
        out: &mut Vec<Released>,
    ) -> u64 {
        self.declined.note_base(base);
        if base <= self.next {
            return 0;
        }
        let mut released = 0u64;
        let below: Vec<u64> = self.slots.range(..base).map(|(s, _)| *s).collect();
        for seq in below {
            let Some(slot) = self.slots.remove(&seq) else {
                continue;
            };
            self.uncharge(mem, seq, slot.cost);
            match slot.entry {
                Entry::Complete { kind, .. } if soft(&kind) => {}
                Entry::Complete { kind, data, .. } => {
                    released += 1;
                    let r = self.hand_over(mem, seq, kind, data, false);
                    out.push(r);
                }
                Entry::Skip => released += 1,
                Entry::Partial(_) => {}
            }
        }
        let skipped = (base - self.next).saturating_sub(released);
        self.set_next(mem, base);
        self.release(mem, subs, out);
        skipped
    }

    /// Complete subscription-routed events waiting for their turn (for tests).
    #[cfg(test)]
    pub(crate) fn soft_waiting(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(&s.entry, Entry::Complete { kind, .. } if soft(kind)))
            .count()
    }

    /// Incomplete messages: `(seq, last progress, cost)`.
    pub(crate) fn partials(&self) -> impl Iterator<Item = (u64, Instant, usize)> + '_ {
        self.slots.iter().filter_map(|(s, slot)| match &slot.entry {
            Entry::Partial(p) => Some((*s, p.last, slot.cost)),
            _ => None,
        })
    }

    /// Drops an incomplete message to free memory.
    pub(crate) fn evict(&mut self, mem: &mut Mem, seq: u64) -> bool {
        match self.slots.get(&seq) {
            Some(Slot {
                entry: Entry::Partial(_),
                ..
            }) => {}
            _ => return false,
        }
        if let Some(slot) = self.slots.remove(&seq) {
            self.uncharge(mem, seq, slot.cost);
        }
        true
    }

    /// Frees everything (the stream is reset or the peer is gone).
    pub(crate) fn clear(&mut self, mem: &mut Mem) {
        mem.hol -= self.hol;
        mem.ooo -= self.ooo;
        self.hol = 0;
        self.ooo = 0;
        self.slots.clear();
    }

    /// Notes a received data frame for the acknowledgement policy.
    pub(crate) fn note_data(&mut self, now: Instant, cfg: &DeliveryConfig, urgent: bool) {
        let a = &mut self.ack;
        a.pending = true;
        a.since.get_or_insert(now);
        a.eliciting += 1;
        let gap = self.slots.range(self.next + 1..).next().is_some();
        if urgent || gap || a.eliciting >= cfg.ack_every {
            a.immediate = true;
        }
    }

    /// When the owed acknowledgement must go out.
    pub(crate) fn ack_deadline(&self, cfg: &DeliveryConfig) -> Option<Instant> {
        let a = &self.ack;
        if !a.pending {
            return None;
        }
        let since = a.since?;
        Some(if a.immediate {
            since
        } else {
            since + cfg.ack_delay
        })
    }

    /// True when the owed acknowledgement must go out now.
    pub(crate) fn ack_due(&self, now: Instant, cfg: &DeliveryConfig) -> bool {
        self.ack_deadline(cfg).is_some_and(|d| d <= now)
    }

    /// Builds the acknowledgement within `max_size` encoded bytes (`None` if even the
    /// smallest does not fit) and clears what was owed. Declined messages are listed in
    /// full up to `cumulative`: if they do not all fit, `cumulative` is lowered to the first
    /// one left out.
    pub(crate) fn build_ack(&mut self, now: Instant, max_size: usize) -> Option<Ack> {
        let delay = self
            .ack
            .since
            .map(|s| now.saturating_duration_since(s).as_micros() as u64)
            .unwrap_or(0);
        let origin = self.declined.floor().min(self.next);
        let mut ack = Ack {
            stream: self.stream,
            serial: self.ack.serial + 1,
            delay_us: delay,
            cumulative: self.next,
            ranges: Vec::new(),
            partials: Vec::new(),
            declined_back: self.next - origin,
            declined: Vec::new(),
            consumed: self.consumed_seq(),
            credit: self.credit(),
        };
        let mut size = size_of(&ack);
        if size > max_size {
            return None;
        }
        // Declined messages below `next`.
        let mut prev = origin;
        for (s, e) in self.declined.runs(origin, self.next) {
            let r = Run {
                gap: s - prev,
                len: e - s,
            };
            let add = size_of(&r);
            if ack.declined.len() >= MAX_RUNS || size + add > max_size {
                // Acknowledge only what the list covers (smaller numbers: the size shrinks).
                ack.cumulative = s;
                ack.declined_back = s - origin;
                size = size_of(&ack);
                break;
            }
            size += add;
            ack.declined.push(r);
            prev = e;
        }
        let cum = ack.cumulative;
        if ack.consumed > cum {
            // The declined list was cut short: report consumption no further than it.
            ack.consumed = cum;
            ack.credit = 0;
            size = size_of(&ack);
            if size > max_size {
                return None;
            }
        }
        self.advertised = if ack.consumed == self.consumed_seq() {
            self.granted
        } else {
            self.advertised
        };
        // Runs of whole messages above `next` (soft ones are reported by fragment).
        let mut prev_end = cum;
        let mut run: Option<(u64, u64)> = None;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for (&seq, slot) in self.slots.range(self.next..) {
            if reported_by_fragment(&slot.entry) {
                continue;
            }
            run = match run {
                Some((s, e)) if e == seq => Some((s, e + 1)),
                Some(r) => {
                    runs.push(r);
                    Some((seq, seq + 1))
                }
                None => Some((seq, seq + 1)),
            };
        }
        runs.extend(run);
        for (s, e) in runs {
            let r = Run {
                gap: s - prev_end,
                len: e - s,
            };
            let add = size_of(&r);
            if ack.ranges.len() >= MAX_RUNS || size + add > max_size {
                break;
            }
            size += add;
            ack.ranges.push(r);
            prev_end = e;
        }
        // Incomplete messages (and soft complete ones) with their fragments.
        for (&seq, slot) in self.slots.range(self.next..) {
            let fruns: Vec<(u64, u64)> = match &slot.entry {
                Entry::Partial(p) => {
                    let mut cur: Option<(u64, u64)> = None;
                    let mut fruns = Vec::new();
                    for &f in p.parts.keys() {
                        let f = f as u64;
                        cur = match cur {
                            Some((s, e)) if e == f => Some((s, e + 1)),
                            Some(r) => {
                                fruns.push(r);
                                Some((f, f + 1))
                            }
                            None => Some((f, f + 1)),
                        };
                    }
                    fruns.extend(cur);
                    fruns
                }
                Entry::Complete { kind, frags, .. } if soft(kind) => vec![(0, *frags as u64)],
                Entry::Skip | Entry::Complete { .. } => continue,
            };
            if ack.partials.len() >= MAX_RUNS {
                break;
            }
            let mut pa = PartialAck {
                off: seq - cum,
                frags: Vec::new(),
            };
            let mut psize = size_of(&pa);
            let mut prev = 0u64;
            for (s, e) in fruns {
                let r = Run {
                    gap: s - prev,
                    len: e - s,
                };
                let add = size_of(&r);
                if pa.frags.len() >= MAX_RUNS || size + psize + add > max_size {
                    break;
                }
                psize += add;
                pa.frags.push(r);
                prev = e;
            }
            if pa.frags.is_empty() || size + psize > max_size {
                break;
            }
            size += psize;
            ack.partials.push(pa);
        }
        self.ack = AckState {
            serial: self.ack.serial + 1,
            ..AckState::default()
        };
        debug_assert_eq!(size, size_of(&ack));
        Some(ack)
    }
}

/// Joins the fragments of a complete message, checking the sizes agree with the header.
fn assemble(p: Partial) -> Option<(MsgKind, Bytes)> {
    let head = p.head?;
    let total = head.total_len as usize;
    let n = p.parts.len();
    let first = p.parts.get(&0)?.len();
    let mut sum = 0usize;
    for (i, (_, b)) in p.parts.iter().enumerate() {
        let last = i + 1 == n;
        if (!last && b.len() != first) || (last && (b.len() > first || (n > 1 && b.is_empty()))) {
            return None;
        }
        sum += b.len();
    }
    if sum != total {
        return None;
    }
    let data = if n == 1 {
        p.parts.into_values().next().unwrap_or_default()
    } else {
        let mut buf = BytesMut::with_capacity(total);
        for b in p.parts.values() {
            buf.extend_from_slice(b);
        }
        buf.freeze()
    };
    Some((head.kind, data))
}
