//! Node identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's 128-bit identity (derived from its identity key), fresh on every start unless
/// the node has a stable identity key.
///
/// It has one printed form: `Display` and `Debug` both print the 32 lowercase hex digits
/// (what the JSON lines and the agent show). [`NodeId::short`] is an explicit 8-digit
/// abbreviation for dense logs (the simulator's traces).
///
/// ```
/// use espial_core::NodeId;
/// let id = NodeId::from_u128(0xfeed);
/// assert_eq!(id.to_string(), "0000000000000000000000000000feed");
/// assert_eq!(format!("{id:?}"), id.to_string());
/// assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
/// ```
// Exhaustive on purpose: a 128-bit value, nothing else will ever be in it.
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
    /// The first 8 of the 32 hex digits, for dense logs (not unique: print the full id,
    /// with `Display` or `Debug`, wherever someone may type it back).
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
        // The same form as Display: one printed form of an id everywhere.
        fmt::Display::fmt(self, f)
    }
}

/// Error returned when a string is not 1 to 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Exhaustive on purpose: a message newtype, its shape will not grow.
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

#[cfg(test)]
mod tests {
    use super::NodeId;

    #[test]
    fn debug_and_display_print_the_same_full_id() {
        for v in [
            0u128,
            1,
            0xfeed,
            u128::MAX,
            0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
        ] {
            let id = NodeId(v);
            let shown = id.to_string();
            assert_eq!(shown.len(), 32);
            assert_eq!(format!("{id:?}"), shown);
            assert_eq!(format!("{:?}", Some(id)), format!("Some({shown})"));
            assert!(shown.starts_with(&id.short()));
            assert_eq!(shown.parse::<NodeId>().unwrap(), id);
        }
    }
}
