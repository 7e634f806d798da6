//! The driver: one tokio task owns one core [`Node`] (no lock around it) and moves bytes,
//! time and commands between the node and the world.
//!
//! The task waits on whichever comes first: a datagram on the transport, a command from a
//! handle, addresses from a discovery backend, an admission decision, or the node's next
//! deadline (`Node::poll_timeout`). After every input it drains `Node::poll_output` (a
//! burst of datagrams already queued on the socket counts as one input): `Transmit` goes
//! to the transport, `Event` to the listeners, `Admission` to the connection filter (run
//! in its own task, its answer fed back through a channel). Protocol logic stays in the
//! core.
//!
//! Listeners use a tokio broadcast channel: a slow listener never blocks the node; when it
//! falls more than the channel capacity behind it loses the oldest events and is told how
//! many it missed (see [`NodeHandle::subscribe`]).

use bytes::Bytes;
use espial_core::wire::Claim;
use espial_core::{
    Admission, AdmissionId, AdmissionRequest, Discovery, Event, Metadata, MetadataError, Node,
    NodeId, NodeInfo, Output, PromoteError, RequestId, SendError, SendId, SendOutcome, Stats,
    SubscribeError, Target, Transport,
};
use futures::future::BoxFuture;
use futures::FutureExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::hub::{EventHub, EventSink};
use crate::request::RequestSlot;

/// Most datagrams fed to the node per wake-up before its outputs are drained.
const RECV_BURST: usize = 64;

/// An async admission filter: gets the join request, answers accept or reject.
pub type AdmissionFilter =
    Arc<dyn Fn(AdmissionRequest) -> BoxFuture<'static, Admission> + Send + Sync>;

/// Options of a driver task.
#[derive(Clone)]
pub struct DriverOptions {
    /// Capacity of the event broadcast channel (events a listener may fall behind).
    pub event_capacity: usize,
    /// The connection filter; `None` admits every node.
    pub filter: Option<AdmissionFilter>,
    /// A filter that does not answer within this time rejects the node.
    pub filter_timeout: Duration,
    /// Largest datagram received (bigger ones are truncated by the OS and then dropped by
    /// the core's decoder).
    pub recv_buffer: usize,
    /// Listeners through an [`EventHub`] instead of the broadcast channel: custom events
    /// are then flow-controlled up to the listeners (the node runs with
    /// `Node::set_app_consumption`; a send is delivered once every listener read it), and
    /// [`NodeHandle::subscribe`] sees no events.
    pub hub: Option<Arc<EventHub>>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            event_capacity: 4096,
            filter: None,
            filter_timeout: Duration::from_secs(5),
            recv_buffer: 65_536,
            hub: None,
        }
    }
}

impl std::fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverOptions")
            .field("event_capacity", &self.event_capacity)
            .field("filter", &self.filter.is_some())
            .field("filter_timeout", &self.filter_timeout)
            .field("recv_buffer", &self.recv_buffer)
            .field("hub", &self.hub.is_some())
            .finish()
    }
}

/// Counters kept by the driver (I/O outside the core).
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Datagrams the transport failed to send.
    pub send_errors: AtomicU64,
    /// Receive errors from the transport.
    pub recv_errors: AtomicU64,
    /// Admission decisions forced by a filter that timed out or panicked.
    pub filter_failures: AtomicU64,
    /// Address batches received from discovery backends.
    pub discovered_batches: AtomicU64,
}

/// A consistent picture of the node, refreshed by the task after every step that changed
/// it, so queries answer without a round trip.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The local node's current entry.
    pub me: NodeInfo,
    /// Live members (alive or suspected), the local node included, sorted by id.
    pub members: Arc<Vec<NodeInfo>>,
    /// The master the node follows, if any is alive.
    pub master: Option<NodeId>,
    /// The latest master claim known.
    pub claim: Option<Claim>,
    /// The core's counters. Refreshed with every other change, and while custom events
    /// arrive at least once per acknowledgement delay (not per event).
    pub stats: Stats,
    /// True once the node left (or its task stopped).
    pub stopped: bool,
}

impl Snapshot {
    fn of(node: &Node) -> Self {
        Snapshot {
            me: node.info().clone(),
            members: Arc::new(node.members()),
            master: node.master(),
            claim: node.claim(),
            stats: node.stats(),
            stopped: node.has_left(),
        }
    }

    /// A member by id (the local node included).
    pub fn member(&self, id: NodeId) -> Option<&NodeInfo> {
        if id == self.me.id {
            return Some(&self.me);
        }
        self.members
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .map(|i| &self.members[i])
    }
}

/// Replies from a request: `(node, payload)` in arrival order, plus who did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestReplies {
    /// Replies in arrival order.
    pub replies: Vec<(NodeId, Bytes)>,
    /// Targets that did not answer before the timeout.
    pub missing: Vec<NodeId>,
}

type Reply<T> = oneshot::Sender<T>;
type Decision = (AdmissionId, Admission);

/// A command for the task. Each carries a channel for its answer.
pub enum Command {
    /// `Node::subscribe`.
    Subscribe(String, Reply<Result<(), SubscribeError>>),
    /// `Node::unsubscribe`.
    Unsubscribe(String, Reply<Result<(), SubscribeError>>),
    /// `Node::send`; `outcome` (optional) receives the final delivery report.
    Send {
        /// Event name.
        name: String,
        /// Payload.
        payload: Bytes,
        /// Targets.
        target: Target,
        /// Answer: queued or refused.
        reply: Reply<Result<SendId, SendError>>,
        /// Receives the delivery report later.
        outcome: Option<Reply<SendOutcome>>,
    },
    /// `Node::send_batch`: each payload in order, stopping at the first refusal. Answers
    /// the ids of the events queued (a prefix of `payloads`), or the refusal when not even
    /// the first was queued.
    SendBatch {
        /// Event name.
        name: String,
        /// Payloads, in send order.
        payloads: Vec<Bytes>,
        /// Targets (the same for every payload).
        target: Target,
        /// Answer: the ids queued, or why none was.
        reply: Reply<Result<Vec<SendId>, SendError>>,
    },
    /// `Node::request`. Its replies and its end go to `slot`; they are published as
    /// `Event::Reply` / `Event::RequestDone` only if the slot's handle was dropped
    /// before reading them (see [`crate::request`]).
    Request {
        /// Event name.
        name: String,
        /// Payload.
        payload: Bytes,
        /// How long to collect replies.
        timeout: Duration,
        /// Answer: sent or refused.
        reply: Reply<Result<RequestId, SendError>>,
        /// Receives the replies and the end of the request.
        slot: RequestSlot,
    },
    /// `Node::reply`.
    Respond {
        /// Requesting node.
        to: NodeId,
        /// Its request.
        request: RequestId,
        /// Reply payload.
        payload: Bytes,
        /// Answer.
        reply: Reply<Result<(), SendError>>,
    },
    /// `Node::promote`.
    Promote(Reply<Result<(), PromoteError>>),
    /// `Node::set_metadata`.
    SetMetadata(Metadata, Reply<Result<(), MetadataError>>),
    /// Graceful leave: the leave datagrams are sent before the answer; the task then ends.
    Leave(Reply<()>),
}

/// A handle on a running driver task. Cheap to clone; the task leaves the cluster
/// gracefully and ends when every handle is dropped.
#[derive(Clone)]
pub struct NodeHandle {
    cmd: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<Event>,
    snapshot: watch::Receiver<Snapshot>,
    counters: Arc<NetCounters>,
    abort: tokio::task::AbortHandle,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What [`spawn`] returns: the handle, a receiver subscribed before the node's first event
/// (so `listening` is never missed), and the task.
pub struct Spawned {
    /// The handle.
    pub handle: NodeHandle,
    /// Receives every event from the very start.
    pub first_events: broadcast::Receiver<Event>,
    /// The task (ends after a graceful leave or when every handle is dropped).
    pub task: JoinHandle<()>,
}

impl NodeHandle {
    /// Sends a command to the task. Fails when the task has ended.
    pub fn command(&self, cmd: Command) -> Result<(), Command> {
        self.cmd.send(cmd).map_err(|e| e.0)
    }

    /// A new event listener. It receives events from now on; if it falls more than
    /// `DriverOptions::event_capacity` events behind, the oldest are dropped for it and its
    /// next `recv` reports `Lagged(n)`. The node itself never waits for listeners. With an
    /// event hub (`DriverOptions::hub`) it receives every event except custom events, which
    /// go to the hub's flow-controlled listeners only.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The latest snapshot (no round trip to the task).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// A watch on snapshots, to await changes.
    pub fn watch(&self) -> watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// The driver's I/O counters.
    pub fn counters(&self) -> &NetCounters {
        &self.counters
    }

    /// The transport's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True once the task has ended.
    pub fn is_stopped(&self) -> bool {
        self.cmd.is_closed()
    }

    /// Stops the task at once without telling anyone, as a crash would (peers detect the
    /// failure by probing). For demos and failure tests.
    pub fn kill(&self) {
        self.abort.abort();
    }
}

/// Starts the task that owns `node`.
///
/// Every discovery backend runs in its own task (its `announce` is called once with the
/// node's advertised address) and feeds the node through a channel.
pub fn spawn(
    mut node: Node,
    transport: Arc<dyn Transport>,
    discoveries: Vec<Box<dyn Discovery>>,
    opts: DriverOptions,
) -> std::io::Result<Spawned> {
    let local_addr = transport.local_addr()?;
    let advertised = node.info().addr;
    // Every log line of this node's tasks carries its name, id and address, so that
    // several nodes in one process can be told apart.
    let span = tracing::info_span!(
        "node",
        name = %node.info().name,
        id = %node.info().id,
        addr = %advertised
    );
    node.set_admission_filter(opts.filter.is_some());
    node.set_app_consumption(opts.hub.is_some());
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, first_events) = broadcast::channel(opts.event_capacity.max(16));
    let (snap_tx, snap_rx) = watch::channel(Snapshot::of(&node));
    let (disc_tx, disc_rx) = mpsc::channel(64);
    let counters = Arc::new(NetCounters::default());
    let mut disc_tasks = Vec::new();
    for mut d in discoveries {
        let tx = disc_tx.clone();
        let unverified = d.unverified();
        let span = span.clone();
        disc_tasks.push(tokio::spawn(Instrument::instrument(
            async move {
                if let Err(e) = d.announce(advertised).await {
                    tracing::warn!("discovery announce failed: {e}");
                }
                let mut failures = 0u32;
                loop {
                    match d.next().await {
                        Ok(addrs) => {
                            failures = 0;
                            if !addrs.is_empty() && tx.send((addrs, unverified)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            let wait = Duration::from_millis(200) * (1 << failures.min(7));
                            tracing::warn!("discovery failed: {e} (retrying in {wait:?})");
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            },
            span,
        )));
    }
    drop(disc_tx);
    let closer = HubCloser(opts.hub.clone());
    let task = Task {
        node,
        transport,
        sink: EventSink::new(opts.hub.clone(), ev_tx.clone()),
        snapshot: snap_tx,
        counters: counters.clone(),
        opts,
        adm: mpsc::unbounded_channel(),
        outcomes: HashMap::new(),
        requests: HashMap::new(),
        dirty: true,
        _disc: DiscoveryTasks(disc_tasks),
        _hub: closer,
    };
    let join = tokio::spawn(task.run(cmd_rx, disc_rx).instrument(span));
    let handle = NodeHandle {
        cmd: cmd_tx,
        events: ev_tx,
        snapshot: snap_rx,
        counters,
        abort: join.abort_handle(),
        local_addr,
    };
    Ok(Spawned {
        handle,
        first_events,
        task: join,
    })
}

/// Closes the event hub when the driver task ends (or is aborted): listeners then end
/// after reading what is left.
struct HubCloser(Option<Arc<EventHub>>);

impl Drop for HubCloser {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.close();
        }
    }
}

/// Aborts the discovery tasks when the driver task ends (or is aborted).
struct DiscoveryTasks(Vec<JoinHandle<()>>);

impl Drop for DiscoveryTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

struct Task {
    node: Node,
    transport: Arc<dyn Transport>,
    /// Where events go (the hub and/or the raw broadcast channel).
    sink: EventSink,
    snapshot: watch::Sender<Snapshot>,
    counters: Arc<NetCounters>,
    opts: DriverOptions,
    adm: (
        mpsc::UnboundedSender<Decision>,
        mpsc::UnboundedReceiver<Decision>,
    ),
    outcomes: HashMap<SendId, Reply<SendOutcome>>,
    requests: HashMap<RequestId, RequestSlot>,
    dirty: bool,
    _disc: DiscoveryTasks,
    _hub: HubCloser,
}

enum Step {
    Continue,
    Stop(Option<Reply<()>>),
}

impl Task {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut disc_rx: mpsc::Receiver<(Vec<SocketAddr>, bool)>,
    ) {
        let mut buf = vec![0u8; self.opts.recv_buffer.max(2048)];
        let mut recv_failures = 0u32;
        let transport = self.transport.clone();
        let hub = self.opts.hub.clone();
        // Listening (and anything else queued by Node::new).
        self.flush().await;
        // Rounds in a row that only reported consumption (see below).
        let mut consumption_rounds = 0;
        loop {
            if let Some(h) = &hub {
                // Consumption reaches the node by this task's next wake-up when that is
                // near enough (usually the ack it owes), saving a wake-up per event read.
                // An application draining a backlog on another thread could keep this
                // loop busy: after a few rounds in a row every read wakes the task, and
                // the select below weighs it against datagrams, commands and timers.
                let (slack, mut bytes) = self.node.consumption_report();
                if consumption_rounds >= CONSUMPTION_ROUNDS {
                    bytes = 0;
                }
                let n = h.arm(self.node.poll_timeout(), slack, bytes);
                if n > 0 {
                    self.node.events_consumed(Instant::now(), n);
                    self.flush().await;
                    if consumption_rounds < CONSUMPTION_ROUNDS {
                        consumption_rounds += 1;
                        continue;
                    }
                }
            }
            consumption_rounds = 0;
            let deadline = self.node.poll_timeout();
            let sleep_to = deadline.map(tokio::time::Instant::from_std);
            let step = tokio::select! {
                _ = consumed(hub.as_deref()) => {
                    self.take_consumed();
                    Step::Continue
                }
                cmd = cmd_rx.recv() => match cmd {
                    Some(cmd) => {
                        // What the listeners consumed before this command counts first (a
                        // worker that reads an event and then shuts down acknowledges it).
                        self.take_consumed();
                        // Take the commands already queued before draining outputs: sends
                        // issued together share datagrams (the core packs them at flush).
                        let mut step = self.command(cmd);
                        let mut taken = 0;
                        while matches!(step, Step::Continue) && taken < 256 {
                            match cmd_rx.try_recv() {
                                Ok(c) => {
                                    step = self.command(c);
                                    taken += 1;
                                }
                                Err(_) => break,
                            }
                        }
                        step
                    }
                    // Every handle dropped: leave gracefully.
                    None => Step::Stop(None),
                },
                Some((id, decision)) = self.adm.1.recv() => {
                    self.node.handle_admission(Instant::now(), id, decision);
                    Step::Continue
                }
                Some((addrs, unverified)) = disc_rx.recv() => {
                    self.counters.discovered_batches.fetch_add(1, Ordering::Relaxed);
                    if unverified {
                        self.node.handle_discovered_unverified(Instant::now(), &addrs);
                    } else {
                        self.node.handle_discovered(Instant::now(), &addrs);
                    }
                    Step::Continue
                }
                res = transport.recv_from(&mut buf) => {
                    match res {
                        Ok((n, from)) => {
                            recv_failures = 0;
                            let now = Instant::now();
                            self.node.handle_datagram(now, from, &buf[..n]);
                            self.feed_queued(transport.as_ref(), &mut buf, now);
                        }
                        Err(e) => {
                            self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                            recv_failures = recv_failures.saturating_add(1);
                            tracing::debug!("receive failed: {e}");
                            if recv_failures > 10 {
                                // A persistent error must not spin the task.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    Step::Continue
                }
                _ = tokio::time::sleep_until(sleep_to.unwrap_or_else(far_future)), if sleep_to.is_some() => {
                    // The acks due now carry what the listeners consumed meanwhile.
                    self.take_consumed();
                    self.node.handle_timeout(Instant::now());
                    self.dirty = true;
                    Step::Continue
                }
            };
            // A flood of input must not starve the timers.
            if let Some(d) = self.node.poll_timeout() {
                let now = Instant::now();
                if d <= now {
                    self.take_consumed();
                    self.node.handle_timeout(now);
                    self.dirty = true;
                }
            }
            self.flush().await;
            if let Step::Stop(reply) = step {
                self.take_consumed();
                self.node.leave(Instant::now());
                self.dirty = true;
                self.flush().await;
                if let Some(h) = &self.opts.hub {
                    h.close();
                }
                self.snapshot.send_modify(|s| s.stopped = true);
                if let Some(r) = reply {
                    let _ = r.send(());
                }
                return;
            }
        }
    }

    /// Feeds the datagrams already queued on the socket (at most `RECV_BURST - 1`, never
    /// waiting), so the caller drains the node once for the whole burst: one wake-up and one
    /// round of acknowledgements.
    fn feed_queued(&mut self, transport: &dyn Transport, buf: &mut [u8], now: Instant) {
        for _ in 1..RECV_BURST {
            match transport.try_recv_from(buf) {
                Ok(Some((n, from))) => self.node.handle_datagram(now, from, &buf[..n]),
                Ok(None) => return,
                Err(e) => {
                    self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("receive failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reports to the node the custom events the listeners consumed.
    fn take_consumed(&mut self) {
        if let Some(h) = &self.opts.hub {
            let n = h.take_consumed();
            if n > 0 {
                self.node.events_consumed(Instant::now(), n);
            }
        }
    }

    fn command(&mut self, cmd: Command) -> Step {
        let now = Instant::now();
        self.dirty = true;
        match cmd {
            Command::Subscribe(name, r) => {
                let _ = r.send(self.node.subscribe(now, &name));
            }
            Command::Unsubscribe(name, r) => {
                let _ = r.send(self.node.unsubscribe(now, &name));
            }
            Command::Send {
                name,
                payload,
                target,
                reply,
                outcome,
            } => {
                let res = self.node.send(now, &name, payload, target);
                if let (Ok(id), Some(o)) = (&res, outcome) {
                    self.outcomes.insert(*id, o);
                }
                let _ = reply.send(res);
            }
            Command::SendBatch {
                name,
                payloads,
                target,
                reply,
            } => {
                let (ids, refused) = self.node.send_batch(now, &name, payloads, target);
                let _ = reply.send(match refused {
                    Some(e) if ids.is_empty() => Err(e),
                    _ => Ok(ids),
                });
            }
            Command::Request {
                name,
                payload,
                timeout,
                reply,
                slot,
            } => {
                let res = self.node.request(now, &name, payload, timeout);
                if let Ok(id) = &res {
                    slot.attach(*id, self.sink.clone());
                    self.requests.insert(*id, slot);
                }
                let _ = reply.send(res);
            }
            Command::Respond {
                to,
                request,
                payload,
                reply,
            } => {
                let _ = reply.send(self.node.reply(now, to, request, payload));
            }
            Command::Promote(r) => {
                let _ = r.send(self.node.promote(now));
            }
            Command::SetMetadata(m, r) => {
                let _ = r.send(self.node.set_metadata(now, m));
            }
            Command::Leave(r) => return Step::Stop(Some(r)),
        }
        Step::Continue
    }

    /// Drains the node's outputs: datagrams out, snapshot refreshed, then events to
    /// listeners (so a listener that sees an event finds it reflected in the snapshot).
    async fn flush(&mut self) {
        let mut events = Vec::new();
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Transmit(t) => {
                    if let Err(e) = self.transport.send_to(&t.data, t.to).await {
                        self.counters.send_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("send to {} failed: {e}", t.to);
                    }
                }
                Output::Event(e) => events.push(e),
                Output::Admission(req) => self.admission(req),
            }
        }
        // Custom events change nothing in the snapshot but counters: those are refreshed at
        // the next timer (the ack the node owes for them is due within the ack delay), so
        // a stream of events does not rebuild the member list once per datagram.
        if self.dirty || events.iter().any(|e| !matches!(e, Event::Custom(_))) {
            self.dirty = false;
            self.snapshot.send_replace(Snapshot::of(&self.node));
        }
        for e in events {
            if self.route(&e) {
                // A reply (or the end) of a request a handle awaits: delivered to it only.
                continue;
            }
            self.sink.publish(e);
        }
    }

    /// Completes waiters of send outcomes and requests. Returns true when the event was
    /// for a waiter only: a reply to (or the end of) a request whose `PendingRequest` is
    /// alive goes to it, not to the listeners, so a reply is delivered once.
    fn route(&mut self, e: &Event) -> bool {
        match e {
            Event::SendOutcome(o) => {
                if let Some(w) = self.outcomes.remove(&o.send) {
                    let _ = w.send(o.clone());
                }
                false
            }
            Event::Reply { request, .. } => match self.requests.get(request) {
                Some(slot) if slot.offer(e) => true,
                Some(_) => {
                    // The handle was dropped: this and the rest are published as events.
                    self.requests.remove(request);
                    false
                }
                None => false,
            },
            Event::RequestDone { request, .. } => self
                .requests
                .remove(request)
                .is_some_and(|slot| slot.offer(e)),
            _ => false,
        }
    }

    fn admission(&mut self, req: AdmissionRequest) {
        let id = req.id;
        let tx = self.adm.0.clone();
        let Some(filter) = self.opts.filter.clone() else {
            let _ = tx.send((id, Admission::Accept));
            return;
        };
        let timeout = self.opts.filter_timeout;
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let fut = AssertUnwindSafe(filter(req)).catch_unwind();
            let decision = match tokio::time::timeout(timeout, fut).await {
                Ok(Ok(d)) => d,
                Ok(Err(_)) => {
                    counters.filter_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("connection filter panicked; rejecting the node");
                    Admission::Reject("connection filter failed".into())
                }
                Err(_) => {
                    counters.filter_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("connection filter did not answer in {timeout:?}; rejecting");
                    Admission::Reject("connection filter timed out".into())
                }
            };
            let _ = tx.send((id, decision));
        });
    }
}

/// Rounds of the task's loop in a row that may only report consumption before it waits
/// for input again (see `Task::run`).
const CONSUMPTION_ROUNDS: u32 = 4;

/// Resolves when the hub's listeners consumed custom events (never without a hub).
async fn consumed(hub: Option<&EventHub>) {
    match hub {
        Some(h) => h.consumed_notified().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}
