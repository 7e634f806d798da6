//! The receive side of the delivery engine: frames from a peer (its stream adopted or
//! resumed, segments reassembled, acks and credit for its messages), room made within the
//! unread limits, and released messages handed out as events in stream order.

use super::*;

impl Delivery {
    /// Feeds a frame that arrived from `from`. Invalid content is dropped and counted in
    /// [`Delivery::stats`]; this never panics and never allocates beyond the configured
    /// limits.
    pub fn handle_frame(&mut self, now: Instant, from: NodeId, frame: Frame) {
        self.stats.frames_in += 1;
        if from == self.local || frame.base >= MAX_SEQ {
            self.stats.malformed += 1;
            return;
        }
        let Some(mut gap) = self.adopt_stream(now, from, frame.stream, frame.base) else {
            self.stats.stale_stream += 1;
            return;
        };
        let mut released = Vec::new();
        if let Some(rx) = self.peers.get_mut(&from).and_then(|p| p.rx.as_mut()) {
            let skipped = rx.skip_to(
                &mut self.mem,
                frame.base,
                &self.subscriptions,
                &mut released,
            );
            self.stats.skipped = self.stats.skipped.saturating_add(skipped);
            gap = gap.saturating_add(skipped);
            if frame.blocked {
                self.stats.credit_probes_in += 1;
                rx.note_probe(now, &self.mem);
            }
        }
        if gap > 0 {
            // The sender gave up on messages this node never received (it reported them
            // failed): tell the application, in stream order.
            self.stats.events_missed = self.stats.events_missed.saturating_add(gap);
            self.events.push_back(Event::EventsMissed {
                from,
                name: None,
                count: gap,
            });
        }
        if let Some(ack) = &frame.ack {
            if ack.stream == self.stream {
                let finished = match self.peers.get_mut(&from) {
                    Some(p) => {
                        let f = p.tx.on_ack(now, &self.cfg, ack).finished;
                        p.tx.refresh_blocked(now, &self.cfg);
                        f
                    }
                    None => Vec::new(),
                };
                for (send, taken) in finished {
                    self.resolve(send, from, taken);
                }
            } else {
                self.stats.foreign_acks += 1;
            }
        }
        let eliciting = !frame.segs.is_empty();
        let mut urgent = false;
        for seg in frame.segs {
            urgent |= self.on_segment(now, from, frame.base, seg);
        }
        if let Some(rx) = self.peers.get_mut(&from).and_then(|p| p.rx.as_mut()) {
            rx.release(&mut self.mem, &self.subscriptions, &mut released);
            if eliciting {
                rx.note_data(now, &self.cfg, urgent);
            }
        }
        let total = self.mem.total() as u64;
        self.stats.reassembly_peak = self.stats.reassembly_peak.max(total);
        self.emit(from, released);
        self.stats.unread_peak = self.stats.unread_peak.max(self.mem.unread);
    }

    /// Makes sure the receive state of `from` follows `stream`. Returns `None` for a frame
    /// of a replaced stream, else how many messages of a resumed stream were skipped while
    /// this node had no receive state for it (the gap).
    fn adopt_stream(&mut self, now: Instant, from: NodeId, stream: u64, base: u64) -> Option<u64> {
        let grave = self.graveyard.get(&from).map(|g| (g.0, g.1));
        let silence = self.cfg.stream_silence;
        let floor = self.floor_for(from);
        let peer = peer_entry(&mut self.peers, from, floor, &self.cfg);
        let mut resume = None;
        if let Some(rx) = &mut peer.rx {
            if rx.stream == stream {
                rx.last_heard = now;
                return Some(0);
            }
            if let Some(pos) = peer.retired.iter().position(|r| r.0 == stream) {
                // A replaced stream. Usually late frames of a dead incarnation; but if the
                // current stream went silent, it was the impostor (a straggler of the old
                // incarnation arrived after the new one started): switch back.
                if now.saturating_duration_since(rx.last_heard) < silence {
                    return None;
                }
                let r = peer.retired.remove(pos);
                resume = Some((r.1, r.2));
            }
            // The peer restarted (new stream id): reset, remembering where the old stream
            // stood in case it has to be resumed.
            rx.clear(&mut self.mem);
            peer.retired
                .push((rx.stream, rx.next, std::mem::take(&mut rx.declined)));
            if peer.retired.len() > RETIRED_STREAMS {
                peer.retired.remove(0);
            }
            peer.tx.last_serial = 0;
            self.stats.stream_resets += 1;
        }
        let buried = self.graveyard.remove(&from);
        // Resuming a stream keeps what it declined (the sender may still have to hear it).
        let (next, declined, gap) = match (resume, grave) {
            (Some((n, d)), _) => (n.max(base), Some(d), base.saturating_sub(n)),
            (None, Some((s, n))) if s == stream => {
                (n.max(base), buried.map(|g| g.2), base.saturating_sub(n))
            }
            _ => (base, None, 0),
        };
        let mut rx = Rx::new(&self.cfg, stream, next, now, declined);
        rx.declined.note_base(base);
        peer.rx = Some(rx);
        Some(gap)
    }

    /// Handles one segment; returns true when the ack should go out at once (duplicate).
    fn on_segment(&mut self, now: Instant, from: NodeId, base: u64, seg: Segment) -> bool {
        let seq = match base.checked_add(seg.off) {
            Some(s) if s < MAX_SEQ => s,
            _ => {
                self.stats.malformed += 1;
                return false;
            }
        };
        let Some(rx) = self.peers.get(&from).and_then(|p| p.rx.as_ref()) else {
            return false;
        };
        match rx.classify(&self.cfg, seq, &seg) {
            Verdict::Duplicate => {
                self.stats.duplicates += 1;
                true
            }
            Verdict::BeyondWindow => {
                self.stats.beyond_window += 1;
                false
            }
            Verdict::Malformed => {
                self.stats.malformed += 1;
                false
            }
            Verdict::Skip { malformed } => {
                let new = rx.slot_cost(seq).is_none();
                if new && !self.make_room(now, from, seq, config::ENTRY_COST) {
                    self.stats.reassembly_refused += 1;
                    return false;
                }
                if malformed {
                    self.stats.malformed += 1;
                }
                if let Some(rx) = self.peers.get_mut(&from).and_then(|p| p.rx.as_mut()) {
                    rx.mark_skip(&mut self.mem, seq);
                }
                false
            }
            Verdict::Store { cost } => {
                if !self.make_room(now, from, seq, cost) {
                    self.stats.reassembly_refused += 1;
                    return false;
                }
                if let Some(rx) = self.peers.get_mut(&from).and_then(|p| p.rx.as_mut()) {
                    if rx.store(now, &mut self.mem, seq, seg, cost) == Some(true) {
                        self.stats.malformed += 1;
                    }
                }
                false
            }
        }
    }

    /// Ensures `cost` more accounted bytes for message `seq` of `from` fit the limits,
    /// evicting incomplete messages of lower priority if needed.
    fn make_room(&mut self, now: Instant, from: NodeId, seq: u64, cost: usize) -> bool {
        let cap = self.cfg.message_cap();
        let per_peer_ooo = self.cfg.reassembly_per_peer - cap;
        let total_ooo = self.cfg.reassembly_total - cap;
        loop {
            let Some(rx) = self.peers.get(&from).and_then(|p| p.rx.as_ref()) else {
                return false;
            };
            let hol = seq == rx.next;
            if rx.slot_cost(seq).unwrap_or(0) + cost > cap {
                return false;
            }
            let fits_total = self.mem.total() + cost <= self.cfg.reassembly_total;
            let fits = if hol {
                fits_total
            } else {
                fits_total && rx.ooo + cost <= per_peer_ooo && self.mem.ooo + cost <= total_ooo
            };
            if fits {
                return true;
            }
            let own_full = !hol && rx.ooo + cost > per_peer_ooo;
            // Victims, most expendable first: this peer's incomplete messages after `seq`;
            // then (unless only this peer's share is exhausted) other peers' incomplete
            // messages: out-of-order ones (for a head-of-line message, or when stalled),
            // then stalled head-of-line ones, then, for a head-of-line message, smaller
            // head-of-line ones. The largest head-of-line message (ties: lowest peer id) is
            // never evicted while it progresses, so one always completes.
            let mine = (rx.slot_cost(seq).unwrap_or(0) + cost, from);
            let own = rx.partials().filter(|(s, _, _)| *s > seq).last();
            let victim = own.map(|(s, _, _)| (from, s)).or_else(|| {
                if own_full {
                    return None;
                }
                let idle = self.cfg.reassembly_idle;
                let mut best: Option<((u8, Instant), NodeId, u64)> = None;
                for (&pid, p) in &self.peers {
                    let Some(prx) = &p.rx else { continue };
                    if pid == from {
                        continue;
                    }
                    for (s, last, c) in prx.partials() {
                        let stalled = now.saturating_duration_since(last) >= idle;
                        let class = if s != prx.next {
                            (hol || stalled).then_some(0)
                        } else if stalled {
                            hol.then_some(1)
                        } else {
                            (hol && (c, pid) < mine).then_some(2)
                        };
                        let Some(class) = class else { continue };
                        let key = (class, last);
                        if best.is_none_or(|(k, _, _)| key < k) {
                            best = Some((key, pid, s));
                        }
                    }
                }
                best.map(|(_, p, s)| (p, s))
            });
            let Some((vp, vs)) = victim else {
                return false;
            };
            let evicted = self
                .peers
                .get_mut(&vp)
                .and_then(|p| p.rx.as_mut())
                .is_some_and(|r| r.evict(&mut self.mem, vs));
            if !evicted {
                return false;
            }
            self.stats.reassembly_evicted += 1;
        }
    }

    pub(super) fn emit(&mut self, from: NodeId, released: Vec<Released>) {
        for r in released {
            match r.kind {
                MsgKind::Event {
                    name,
                    request,
                    subscribers_only,
                } => {
                    if r.declined {
                        debug_assert!(subscribers_only, "only subscription-routed events");
                        self.stats.events_declined += 1;
                        continue;
                    }
                    self.stats.events_delivered += 1;
                    if let Some(c) = r.unread {
                        let stream = self
                            .peers
                            .get(&from)
                            .and_then(|p| p.rx.as_ref())
                            .map_or(0, |rx| rx.stream);
                        self.unread_order.push_back((from, stream, c));
                    }
                    self.events.push_back(Event::Custom(CustomEvent {
                        name,
                        from,
                        data: r.data,
                        request,
                    }));
                }
                MsgKind::Reply { request } => {
                    match self.tracker.reply(&mut self.events, request, from, r.data) {
                        ReplyFate::Accepted => self.stats.replies_delivered += 1,
                        ReplyFate::Dropped => self.stats.replies_dropped += 1,
                    }
                }
                MsgKind::Missed { name, count } => {
                    self.stats.events_missed = self.stats.events_missed.saturating_add(count);
                    self.events.push_back(Event::EventsMissed {
                        from,
                        name: Some(name),
                        count,
                    });
                }
                MsgKind::Skip => {}
            }
        }
    }
}
