//! Sweeps seeds of one election fault family and prints the failing ones.
//!
//! `cargo run --release -p espial-sim --example sweep -- FAMILY [SEEDS] [FIRST]`
//! (FAMILY: partition, one-way, pause, slow, drift, mixed, or `all`; SEEDS default 10000).
//! Prints one line per failing seed and a summary; exit status 1 when any seed failed.

use espial_sim::families::{family_case, FAMILIES};
use espial_sim::schedule::run_case;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let family = args.first().cloned().unwrap_or_else(|| "all".into());
    let seeds: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let first: u64 = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
    let families: Vec<&str> = if family == "all" {
        FAMILIES.to_vec()
    } else {
        vec![FAMILIES
            .iter()
            .copied()
            .find(|f| *f == family)
            .unwrap_or_else(|| panic!("unknown family {family}; one of {FAMILIES:?}"))]
    };
    let mut failed = 0u64;
    for f in families {
        let t = Instant::now();
        let mut bad = 0u64;
        for seed in first..first + seeds {
            let c = family_case(f, seed);
            let (sim, v) = run_case(&c, false, Duration::from_secs(30), &[]);
            if !v.is_empty() {
                bad += 1;
                println!(
                    "FAIL family {f} seed {seed} nodes {} quorum {} overlap_ms {:.1}: {}",
                    c.nodes,
                    c.quorum,
                    sim.counters.overlap_ns as f64 / 1e6,
                    v[..v.len().min(2)].join(" | ")
                );
            }
        }
        println!(
            "family {f}: {bad} of {seeds} seeds failed ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
        failed += bad;
    }
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
