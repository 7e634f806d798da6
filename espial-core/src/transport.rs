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
    /// Receives one datagram if one is ready now, without waiting: `Ok(None)` when none is.
    /// The driver calls it after `recv_from` returns, to feed a burst of datagrams to the
    /// node before draining its outputs once. The default never has one ready.
    fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<Option<(usize, SocketAddr)>> {
        let _ = buf;
        Ok(None)
    }
    /// The local bound address.
    fn local_addr(&self) -> std::io::Result<SocketAddr>;
}
