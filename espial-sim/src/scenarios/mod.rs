//! Scenarios: each builds a cluster, scripts faults, measures figures and checks invariants.

mod churn;
mod events;
mod loss;
mod master_crash;
mod partition_heal;
mod quorum;
mod slow_reader;
mod steady;

use crate::cipher::CipherKind;
use crate::cluster::{Sim, SimConfig};
use crate::invariants::Settled;
use crate::metrics::ms;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// Every scenario name the CLI accepts.
pub const SCENARIOS: &[&str] = &[
    "steady",
    "master-crash",
    "partition-heal",
    "churn",
    "loss",
    "quorum",
    "events",
    "events-faults",
    "slow-reader",
    "slow-reader-legacy",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Scenario name (one of [`SCENARIOS`]).
    pub scenario: String,
    /// Number of nodes at start.
    pub nodes: usize,
    /// Seed of the run.
    pub seed: u64,
    /// Loss probability (scenario default when `None`).
    pub loss: Option<f64>,
    /// Cipher suite.
    pub cipher: CipherKind,
    /// Simulated duration (scenario default when `None`).
    pub duration: Option<Duration>,
    /// Number of events for the event scenarios (scenario default when `None`).
    pub events: Option<usize>,
    /// Keep the readable trace records.
    pub keep_trace: bool,
}

impl Params {
    /// Defaults for a scenario: no loss override, test cipher, scenario durations.
    pub fn new(scenario: &str, nodes: usize, seed: u64) -> Self {
        Params {
            scenario: scenario.to_string(),
            nodes,
            seed,
            loss: None,
            cipher: CipherKind::Test,
            duration: None,
            events: None,
            keep_trace: false,
        }
    }

    /// The command line that reproduces this run.
    pub fn command(&self) -> String {
        let mut c = format!(
            "cargo run --release -p espial-sim -- --scenario {} --nodes {} --seed {}",
            self.scenario, self.nodes, self.seed
        );
        if let Some(l) = self.loss {
            c += &format!(" --loss {l}");
        }
        if self.cipher != CipherKind::Test {
            c += &format!(" --cipher {}", self.cipher.name());
        }
        if let Some(d) = self.duration {
            c += &format!(" --duration-s {}", d.as_secs_f64());
        }
        if let Some(e) = self.events {
            c += &format!(" --events {e}");
        }
        c
    }

    fn sim_config(&self) -> SimConfig {
        let mut c = SimConfig::new(self.seed);
        c.cipher = self.cipher;
        c.keep_trace = self.keep_trace;
        if let Some(l) = self.loss {
            c.net.loss = l;
        }
        c
    }
}

/// The result of a scenario run.
#[derive(Debug, Clone)]
pub struct Report {
    /// The final JSON object (CLI contract).
    pub json: Map<String, Value>,
    /// Every violation found (empty when all invariants held).
    pub violations: Vec<String>,
    /// Readable lines for the non-JSON output.
    pub lines: Vec<String>,
    /// The rolling hash of the trace.
    pub trace_hash: u64,
    /// The readable trace, when kept.
    pub trace: Option<Vec<String>>,
}

impl Report {
    /// True when no invariant was violated.
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Builder used by the scenarios.
pub(crate) struct Out {
    pub json: Map<String, Value>,
    pub violations: Vec<String>,
    pub lines: Vec<String>,
    pub converged: bool,
}

impl Out {
    fn new() -> Self {
        Out {
            json: Map::new(),
            violations: Vec::new(),
            lines: Vec::new(),
            converged: true,
        }
    }
    /// Sets a JSON field and a readable line.
    pub fn set(&mut self, key: &str, v: Value) {
        self.lines.push(format!("{key}: {v}"));
        self.json.insert(key.to_string(), v);
    }
    /// Sets an optional duration in ms (null when it never happened).
    pub fn set_ms(&mut self, key: &str, d: Option<Duration>) {
        self.set(key, d.map(ms).map_or(Value::Null, |v| json!(v)));
    }
    /// Adds a violation.
    pub fn fail(&mut self, msg: String) {
        self.violations.push(msg);
    }
    /// Records a settle result under a phase name.
    pub fn settled(&mut self, phase: &str, s: Settled) {
        if !s.converged {
            self.converged = false;
        }
        for v in s.violations {
            self.violations.push(format!("{phase}: {v}"));
        }
    }
}

/// Default settle limit for a cluster of `n` nodes.
pub(crate) fn settle_limit(n: usize) -> Duration {
    Duration::from_secs(if n > 200 { 90 } else { 60 })
}

/// Runs a scenario by name.
pub fn run_scenario(p: &Params) -> Result<Report, String> {
    if p.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    let mut cfg = p.sim_config();
    if p.scenario.starts_with("slow-reader") {
        slow_reader::configure(&mut cfg, p.scenario.ends_with("legacy"));
    }
    let mut sim = Sim::new(cfg)?;
    let wall = Instant::now();
    let mut out = Out::new();
    match p.scenario.as_str() {
        "steady" => steady::run(&mut sim, p, &mut out),
        "master-crash" => master_crash::run(&mut sim, p, &mut out),
        "partition-heal" => partition_heal::run(&mut sim, p, &mut out),
        "churn" => churn::run(&mut sim, p, &mut out),
        "loss" => loss::run(&mut sim, p, &mut out),
        "quorum" => quorum::run(&mut sim, p, &mut out),
        "events" => events::run(&mut sim, p, &mut out, false),
        "events-faults" => events::run(&mut sim, p, &mut out, true),
        "slow-reader" | "slow-reader-legacy" => slow_reader::run(&mut sim, p, &mut out),
        other => {
            return Err(format!(
                "unknown scenario {other:?}; one of: {}",
                SCENARIOS.join(", ")
            ))
        }
    }
    let wall_ms = wall.elapsed().as_secs_f64() * 1e3;
    Ok(finish(sim, p, out, wall_ms))
}

fn finish(sim: Sim, p: &Params, mut out: Out, wall_ms: f64) -> Report {
    let mut violations = sim.violations.clone();
    if sim.violations_dropped > 0 {
        violations.push(format!(
            "... and {} more continuous violations",
            sim.violations_dropped
        ));
    }
    violations.append(&mut out.violations);
    let masters = sim
        .live_slots()
        .iter()
        .filter(|&&s| sim.node(s).is_some_and(|n| n.is_master()))
        .count();
    let c = &sim.counters;
    let mut json = Map::new();
    json.insert("scenario".into(), json!(p.scenario));
    json.insert("nodes".into(), json!(p.nodes));
    json.insert("seed".into(), json!(p.seed));
    json.insert("cipher".into(), json!(p.cipher.name()));
    json.insert("sim_ms".into(), json!(sim.now_ms().round()));
    json.insert("wall_ms".into(), json!(wall_ms.round()));
    json.insert(
        "converged".into(),
        json!(out.converged && violations.is_empty()),
    );
    json.insert("masters".into(), json!(masters));
    json.insert("live_nodes".into(), json!(sim.live_slots().len()));
    // Live nodes that never emitted node_accepted (a node that formed the cluster may not).
    let never_accepted = sim
        .live_slots()
        .iter()
        .filter(|&&s| !sim.slots[s].accepted)
        .count();
    json.insert("never_accepted".into(), json!(never_accepted));
    json.insert(
        "datagrams".into(),
        json!({
            "sent": c.sent, "delivered": c.delivered, "lost": sim.net.lost,
            "blocked": sim.net.blocked, "duplicated": sim.net.duplicated,
            "dropped_dead": c.dropped_dead + c.dropped_crashed,
        }),
    );
    json.insert("steps".into(), json!(c.steps));
    json.insert(
        "trace_hash".into(),
        json!(format!("{:016x}", sim.trace.hash())),
    );
    for (k, v) in std::mem::take(&mut out.json) {
        json.insert(k, v);
    }
    if !violations.is_empty() {
        json.insert("reproduce".into(), json!(p.command()));
    }
    json.insert("violations".into(), json!(violations));
    let mut lines = vec![format!(
        "scenario {} nodes {} seed {} cipher {}: {:.0} ms simulated in {:.0} ms wall",
        p.scenario,
        p.nodes,
        p.seed,
        p.cipher.name(),
        sim.now_ms(),
        wall_ms
    )];
    lines.append(&mut out.lines);
    lines.push(format!("masters: {masters}"));
    if violations.is_empty() {
        lines.push("all invariants held".into());
    } else {
        lines.push(format!(
            "{} VIOLATION(S) with seed {}; reproduce with: {}",
            violations.len(),
            p.seed,
            p.command()
        ));
        for v in &violations {
            lines.push(format!("  - {v}"));
        }
    }
    Report {
        json,
        violations,
        lines,
        trace_hash: sim.trace.hash(),
        trace: sim.trace.records().map(|r| r.to_vec()),
    }
}

/// Common start: `n` nodes at once, then the time they all agree on one master and the
/// time every node lists every node. Returns (election, full membership).
pub(crate) fn start_and_elect(
    sim: &mut Sim,
    n: usize,
    out: &mut Out,
) -> (Option<Duration>, Option<Duration>) {
    sim.add_nodes(n);
    let step = if n > 200 {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(1)
    };
    let limit = Duration::from_secs(60);
    let t0 = sim.now();
    let (mut election, mut full) = (None, None);
    sim.run_until_pred(t0 + limit, step, |s| {
        if election.is_none() && crate::metrics::agreed_master(s).is_some() {
            election = Some(s.now() - t0);
        }
        if full.is_none() && crate::metrics::full_membership_by_events(s) {
            full = Some(s.now() - t0);
        }
        election.is_some() && full.is_some()
    });
    if election.is_none() {
        out.fail(format!(
            "no agreed master within {} s of start",
            limit.as_secs()
        ));
    }
    if full.is_none() {
        out.fail(format!(
            "membership incomplete {} s after start (by added/removed events)",
            limit.as_secs()
        ));
    }
    out.set_ms("election_ms", election);
    out.set_ms("full_membership_ms", full);
    (election, full)
}
