//! `churn`: random joins, graceful leaves, crashes, restarts, pauses, metadata updates and
//! promote() calls for a while, then settle and check.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::{NodeOpts, Sim};
use crate::faults::Action;
use crate::invariants::settle;
use espial_core::{Admission, Metadata};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Joiners with this name prefix are refused by every member's admission filter.
const REFUSED: &str = "refused-";

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    sim.set_admission(Box::new(|req| {
        if req.node.name.starts_with(REFUSED) {
            Admission::Reject("churn scenario refuses this name".into())
        } else {
            Admission::Accept
        }
    }));
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    let churn_for = p.duration.unwrap_or(Duration::from_secs(20));
    let end = sim.now() + churn_for;
    let min_live = (p.nodes / 2).max(2);
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    // Mean gap between actions: 400 ms (faster for big clusters).
    let mean_gap_us = if p.nodes > 100 { 100_000 } else { 400_000 };
    loop {
        let gap = Duration::from_micros(sim.rng.below(2 * mean_gap_us) as u64 + 1);
        if sim.now() + gap >= end {
            break;
        }
        sim.run_for(gap);
        let live = sim.live_slots();
        if live.is_empty() {
            sim.apply(Action::Join(NodeOpts::default()));
            continue;
        }
        let pick = |sim: &mut Sim| live[sim.rng.below(live.len())];
        let roll = sim.rng.below(100);
        let kind = match roll {
            0..=19 => "join",
            20..=34 if live.len() > min_live => "leave",
            35..=54 if live.len() > min_live => "crash",
            55..=69 => "restart",
            70..=79 => "pause",
            80..=91 => "metadata",
            _ => "promote",
        };
        // Restart also revives crashed slots.
        let action = match kind {
            "join" if sim.rng.below(4) == 0 => Action::Join(NodeOpts {
                name: REFUSED.into(),
                ..NodeOpts::default()
            }),
            "join" => Action::Join(NodeOpts::default()),
            "leave" => Action::Leave(pick(sim)),
            "crash" => Action::Crash(pick(sim)),
            "restart" => {
                let dead: Vec<usize> = (0..sim.slots.len())
                    .filter(|&s| !sim.slots[s].exists())
                    .collect();
                if !dead.is_empty() && sim.rng.below(2) == 0 {
                    Action::Restart(dead[sim.rng.below(dead.len())])
                } else {
                    Action::Restart(pick(sim))
                }
            }
            "pause" => {
                let d = Duration::from_millis(100 + sim.rng.below(1900) as u64);
                Action::Pause(pick(sim), d)
            }
            "metadata" => {
                let s = pick(sim);
                let mut m = Metadata::new();
                m.insert("v", format!("{}", sim.rng.below(1_000_000)));
                Action::SetMetadata(s, m)
            }
            _ => Action::Promote(pick(sim)),
        };
        *counts.entry(kind).or_default() += 1;
        sim.apply(action);
    }
    sim.run_until(end);
    out.set("churn_actions", json!(counts));
    let t0 = sim.now();
    let s = settle(sim, settle_limit(sim.live_slots().len()));
    out.set_ms("settle_after_churn_ms", s.at.map(|t| t - t0));
    out.set("final_live_nodes", json!(sim.live_slots().len()));
    let refused: Vec<usize> = (0..sim.slots.len())
        .filter(|&x| sim.slots[x].opts.name == REFUSED && sim.slots[x].exists())
        .collect();
    let rejected = refused.iter().filter(|&&x| sim.slots[x].rejected).count();
    out.set(
        "refused_joiners",
        json!({"running": refused.len(), "got_node_rejected": rejected}),
    );
    for x in refused {
        if !sim.slots[x].rejected {
            out.fail(format!("refused joiner n{x} never got node_rejected"));
        }
        if sim.slots[x].accepted {
            out.fail(format!("refused joiner n{x} got node_accepted"));
        }
    }
    out.settled("after churn", s);
}
