//! Counters a node keeps about its traffic and about everything it dropped.

use serde::{Deserialize, Serialize};

/// A snapshot of a node's counters. Every dropped datagram increments exactly one of the
/// `dropped_*` / failure counters, so nothing is lost silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Datagrams received.
    pub packets_in: u64,
    /// Datagrams sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams that failed to decode (bad magic, version, kind, body, size).
    pub decode_errors: u64,
    /// Sealed records whose authentication failed.
    pub decrypt_failures: u64,
    /// Sealed records rejected by the replay window (duplicates and replays).
    pub replays: u64,
    /// Sealed records from a sender or epoch with no session.
    pub unknown_session: u64,
    /// Handshake messages that were malformed, unexpected or failed verification.
    pub handshake_failures: u64,
    /// Handshakes completed.
    pub handshakes_completed: u64,
    /// Handshake starts refused because too many were in progress.
    pub handshakes_refused: u64,
    /// Messages from nodes that are not members (dropped, except probes and joins).
    pub non_member_dropped: u64,
    /// Messages queued for a peer whose session never came up.
    pub unsent_dropped: u64,
    /// Beacons ignored (other cluster, bad MAC).
    pub beacons_ignored: u64,
    /// Probes sent.
    pub probes: u64,
    /// Members declared failed by this node.
    pub failures_declared: u64,
    /// Custom events delivered to the application.
    pub events_delivered: u64,
    /// Delivery frames retransmitted.
    pub retransmits: u64,
    /// Custom events handed to the application and not consumed yet, in bytes (payload +
    /// 64 each; flow control bounds it by `Config::max_unread_event_bytes`).
    pub unread_event_bytes: u64,
    /// Events reported missed to the application (`events_missed` gap events).
    pub events_missed: u64,
}
