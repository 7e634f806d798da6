//! A custom discovery backend: nodes find each other through an in-process registry (in a
//! real deployment: a service catalogue, DNS, a cloud API...). Ends by itself.
//! `cargo run -p espial --example custom_discovery` (binds 127.0.72.1-3, any port).

use espial::{async_trait, Config, Discovery, Espial};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every node announces its address here and polls the list.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<Vec<SocketAddr>>>);

struct RegistryDiscovery {
    registry: Registry,
    polled: bool,
}

#[async_trait]
impl Discovery for RegistryDiscovery {
    async fn announce(&mut self, me: SocketAddr) -> std::io::Result<()> {
        self.registry.0.lock().expect("registry").push(me);
        Ok(())
    }

    /// The addresses to contact, at most every 200 ms.
    async fn next(&mut self) -> std::io::Result<Vec<SocketAddr>> {
        if self.polled {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.polled = true;
        Ok(self.registry.0.lock().expect("registry").clone())
    }
}

#[tokio::main]
async fn main() -> espial::Result<()> {
    let registry = Registry::default();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let node = Espial::builder()
            .name(format!("node-{i}"))
            .bind(format!("127.0.72.{i}:0").parse().expect("address"))
            .discovery(RegistryDiscovery {
                registry: registry.clone(),
                polled: false,
            })
            .profile(Config::local())
            .start()
            .await?;
        nodes.push(node);
    }
    for n in &nodes {
        n.wait_for_cluster(3, Duration::from_secs(10)).await?;
    }
    let master = nodes[0].master().map(|m| m.name).unwrap_or_default();
    println!("3 nodes found each other through the registry; master: {master}");
    for n in &nodes {
        n.shutdown().await?;
    }
    Ok(())
}
