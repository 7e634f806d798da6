//! Replays a case printed by a failing proptest (JSON) and writes its trace: a fault
//! schedule (`tests/fault_schedules.rs`) or an adversary schedule
//! (`tests/adversary_schedules.rs`, recognised by its `"strict"` field).
//! `cargo run -p espial-sim --example replay -- '<case json>' [trace-file]`
use espial_sim::adv_schedule::{run_adv_case, AdvCase};
use espial_sim::schedule::{run_case, Case};
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let json = args
        .next()
        .expect("usage: replay '<case json>' [trace-file]");
    let out = args
        .next()
        .unwrap_or_else(|| "/tmp/espial-replay.trace".into());
    let (sim, v) = if json.contains("\"strict\"") {
        let case: AdvCase =
            serde_json::from_str(&json).expect("an adversary case as printed by the proptest");
        run_adv_case(&case, true, Duration::from_secs(40))
    } else {
        let case: Case = serde_json::from_str(&json).expect("a case as printed by the proptest");
        run_case(&case, true, Duration::from_secs(40), &[])
    };
    std::fs::write(
        &out,
        sim.trace.records().unwrap_or_default().join("\n") + "\n",
    )
    .expect("write trace");
    println!("trace: {out} ({} records)", sim.trace.len());
    for s in 0..sim.slots.len() {
        let slot = &sim.slots[s];
        let node = sim.node(s);
        println!(
            "n{s} {:?} id={} eligible={} master={:?} is_master={} term={} members={}",
            slot.state,
            slot.id.short(),
            slot.opts.eligible,
            node.and_then(|n| n.master()).map(|m| m.short()),
            node.is_some_and(|n| n.is_master()),
            node.map_or(0, |n| n.max_term()),
            node.map_or(0, |n| n.members().len()),
        );
    }
    // Stale member entries: what each node holds vs the member's own entry.
    for s in sim.live_slots() {
        for m in sim.node(s).map(|n| n.members()).unwrap_or_default() {
            let Some(t) = sim.slot_of(m.id) else { continue };
            let Some(truth) = sim.node(t).filter(|n| n.id() == m.id) else {
                continue;
            };
            let truth = truth.info();
            if truth.metadata != m.metadata || truth.subscriptions != m.subscriptions {
                println!(
                    "stale: n{s} holds n{t} at incarnation {} {:?}; n{t} itself is at {} {:?}",
                    m.incarnation, m.metadata, truth.incarnation, truth.metadata
                );
            }
        }
    }
    if v.is_empty() {
        println!("all invariants held");
    } else {
        println!("{} violation(s):\n{}", v.len(), v.join("\n"));
        std::process::exit(1);
    }
}
