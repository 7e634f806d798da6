//! Node identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's 128-bit random identity, fresh on every start unless the node has a stable
/// identity key.
///
/// ```
/// use espial_core::NodeId;
/// let id = NodeId::from_u128(0xfeed);
/// assert_eq!(id.to_string(), "0000000000000000000000000000feed");
/// assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct NodeId(pub u128);

impl NodeId {
    /// Wraps a raw 128-bit value.
    pub const fn from_u128(v: u128) -> Self {
        NodeId(v)
    }
    /// The raw value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
    /// The identifier as 16 big-endian bytes (used in key-derivation transcripts).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    /// A short 8-hex-digit prefix for logs.
    pub fn short(self) -> String {
        format!("{:08x}", (self.0 >> 96) as u32)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

/// Error returned when a string is not 1 to 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 1 to 32 hexadecimal digits, got {0:?}")]
pub struct ParseNodeIdError(pub String);

impl std::str::FromStr for NodeId {
    type Err = ParseNodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 32 {
            return Err(ParseNodeIdError(s.to_string()));
        }
        u128::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|_| ParseNodeIdError(s.to_string()))
    }
}
