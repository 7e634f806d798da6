//! Per-host time and the step-level master check.
//!
//! Every host has its own clock: its `now` advances `rate` nanoseconds per simulated
//! nanosecond (`1 ± ρ`, clock-rate drift), starting from the shared base. Nodes only ever
//! see their own host's clock; timers they ask for are converted back to simulated time.
//!
//! In quorum mode the simulator checks after **every** step that at most one node acts as
//! master: a node counts when its process exists (running or paused), it believes it is
//! master (`is_master()`), and its master lease is still valid on its own clock
//! (`Node::master_lease_until`; the node checks the same lease before every master-only
//! action, so a node whose lease lapsed cannot act on its belief).

use crate::cluster::Sim;
use std::time::{Duration, Instant};

impl Sim {
    /// A host's local clock reading at simulated time `t` (ns), in ns since the base.
    pub fn local_ns_at(&self, slot: usize, t: u64) -> u64 {
        let rate = self.slots.get(slot).map_or(1.0, |s| s.rate);
        if rate == 1.0 {
            t
        } else {
            (t as f64 * rate) as u64
        }
    }

    /// The `Instant` the node in `slot` reads now (its host clock).
    pub fn local_instant(&self, slot: usize) -> Instant {
        self.base + Duration::from_nanos(self.local_ns_at(slot, self.now))
    }

    /// The first simulated instant (ns) at which the host clock of `slot` reads `local`.
    pub(crate) fn sim_ns_for_local(&self, slot: usize, local: u64) -> u64 {
        let rate = self.slots.get(slot).map_or(1.0, |s| s.rate);
        if rate == 1.0 {
            return local;
        }
        let mut t = (local as f64 / rate).ceil() as u64;
        while self.local_ns_at(slot, t) < local {
            t += 1;
        }
        while t > 0 && self.local_ns_at(slot, t - 1) >= local {
            t -= 1;
        }
        t
    }

    /// Sets the clock rate of a host (`1 ± ρ`). Its clock keeps reading monotonically: the
    /// rate applies from the start of the run, so only call this before the host's node
    /// starts (the schedules set every rate at start).
    pub fn set_clock_rate(&mut self, slot: usize, rate: f64) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.rate = rate;
        }
    }

    /// Sets the processing delay of a host (zero: a normal node).
    pub fn set_slow(&mut self, slot: usize, delay: Duration) {
        let t = self.now;
        if let Some(s) = self.slots.get_mut(slot) {
            s.slow = delay.as_nanos() as u64;
            self.trace
                .fault(t, &format!("slow n{slot} {}ms", delay.as_millis()));
        }
    }

    /// The slots that act as master right now (see the module doc).
    pub fn acting_masters(&self) -> Vec<usize> {
        self.believers
            .iter()
            .copied()
            .filter(|&s| {
                let slot = &self.slots[s];
                let Some(node) = slot.node.as_ref().filter(|_| slot.exists()) else {
                    return false;
                };
                node.is_master() && node_lease_valid(node, self.local_instant(s))
            })
            .collect()
    }

    /// Quorum mode: records a violation when two nodes act as master at this instant.
    pub(crate) fn check_single_master(&mut self) {
        let masters = self.acting_masters();
        if masters.len() > 1 {
            if self.overlap_since.is_none() {
                self.overlap_since = Some(self.now);
                let names: Vec<String> = masters.iter().map(|s| format!("n{s}")).collect();
                self.violation(format!(
                    "quorum mode: {} nodes act as master at the same instant: {}",
                    masters.len(),
                    names.join(", ")
                ));
            }
        } else if let Some(t) = self.overlap_since.take() {
            self.counters.overlap_ns += self.now - t;
        }
    }
}

/// Available mode has no lease: believing is acting. Quorum mode: the lease must run.
fn node_lease_valid(node: &espial_core::Node, now: Instant) -> bool {
    node.config().quorum.is_none() || node.master_lease_until().is_some_and(|u| now < u)
}
