//! Counters of the delivery engine.

use serde::{Deserialize, Serialize};

/// A snapshot of the delivery engine's counters. Everything dropped is counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStats {
    /// Messages queued, counted once per target (events and replies).
    pub messages_queued: u64,
    /// Messages acknowledged by their target.
    pub messages_acked: u64,
    /// Messages reported failed (target gone, unsubscribed, or given up on).
    pub messages_failed: u64,
    /// Custom events released to the application.
    pub events_delivered: u64,
    /// Subscription-routed events that arrived after this node unsubscribed (not released).
    pub events_declined: u64,
    /// Replies reported to the application.
    pub replies_delivered: u64,
    /// Replies dropped: unknown or finished request, not a target, or a second answer.
    pub replies_dropped: u64,
    /// Frames returned by `poll_transmit`/`poll_transmit_to`.
    pub frames_out: u64,
    /// Of which carried no data (acknowledgement only).
    pub ack_only_frames_out: u64,
    /// Frames that carried an acknowledgement.
    pub acks_out: u64,
    /// Data segments sent (first transmissions and retransmissions).
    pub segments_out: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Probe timeouts that fired.
    pub probe_timeouts: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Segments dropped as duplicates.
    pub duplicates: u64,
    /// Segments dropped because they were too far ahead of the reorder window.
    pub beyond_window: u64,
    /// Segments or messages dropped as malformed (bad counts, sizes, headers).
    pub malformed: u64,
    /// Frames from a stream this engine already replaced (an earlier incarnation).
    pub stale_stream: u64,
    /// Acknowledgements for a stream other than this engine's (ignored).
    pub foreign_acks: u64,
    /// Times a peer's stream changed (it restarted) and its receive state was reset.
    pub stream_resets: u64,
    /// Sequence numbers the receiver skipped because the sender gave them up.
    pub skipped: u64,
    /// Incomplete messages evicted to bound memory (the sender resends them).
    pub reassembly_evicted: u64,
    /// Segments refused because reassembly memory was full (the sender resends them).
    pub reassembly_refused: u64,
    /// Accounted bytes buffered for reorder and reassembly now.
    pub reassembly_bytes: u64,
    /// Highest value `reassembly_bytes` reached.
    pub reassembly_peak: u64,
    /// Times every send to a peer was failed because it acknowledged nothing for
    /// `give_up_after`.
    pub gave_up: u64,
    /// Cost (payload + 64 per event) of released custom events the application has not
    /// consumed yet.
    pub unread_bytes: u64,
    /// Highest `unread_bytes` reached.
    pub unread_peak: u64,
    /// Blocked probes sent (this node waited for a peer's flow-control credit).
    pub credit_probes_out: u64,
    /// Blocked probes received (a peer waited for this node's credit).
    pub credit_probes_in: u64,
    /// Events reported missed to the application (gap events: sequence numbers a sender
    /// gave up on, and gap notices).
    pub events_missed: u64,
}
