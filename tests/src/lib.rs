//! Shared helpers for espial's integration tests.
//!
//! Every test that opens a socket starts with [`require_netns!`]: outside a private network
//! namespace (made by `bash scripts/netns` / `bash scripts/test`) it prints the marker
//! `ESPIAL-NETNS-SKIP` and returns without touching the network; CI fails on that marker.

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
            println!("ESPIAL-NETNS-SKIP: {} needs `bash scripts/netns`", module_path!());
            return;
        }
    };
}
