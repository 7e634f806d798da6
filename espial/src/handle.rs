//! [`Espial`]: the handle on a running node.

use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::events::EventStream;
use bytes::Bytes;
use espial_core::event::check_event_name;
use espial_core::{
    Config, CustomEvent, Event, Metadata, NodeId, NodeInfo, RequestId, SendId, SendOutcome, Target,
};
use espial_net::driver::{Command, RequestReplies, Snapshot, Spawned};
use espial_net::multicast::BeaconCounters;
use espial_net::request::{request_slot, PendingReplies};
use espial_net::{EventHub, NodeHandle};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Most events of a `send_batch` queued by one command to the node's task (as many as the
/// task takes of separate `send` commands per wake-up).
const BATCH_CHUNK: usize = 256;

/// A running espial node. Cheap to clone (all clones control the same node).
///
/// Queries (`nodes`, `master`, `is_master`, `node_info`, `stats`) read a snapshot the
/// node's task refreshes after every change: they never wait. Commands go to the task
/// through a channel. Dropping the last clone (or returning from `main`) leaves the
/// cluster in the background, but nothing waits for it: the runtime may stop before the
/// last acknowledgements went out, so events the application read in its last moments can
/// be reported `failed` (not confirmed) to their senders. Call [`Espial::shutdown`]: it
/// acknowledges what the application read, tells the peers, reports this node's own
/// unconfirmed sends as failed, and waits until that is done.
///
/// ```no_run
/// # async fn f() -> espial::Result<()> {
/// use espial::{Espial, Event};
/// use futures::StreamExt;
///
/// let espial = Espial::builder().name("api-1").multicast_default().start().await?;
/// let mut events = espial.events();
/// espial.join("jobs").await?;
/// espial.send("jobs", "build #42").await?;
/// while let Some(event) = events.next().await {
///     match event {
///         Event::NewMaster { master, .. } => println!("master is now {master}"),
///         Event::Custom(e) => println!("{} from {}: {:?}", e.name, e.from, e.data),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Espial {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeHandle,
    hub: Arc<EventHub>,
    task: Mutex<Option<JoinHandle<()>>>,
    config: Config,
    bound: SocketAddr,
    beacons: Option<Arc<BeaconCounters>>,
    send_times: Option<Arc<crate::metrics::SendTimes>>,
}

/// A request sent with [`Espial::start_request`] whose replies are still being collected.
///
/// Its replies are delivered to it, once: as they arrive with [`PendingRequest::next_reply`],
/// and all together with [`PendingRequest::replies`]. They do not appear on the
/// [`Espial::events`] streams, except when this value is dropped before
/// [`PendingRequest::replies`] returned: then every reply it did not return, and the end,
/// arrive there as [`Event::Reply`] and [`Event::RequestDone`] (the end last). No reply is
/// lost to a drop, whenever it happens.
#[derive(Debug)]
pub struct PendingRequest {
    id: RequestId,
    replies: PendingReplies,
}

impl PendingRequest {
    /// The request's id (what [`Event::Reply`] carries if this value is dropped early).
    pub fn id(&self) -> RequestId {
        self.id
    }

    /// The next reply as it arrives, `(from, payload)`; `None` once the request has ended
    /// (every target answered, or the timeout). Replies returned here are still part of
    /// [`PendingRequest::replies`].
    pub async fn next_reply(&mut self) -> Option<(NodeId, Bytes)> {
        self.replies.next().await
    }

    /// Waits for the end of the request (every target answered, or the timeout), then
    /// returns every reply (in arrival order) and who did not answer.
    pub async fn replies(self) -> Result<RequestReplies> {
        self.replies.finish().await.ok_or(Error::Shutdown)
    }
}

/// Counters of a node: the core's (traffic, drops by cause, probes, deliveries) and the
/// driver's (I/O errors).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// The core's counters: every dropped datagram is counted under its cause.
    pub core: espial_core::Stats,
    /// Datagrams the socket failed to send.
    pub send_errors: u64,
    /// Socket receive errors.
    pub recv_errors: u64,
    /// Join requests rejected because the connection filter panicked or timed out.
    pub filter_failures: u64,
    /// Multicast beacons sent (0 without multicast discovery).
    pub beacons_sent: u64,
    /// Valid multicast beacons received from other nodes of the cluster.
    pub beacons_received: u64,
    /// Multicast beacons ignored: undecodable, another cluster, missing or wrong MAC.
    pub beacons_ignored: u64,
}

impl Espial {
    /// Starts configuring a node.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(crate) fn new(
        spawned: Spawned,
        hub: Arc<EventHub>,
        config: Config,
        bound: SocketAddr,
        beacons: Option<Arc<BeaconCounters>>,
        metrics: bool,
    ) -> Self {
        let send_times = metrics.then(Arc::<crate::metrics::SendTimes>::default);
        let espial = Espial {
            inner: Arc::new(Inner {
                node: spawned.handle,
                hub,
                task: Mutex::new(Some(spawned.task)),
                config,
                bound,
                beacons,
                send_times: send_times.clone(),
            }),
        };
        if let Some(times) = send_times {
            // A weak link would do too; the task ends when the node stops.
            tokio::spawn(crate::metrics::run(espial.clone(), times));
        }
        espial
    }

    /// A listener that does not take the first stream's start (for internal tasks).
    pub(crate) fn raw_events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.node.subscribe()
    }

    /// A new, independent event listener. The **first** call returns a stream that starts
    /// at the node's start (so it sees `listening`); later calls see events from the moment
    /// of the call (except when every earlier stream was dropped: then the new one gets
    /// what arrived meanwhile). See [`EventStream`] for what happens to a listener that
    /// falls behind, and why custom events wait for every stream.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.inner.hub.listen())
    }

    /// Subscribes to a custom event name: sends to that name reach this node from now on
    /// (the subscription is gossiped to every member). Core event names are refused.
    ///
    /// Like every command, it returns once the node's task has applied it: this node's
    /// subscriptions include `name` and the change is queued for gossip (members learn it
    /// within a few gossip rounds; a send from a member that has not yet heard of it does
    /// not target this node).
    pub async fn join(&self, name: &str) -> Result<()> {
        check_event_name(name)?;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Subscribe(name.to_string(), tx))?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??)
    }

    /// Unsubscribes from a custom event name; returns once the node's task has applied it
    /// (as [`Espial::join`]).
    pub async fn leave(&self, name: &str) -> Result<()> {
        check_event_name(name)?;
        let (tx, rx) = oneshot::channel();
        self.command(Command::Unsubscribe(name.to_string(), tx))?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??)
    }

    /// Publishes a custom event to every subscriber of `name`. Returns once queued;
    /// delivery is reliable, exactly once and in order per sender to subscribers that stay
    /// alive; the outcome is reported as [`Event::SendOutcome`] (or use
    /// [`Espial::send_confirmed`]).
    pub async fn send(&self, name: &str, payload: impl Into<Bytes>) -> Result<SendId> {
        self.send_target(name, payload.into(), Target::Subscribers, None)
            .await
    }

    /// Publishes several custom events to the subscribers of `name`, in order, with one
    /// round trip to the node's task per 256 events (events sent together share datagrams:
    /// the fastest way to send many). Like [`std::io::Write::write`] it may take only a
    /// prefix: it returns the ids of the events queued, all of them unless a queue filled up
    /// ([`SendError::Backpressure`](crate::SendError::Backpressure)) part way, in which case
    /// the rest were not queued and may be sent again later. It fails, queuing nothing, when
    /// not even the first could be queued. An empty batch queues nothing and returns no ids.
    ///
    /// ```no_run
    /// # async fn f(node: espial::Espial) -> espial::Result<()> {
    /// let mut rest: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    /// while !rest.is_empty() {
    ///     match node.send_batch("ticks", rest.iter().cloned()).await {
    ///         Ok(ids) => drop(rest.drain(..ids.len())),
    ///         Err(espial::Error::Send(espial::SendError::Backpressure(_))) => {
    ///             tokio::time::sleep(std::time::Duration::from_millis(1)).await
    ///         }
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_batch<P: Into<Bytes>>(
        &self,
        name: &str,
        payloads: impl IntoIterator<Item = P>,
    ) -> Result<Vec<SendId>> {
        check_event_name(name)?;
        let mut payloads = payloads.into_iter().map(Into::into).peekable();
        let mut ids = Vec::new();
        // The node's task queues one chunk per command, so other input (datagrams, timers)
        // is handled between chunks however long the batch is.
        while payloads.peek().is_some() {
            let chunk: Vec<Bytes> = payloads.by_ref().take(BATCH_CHUNK).collect();
            let asked = chunk.len();
            let (tx, rx) = oneshot::channel();
            self.command(Command::SendBatch {
                name: name.to_string(),
                payloads: chunk,
                target: Target::Subscribers,
                reply: tx,
            })?;
            match rx.await.map_err(|_| Error::Shutdown)? {
                Ok(queued) => {
                    let partial = queued.len() < asked;
                    ids.extend(queued);
                    if partial {
                        break;
                    }
                }
                Err(e) if ids.is_empty() => return Err(e.into()),
                Err(_) => break,
            }
        }
        Ok(ids)
    }

    /// Sends a custom event to these nodes (they need not be subscribed).
    pub async fn send_to(
        &self,
        ids: impl IntoIterator<Item = NodeId>,
        name: &str,
        payload: impl Into<Bytes>,
    ) -> Result<SendId> {
        let target = Target::Nodes(ids.into_iter().collect());
        self.send_target(name, payload.into(), target, None).await
    }

    /// Sends a custom event to the current master.
    pub async fn send_to_master(&self, name: &str, payload: impl Into<Bytes>) -> Result<SendId> {
        self.send_target(name, payload.into(), Target::Master, None)
            .await
    }

    /// Sends to the subscribers of `name` and waits for the delivery report: which
    /// targets acknowledged and which failed (died or left before acknowledging).
    pub async fn send_confirmed(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
    ) -> Result<SendOutcome> {
        let (tx, rx) = oneshot::channel();
        self.send_target(name, payload.into(), Target::Subscribers, Some(tx))
            .await?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Serializes `value` as JSON and sends it to the subscribers of `name`.
    pub async fn send_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<SendId> {
        let data = serde_json::to_vec(value)?;
        self.send(name, data).await
    }

    /// Serializes `value` as JSON and sends it to these nodes.
    pub async fn send_json_to<T: Serialize + ?Sized>(
        &self,
        ids: impl IntoIterator<Item = NodeId>,
        name: &str,
        value: &T,
    ) -> Result<SendId> {
        let data = serde_json::to_vec(value)?;
        self.send_to(ids, name, data).await
    }

    async fn send_target(
        &self,
        name: &str,
        payload: Bytes,
        target: Target,
        outcome: Option<oneshot::Sender<SendOutcome>>,
    ) -> Result<SendId> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Send {
            name: name.to_string(),
            payload,
            target,
            reply: tx,
            outcome,
        })?;
        let id = rx.await.map_err(|_| Error::Shutdown)??;
        if let Some(t) = &self.inner.send_times {
            t.sent(id);
        }
        Ok(id)
    }

    /// Waits until this node sees at least `members` live members (itself included) and
    /// follows a master; [`Error::Timeout`] after `timeout` (with what it saw),
    /// [`Error::Shutdown`] if the node stops.
    ///
    /// ```no_run
    /// # async fn f(espial: espial::Espial) -> espial::Result<()> {
    /// espial.wait_for_cluster(3, std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_cluster(&self, members: usize, timeout: Duration) -> Result<()> {
        let mut watch = self.inner.node.watch();
        let wait = async {
            loop {
                {
                    let s = watch.borrow_and_update();
                    if s.stopped {
                        return Err(Error::Shutdown);
                    }
                    if s.members.len() >= members && s.master.is_some() {
                        return Ok(());
                    }
                }
                if watch.changed().await.is_err() {
                    return Err(Error::Shutdown);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => {
                let s = self.snapshot();
                Err(Error::Timeout(format!(
                    "waiting for {members} members and a master: {} members, master {}",
                    s.members.len(),
                    s.master.map_or("none".to_string(), |m| m.to_string())
                )))
            }
        }
    }

    /// Sends a request to the subscribers of `name` and collects their replies for
    /// `timeout` (like a serf query). Receivers see a [`CustomEvent`] whose `request` is set
    /// and answer with [`Espial::reply`]. The replies are delivered once, as this call's
    /// result: they do not also appear as [`Event::Reply`] on the events streams.
    pub async fn request(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<RequestReplies> {
        self.start_request(name, payload, timeout)
            .await?
            .replies()
            .await
    }

    /// Sends a request like [`Espial::request`] but returns as soon as it is sent: read the
    /// replies as they arrive with [`PendingRequest::next_reply`], or all of them at the end
    /// with [`PendingRequest::replies`].
    pub async fn start_request(
        &self,
        name: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<PendingRequest> {
        let (tx, rx) = oneshot::channel();
        // Dropped with this future if it is cancelled: the replies are then published.
        let (replies, slot) = request_slot();
        self.command(Command::Request {
            name: name.to_string(),
            payload: payload.into(),
            timeout,
            reply: tx,
            slot,
        })?;
        let id = rx.await.map_err(|_| Error::Shutdown)??;
        Ok(PendingRequest { id, replies })
    }

    /// Answers a request received as a custom event (`event.request` is set). Does nothing
    /// for plain events.
    pub async fn reply(&self, event: &CustomEvent, payload: impl Into<Bytes>) -> Result<()> {
        match event.request {
            Some(request) => self.reply_to(event.from, request, payload).await,
            None => Ok(()),
        }
    }

    /// Answers request `request` of node `from` (the `from` and `request` of a
    /// [`CustomEvent`] received earlier).
    pub async fn reply_to(
        &self,
        from: NodeId,
        request: RequestId,
        payload: impl Into<Bytes>,
    ) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Respond {
            to: from,
            request,
            payload: payload.into(),
            reply: tx,
        })?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??)
    }

    /// Live members of the cluster (alive or suspected), this node included, sorted by id.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.snapshot().members.as_ref().clone()
    }

    /// Live members other than this node.
    pub fn peers(&self) -> Vec<NodeInfo> {
        let s = self.snapshot();
        s.members
            .iter()
            .filter(|n| n.id != s.me.id)
            .cloned()
            .collect()
    }

    /// A member by id (this node included).
    pub fn node(&self, id: NodeId) -> Option<NodeInfo> {
        self.snapshot().member(id).cloned()
    }

    /// The current master, if one is known and alive.
    pub fn master(&self) -> Option<NodeInfo> {
        let s = self.snapshot();
        s.master.and_then(|m| s.member(m).cloned())
    }

    /// The current master's id, if one is known and alive.
    pub fn master_id(&self) -> Option<NodeId> {
        self.snapshot().master
    }

    /// True when this node is the master.
    pub fn is_master(&self) -> bool {
        let s = self.snapshot();
        s.master == Some(s.me.id)
    }

    /// Takes over as master with a higher election term. Fails when the node is not
    /// master-eligible or, in quorum mode, sees too few members.
    pub async fn promote(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Promote(tx))?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??)
    }

    /// Replaces this node's metadata; every member sees it shortly after (gossip).
    pub async fn set_metadata<K, V>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<()>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let m = Metadata::from_pairs(pairs, self.inner.config.max_metadata_bytes)?;
        self.set_metadata_map(m).await
    }

    /// Replaces this node's metadata with a prepared [`Metadata`].
    pub async fn set_metadata_map(&self, metadata: Metadata) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::SetMetadata(metadata, tx))?;
        Ok(rx.await.map_err(|_| Error::Shutdown)??)
    }

    /// This node's own entry (id, name, advertised address, metadata, subscriptions...).
    pub fn node_info(&self) -> NodeInfo {
        self.snapshot().me
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.snapshot().me.id
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.bound
    }

    /// The address other nodes send to.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.snapshot().me.addr
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Counters: traffic, drops by cause, I/O errors.
    pub fn stats(&self) -> Stats {
        let c = self.inner.node.counters();
        let b = |f: fn(&BeaconCounters) -> &AtomicU64| {
            self.inner
                .beacons
                .as_ref()
                .map_or(0, |bc| f(bc).load(Ordering::Relaxed))
        };
        Stats {
            core: self.snapshot().stats,
            send_errors: c.send_errors.load(Ordering::Relaxed),
            recv_errors: c.recv_errors.load(Ordering::Relaxed),
            filter_failures: c.filter_failures.load(Ordering::Relaxed),
            beacons_sent: b(|x| &x.sent),
            beacons_received: b(|x| &x.received),
            beacons_ignored: b(|x| &x.ignored),
        }
    }

    /// The full snapshot the queries read.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.node.snapshot()
    }

    /// True once the node has shut down (or was killed).
    pub fn is_stopped(&self) -> bool {
        self.inner.node.is_stopped()
    }

    /// Leaves the cluster gracefully and stops the node: members are told at once (they
    /// emit `removed_node` with reason `left`), the leave datagrams are sent before this
    /// returns. Idempotent.
    pub async fn shutdown(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.inner.node.command(Command::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }

    /// Stops the node at once **without** telling anyone, as a crash would: peers notice by
    /// failure detection. For demos and failure tests.
    pub fn kill(&self) {
        self.inner.node.kill();
    }

    fn command(&self, cmd: Command) -> Result<()> {
        self.inner.node.command(cmd).map_err(|_| Error::Shutdown)
    }
}

impl std::fmt::Debug for Espial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Espial")
            .field("id", &s.me.id)
            .field("name", &s.me.name)
            .field("addr", &s.me.addr)
            .field("members", &s.members.len())
            .field("master", &s.master)
            .finish()
    }
}

/// Decodes a custom event's JSON payload (the counterpart of [`Espial::send_json`]).
///
/// ```
/// use espial::{decode_json, CustomEvent, NodeId};
/// let e = CustomEvent::new("jobs", NodeId(1), br#"{"n":3}"#.to_vec());
/// #[derive(serde::Deserialize)] struct Job { n: u32 }
/// assert_eq!(decode_json::<Job>(&e).unwrap().n, 3);
/// ```
pub fn decode_json<T: serde::de::DeserializeOwned>(event: &CustomEvent) -> Result<T> {
    Ok(serde_json::from_slice(&event.data)?)
}
