//! The driver task over an in-memory transport (no socket is opened): joins, the async
//! admission filter (accept, reject, timeout, panic), snapshot-before-event ordering,
//! graceful leave with flushed datagrams, and leave on drop of the last handle.

use async_trait::async_trait;
use espial_core::{
    Admission, Config, Discovery, Event, Node, NodeId, NodeInfo, PlaintextTestCipher,
    RemovalReason, Transport,
};
use espial_net::driver::{self, AdmissionFilter, Command, DriverOptions, Spawned};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot};

type Inbox = mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>;

/// A lossless in-memory datagram network.
#[derive(Default)]
struct MemNet {
    inboxes: Mutex<HashMap<SocketAddr, Inbox>>,
}

struct MemTransport {
    addr: SocketAddr,
    net: Arc<MemNet>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>>,
}

impl MemNet {
    fn attach(self: &Arc<Self>, addr: SocketAddr) -> MemTransport {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inboxes.lock().unwrap().insert(addr, tx);
        MemTransport {
            addr,
            net: self.clone(),
            rx: tokio::sync::Mutex::new(rx),
        }
    }
}

#[async_trait]
impl Transport for MemTransport {
    async fn send_to(&self, data: &[u8], to: SocketAddr) -> std::io::Result<()> {
        if let Some(tx) = self.net.inboxes.lock().unwrap().get(&to) {
            let _ = tx.send((data.to_vec(), self.addr));
        }
        Ok(())
    }
    async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some((d, from)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok((n, from))
            }
            None => std::future::pending().await,
        }
    }
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Yields its seeds once, then nothing.
struct Once(Option<Vec<SocketAddr>>);

#[async_trait]
impl Discovery for Once {
    async fn next(&mut self) -> std::io::Result<Vec<SocketAddr>> {
        match self.0.take() {
            Some(v) => Ok(v),
            None => std::future::pending().await,
        }
    }
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 200, 1], i)) // never bound: in-memory network only
}

fn start(
    net: &Arc<MemNet>,
    i: u16,
    seeds: Vec<SocketAddr>,
    filter: Option<AdmissionFilter>,
    filter_timeout: Duration,
) -> Spawned {
    let me = NodeInfo::new(NodeId(i as u128), format!("n{i}"), addr(i));
    let node = Node::new(
        Config::local(),
        me,
        Box::new(PlaintextTestCipher::for_node(NodeId(i as u128))),
        i as u64,
        Instant::now(),
    )
    .unwrap();
    let opts = DriverOptions {
        filter,
        filter_timeout,
        ..Default::default()
    };
    driver::spawn(
        node,
        Arc::new(net.attach(addr(i))),
        vec![Box::new(Once(Some(seeds)))],
        opts,
    )
    .unwrap()
}

async fn next_matching(
    rx: &mut broadcast::Receiver<Event>,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    let wait = async {
        loop {
            let e = rx.recv().await.expect("event stream open");
            if f(&e) {
                return e;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 5 s"))
}

#[tokio::test]
async fn join_then_snapshot_reflects_every_event_it_follows() {
    let net = Arc::new(MemNet::default());
    let mut a = start(&net, 1, vec![], None, Duration::from_secs(1));
    let mut b = start(&net, 2, vec![addr(1)], None, Duration::from_secs(1));
    assert!(matches!(
        a.first_events.recv().await.unwrap(),
        Event::Listening { .. }
    ));
    next_matching(&mut b.first_events, "node_accepted", |e| {
        matches!(e, Event::Accepted { .. })
    })
    .await;
    next_matching(
        &mut a.first_events,
        "added_node",
        |e| matches!(e, Event::NodeAdded { node } if node.id == NodeId(2)),
    )
    .await;
    // The snapshot is refreshed before listeners see the event.
    assert!(a.handle.snapshot().member(NodeId(2)).is_some());
    b.handle.command(Command::Leave(oneshot::channel().0)).ok();
    a.handle.command(Command::Leave(oneshot::channel().0)).ok();
}

#[tokio::test]
async fn async_filter_rejects_and_the_reason_reaches_the_joiner() {
    let net = Arc::new(MemNet::default());
    let filter: AdmissionFilter = Arc::new(|req| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await; // really async
            if req.node.name == "n2" {
                Admission::Reject("n2 is not welcome".into())
            } else {
                Admission::Accept
            }
        })
    });
    let a = start(&net, 1, vec![], Some(filter), Duration::from_secs(1));
    let mut b = start(&net, 2, vec![addr(1)], None, Duration::from_secs(1));
    let e = next_matching(&mut b.first_events, "node_rejected", |e| {
        matches!(e, Event::Rejected { .. })
    })
    .await;
    assert!(matches!(e, Event::Rejected { reason, .. } if reason == "n2 is not welcome"));
    assert_eq!(a.handle.snapshot().members.len(), 1);
}

#[tokio::test]
async fn filter_that_hangs_or_panics_rejects() {
    let net = Arc::new(MemNet::default());
    let hang: AdmissionFilter = Arc::new(|_| Box::pin(std::future::pending()));
    let _a = start(&net, 1, vec![], Some(hang), Duration::from_millis(100));
    let mut b = start(&net, 2, vec![addr(1)], None, Duration::from_secs(1));
    let e = next_matching(&mut b.first_events, "node_rejected", |e| {
        matches!(e, Event::Rejected { .. })
    })
    .await;
    assert!(matches!(e, Event::Rejected { reason, .. } if reason.contains("timed out")));

    let panics: AdmissionFilter = Arc::new(|_| Box::pin(async { panic!("filter bug") }));
    let c = start(&net, 3, vec![], Some(panics), Duration::from_secs(1));
    let mut d = start(&net, 4, vec![addr(3)], None, Duration::from_secs(1));
    let e = next_matching(&mut d.first_events, "node_rejected", |e| {
        matches!(e, Event::Rejected { .. })
    })
    .await;
    assert!(matches!(e, Event::Rejected { reason, .. } if reason.contains("failed")));
    assert_eq!(
        c.handle
            .counters()
            .filter_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn leave_flushes_before_answering_and_dropping_the_last_handle_leaves() {
    let net = Arc::new(MemNet::default());
    let mut a = start(&net, 1, vec![], None, Duration::from_secs(1));
    let b = start(&net, 2, vec![addr(1)], None, Duration::from_secs(1));
    let c = start(&net, 3, vec![addr(1)], None, Duration::from_secs(1));
    let mut w = a.handle.watch();
    tokio::time::timeout(Duration::from_secs(5), w.wait_for(|s| s.members.len() == 3))
        .await
        .expect("3 members")
        .unwrap();

    let (tx, rx) = oneshot::channel();
    b.handle.command(Command::Leave(tx)).ok().unwrap();
    rx.await.unwrap();
    assert!(b.handle.snapshot().stopped);
    next_matching(&mut a.first_events, "removed_node (left) of n2", |e| {
        matches!(e, Event::NodeRemoved { node, reason: RemovalReason::Left } if node.id == NodeId(2))
    })
    .await;
    assert!(
        b.handle
            .command(Command::Leave(oneshot::channel().0))
            .is_err(),
        "the task ended"
    );

    drop(c.handle);
    drop(c.first_events);
    next_matching(&mut a.first_events, "removed_node (left) of n3", |e| {
        matches!(e, Event::NodeRemoved { node, reason: RemovalReason::Left } if node.id == NodeId(3))
    })
    .await;
}
