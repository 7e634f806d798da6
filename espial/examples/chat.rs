//! Three chat nodes on loopback exchange one message each over the "chat" event, then shut
//! down. `cargo run -p espial --example chat` (binds 127.0.70.1-3:27500).

use espial::{Config, Espial, Event};
use std::time::Duration;

#[tokio::main]
async fn main() -> espial::Result<()> {
    let names = ["alice", "bob", "carol"];
    let addr = |i: usize| format!("127.0.70.{}:27500", i + 1);
    let peers: Vec<String> = (0..names.len()).map(addr).collect();
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let node = Espial::builder()
            .name(*name)
            .bind(addr(i).parse().expect("address"))
            .peers(peers.clone())
            .profile(Config::local())
            .start()
            .await?;
        node.join("chat").await?;
        nodes.push(node);
    }
    // Every node reads its inbox while the others send: "delivered" means read by the
    // application, so a confirmed send waits for the reader.
    let ids: Vec<_> = nodes.iter().map(|n| (n.id(), n.node_info().name)).collect();
    let mut readers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut inbox = n.events();
        let ids = ids.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            while seen < names.len() - 1 {
                let event = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
                    .await
                    .map_err(|_| espial::Error::Timeout("chat message".into()))?;
                if let Some(Event::Custom(m)) = event {
                    let from = ids.iter().find(|(id, _)| *id == m.from).map(|(_, n)| n);
                    println!(
                        "{} <- {:?}: {}",
                        names[i],
                        from.cloned().unwrap_or_default(),
                        String::from_utf8_lossy(&m.data)
                    );
                    seen += 1;
                }
            }
            Ok::<_, espial::Error>(())
        }));
    }
    for n in &nodes {
        n.wait_for_cluster(names.len(), Duration::from_secs(10))
            .await?;
    }
    // Subscriptions are gossiped: send until each message reached both other nodes.
    for (i, n) in nodes.iter().enumerate() {
        loop {
            let report = n
                .send_confirmed("chat", format!("hello from {}", names[i]))
                .await?;
            if report.delivered.len() == names.len() - 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for r in readers {
        r.await.expect("reader task")?;
    }
    for n in &nodes {
        n.shutdown().await?;
    }
    Ok(())
}
