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
