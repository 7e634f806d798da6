//! `espial-sim`: runs one simulator scenario and prints its figures and a final JSON object.
//! Exit status 0 only when no invariant was violated.

use clap::Parser;
use espial_sim::{run_scenario, CipherKind, Params, SCENARIOS};
use std::process::ExitCode;
use std::time::Duration;

/// Deterministic espial cluster simulator.
#[derive(Parser, Debug)]
#[command(name = "espial-sim", version, about)]
struct Cli {
    /// Scenario: steady, master-crash, partition-heal, churn, loss, quorum, events,
    /// events-faults, isolate-heal, slow-node.
    #[arg(long)]
    scenario: String,
    /// Number of nodes at start.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seed of the run (the same seed gives the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Datagram loss probability (0..1).
    #[arg(long)]
    loss: Option<f64>,
    /// Cipher suite: test or aes128gcm.
    #[arg(long, default_value = "test")]
    cipher: CipherKind,
    /// Print only the final JSON object.
    #[arg(long)]
    json: bool,
    /// Simulated duration in seconds: steady = whole run (default 30), loss = whole run
    /// (default 600), churn = churn phase (default 20), events = stream phase (default 10).
    #[arg(long)]
    duration_s: Option<f64>,
    /// Events: events phase A count (default 10000 at N <= 5, else 2000) and events per
    /// sender in phase B (default 200).
    #[arg(long)]
    events: Option<usize>,
    /// Fault rounds: isolate-heal = isolations healed (default 3).
    #[arg(long)]
    rounds: Option<usize>,
    /// Write the readable trace to this file.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !SCENARIOS.contains(&cli.scenario.as_str()) {
        eprintln!(
            "espial-sim: unknown scenario {:?}; one of: {}",
            cli.scenario,
            SCENARIOS.join(", ")
        );
        return ExitCode::from(2);
    }
    if let Some(l) = cli.loss {
        if !(0.0..=1.0).contains(&l) {
            eprintln!("espial-sim: --loss must be between 0 and 1");
            return ExitCode::from(2);
        }
    }
    let mut p = Params::new(&cli.scenario, cli.nodes, cli.seed);
    p.loss = cli.loss;
    p.cipher = cli.cipher;
    p.duration = cli
        .duration_s
        .filter(|d| d.is_finite() && *d > 0.0)
        .map(Duration::from_secs_f64);
    p.events = cli.events;
    p.rounds = cli.rounds;
    p.keep_trace = cli.trace.is_some();
    let report = match run_scenario(&p) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("espial-sim: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(path), Some(records)) = (&cli.trace, &report.trace) {
        if let Err(e) = std::fs::write(path, records.join("\n") + "\n") {
            eprintln!("espial-sim: cannot write trace to {}: {e}", path.display());
        }
    }
    if !cli.json {
        for l in &report.lines {
            println!("{l}");
        }
    } else if !report.ok() {
        eprintln!(
            "espial-sim: {} violation(s) with seed {}; reproduce with: {}",
            report.violations.len(),
            p.seed,
            p.command()
        );
    }
    println!(
        "{}",
        serde_json::to_string(&serde_json::Value::Object(report.json.clone())).expect("json")
    );
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
