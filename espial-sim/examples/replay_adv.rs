//! Replays an adversary-schedule case printed by `tests/adversary_schedules.rs` (JSON) and
//! writes its trace. `cargo run -p espial-sim --example replay_adv -- '<case json>' [trace]`
use espial_sim::adv_schedule::{run_adv_case, AdvCase};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let json = args
        .next()
        .expect("usage: replay_adv '<case json>' [trace-file]");
    let out = args
        .next()
        .unwrap_or_else(|| "/tmp/espial-replay-adv.trace".into());
    let case: AdvCase = serde_json::from_str(&json).expect("a case as printed by the proptest");
    let (sim, v) = run_adv_case(&case, true, Duration::from_secs(40));
    std::fs::write(
        &out,
        sim.trace.records().unwrap_or_default().join("\n") + "\n",
    )
    .expect("write trace");
    println!("trace: {out} ({} records)", sim.trace.len());
    for s in 0..sim.slots.len() {
        let node = sim.node(s);
        println!(
            "n{s} {:?} id={} master={:?} is_master={} members={}",
            sim.slots[s].state,
            sim.slots[s].id.short(),
            node.and_then(|n| n.master()).map(|m| m.short()),
            node.is_some_and(|n| n.is_master()),
            node.map_or(0, |n| n.members().len()),
        );
    }
    if v.is_empty() {
        println!("all invariants held");
    } else {
        println!("{} violation(s):\n{}", v.len(), v.join("\n"));
        std::process::exit(1);
    }
}
