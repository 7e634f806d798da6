//! Shared helpers for espial's integration tests.
//!
//! Every test that opens a socket starts with [`require_netns!`]: outside a private network
//! namespace (made by `bash scripts/netns` / `bash scripts/test`) it prints the marker
//! `ESPIAL-NETNS-SKIP` and returns without touching the network; CI fails on that marker.
//!
//! Address plan (tests run in parallel in one namespace, so each owns its addresses):
//! `127.0.<net>.<host>` with a distinct `<net>` per test, see [`ip`].
#![forbid(unsafe_code)]

pub mod adversary;
pub mod agent;
pub mod attacker;
pub mod cluster;
pub mod mastership;
pub mod nft;

use std::net::{Ipv4Addr, SocketAddr};

/// True when this process runs in a private network namespace whose only interface is `lo`.
pub fn in_private_netns() -> bool {
    let Ok(dev) = std::fs::read_to_string("/proc/net/dev") else {
        return false;
    };
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    ifaces == ["lo"]
}

/// Returns early from a test (printing `ESPIAL-NETNS-SKIP`) unless it runs inside a private
/// network namespace.
#[macro_export]
macro_rules! require_netns {
    () => {
        if !$crate::in_private_netns() {
            println!(
                "ESPIAL-NETNS-SKIP: {} needs `bash scripts/netns`",
                module_path!()
            );
            return;
        }
    };
}

/// `127.0.<net>.<host>`: loopback only.
pub fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

/// `127.0.<net>.<host>:<port>`.
pub fn addr(net: u8, host: u8, port: u16) -> SocketAddr {
    SocketAddr::from((ip(net, host), port))
}
