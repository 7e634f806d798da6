//! `--metrics 127.0.0.1:PORT`: the node's metrics (see `espial::metrics`) in the Prometheus
//! text format at `GET /metrics` on a loopback HTTP listener.
//!
//! Hand-written rather than `metrics-exporter-prometheus`: that crate brings an HTTP stack
//! (hyper and its dependencies) and a general-purpose registry for what is here one
//! recorder of a few dozen series and a 40-line HTTP/1.0 responder; the agent's build stays
//! small. Counters and gauges are atomics; histograms have fixed buckets (seconds).

use ::metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

struct Atomic(AtomicU64);

impl CounterFn for Atomic {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    fn absolute(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }
}

impl GaugeFn for Atomic {
    fn increment(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + v);
    }
    fn decrement(&self, v: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) - v);
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Hist {
    counts: Mutex<(Vec<u64>, f64, u64)>,
}

impl HistogramFn for Hist {
    fn record(&self, v: f64) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.0.is_empty() {
            c.0 = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                c.0[i] += 1;
            }
        }
        c.1 += v;
        c.2 += 1;
    }
}

/// Series by (name, rendered labels).
type Series<T> = Mutex<BTreeMap<(String, String), Arc<T>>>;

/// The recorder and registry.
#[derive(Default)]
pub(crate) struct Prometheus {
    counters: Series<Atomic>,
    gauges: Series<Atomic>,
    histograms: Series<Hist>,
}

fn labels(key: &Key) -> String {
    let parts: Vec<String> = key
        .labels()
        .map(|l| {
            let v = l
                .value()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{}=\"{v}\"", l.key())
        })
        .collect();
    parts.join(",")
}

fn entry<T>(map: &Series<T>, key: &Key, new: impl FnOnce() -> T) -> Arc<T> {
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    m.entry((key.name().to_string(), labels(key)))
        .or_insert_with(|| Arc::new(new()))
        .clone()
}

impl Recorder for &'static Prometheus {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(entry(&self.counters, key, || Atomic(AtomicU64::new(0))))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(entry(&self.gauges, key, || Atomic(AtomicU64::new(0))))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(entry(&self.histograms, key, Hist::default))
    }
}

impl Prometheus {
    /// Every series in the Prometheus text format (version 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let typed = |out: &mut String, name: &str, kind: &str, last: &mut String| {
            if last != name {
                let _ = writeln!(out, "# TYPE {name} {kind}");
                *last = name.to_string();
            }
        };
        let mut last = String::new();
        for ((name, l), v) in self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            typed(&mut out, name, "counter", &mut last);
            let _ = writeln!(out, "{name}{} {}", braces(l), v.0.load(Ordering::Relaxed));
        }
        for ((name, l), v) in self.gauges.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            typed(&mut out, name, "gauge", &mut last);
            let _ = writeln!(
                out,
                "{name}{} {}",
                braces(l),
                f64::from_bits(v.0.load(Ordering::Relaxed))
            );
        }
        for ((name, l), h) in self
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            typed(&mut out, name, "histogram", &mut last);
            let c = h.counts.lock().unwrap_or_else(|p| p.into_inner());
            let sep = if l.is_empty() { "" } else { "," };
            for (i, b) in BUCKETS.iter().enumerate() {
                let n = c.0.get(i).copied().unwrap_or(0);
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{b}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", c.2);
            let _ = writeln!(out, "{name}_sum{} {}", braces(l), c.1);
            let _ = writeln!(out, "{name}_count{} {}", braces(l), c.2);
        }
        out
    }
}

/// Installs the recorder (once per process) and serves `GET /metrics` on `addr`, which
/// must be a loopback address.
pub(crate) async fn serve(addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--metrics {addr}: only a loopback address is allowed"
        ));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--metrics {addr}: {e}"))?;
    let registry: &'static Prometheus = Box::leak(Box::default());
    ::metrics::set_global_recorder(registry)
        .map_err(|e| format!("--metrics: cannot install the recorder: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut n = 0;
                // The request head, bounded in size and time.
                let read = async {
                    while n < buf.len() {
                        match s.read(&mut buf[n..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(k) => n += k,
                        }
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
                let head = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if head.starts_with("GET /metrics ") {
                    ("200 OK", registry.render())
                } else {
                    ("404 Not Found", "GET /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    }))
}
