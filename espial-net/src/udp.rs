//! The UDP transport: one socket per node, IPv4 or IPv6, with a bind address and a possibly
//! different advertised address.

use async_trait::async_trait;
use espial_core::Transport;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Default socket buffer size requested for both directions (the kernel may cap it, see
/// `net.core.rmem_max` / `wmem_max` on Linux).
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;

/// Socket options of a [`UdpTransport`].
///
/// ```
/// let opts = espial_net::UdpOptions { recv_buffer: Some(8 << 20), ..Default::default() };
/// assert_eq!(opts.send_buffer, Some(espial_net::udp::DEFAULT_SOCKET_BUFFER));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpOptions {
    /// Receive buffer size to request (`SO_RCVBUF`); `None` keeps the system default.
    pub recv_buffer: Option<usize>,
    /// Send buffer size to request (`SO_SNDBUF`); `None` keeps the system default.
    pub send_buffer: Option<usize>,
    /// For IPv6 binds: accept only IPv6 (`IPV6_V6ONLY`). Default `false` (dual stack where
    /// the system allows it).
    pub ipv6_only: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            ipv6_only: false,
        }
    }
}

/// A UDP socket implementing [`espial_core::Transport`].
///
/// The bind address is where the socket listens; the advertised address is what the node
/// tells other nodes to send to. They differ behind NAT, in containers, or when binding
/// `0.0.0.0`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use espial_net::UdpTransport;
/// let t = UdpTransport::bind("127.0.0.1:0".parse().unwrap())?;
/// println!("listening on {}", t.advertised_addr());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct UdpTransport {
    socket: UdpSocket,
    advertised: SocketAddr,
}

impl UdpTransport {
    /// Binds with the default [`UdpOptions`]. Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, &UdpOptions::default())
    }

    /// Binds with explicit options. Buffer sizes are best effort: a kernel that caps them
    /// is not an error (see [`UdpTransport::recv_buffer_size`]).
    pub fn bind_with(addr: SocketAddr, opts: &UdpOptions) -> io::Result<Self> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(opts.ipv6_only)?;
        }
        if let Some(n) = opts.recv_buffer {
            if let Err(e) = socket.set_recv_buffer_size(n) {
                tracing::debug!("SO_RCVBUF {n} refused: {e}");
            }
        }
        if let Some(n) = opts.send_buffer {
            if let Err(e) = socket.set_send_buffer_size(n) {
                tracing::debug!("SO_SNDBUF {n} refused: {e}");
            }
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind UDP {addr}: {e} (is the address local and the port free?)"),
            )
        })?;
        let socket = UdpSocket::from_std(socket.into())?;
        let advertised = socket.local_addr()?;
        Ok(UdpTransport { socket, advertised })
    }

    /// Sets the address advertised to other nodes. A port of 0 means "the bound port".
    pub fn with_advertised(mut self, addr: SocketAddr) -> Self {
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(self.advertised.port());
        }
        self.advertised = addr;
        self
    }

    /// The address other nodes should send to (the bound address unless overridden).
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised
    }

    /// The receive buffer size the kernel granted.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        socket2::SockRef::from(&self.socket).recv_buffer_size()
    }

    /// The send buffer size the kernel granted.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        socket2::SockRef::from(&self.socket).send_buffer_size()
    }

    /// The underlying tokio socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

#[async_trait]
impl Transport for UdpTransport {
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(data, to).await.map(|_| ())
    }

    /// Cancel-safe (tokio's `recv_from` is): the driver may drop this future in `select!`
    /// without losing a datagram.
    async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        match self.socket.try_recv_from(buf) {
            Ok(got) => Ok(Some(got)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}

/// The local IP address the system would use to reach `dest`, found by "connecting" an
/// unbound UDP socket: this consults the routing table and sends no packet.
pub fn route_source_ip(dest: SocketAddr) -> io::Result<std::net::IpAddr> {
    let any: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(dest)?;
    Ok(s.local_addr()?.ip())
}
