//! Idle cost: bytes/s sent and CPU per node with 5, 20 and 50 converged nodes, no events.
//!
//! The nodes run inside this process over real UDP sockets on 127.0.<net>.x (LAN profile,
//! encrypted sessions). Bytes are the datagram bytes each node's socket sent
//! (`stats().core.bytes_out`); CPU is this process's user + system time (from
//! `/proc/self/stat`, 100 ticks/s) over the window divided by the number of nodes, in % of
//! one core.

use super::local;
use super::stats::{round, Summary};
use super::Report;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [5, 20, 50];

pub(crate) async fn run(r: &mut Report, quick: bool) {
    let window = Duration::from_secs(if quick { 2 } else { 10 });
    let settle = Duration::from_secs(if quick { 1 } else { 3 });
    let mut means = Vec::new();
    for (k, n) in SIZES.into_iter().enumerate() {
        let net = 180 + k as u8;
        let nodes = match local::start(n, net, 1024).await {
            Ok(nodes) => nodes,
            Err(e) => {
                r.failures += 1;
                r.note("idle", e);
                continue;
            }
        };
        match measure(r, &nodes, window, settle).await {
            Ok(mean) => means.push((n, mean)),
            Err(e) => {
                r.failures += 1;
                r.note("idle", format!("{n} nodes: {e}"));
            }
        }
        local::stop(&nodes);
    }
    if let (Some((a, first)), Some((b, last))) = (means.first(), means.last()) {
        if a != b && *first > 0.0 {
            let g = last / first;
            let mut o = Map::new();
            o.insert("bench".into(), "idle_growth".into());
            o.insert("from_nodes".into(), (*a).into());
            o.insert("to_nodes".into(), (*b).into());
            o.insert("ratio".into(), round(g).into());
            r.emit(
                Value::Object(o),
                format!("idle      mean bytes/s per node grows {g:.2}x from {a} to {b} nodes"),
            );
        }
    }
}

/// Returns the mean bytes/s per node.
async fn measure(
    r: &mut Report,
    nodes: &[espial::Espial],
    window: Duration,
    settle: Duration,
) -> Result<f64, String> {
    let n = nodes.len();
    let limit = Duration::from_secs(60);
    let took = local::wait_converged(nodes, limit)
        .await
        .ok_or("did not converge in 60 s")?;
    tokio::time::sleep(settle).await;
    let b0: Vec<u64> = nodes.iter().map(|e| e.stats().core.bytes_out).collect();
    let c0 = cpu_secs();
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    let c1 = cpu_secs();
    let b1: Vec<u64> = nodes.iter().map(|e| e.stats().core.bytes_out).collect();
    let still = local::converged(nodes);
    let rates: Vec<f64> = b0
        .iter()
        .zip(&b1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / secs)
        .collect();
    let s = Summary::of(&rates).ok_or("no node")?;
    // Is the node that sent the most the master (it heartbeats every member)?
    let top = (0..n).max_by(|a, b| rates[*a].total_cmp(&rates[*b]));
    let top_is_master = top.is_some_and(|i| nodes[i].is_master());
    let cpu = match (c0, c1) {
        (Some(a), Some(b)) => (b - a) / secs / n as f64 * 100.0,
        _ => f64::NAN,
    };
    let mut o = Map::new();
    o.insert("bench".into(), "idle".into());
    o.insert("nodes".into(), n.into());
    s.put(&mut o, "bytes_per_s");
    o.insert("mean_bytes_per_s".into(), round(s.mean).into());
    o.insert("cpu_percent_per_node".into(), round(cpu).into());
    o.insert("seconds".into(), round(secs).into());
    o.insert("converge_ms".into(), (took.as_millis() as u64).into());
    o.insert("converged_at_end".into(), still.into());
    o.insert("max_node_is_master".into(), top_is_master.into());
    o.insert(
        "mode".into(),
        "in-process nodes, real UDP on 127.0.x.y".into(),
    );
    r.emit(
        Value::Object(o),
        format!(
            "idle      {n:>2} nodes: bytes/s sent per node mean {:.0}, {} (trials = nodes); CPU {cpu:.2} % of a core per node; converged in {} ms; busiest node is {}the master{}",
            s.mean,
            s.text("B/s", 0),
            took.as_millis(),
            if top_is_master { "" } else { "not " },
            if still { "" } else { "; NOT converged at the end" }
        ),
    );
    if !still {
        r.failures += 1;
    }
    Ok(s.mean)
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, 100 ticks/s).
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: field 3 is f[0]; utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
