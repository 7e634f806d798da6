//! A work queue with request/reply: two workers subscribe to "square"; a client sends each
//! job as a request and takes the first answer. Ends by itself.
//! `cargo run -p espial --example work_queue` (binds 127.0.71.1-3:27510).

use espial::{Config, Espial, Event};
use std::time::Duration;

#[tokio::main]
async fn main() -> espial::Result<()> {
    let addr = |i: usize| format!("127.0.71.{}:27510", i + 1);
    let peers: Vec<String> = (0..3).map(addr).collect();
    let start = |i: usize, name: &str| {
        Espial::builder()
            .name(name)
            .bind(addr(i).parse().expect("address"))
            .peers(peers.clone())
            .profile(Config::local())
            .start()
    };
    let client = start(0, "client").await?;
    let mut workers = Vec::new();
    for (i, name) in ["worker-1", "worker-2"].iter().enumerate() {
        let w = start(i + 1, name).await?;
        w.join("square").await?;
        // Each worker answers every request it receives.
        let mut events = w.events();
        let me = w.clone();
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if let Event::Custom(job) = e {
                    let n: u64 = String::from_utf8_lossy(&job.data).parse().unwrap_or(0);
                    let answer = format!("{} by {}", n * n, me.node_info().name);
                    let _ = me.reply(&job, answer).await;
                }
            }
        });
        workers.push(w);
    }
    client.wait_for_cluster(3, Duration::from_secs(10)).await?;
    // Wait until the client knows both workers' subscriptions.
    while client
        .nodes()
        .iter()
        .filter(|n| n.subscriptions.iter().any(|s| s == "square"))
        .count()
        < 2
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for n in 1..=5u64 {
        let replies = client
            .request("square", n.to_string(), Duration::from_millis(500))
            .await?;
        let first = replies
            .replies
            .first()
            .map(|(_, d)| String::from_utf8_lossy(d).into_owned());
        println!("{n}^2 = {}", first.unwrap_or_else(|| "no answer".into()));
    }
    client.shutdown().await?;
    for w in &workers {
        w.shutdown().await?;
    }
    Ok(())
}
