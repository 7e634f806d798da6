//! Message bodies: the clear handshake and beacon, and the messages inside sealed records.

use crate::{NodeId, NodeInfo};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Multicast discovery beacon (clear; MAC'd under the cluster PSK when one is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beacon {
    /// Cluster name; beacons of other clusters are ignored.
    pub cluster: String,
    /// Sender's node id.
    pub id: NodeId,
    /// Address to contact the sender at.
    pub addr: SocketAddr,
    /// MAC over the encoded beacon without this field (PSK clusters only).
    pub mac: Option<[u8; 16]>,
}

/// First handshake message, initiator to responder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Initiator's node id.
    pub from: NodeId,
    /// Responder's id when known (`None` when contacting a seed address).
    pub to: Option<NodeId>,
    /// Random id of this handshake attempt (de-duplicates retransmissions).
    pub attempt: u64,
    /// Initiator's ephemeral public key share.
    pub share: Vec<u8>,
}

/// Identity proof: a static public key and a signature over the handshake transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// Static identity public key.
    pub public_key: Vec<u8>,
    /// Signature over the transcript.
    pub signature: Vec<u8>,
}

/// Second handshake message, responder to initiator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAck {
    /// Responder's node id.
    pub from: NodeId,
    /// Initiator's node id.
    pub to: NodeId,
    /// The `Hello.attempt` this answers.
    pub attempt: u64,
    /// Key epoch the responder assigned to the new session.
    pub epoch: u32,
    /// Responder's ephemeral public key share.
    pub share: Vec<u8>,
    /// Responder's identity proof, when it has an identity key.
    pub identity: Option<IdentityProof>,
    /// Empty record sealed with the responder's new send key (key confirmation).
    pub confirm: Vec<u8>,
}

/// A member entry as gossiped: everything needed to add or update a member.
pub type MemberEntry = NodeInfo;

/// Liveness state carried by a membership update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// The member is alive at this incarnation (also carries metadata/subscription changes).
    Alive(MemberEntry),
    /// `by` suspects the member at this incarnation.
    Suspect {
        /// Suspected member.
        id: NodeId,
        /// Its incarnation as known by the suspecter.
        incarnation: u64,
        /// Who suspects it.
        by: NodeId,
    },
    /// The member is declared failed at this incarnation.
    Dead {
        /// Failed member.
        id: NodeId,
        /// Its incarnation.
        incarnation: u64,
        /// Who declared it.
        by: NodeId,
    },
    /// The member left gracefully.
    Left {
        /// Departed member.
        id: NodeId,
        /// Its incarnation.
        incarnation: u64,
    },
}

impl Update {
    /// The member the update is about.
    pub fn subject(&self) -> NodeId {
        match self {
            Update::Alive(e) => e.id,
            Update::Suspect { id, .. } | Update::Dead { id, .. } | Update::Left { id, .. } => *id,
        }
    }
}

/// A master claim: `(term, priority, master)`, ordered lexicographically (greater wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// Election term.
    pub term: u64,
    /// The master's priority at the time of the claim.
    pub priority: u32,
    /// The master.
    pub master: NodeId,
}

/// One chunk of a node's full state (push-pull anti-entropy; join answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChunk {
    /// The sender's current master claim, if any.
    pub claim: Option<Claim>,
    /// Whether the sender currently considers the claimed master alive.
    pub master_alive: bool,
    /// Highest term the sender has seen.
    pub max_term: u64,
    /// Members with their liveness (`Alive`, `Suspect`, `Dead` or `Left`).
    pub members: Vec<Update>,
    /// Whether the receiver should answer with its own state.
    pub reply: bool,
    /// Chunk index and total, for diagnostics.
    pub index: u16,
    /// Total chunks in this exchange.
    pub total: u16,
}

/// Messages inside sealed records. Several may share one record (piggybacking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Initiator's key confirmation (with its identity proof when it has a key).
    Confirm {
        /// Initiator's identity proof.
        identity: Option<IdentityProof>,
    },
    /// Responder's acknowledgement of `Confirm`.
    ConfirmAck,
    /// Join request: the joiner's member entry, seen by the admission filter.
    JoinRequest {
        /// The joiner.
        node: MemberEntry,
        /// Random id of this join attempt.
        attempt: u64,
    },
    /// Join accepted; the state follows as `State` chunks in the same or later records.
    JoinAccept {
        /// The join attempt answered.
        attempt: u64,
        /// The accepting member's entry.
        by: MemberEntry,
    },
    /// Join refused; nothing else is ever sent to the refused node.
    JoinReject {
        /// The join attempt answered.
        attempt: u64,
        /// The filter's reason.
        reason: String,
    },
    /// SWIM direct probe.
    Ping {
        /// Probe sequence number.
        seq: u64,
    },
    /// Answer to `Ping`.
    Ack {
        /// The probe answered.
        seq: u64,
    },
    /// Ask the receiver to probe `target` on the sender's behalf.
    PingReq {
        /// The requester's probe sequence number.
        seq: u64,
        /// Target to probe.
        target: NodeId,
    },
    /// The indirect probe of `target` succeeded.
    IndirectAck {
        /// The requester's probe sequence number.
        seq: u64,
        /// The target that answered.
        target: NodeId,
    },
    /// Piggybacked membership updates.
    Updates(Vec<Update>),
    /// Full state chunk.
    State(StateChunk),
    /// Master heartbeat: the master's claim and incarnation.
    Heartbeat {
        /// The claim.
        claim: Claim,
        /// The master's incarnation (a bump refutes suspicion).
        incarnation: u64,
        /// How many live members the master sees (itself included): a member whose own
        /// count differs pulls the full state from a member (membership digest).
        members: u32,
    },
    /// A new master claim (sent directly on promotion).
    Claim(Claim),
    /// The master of `claim` resigns (quorum lost or shutdown).
    Resign(Claim),
    /// Event delivery frames (custom events, acks, fragments).
    Delivery(crate::delivery::Frame),
    /// Lifeguard nack: a member asked by `PingReq` tells the requester that the target did
    /// not answer its ping within its probe timeout (so the requester's own links work).
    Nack {
        /// The requester's probe sequence number (from the `PingReq`).
        seq: u64,
    },
}
