//! Reliable, ordered, exactly-once delivery of custom events (placeholder until the events
//! issue lands: frames are defined so the wire format is stable).

use serde::{Deserialize, Serialize};

/// A delivery frame carried in `Msg::Delivery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Reserved.
    Reserved,
}
