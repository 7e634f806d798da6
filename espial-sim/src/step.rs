//! The simulator's event loop, one step at a time: a datagram delivered (or queued for a
//! paused node), a timer or a scheduled action; then the node's outputs drained — its
//! datagrams through the network model, its events to `observe` — and the invariants that
//! are checked after every interaction.

use super::*;

impl Sim {
    pub(super) fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Deliver {
                to,
                from,
                from_gen,
                data,
                late,
            } => {
                if self.slots[from].gen != from_gen && !late {
                    self.counters.dropped_crashed += 1;
                    return;
                }
                if let Some(adv) = self.adversary.as_mut() {
                    adv.capture(from, to, &data);
                }
                match self.slots[to].state {
                    SlotState::Running if !late && self.slots[to].slow > 0 => {
                        // A slow node: the datagram waits in its queue.
                        let at = self.now + self.slots[to].slow;
                        self.push(
                            at,
                            Ev::Deliver {
                                to,
                                from,
                                from_gen,
                                data,
                                late: true,
                            },
                        );
                    }
                    SlotState::Running => {
                        self.trace.delivery(self.now, from, to, &data);
                        self.counters.delivered += 1;
                        let now = self.local_instant(to);
                        let addr = slot_addr(from);
                        if let Some(node) = self.slots[to].node.as_mut() {
                            node.handle_datagram(now, addr, &data);
                            self.drain(to);
                        }
                    }
                    SlotState::Paused(_) => {
                        let inbox = &mut self.slots[to].inbox;
                        if inbox.len() < PAUSE_INBOX {
                            inbox.push((from, data));
                        } else {
                            self.counters.dropped_paused += 1;
                        }
                    }
                    SlotState::Crashed | SlotState::Left => self.counters.dropped_dead += 1,
                }
            }
            Ev::Wake { slot, gen } => {
                let now = self.local_instant(slot);
                let s = &mut self.slots[slot];
                if s.gen != gen || s.wake_at != Some(self.now) || s.state != SlotState::Running {
                    return;
                }
                s.wake_at = None;
                if let Some(node) = s.node.as_mut() {
                    node.handle_timeout(now);
                    self.counters.wakes += 1;
                    self.drain(slot);
                }
            }
            Ev::Resume { slot, gen } => {
                let s = &mut self.slots[slot];
                if s.gen != gen || !matches!(s.state, SlotState::Paused(_)) {
                    return;
                }
                s.state = SlotState::Running;
                let inbox = std::mem::take(&mut s.inbox);
                self.trace.fault(self.now, &format!("resume n{slot}"));
                let now = self.local_instant(slot);
                for (from, data) in inbox {
                    self.trace.delivery(self.now, from, slot, &data);
                    self.counters.delivered += 1;
                    if let Some(node) = self.slots[slot].node.as_mut() {
                        node.handle_datagram(now, slot_addr(from), &data);
                    }
                    self.drain(slot);
                }
                if let Some(node) = self.slots[slot].node.as_mut() {
                    node.handle_timeout(now);
                }
                self.drain(slot);
            }
            Ev::Discover { slot, gen } => {
                let s = &self.slots[slot];
                if s.gen != gen || !s.exists() {
                    return;
                }
                if s.state == SlotState::Running {
                    let seeds = self.seed_addrs(slot);
                    self.discover(slot, &seeds);
                }
                self.schedule_discovery(slot);
            }
            Ev::Action(idx) => {
                if let Some(a) = self.actions[idx].take() {
                    self.apply(a);
                }
            }
            Ev::Spoofed { to, from, data } => {
                if self.slots[to].state == SlotState::Running {
                    self.counters.delivered += 1;
                    let now = self.local_instant(to);
                    if let Some(node) = self.slots[to].node.as_mut() {
                        node.handle_datagram(now, from, &data);
                        self.drain(to);
                    }
                }
            }
        }
    }

    /// Schedules delivery of `data` to `to` after `delay`, as if sent from `from` (any
    /// address: the adversary's own, or spoofed). Bypasses partitions and loss.
    pub fn inject(&mut self, to: usize, from: SocketAddr, data: Vec<u8>, delay: Duration) {
        let at = self.now + ns(delay);
        self.push(at, Ev::Spoofed { to, from, data });
    }

    /// Drains a node's outputs (transmits, events, admission requests), checks the
    /// per-step invariants and reschedules its wake-up.
    pub fn drain(&mut self, slot: usize) {
        let mut buf = std::mem::take(&mut self.outbuf);
        loop {
            {
                let Some(node) = self.slots[slot].node.as_mut() else {
                    break;
                };
                while let Some(o) = node.poll_output() {
                    buf.push(o);
                }
            }
            if buf.is_empty() {
                if self.read_app_inbox(slot) {
                    continue;
                }
                break;
            }
            let mut answers = Vec::new();
            for o in buf.drain(..) {
                match o {
                    Output::Transmit(t) => self.transmit(slot, t.to, t.data),
                    Output::Event(e) => self.on_event(slot, e),
                    Output::Admission(req) => {
                        let decision = match self.admission.as_mut() {
                            Some(p) => p(&req),
                            None => Admission::Accept,
                        };
                        self.trace.event(
                            self.now,
                            slot,
                            &format!("admission {} {:?}", req.node.name, decision),
                        );
                        answers.push((req.id, decision));
                    }
                }
            }
            if answers.is_empty() {
                continue;
            }
            let now = self.local_instant(slot);
            if let Some(node) = self.slots[slot].node.as_mut() {
                for (id, d) in answers {
                    node.handle_admission(now, id, d);
                }
            }
        }
        self.outbuf = buf;
        self.after_interaction(slot);
    }

    pub(super) fn after_interaction(&mut self, slot: usize) {
        let now = self.now;
        let s = &mut self.slots[slot];
        let Some(node) = s.node.as_ref() else { return };
        let term = node.max_term();
        let deadline = node.poll_timeout();
        let believes = node.is_master();
        let gen = s.gen;
        let running = s.state == SlotState::Running;
        let old_term = s.last_term;
        s.last_term = s.last_term.max(term);
        if term < old_term {
            self.violation(format!(
                "term decreased on n{slot}: max_term {old_term} -> {term}"
            ));
        }
        if believes {
            self.believers.insert(slot);
        } else {
            self.believers.remove(&slot);
        }
        if !running {
            return;
        }
        if let Some(d) = deadline {
            let local = d.saturating_duration_since(self.base).as_nanos() as u64;
            let mut at = self.sim_ns_for_local(slot, local) + self.slots[slot].slow;
            if at <= now {
                // A deadline in the past right after being driven: wake on the next tick.
                at = now + 1_000;
                self.counters.past_deadlines += 1;
            }
            let s = &mut self.slots[slot];
            if s.wake_at != Some(at) {
                s.wake_at = Some(at);
                self.push(at, Ev::Wake { slot, gen });
            }
        } else {
            self.slots[slot].wake_at = None;
        }
    }

    pub(super) fn transmit(&mut self, from: usize, to: SocketAddr, data: Vec<u8>) {
        let s = &mut self.slots[from];
        s.bytes_out += data.len() as u64;
        s.packets_out += 1;
        self.counters.sent += 1;
        let from_gen = s.gen;
        if self.cfg.classify_traffic {
            crate::metrics::classify(&data, &mut self.counters.by_kind);
        }
        let Some(dest) = addr_slot(to).filter(|&d| d < self.slots.len()) else {
            self.counters.dropped_unknown_addr += 1;
            if let Some(mut adv) = self.adversary.take() {
                adv.on_outside(self, from, to, data);
                self.adversary = Some(adv);
            }
            return;
        };
        match self.net.route(from, dest) {
            Fate::Dropped => {}
            Fate::Deliver(delays) => {
                let n = delays.len();
                let mut data = Some(data);
                for (i, d) in delays.into_iter().enumerate() {
                    let bytes = if i + 1 == n {
                        data.take().expect("moved last")
                    } else {
                        data.as_ref().expect("still here").clone()
                    };
                    let at = self.now + ns(d);
                    self.push(
                        at,
                        Ev::Deliver {
                            to: dest,
                            from,
                            from_gen,
                            data: bytes,
                            late: false,
                        },
                    );
                }
            }
        }
    }
}
