//! The `Discovery` trait: where a node finds addresses of possible peers.

use async_trait::async_trait;
use std::net::SocketAddr;

/// A source of peer addresses (multicast beacons, a static list, DNS, a cloud API, a file...).
///
/// The driver calls [`Discovery::next`] in a loop and feeds every address to the core, which
/// joins through it when it is not already a live member. Implementations decide their own
/// pacing (re-resolve periodically, back off); they must not busy-loop.
///
/// ```
/// use espial_core::Discovery;
/// use std::net::SocketAddr;
///
/// /// Reads one address per line from a file every few seconds.
/// struct FileDiscovery { path: std::path::PathBuf, first: bool }
///
/// #[async_trait::async_trait]
/// impl Discovery for FileDiscovery {
///     async fn next(&mut self) -> std::io::Result<Vec<SocketAddr>> {
///         if !std::mem::take(&mut self.first) {
///             // a real backend would sleep here, e.g. tokio::time::sleep(5 s)
///         }
///         let text = std::fs::read_to_string(&self.path)?;
///         Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
///     }
/// }
/// ```
#[async_trait]
pub trait Discovery: Send + 'static {
    /// Waits for and returns the next batch of candidate peer addresses.
    async fn next(&mut self) -> std::io::Result<Vec<SocketAddr>>;
    /// Called once with the node's own advertised address, so the backend can announce it
    /// (multicast beacons) or skip it (static lists).
    async fn announce(&mut self, _me: SocketAddr) -> std::io::Result<()> {
        Ok(())
    }
    /// Whether anyone on the network can make this backend return an address (open
    /// multicast beacons): the node then answers each announcement with at most one Hello
    /// from one member of the cluster ([`crate::Node::handle_discovered_unverified`]).
    /// `false` (default): addresses the operator configured or a trusted service returned.
    fn unverified(&self) -> bool {
        false
    }
}
