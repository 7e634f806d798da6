//! Fault schedules as data: the proptest generates them, [`run_case`] replays one (also from
//! JSON, see `examples/replay.rs`), so a failing case can be rerun with a full trace.

use crate::faults::Action;
use crate::invariants::settle;
use crate::{NodeOpts, Sim, SimConfig};
use espial_core::Metadata;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One operation of a schedule. Slot indexes are taken modulo the number of slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Crash a slot.
    Crash(usize),
    /// Restart a slot (new id, same address).
    Restart(usize),
    /// Graceful leave.
    Leave(usize),
    /// A new node joins.
    Join,
    /// Pause a slot for this many ms.
    Pause(usize, u64),
    /// Two groups: slots whose bit (slot % 32) is set form the second group.
    Partition(u32),
    /// Remove every partition.
    Heal,
    /// Loss of this many percent for this many ms.
    LossBurst(u8, u64),
    /// `promote()` on a slot.
    Promote(usize),
    /// New metadata value on a slot.
    Metadata(usize, u16),
    /// Subscribe a slot to the event name `jobs`.
    Subscribe(usize),
    /// Unsubscribe a slot from `jobs`.
    Unsubscribe(usize),
    /// A slot publishes this many 128-byte events to the subscribers of `jobs`.
    Send(usize, u8),
    /// Cut the directed link `a → b` for this many ms (a one-way link).
    OneWay(usize, usize, u64),
    /// Drop everything a slot sends (it still receives) for this many ms.
    Mute(usize, u64),
    /// Mute the current master (any node that believes it is master) for this many ms.
    MuteMaster(u64),
    /// Pause the current master for this many ms.
    PauseMaster(u64),
    /// Two groups: the current master plus this many other random live slots (modulo the
    /// slot count) against the rest; the master lands on either side.
    SplitMaster(u8),
    /// Make a slot slow (every input handled `.1` ms late) for `.2` ms.
    Slow(usize, u64, u64),
    /// The application of a slot stops reading custom events for this many ms (the case
    /// then runs with the `Consumed` reader model: flow control up to the application).
    PauseReader(usize, u64),
}

/// The event name used by schedule cases.
pub const EVENT_NAME: &str = "jobs";

/// A generated case: cluster shape and a list of (gap in ms, operation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Seed of the run.
    pub seed: u64,
    /// Nodes at start.
    pub nodes: usize,
    /// Bit `i % 32` set: node `i` is not master-eligible.
    pub ineligible: u32,
    /// Quorum mode with `nodes / 2 + 1`.
    pub quorum: bool,
    /// Clock-rate drift in permille: each host's clock runs at `1 ± drift/1000` (random
    /// sign and size per host, at most this bound).
    #[serde(default)]
    pub drift: u16,
    /// The schedule.
    pub steps: Vec<(u64, Op)>,
}

impl Case {
    /// The case as one JSON line (for failure messages and `examples/replay.rs`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }
}

/// Runs a case: start, 3 s, the schedule, heal and stop loss, 3 s, then settle (at most
/// `settle_max`). Returns the simulation and every violation (continuous and at settle).
/// Operations whose lower-case name starts with an entry of `skip` are left out.
pub fn run_case(
    c: &Case,
    keep_trace: bool,
    settle_max: Duration,
    skip: &[&str],
) -> (Sim, Vec<String>) {
    run_case_with(c, keep_trace, settle_max, skip, |_| {})
}

/// [`run_case`] with a change to the simulation's configuration (applied after the case's
/// own settings, before the nodes start).
pub fn run_case_with(
    c: &Case,
    keep_trace: bool,
    settle_max: Duration,
    skip: &[&str],
    tweak: impl FnOnce(&mut SimConfig),
) -> (Sim, Vec<String>) {
    let mut cfg = SimConfig::new(c.seed);
    cfg.keep_trace = keep_trace;
    if c.quorum {
        cfg.core.quorum = Some(c.nodes / 2 + 1);
    }
    if c.steps
        .iter()
        .any(|(_, op)| matches!(op, Op::PauseReader(..)))
    {
        cfg.reader = crate::cluster::ReaderModel::Consumed;
        cfg.core.event_window_bytes = 16 * 1024;
    }
    tweak(&mut cfg);
    let mut sim = Sim::new(cfg).expect("valid config");
    let opts = (0..c.nodes)
        .map(|i| NodeOpts {
            eligible: c.ineligible >> (i % 32) & 1 == 0,
            ..NodeOpts::default()
        })
        .collect();
    let slots = sim.add_nodes_with(opts);
    if c.drift > 0 {
        let rho = c.drift as f64 / 1000.0;
        for s in slots {
            let size = rho * (0.5 + sim.rng.unit() / 2.0);
            let rate = if sim.rng.below(2) == 0 {
                1.0 + size
            } else {
                1.0 - size
            };
            sim.set_clock_rate(s, rate);
        }
    }
    sim.run_for(Duration::from_secs(3));
    let mut partition_since: Option<Duration> = None;
    for (gap, op) in &c.steps {
        sim.run_for(Duration::from_millis(*gap));
        let name = format!("{op:?}").to_lowercase();
        if skip.iter().any(|k| !k.is_empty() && name.starts_with(k)) {
            continue;
        }
        let n = sim.slots.len();
        let action = match op {
            Op::Crash(_)
            | Op::Restart(_)
            | Op::Leave(_)
            | Op::Join
            | Op::Pause(..)
            | Op::Partition(_)
            | Op::Heal
            | Op::LossBurst(..)
            | Op::Promote(_) => common_action(&mut sim, op),
            Op::Metadata(s, v) => {
                let mut m = Metadata::new();
                m.insert("v", v.to_string());
                Action::SetMetadata(s % n, m)
            }
            Op::Subscribe(s) => Action::Subscribe(s % n, EVENT_NAME.into()),
            Op::Unsubscribe(s) => Action::Unsubscribe(s % n, EVENT_NAME.into()),
            Op::PauseReader(s, d) => Action::PauseReader(s % n, Duration::from_millis(*d)),
            Op::Send(s, k) => {
                for _ in 0..*k {
                    publish(&mut sim, s % n);
                }
                continue;
            }
            Op::OneWay(a, b, d) => {
                let (a, b) = (a % n, b % n);
                let end = sim.now() + Duration::from_millis(*d);
                sim.schedule(end, Action::RestoreLink(a, b));
                Action::CutLink(a, b)
            }
            Op::Mute(s, d) => {
                let end = sim.now() + Duration::from_millis(*d);
                sim.schedule(end, Action::Unmute(s % n));
                Action::Mute(s % n)
            }
            Op::MuteMaster(d) => {
                let Some(m) = current_master(&sim) else {
                    continue;
                };
                let end = sim.now() + Duration::from_millis(*d);
                sim.schedule(end, Action::Unmute(m));
                Action::Mute(m)
            }
            Op::PauseMaster(d) => {
                let Some(m) = current_master(&sim) else {
                    continue;
                };
                Action::Pause(m, Duration::from_millis(*d))
            }
            Op::SplitMaster(k) => {
                let Some(m) = current_master(&sim) else {
                    continue;
                };
                let mut others: Vec<usize> = (0..n).filter(|&s| s != m).collect();
                sim.rng.shuffle(&mut others);
                let k = (*k as usize) % n.max(1);
                let mut with: Vec<usize> = others.split_off(others.len() - k.min(others.len()));
                with.push(m);
                with.sort_unstable();
                others.sort_unstable();
                Action::Partition(vec![others, with])
            }
            Op::Slow(s, delay, d) => {
                let end = sim.now() + Duration::from_millis(*d);
                sim.schedule(end, Action::Slow(s % n, Duration::ZERO));
                Action::Slow(s % n, Duration::from_millis(*delay))
            }
        };
        match op {
            Op::Partition(_) | Op::SplitMaster(_) => {
                partition_since = partition_since.or(Some(sim.now()))
            }
            Op::Heal => {
                if let Some(t) = partition_since.take() {
                    sim.events.disturbed(ns(t), ns(sim.now()));
                }
            }
            Op::LossBurst(_, d) => sim
                .events
                .disturbed(ns(sim.now()), ns(sim.now() + Duration::from_millis(*d))),
            _ => {}
        }
        sim.apply(action);
    }
    if let Some(t) = partition_since.take() {
        sim.events.disturbed(ns(t), ns(sim.now()));
    }
    // Faults stop: heal, no loss (a pending loss-burst end only sets 0 again), no slow
    // node, then settle.
    sim.apply(Action::Heal);
    sim.apply(Action::SetLoss(0.0));
    for s in 0..sim.slots.len() {
        if sim.slots[s].slow > 0 {
            sim.apply(Action::Slow(s, Duration::ZERO));
        }
    }
    sim.run_for(Duration::from_secs(3));
    let s = settle(&mut sim, settle_max);
    let mut v = sim.violations.clone();
    v.extend(s.violations);
    if sim.events.sent() > 0 {
        // Let retransmissions and outcomes finish, then check exactly-once delivery.
        sim.run_for(Duration::from_secs(10));
        let (st, problems) = {
            let slots = &sim.slots;
            sim.events.analyze(
                |(slot, gen)| slots[slot].gen == gen && slots[slot].is_live(),
                3_000_000_000,
            )
        };
        for (k, n) in [
            ("lost", st.events_lost),
            ("duplicated", st.events_duplicated),
            ("reordered", st.events_reordered),
            ("misrouted", st.events_misrouted),
            ("without an outcome", st.outcomes_missing),
            ("wrongly reported delivered", st.outcomes_wrong),
        ] {
            if n > 0 {
                v.push(format!("{n} event(s) {k}"));
            }
        }
        v.extend(problems);
        v.extend(sim.events.misrouted_examples.iter().cloned());
    }
    (sim, v)
}

/// A slot that believes it is master (the lowest, when several do).
pub fn current_master(sim: &Sim) -> Option<usize> {
    sim.live_slots()
        .into_iter()
        .find(|&s| sim.node(s).is_some_and(|n| n.is_master()))
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// Publishes one 128-byte event from `slot` to the subscribers of [`EVENT_NAME`]; refusals
/// other than backpressure are recorded in the event log.
pub fn publish(sim: &mut Sim, slot: usize) -> bool {
    use espial_core::{SendError, Target};
    let gen = sim.slots[slot].gen;
    let now = ns(sim.now());
    let (_, data) = sim.events.prepare(slot, gen, 128);
    let known = crate::events::known_subscribers(sim, slot, EVENT_NAME);
    match sim.with_node(slot, |n, t| {
        n.send(t, EVENT_NAME, data, Target::Subscribers)
    }) {
        Some(Ok(id)) => {
            sim.events
                .on_sent(slot, gen, EVENT_NAME, now, Some(id), known);
            true
        }
        Some(Err(SendError::Backpressure(_))) | None => false,
        Some(Err(e)) => {
            sim.events.on_send_error(format!("n{slot} send: {e}"));
            false
        }
    }
}

/// The action of a fault operation shared with the adversary schedules (crash, restart,
/// leave, join, pause, partition, heal, loss burst, promote); slots are taken modulo the
/// number of slots. Other operations are handled by their schedule.
pub(crate) fn common_action(sim: &mut Sim, op: &Op) -> Action {
    let n = sim.slots.len();
    match op {
        Op::Crash(s) => Action::Crash(s % n),
        Op::Restart(s) => Action::Restart(s % n),
        Op::Leave(s) => Action::Leave(s % n),
        Op::Join => Action::Join(NodeOpts::default()),
        Op::Pause(s, d) => Action::Pause(s % n, Duration::from_millis(*d)),
        Op::Partition(mask) => {
            let (a, b): (Vec<usize>, Vec<usize>) = (0..n).partition(|s| mask >> (s % 32) & 1 == 0);
            Action::Partition(vec![a, b])
        }
        Op::Heal => Action::Heal,
        Op::LossBurst(p, d) => {
            let now = sim.now();
            sim.schedule(now + Duration::from_millis(*d), Action::SetLoss(0.0));
            Action::SetLoss(*p as f64 / 100.0)
        }
        Op::Promote(s) => Action::Promote(s % n),
        _ => unreachable!("not a shared fault operation: {op:?}"),
    }
}
