//! The `Transport` trait: how datagrams leave and enter a node.

use async_trait::async_trait;
use std::net::SocketAddr;

/// An unreliable datagram transport (UDP in `espial-net`, an in-memory network in tests).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Sends one datagram. Errors are reported but the protocol tolerates loss.
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> std::io::Result<()>;
    /// Receives one datagram into `buf`, returning its length and sender.
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)>;
    /// The local bound address.
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
}
