//! Custom events through the facade between real nodes: JSON payloads, directed sends,
//! sends to the master, batches, request/reply, and the errors a user gets for bad sends.

use espial::{decode_json, Espial, Event};
use espial_tests::cluster::Cluster;
use espial_tests::{addr, require_netns};
use std::time::Duration;

const NET: u8 = 13;
const PORT: u16 = 27400;
const N: usize = 3;

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Job {
    id: u32,
    name: String,
}

/// Starts `N` nodes on `127.0.<net>.1..N`, each subscribed to "jobs" and "ask", and waits
/// until they all know each other, a master and every subscription.
async fn start_cluster(net: u8) -> Cluster {
    let peers: Vec<String> = (1..=N as u8)
        .map(|h| addr(net, h, PORT).to_string())
        .collect();
    let mut c = Cluster::new();
    for h in 1..=N as u8 {
        let node = Espial::builder()
            .name(format!("ev-{h}"))
            .bind(addr(net, h, PORT))
            .peers(peers.clone())
            .start()
            .await
            .expect("start");
        node.join("jobs").await.unwrap();
        node.join("ask").await.unwrap();
        c.add(node);
    }
    let all: Vec<usize> = (0..N).collect();
    c.wait(
        "3 members, a master, subscriptions known",
        Duration::from_secs(10),
        |c| {
            c.members_are(&all)
                && c.agreed_master().is_some()
                && c.nodes.iter().all(|n| {
                    n.nodes().iter().all(|m| {
                        m.subscriptions.contains("jobs") && m.subscriptions.contains("ask")
                    })
                })
        },
    )
    .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_directed_master_and_request_reply() {
    require_netns!();
    let mut c = start_cluster(NET).await;

    // Typed JSON to every subscriber.
    let job = Job {
        id: 7,
        name: "build".into(),
    };
    c.nodes[0].send_json("jobs", &job).await.unwrap();
    c.wait("the JSON job at the two other nodes", Duration::from_secs(5), |c| {
        (1..N).all(|i| {
            c.events_of(i).any(|e| {
                matches!(e, Event::Custom(ev) if ev.name == "jobs" && decode_json::<Job>(ev).ok().as_ref() == Some(&job))
            })
        })
    })
    .await;

    // Directed send to a node, and a send to the master.
    let target = c.nodes[2].id();
    c.nodes[0]
        .send_to([target], "direct", "just you")
        .await
        .unwrap();
    let master = c.agreed_master().unwrap();
    let mi = c.nodes.iter().position(|n| n.id() == master).unwrap();
    let from = (mi + 1) % N;
    c.nodes[from]
        .send_to_master("to-master", "hello boss")
        .await
        .unwrap();
    c.wait("directed and master events", Duration::from_secs(5), |c| {
        c.events_of(2)
            .any(|e| matches!(e, Event::Custom(ev) if ev.name == "direct" && ev.data == "just you"))
            && c.events_of(mi)
                .any(|e| matches!(e, Event::Custom(ev) if ev.name == "to-master"))
    })
    .await;
    assert!(!c
        .events_of(1)
        .any(|e| matches!(e, Event::Custom(ev) if ev.name == "direct")));

    // Request/reply: the two others answer.
    let responders: Vec<_> = (1..N)
        .map(|i| {
            let node = c.nodes[i].clone();
            let mut events = node.events();
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    if let Event::Custom(ev) = e {
                        if ev.request.is_some() {
                            let answer = format!("{} says pong", node.node_info().name);
                            node.reply(&ev, answer).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    let replies = c.nodes[0]
        .request("ask", "ping", Duration::from_secs(3))
        .await
        .unwrap();
    let mut got: Vec<String> = replies
        .replies
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["ev-2 says pong", "ev-3 says pong"], "{replies:?}");
    assert!(replies.missing.is_empty(), "{replies:?}");

    // Replies are delivered once: to the request that awaits them (its result, or
    // `next_reply` as they come), never also as `Event::Reply` on the requester's streams.
    let mut pending = c.nodes[0]
        .start_request("ask", "ping again", Duration::from_secs(3))
        .await
        .unwrap();
    let mut streamed = Vec::new();
    let each = async {
        while let Some((from, _)) = pending.next_reply().await {
            streamed.push(from);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), each)
        .await
        .expect("next_reply ends when every target answered");
    let all = pending.replies().await.unwrap();
    assert_eq!(streamed.len(), 2, "{all:?}");
    assert_eq!(
        all.replies.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        streamed
    );
    // A marker sent after both requests ended comes after any event of them on node 0's
    // stream (events are released in order): once it is there, no reply came as an event.
    let me = c.nodes[0].id();
    c.nodes[1].send_to([me], "marker", "after").await.unwrap();
    let marker = |e: &Event| matches!(e, Event::Custom(ev) if ev.name == "marker");
    c.wait("the marker at node 0", Duration::from_secs(5), |c| {
        c.events_of(0).any(marker)
    })
    .await;
    let stray: Vec<&Event> = c
        .events_of(0)
        .filter(|e| matches!(e, Event::Reply { .. } | Event::RequestDone { .. }))
        .collect();
    assert!(
        stray.is_empty(),
        "replies of awaited requests on the stream: {stray:?}"
    );
    // Nobody awaits a request whose PendingRequest was dropped: its replies come as events.
    let dropped = c.nodes[0]
        .start_request("ask", "ping unheard", Duration::from_secs(3))
        .await
        .unwrap();
    let rid = dropped.id();
    drop(dropped);
    c.wait("unawaited replies as events", Duration::from_secs(5), |c| {
        c.events_of(0)
            .filter(|e| matches!(e, Event::Reply { request, .. } if *request == rid))
            .count()
            == 2
            && c.events_of(0)
                .any(|e| matches!(e, Event::RequestDone { request, .. } if *request == rid))
    })
    .await;

    // A batch: every event delivered once and in order (500 events: two commands of 256).
    let batch: Vec<Vec<u8>> = (0..500u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let ids = c.nodes[0].send_batch("jobs", batch.clone()).await.unwrap();
    assert_eq!(ids.len(), 500);
    expect_jobs(&mut c, 4, &batch, "the 500 batched events").await;
    // A refusal part way queues the prefix only; one at the start queues nothing.
    let too_big = vec![0u8; c.nodes[0].config().max_event_payload + 1];
    let mixed = vec![vec![1u8; 8], vec![2u8; 8], too_big.clone(), vec![3u8; 8]];
    assert_eq!(
        c.nodes[0]
            .send_batch("jobs", mixed.clone())
            .await
            .unwrap()
            .len(),
        2
    );
    // Past the first chunk of 256 the same holds: 280 queued, then the refusal.
    let mut long: Vec<Vec<u8>> = (0..300u32).map(|i| [i.to_le_bytes(); 3].concat()).collect();
    long[280] = too_big.clone();
    assert_eq!(
        c.nodes[0]
            .send_batch("jobs", long.clone())
            .await
            .unwrap()
            .len(),
        280
    );
    let e = c.nodes[0].send_batch("jobs", [too_big]).await.unwrap_err();
    assert!(e.to_string().contains("max_event_payload"), "{e}");
    assert!(c.nodes[0].send_batch("new_master", ["x"]).await.is_err());
    assert!(c.nodes[0]
        .send_batch("new_master", Vec::<Vec<u8>>::new())
        .await
        .is_err());
    assert!(c.nodes[0]
        .send_batch("jobs", Vec::<Vec<u8>>::new())
        .await
        .unwrap()
        .is_empty());
    expect_jobs(&mut c, 8, &mixed[..2], "the prefix of the short batch").await;
    expect_jobs(&mut c, 12, &long[..280], "the 280 before the refusal").await;

    // Errors say what is wrong and nothing is sent.
    let e = c.nodes[0].send("new_master", "x").await.unwrap_err();
    assert!(e.to_string().contains("core event"), "{e}");
    assert!(c.nodes[0].join("removed_node").await.is_err());
    let big = vec![0u8; c.nodes[0].config().max_event_payload + 1];
    let e = c.nodes[0].send("jobs", big).await.unwrap_err();
    assert!(e.to_string().contains("max_event_payload"), "{e}");

    for r in responders {
        r.abort();
    }
    c.shutdown_all().await;
}

/// Waits (bounded) until both subscribers received `want.len()` "jobs" events of `len`
/// bytes, then checks they are exactly `want`, once and in order.
async fn expect_jobs(c: &mut Cluster, len: usize, want: &[Vec<u8>], what: &str) {
    let got = |c: &Cluster, i: usize| -> Vec<Vec<u8>> {
        c.events_of(i)
            .filter_map(|e| match e {
                Event::Custom(ev) if ev.name == "jobs" && ev.data.len() == len => {
                    Some(ev.data.to_vec())
                }
                _ => None,
            })
            .collect()
    };
    c.wait(what, Duration::from_secs(5), |c| {
        (1..N).all(|i| got(c, i).len() >= want.len())
    })
    .await;
    for i in 1..N {
        assert_eq!(got(c, i), want, "node {i}: {what}, once, in order");
    }
}

/// A `PendingRequest` dropped before it returned every reply loses none: each reply it did
/// not return, and then the end, arrive on the requester's event streams. Here the replies
/// have already reached the request when it is dropped (the race that once lost them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_a_dropped_request_did_not_return_arrive_as_events() {
    require_netns!();
    let mut c = start_cluster(14).await;
    // Each responder replies, then tells the requester it did: the "replied" event comes
    // after the reply on the same ordered stream, so once node 0 has it, node 0's task
    // has handed the reply to the request.
    let responders: Vec<_> = (1..N)
        .map(|i| {
            let node = c.nodes[i].clone();
            let mut events = node.events();
            tokio::spawn(async move {
                while let Some(e) = events.recv().await {
                    if let Event::Custom(ev) = e {
                        if let Some(request) = ev.request {
                            node.reply(&ev, "pong").await.unwrap();
                            let id = request.0.to_le_bytes().to_vec();
                            node.send_to([ev.from], "replied", id).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    let on_stream = |c: &Cluster, rid: u64| -> (usize, usize, bool) {
        let evs: Vec<&Event> = c.events_of(0).collect();
        let replies = evs
            .iter()
            .filter(|e| matches!(e, Event::Reply { request, .. } if request.0 == rid))
            .count();
        let done = evs
            .iter()
            .position(|e| matches!(e, Event::RequestDone { request, .. } if request.0 == rid));
        let last_reply = evs
            .iter()
            .rposition(|e| matches!(e, Event::Reply { request, .. } if request.0 == rid));
        (replies, done.map_or(0, |_| 1), done > last_reply)
    };

    // Nothing read: both replies and the end (every target answered) come as events.
    let pending = c.nodes[0]
        .start_request("ask", "unread", Duration::from_secs(3))
        .await
        .unwrap();
    let rid = pending.id().0;
    both_replied(&mut c, rid).await;
    drop(pending);
    c.wait(
        "2 replies then the end as events",
        Duration::from_secs(5),
        |c| on_stream(c, rid) == (2, 1, true),
    )
    .await;

    // One read with next_reply: only the other comes as an event, then the end.
    let mut pending = c.nodes[0]
        .start_request("ask", "half read", Duration::from_secs(3))
        .await
        .unwrap();
    let rid = pending.id().0;
    let first = tokio::time::timeout(Duration::from_secs(5), pending.next_reply())
        .await
        .expect("a reply within 5 s")
        .expect("a reply, not the end");
    both_replied(&mut c, rid).await;
    drop(pending);
    c.wait(
        "the unread reply then the end",
        Duration::from_secs(5),
        |c| on_stream(c, rid) == (1, 1, true),
    )
    .await;
    let streamed = c
        .events_of(0)
        .find_map(|e| match e {
            Event::Reply { request, from, .. } if request.0 == rid => Some(*from),
            _ => None,
        })
        .unwrap();
    assert_ne!(streamed, first.0, "the reply read is not also an event");

    // replies() returned: nothing of that request comes as an event, even when dropped.
    let pending = c.nodes[0]
        .start_request("ask", "all read", Duration::from_secs(3))
        .await
        .unwrap();
    let rid = pending.id().0;
    let all = tokio::time::timeout(Duration::from_secs(5), pending.replies())
        .await
        .expect("ends within 5 s")
        .unwrap();
    assert_eq!(all.replies.len(), 2, "{all:?}");
    both_replied(&mut c, rid).await;
    assert_eq!(on_stream(&c, rid), (0, 0, false));

    for r in responders {
        r.abort();
    }
    c.shutdown_all().await;
}

/// Waits (bounded) until both responders told node 0 they replied to request `rid`.
async fn both_replied(c: &mut Cluster, rid: u64) {
    let replied = |e: &Event| matches!(e, Event::Custom(ev) if ev.name == "replied" && ev.data == rid.to_le_bytes()[..]);
    c.wait("both responders replied", Duration::from_secs(5), |c| {
        c.events_of(0).filter(|e| replied(e)).count() == 2
    })
    .await;
}
