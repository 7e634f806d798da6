//! Idle cost: bytes/s sent and CPU per node with 5, 20 and 50 converged nodes, no events.
//!
//! Every node is its own process (`espial bench-node`, LAN profile, encrypted sessions,
//! static seeds: the first three) on 127.0.<net>.x. Bytes are the datagram bytes each node
//! sent (its `stats().core.bytes_out`, read through `report`); CPU is each process's user +
//! system time (`/proc/<pid>/stat`, 100 ticks/s) over the window, in % of one core.

use super::process_group::{self, field, reports, NodeProcess};
use super::stats::{round, Summary};
use super::Report;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SIZES: [u8; 3] = [5, 20, 50];

pub(crate) async fn run(r: &mut Report, quick: bool) {
    let window = Duration::from_secs(if quick { 2 } else { 10 });
    let settle = Duration::from_secs(if quick { 1 } else { 3 });
    let mut means = Vec::new();
    for (k, n) in SIZES.into_iter().enumerate() {
        let net = 180 + k as u8;
        let seeds: Vec<SocketAddr> = (1..=3).map(|h| process_group::addr(net, h)).collect();
        let psk = process_group::psk();
        let started = Instant::now();
        let res = match process_group::start_group(net, 1, n, &seeds, &psk, None).await {
            Ok(mut procs) => {
                let res = measure(r, &mut procs, started, window, settle).await;
                for p in &mut procs {
                    p.quit().await;
                }
                res
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(mean) => means.push((n, mean)),
            Err(e) => {
                r.failures += 1;
                r.note("idle", format!("{n} nodes: {e}"));
            }
        }
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

/// Waits (bounded) until every process sees all `n` members and one master.
async fn converge(procs: &mut [NodeProcess], limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    let n = procs.len() as u64;
    while start.elapsed() < limit {
        if process_group::converged(&reports(procs).await?, n, None) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("did not converge in {limit:?}"))
}

/// Returns the mean bytes/s per node.
async fn measure(
    r: &mut Report,
    procs: &mut [NodeProcess],
    started: Instant,
    window: Duration,
    settle: Duration,
) -> Result<f64, String> {
    let n = procs.len();
    converge(procs, Duration::from_secs(60)).await?;
    let took = started.elapsed();
    tokio::time::sleep(settle).await;
    let b0: Vec<u64> = reports(procs)
        .await?
        .iter()
        .map(|v| field(v, "bytes_out"))
        .collect();
    let c0: Vec<Option<f64>> = procs.iter().map(NodeProcess::cpu_secs).collect();
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t.elapsed().as_secs_f64();
    let c1: Vec<Option<f64>> = procs.iter().map(NodeProcess::cpu_secs).collect();
    let reps = reports(procs).await?;
    let still = process_group::converged(&reps, n as u64, None);
    let rates: Vec<f64> = b0
        .iter()
        .zip(&reps)
        .map(|(a, v)| field(v, "bytes_out").saturating_sub(*a) as f64 / secs)
        .collect();
    let s = Summary::of(&rates).ok_or("no node")?;
    // Is the node that sent the most the master (it heartbeats every member)?
    let top = (0..n).max_by(|a, b| rates[*a].total_cmp(&rates[*b]));
    let top_is_master = top.is_some_and(|i| reps[i]["is_master"] == true);
    let cpu: Vec<f64> = c0
        .iter()
        .zip(&c1)
        .filter_map(|(a, b)| Some((b.as_ref()? - a.as_ref()?) / secs * 100.0))
        .collect();
    let cpu_mean = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
    let cpu_max = cpu.iter().copied().fold(0.0, f64::max);
    let mut o = Map::new();
    o.insert("bench".into(), "idle".into());
    o.insert("nodes".into(), n.into());
    s.put(&mut o, "bytes_per_s");
    o.insert("mean_bytes_per_s".into(), round(s.mean).into());
    o.insert("cpu_percent_per_node".into(), round(cpu_mean).into());
    o.insert("cpu_percent_max_node".into(), round(cpu_max).into());
    o.insert("seconds".into(), round(secs).into());
    o.insert("converge_ms".into(), (took.as_millis() as u64).into());
    o.insert("converged_at_end".into(), still.into());
    o.insert("max_node_is_master".into(), top_is_master.into());
    o.insert(
        "mode".into(),
        "one process per node, real UDP on 127.0.x.y".into(),
    );
    r.emit(
        Value::Object(o),
        format!(
            "idle      {n:>2} node processes: bytes/s sent per node mean {:.0}, {} (trials = nodes); CPU {cpu_mean:.2} % of a core per node (max {cpu_max:.2}); started and converged in {} ms; busiest node is {}the master{}",
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
