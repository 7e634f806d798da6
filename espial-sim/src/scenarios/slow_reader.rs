//! `slow-reader` (issue 11 item 4): one sender, a subscriber whose *application* stops
//! reading for a long while (the node keeps running), and a subscriber whose process is
//! paused long enough to be removed and come back. Checks, at every step: a target is
//! reported delivered only after its application consumed the event; an application never
//! consumes an event after a gap that no `EventsMissed` covered. At the end: nothing lost,
//! duplicated or reordered at the slow reader, every send has an outcome, the sender saw
//! backpressure, and the reader's unread events stayed within the configured bound.
//!
//! `slow-reader-legacy` runs the same script against a model of the facade before flow
//! control (a listener buffer that drops its oldest events, no consumption reports): it
//! fails (events reported delivered that the application never got, events lost).

use super::{settle_limit, start_and_elect, Out, Params};
use crate::cluster::{ReaderModel, Sim, SimConfig};
use crate::faults::Action;
use crate::invariants::settle;
use espial_core::{SendError, Target};
use serde_json::json;
use std::time::Duration;

/// Flow-control window per peer used by the scenario (small, so the pause is many windows).
pub const WINDOW: usize = 64 * 1024;
/// Unread bound over all peers used by the scenario.
pub const UNREAD_TOTAL: usize = 256 * 1024;
const PAYLOAD: usize = 16 * 1024;

/// The scenario's simulator settings.
pub(crate) fn configure(c: &mut SimConfig, legacy: bool) {
    c.core.max_event_payload = PAYLOAD;
    c.core.event_window_bytes = WINDOW;
    c.core.max_unread_event_bytes = UNREAD_TOTAL;
    c.reader = if legacy {
        ReaderModel::LegacyListener(64)
    } else {
        ReaderModel::Consumed
    };
}

pub(super) fn run(sim: &mut Sim, p: &Params, out: &mut Out) {
    let n = p.nodes.max(3);
    start_and_elect(sim, n, out);
    let s = settle(sim, settle_limit(n));
    out.settled("settle", s);
    let live = sim.live_slots();
    let (sender, reader, paused) = (live[0], live[1], live[2]);
    let name = "jobs";
    for s in [reader, paused] {
        sim.apply(Action::Subscribe(s, name.into()));
    }
    sim.run_for(Duration::from_secs(3));
    let count = p.events.unwrap_or(1200);
    // The reader's application stops for longer than the whole send phase (one event per
    // 10 ms): the sender must be held back by credit (1200 × 16 KiB is 300 windows, more
    // than the sender's 16 MiB queue: its sends meet backpressure).
    let t0 = sim.now();
    sim.apply(Action::PauseReader(reader, Duration::from_secs(20)));
    sim.schedule(
        t0 + Duration::from_secs(2),
        Action::Pause(paused, Duration::from_secs(8)),
    );
    sim.events.disturbed(
        t0.as_nanos() as u64,
        (t0 + Duration::from_secs(12)).as_nanos() as u64,
    );
    let mut sent = 0;
    let mut backpressure = 0u64;
    let mut unread_peak = 0u64;
    let deadline = t0 + Duration::from_secs(40);
    while sent < count && sim.now() < deadline {
        let gen = sim.slots[sender].gen;
        let now = sim.now().as_nanos() as u64;
        let (_, data) = sim.events.prepare(sender, gen, PAYLOAD);
        let known = crate::events::known_subscribers(sim, sender, name);
        match sim.with_node(sender, |n, t| n.send(t, name, data, Target::Subscribers)) {
            Some(Ok(id)) => {
                sim.events.on_sent(sender, gen, name, now, Some(id), known);
                sent += 1;
            }
            Some(Err(SendError::Backpressure(_))) => {
                backpressure += 1;
                sim.run_for(Duration::from_millis(5));
            }
            Some(Err(e)) => {
                out.fail(format!("send refused: {e}"));
                break;
            }
            None => break,
        }
        if let Some(node) = sim.node(reader) {
            unread_peak = unread_peak.max(node.unread_events().1);
        }
        sim.run_for(Duration::from_millis(10));
    }
    // Let the reader's pause end and everything drain.
    let limit = sim.now() + Duration::from_secs(60);
    sim.run_until_pred(limit, Duration::from_millis(10), |s| {
        s.now() > t0 + Duration::from_secs(21)
            && s.events.analyze(|_| true, 0).0.outcomes_missing == 0
    });
    let stable = |inc: crate::events::Incarnation| inc.0 == reader;
    let (st, problems) = sim.events.analyze(stable, 0);
    let d = sim.node(reader).map(|n| n.delivery_stats());
    let peak = d.as_ref().map_or(0, |d| d.unread_peak).max(unread_peak);
    out.set("events_sent", json!(sent));
    out.set("events_delivered", json!(st.events_delivered));
    out.set("events_lost", json!(st.events_lost));
    out.set("events_duplicated", json!(st.events_duplicated));
    out.set("events_reordered", json!(st.events_reordered));
    out.set("outcomes_missing", json!(st.outcomes_missing));
    out.set("outcomes_wrong", json!(st.outcomes_wrong));
    out.set("backpressure", json!(backpressure));
    out.set("reader_unread_peak_bytes", json!(peak));
    out.set("reader_app_dropped", json!(sim.slots[reader].app_dropped));
    out.set(
        "delivered_before_consumed",
        json!(sim.events.delivered_early),
    );
    out.set("silent_gaps", json!(sim.events.silent_gaps));
    out.set(
        "gap_events",
        json!(sim
            .node(paused)
            .map_or(0, |n| n.delivery_stats().events_missed)),
    );
    if sent < count {
        out.fail(format!(
            "only {sent} of {count} events sent before the deadline"
        ));
    }
    for (k, v) in [
        ("lost at the slow reader", st.events_lost),
        ("duplicated", st.events_duplicated),
        ("reordered", st.events_reordered),
        ("with a missing outcome", st.outcomes_missing),
        ("wrongly reported delivered", st.outcomes_wrong),
        (
            "dropped by the reader's listener",
            sim.slots[reader].app_dropped,
        ),
    ] {
        if v > 0 {
            out.fail(format!("{v} event(s) {k}"));
        }
    }
    if backpressure == 0 {
        out.fail("the sender never saw backpressure from the paused reader".into());
    }
    // One sender: the per-peer window bounds the reader's unread events.
    if peak > WINDOW as u64 {
        out.fail(format!(
            "unread events reached {peak} bytes, above the window {WINDOW}"
        ));
    }
    for pr in problems {
        out.fail(pr);
    }
}
