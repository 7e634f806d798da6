//! Custom-event bookkeeping for the event scenarios: what was sent, to whom it was delivered,
//! which outcomes were reported, and the exactly-once / in-order analysis.

use espial_core::{CustomEvent, NodeId, SendId, SendOutcome};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const MAGIC: &[u8; 4] = b"ESIM";

/// Builds a payload of `len` bytes (at least 24) that identifies send number `idx`.
pub fn payload(idx: u64, slot: usize, gen: u32, len: usize) -> bytes::Bytes {
    let mut v = Vec::with_capacity(len.max(24));
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&(slot as u32).to_le_bytes());
    v.extend_from_slice(&gen.to_le_bytes());
    v.extend_from_slice(&idx.to_le_bytes());
    v.extend_from_slice(&(idx as u32 ^ 0x5a5a_5a5a).to_le_bytes());
    while v.len() < len {
        v.push((v.len() as u8).wrapping_mul(31) ^ idx as u8);
    }
    v.into()
}

/// Reads the send number back from a payload made by [`payload`].
pub fn parse(data: &[u8]) -> Option<u64> {
    if data.len() < 24 || &data[..4] != MAGIC {
        return None;
    }
    let idx = u64::from_le_bytes(data[12..20].try_into().ok()?);
    let check = u32::from_le_bytes(data[20..24].try_into().ok()?);
    (check == idx as u32 ^ 0x5a5a_5a5a).then_some(idx)
}

/// One incarnation of a slot.
pub type Incarnation = (usize, u32);

struct Sent {
    sender: Incarnation,
    /// Subscribers the sender knew when it sent (its member view), when recorded.
    known: Option<Vec<NodeId>>,
    name: String,
    at: u64,
    seq: u64,
    #[allow(dead_code)]
    send_id: Option<SendId>,
    outcome: Option<SendOutcome>,
}

/// Everything about custom events recorded during a run.
#[derive(Default)]
pub struct EventLog {
    sends: Vec<Sent>,
    next_seq: HashMap<Incarnation, u64>,
    by_send_id: HashMap<(Incarnation, SendId), usize>,
    early_outcomes: HashMap<(Incarnation, SendId), SendOutcome>,
    deliveries: BTreeMap<Incarnation, Vec<(usize, u64)>>,
    subs: BTreeMap<Incarnation, Vec<(u64, String, bool)>>,
    ended: HashMap<Incarnation, u64>,
    ids: HashMap<NodeId, Incarnation>,
    disturbed: Vec<(u64, u64)>,
    /// `(receiver, send)` pairs the receiver's application consumed.
    consumed: std::collections::HashSet<(Incarnation, usize)>,
    /// Sends of each sender incarnation, in send order.
    by_sender: HashMap<Incarnation, Vec<usize>>,
    /// Per `(receiver, sender)`: how far the gap check got in `by_sender`, and how many
    /// events addressed to the receiver it skipped without consuming them.
    gap_cursor: HashMap<(Incarnation, Incarnation), (usize, u64)>,
    /// Per `(receiver, sender)`: events reported missed (gap events) so far.
    gaps: HashMap<(Incarnation, Incarnation), u64>,
    /// Events an application consumed after a gap no gap event covered.
    pub silent_gaps: u64,
    /// Targets reported delivered before their application consumed the event.
    pub delivered_early: u64,
    /// Deliveries to a rejected node or to a node not subscribed at delivery time (issue 3:
    /// a target that unsubscribed before delivery is a failed target, not a delivery).
    pub misrouted: u64,
    /// The part of `misrouted` sent while the receiver was still subscribed (in flight at the
    /// unsubscription).
    pub after_unsubscribe: u64,
    /// Examples of misrouted deliveries.
    pub misrouted_examples: Vec<String>,
    /// Custom events whose payload was not made by this log.
    pub foreign: u64,
    /// `send`/`request` calls refused with an error other than backpressure.
    pub send_errors: u64,
    /// Examples of refused sends.
    pub send_error_examples: Vec<String>,
    /// Requests issued.
    pub requests: u64,
    /// Replies sent by subscribers.
    pub replies_sent: u64,
    /// Replies received by requesters.
    pub replies_received: u64,
    /// `RequestDone` summaries received.
    pub requests_done: u64,
}

/// The exactly-once / in-order analysis of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventStats {
    /// Events handed to `send` successfully.
    pub events_sent: u64,
    /// Custom events delivered to applications (every receiver).
    pub events_delivered: u64,
    /// Expected at a stable subscriber, never delivered, not reported failed.
    pub events_lost: u64,
    /// Extra deliveries of one event at a stable subscriber.
    pub events_duplicated: u64,
    /// Deliveries at a stable subscriber out of per-sender send order.
    pub events_reordered: u64,
    /// Deliveries to a rejected node or to a node not subscribed at delivery time.
    pub events_misrouted: u64,
    /// The part of `events_misrouted` sent while the receiver was still subscribed.
    pub events_after_unsubscribe: u64,
    /// Targets reported failed in send outcomes.
    pub events_failed_reported: u64,
    /// Failed targets that had crashed or left (the expected kind).
    pub failed_to_crashed: u64,
    /// Sends (by live senders) whose outcome never arrived.
    pub outcomes_missing: u64,
    /// Outcomes that list a target as delivered although it never delivered the event.
    pub outcomes_wrong: u64,
    /// Stable subscribers the analysis covered.
    pub stable_subscribers: u64,
    /// Not delivered to a stable subscriber because the sender did not yet know it was
    /// subscribed (its view was older than the grace period): slow subscription gossip,
    /// not a delivery failure.
    pub events_unrouted_stale_view: u64,
}

impl EventLog {
    /// Registers a new incarnation.
    pub fn on_start(&mut self, slot: usize, gen: u32, id: NodeId) {
        self.ids.insert(id, (slot, gen));
    }

    /// The incarnation in `slot` crashed or left now.
    pub fn on_crash(&mut self, slot: usize, now: u64) {
        let gen = self
            .ids
            .values()
            .filter(|(s, _)| *s == slot)
            .map(|(_, g)| *g)
            .max();
        if let Some(g) = gen {
            self.ended.entry((slot, g)).or_insert(now);
        }
    }

    /// Marks `[from, to]` (ns) as disturbed: events sent then are only expected where the
    /// outcome says they were delivered.
    pub fn disturbed(&mut self, from: u64, to: u64) {
        self.disturbed.push((from, to));
    }

    /// A subscription change by a node.
    pub fn on_subscribe(&mut self, slot: usize, gen: u32, name: &str, now: u64, on: bool) {
        self.subs
            .entry((slot, gen))
            .or_default()
            .push((now, name.to_string(), on));
    }

    /// Allocates the next send number and its payload for `sender`.
    pub fn prepare(&mut self, slot: usize, gen: u32, len: usize) -> (u64, bytes::Bytes) {
        let idx = self.sends.len() as u64;
        (idx, payload(idx, slot, gen, len))
    }

    /// Records a successful `send` (its number must come from [`EventLog::prepare`]).
    /// `known`: the subscribers in the sender's member view at that moment, when available.
    pub fn on_sent(
        &mut self,
        slot: usize,
        gen: u32,
        name: &str,
        now: u64,
        id: Option<SendId>,
        known: Option<Vec<NodeId>>,
    ) {
        let inc = (slot, gen);
        let seq = self.next_seq.entry(inc).or_default();
        *seq += 1;
        let idx = self.sends.len();
        self.by_sender.entry(inc).or_default().push(idx);
        self.sends.push(Sent {
            sender: inc,
            known,
            name: name.to_string(),
            at: now,
            seq: *seq,
            send_id: id,
            outcome: None,
        });
        if let Some(id) = id {
            self.by_send_id.insert((inc, id), idx);
            // The outcome may have been emitted inside the `send` call itself.
            if let Some(o) = self.early_outcomes.remove(&(inc, id)) {
                self.sends[idx].outcome = Some(o);
            }
        }
    }

    /// Records a refused send.
    pub fn on_send_error(&mut self, msg: String) {
        self.send_errors += 1;
        if self.send_error_examples.len() < 5 {
            self.send_error_examples.push(msg);
        }
    }

    /// A gap event at `(slot, gen)`: `count` events from `from` will never arrive.
    pub fn on_missed(&mut self, slot: usize, gen: u32, from: NodeId, count: u64) {
        if let Some(s) = self.ids.get(&from).copied() {
            *self.gaps.entry(((slot, gen), s)).or_default() += count;
        }
    }

    /// True when `inc` was subscribed to `name` at `from` and did not unsubscribe since
    /// (up to `to`).
    fn subscribed_throughout(&self, inc: Incarnation, name: &str, from: u64, to: u64) -> bool {
        self.was_subscribed(inc, name, from)
            && !self.subs.get(&inc).is_some_and(|h| {
                h.iter()
                    .any(|(at, n, on)| *at > from && *at <= to && n == name && !*on)
            })
    }

    /// Step-level gap invariant: the application of `receiver` consumes send `idx`; every
    /// earlier send of the same sender addressed to it (the receiver was a subscriber in
    /// the sender's view at send time and stayed subscribed) was consumed before, or is
    /// covered by gap events from that sender.
    fn check_gap(&mut self, receiver: Incarnation, idx: usize, now: u64) -> Option<String> {
        let sender = self.sends[idx].sender;
        let my_id = self
            .ids
            .iter()
            .find(|(_, inc)| **inc == receiver)
            .map(|(id, _)| *id)?;
        let list = self.by_sender.get(&sender)?;
        let (mut pos, mut missing) = self
            .gap_cursor
            .get(&(receiver, sender))
            .copied()
            .unwrap_or((0, 0));
        while pos < list.len() && list[pos] < idx {
            let j = list[pos];
            let s = &self.sends[j];
            let addressed = s.known.as_ref().is_some_and(|k| k.contains(&my_id));
            if addressed
                && !self.consumed.contains(&(receiver, j))
                && self.subscribed_throughout(receiver, &s.name, s.at, now)
            {
                missing += 1;
            }
            pos += 1;
        }
        if pos < list.len() && list[pos] == idx {
            pos += 1;
        }
        self.gap_cursor.insert((receiver, sender), (pos, missing));
        let gaps = self.gaps.get(&(receiver, sender)).copied().unwrap_or(0);
        (missing > gaps).then(|| {
            self.silent_gaps += 1;
            format!(
                "consumed event #{idx} from n{} after {missing} earlier event(s) addressed to it that never arrived, with only {gaps} reported missed (silent gap)",
                sender.0
            )
        })
    }

    /// A custom event consumed by the application of `(slot, gen)`. Returns invariant
    /// violations (a silent gap before it).
    pub fn on_custom(
        &mut self,
        slot: usize,
        gen: u32,
        now: u64,
        c: &CustomEvent,
        subscribed: bool,
        not_admitted: bool,
    ) -> Vec<String> {
        if c.request.is_some() {
            return Vec::new();
        }
        let Some(idx) = parse(&c.data).filter(|&i| (i as usize) < self.sends.len()) else {
            self.foreign += 1;
            return Vec::new();
        };
        let mut problems = Vec::new();
        if subscribed && !not_admitted {
            problems.extend(self.check_gap((slot, gen), idx as usize, now));
        }
        self.consumed.insert(((slot, gen), idx as usize));
        let sent_at = self.sends[idx as usize].at;
        if !subscribed && !not_admitted && self.was_subscribed((slot, gen), &c.name, sent_at) {
            self.after_unsubscribe += 1;
        }
        if !subscribed || not_admitted {
            self.misrouted += 1;
            if self.misrouted_examples.len() < 5 {
                self.misrouted_examples.push(format!(
                    "t={:.1}ms n{slot} got event #{idx} ({}) while {}",
                    now as f64 / 1e6,
                    c.name,
                    if not_admitted {
                        "not admitted"
                    } else {
                        "not subscribed"
                    }
                ));
            }
        }
        self.deliveries
            .entry((slot, gen))
            .or_default()
            .push((idx as usize, now));
        problems
    }

    /// A send outcome reported to the sender `(slot, gen)`. Returns invariant violations:
    /// a target reported delivered whose application has not consumed the event.
    pub fn on_outcome(
        &mut self,
        slot: usize,
        gen: u32,
        o: SendOutcome,
        _by_id: &HashMap<NodeId, usize>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(&idx) = self.by_send_id.get(&((slot, gen), o.send)) {
            for id in &o.delivered {
                if let Some(inc) = self.ids.get(id) {
                    if !self.consumed.contains(&(*inc, idx)) {
                        self.delivered_early += 1;
                        problems.push(format!(
                            "event #{idx} reported delivered to n{} before its application consumed it",
                            inc.0
                        ));
                    }
                }
            }
            self.sends[idx].outcome = Some(o);
        } else {
            self.early_outcomes.insert(((slot, gen), o.send), o);
        }
        problems
    }

    /// Whether `inc` was subscribed to `name` at time `t` (by its subscription commands).
    pub fn was_subscribed(&self, inc: Incarnation, name: &str, t: u64) -> bool {
        self.subs.get(&inc).is_some_and(|h| {
            h.iter()
                .rev()
                .find(|(at, n, _)| *at <= t && n == name)
                .is_some_and(|(_, _, on)| *on)
        })
    }

    /// Number of successful sends.
    pub fn sent(&self) -> u64 {
        self.sends.len() as u64
    }

    /// Total deliveries recorded.
    pub fn delivered(&self) -> u64 {
        self.deliveries.values().map(|v| v.len() as u64).sum()
    }

    /// The analysis. `stable(inc)` says whether an incarnation stayed alive and reachable to
    /// the end; `grace` is how long after subscribing a subscriber is expected to be known
    /// by every sender.
    pub fn analyze(
        &self,
        stable: impl Fn(Incarnation) -> bool,
        grace: u64,
    ) -> (EventStats, Vec<String>) {
        let mut st = EventStats {
            events_sent: self.sent(),
            events_delivered: self.delivered(),
            events_misrouted: self.misrouted,
            events_after_unsubscribe: self.after_unsubscribe,
            ..EventStats::default()
        };
        let mut problems = Vec::new();
        let note = |problems: &mut Vec<String>, m: String| {
            if problems.len() < 20 {
                problems.push(m);
            }
        };
        // Count deliveries per (receiver, send).
        let mut count: HashMap<(Incarnation, usize), u32> = HashMap::new();
        for (inc, v) in &self.deliveries {
            for (idx, _) in v {
                *count.entry((*inc, *idx)).or_default() += 1;
            }
        }
        // Outcomes: failures, wrong claims, missing.
        for (i, s) in self.sends.iter().enumerate() {
            match &s.outcome {
                None => {
                    if !self.ended.contains_key(&s.sender) {
                        st.outcomes_missing += 1;
                    }
                }
                Some(o) => {
                    for id in &o.failed {
                        st.events_failed_reported += 1;
                        if self
                            .ids
                            .get(id)
                            .is_some_and(|inc| self.ended.contains_key(inc))
                        {
                            st.failed_to_crashed += 1;
                        }
                    }
                    for id in &o.delivered {
                        let Some(inc) = self.ids.get(id) else {
                            continue;
                        };
                        if !count.contains_key(&(*inc, i)) {
                            st.outcomes_wrong += 1;
                            note(
                                &mut problems,
                                format!(
                                    "event #{i} reported delivered to n{} but never delivered there",
                                    inc.0
                                ),
                            );
                        }
                    }
                }
            }
        }
        // Stable subscribers: exactly once, in order.
        let id_of: HashMap<Incarnation, NodeId> =
            self.ids.iter().map(|(id, inc)| (*inc, *id)).collect();
        for (inc, hist) in &self.subs {
            if !stable(*inc) || self.ended.contains_key(inc) {
                continue;
            }
            let mut last: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
            for (t, name, on) in hist {
                last.insert(name, (*t, *on));
            }
            let my_id = id_of.get(inc).copied();
            for (name, (since, on)) in last {
                if !on {
                    continue;
                }
                st.stable_subscribers += 1;
                for (i, s) in self.sends.iter().enumerate() {
                    if s.name != name || s.sender == *inc {
                        continue;
                    }
                    let reported_failed = s
                        .outcome
                        .as_ref()
                        .is_some_and(|o| my_id.is_some_and(|id| o.failed.contains(&id)));
                    let claimed = s
                        .outcome
                        .as_ref()
                        .is_some_and(|o| my_id.is_some_and(|id| o.delivered.contains(&id)));
                    let calm = !self
                        .disturbed
                        .iter()
                        .any(|&(a, b)| s.at >= a && s.at <= b + grace);
                    let known = match (&s.known, my_id) {
                        (Some(k), Some(id)) => k.contains(&id),
                        _ => true,
                    };
                    let timely = s.at >= since + grace && calm;
                    let expected = claimed || (timely && known);
                    let c = count.get(&(*inc, i)).copied().unwrap_or(0);
                    if c == 0 && timely && !known && !claimed && !reported_failed {
                        st.events_unrouted_stale_view += 1;
                    }
                    if c > 1 {
                        st.events_duplicated += (c - 1) as u64;
                    }
                    if c == 0 && expected && !reported_failed {
                        st.events_lost += 1;
                        note(
                            &mut problems,
                            format!(
                                "event #{i} ({name}, sent at {:.1}ms by n{}) lost at stable subscriber n{}",
                                s.at as f64 / 1e6,
                                s.sender.0,
                                inc.0
                            ),
                        );
                    }
                }
            }
            // Order per sender incarnation.
            if let Some(v) = self.deliveries.get(inc) {
                let mut max_seq: HashMap<Incarnation, u64> = HashMap::new();
                let mut seen = std::collections::HashSet::new();
                for (idx, _) in v {
                    // Duplicates are counted above; only first deliveries count for order.
                    if !seen.insert(*idx) {
                        continue;
                    }
                    let s = &self.sends[*idx];
                    let m = max_seq.entry(s.sender).or_default();
                    if s.seq < *m {
                        st.events_reordered += 1;
                    }
                    *m = (*m).max(s.seq);
                }
            }
        }
        if st.outcomes_missing > 0 {
            note(
                &mut problems,
                format!(
                    "{} sends by live senders never got an outcome",
                    st.outcomes_missing
                ),
            );
        }
        (st, problems)
    }
}

/// The subscribers of `name` in the member view of the node in `slot`.
pub fn known_subscribers(sim: &crate::Sim, slot: usize, name: &str) -> Option<Vec<NodeId>> {
    let node = sim.node(slot)?;
    Some(
        node.members()
            .into_iter()
            .filter(|m| m.subscriptions.contains(name))
            .map(|m| m.id)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(idx: u64, sender: (usize, u32)) -> CustomEvent {
        CustomEvent::new(
            "jobs",
            NodeId(sender.0 as u128 + 100),
            payload(idx, sender.0, sender.1, 64),
        )
    }

    /// Sender n0, stable subscribers n1 and n2, a crashed subscriber n3, a non-subscriber n4.
    #[test]
    fn analysis_counts_lost_duplicated_reordered_misrouted() {
        let mut log = EventLog::default();
        for s in 0..5usize {
            log.on_start(s, 1, NodeId(s as u128 + 100));
        }
        for s in 1..4 {
            log.on_subscribe(s, 1, "jobs", 0, true);
        }
        let grace = 1_000;
        // Ten sends, well after the grace period.
        for i in 0..10u64 {
            let (idx, _) = log.prepare(0, 1, 64);
            assert_eq!(idx, i);
            log.on_sent(0, 1, "jobs", 10_000 + i, Some(SendId(i)), None);
        }
        // n1 gets everything once in order except #3 (lost) and #5 twice (duplicate).
        for i in (0..10u64).filter(|&i| i != 3) {
            log.on_custom(1, 1, 20_000 + i, &custom(i, (0, 1)), true, false);
        }
        log.on_custom(1, 1, 30_000, &custom(5, (0, 1)), true, false);
        // n2 gets everything, #7 before #6 (one reordering).
        for i in [0u64, 1, 2, 3, 4, 5, 7, 6, 8, 9] {
            log.on_custom(2, 1, 20_000 + i, &custom(i, (0, 1)), true, false);
        }
        // n4 is not subscribed: misrouted.
        log.on_custom(4, 1, 20_000, &custom(0, (0, 1)), false, false);
        // n3 crashed; outcomes say it failed for every send; #3 claims n1 got it (wrong).
        log.on_crash(3, 15_000);
        for i in 0..10u64 {
            let mut delivered = vec![NodeId(102)];
            if i == 3 {
                delivered.push(NodeId(101));
            }
            if i != 9 {
                log.on_outcome(
                    0,
                    1,
                    SendOutcome::new(SendId(i), delivered, vec![NodeId(103)]),
                    &HashMap::new(),
                );
            }
        }
        let (st, problems) = log.analyze(|(s, _)| s != 3, grace);
        assert_eq!(st.events_sent, 10);
        assert_eq!(st.events_delivered, 9 + 1 + 10 + 1);
        assert_eq!(st.events_lost, 1, "{problems:?}");
        assert_eq!(st.events_duplicated, 1);
        assert_eq!(st.events_reordered, 1);
        assert_eq!(st.events_misrouted, 1);
        assert_eq!(st.failed_to_crashed, 9);
        assert_eq!(st.outcomes_missing, 1, "send #9 never got an outcome");
        assert_eq!(st.outcomes_wrong, 1, "#3 was reported delivered to n1");
        assert_eq!(st.stable_subscribers, 2);
    }

    #[test]
    fn early_and_disturbed_sends_are_not_expected_unless_claimed() {
        let mut log = EventLog::default();
        log.on_start(0, 1, NodeId(100));
        log.on_start(1, 1, NodeId(101));
        log.on_subscribe(1, 1, "jobs", 5_000, true);
        log.disturbed(20_000, 30_000);
        for (i, at) in [(0u64, 5_500u64), (1, 25_000), (2, 40_000)] {
            log.prepare(0, 1, 64);
            log.on_sent(0, 1, "jobs", at, Some(SendId(i)), None);
        }
        // Nothing delivered: only #2 (calm, after the grace) counts as lost.
        let (st, _) = log.analyze(|_| true, 1_000);
        assert_eq!(st.events_lost, 1);
    }

    #[test]
    fn payload_round_trip() {
        let p = payload(12345, 7, 2, 128);
        assert_eq!(p.len(), 128);
        assert_eq!(parse(&p), Some(12345));
        assert_eq!(parse(b"nope"), None);
        let mut bad = p.to_vec();
        bad[13] ^= 1;
        assert_eq!(parse(&bad), None);
    }
}
