//! In-process clusters of real nodes (real UDP sockets on 127.0.x.y) with a merged event
//! log and deadline-bounded waits.

use espial::{Espial, Event, NodeId, RemovalReason};
use futures::StreamExt;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Several nodes of one test, their events merged in arrival order.
pub struct Cluster {
    /// The nodes, by index.
    pub nodes: Vec<Espial>,
    /// Whether each node is still running (not killed or shut down by the test).
    pub alive: Vec<bool>,
    /// Every event seen so far: (node index, arrival time, event).
    pub log: Vec<(usize, Instant, Event)>,
    tx: mpsc::UnboundedSender<(usize, Instant, Event)>,
    rx: mpsc::UnboundedReceiver<(usize, Instant, Event)>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Cluster {
            nodes: Vec::new(),
            alive: Vec::new(),
            log: Vec::new(),
            tx,
            rx,
        }
    }

    /// Adds a started node (its event stream starts at `listening`); returns its index.
    pub fn add(&mut self, node: Espial) -> usize {
        let i = self.nodes.len();
        let mut events = node.events();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if tx.send((i, Instant::now(), e)).is_err() {
                    break;
                }
            }
        });
        self.nodes.push(node);
        self.alive.push(true);
        i
    }

    /// Indices of the nodes still running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.alive[*i]).collect()
    }

    /// Takes in every event that arrived, without waiting.
    pub fn pump(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.log.push(e);
        }
    }

    /// Waits until `cond` holds, re-checking after every event (and every 10 ms for
    /// snapshot-only changes). Panics with a state dump after `limit`. Returns the time taken.
    pub async fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Cluster) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            self.pump();
            if cond(self) {
                return start.elapsed();
            }
            tokio::select! {
                Some(e) = self.rx.recv() => self.log.push(e),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("timed out after {limit:?} waiting for {what}\n{}", self.dump());
                }
            }
        }
    }

    /// Members and master as each node sees them, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let s = n.snapshot();
            let names: Vec<String> = s.members.iter().map(|m| m.name.clone()).collect();
            out += &format!(
                "  [{i}] {} alive={} master={:?} claim={:?} members={names:?}\n",
                s.me.name,
                self.alive[i],
                s.master.and_then(|m| s.member(m).map(|m| m.name.clone())),
                s.claim
            );
        }
        out
    }

    /// The master every node in `idx` follows, when they all follow the same live member.
    pub fn agreed_master_among(&self, idx: &[usize]) -> Option<NodeId> {
        let first = self.nodes[*idx.first()?].master_id()?;
        let ok = idx
            .iter()
            .all(|i| self.nodes[*i].master_id() == Some(first))
            && idx.iter().any(|i| self.nodes[*i].id() == first);
        ok.then_some(first)
    }

    /// The master all running nodes agree on.
    pub fn agreed_master(&self) -> Option<NodeId> {
        self.agreed_master_among(&self.live())
    }

    /// True when every node in `idx` sees exactly the members `idx` (by id).
    pub fn members_are(&self, idx: &[usize]) -> bool {
        let mut want: Vec<NodeId> = idx.iter().map(|i| self.nodes[*i].id()).collect();
        want.sort();
        idx.iter().all(|i| {
            let got: Vec<NodeId> = self.nodes[*i].nodes().iter().map(|n| n.id).collect();
            got == want
        })
    }

    /// Events of node `i`, in order.
    pub fn events_of(&self, i: usize) -> impl Iterator<Item = &Event> {
        self.log.iter().filter(move |e| e.0 == i).map(|e| &e.2)
    }

    /// Whether node `observer` emitted `removed_node` for `gone` with `reason`.
    pub fn saw_removal(&self, observer: usize, gone: NodeId, reason: RemovalReason) -> bool {
        self.events_of(observer).any(|e| {
            matches!(e, Event::NodeRemoved { node, reason: r } if node.id == gone && *r == reason)
        })
    }

    /// Stops node `i` abruptly (no leave message), as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
        self.alive[i] = false;
    }

    /// Shuts node `i` down gracefully.
    pub async fn shutdown(&mut self, i: usize) {
        self.nodes[i].shutdown().await.expect("shutdown");
        self.alive[i] = false;
    }

    /// Shuts every running node down.
    pub async fn shutdown_all(&mut self) {
        for i in self.live() {
            self.shutdown(i).await;
        }
    }
}
