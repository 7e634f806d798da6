//! Runs the cut-off-and-heal check (`families::cut_off_and_heal`) over seeds.
//! `cargo run --release -p espial-sim --example cutoff -- [mute|isolate] [SEEDS]`
use espial_sim::families::{cut_off_and_heal, CutOff};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let how = match args.first().map(String::as_str) {
        Some("isolate") => CutOff::Isolate,
        _ => CutOff::Mute,
    };
    let seeds: u64 = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut bad = 0;
    for seed in 1..=seeds {
        let v = cut_off_and_heal(seed, how);
        if !v.is_empty() {
            bad += 1;
            println!("FAIL {how:?} seed {seed}: {}", v.join(" | "));
        }
    }
    println!("{how:?}: {bad} of {seeds} seeds failed");
    std::process::exit(if bad == 0 { 0 } else { 1 });
}
