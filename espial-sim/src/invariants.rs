//! Invariants checked at settle points (after faults stop and a settle time passes). The
//! continuous ones (terms never decrease, promotion/demotion alternate) are checked by the
//! event loop in [`crate::cluster`].

use crate::cluster::{Sim, SlotState};
use crate::metrics::agreed_master_among;
use espial_core::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Connected components of the live nodes under the current partition (slots, sorted).
pub fn components(sim: &Sim) -> Vec<Vec<usize>> {
    let live = sim.live_slots();
    let p = &sim.net.partition;
    if !p.has_cut_links() {
        let mut by_group: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for s in live {
            by_group.entry(p.group(s)).or_default().push(s);
        }
        return by_group.into_values().collect();
    }
    // Mutual reachability, union-find over pairs: O(n^2), only with cut links.
    let mut parent: Vec<usize> = (0..live.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for i in 0..live.len() {
        for j in i + 1..live.len() {
            let (a, b) = (live[i], live[j]);
            if p.can_reach(a, b) && p.can_reach(b, a) {
                let (ra, rb) = (find(&mut parent, i), find(&mut parent, j));
                parent[ra] = rb;
            }
        }
    }
    let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &slot) in live.iter().enumerate() {
        let r = find(&mut parent, i);
        comps.entry(r).or_default().push(slot);
    }
    comps.into_values().collect()
}

/// True when the component must have no master: below quorum (quorum mode) or without a
/// live master-eligible node.
fn masterless(sim: &Sim, comp: &[usize]) -> bool {
    sim.cfg.core.quorum.is_some_and(|q| comp.len() < q)
        || !comp
            .iter()
            .any(|&s| sim.node(s).is_some_and(|n| n.info().master_eligible))
}

/// Cheap O(n) check: each component agrees on one master (none below quorum) and each node's
/// member count (from its events) equals its component's size.
pub fn cheap_settled(sim: &Sim) -> bool {
    components(sim).iter().all(|c| {
        let masters_ok = if masterless(sim, c) {
            c.iter()
                .all(|&s| sim.node(s).is_some_and(|n| n.master().is_none()))
        } else {
            agreed_master_among(sim, c).is_some()
        };
        masters_ok && c.iter().all(|&s| sim.slots[s].members_by_events == c.len())
    })
}

struct Report {
    out: Vec<String>,
    per_kind: BTreeMap<&'static str, usize>,
}

impl Report {
    fn add(&mut self, kind: &'static str, msg: String) {
        let n = self.per_kind.entry(kind).or_default();
        *n += 1;
        if *n <= 5 {
            self.out.push(msg);
        }
    }
    fn finish(mut self) -> Vec<String> {
        for (k, n) in self.per_kind {
            if n > 5 {
                self.out
                    .push(format!("... and {} more {k} violations", n - 5));
            }
        }
        self.out
    }
}

fn names(sim: &Sim, ids: &[NodeId]) -> String {
    let v: Vec<String> = ids
        .iter()
        .take(6)
        .map(|id| match sim.slot_of(*id) {
            Some(s) if sim.slots[s].id == *id => format!("n{s}"),
            Some(s) => format!("n{s}(old {})", id.short()),
            None => id.short(),
        })
        .collect();
    let more = if ids.len() > 6 {
        format!(" +{}", ids.len() - 6)
    } else {
        String::new()
    };
    format!("[{}{more}]", v.join(","))
}

/// Full check of the membership and election invariants at a settle point. O(n^2).
pub fn check_settled(sim: &Sim) -> Vec<String> {
    let mut r = Report {
        out: Vec::new(),
        per_kind: BTreeMap::new(),
    };
    for comp in components(sim) {
        let ids: BTreeSet<NodeId> = comp.iter().map(|&s| sim.slots[s].id).collect();
        // Membership and latest metadata/subscriptions.
        for &s in &comp {
            let node = sim.node(s).expect("live");
            let members = node.members();
            let seen: BTreeSet<NodeId> = members.iter().map(|m| m.id).collect();
            let missing: Vec<NodeId> = ids.difference(&seen).copied().collect();
            let extra: Vec<NodeId> = seen.difference(&ids).copied().collect();
            if !missing.is_empty() || !extra.is_empty() {
                r.add(
                    "membership",
                    format!(
                        "n{s} members() disagrees with its component of {}: missing {} extra {}",
                        comp.len(),
                        names(sim, &missing),
                        names(sim, &extra)
                    ),
                );
            }
            for m in &members {
                let Some(ms) = sim.slot_of(m.id) else {
                    continue;
                };
                if sim.slots[ms].id != m.id || !ids.contains(&m.id) {
                    continue;
                }
                let truth = sim.node(ms).expect("live").info();
                if truth.metadata != m.metadata || truth.subscriptions != m.subscriptions {
                    r.add(
                        "metadata",
                        format!("n{s} has stale metadata/subscriptions for n{ms}"),
                    );
                }
            }
        }
        // Election.
        if masterless(sim, &comp) {
            for &s in &comp {
                let n = sim.node(s).expect("live");
                if n.master().is_some() || n.is_master() {
                    r.add(
                        "quorum",
                        format!(
                            "n{s} follows master {:?} in a component of {} that must have none (quorum {:?} or no eligible node)",
                            n.master(),
                            comp.len(),
                            sim.cfg.core.quorum
                        ),
                    );
                }
            }
        } else if agreed_master_among(sim, &comp).is_none() {
            let mut views: BTreeMap<Option<NodeId>, usize> = BTreeMap::new();
            for &s in &comp {
                *views
                    .entry(sim.node(s).expect("live").master())
                    .or_default() += 1;
            }
            let views: Vec<String> = views
                .iter()
                .map(|(m, c)| {
                    let who = m.map_or("none".to_string(), |m| names(sim, &[m]));
                    format!("{who}:{c}")
                })
                .collect();
            let self_masters = comp
                .iter()
                .filter(|&&s| sim.node(s).is_some_and(|n| n.is_master()))
                .count();
            r.add(
                "master",
                format!(
                    "component of {} does not agree on one live eligible master: views {} ({} consider themselves master)",
                    comp.len(),
                    views.join(" "),
                    self_masters
                ),
            );
        }
        for &s in &comp {
            let n = sim.node(s).expect("live");
            if n.is_master() != sim.slots[s].master_by_events {
                r.add(
                    "events",
                    format!(
                        "n{s}: is_master() = {} but its promotion/demotion events say {}",
                        n.is_master(),
                        sim.slots[s].master_by_events
                    ),
                );
            }
        }
    }
    r.finish()
}

/// Outcome of [`settle`].
#[derive(Debug, Clone)]
pub struct Settled {
    /// Every invariant held at the settle point and after the stability window.
    pub converged: bool,
    /// When the invariants first held (simulated time from start).
    pub at: Option<Duration>,
    /// Violations found (empty when converged).
    pub violations: Vec<String>,
}

/// Waits until every paused node has resumed, then runs until the settle invariants hold
/// (checking the cheap form every `step`, the full form
/// when the cheap one passes) or until `max` more simulated time passes; then runs a 2 s
/// stability window and checks again.
pub fn settle(sim: &mut Sim, max: Duration) -> Settled {
    // Faults are over only once every paused node has resumed.
    let resume = sim
        .slots
        .iter()
        .filter_map(|s| match s.state {
            SlotState::Paused(until) => Some(Duration::from_nanos(until)),
            _ => None,
        })
        .max();
    if let Some(t) = resume {
        sim.run_until(t.max(sim.now()));
    }
    let deadline = sim.now() + max;
    let step = if sim.slots.len() > 200 {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(20)
    };
    let mut last_full = None;
    let at = sim.run_until_pred(deadline, step, |sim| {
        if !cheap_settled(sim) {
            return false;
        }
        // The full check is O(n^2): at most every 500 ms.
        if last_full.is_some_and(|t: Duration| sim.now() < t + Duration::from_millis(500)) {
            return false;
        }
        last_full = Some(sim.now());
        check_settled(sim).is_empty()
    });
    let Some(at) = at else {
        let mut v = check_settled(sim);
        if v.is_empty() {
            v.push("cluster did not settle (cheap check failed) before the deadline".into());
        }
        return Settled {
            converged: false,
            at: None,
            violations: v,
        };
    };
    sim.run_for(Duration::from_secs(2));
    let v = check_settled(sim);
    Settled {
        converged: v.is_empty(),
        at: Some(at),
        violations: v
            .into_iter()
            .map(|m| format!("after the 2 s stability window: {m}"))
            .collect(),
    }
}
