//! Counters and measurements: traffic, core events, convergence helpers.

use crate::cluster::Sim;
use espial_core::{Event, NodeId};
use serde::Serialize;
use std::time::Duration;

/// Counters kept while the simulation runs.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Events popped from the queue.
    pub steps: u64,
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams handed to a node.
    pub delivered: u64,
    /// In flight from a node that crashed or restarted meanwhile.
    pub dropped_crashed: u64,
    /// Arrived at a crashed or departed node.
    pub dropped_dead: u64,
    /// Overflowed a paused node's inbox.
    pub dropped_paused: u64,
    /// Sent to an address no slot has.
    pub dropped_unknown_addr: u64,
    /// Node wake-ups handled.
    pub wakes: u64,
    /// `poll_timeout` returned a deadline not after the current time right after a call.
    pub past_deadlines: u64,
    /// `Promotion` events.
    pub promotions: u64,
    /// `Demotion` events.
    pub demotions: u64,
    /// `NewMaster` events.
    pub new_masters: u64,
    /// `NodeRemoved` events.
    pub removals: u64,
    /// `NodeRemoved` events about a node that was running at that moment.
    pub live_removed: u64,
    /// A few of those, for the report.
    pub live_removed_examples: Vec<String>,
    /// Quorum mode: total simulated time during which two nodes acted as master (ns).
    pub overlap_ns: u64,
    /// Sent (messages, bytes) per message kind, when `SimConfig::classify_traffic` is on.
    pub by_kind: std::collections::BTreeMap<&'static str, (u64, u64)>,
}

impl Counters {
    /// Counts a core event.
    pub fn on_event(&mut self, e: &Event) {
        match e {
            Event::Promotion { .. } => self.promotions += 1,
            Event::Demotion { .. } => self.demotions += 1,
            Event::NewMaster { .. } => self.new_masters += 1,
            Event::NodeRemoved { .. } => self.removals += 1,
            _ => {}
        }
    }

    /// Election events so far (promotions + demotions + new-master notices).
    pub fn election_events(&self) -> u64 {
        self.promotions + self.demotions + self.new_masters
    }
}

/// Mean and max of bytes sent per node per second over a window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rate {
    /// Mean over the nodes.
    pub mean: f64,
    /// Busiest node.
    pub max: f64,
}

/// Snapshot of per-slot bytes sent, to measure a window.
pub struct TrafficWindow {
    start: Duration,
    bytes: Vec<u64>,
}

impl TrafficWindow {
    /// Starts a window now.
    pub fn start(sim: &Sim) -> Self {
        TrafficWindow {
            start: sim.now(),
            bytes: sim.slots.iter().map(|s| s.bytes_out).collect(),
        }
    }

    /// Bytes per node per second since the start, over nodes live now and at the start.
    pub fn rate(&self, sim: &Sim) -> Rate {
        let secs = (sim.now() - self.start).as_secs_f64();
        if secs <= 0.0 {
            return Rate::default();
        }
        let mut sum = 0.0;
        let mut max = 0.0f64;
        let mut n = 0usize;
        for (i, s) in sim.slots.iter().enumerate().take(self.bytes.len()) {
            if !s.is_live() {
                continue;
            }
            let r = (s.bytes_out - self.bytes[i]) as f64 / secs;
            sum += r;
            max = max.max(r);
            n += 1;
        }
        Rate {
            mean: if n == 0 { 0.0 } else { sum / n as f64 },
            max,
        }
    }
}

/// The master every live node of the (unpartitioned) cluster agrees on, when they all agree
/// and that master is live, eligible and considers itself master. O(n).
pub fn agreed_master(sim: &Sim) -> Option<NodeId> {
    agreed_master_among(sim, &sim.live_slots())
}

/// Like [`agreed_master`] over the given slots (the master must be one of them).
pub fn agreed_master_among(sim: &Sim, slots: &[usize]) -> Option<NodeId> {
    let mut agreed: Option<NodeId> = None;
    for &s in slots {
        let m = sim.node(s)?.master()?;
        match agreed {
            None => agreed = Some(m),
            Some(a) if a != m => return None,
            _ => {}
        }
    }
    let m = agreed?;
    let ms = sim.slot_of(m)?;
    if !slots.contains(&ms) || sim.slots[ms].id != m {
        return None;
    }
    let node = sim.node(ms)?;
    (node.is_master() && node.info().master_eligible).then_some(m)
}

/// True when every live node counts every live node as a member (by its events). O(n).
pub fn full_membership_by_events(sim: &Sim) -> bool {
    let live = sim.live_slots();
    live.iter()
        .all(|&s| sim.slots[s].members_by_events == live.len())
}

/// Milliseconds as a float with microsecond precision.
pub fn ms(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 1e3).round() / 1e3
}

/// Splits a datagram's bytes by message kind (`hello`, `ping`, `updates`, `state`, ...).
/// Sealed records are only readable with the transparent test cipher (8-byte tag); their
/// header and tag count as `record_overhead`. Anything unreadable counts as `opaque`.
pub fn classify(data: &[u8], out: &mut std::collections::BTreeMap<&'static str, (u64, u64)>) {
    use espial_core::wire::{self, Kind, Msg};
    let mut add = |k: &'static str, bytes: usize| {
        let e = out.entry(k).or_default();
        e.0 += 1;
        e.1 += bytes as u64;
    };
    let Ok((kind, body)) = wire::split_header(data, usize::MAX) else {
        add("opaque", data.len());
        return;
    };
    match kind {
        Kind::Beacon => add("beacon", data.len()),
        Kind::Hello => add("hello", data.len()),
        Kind::HelloAck => add("hello_ack", data.len()),
        Kind::Cookie => add("cookie", data.len()),
        Kind::Sealed => {
            let msgs = wire::SealedHeader::parse(body)
                .ok()
                .filter(|(_, rest)| rest.len() >= 8)
                .and_then(|(_, rest)| wire::decode_msgs(&rest[..rest.len() - 8]).ok());
            let Some(msgs) = msgs else {
                add("opaque", data.len());
                return;
            };
            let mut used = 0;
            for m in &msgs {
                let size = wire::msg_size(m);
                used += size;
                let k = match m {
                    Msg::Confirm { .. } | Msg::ConfirmAck => "confirm",
                    Msg::JoinRequest { .. } | Msg::JoinAccept { .. } | Msg::JoinReject { .. } => {
                        "join"
                    }
                    Msg::Ping { .. } => "ping",
                    Msg::Ack { .. } => "ack",
                    Msg::PingReq { .. } | Msg::IndirectAck { .. } | Msg::Nack { .. } => {
                        "indirect_probe"
                    }
                    Msg::Updates(_) => "updates",
                    Msg::State(_) => "state",
                    Msg::DigestOffer { .. }
                    | Msg::DigestEqual { .. }
                    | Msg::Digest(_)
                    | Msg::DigestRequest { .. } => "digest",
                    Msg::Heartbeat { .. } => "heartbeat",
                    Msg::Claim(_) | Msg::Resign(_) | Msg::SignedClaim { .. } => "claim",
                    Msg::LeaseRequest { .. } | Msg::LeaseAck { .. } => "lease",
                    Msg::VoteRequest { .. } | Msg::VoteReply { .. } => "vote",
                    Msg::Delivery(_) => "delivery",
                };
                add(k, size);
            }
            add("record_overhead", data.len().saturating_sub(used));
        }
    }
}

/// A short readable list of the messages in a datagram, e.g. `hello` or `ping(7),updates(3)`
/// (test cipher only; `?` when unreadable). Used by readable traces.
pub fn describe_datagram(data: &[u8]) -> String {
    use espial_core::wire::{self, Kind, Msg};
    let Ok((kind, body)) = wire::split_header(data, usize::MAX) else {
        return "?".into();
    };
    match kind {
        Kind::Beacon => "beacon".into(),
        Kind::Hello => "hello".into(),
        Kind::HelloAck => "hello_ack".into(),
        Kind::Cookie => "cookie".into(),
        Kind::Sealed => {
            let Some((hdr, msgs)) = wire::SealedHeader::parse(body)
                .ok()
                .filter(|(_, rest)| rest.len() >= 8)
                .and_then(|(h, rest)| {
                    wire::decode_msgs(&rest[..rest.len() - 8])
                        .ok()
                        .map(|m| (h, m))
                })
            else {
                return "sealed(?)".into();
            };
            let parts: Vec<String> = msgs
                .iter()
                .map(|m| match m {
                    Msg::Confirm { .. } => "confirm".into(),
                    Msg::ConfirmAck => "confirm_ack".into(),
                    Msg::JoinRequest { .. } => "join_request".into(),
                    Msg::JoinAccept { .. } => "join_accept".into(),
                    Msg::JoinReject { .. } => "join_reject".into(),
                    Msg::Ping { seq, .. } => format!("ping({seq})"),
                    Msg::Ack { seq } => format!("ack({seq})"),
                    Msg::PingReq { seq, target } => format!("ping_req({seq},{})", target.short()),
                    Msg::IndirectAck { seq, target } => {
                        format!("indirect_ack({seq},{})", target.short())
                    }
                    Msg::Updates(u) => {
                        let v: Vec<String> = u
                            .iter()
                            .map(|u| match u {
                                wire::Update::Alive(s) => {
                                    let e = &s.entry;
                                    format!("alive {}@{}", e.id.short(), e.incarnation)
                                }
                                wire::Update::Suspect {
                                    id, incarnation, ..
                                } => {
                                    format!("suspect {}@{incarnation}", id.short())
                                }
                                wire::Update::Dead {
                                    id, incarnation, ..
                                } => {
                                    format!("dead {}@{incarnation}", id.short())
                                }
                                wire::Update::Left {
                                    id, incarnation, ..
                                } => {
                                    format!("left {}@{incarnation}", id.short())
                                }
                            })
                            .collect();
                        format!("updates[{}]", v.join(";"))
                    }
                    Msg::State(c) => format!("state({} members)", c.members.len()),
                    Msg::Heartbeat {
                        claim, incarnation, ..
                    } => {
                        format!("heartbeat(t{},inc {incarnation})", claim.term)
                    }
                    Msg::Claim(c) => format!("claim(t{} {})", c.term, c.master.short()),
                    Msg::SignedClaim { claim: c, .. } => {
                        format!("signed_claim(t{} {})", c.term, c.master.short())
                    }
                    Msg::Resign(c) => format!("resign(t{})", c.term),
                    Msg::LeaseRequest { claim, round } => {
                        format!("lease_req(t{},r{round})", claim.term)
                    }
                    Msg::LeaseAck {
                        term,
                        round,
                        granted,
                    } => format!("lease_ack(t{term},r{round},{granted})"),
                    Msg::VoteRequest { claim, force, .. } => {
                        format!("vote_req(t{},force {force})", claim.term)
                    }
                    Msg::VoteReply { term, granted, .. } => {
                        format!("vote_reply(t{term},{granted})")
                    }
                    Msg::Delivery(_) => "delivery".into(),
                    Msg::Nack { seq } => format!("nack({seq})"),
                    Msg::DigestOffer { summary, .. } => {
                        format!("digest_offer({} live)", summary.live)
                    }
                    Msg::DigestEqual { .. } => "digest_equal".into(),
                    Msg::Digest(c) => format!("digest({} records)", c.records.len()),
                    Msg::DigestRequest { ids, .. } => format!("digest_request({})", ids.len()),
                })
                .collect();
            format!("e{}#{} {}", hdr.epoch, hdr.counter, parts.join(","))
        }
    }
}
