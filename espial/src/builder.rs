//! [`Builder`]: everything about a node, set before it starts.

use crate::error::{Error, Result};
use crate::filter::{self, ConnectionRequest, IntoAdmission};
use crate::handle::Espial;
use espial_core::{Cipher, Config, Discovery, Metadata, Node, NodeId, NodeInfo, Transport};
use espial_crypto::{AesGcmCipher, IdentityKey};
use espial_net::driver::{AdmissionFilter, DriverOptions};
use espial_net::multicast::{MulticastConfig, MulticastInterface};
use espial_net::{MulticastDiscovery, StaticPeers, UdpOptions, UdpTransport};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Configures and starts a node. Get one with [`Espial::builder`].
///
/// Defaults: host name as node name, master-eligible with priority 0, [`Config::lan`],
/// bind `0.0.0.0` on a free port, AES-128-GCM sessions without pre-shared key, every node
/// admitted, and multicast discovery on the default group (239.192.27.27:27272) unless
/// [`Builder::peers`], [`Builder::discovery`] or a multicast method chose otherwise.
///
/// ```no_run
/// # async fn f() -> espial::Result<()> {
/// use espial::Espial;
/// let node = Espial::builder()
///     .name("api-1")
///     .metadata([("role", "api")])
///     .bind("10.0.0.7:27272".parse().unwrap())
///     .peers(["10.0.0.5:27272", "10.0.0.6:27272"])
///     .psk(b"a long shared cluster secret".to_vec())
///     .connection_filter(|req| async move { req.name.ends_with(".internal") })
///     .start()
///     .await?;
/// # let _ = node; Ok(()) }
/// ```
#[must_use = "a builder does nothing until .start().await"]
pub struct Builder {
    name: Option<String>,
    metadata: Vec<(String, String)>,
    master_eligible: bool,
    priority: u32,
    config: Config,
    quorum: Option<Option<usize>>,
    bind: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    udp: UdpOptions,
    transport: Option<Arc<dyn Transport>>,
    multicast: Option<MulticastConfig>,
    peers: Option<Vec<String>>,
    discoveries: Vec<Box<dyn Discovery>>,
    cluster: Option<String>,
    /// Zeroed on drop.
    psk: Option<zeroize::Zeroizing<Vec<u8>>>,
    identity: Option<IdentityKey>,
    aes256: bool,
    filter: Option<AdmissionFilter>,
    filter_timeout: Duration,
    event_buffer: usize,
    metrics: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            name: None,
            metadata: Vec::new(),
            master_eligible: true,
            priority: 0,
            config: Config::lan(),
            quorum: None,
            bind: None,
            advertise: None,
            udp: UdpOptions::default(),
            transport: None,
            multicast: None,
            peers: None,
            discoveries: Vec::new(),
            cluster: None,
            psk: None,
            identity: None,
            aes256: false,
            filter: None,
            filter_timeout: Duration::from_secs(5),
            event_buffer: 4096,
            metrics: false,
        }
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("advertise", &self.advertise)
            .field("multicast", &self.multicast)
            .field("peers", &self.peers)
            .field("psk", &self.psk.as_ref().map(|_| "<secret>"))
            .field("filter", &self.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The node's name (default: the host name). Other nodes and the connection filter see it.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Initial metadata: a small string map gossiped to every member (limit
    /// `Config::max_metadata_bytes`, 512 bytes by default; `start` fails when over).
    pub fn metadata<K, V>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.metadata = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Whether this node may become master (default `true`).
    pub fn master_eligible(mut self, eligible: bool) -> Self {
        self.master_eligible = eligible;
        self
    }

    /// Election priority (default 0): among eligible nodes a higher priority is preferred
    /// when a master is elected. Nodes that start together elect the highest priority (each
    /// member a node gains restarts its election timeout, so a start spread over more than
    /// the timeout still counts as together while members keep arriving); a live master is
    /// never deposed by a node that joins later: use `promote()` for a hand-over.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = priority;
        self
    }

    /// Timing profile: [`Config::lan`] (default), [`Config::wan`], [`Config::local`], or a
    /// tuned [`Config`].
    pub fn profile(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Quorum mode: a node becomes master only with `n` votes (itself included) and stays
    /// master only while a lease renewed by `n` acknowledgements runs, so two nodes never
    /// act as master at the same instant. Use a majority of the cluster size: `n` must stay
    /// a majority, so members refuse a join that would run more than `2n − 1` nodes (the
    /// joiner gets `Event::Rejected`). The minority side of a partition has no master.
    pub fn quorum(mut self, n: usize) -> Self {
        self.quorum = Some(Some(n));
        self
    }

    /// Address to bind the UDP socket to (default `0.0.0.0:0`: every interface, a free
    /// port). Port 0 picks a free port.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Address other nodes should send to, when it differs from the bound one (NAT,
    /// containers, or binding `0.0.0.0`). Port 0 means the bound port.
    pub fn advertise(mut self, addr: SocketAddr) -> Self {
        self.advertise = Some(addr);
        self
    }

    /// Socket buffer sizes to request (receive, send) in bytes; default 4 MiB each.
    pub fn socket_buffers(mut self, recv: usize, send: usize) -> Self {
        self.udp.recv_buffer = Some(recv);
        self.udp.send_buffer = Some(send);
        self
    }

    /// Uses a custom transport instead of a UDP socket (the bind options are then ignored;
    /// the advertised address defaults to the transport's local address).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Multicast discovery on the default group 239.192.27.27, port 27272.
    pub fn multicast_default(mut self) -> Self {
        self.multicast = Some(MulticastConfig::default());
        self
    }

    /// Multicast discovery on this group and port (IPv4 or IPv6 group).
    pub fn multicast(mut self, group: IpAddr, port: u16) -> Self {
        self.multicast = Some(MulticastConfig::with_group(group, port));
        self
    }

    /// Multicast discovery with every setting (interface, TTL, beacon period...).
    pub fn multicast_config(mut self, config: MulticastConfig) -> Self {
        self.multicast = Some(config);
        self
    }

    /// The IPv4 interface (by its address) multicast uses; enables multicast discovery on
    /// the default group if none was chosen.
    pub fn multicast_interface(mut self, addr: Ipv4Addr) -> Self {
        self.multicast
            .get_or_insert_with(MulticastConfig::default)
            .interface = MulticastInterface::V4(addr);
        self
    }

    /// Static seed peers (`ip:port` or `host:port`; host names are re-resolved
    /// periodically). Disables the default multicast discovery unless a multicast method is
    /// also called. An empty list is fine for the first node of a cluster.
    pub fn peers<S: Into<String>>(mut self, peers: impl IntoIterator<Item = S>) -> Self {
        self.peers
            .get_or_insert_with(Vec::new)
            .extend(peers.into_iter().map(Into::into));
        self
    }

    /// Adds a custom discovery backend (DNS, a cloud API, a file...). Disables the default
    /// multicast discovery unless a multicast method is also called.
    pub fn discovery(mut self, discovery: impl Discovery) -> Self {
        self.discoveries.push(Box::new(discovery));
        self
    }

    /// Cluster name carried in multicast beacons (default `"espial"`): nodes ignore
    /// beacons of other clusters sharing the group.
    pub fn cluster(mut self, name: impl Into<String>) -> Self {
        self.cluster = Some(name.into());
        self
    }

    /// Cluster pre-shared key (at least 16 bytes; the same on every node). It is mixed into
    /// every session key and authenticates multicast beacons, so nodes without it cannot
    /// join, read or impersonate, and a man in the middle cannot relay handshakes.
    /// The builder keeps the key only in memory that is zeroed when it is dropped.
    pub fn psk(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.psk = Some(zeroize::Zeroizing::new(key.into()));
        self
    }

    /// Static identity key: the node proves it in every handshake, its node id is derived
    /// from it (stable across restarts), and connection filters see the verified public key.
    pub fn identity(mut self, key: IdentityKey) -> Self {
        self.identity = Some(key);
        self
    }

    /// AES-256-GCM session keys instead of AES-128-GCM (every node must agree).
    pub fn aes256(mut self) -> Self {
        self.aes256 = true;
        self
    }

    /// The connection filter: decides, asynchronously, whether a joining node is admitted.
    /// Return `bool`, `Result<(), String>` (the error is the reason sent to the node) or an
    /// [`espial_core::Admission`]. A filter that panics or does not answer within the
    /// filter timeout (5 s) rejects the node.
    ///
    /// The member that receives the join request decides for the whole cluster, so give
    /// every node the same filter.
    ///
    /// ```no_run
    /// # async fn f() -> espial::Result<()> {
    /// let node = espial::Espial::builder()
    ///     .connection_filter(|req| async move {
    ///         if req.name.ends_with("org.internal") { Ok(()) } else { Err("unknown host") }
    ///     })
    ///     .start().await?;
    /// # let _ = node; Ok(()) }
    /// ```
    pub fn connection_filter<F, Fut, R>(mut self, filter: F) -> Self
    where
        F: Fn(ConnectionRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoAdmission,
    {
        self.filter = Some(filter::boxed(filter));
        self
    }

    /// How long the connection filter may take before the node is rejected (default 5 s).
    pub fn filter_timeout(mut self, timeout: Duration) -> Self {
        self.filter_timeout = timeout;
        self
    }

    /// Custom-event flow control: at most `per_sender` bytes (payload + 64 per event) of
    /// one sender's events unread by this node's listeners or in flight towards it
    /// (default 4 MiB), and at most `total` bytes of unread custom events over all senders
    /// (default 32 MiB). Past them senders get no more credit (they see backpressure);
    /// nothing is dropped. Raised to at least one largest event. Sets
    /// `Config::event_window_bytes` and `Config::max_unread_event_bytes`.
    pub fn unread_event_limits(mut self, per_sender: usize, total: usize) -> Self {
        self.config.event_window_bytes = per_sender;
        self.config.max_unread_event_bytes = total;
        self
    }

    /// How many events a listener may fall behind before it loses the oldest
    /// (default 4096). See [`crate::EventStream`].
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events;
        self
    }

    /// Publishes the node's metrics through the [`metrics`](https://docs.rs/metrics) facade
    /// (off by default): members, master, traffic, handshakes, drops by reason, events
    /// sent/delivered/failed and a delivery latency histogram, labelled with the node's
    /// name. Install a recorder (any `metrics` exporter) to collect them; the list is in
    /// the crate's `metrics` module documentation.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = enabled;
        self
    }

    /// Binds the socket, starts discovery and the node's task. Must run inside a tokio
    /// runtime. The node emits `listening` at once (the first [`Espial::events`] stream
    /// sees it).
    pub async fn start(self) -> Result<Espial> {
        let mut config = self.config;
        if let Some(q) = self.quorum {
            config.quorum = q;
        }
        config.validate()?;
        let metadata = Metadata::from_pairs(self.metadata, config.max_metadata_bytes)?;

        // Every node has an identity key (a fresh one unless configured); its id is derived
        // from the public key, so only the key's holder can use it.
        let cipher = make_cipher(
            self.psk.as_ref().map(|k| k.as_slice()),
            self.identity.clone(),
            self.aes256,
        )?;
        let id = cipher.node_id();

        let (transport, bound, advertised) = match self.transport {
            Some(t) => {
                let bound = t.local_addr()?;
                let adv = self.advertise.unwrap_or(bound);
                (t, bound, adv)
            }
            None => {
                let bind = self
                    .bind
                    .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
                let udp = UdpTransport::bind_with(bind, &self.udp)
                    .map_err(|source| Error::Bind { addr: bind, source })?;
                let bound = udp.advertised_addr();
                let adv = advertised_addr(
                    bound,
                    self.advertise,
                    self.multicast.as_ref(),
                    self.peers.as_deref(),
                )?;
                let udp = udp.with_advertised(adv);
                let t: Arc<dyn Transport> = Arc::new(udp);
                (t, bound, adv)
            }
        };

        let name = self.name.unwrap_or_else(|| host_name(id));
        let mut me = NodeInfo::new(id, name, advertised);
        me.metadata = metadata;
        me.master_eligible = self.master_eligible;
        me.priority = self.priority;

        let node = Node::new(
            config.clone(),
            me,
            cipher,
            random_u128() as u64,
            Instant::now(),
        )?;

        let mut discoveries = self.discoveries;
        let explicit = self.peers.is_some() || !discoveries.is_empty();
        let mut beacons = None;
        let multicast = match self.multicast {
            Some(m) => Some(m),
            None if !explicit => Some(MulticastConfig::default()),
            None => None,
        };
        if let Some(mut m) = multicast {
            if let Some(c) = &self.cluster {
                m.cluster = c.clone();
            }
            let auth: Option<Box<dyn Cipher>> = match &self.psk {
                Some(psk) => Some(make_cipher(Some(psk), None, self.aes256)?),
                None => None,
            };
            let d = MulticastDiscovery::new(m, id, auth).map_err(Error::Multicast)?;
            beacons = Some(d.counters());
            discoveries.push(Box::new(d));
        }
        if let Some(peers) = self.peers {
            if !peers.is_empty() {
                let min = config.reconnect_interval.max(Duration::from_millis(200));
                let d = StaticPeers::new(peers).with_intervals(min, min * 30);
                discoveries.push(Box::new(d));
            }
        }

        let hub = espial_net::EventHub::new(self.event_buffer.max(16));
        let opts = DriverOptions {
            event_capacity: self.event_buffer.max(16),
            filter: self.filter,
            filter_timeout: self.filter_timeout,
            recv_buffer: config.max_datagram + 1,
            hub: Some(hub.clone()),
        };
        let spawned = espial_net::spawn(node, transport, discoveries, opts)?;
        tracing::debug!(%bound, %advertised, "espial node started");
        Ok(Espial::new(
            spawned,
            hub,
            config,
            bound,
            beacons,
            self.metrics,
        ))
    }
}

fn make_cipher(
    psk: Option<&[u8]>,
    identity: Option<IdentityKey>,
    aes256: bool,
) -> Result<Box<dyn Cipher>> {
    let mut c = AesGcmCipher::try_new().map_err(|e| Error::Crypto(e.to_string()))?;
    if aes256 {
        c = c.aes256();
    }
    if let Some(psk) = psk {
        c = c.with_psk(psk).map_err(|e| Error::Crypto(e.to_string()))?;
    }
    if let Some(key) = identity {
        c = c.with_identity(key);
    }
    Ok(Box::new(c))
}

/// Chooses the advertised address: the explicit one, else the bound one, else (bound to
/// an unspecified address) the local address of the route to the multicast group or the
/// first literal peer. Finding a route sends no packet.
fn advertised_addr(
    bound: SocketAddr,
    explicit: Option<SocketAddr>,
    multicast: Option<&MulticastConfig>,
    peers: Option<&[String]>,
) -> Result<SocketAddr> {
    if let Some(mut a) = explicit {
        if a.port() == 0 {
            a.set_port(bound.port());
        }
        return Ok(a);
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let mut targets: Vec<SocketAddr> = Vec::new();
    if let Some(m) = multicast {
        if let MulticastInterface::V4(ip) = m.interface {
            if !ip.is_unspecified() {
                return Ok(SocketAddr::new(ip.into(), bound.port()));
            }
        }
        targets.push(SocketAddr::new(m.group, m.port));
    }
    targets.extend(
        peers
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.parse::<SocketAddr>().ok()),
    );
    if targets.is_empty() {
        targets.push(SocketAddr::new(
            espial_net::multicast::DEFAULT_GROUP_V4.into(),
            espial_net::multicast::DEFAULT_PORT,
        ));
    }
    for t in targets {
        if t.is_ipv4() != bound.is_ipv4() {
            continue;
        }
        if let Ok(ip) = espial_net::udp::route_source_ip(t) {
            if !ip.is_unspecified() {
                return Ok(SocketAddr::new(ip, bound.port()));
            }
        }
    }
    Err(Error::NoAdvertise(bound))
}

fn host_name(id: NodeId) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("espial-{}", id.short()))
}

/// 128 bits from the operating system's secure random source.
pub(crate) fn random_u128() -> u128 {
    use aws_lc_rs::rand::SecureRandom;
    let mut b = [0u8; 16];
    if aws_lc_rs::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Practically unreachable; fall back to the std hasher's random keys.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .elapsed()
                .map_or(0, |d| d.as_nanos()),
        );
        let lo = h.finish();
        let hi = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        return ((hi as u128) << 64) | lo as u128;
    }
    u128::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_address_rules() {
        let bound: SocketAddr = "127.0.0.3:4000".parse().unwrap();
        assert_eq!(advertised_addr(bound, None, None, None).unwrap(), bound);
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        let exp: SocketAddr = "192.0.2.1:0".parse().unwrap();
        assert_eq!(
            advertised_addr(any, Some(exp), None, None).unwrap(),
            "192.0.2.1:4000".parse().unwrap()
        );
        let mut m = MulticastConfig::default();
        m.interface = MulticastInterface::V4(Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(
            advertised_addr(any, None, Some(&m), None).unwrap(),
            "127.0.0.1:4000".parse().unwrap()
        );
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(random_u128(), random_u128());
    }

    #[tokio::test]
    async fn bad_settings_fail_before_any_socket_is_opened() {
        // Loopback and no multicast, so even a regression would send nothing outside.
        let safe = || {
            Espial::builder()
                .bind("127.0.0.1:0".parse().unwrap())
                .peers(Vec::<String>::new())
        };
        let short_psk = safe().psk(b"short".to_vec()).start().await;
        assert!(matches!(short_psk, Err(Error::Crypto(_))), "{short_psk:?}");
        let big = safe().metadata([("k", "v".repeat(4000))]).start().await;
        let msg = big.unwrap_err().to_string();
        assert!(msg.contains("metadata"), "{msg}");
        let q = safe().quorum(0).start().await;
        assert!(q.unwrap_err().to_string().contains("quorum"));
    }
}
