//! # espial-net
//!
//! Real-network plumbing for espial on tokio and socket2:
//!
//! - [`UdpTransport`]: the UDP socket (IPv4 or IPv6, bind address vs advertised address,
//!   socket buffer sizes), implementing [`espial_core::Transport`];
//! - [`MulticastDiscovery`]: beacons on an administratively scoped multicast group,
//!   authenticated with the cluster pre-shared key when one is set;
//! - [`StaticPeers`]: a seed list of addresses or host names, re-resolved with backoff;
//! - [`driver`]: the task that owns one core [`espial_core::Node`] and moves bytes, time and
//!   commands between it and the world.
//!
//! Write your own discovery backend by implementing [`espial_core::Discovery`] (re-exported
//! here); `examples/file_discovery.rs` reads peer addresses from a file.
//!
//! Most applications use the `espial` facade crate rather than this one directly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod driver;
pub mod hub;
pub mod multicast;
pub mod request;
pub mod static_peers;
pub mod udp;

pub use driver::{spawn, DriverOptions, NodeHandle, Snapshot};
pub use espial_core::{Discovery, Transport};
pub use hub::{EventHub, Listener};
pub use multicast::{MulticastConfig, MulticastDiscovery, MulticastInterface};
pub use static_peers::StaticPeers;
pub use udp::{UdpOptions, UdpTransport};
