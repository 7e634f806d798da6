//! One node process of `espial bench` (`espial bench-node`, hidden): a node that, with
//! `--topic`, joins the bench topic and counts what it receives, so the event figures measure
//! espial across real process boundaries rather than JSON rendering on a pipe; without it, an
//! idle member for the idle figures.
//!
//! Protocol on its pipes, one line each way:
//! - it prints `{"ready": true, "id": ..}` once the node runs (and joined the topic);
//! - `report` → `{"count", "anomalies", "last_ns", "lat_count", "members", "master",
//!   "is_master", "packets_out", "bytes_out", "lagged"}`: throughput-phase deliveries, how
//!   many arrived out of order or twice, the wall-clock time (ns since the Unix epoch) of the
//!   last one, latency-phase deliveries, the members it sees (itself included), the master it
//!   follows and whether that is itself, datagrams and bytes its node sent, events its
//!   listener missed;
//! - `latencies` → `{"lat_us": [..]}`: every latency-phase one-way latency, µs;
//! - `quit` or end of input: the process ends (without a graceful leave: the bench is over).
//!
//! Payloads (built by [`payload`]): sequence number (8 bytes LE), send time in ns since the
//! Unix epoch (8 bytes LE), phase (1 byte: 0 throughput, 1 latency), padding.

use clap::Args;
use espial::{Espial, Event};
use futures::StreamExt;
use serde_json::json;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Arguments of `espial bench-node` (started by `espial bench`).
#[derive(Args, Debug)]
pub(crate) struct NodeArgs {
    /// Address to bind (127.0.x.y:port).
    #[arg(long)]
    bind: SocketAddr,
    /// Static peers.
    #[arg(long = "peer")]
    peers: Vec<SocketAddr>,
    /// The cluster's pre-shared key, hex.
    #[arg(long)]
    psk_hex: String,
    /// Topic to join and count.
    #[arg(long)]
    topic: Option<String>,
    /// Node name.
    #[arg(long)]
    name: String,
}

/// Wall-clock time in ns since the Unix epoch: one clock for every process of the run.
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A bench payload of `len` bytes (at least 17).
pub(crate) fn payload(seq: u64, phase: u8, len: usize) -> Vec<u8> {
    let mut p = vec![0x5a; len.max(17)];
    p[0..8].copy_from_slice(&seq.to_le_bytes());
    p[8..16].copy_from_slice(&wall_ns().to_le_bytes());
    p[16] = phase;
    p
}

/// What the listener saw.
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    anomalies: AtomicU64,
    last_ns: AtomicU64,
    lat_count: AtomicU64,
    lat_us: Mutex<Vec<f64>>,
    lagged: AtomicU64,
}

/// Runs the node until `quit` or end of input.
pub(crate) async fn run(args: NodeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("espial bench-node: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: NodeArgs) -> Result<(), String> {
    let psk = hex_decode(&args.psk_hex).ok_or("--psk-hex is not hex")?;
    let node = Espial::builder()
        .name(args.name)
        .bind(args.bind)
        .peers(args.peers.iter().map(ToString::to_string))
        .psk(psk)
        .profile(espial::Config::lan())
        .event_buffer(1 << 16)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let seen = Arc::new(Seen::default());
    let listener = match args.topic {
        Some(topic) => {
            node.join(&topic).await.map_err(|e| e.to_string())?;
            Some(tokio::spawn(listen(node.events(), topic, seen.clone())))
        }
        None => None,
    };
    super::super::out(json!({"ready": true, "id": node.id().to_string()}));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "report" => {
                let snap = node.snapshot();
                super::super::out(json!({
                    "count": seen.count.load(Ordering::Relaxed),
                    "anomalies": seen.anomalies.load(Ordering::Relaxed),
                    "last_ns": seen.last_ns.load(Ordering::Relaxed),
                    "lat_count": seen.lat_count.load(Ordering::Relaxed),
                    "members": snap.members.len(),
                    "master": snap.master.map(|m| m.to_string()),
                    "is_master": snap.master == Some(snap.me.id),
                    "packets_out": snap.stats.packets_out,
                    "bytes_out": snap.stats.bytes_out,
                    "lagged": seen.lagged.load(Ordering::Relaxed),
                }));
            }
            "latencies" => {
                let lat = seen.lat_us.lock().map(|l| l.clone()).unwrap_or_default();
                super::super::out(json!({ "lat_us": lat }));
            }
            "quit" => break,
            _ => {}
        }
    }
    if let Some(l) = listener {
        l.abort();
    }
    node.kill();
    // Let the abort land before the runtime goes (nothing else to wait for).
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

async fn listen(mut events: espial::EventStream, topic: String, seen: Arc<Seen>) {
    let mut next = 0u64;
    while let Some(e) = events.next().await {
        seen.lagged.store(events.lagged(), Ordering::Relaxed);
        let Event::Custom(c) = e else { continue };
        if c.name != topic || c.data.len() < 17 {
            continue;
        }
        let now = wall_ns();
        let seq = u64::from_le_bytes(c.data[0..8].try_into().unwrap_or_default());
        let sent = u64::from_le_bytes(c.data[8..16].try_into().unwrap_or_default());
        if c.data[16] == 0 {
            if seq != next {
                seen.anomalies.fetch_add(1, Ordering::Relaxed);
            }
            next = seq + 1;
            seen.count.fetch_add(1, Ordering::Relaxed);
            seen.last_ns.store(now, Ordering::Relaxed);
        } else {
            if let Ok(mut l) = seen.lat_us.lock() {
                l.push(now.saturating_sub(sent) as f64 / 1e3);
            }
            seen.lat_count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
