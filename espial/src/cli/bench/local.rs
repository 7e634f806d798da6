//! In-process nodes over real UDP sockets on 127.0.<net>.x (events and idle figures).

use espial::Espial;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// UDP port of in-process nodes (each group has its own 127.0.<net>.x addresses).
const PORT: u16 = 27_600;

/// Starts `n` nodes on 127.0.<net>.1..=n (LAN profile, a per-run pre-shared key, static
/// peers: the first three nodes). `event_buffer` sizes each node's event listeners.
pub(crate) async fn start(n: usize, net: u8, event_buffer: usize) -> Result<Vec<Espial>, String> {
    let addr = |h: usize| SocketAddr::from((Ipv4Addr::new(127, 0, net, h as u8), PORT));
    let seeds: Vec<String> = (1..=n.min(3)).map(|h| addr(h).to_string()).collect();
    let psk = psk();
    let mut nodes = Vec::with_capacity(n);
    for h in 1..=n {
        let node = Espial::builder()
            .name(format!("n{net}-{h}"))
            .bind(addr(h))
            .peers(seeds.iter().filter(|s| **s != addr(h).to_string()).cloned())
            .psk(psk.clone())
            .profile(espial::Config::lan())
            .event_buffer(event_buffer)
            .start()
            .await;
        match node {
            Ok(node) => nodes.push(node),
            Err(e) => {
                stop(&nodes);
                return Err(format!("node {h} of {n} could not start: {e}"));
            }
        }
    }
    Ok(nodes)
}

/// True when every node sees all `nodes.len()` members and they follow one master.
pub(crate) fn converged(nodes: &[Espial]) -> bool {
    let masters: HashSet<_> = nodes.iter().map(Espial::master_id).collect();
    masters.len() == 1
        && !masters.contains(&None)
        && nodes
            .iter()
            .all(|e| e.snapshot().members.len() == nodes.len())
}

/// Polls until [`converged`] (every 50 ms); the time it took, or `None` after `limit`.
pub(crate) async fn wait_converged(nodes: &[Espial], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if converged(nodes) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Stops every node at once (no graceful leave: the next group must not wait for it).
pub(crate) fn stop(nodes: &[Espial]) {
    for n in nodes {
        n.kill();
    }
}

/// A per-run 32-byte key (not secret: it only keeps runs apart).
pub(crate) fn psk() -> Vec<u8> {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut k = t.to_le_bytes().to_vec();
    k.extend_from_slice(b"espial-bench-key");
    k
}
