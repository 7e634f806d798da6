//! Counters a node keeps about its traffic and about everything it dropped.

use serde::{Deserialize, Serialize};

/// A snapshot of a node's counters. Every dropped datagram increments exactly one of the
/// `dropped_*` / failure counters, so nothing is lost silently.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// Handshake starts refused because too many were in progress, and Hellos refused
    /// because the key-exchange budget was spent.
    pub handshakes_refused: u64,
    /// Handshake identity proofs that failed: a bad signature, or a static key whose node
    /// id is not the claimed one (impersonation attempts).
    pub identity_mismatch: u64,
    /// Cookie replies sent to Hellos while under load.
    pub cookies_sent: u64,
    /// Half-open (unconfirmed) responder handshakes expired or evicted.
    pub half_open_dropped: u64,
    /// Records not sent because sealing failed (never sent in the clear).
    pub seal_failures: u64,
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
    /// Membership statements dropped because they failed authentication: an `Alive` whose
    /// key does not derive its id or whose signature does not verify, a `Left` not signed by
    /// the member (see `membership::statements`). Never applied, never forwarded.
    pub statements_rejected: u64,
    /// Incarnation claims refused as implausible (more than `MAX_INCARNATION_JUMP` above ours
    /// from someone else) or unrepresentable (`u64::MAX` reached).
    pub incarnations_refused: u64,
    /// Election messages refused: a claim, resignation, heartbeat, lease or vote request
    /// not sent by the claim's master itself, or with an implausible term.
    pub election_dropped: u64,
    /// Vote requests answered only after probing the master, because this node does not get
    /// the master's heartbeats (it is not one of its `MASTER_WATCHERS`).
    #[serde(default)]
    pub votes_deferred: u64,
    /// Anti-entropy digest chunks refused: not an answer to an open offer of ours to their
    /// sender, or malformed (records unsorted or outside the chunk's id range).
    #[serde(default)]
    pub digests_refused: u64,
    /// Members whose connection filter refuses this node (they told it with
    /// `JoinReject { attempt: 0 }`); this node sends them nothing. A gauge.
    pub refused_by_members: u64,
}
