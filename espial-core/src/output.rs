//! What a node asks its driver to do.

use crate::{Event, NodeInfo};
use std::net::SocketAddr;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Complete datagram bytes.
    pub data: Vec<u8>,
}

/// Identifies a pending admission decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AdmissionId(pub u64);

/// A join request waiting for the application's admission filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRequest {
    /// Answer with [`crate::Node::handle_admission`] and this id.
    pub id: AdmissionId,
    /// The joining node as it described itself.
    pub node: NodeInfo,
    /// The address its datagrams came from.
    pub source: SocketAddr,
    /// Its identity public key, verified in the handshake (identity-key clusters only).
    pub verified_key: Option<Vec<u8>>,
}

/// The application's answer to an [`AdmissionRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// Admit the node to the cluster.
    Accept,
    /// Refuse it; the reason is sent to the node.
    Reject(String),
}

/// Everything the core asks of its driver; drain with [`crate::Node::poll_output`] after
/// every `handle_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a datagram.
    Transmit(Transmit),
    /// Report an event to the application.
    Event(Event),
    /// Ask the admission filter about a joining node (only when `Node::set_admission_filter(true)`).
    Admission(AdmissionRequest),
}
