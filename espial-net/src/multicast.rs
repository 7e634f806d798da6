//! Multicast discovery: every node sends small beacons to a group; nodes that hear a beacon
//! of their own cluster feed its address to the core, which joins through it.
//!
//! Beacons are `espial_core::wire` datagrams of kind `Beacon`. With a cluster pre-shared key
//! they carry a MAC (`Cipher::beacon_mac`) over the complete beacon datagram encoded with
//! `mac: None`; beacons with a missing or wrong MAC, of another cluster, or of another
//! protocol version are ignored and counted.
//!
//! A beacon may only name its sender's own IP: unless
//! [`MulticastConfig::trust_beacon_addr`] is set, a beacon whose advertised IP differs from
//! the datagram's source IP is ignored (counted), so forged beacons cannot point a whole
//! cluster's handshakes at a victim. Beacons are sent from a socket bound to the advertised
//! IP so that the source matches it.

use async_trait::async_trait;
use espial_core::wire::{decode_body, encode_clear, split_header, Beacon, Kind};
use espial_core::{Cipher, Discovery, NodeId};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

/// Default IPv4 group: in 239.192.0.0/14, the organization-local scope of the
/// administratively scoped range 239.0.0.0/8 (RFC 2365), so routers do not forward it off-site.
pub const DEFAULT_GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 27, 27);
/// Default IPv6 group: site-local scope (`ff15::/16`).
pub const DEFAULT_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xe5, 0x1a);
/// Default multicast port.
pub const DEFAULT_PORT: u16 = 27272;
/// Default cluster name carried in beacons.
pub const DEFAULT_CLUSTER: &str = "espial";
/// Largest beacon accepted, in bytes.
const MAX_BEACON: usize = 1024;
/// Smallest beacon accepted: beacons are zero-padded to the size of a Hello, so the one
/// Hello a beacon may cause is no larger than the beacon (no amplification; see
/// `espial_core::node::beacons`).
pub const BEACON_MIN_LEN: usize = espial_core::wire::HELLO_MIN_LEN;

/// Which interface multicast is sent and received on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MulticastInterface {
    /// Let the system choose (the interface of the route to the group).
    Default,
    /// The IPv4 interface with this address (e.g. `127.0.0.1` for `lo`).
    V4(Ipv4Addr),
    /// The IPv6 interface with this index.
    V6Index(u32),
}

impl std::fmt::Display for MulticastInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MulticastInterface::Default => f.write_str("the default interface"),
            MulticastInterface::V4(a) => write!(f, "{a}"),
            MulticastInterface::V6Index(i) => write!(f, "interface #{i}"),
        }
    }
}

/// Settings of [`MulticastDiscovery`].
///
/// ```
/// use espial_net::MulticastConfig;
/// let c = MulticastConfig::default();
/// assert_eq!(c.port, 27272);
/// assert_eq!(c.ttl, 1);
/// assert!(matches!(c.group, std::net::IpAddr::V4(g) if g.octets()[0] == 239));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MulticastConfig {
    /// Multicast group (IPv4 or IPv6).
    pub group: IpAddr,
    /// UDP port every node of the cluster shares (`SO_REUSEADDR`/`SO_REUSEPORT`).
    pub port: u16,
    /// Interface to use.
    pub interface: MulticastInterface,
    /// Multicast TTL / hop limit (1 = the local link only).
    pub ttl: u32,
    /// Cluster name: beacons of other clusters are ignored.
    pub cluster: String,
    /// Beacon period once started (the first beacons go out faster).
    pub interval: Duration,
    /// After this long without hearing any other node, log a diagnostic.
    pub silence_warning: Duration,
    /// Accept beacons whose advertised address is not their source IP. Off by default: a
    /// beacon may only name its sender's own IP. Turn on only when nodes advertise an
    /// address that differs from the one their beacons come from (NAT, an advertised
    /// external address) and the multicast network is trusted; with a cluster PSK beacons
    /// are authenticated anyway.
    pub trust_beacon_addr: bool,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        MulticastConfig {
            group: IpAddr::V4(DEFAULT_GROUP_V4),
            port: DEFAULT_PORT,
            interface: MulticastInterface::Default,
            ttl: 1,
            cluster: DEFAULT_CLUSTER.to_string(),
            interval: Duration::from_secs(1),
            silence_warning: Duration::from_secs(10),
            trust_beacon_addr: false,
        }
    }
}

impl MulticastConfig {
    /// The default settings with another group and port.
    pub fn with_group(group: IpAddr, port: u16) -> Self {
        MulticastConfig {
            group,
            port,
            ..Default::default()
        }
    }
}

/// Counters of a [`MulticastDiscovery`], shared so they can be read while it runs.
#[derive(Debug, Default)]
pub struct BeaconCounters {
    /// Beacons sent.
    pub sent: AtomicU64,
    /// Valid beacons received from other nodes of the cluster.
    pub received: AtomicU64,
    /// Beacons ignored: undecodable, other cluster, bad or missing MAC, or naming an IP
    /// other than their source's.
    pub ignored: AtomicU64,
}

/// Multicast discovery backend (implements [`Discovery`]).
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use espial_net::{MulticastConfig, MulticastDiscovery};
/// let d = MulticastDiscovery::new(MulticastConfig::default(), espial_core::NodeId(7), None)?;
/// # let _ = d; Ok(()) }
/// ```
pub struct MulticastDiscovery {
    cfg: MulticastConfig,
    socket: UdpSocket,
    /// Socket bound to the advertised IP that beacons are sent from (so their source IP
    /// is the advertised one); the group socket when that bind is not possible.
    send_socket: Option<UdpSocket>,
    id: NodeId,
    auth: Option<Box<dyn Cipher>>,
    me: Option<SocketAddr>,
    next_beacon: Instant,
    beacons_sent: u32,
    started: Instant,
    heard_anyone: bool,
    warned: bool,
    last_yield: HashMap<SocketAddr, Instant>,
    counters: Arc<BeaconCounters>,
}

impl MulticastDiscovery {
    /// Opens the multicast socket and joins the group. `id` is the local node's id (its own
    /// beacons are skipped); `auth` is a cipher holding the cluster pre-shared key (beacons
    /// are then MAC'd and verified), `None` for open clusters. Must be called inside a tokio
    /// runtime.
    pub fn new(
        cfg: MulticastConfig,
        id: NodeId,
        auth: Option<Box<dyn Cipher>>,
    ) -> io::Result<Self> {
        let socket = open_socket(&cfg)?;
        let now = Instant::now();
        Ok(MulticastDiscovery {
            cfg,
            socket,
            send_socket: None,
            id,
            auth,
            me: None,
            next_beacon: now,
            beacons_sent: 0,
            started: now,
            heard_anyone: false,
            warned: false,
            last_yield: HashMap::new(),
            counters: Arc::default(),
        })
    }

    /// Shared counters (sent, received, ignored beacons).
    pub fn counters(&self) -> Arc<BeaconCounters> {
        self.counters.clone()
    }

    fn beacon_bytes(&self, me: SocketAddr) -> Vec<u8> {
        encode_beacon(&self.cfg.cluster, self.id, me, self.auth.as_deref())
    }

    async fn send_beacon(&mut self) {
        let Some(me) = self.me else { return };
        let data = self.beacon_bytes(me);
        let dest = SocketAddr::new(self.cfg.group, self.cfg.port);
        let socket = self.send_socket.as_ref().unwrap_or(&self.socket);
        match socket.send_to(&data, dest).await {
            Ok(_) => {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("multicast beacon to {dest} failed: {e}"),
        }
        self.beacons_sent = self.beacons_sent.saturating_add(1);
        // Start fast (0.1 s, 0.2 s, 0.4 s ...) then settle on the configured period.
        let fast = Duration::from_millis(100) * (1u32 << self.beacons_sent.min(8));
        self.next_beacon = Instant::now() + fast.min(self.cfg.interval);
    }

    fn check(&self, data: &[u8]) -> Option<(NodeId, SocketAddr)> {
        check_beacon(data, &self.cfg.cluster, self.auth.as_deref())
    }

    fn warn_if_silent(&mut self) {
        if !self.heard_anyone && !self.warned && self.started.elapsed() >= self.cfg.silence_warning
        {
            self.warned = true;
            tracing::warn!(
                "no multicast replies on {} after {} s: is multicast blocked? use static peers",
                self.cfg.interface,
                self.cfg.silence_warning.as_secs()
            );
        }
    }
}

#[async_trait]
impl Discovery for MulticastDiscovery {
    /// Beacons of an open cluster (no pre-shared key) can be forged by anyone on the link;
    /// with a key they carry a MAC and only members can make them.
    fn unverified(&self) -> bool {
        self.auth
            .as_ref()
            .is_none_or(|a| a.beacon_mac(&[]).is_none())
    }

    async fn announce(&mut self, me: SocketAddr) -> io::Result<()> {
        self.me = Some(me);
        if self.send_socket.is_none() {
            self.send_socket = open_send_socket(&self.cfg, me.ip())
                .map_err(|e| tracing::debug!("beacons go out from the group socket: {e}"))
                .ok();
        }
        self.send_beacon().await;
        Ok(())
    }

    async fn next(&mut self) -> io::Result<Vec<SocketAddr>> {
        let mut buf = vec![0u8; MAX_BEACON + 1];
        let warn_at = self.started + self.cfg.silence_warning;
        loop {
            let wake = if self.warned || self.heard_anyone {
                self.next_beacon
            } else {
                self.next_beacon.min(warn_at)
            };
            tokio::select! {
                _ = sleep_until(wake) => {
                    if Instant::now() >= self.next_beacon {
                        self.send_beacon().await;
                    }
                    self.warn_if_silent();
                }
                res = self.socket.recv_from(&mut buf) => {
                    let (n, src) = match res {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::debug!("multicast receive failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some((id, addr)) = self.check(&buf[..n]) else {
                        self.counters.ignored.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    if id == self.id || Some(addr) == self.me {
                        continue;
                    }
                    if !self.cfg.trust_beacon_addr && !same_ip(addr.ip(), src.ip()) {
                        // A beacon may only name its sender's own IP.
                        self.counters.ignored.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    self.heard_anyone = true;
                    let now = Instant::now();
                    let new = !self.last_yield.contains_key(&addr);
                    if new {
                        // Answer a newcomer at once so it finds us without waiting a period.
                        self.next_beacon = self.next_beacon.min(now + Duration::from_millis(20));
                    }
                    let due = self
                        .last_yield
                        .get(&addr)
                        .map_or(true, |t| now.duration_since(*t) >= Duration::from_secs(2));
                    if due {
                        if self.last_yield.len() >= 4096 {
                            let horizon = Duration::from_secs(60);
                            self.last_yield.retain(|_, t| now.duration_since(*t) < horizon);
                            if self.last_yield.len() >= 4096 {
                                self.last_yield.clear();
                            }
                        }
                        self.last_yield.insert(addr, now);
                        return Ok(vec![addr]);
                    }
                }
            }
        }
    }
}

/// Whether two IPs are the same (an IPv4-mapped IPv6 address equals its IPv4 address).
pub fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A socket bound to `ip` (port 0) that sends to the group on the configured interface.
fn open_send_socket(cfg: &MulticastConfig, ip: IpAddr) -> io::Result<UdpSocket> {
    if ip.is_unspecified() || ip.is_ipv4() != cfg.group.is_ipv4() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("advertised IP {ip} cannot send to {}", cfg.group),
        ));
    }
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    match cfg.interface {
        MulticastInterface::V4(a) if ip.is_ipv4() => socket.set_multicast_if_v4(&a)?,
        MulticastInterface::V6Index(i) if ip.is_ipv6() => socket.set_multicast_if_v6(i)?,
        _ => {}
    }
    if ip.is_ipv4() {
        socket.set_multicast_ttl_v4(cfg.ttl)?;
        socket.set_multicast_loop_v4(true)?;
    } else {
        socket.set_multicast_hops_v6(cfg.ttl)?;
        socket.set_multicast_loop_v6(true)?;
    }
    UdpSocket::from_std(socket.into())
}

fn open_socket(cfg: &MulticastConfig) -> io::Result<UdpSocket> {
    let explain = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!(
                "multicast discovery on {}:{}: {what}: {e} (is multicast enabled on {}? \
                 otherwise use static peers)",
                cfg.group, cfg.port, cfg.interface
            ),
        )
    };
    if !cfg.group.is_multicast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a multicast address (use e.g. 239.192.27.27)",
                cfg.group
            ),
        ));
    }
    let domain = if cfg.group.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    match cfg.group {
        IpAddr::V4(group) => {
            let iface = match cfg.interface {
                MulticastInterface::V4(a) => a,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            // On Linux binding the group address restricts the socket to that group's traffic.
            let bind_ip = if cfg!(target_os = "linux") {
                group
            } else {
                Ipv4Addr::UNSPECIFIED
            };
            socket
                .bind(&SocketAddr::new(bind_ip.into(), cfg.port).into())
                .map_err(|e| explain("bind", e))?;
            socket
                .join_multicast_v4(&group, &iface)
                .map_err(|e| explain("join group", e))?;
            if iface != Ipv4Addr::UNSPECIFIED {
                socket
                    .set_multicast_if_v4(&iface)
                    .map_err(|e| explain("select interface", e))?;
            }
            socket.set_multicast_ttl_v4(cfg.ttl)?;
            socket.set_multicast_loop_v4(true)?;
        }
        IpAddr::V6(group) => {
            let index = match cfg.interface {
                MulticastInterface::V6Index(i) => i,
                _ => 0,
            };
            socket.set_only_v6(true)?;
            socket
                .bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), cfg.port).into())
                .map_err(|e| explain("bind", e))?;
            socket
                .join_multicast_v6(&group, index)
                .map_err(|e| explain("join group", e))?;
            if index != 0 {
                socket.set_multicast_if_v6(index)?;
            }
            socket.set_multicast_hops_v6(cfg.ttl)?;
            socket.set_multicast_loop_v6(true)?;
        }
    }
    UdpSocket::from_std(socket.into())
}

/// Encodes a complete beacon datagram, MAC'd when `auth` holds a pre-shared key, zero-padded
/// to [`BEACON_MIN_LEN`] bytes (the padding is not covered by the MAC).
pub fn encode_beacon(
    cluster: &str,
    id: NodeId,
    addr: SocketAddr,
    auth: Option<&dyn Cipher>,
) -> Vec<u8> {
    let mut beacon = Beacon {
        cluster: cluster.to_string(),
        id,
        addr,
        mac: None,
    };
    if let Some(auth) = auth {
        let unsigned = encode_clear(Kind::Beacon, &beacon);
        beacon.mac = auth.beacon_mac(&unsigned);
    }
    let mut datagram = encode_clear(Kind::Beacon, &beacon);
    if datagram.len() < BEACON_MIN_LEN {
        datagram.resize(BEACON_MIN_LEN, 0);
    }
    datagram
}

/// Decodes and checks a beacon datagram: right kind and version, same cluster, and (when
/// `auth` holds a pre-shared key) a valid MAC. Returns the sender's id and address.
/// Never panics on any input.
pub fn check_beacon(
    data: &[u8],
    cluster: &str,
    auth: Option<&dyn Cipher>,
) -> Option<(NodeId, SocketAddr)> {
    if data.len() < BEACON_MIN_LEN {
        return None;
    }
    let (kind, body) = split_header(data, MAX_BEACON).ok()?;
    if kind != Kind::Beacon {
        return None;
    }
    let beacon: Beacon = decode_body(body).ok()?;
    if beacon.cluster != cluster {
        return None;
    }
    if let Some(auth) = auth {
        let mac = beacon.mac;
        let unsigned = encode_clear(
            Kind::Beacon,
            &Beacon {
                mac: None,
                ..beacon.clone()
            },
        );
        // A cipher without a PSK returns no MAC and accepts every beacon.
        let expected = auth.beacon_mac(&unsigned);
        if expected.is_some() && (mac.is_none() || !auth.verify_beacon(&unsigned, mac.as_ref())) {
            return None;
        }
    }
    Some((beacon.id, beacon.addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use espial_core::cipher::KeyExchange;

    fn test_identity() -> espial_core::PlaintextTestCipher {
        espial_core::PlaintextTestCipher::for_node(NodeId(1))
    }

    /// A stand-in "PSK" cipher: the MAC is a keyed checksum (tests only).
    struct MacOnly(u8);
    impl Cipher for MacOnly {
        fn suite(&self) -> &'static str {
            "mac-only-test"
        }
        fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
            test_identity().start_exchange()
        }
        fn identity_public_key(&self) -> Vec<u8> {
            test_identity().identity_public_key()
        }
        fn node_id_for(&self, pk: &[u8]) -> Option<NodeId> {
            test_identity().node_id_for(pk)
        }
        fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
            test_identity().sign(domain, msg)
        }
        fn verify(
            &self,
            pk: &[u8],
            domain: &[u8],
            msg: &[u8],
            sig: &[u8],
        ) -> Result<(), espial_core::cipher::CryptoError> {
            test_identity().verify(pk, domain, msg, sig)
        }
        fn beacon_mac(&self, beacon: &[u8]) -> Option<[u8; 16]> {
            let mut m = [self.0; 16];
            for (i, b) in beacon.iter().enumerate() {
                m[i % 16] = m[i % 16].wrapping_mul(31).wrapping_add(*b);
            }
            Some(m)
        }
        fn verify_beacon(&self, beacon: &[u8], mac: Option<&[u8; 16]>) -> bool {
            mac == self.beacon_mac(beacon).as_ref()
        }
    }

    fn addr() -> SocketAddr {
        "127.0.0.1:4000".parse().unwrap()
    }

    #[test]
    fn open_cluster_beacons() {
        let b = encode_beacon("c", NodeId(1), addr(), None);
        assert_eq!(check_beacon(&b, "c", None), Some((NodeId(1), addr())));
        assert_eq!(check_beacon(&b, "other", None), None);
        assert_eq!(check_beacon(b"garbage", "c", None), None);
        assert_eq!(check_beacon(&[], "c", None), None);
        assert_eq!(check_beacon(&b[..b.len() - 1], "c", None), None);
    }

    #[test]
    fn psk_beacons_need_the_right_mac() {
        let k1 = MacOnly(1);
        let k2 = MacOnly(2);
        let signed = encode_beacon("c", NodeId(1), addr(), Some(&k1));
        assert_eq!(
            check_beacon(&signed, "c", Some(&k1)),
            Some((NodeId(1), addr()))
        );
        assert_eq!(check_beacon(&signed, "c", Some(&k2)), None, "wrong key");
        let unsigned = encode_beacon("c", NodeId(1), addr(), None);
        assert_eq!(check_beacon(&unsigned, "c", Some(&k1)), None, "missing MAC");
        // Tampering with the advertised address breaks the MAC.
        let forged = encode_beacon("c", NodeId(1), "127.0.0.9:4000".parse().unwrap(), None);
        let mut b: Beacon = decode_body(&forged[4..]).unwrap();
        let orig: Beacon = decode_body(&signed[4..]).unwrap();
        b.mac = orig.mac;
        let forged = encode_clear(Kind::Beacon, &b);
        assert_eq!(
            check_beacon(&forged, "c", Some(&k1)),
            None,
            "forged address"
        );
    }

    #[test]
    fn beacon_source_must_match_its_address() {
        let v4: IpAddr = "127.0.0.5".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.5".parse().unwrap();
        assert!(same_ip(v4, mapped));
        assert!(!same_ip(v4, "127.0.0.6".parse().unwrap()));
        assert!(
            !MulticastConfig::default().trust_beacon_addr,
            "checked by default"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x1234_5678u32;
        for len in 0..300 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = check_beacon(&data, "c", Some(&MacOnly(1)));
        }
    }
}
