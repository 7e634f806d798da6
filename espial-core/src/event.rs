//! Events a node reports to the application.

use crate::{NodeId, NodeInfo};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Why a node left the member list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RemovalReason {
    /// It announced a graceful leave.
    Left,
    /// It stopped answering probes and suspicion expired (or it restarted under a new id).
    Failed,
}

impl RemovalReason {
    /// `"left"` or `"failed"`, as in the JSON-lines contract.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Left => "left",
            RemovalReason::Failed => "failed",
        }
    }
}

/// Identifies one `send` for its outcome report. (Exhaustive: a number, nothing more.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SendId(pub u64);

/// Identifies one `request` for its replies and summary. (Exhaustive: a number.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// A custom event received from another node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CustomEvent {
    /// The event name the sender published to.
    pub name: String,
    /// The sender.
    pub from: NodeId,
    /// The payload, reassembled when it spanned several datagrams.
    pub data: Bytes,
    /// Set when the sender is a `request` that waits for a reply.
    pub request: Option<RequestId>,
}

impl CustomEvent {
    /// A plain event (no request), as received from `from` (for tests and for code that
    /// builds events to feed its own handlers).
    pub fn new(name: impl Into<String>, from: NodeId, data: impl Into<Bytes>) -> Self {
        CustomEvent {
            name: name.into(),
            from,
            data: data.into(),
            request: None,
        }
    }
}

/// Final outcome of one `send`: which targets acknowledged it and which did not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOutcome {
    /// The send this reports.
    pub send: SendId,
    /// Targets that acknowledged delivery.
    pub delivered: Vec<NodeId>,
    /// Targets that died, left or unsubscribed before acknowledging.
    pub failed: Vec<NodeId>,
}

impl SendOutcome {
    /// The outcome of `send`: who acknowledged it, who did not.
    pub fn new(send: SendId, delivered: Vec<NodeId>, failed: Vec<NodeId>) -> Self {
        SendOutcome {
            send,
            delivered,
            failed,
        }
    }
}

/// Everything the core reports to the application. Names follow the original package:
/// `listening`, `added_node`, `removed_node`, `node_accepted`, `node_rejected`, `new_master`,
/// `promotion`, `demotion`, plus custom events and delivery reports. New kinds of events
/// are added over time: match with a `_` arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The node started (`listening`).
    Listening {
        /// The local node.
        node: NodeInfo,
    },
    /// A node entered this node's member list (`added_node`).
    NodeAdded {
        /// The new member.
        node: NodeInfo,
    },
    /// A member changed its metadata or subscriptions.
    NodeUpdated {
        /// The member with its latest state.
        node: NodeInfo,
    },
    /// A node left the member list (`removed_node`).
    NodeRemoved {
        /// The member as last known.
        node: NodeInfo,
        /// Graceful leave or failure.
        reason: RemovalReason,
    },
    /// This node was admitted to a cluster (`node_accepted`), emitted once per join.
    Accepted {
        /// The member that admitted it.
        by: NodeInfo,
    },
    /// This node's join was refused (`node_rejected`).
    Rejected {
        /// The refusing member's address.
        by: std::net::SocketAddr,
        /// The reason given by the admission filter.
        reason: String,
    },
    /// Another node became master (`new_master`).
    NewMaster {
        /// The new master's id.
        master: NodeId,
        /// Its member entry when known.
        node: Option<NodeInfo>,
        /// The election term of its claim.
        term: u64,
    },
    /// This node became master (`promotion`).
    Promotion {
        /// The master it replaces, if any was known.
        previous: Option<NodeId>,
        /// The term of its claim.
        term: u64,
    },
    /// This node stopped being master (`demotion`).
    Demotion {
        /// The master that replaced it, or `None` when it stepped down (quorum lost).
        new_master: Option<NodeId>,
        /// The term of the replacing claim (or of the resigned one).
        term: u64,
    },
    /// This node knows no master any more (`no_master`): the master it followed (or this
    /// node itself, after its `demotion`) resigned, lost its lease or was removed, and no
    /// other claim is known yet. In quorum mode a minority stays in this state until a
    /// quorum elects a master; `new_master` or `promotion` ends it.
    NoMaster {
        /// The master it followed until now.
        previous: NodeId,
    },
    /// A custom event (`custom`).
    Custom(CustomEvent),
    /// Outcome of a `send` once every target acknowledged or failed.
    SendOutcome(SendOutcome),
    /// A reply to one of this node's requests. (The `espial` facade gives the replies of a
    /// request to the request's caller; its event streams show this only for a request
    /// nobody awaits any more.)
    Reply {
        /// The request.
        request: RequestId,
        /// The replying node.
        from: NodeId,
        /// The reply payload.
        data: Bytes,
    },
    /// A handshake with `addr` failed for a reason an operator can fix, e.g. a different
    /// cluster key (`handshake_failed`). Reported once per address; also logged as a
    /// warning. Forged packets can cause it too, so it is a hint, not proof.
    HandshakeFailed {
        /// The peer's address.
        addr: std::net::SocketAddr,
        /// What probably differs, e.g. "different cluster key?".
        reason: String,
    },
    /// A request ended (timeout, or no target can still answer): who answered and who did
    /// not. (In the `espial` facade, on the event streams only like [`Event::Reply`].)
    RequestDone {
        /// The request.
        request: RequestId,
        /// Nodes that replied.
        answered: Vec<NodeId>,
        /// Targets that did not reply in time.
        missing: Vec<NodeId>,
    },
    /// A gap: custom events from `from` that this node will never receive (`events_missed`).
    /// Either `from` gave up on sending them (this node was unreachable or paused; `from`
    /// reported them failed, "not confirmed", and `name` is `None`: the count may include
    /// replies), or `from` published `count` events named `name` while this node was out of
    /// its member view (removed as failed, then back). Reported in order with `from`'s
    /// other events: everything after it was sent after the gap.
    EventsMissed {
        /// The sender.
        from: NodeId,
        /// The event name when known.
        name: Option<String>,
        /// How many events were missed.
        count: u64,
    },
}

impl Event {
    /// The event's name in the JSON-lines contract.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Listening { .. } => "listening",
            Event::NodeAdded { .. } => "added_node",
            Event::NodeUpdated { .. } => "updated_node",
            Event::NodeRemoved { .. } => "removed_node",
            Event::Accepted { .. } => "node_accepted",
            Event::Rejected { .. } => "node_rejected",
            Event::NewMaster { .. } => "new_master",
            Event::Promotion { .. } => "promotion",
            Event::Demotion { .. } => "demotion",
            Event::NoMaster { .. } => "no_master",
            Event::Custom(_) => "custom",
            Event::SendOutcome(_) => "send_outcome",
            Event::Reply { .. } => "reply",
            Event::RequestDone { .. } => "request_done",
            Event::HandshakeFailed { .. } => "handshake_failed",
            Event::EventsMissed { .. } => "events_missed",
        }
    }
}

/// Names reserved for core events; custom events cannot use them.
pub const RESERVED_EVENT_NAMES: &[&str] = &[
    "listening",
    "added_node",
    "removed_node",
    "updated_node",
    "node_accepted",
    "node_rejected",
    "new_master",
    "promotion",
    "demotion",
    "no_master",
    "custom",
    "send_outcome",
    "reply",
    "request_done",
    "handshake_failed",
    "events_missed",
    "Listening",
    "NodeAdded",
    "NodeUpdated",
    "NodeRemoved",
    "Accepted",
    "Rejected",
    "NewMaster",
    "Promotion",
    "Demotion",
    "NoMaster",
    "Custom",
];

/// Longest custom event name, in bytes.
pub const MAX_EVENT_NAME: usize = 64;

/// A custom event name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventNameError {
    /// The name is one of the core events.
    #[error("{0:?} is a core event name and cannot be used for custom events")]
    Reserved(String),
    /// The name is empty.
    #[error("custom event names cannot be empty")]
    Empty,
    /// The name is too long.
    #[error("custom event name is {0} bytes, the limit is {MAX_EVENT_NAME}")]
    TooLong(usize),
}

/// Checks that `name` can be used as a custom event name.
///
/// ```
/// use espial_core::event::check_event_name;
/// assert!(check_event_name("jobs").is_ok());
/// assert!(check_event_name("new_master").is_err());
/// assert!(check_event_name("").is_err());
/// ```
pub fn check_event_name(name: &str) -> Result<(), EventNameError> {
    if name.is_empty() {
        return Err(EventNameError::Empty);
    }
    if name.len() > MAX_EVENT_NAME {
        return Err(EventNameError::TooLong(name.len()));
    }
    if RESERVED_EVENT_NAMES.contains(&name) {
        return Err(EventNameError::Reserved(name.to_string()));
    }
    Ok(())
}
