//! Metrics through the [`metrics`] facade, when enabled with [`crate::Builder::metrics`].
//! The application installs a recorder (any `metrics` exporter); without one, nothing is
//! recorded. A task per node publishes, every second and labelled `node = <name>`:
//!
//! - gauges `espial_members` (live members, this node included) and `espial_is_master`
//!   (1 or 0), `espial_master_known` (1 when the node follows a master);
//! - counters `espial_<field>_total` for every counter of [`espial_core::Stats`] (traffic
//!   `packets_in`/`bytes_out`/..., handshakes, `events_delivered`, retransmits...), and
//!   `espial_dropped_total{reason}` for the counters that count dropped datagrams;
//! - counters `espial_events_sent_total` (delivery reports received, one per send),
//!   `espial_event_deliveries_total` and `espial_event_failures_total` (targets that
//!   acknowledged / failed, from the delivery reports);
//! - histogram `espial_delivery_latency_seconds`: from `send` to its delivery report, for
//!   one send in [`LATENCY_SAMPLE`] (the others cost nothing).

use crate::handle::Espial;
use espial_core::{Event, SendId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// One send in this many has its delivery latency measured.
pub const LATENCY_SAMPLE: u64 = 16;
/// Sends waiting for their report, at most (older ones are forgotten).
const MAX_PENDING: usize = 4096;
/// How often the gauges and counters are refreshed.
const PERIOD: Duration = Duration::from_secs(1);

/// The core counters that count dropped datagrams, exported under `espial_dropped_total`.
const DROPS: &[&str] = &[
    "decode_errors",
    "decrypt_failures",
    "replays",
    "unknown_session",
    "handshake_failures",
    "handshakes_refused",
    "non_member_dropped",
    "unsent_dropped",
    "beacons_ignored",
];

/// Send times of sampled sends.
#[derive(Default)]
pub(crate) struct SendTimes(Mutex<HashMap<SendId, Instant>>);

impl SendTimes {
    /// Notes the send time of a sampled send.
    pub(crate) fn sent(&self, id: SendId) {
        if id.0.is_multiple_of(LATENCY_SAMPLE) {
            let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() >= MAX_PENDING {
                m.clear();
            }
            m.insert(id, Instant::now());
        }
    }

    fn done(&self, id: SendId) -> Option<Duration> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&id).map(|t| t.elapsed())
    }
}

/// Runs until the node stops.
pub(crate) async fn run(espial: Espial, times: std::sync::Arc<SendTimes>) {
    let node = espial.node_info().name;
    let mut events = espial.raw_events();
    let mut tick = tokio::time::interval(PERIOD);
    let labels = [("node", node.clone())];
    let sent = ::metrics::counter!("espial_events_sent_total", &labels);
    let delivered = ::metrics::counter!("espial_event_deliveries_total", &labels);
    let failed = ::metrics::counter!("espial_event_failures_total", &labels);
    let latency = ::metrics::histogram!("espial_delivery_latency_seconds", &labels);
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(Event::SendOutcome(o)) => {
                    sent.increment(1);
                    delivered.increment(o.delivered.len() as u64);
                    failed.increment(o.failed.len() as u64);
                    if let Some(d) = times.done(o.send) {
                        latency.record(d.as_secs_f64());
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if espial.is_stopped() {
                    break;
                }
                publish(&espial, &node);
            }
        }
    }
    publish(&espial, &node);
}

fn publish(espial: &Espial, node: &str) {
    let labels = [("node", node.to_string())];
    let snap = espial.snapshot();
    ::metrics::gauge!("espial_members", &labels).set(snap.members.len() as f64);
    ::metrics::gauge!("espial_is_master", &labels).set(f64::from(u8::from(espial.is_master())));
    ::metrics::gauge!("espial_master_known", &labels)
        .set(f64::from(u8::from(snap.master.is_some())));
    // Every counter of the core's Stats, whatever fields it has.
    if let Ok(Value::Object(fields)) = serde_json::to_value(&snap.stats) {
        for (k, v) in fields {
            let Some(v) = v.as_u64() else { continue };
            ::metrics::counter!(format!("espial_{k}_total"), &labels).absolute(v);
            if DROPS.contains(&k.as_str()) {
                let l = [("node", node.to_string()), ("reason", k.clone())];
                ::metrics::counter!("espial_dropped_total", &l).absolute(v);
            }
        }
    }
}
