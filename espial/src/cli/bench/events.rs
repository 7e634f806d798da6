//! Event figures: 1 sender → 4 subscribers, 128-byte payloads, encrypted (AES-128-GCM
//! sessions under a pre-shared key), reliable; beside a raw UDP 1 → 4 rate measured in the
//! same run by a minimal sender (a plain socket loop in this process).
//!
//! The 5 nodes run inside this process over real UDP sockets on 127.0.<net>.1-5: the
//! `agent` command's stdin/stdout path (one command line in, one flushed JSON line out per
//! event) would measure JSON and pipes rather than espial. The sender keeps at most
//! [`WINDOW`] events ahead of the slowest receiver (application-level flow control), so the
//! figure is a sustained rate with nothing lost, not a burst into a queue.

use super::local;
use super::stats::{quantile, round, Summary};
use super::Report;
use espial::{Espial, Event};
use futures::StreamExt;
use serde_json::{Map, Value};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NET: u8 = 190;
const RAW_NET: u8 = 191;
const PAYLOAD: usize = 128;
const TOPIC: &str = "bench";
/// Most events the sender may be ahead of the slowest receiver.
const WINDOW: u64 = 8_192;
/// Events per `send_batch` in the throughput phase.
const BATCH: u64 = 256;
/// Paced rate of the latency phase.
const LAT_RATE: u64 = 10_000;

/// What one subscriber saw.
#[derive(Default)]
struct Rx {
    /// Throughput-phase events received.
    count: AtomicU64,
    /// When the last one arrived (ns since the run's start).
    last_ns: AtomicU64,
    /// Throughput-phase events out of order or duplicated.
    anomalies: AtomicU64,
    /// Latency-phase events received.
    lat_count: AtomicU64,
    /// Latency-phase one-way latencies, ms.
    lat: Mutex<Vec<f64>>,
}

pub(crate) async fn run(r: &mut Report, quick: bool) {
    let dur = Duration::from_secs(if quick { 1 } else { 10 });
    let raw = tokio::task::spawn_blocking(move || raw_udp(dur)).await;
    let raw = match raw {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            r.failures += 1;
            r.note("udp_raw", format!("raw UDP measurement failed: {e}"));
            Vec::new()
        }
        Err(e) => {
            r.failures += 1;
            r.note("udp_raw", format!("raw UDP measurement failed: {e}"));
            Vec::new()
        }
    };
    let raw_sum = Summary::of(&raw);
    if let Some(s) = raw_sum {
        let mut o = Map::new();
        o.insert("bench".into(), "udp_raw".into());
        s.put(&mut o, "per_s");
        o.insert("payload_bytes".into(), PAYLOAD.into());
        o.insert("receivers".into(), 4.into());
        o.insert("seconds".into(), dur.as_secs_f64().into());
        r.emit(
            Value::Object(o),
            format!(
                "udp_raw   minimal sender, {PAYLOAD}-byte datagrams 1 -> 4, received per receiver: {}",
                s.text("/s", 0)
            ),
        );
    }
    let nodes = match local::start(5, NET, 1 << 16).await {
        Ok(n) => n,
        Err(e) => {
            r.failures += 1;
            r.note("events", e);
            return;
        }
    };
    // Every wait inside is bounded; this bounds the sends too (a stuck node).
    let limit = Duration::from_secs(120);
    let res = tokio::time::timeout(limit, measure(r, &nodes, dur, quick, raw_sum)).await;
    if let Err(e) = res.unwrap_or_else(|_| Err(format!("did not finish in {limit:?}"))) {
        r.failures += 1;
        r.note("events", e);
    }
    local::stop(&nodes);
}

async fn measure(
    r: &mut Report,
    nodes: &[Espial],
    dur: Duration,
    quick: bool,
    raw: Option<Summary>,
) -> Result<(), String> {
    local::wait_converged(nodes, Duration::from_secs(20))
        .await
        .ok_or("5 nodes did not converge in 20 s")?;
    let sender = &nodes[0];
    let subs = &nodes[1..];
    let t0 = Instant::now();
    let rxs: Vec<Arc<Rx>> = subs.iter().map(|_| Arc::new(Rx::default())).collect();
    let mut tasks = Vec::new();
    for (node, rx) in subs.iter().zip(&rxs) {
        node.join(TOPIC).map_err(|e| format!("join: {e}"))?;
        tasks.push(tokio::spawn(receive(node.events(), rx.clone(), t0)));
    }
    let ids: Vec<_> = subs.iter().map(Espial::id).collect();
    let seen = async {
        loop {
            let s = sender.snapshot();
            let ok = ids.iter().all(|id| {
                s.member(*id)
                    .is_some_and(|m| m.subscriptions.contains(TOPIC))
            });
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let res = async {
        tokio::time::timeout(Duration::from_secs(10), seen)
            .await
            .map_err(|_| "the sender did not see the 4 subscriptions in 10 s")?;
        throughput(r, sender, subs, &rxs, t0, dur, raw).await?;
        latency(r, sender, &rxs, t0, if quick { 1 } else { 5 }).await
    }
    .await;
    for t in tasks {
        t.abort();
    }
    res
}

async fn receive(mut events: espial::EventStream, rx: Arc<Rx>, t0: Instant) {
    let mut next = 0u64;
    while let Some(e) = events.next().await {
        let Event::Custom(c) = e else { continue };
        if c.name != TOPIC || c.data.len() < 17 {
            continue;
        }
        let now = t0.elapsed().as_nanos() as u64;
        let seq = u64::from_le_bytes(c.data[0..8].try_into().unwrap_or_default());
        let sent = u64::from_le_bytes(c.data[8..16].try_into().unwrap_or_default());
        if c.data[16] == 0 {
            if seq != next {
                rx.anomalies.fetch_add(1, Ordering::Relaxed);
            }
            next = seq + 1;
            rx.count.fetch_add(1, Ordering::Relaxed);
            rx.last_ns.store(now, Ordering::Relaxed);
        } else {
            if let Ok(mut l) = rx.lat.lock() {
                l.push(now.saturating_sub(sent) as f64 / 1e6);
            }
            rx.lat_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn payload(seq: u64, t0: Instant, phase: u8) -> Vec<u8> {
    let mut p = vec![0x5a; PAYLOAD];
    p[0..8].copy_from_slice(&seq.to_le_bytes());
    p[8..16].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_le_bytes());
    p[16] = phase;
    p
}

fn min_of(rxs: &[Arc<Rx>], f: impl Fn(&Rx) -> u64) -> u64 {
    rxs.iter().map(|r| f(r)).min().unwrap_or(0)
}

/// Waits (bounded) until every receiver has `n` events by `f`.
async fn drain(rxs: &[Arc<Rx>], n: u64, f: impl Fn(&Rx) -> u64, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if min_of(rxs, &f) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[allow(clippy::too_many_arguments)]
async fn throughput(
    r: &mut Report,
    sender: &Espial,
    subs: &[Espial],
    rxs: &[Arc<Rx>],
    t0: Instant,
    dur: Duration,
    raw: Option<Summary>,
) -> Result<(), String> {
    let out = |e: &Espial| e.stats().core.packets_out;
    let p0 = (out(sender), subs.iter().map(out).sum::<u64>());
    let start_ns = t0.elapsed().as_nanos() as u64;
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < dur {
        let stalled = Instant::now();
        while sent.saturating_sub(min_of(rxs, |x| x.count.load(Ordering::Relaxed))) > WINDOW {
            if stalled.elapsed() > Duration::from_secs(10) {
                return Err(format!("receivers stalled for 10 s after {sent} events"));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let batch = (sent..sent + BATCH).map(|seq| payload(seq, t0, 0));
        let ids = sender
            .send_batch(TOPIC, batch)
            .await
            .map_err(|e| format!("send: {e}"))?;
        sent += ids.len() as u64;
    }
    let send_s = start.elapsed().as_secs_f64();
    let all = drain(
        rxs,
        sent,
        |x| x.count.load(Ordering::Relaxed),
        Duration::from_secs(10),
    )
    .await;
    let p1 = (out(sender), subs.iter().map(out).sum::<u64>());
    let per_event = |a: u64, b: u64, n: u64| round(b.saturating_sub(a) as f64 / n.max(1) as f64);
    let sender_dg = per_event(p0.0, p1.0, sent);
    let rx_dg = per_event(p0.1, p1.1, sent * rxs.len() as u64);
    let rates: Vec<f64> = rxs
        .iter()
        .map(|x| {
            let secs = (x.last_ns.load(Ordering::Relaxed).saturating_sub(start_ns)) as f64 / 1e9;
            x.count.load(Ordering::Relaxed) as f64 / secs.max(1e-9)
        })
        .collect();
    let lost: u64 = rxs
        .iter()
        .map(|x| sent.saturating_sub(x.count.load(Ordering::Relaxed)))
        .sum();
    let anomalies: u64 = rxs
        .iter()
        .map(|x| x.anomalies.load(Ordering::Relaxed))
        .sum();
    let s = Summary::of(&rates).ok_or("no receiver")?;
    let ratio = raw.map_or(0.0, |raw| s.median / raw.median.max(1e-9));
    let mut o = Map::new();
    o.insert("bench".into(), "events".into());
    s.put(&mut o, "per_s");
    o.insert("sent".into(), sent.into());
    o.insert("send_s".into(), round(send_s).into());
    o.insert("lost".into(), lost.into());
    o.insert("reordered".into(), anomalies.into());
    o.insert("payload_bytes".into(), PAYLOAD.into());
    o.insert("receivers".into(), rxs.len().into());
    o.insert("encrypted".into(), true.into());
    o.insert("ratio_to_raw".into(), round(ratio).into());
    o.insert("sender_datagrams_per_event".into(), sender_dg.into());
    o.insert("receiver_datagrams_per_delivery".into(), rx_dg.into());
    o.insert(
        "mode".into(),
        "in-process nodes, real UDP on 127.0.x.y".into(),
    );
    r.emit(
        Value::Object(o),
        format!(
            "events    1 -> 4 subscribers, {PAYLOAD} B, encrypted, reliable, deliveries per receiver: {}; \
             sent {sent}, lost {lost}, reordered {anomalies}; ratio to raw UDP {ratio:.2}; \
             datagrams sent per event {sender_dg} (sender), per delivery {rx_dg} (receivers)",
            s.text("/s", 0)
        ),
    );
    if !all || lost > 0 || anomalies > 0 {
        r.failures += 1;
        r.note("events", format!("lost {lost}, reordered {anomalies}"));
    }
    Ok(())
}

async fn latency(
    r: &mut Report,
    sender: &Espial,
    rxs: &[Arc<Rx>],
    t0: Instant,
    secs: u64,
) -> Result<(), String> {
    let total = LAT_RATE * secs;
    let start = tokio::time::Instant::now();
    for i in 0..total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / LAT_RATE);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        sender
            .send(TOPIC, payload(i, t0, 1))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let all = drain(
        rxs,
        total,
        |x| x.lat_count.load(Ordering::Relaxed),
        Duration::from_secs(10),
    )
    .await;
    let mut lat: Vec<f64> = rxs
        .iter()
        .flat_map(|x| x.lat.lock().map(|l| l.clone()).unwrap_or_default())
        .collect();
    lat.sort_by(f64::total_cmp);
    let lost = (total * rxs.len() as u64).saturating_sub(lat.len() as u64);
    let s = Summary::of(&lat).ok_or("no latency sample")?;
    let (p50, p99) = (quantile(&lat, 0.5), quantile(&lat, 0.99));
    let mut o = Map::new();
    o.insert("bench".into(), "latency".into());
    s.put(&mut o, "ms");
    o.insert("p50_ms".into(), round(p50).into());
    o.insert("p99_ms".into(), round(p99).into());
    o.insert("rate_per_s".into(), LAT_RATE.into());
    o.insert("lost".into(), lost.into());
    o.insert("encrypted".into(), true.into());
    r.emit(
        Value::Object(o),
        format!(
            "latency   one-way at {LAT_RATE}/s, encrypted: p50 {p50:.3} ms, p99 {p99:.3} ms ({}); lost {lost}",
            s.text("ms", 3)
        ),
    );
    if !all || lost > 0 {
        r.failures += 1;
        r.note("latency", format!("lost {lost}"));
    }
    Ok(())
}

/// Per-receiver datagram rates of a minimal 1 → 4 UDP sender (128-byte datagrams).
fn raw_udp(dur: Duration) -> std::io::Result<Vec<f64>> {
    let ip = |h: u8| Ipv4Addr::new(127, 0, RAW_NET, h);
    let mut socks = Vec::new();
    for h in 11..=14 {
        let s = UdpSocket::bind(SocketAddr::from((ip(h), 0)))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        socks.push(s);
    }
    let targets: Vec<SocketAddr> = socks
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let tx = UdpSocket::bind(SocketAddr::from((ip(10), 0)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let limit = dur + Duration::from_secs(5);
    let threads: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut buf = [0u8; 2048];
                let mut n = 0u64;
                while start.elapsed() < limit {
                    match s.recv(&mut buf) {
                        Ok(_) => n += 1,
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
                n
            })
        })
        .collect();
    let buf = [0x5au8; PAYLOAD];
    let start = Instant::now();
    while start.elapsed() < dur {
        for t in &targets {
            let _ = tx.send_to(&buf, t);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    Ok(threads
        .into_iter()
        .map(|t| t.join().unwrap_or(0) as f64 / secs)
        .collect())
}
