//! `espial bench`: performance figures on loopback (127.0.x.y unicast, static peers, no
//! multicast), bounded in time, ending by itself.
//!
//! - `crypto`: the record cipher beside raw aws-lc-rs (`espial_crypto::bench`).
//! - `failover`, `join`, `leave`: clusters of 5 real `espial agent` processes (copies of
//!   this binary) whose JSON lines are read with deadlines.
//! - `events`: a sender node in this process and 4 subscriber processes (`espial bench-node`,
//!   copies of this binary), beside a raw UDP sender measured in the same run.
//! - `idle`: 5, 20 and 50 `espial bench-node` processes.
//!
//! Every figure states its median, min, max and number of trials; `--json` prints one JSON
//! object per measurement.

mod cluster;
mod events;
mod idle;
pub(crate) mod node_process;
mod process_group;
mod stats;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::process::ExitCode;

/// What to measure.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Which {
    /// Custom event throughput (1 sender, 4 subscribers), raw UDP rate and latency.
    Events,
    /// `kill -9` of the master of 5 agent processes until the survivors agree.
    Failover,
    /// Cold start of 5 agent processes until one agreed master and full membership.
    Join,
    /// Graceful `quit` of one of 5 agents until the others see it removed (`left`).
    Leave,
    /// Idle bytes/s and CPU per node with 5, 20 and 50 nodes.
    Idle,
    /// Seal/open and bulk AES-GCM, ours beside raw aws-lc-rs.
    Crypto,
    /// All of the above.
    All,
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Which measurement to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// One JSON object per measurement instead of readable lines.
    #[arg(long)]
    json: bool,
    /// Fewer trials and shorter windows (a smoke run: figures are noisier).
    #[arg(long)]
    quick: bool,
}

/// Prints measurements as readable lines or JSON objects.
pub(crate) struct Report {
    json: bool,
    /// Measurements that could not be taken (a trial missed its deadline, a node failed).
    pub(crate) failures: usize,
}

impl Report {
    /// Prints one measurement. `v` holds `"bench"` and its figures; `text` is the readable
    /// form.
    pub(crate) fn emit(&mut self, v: Value, text: String) {
        if self.json {
            super::out(v);
        } else {
            super::out(text);
        }
    }

    /// Prints a note (progress or a failed trial): a JSON line with `"note"` or plain text.
    pub(crate) fn note(&mut self, bench: &str, text: String) {
        if self.json {
            super::out(json!({ "note": text, "bench": bench }));
        } else {
            super::out(format!("  [{bench}] {text}"));
        }
    }
}

/// True when this process runs in a private network namespace whose only interface is `lo`
/// (as made by `bash scripts/netns`).
fn in_private_netns() -> bool {
    std::fs::read_to_string("/proc/net/dev")
        .map(|dev| {
            dev.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(str::trim)
                .eq(["lo"])
        })
        .unwrap_or(false)
}

pub(crate) async fn run(args: BenchArgs) -> ExitCode {
    // Benchmarks open many sockets and processes: they run only in a network namespace
    // made for the run, so nothing can reach the machine's real interfaces.
    if args.which != Which::Crypto && !in_private_netns() {
        eprintln!(
            "espial bench opens sockets and must run inside a private network namespace:\n  \
             bash scripts/netns target/release/espial bench ...\n\
             (`espial bench crypto` opens no socket and runs anywhere)"
        );
        return ExitCode::from(2);
    }
    let mut r = Report {
        json: args.json,
        failures: 0,
    };
    let quick = args.quick;
    let all = args.which == Which::All;
    let t0 = std::time::Instant::now();
    if all || args.which == Which::Crypto {
        crypto(&mut r, quick);
    }
    if all {
        // Each failover and leave trial starts from a cold start: those are the join trials.
        cluster::run(&mut r, quick, true, true, true).await;
    } else {
        match args.which {
            Which::Failover => cluster::run(&mut r, quick, false, true, false).await,
            Which::Join => cluster::run(&mut r, quick, true, false, false).await,
            Which::Leave => cluster::run(&mut r, quick, false, false, true).await,
            _ => {}
        }
    }
    if all || args.which == Which::Events {
        events::run(&mut r, quick).await;
    }
    if all || args.which == Which::Idle {
        idle::run(&mut r, quick).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    r.emit(
        json!({"bench": "done", "total_s": secs, "failures": r.failures, "quick": quick}),
        format!("bench finished in {secs:.1} s, {} failure(s)", r.failures),
    );
    if r.failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn crypto(r: &mut Report, quick: bool) {
    let rep = espial_crypto::bench::run(quick);
    let mut v: Value = serde_json::from_str(&rep.to_json()).unwrap_or_else(|_| json!({}));
    v["bench"] = "crypto".into();
    if rep.errors > 0 {
        r.failures += 1;
    }
    r.emit(v, rep.to_string());
}
