//! Who acted as master when, from `espial agent` JSON lines.
//!
//! **Method.** An agent acts as master from its `promotion` line to its next `demotion` line
//! (an agent that is still master has an open interval). Both lines carry `ts_ms`, read from
//! the one system clock every agent of a test shares, taken when the agent renders the event,
//! a few milliseconds at most after the node's state changed. In quorum mode a master checks
//! its lease before every master-only action and steps down at the lease's end on a timer,
//! so the `demotion` line closes the interval in which it could act. The overlap of a run is
//! the summed length of the pairwise intersections of these intervals: two agents acting as
//! master at the same instant show up as a positive overlap.

use crate::agent::{Agent, Agents};
use std::collections::BTreeSet;

/// One agent's time as master: `[from, to)` in ms since the Unix epoch; `to` is `u64::MAX`
/// while it is still master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    /// `ts_ms` of the `promotion` line.
    pub from: u64,
    /// `ts_ms` of the `demotion` line that ended it (`u64::MAX`: still master).
    pub to: u64,
}

/// Agent `a`'s intervals as master, in order (promotions and demotions alternate).
pub fn intervals(a: &Agent) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut open: Option<u64> = None;
    for v in &a.lines {
        let ts = v["ts_ms"].as_u64().unwrap_or(0);
        match v["event"].as_str() {
            Some("promotion") => {
                assert!(open.is_none(), "{}: two promotions in a row", a.name);
                open = Some(ts);
            }
            Some("demotion") => {
                let from = open
                    .take()
                    .unwrap_or_else(|| panic!("{}: demotion without promotion", a.name));
                out.push(Interval { from, to: ts });
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        out.push(Interval { from, to: u64::MAX });
    }
    out
}

/// Two agents acting as master at once.
#[derive(Clone, Debug)]
pub struct Overlap {
    /// The agents' names.
    pub who: (String, String),
    /// The shared time, `[from, to)` in ms since the Unix epoch.
    pub from: u64,
    /// End of the shared time.
    pub to: u64,
}

/// Every pairwise overlap of master intervals among `agents` that ends after `since` (ms
/// since the Unix epoch), clipped to `[since, until)`.
pub fn overlaps(agents: &Agents, since: u64, until: u64) -> Vec<Overlap> {
    let all: Vec<(String, Vec<Interval>)> = agents
        .agents
        .iter()
        .map(|a| (a.name.clone(), intervals(a)))
        .collect();
    let mut out = Vec::new();
    for (i, (na, ia)) in all.iter().enumerate() {
        for (nb, ib) in &all[i + 1..] {
            for x in ia {
                for y in ib {
                    let from = x.from.max(y.from).max(since);
                    let to = x.to.min(y.to).min(until);
                    if from < to {
                        out.push(Overlap {
                            who: (na.clone(), nb.clone()),
                            from,
                            to,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Summed length (ms) of `overlaps`.
pub fn total_ms(overlaps: &[Overlap]) -> u64 {
    overlaps.iter().map(|o| o.to - o.from).sum()
}

/// Member ids agent `a` lists by its `added_node` / `removed_node` lines.
pub fn members(a: &Agent) -> BTreeSet<String> {
    let mut m = BTreeSet::new();
    for v in &a.lines {
        let id = v["node"]["id"].as_str().map(str::to_string);
        match (v["event"].as_str(), id) {
            (Some("added_node"), Some(id)) => {
                m.insert(id);
            }
            (Some("removed_node"), Some(id)) => {
                m.remove(&id);
            }
            _ => {}
        }
    }
    m
}

/// The master every agent in `who` follows by its election lines, when they agree on one.
pub fn agreed_master(agents: &Agents, who: &[usize]) -> Option<String> {
    let mut ms = who.iter().map(|i| agents.agents[*i].master_by_events());
    let first = ms.next()??;
    ms.all(|m| m.as_deref() == Some(first.as_str()))
        .then_some(first)
}

/// Index of the agent whose id is `id`.
pub fn index_of(agents: &Agents, id: &str) -> Option<usize> {
    agents
        .agents
        .iter()
        .position(|a| a.id().as_deref() == Some(id))
}

/// `ts_ms` of the first line after line `from` of agent `a` matching `pred`.
pub fn first_ts_after(
    a: &Agent,
    from: usize,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Option<u64> {
    a.lines[from.min(a.lines.len())..]
        .iter()
        .find(|v| pred(v))
        .and_then(|v| v["ts_ms"].as_u64())
}

/// When the last of the agents `who` saw master `new` elected (`new_master` naming it, or
/// its own `promotion`) after their line `mark[i]`: `ts_ms` of the latest such line.
/// Panics when one of them has no such line.
pub fn elected_at(agents: &Agents, who: &[usize], mark: &[usize], new: &str) -> u64 {
    who.iter()
        .map(|i| {
            first_ts_after(&agents.agents[*i], mark[*i], |v| {
                (v["event"] == "new_master" && v["node"]["id"] == new) || v["event"] == "promotion"
            })
            .expect("election line")
        })
        .max()
        .expect("at least one agent")
}

/// Median and maximum of `v` (0 when empty).
pub fn median_max(v: &[u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    (s[s.len() / 2], s[s.len() - 1])
}

/// Prints every line but custom events of every agent after `mark`, `ts_ms` relative to
/// `t0`, in time order (diagnostics for a slow trial).
pub fn print_timeline(a: &Agents, mark: &[usize], t0: u64) {
    let name_of = |id: &str| {
        a.agents
            .iter()
            .find(|x| x.id().as_deref() == Some(id))
            .map_or_else(|| id.to_string(), |x| x.name.clone())
    };
    let mut rows: Vec<(u64, String)> = Vec::new();
    for (i, x) in a.agents.iter().enumerate() {
        for v in &x.lines[mark[i]..] {
            let Some(ev) = v["event"].as_str() else {
                continue;
            };
            let ts = v["ts_ms"].as_u64().unwrap_or(0);
            let about = v["node"]["id"]
                .as_str()
                .filter(|_| ev != "promotion" && ev != "demotion" && ev != "no_master")
                .map(name_of)
                .unwrap_or_default();
            rows.push((
                ts,
                format!(
                    "{:>6} ms {} {ev} {about} {}",
                    ts as i64 - t0 as i64,
                    x.name,
                    v.get("term")
                        .map(|t| format!("term {t}"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    rows.sort();
    for (_, r) in rows {
        println!("  {r}");
    }
}

/// True when `ESPIAL_LONG=1` (the long versions of the fault tests).
pub fn long() -> bool {
    std::env::var("ESPIAL_LONG").is_ok_and(|v| v == "1")
}
