//! Static-peer discovery: a fixed list of seed addresses or host names, re-resolved
//! periodically with backoff, for networks without multicast.

use async_trait::async_trait;
use espial_core::Discovery;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Port assumed for a peer given without one.
pub const DEFAULT_PEER_PORT: u16 = crate::multicast::DEFAULT_PORT;

/// Static seed list (implements [`Discovery`]).
///
/// Entries are `ip:port`, `[v6]:port`, `host:port` or a bare host/IP (port
/// [`DEFAULT_PEER_PORT`]). The first batch is returned at once; afterwards the list is
/// re-resolved after `min_interval`, doubling up to `max_interval` while nothing changes and
/// returning to `min_interval` when the resolved set changes (a peer moved or came back), so a
/// cluster heals after a peer restarts. The node's own advertised address is skipped.
///
/// ```
/// use espial_net::StaticPeers;
/// let p = StaticPeers::new(["10.0.0.5:27272", "db-1.internal"]);
/// assert_eq!(p.entries(), ["10.0.0.5:27272", "db-1.internal:27272"]);
/// ```
#[derive(Debug, Clone)]
pub struct StaticPeers {
    entries: Vec<String>,
    me: Option<SocketAddr>,
    min_interval: Duration,
    max_interval: Duration,
    current: Duration,
    first: bool,
    last: Vec<SocketAddr>,
}

impl StaticPeers {
    /// A seed list with the default pacing (1 s doubling to 30 s).
    pub fn new<I, S>(peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let entries = peers
            .into_iter()
            .map(|s| with_default_port(s.into().trim()))
            .filter(|s| !s.is_empty())
            .collect();
        StaticPeers {
            entries,
            me: None,
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
            current: Duration::from_secs(1),
            first: true,
            last: Vec::new(),
        }
    }

    /// Changes the re-resolution pacing (`min` doubling up to `max`).
    pub fn with_intervals(mut self, min: Duration, max: Duration) -> Self {
        self.min_interval = min.max(Duration::from_millis(10));
        self.max_interval = max.max(self.min_interval);
        self.current = self.min_interval;
        self
    }

    /// The entries as they will be resolved (with default ports added).
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    async fn resolve(&self) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for entry in &self.entries {
            if let Ok(a) = entry.parse::<SocketAddr>() {
                out.push(a);
                continue;
            }
            match tokio::net::lookup_host(entry.as_str()).await {
                Ok(addrs) => out.extend(addrs),
                Err(e) => tracing::warn!("cannot resolve peer {entry:?}: {e} (will retry)"),
            }
        }
        out.retain(|a| Some(*a) != self.me);
        out.sort();
        out.dedup();
        out
    }
}

fn with_default_port(s: &str) -> String {
    if s.is_empty() || s.parse::<SocketAddr>().is_ok() {
        return s.to_string();
    }
    if s.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{s}]:{DEFAULT_PEER_PORT}");
    }
    // `host:port` (a single colon followed by digits) keeps its port.
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':') && !port.is_empty() && port.parse::<u16>().is_ok() =>
        {
            s.to_string()
        }
        _ => format!("{s}:{DEFAULT_PEER_PORT}"),
    }
}

#[async_trait]
impl Discovery for StaticPeers {
    async fn announce(&mut self, me: SocketAddr) -> io::Result<()> {
        self.me = Some(me);
        Ok(())
    }

    async fn next(&mut self) -> io::Result<Vec<SocketAddr>> {
        if !std::mem::take(&mut self.first) {
            tokio::time::sleep(self.current).await;
        }
        let addrs = self.resolve().await;
        if addrs != self.last {
            self.current = self.min_interval;
            self.last = addrs.clone();
        } else {
            self.current = (self.current * 2).min(self.max_interval);
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports() {
        assert_eq!(with_default_port("1.2.3.4"), "1.2.3.4:27272");
        assert_eq!(with_default_port("1.2.3.4:9"), "1.2.3.4:9");
        assert_eq!(with_default_port("::1"), "[::1]:27272");
        assert_eq!(with_default_port("[::1]:5"), "[::1]:5");
        assert_eq!(with_default_port("host"), "host:27272");
        assert_eq!(with_default_port("host:80"), "host:80");
    }

    #[tokio::test(start_paused = true)]
    async fn literal_addresses_resolve_without_dns_and_back_off() {
        let mut p = StaticPeers::new(["127.0.0.1:1", "127.0.0.2:2", "127.0.0.1:1"])
            .with_intervals(Duration::from_millis(100), Duration::from_millis(400));
        p.announce("127.0.0.2:2".parse().unwrap()).await.unwrap();
        let t0 = tokio::time::Instant::now();
        let first = p.next().await.unwrap();
        assert_eq!(first, vec!["127.0.0.1:1".parse::<SocketAddr>().unwrap()]);
        assert_eq!(t0.elapsed(), Duration::ZERO, "first batch at once");
        p.next().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        p.next().await.unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(300),
            "backed off to 200 ms"
        );
        p.next().await.unwrap();
        p.next().await.unwrap();
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(1100),
            "capped at 400 ms"
        );
    }
}
