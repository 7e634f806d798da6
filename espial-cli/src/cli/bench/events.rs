//! Event figures: 1 sender → 4 subscriber processes, 128-byte payloads, encrypted (AES-128-GCM
//! sessions under a pre-shared key), reliable; beside a raw UDP 1 → 4 rate measured in the
//! same run by a minimal sender (a plain socket loop in this process).
//!
//! The sender is a node in this process; each subscriber is a copy of this binary
//! (`espial bench-node --topic`, see [`super::node_process`]) that counts what it receives and
//! answers `report` on its stdin, so nothing per event crosses a pipe. Every process binds
//! its own 127.0.<net>.x address. The sender sends in batches ([`Espial::send_batch`]) for
//! the window and waits 1 ms whenever the node's queues are full (backpressure), so the
//! figure is a sustained rate with nothing lost, not a burst into a queue.

use super::node_process::{payload, wall_ns};
use super::process_group::{self, field, reports, wait_for, NodeProcess};
use super::stats::{quantile, round, Summary};
use super::Report;
use espial::Espial;
use serde_json::{Map, Value};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NET: u8 = 190;
const RAW_NET: u8 = 191;
const PAYLOAD: usize = 128;
const TOPIC: &str = "bench";
/// Subscriber processes.
const SUBSCRIBERS: u8 = 4;
/// Events per `send_batch` in the throughput phase.
const BATCH: u64 = 256;
/// Paced rate of the latency phase.
const LAT_RATE: u64 = 10_000;

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
    // Every wait inside is bounded; this bounds the whole measurement too.
    let limit = Duration::from_secs(120);
    let res = tokio::time::timeout(limit, measure(r, dur, quick, raw_sum)).await;
    if let Err(e) = res.unwrap_or_else(|_| Err(format!("did not finish in {limit:?}"))) {
        r.failures += 1;
        r.note("events", e);
    }
}

fn addr(host: u8) -> SocketAddr {
    process_group::addr(NET, host)
}

async fn measure(
    r: &mut Report,
    dur: Duration,
    quick: bool,
    raw: Option<Summary>,
) -> Result<(), String> {
    let psk = process_group::psk();
    let seeds: Vec<SocketAddr> = (1..=3).map(addr).collect();
    let sender = Espial::builder()
        .name("sender")
        .bind(addr(1))
        .peers(seeds[1..].iter().map(ToString::to_string))
        .psk(psk.clone())
        .profile(espial::Config::lan())
        .start()
        .await
        .map_err(|e| format!("the sender node could not start: {e}"))?;
    let res = async {
        let mut subs =
            process_group::start_group(NET, 2, SUBSCRIBERS, &seeds, &psk, Some(TOPIC)).await?;
        // Converged: every subscriber sees 5 members and the sender's master, and the
        // sender knows the 4 subscriptions.
        let ready = Instant::now();
        loop {
            let reps = reports(&mut subs).await?;
            let master = sender.master_id().map(|m| m.to_string());
            let snap = sender.snapshot();
            let subscribed = snap
                .members
                .iter()
                .filter(|m| m.subscriptions.contains(TOPIC))
                .count();
            if master.is_some()
                && snap.members.len() == 5
                && subscribed == SUBSCRIBERS as usize
                && process_group::converged(&reps, 5, master.as_deref())
            {
                break;
            }
            if ready.elapsed() > Duration::from_secs(20) {
                return Err(
                    "the sender and 4 subscriber processes did not converge in 20 s".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        throughput(r, &sender, &mut subs, dur, raw).await?;
        latency(r, &sender, &mut subs, if quick { 1 } else { 5 }).await?;
        for s in &mut subs {
            s.quit().await;
        }
        Ok(())
    }
    .await;
    sender.kill();
    res
}

async fn throughput(
    r: &mut Report,
    sender: &Espial,
    subs: &mut [NodeProcess],
    dur: Duration,
    raw: Option<Summary>,
) -> Result<(), String> {
    let rx_out = |reps: &[Value]| reps.iter().map(|v| field(v, "packets_out")).sum::<u64>();
    let p0 = (
        sender.stats().core.packets_out,
        rx_out(&reports(subs).await?),
    );
    let start_ns = wall_ns();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut waits = 0u64;
    while start.elapsed() < dur {
        let batch = (sent..sent + BATCH).map(|seq| payload(seq, 0, PAYLOAD));
        match sender.send_batch(TOPIC, batch).await {
            Ok(ids) => sent += ids.len() as u64,
            Err(espial::Error::Send(espial::SendError::Backpressure(_))) => {
                waits += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(format!("send: {e}")),
        }
    }
    let send_s = start.elapsed().as_secs_f64();
    let (all, reps) = wait_for(subs, "count", sent, Duration::from_secs(10)).await?;
    let p1 = (sender.stats().core.packets_out, rx_out(&reps));
    let per_event = |a: u64, b: u64, n: u64| round(b.saturating_sub(a) as f64 / n.max(1) as f64);
    let sender_dg = per_event(p0.0, p1.0, sent);
    let rx_dg = per_event(p0.1, p1.1, sent * reps.len() as u64);
    let rates: Vec<f64> = reps
        .iter()
        .map(|v| {
            let secs = field(v, "last_ns").saturating_sub(start_ns) as f64 / 1e9;
            field(v, "count") as f64 / secs.max(1e-9)
        })
        .collect();
    let lost: u64 = reps
        .iter()
        .map(|v| sent.saturating_sub(field(v, "count")))
        .sum();
    let anomalies: u64 = reps.iter().map(|v| field(v, "anomalies")).sum();
    let lagged: u64 = reps.iter().map(|v| field(v, "lagged")).sum();
    let s = Summary::of(&rates).ok_or("no receiver")?;
    let ratio = raw.map_or(0.0, |raw| s.median / raw.median.max(1e-9));
    let mut o = Map::new();
    o.insert("bench".into(), "events".into());
    s.put(&mut o, "per_s");
    o.insert("sent".into(), sent.into());
    o.insert("send_s".into(), round(send_s).into());
    o.insert("lost".into(), lost.into());
    o.insert("reordered".into(), anomalies.into());
    o.insert("listener_lagged".into(), lagged.into());
    o.insert("backpressure_waits".into(), waits.into());
    o.insert("payload_bytes".into(), PAYLOAD.into());
    o.insert("receivers".into(), reps.len().into());
    o.insert("encrypted".into(), true.into());
    o.insert("ratio_to_raw".into(), round(ratio).into());
    o.insert("sender_datagrams_per_event".into(), sender_dg.into());
    o.insert("receiver_datagrams_per_delivery".into(), rx_dg.into());
    o.insert(
        "mode".into(),
        "sender node in the bench process, 4 subscriber processes, real UDP on 127.0.x.y".into(),
    );
    r.emit(
        Value::Object(o),
        format!(
            "events    1 -> 4 subscriber processes, {PAYLOAD} B, encrypted, reliable, deliveries per receiver: {}; \
             sent {sent}, lost {lost}, reordered {anomalies}; ratio to raw UDP {ratio:.2}; \
             datagrams sent per event {sender_dg} (sender), per delivery {rx_dg} (receivers); \
             {waits} backpressure waits of 1 ms",
            s.text("/s", 0)
        ),
    );
    if !all || lost > 0 || anomalies > 0 || lagged > 0 {
        r.failures += 1;
        r.note(
            "events",
            format!("lost {lost}, reordered {anomalies}, missed by a listener {lagged}"),
        );
    }
    Ok(())
}

async fn latency(
    r: &mut Report,
    sender: &Espial,
    subs: &mut [NodeProcess],
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
            .send(TOPIC, payload(i, 1, PAYLOAD))
            .await
            .map_err(|e| format!("send: {e}"))?;
    }
    let (all, _) = wait_for(subs, "lat_count", total, Duration::from_secs(10)).await?;
    let mut lat = Vec::new();
    for s in subs.iter_mut() {
        let v = s.ask("latencies").await?;
        let us = v["lat_us"].as_array().cloned().unwrap_or_default();
        lat.extend(us.iter().filter_map(Value::as_f64).map(|u| u / 1e3));
    }
    lat.sort_by(f64::total_cmp);
    let lost = (total * subs.len() as u64).saturating_sub(lat.len() as u64);
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
            "latency   one-way at {LAT_RATE}/s, encrypted, to 4 subscriber processes: p50 {p50:.3} ms, p99 {p99:.3} ms ({}); lost {lost}",
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
