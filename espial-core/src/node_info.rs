//! What the cluster knows about one node.

use crate::{Metadata, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;

/// A node as seen by the cluster: identity, address, metadata and election attributes.
///
/// The same type describes the local node (pass it to [`crate::Node::new`]) and every
/// member it learns about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeInfo {
    /// Random 128-bit identity.
    pub id: NodeId,
    /// Human-readable name (host name by default).
    pub name: String,
    /// Address other nodes send to (may differ from the bind address).
    pub addr: SocketAddr,
    /// Application metadata, gossiped to every member.
    pub metadata: Metadata,
    /// Whether this node may become master.
    pub master_eligible: bool,
    /// Election priority: higher wins ties of equal term; node id breaks remaining ties.
    pub priority: u32,
    /// SWIM incarnation number; the node bumps it to refute suspicion or publish changes.
    pub incarnation: u64,
    /// Custom event names this node subscribes to.
    pub subscriptions: BTreeSet<String>,
    /// The node's static identity public key: `id` is derived from it, and it verifies the
    /// node's signed statements (`Update::Alive`, `Update::Left`). [`crate::Node::new`] sets
    /// it from its cipher.
    pub public_key: Vec<u8>,
}

impl NodeInfo {
    /// A new eligible node with priority 0, no metadata and no subscriptions.
    pub fn new(id: NodeId, name: impl Into<String>, addr: SocketAddr) -> Self {
        NodeInfo {
            id,
            name: name.into(),
            addr,
            metadata: Metadata::new(),
            master_eligible: true,
            priority: 0,
            incarnation: 0,
            subscriptions: BTreeSet::new(),
            public_key: Vec::new(),
        }
    }

    /// The node's election rank: greater wins (priority, then id).
    pub fn rank(&self) -> (u32, NodeId) {
        (self.priority, self.id)
    }
}
