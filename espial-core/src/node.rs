//! The node state machine: the one type a driver owns.
//!
//! API STUB: signatures are final; the bodies are being filled in (membership, election,
//! sessions, delivery). Drivers and the simulator can be written against it now.

use crate::cipher::Cipher;
use crate::config::{Config, ConfigError};
use crate::error::{MetadataError, PromoteError, SendError, SubscribeError};
use crate::event::{check_event_name, Event, RequestId, SendId};
use crate::output::{Admission, AdmissionId, Output};
use crate::stats::Stats;
use crate::wire::Claim;
use crate::{Metadata, NodeId, NodeInfo};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Who a custom event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every live member subscribed to the event name.
    Subscribers,
    /// These nodes (they need not be subscribed).
    Nodes(Vec<NodeId>),
    /// The current master.
    Master,
}

/// One espial node as a pure state machine.
///
/// Inputs: [`Node::handle_datagram`], [`Node::handle_discovered`], [`Node::handle_admission`],
/// [`Node::handle_timeout`] and the command methods. After each, drain
/// [`Node::poll_output`] and sleep until [`Node::poll_timeout`].
pub struct Node {
    config: Config,
    me: NodeInfo,
    #[allow(dead_code)]
    cipher: Box<dyn Cipher>,
    outputs: VecDeque<Output>,
    started: Instant,
    claim: Option<Claim>,
    stats: Stats,
    left: bool,
}

impl Node {
    /// Creates a node. `seed` drives every random choice (probe order, jitter); give each
    /// node a different one (the driver uses OS randomness, the simulator a seeded one).
    /// Emits `Listening`.
    pub fn new(
        config: Config,
        me: NodeInfo,
        cipher: Box<dyn Cipher>,
        seed: u64,
        now: Instant,
    ) -> Result<Node, ConfigError> {
        config.validate()?;
        let _ = seed;
        let mut node = Node {
            config,
            me: me.clone(),
            cipher,
            outputs: VecDeque::new(),
            started: now,
            claim: None,
            stats: Stats::default(),
            left: false,
        };
        node.outputs
            .push_back(Output::Event(Event::Listening { node: me }));
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me.id
    }

    /// This node's current entry (incarnation, metadata, subscriptions).
    pub fn info(&self) -> &NodeInfo {
        &self.me
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// When `true`, every join request is reported as [`Output::Admission`] and waits for
    /// [`Node::handle_admission`]; when `false` (default) every node is admitted.
    pub fn set_admission_filter(&mut self, enabled: bool) {
        let _ = enabled;
    }

    /// Feeds a received datagram. Malformed, forged or replayed datagrams are dropped and
    /// counted in [`Node::stats`]; this never panics.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let _ = (now, from);
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
    }

    /// Feeds addresses found by discovery; the node joins through those that are not
    /// already live members.
    pub fn handle_discovered(&mut self, now: Instant, addrs: &[SocketAddr]) {
        let _ = (now, addrs);
    }

    /// Answers an [`Output::Admission`] request.
    pub fn handle_admission(&mut self, now: Instant, id: AdmissionId, decision: Admission) {
        let _ = (now, id, decision);
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        if self.claim.is_none()
            && self.me.master_eligible
            && now >= self.started + self.config.election_timeout
        {
            let claim = Claim {
                term: 1,
                priority: self.me.priority,
                master: self.me.id,
            };
            self.claim = Some(claim);
            self.outputs.push_back(Output::Event(Event::Promotion {
                previous: None,
                term: 1,
            }));
        }
    }

    /// Next output to act on, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`Node::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        Some(self.started + self.config.election_timeout)
    }

    /// Subscribes to a custom event name (gossiped to every member).
    pub fn subscribe(&mut self, now: Instant, name: &str) -> Result<(), SubscribeError> {
        let _ = now;
        check_event_name(name)?;
        self.me.subscriptions.insert(name.to_string());
        Ok(())
    }

    /// Unsubscribes from a custom event name.
    pub fn unsubscribe(&mut self, now: Instant, name: &str) -> Result<(), SubscribeError> {
        let _ = now;
        check_event_name(name)?;
        self.me.subscriptions.remove(name);
        Ok(())
    }

    /// Publishes a custom event. Delivery is reliable and ordered per sender; the outcome
    /// arrives later as [`Event::SendOutcome`].
    pub fn send(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        target: Target,
    ) -> Result<SendId, SendError> {
        let _ = (now, target);
        check_event_name(name)?;
        if payload.len() > self.config.max_event_payload {
            return Err(SendError::TooLarge {
                size: payload.len(),
                limit: self.config.max_event_payload,
            });
        }
        Err(SendError::Shutdown)
    }

    /// Sends a request to the subscribers of `name`; replies arrive as [`Event::Reply`],
    /// and [`Event::RequestDone`] summarizes at the timeout.
    pub fn request(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<RequestId, SendError> {
        let _ = (now, name, payload, timeout);
        Err(SendError::Shutdown)
    }

    /// Replies to a request received as a [`crate::CustomEvent`] with `request` set.
    pub fn reply(
        &mut self,
        now: Instant,
        to: NodeId,
        request: RequestId,
        payload: Bytes,
    ) -> Result<(), SendError> {
        let _ = (now, to, request, payload);
        Err(SendError::Shutdown)
    }

    /// Forces this node to take over as master with a higher term.
    pub fn promote(&mut self, now: Instant) -> Result<(), PromoteError> {
        let _ = now;
        if !self.me.master_eligible {
            return Err(PromoteError::NotEligible);
        }
        Ok(())
    }

    /// Replaces this node's metadata (gossiped to every member).
    pub fn set_metadata(&mut self, now: Instant, metadata: Metadata) -> Result<(), MetadataError> {
        let _ = now;
        metadata.check(self.config.max_metadata_bytes)?;
        self.me.metadata = metadata;
        Ok(())
    }

    /// Leaves the cluster gracefully: members are told at once. The node is inert afterwards.
    pub fn leave(&mut self, now: Instant) {
        let _ = now;
        self.left = true;
    }

    /// True once [`Node::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Live members (alive or suspected), this node included, sorted by id.
    pub fn members(&self) -> Vec<NodeInfo> {
        vec![self.me.clone()]
    }

    /// A member's entry by id (this node included).
    pub fn member(&self, id: NodeId) -> Option<&NodeInfo> {
        (id == self.me.id).then_some(&self.me)
    }

    /// The master this node currently follows (itself when master), if any is alive.
    pub fn master(&self) -> Option<NodeId> {
        self.claim.map(|c| c.master)
    }

    /// True when this node is the master.
    pub fn is_master(&self) -> bool {
        self.master() == Some(self.me.id)
    }

    /// The latest master claim known (its master may be dead).
    pub fn claim(&self) -> Option<Claim> {
        self.claim
    }

    /// Highest election term seen.
    pub fn max_term(&self) -> u64 {
        self.claim.map(|c| c.term).unwrap_or(0)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }
}
