//! `events` and `events-faults`: several senders publish to subscribers that join and leave
//! mid-stream; the faults version adds 20 % loss, 5 % duplication, reordering, a partition
//! that heals and a subscriber crash. Counts lost, duplicated, reordered and misrouted
//! events for subscribers that stayed alive, subscribed and reachable.

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::{Sim, SlotState};
use crate::faults::Action;
use crate::invariants::settle;
use espial_core::{SendError, Target};
use serde_json::json;
use std::time::Duration;

const PAYLOAD: usize = 128;

/// Outcome of one attempt to publish.
enum Sent {
    Ok,
    Backpressure,
    Failed,
}

fn publish(sim: &mut Sim, slot: usize, name: &str) -> Sent {
    let gen = sim.slots[slot].gen;
    let now = sim.now().as_nanos() as u64;
    let (_, data) = sim.events.prepare(slot, gen, PAYLOAD);
    let known = crate::events::known_subscribers(sim, slot, name);
    let r = sim.with_node(slot, |n, t| n.send(t, name, data, Target::Subscribers));
    match r {
        Some(Ok(id)) => {
            sim.events.on_sent(slot, gen, name, now, Some(id), known);
            Sent::Ok
        }
        Some(Err(SendError::Backpressure(_))) => Sent::Backpressure,
        Some(Err(e)) => {
            sim.events
                .on_send_error(format!("n{slot} send {name}: {e}"));
            Sent::Failed
        }
        None => Sent::Failed,
    }
}

/// Phase A: one sender, every other node (up to 4) subscribed, `count` events back to back.
/// Returns datagrams sent per delivery.
fn efficiency(sim: &mut Sim, count: usize, out: &mut Out) {
    let subs: Vec<usize> = sim.live_slots().into_iter().skip(1).take(4).collect();
    for &s in &subs {
        sim.apply(Action::Subscribe(s, "bench".into()));
    }
    sim.run_for(Duration::from_secs(3));
    let sent0 = sim.counters.sent;
    let del0 = sim.events.delivered();
    let t0 = sim.now();
    let mut done = 0;
    let mut refused = 0;
    let deadline = t0 + Duration::from_secs(120);
    while done < count && sim.now() < deadline {
        match publish(sim, 0, "bench") {
            Sent::Ok => done += 1,
            Sent::Backpressure => sim.run_for(Duration::from_millis(1)),
            Sent::Failed => {
                refused += 1;
                if refused > 10 {
                    break;
                }
                sim.run_for(Duration::from_millis(10));
            }
        }
    }
    let expected = sim.events.delivered() + (done * subs.len()) as u64;
    let target = del0 + (done * subs.len()) as u64;
    sim.run_until_pred(
        sim.now() + Duration::from_secs(30),
        Duration::from_millis(5),
        |s| s.events.delivered() >= target,
    );
    let _ = expected;
    let delivered = sim.events.delivered() - del0;
    let datagrams = sim.counters.sent - sent0;
    let elapsed = sim.now() - t0;
    out.set("bench_events_sent", json!(done));
    out.set("bench_deliveries", json!(delivered));
    out.set("bench_sim_ms", json!(elapsed.as_secs_f64() * 1e3));
    out.set(
        "datagrams_per_delivery",
        if delivered == 0 {
            json!(null)
        } else {
            json!(datagrams as f64 / delivered as f64)
        },
    );
    for &s in &subs {
        sim.apply(Action::Unsubscribe(s, "bench".into()));
    }
}

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out, faults: bool) {
    start_and_elect(sim, p.nodes, out);
    let s = settle(sim, settle_limit(p.nodes));
    out.settled("settle", s);
    let n = p.nodes;
    if n < 2 {
        return;
    }
    if !faults {
        let count = p.events.unwrap_or(if n <= 5 { 10_000 } else { 2_000 });
        efficiency(sim, count, out);
        sim.run_for(Duration::from_secs(3));
    }
    // Phase B: several senders, subscribers joining and leaving mid-stream.
    let name = "jobs";
    let live = sim.live_slots();
    let senders: Vec<usize> = live.iter().copied().take(3.min(n - 1).max(1)).collect();
    for &s in live.iter() {
        if s % 2 == 1 || s == live[live.len() - 1] {
            sim.apply(Action::Subscribe(s, name.into()));
        }
    }
    sim.run_for(Duration::from_secs(3));
    let stream_for = p.duration.unwrap_or(Duration::from_secs(10));
    let t_start = sim.now();
    let end = t_start + stream_for;
    let per_sender = p.events.unwrap_or(200);
    let gap_us = (stream_for.as_micros() as usize / per_sender.max(1)).max(100);
    let mut next_toggle = t_start + Duration::from_millis(500);
    let mut next_request = t_start + Duration::from_millis(700);
    let mut crashed_sub = None;
    if faults {
        let fault_from = t_start + stream_for / 5;
        let fault_to = t_start + stream_for * 3 / 5;
        sim.schedule(fault_from, Action::SetLoss(0.2));
        sim.schedule(fault_from, Action::SetDuplicate(0.05));
        sim.schedule(fault_from, Action::SetReorder(0.1));
        // Partition a small group (never the senders) for a while.
        let pool: Vec<usize> = live
            .iter()
            .copied()
            .filter(|s| !senders.contains(s))
            .collect();
        let k = (pool.len() / 3).max(1).min(pool.len());
        let cut: Vec<usize> = pool.iter().copied().take(k).collect();
        let p_from = t_start + stream_for * 3 / 10;
        let p_to = t_start + stream_for / 2;
        sim.schedule_for(
            p_from,
            p_to - p_from,
            Action::Partition(vec![Vec::new(), cut.clone()]),
            Action::Heal,
        );
        sim.events.disturbed(
            p_from.as_nanos() as u64,
            p_to.as_nanos() as u64 + 5_000_000_000,
        );
        for a in [
            Action::SetLoss(0.0),
            Action::SetDuplicate(0.0),
            Action::SetReorder(0.0),
        ] {
            sim.schedule(fault_to, a);
        }
        out.set(
            "faults",
            json!({"loss": 0.2, "duplicate": 0.05, "reorder": 0.1,
                   "partitioned": cut.len(), "fault_window_ms": [ms(fault_from), ms(fault_to)]}),
        );
        // A subscriber (not partitioned, not a sender) crashes mid-stream.
        crashed_sub = pool.iter().copied().rev().find(|s| {
            !cut.contains(s)
                && sim
                    .node(*s)
                    .is_some_and(|n| n.info().subscriptions.contains(name))
        });
    }
    let crash_at = t_start + stream_for * 2 / 5;
    let mut crashed = false;
    let mut stream_rng_pick = 0usize;
    while sim.now() < end {
        let gap = Duration::from_micros(sim.rng.below(2 * gap_us) as u64 + 1);
        sim.run_for(gap.min(end - sim.now()));
        let who = senders[stream_rng_pick % senders.len()];
        stream_rng_pick += 1;
        if sim.slots[who].state == SlotState::Running {
            let _ = publish(sim, who, name);
        }
        if sim.now() >= next_toggle {
            next_toggle += Duration::from_millis(700);
            // Toggle one non-sender subscription.
            let pool: Vec<usize> = sim
                .live_slots()
                .into_iter()
                .filter(|s| !senders.contains(s) && Some(*s) != crashed_sub)
                .collect();
            if !pool.is_empty() {
                let s = pool[sim.rng.below(pool.len())];
                let subbed = sim
                    .node(s)
                    .is_some_and(|n| n.info().subscriptions.contains(name));
                sim.apply(if subbed {
                    Action::Unsubscribe(s, name.into())
                } else {
                    Action::Subscribe(s, name.into())
                });
            }
        }
        if sim.now() >= next_request {
            next_request += Duration::from_secs(2);
            let r = sim.with_node(senders[0], |n, t| {
                n.request(
                    t,
                    name,
                    bytes::Bytes::from_static(b"ping"),
                    Duration::from_secs(1),
                )
            });
            match r {
                Some(Ok(_)) => sim.events.requests += 1,
                Some(Err(e)) => sim.events.on_send_error(format!("request: {e}")),
                None => {}
            }
        }
        if faults && !crashed && sim.now() >= crash_at {
            crashed = true;
            if let Some(c) = crashed_sub {
                sim.crash(c);
                out.set("crashed_subscriber", json!(format!("n{c}")));
            }
        }
    }
    // Faults are over (scheduled ends passed); let retransmissions and outcomes finish.
    sim.apply(Action::Heal);
    let s = settle(sim, settle_limit(n));
    out.settled("after stream", s);
    sim.run_for(Duration::from_secs(10));
    let (st, problems) = {
        let slots = &sim.slots;
        sim.events.analyze(
            |(slot, gen)| slots[slot].gen == gen && slots[slot].is_live(),
            3_000_000_000,
        )
    };
    out.set("events_sent", json!(st.events_sent));
    out.set("events_delivered", json!(st.events_delivered));
    out.set("events_lost", json!(st.events_lost));
    out.set("events_duplicated", json!(st.events_duplicated));
    out.set("events_reordered", json!(st.events_reordered));
    out.set("events_misrouted", json!(st.events_misrouted));
    out.set(
        "events_after_unsubscribe",
        json!(st.events_after_unsubscribe),
    );
    out.set("events_failed_reported", json!(st.events_failed_reported));
    out.set("failed_to_crashed", json!(st.failed_to_crashed));
    out.set("outcomes_missing", json!(st.outcomes_missing));
    out.set("outcomes_wrong", json!(st.outcomes_wrong));
    out.set("stable_subscribers", json!(st.stable_subscribers));
    out.set(
        "events_unrouted_stale_view",
        json!(st.events_unrouted_stale_view),
    );
    out.set("requests", json!(sim.events.requests));
    out.set("replies", json!(sim.events.replies_received));
    out.set("send_errors", json!(sim.events.send_errors));
    if st.events_sent == 0 {
        out.fail("no event could be sent".into());
    }
    for (k, v) in [
        ("lost", st.events_lost),
        ("duplicated", st.events_duplicated),
        ("reordered", st.events_reordered),
        ("misrouted", st.events_misrouted),
        ("with a missing outcome", st.outcomes_missing),
        ("wrongly reported delivered", st.outcomes_wrong),
    ] {
        if v > 0 {
            out.fail(format!("{v} event(s) {k}"));
        }
    }
    if sim.events.send_errors > 0 {
        out.fail(format!(
            "{} send/request call(s) refused, e.g. {:?}",
            sim.events.send_errors, sim.events.send_error_examples
        ));
    }
    if !sim.events.misrouted_examples.is_empty() {
        out.fail(format!("misrouted: {:?}", sim.events.misrouted_examples));
    }
    for pr in problems {
        out.fail(pr);
    }
    if faults && crashed_sub.is_some() && st.failed_to_crashed == 0 && st.events_sent > 0 {
        out.fail("no send reported a failure for the crashed subscriber".into());
    }
}

fn ms(d: Duration) -> f64 {
    crate::metrics::ms(d)
}
