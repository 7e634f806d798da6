//! End to end, nothing silent (issue 11 items 4 and 5) between real nodes over UDP: a slow
//! reader holds its senders back instead of losing events, and a worker that reads an
//! event and shuts down at once still confirms it.

use espial::{Espial, Event, SendError};
use espial_tests::{addr, require_netns};
use futures::StreamExt;
use std::time::{Duration, Instant};

const NET: u8 = 31;
const PORT: u16 = 27600;

async fn node(h: u8, port: u16, peers: &[String], window: usize) -> Espial {
    // The window is at least one largest event: keep events small so it can be small.
    let mut config = espial::Config::local();
    config.max_event_payload = 16 * 1024;
    Espial::builder()
        .name(format!("flow-{h}"))
        .bind(addr(NET, h, port))
        .peers(peers.to_vec())
        .profile(config)
        .unread_event_limits(window, 4 * window)
        .start()
        .await
        .expect("start")
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reader's application does not read for a while: the sender is backpressured, the
/// reader's unread events stay within its window, and once it reads it gets every event
/// exactly once, in order; the last send is then confirmed delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_backpressures_the_sender_and_loses_nothing() {
    require_netns!();
    const WINDOW: usize = 256 * 1024;
    const SIZE: usize = 8192;
    const COUNT: u32 = 3000; // 24.6 MB: ~94 windows, more than the sender's 16 MiB queue
    let peers: Vec<String> = (1..=2).map(|h| addr(NET, h, PORT).to_string()).collect();
    let a = node(1, PORT, &peers, WINDOW).await;
    let b = node(2, PORT, &peers, WINDOW).await;
    let mut events = b.events(); // opened, not read yet
    b.join("jobs").await.unwrap();
    wait_for("a knows b subscribes", Duration::from_secs(10), || {
        a.nodes()
            .iter()
            .any(|n| n.id == b.id() && n.subscriptions.contains("jobs"))
    })
    .await;
    let payload = |i: u32| {
        let mut v = i.to_le_bytes().to_vec();
        v.resize(SIZE, (i % 251) as u8);
        v
    };
    let mut next = 0u32;
    let mut refusals = 0u64;
    let t0 = Instant::now();
    // Send until the queue towards the silent reader refuses (backpressure).
    while next < COUNT - 1 && t0.elapsed() < Duration::from_secs(20) {
        match a.send("jobs", payload(next)).await {
            Ok(_) => next += 1,
            Err(espial::Error::Send(SendError::Backpressure(_))) => {
                refusals += 1;
                break;
            }
            Err(e) => panic!("send failed: {e}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unread = b.stats().core.unread_event_bytes;
    assert!(
        unread <= WINDOW as u64,
        "unread events {unread} B exceed the window {WINDOW}"
    );
    assert!(refusals > 0, "the sender was never held back");
    // Now read everything while the sender sends the rest.
    let reader = tokio::spawn(async move {
        let mut want = 0u32;
        while want < COUNT {
            match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
                Ok(Some(Event::Custom(c))) => {
                    let i = u32::from_le_bytes(c.data[..4].try_into().unwrap());
                    assert_eq!(i, want, "exactly once, in order");
                    assert_eq!(c.data.len(), SIZE);
                    want += 1;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("stream ended or stalled at event {want}"),
            }
        }
        want
    });
    let mut last = None;
    while next < COUNT {
        if next == COUNT - 1 {
            let o = a.send_confirmed("jobs", payload(next)).await;
            match o {
                Ok(o) => {
                    last = Some(o);
                    next += 1;
                }
                Err(espial::Error::Send(SendError::Backpressure(_))) => {
                    refusals += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("send failed: {e}"),
            }
            continue;
        }
        match a.send("jobs", payload(next)).await {
            Ok(_) => next += 1,
            Err(espial::Error::Send(SendError::Backpressure(_))) => {
                refusals += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("send failed: {e}"),
        }
    }
    let got = reader.await.expect("reader");
    assert_eq!(got, COUNT);
    let last = last.expect("last send");
    assert_eq!(last.delivered, vec![b.id()], "the last send is confirmed");
    println!("slow reader: {COUNT} events of {SIZE} B, {refusals} backpressure refusals, 0 lost");
    a.shutdown().await.ok();
    b.shutdown().await.ok();
}

/// Issue 11 item 5: workers that receive an event and call `shutdown()` at once are
/// reported delivered by `send_confirmed` (3 runs of 3 workers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_confirmed_then_immediate_shutdown_is_delivered() {
    require_netns!();
    for run in 0..3u16 {
        let port = PORT + 10 + run;
        let peers: Vec<String> = (1..=4).map(|h| addr(NET, h, port).to_string()).collect();
        let boss = node(1, port, &peers, 1 << 20).await;
        let mut workers = Vec::new();
        for h in 2..=4 {
            let w = node(h, port, &peers, 1 << 20).await;
            w.join("work").await.unwrap();
            workers.push(w);
        }
        wait_for("the boss knows 3 workers", Duration::from_secs(10), || {
            boss.nodes()
                .iter()
                .filter(|n| n.subscriptions.contains("work"))
                .count()
                == 3
        })
        .await;
        let mut tasks = Vec::new();
        for w in workers {
            let mut events = w.events();
            tasks.push(tokio::spawn(async move {
                while let Some(e) = events.next().await {
                    if matches!(e, Event::Custom(_)) {
                        w.shutdown().await.ok();
                        return true;
                    }
                }
                false
            }));
        }
        let ids: Vec<_> = boss
            .nodes()
            .iter()
            .map(|n| n.id)
            .filter(|i| *i != boss.id())
            .collect();
        let o = tokio::time::timeout(Duration::from_secs(10), boss.send_confirmed("work", "go"))
            .await
            .expect("an outcome")
            .expect("sent");
        for t in tasks {
            assert!(t.await.unwrap(), "a worker got the event");
        }
        let mut delivered = o.delivered.clone();
        delivered.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(
            delivered, want,
            "run {run}: all 3 delivered (failed: {:?})",
            o.failed
        );
        boss.shutdown().await.ok();
    }
}
