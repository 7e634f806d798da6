//! Metrics through the `metrics` facade: a tiny recorder (any `metrics` exporter works the
//! same, e.g. metrics-exporter-prometheus) prints the gauges and counters two nodes
//! publish with `.metrics(true)`. Ends by itself.
//! `cargo run -p espial --example metrics` (binds 127.0.73.1-2:27530).

use espial::{Config, Espial};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keeps the last value of every counter and gauge.
#[derive(Default)]
struct Last(Mutex<BTreeMap<String, Arc<AtomicU64>>>);

impl Last {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().expect("map").entry(name).or_default().clone()
    }
}

impl Recorder for &'static Last {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.slot(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::main]
async fn main() -> espial::Result<()> {
    let last: &'static Last = Box::leak(Box::default());
    metrics::set_global_recorder(last).expect("first recorder");
    let addr = |i: usize| format!("127.0.73.{i}:27530");
    let mut nodes = Vec::new();
    for i in 1..=2 {
        let n = Espial::builder()
            .name(format!("m{i}"))
            .bind(addr(i).parse().expect("address"))
            .peers([addr(1), addr(2)])
            .profile(Config::local())
            .metrics(true)
            .start()
            .await?;
        nodes.push(n);
    }
    for n in &nodes {
        n.wait_for_cluster(2, Duration::from_secs(10)).await?;
    }
    // The nodes publish every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (name, v) in last.0.lock().expect("map").iter() {
        let v = v.load(Ordering::Relaxed);
        // Gauges are stored as f64 bits, counters as integers.
        let shown = if name.starts_with("espial_members")
            || name.starts_with("espial_is_master")
            || name.starts_with("espial_master_known")
        {
            f64::from_bits(v).to_string()
        } else {
            v.to_string()
        };
        if name.contains("members")
            || name.contains("master")
            || name.contains("bytes_out")
            || name.contains("handshakes_completed")
        {
            println!("{name} {shown}");
        }
    }
    for n in &nodes {
        n.shutdown().await?;
    }
    Ok(())
}
