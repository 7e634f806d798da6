//! Errors returned by node commands. Each says what happened to the node's state.

use crate::event::EventNameError;
use crate::metadata::MetadataTooLarge;

/// Why a `send` or `request` was refused. The node's state is unchanged: nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The event name cannot be used.
    #[error(transparent)]
    Name(#[from] EventNameError),
    /// The payload exceeds `Config::max_event_payload`.
    #[error(
        "payload of {size} bytes exceeds the maximum of {limit} bytes (Config::max_event_payload)"
    )]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum.
        limit: usize,
    },
    /// A target's send window and queue are full; retry after outcomes arrive.
    #[error("send queue to {0} target(s) is full; wait for earlier sends to complete")]
    Backpressure(usize),
    /// A named target is not a live member.
    #[error("node {0} is not a live member")]
    UnknownTarget(crate::NodeId),
    /// `Target::Master` while no master is known (election in progress, or no quorum).
    #[error("no master is known right now; wait for a new_master event and retry")]
    NoMaster,
    /// The node has left the cluster.
    #[error("this node has left the cluster")]
    Shutdown,
}

/// Why `promote()` was refused. The node's election state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromoteError {
    /// The node was configured with `master_eligible = false`.
    #[error("this node is not master-eligible")]
    NotEligible,
    /// Quorum mode is on and the node sees fewer live members than the quorum.
    #[error("quorum mode: {live} live member(s) visible, {quorum} required")]
    NoQuorum {
        /// Live members visible (self included).
        live: usize,
        /// Required quorum.
        quorum: usize,
    },
    /// The node has left the cluster.
    #[error("this node has left the cluster")]
    Shutdown,
}

/// Why a metadata update was refused. The previous metadata stays in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// Too large.
    #[error(transparent)]
    TooLarge(#[from] MetadataTooLarge),
    /// The node has left the cluster.
    #[error("this node has left the cluster")]
    Shutdown,
}

/// Why a subscription change was refused. Subscriptions are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The event name cannot be used.
    #[error(transparent)]
    Name(#[from] EventNameError),
    /// The node has left the cluster.
    #[error("this node has left the cluster")]
    Shutdown,
}
