//! Limits and timings of the delivery engine.

use crate::config::{Config, ConfigError};
use std::time::Duration;

/// Bytes of a frame that are not fragment data, at most (frame and segment fields, message
/// header with the longest event name, `Msg` tag) plus room for a small piggybacked ack.
pub(crate) const FRAG_RESERVE: usize = 190;
/// Smallest `max_frame` accepted: leaves at least 128 bytes of data per fragment.
pub const MIN_FRAME: usize = FRAG_RESERVE + 128;
/// What the node's sealed-record headers and framing take from a datagram (see
/// [`DeliveryConfig::from_config`]).
pub const DATAGRAM_OVERHEAD: usize = 80;

/// Accounted memory of one received fragment beyond its bytes.
pub(crate) const FRAG_COST: usize = 64;
/// Accounted memory of one buffered message beyond its fragments.
pub(crate) const ENTRY_COST: usize = 64;

/// Limits and timings of the delivery engine.
///
/// ```
/// use espial_core::delivery::DeliveryConfig;
/// let c = DeliveryConfig::from_config(&espial_core::Config::lan());
/// assert_eq!(c.max_payload, 1 << 20);
/// c.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryConfig {
    /// Largest message payload; larger sends fail with `SendError::TooLarge`.
    pub max_payload: usize,
    /// Largest frame the node can carry in one datagram (`msg_size(&Msg::Delivery(frame))`),
    /// which sets the fragment size. `poll_transmit` never returns a bigger frame.
    pub max_frame: usize,
    /// In-flight (sent, unacknowledged) fragments per peer; also bounds how many messages
    /// per peer have a sequence number at once.
    pub window: usize,
    /// Messages per peer waiting behind the window before `send` returns
    /// `SendError::Backpressure`.
    pub queue_limit: usize,
    /// Payload bytes per peer waiting behind the window before backpressure (a message into
    /// an empty queue is always accepted).
    pub queue_bytes: usize,
    /// Reassembly and reorder memory per sending peer (accounted bytes). Raised to at least
    /// twice [`DeliveryConfig::message_cap`] by the engine.
    pub reassembly_per_peer: usize,
    /// Reassembly and reorder memory over all peers. Raised to at least
    /// `reassembly_per_peer` by the engine.
    pub reassembly_total: usize,
    /// An incomplete message without progress for this long may be evicted to make room for
    /// another peer's (evictions are counted; the sender retransmits).
    pub reassembly_idle: Duration,
    /// RTT assumed before the first sample.
    pub initial_rtt: Duration,
    /// Lower bound of the retransmission timeout.
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout (after exponential back-off).
    pub max_rto: Duration,
    /// Longest time a receiver holds an acknowledgement back to batch it.
    pub ack_delay: Duration,
    /// A receiver acknowledges at once after this many data frames (or any gap/duplicate).
    pub ack_every: u32,
    /// When a peer acknowledges nothing for this long while data to it is outstanding,
    /// every send to it is reported failed (as if it were gone). `None` waits for the node's
    /// failure detector (`peer_gone`).
    pub give_up_after: Option<Duration>,
    /// A peer's stream replaced by a new one (the peer restarted) is taken back only if the
    /// new one stays silent this long while the old one still sends (the "new" stream was
    /// in fact a late straggler of an older incarnation).
    pub stream_silence: Duration,
    /// Flow-control window per sending peer, in cost units (payload + [`super::MSG_COST`]
    /// per message): what this node lets one peer have unread or in flight towards it.
    /// Raised to at least one largest message.
    pub credit_window: usize,
    /// Unread events over all peers, in cost units: past it no peer gets more credit (and
    /// a complete event waits in the reorder buffer until the application reads).
    pub unread_total: usize,
    /// `true`: a released custom event counts as consumed only when the caller says so
    /// ([`super::Delivery::app_consumed`]), as a driver that buffers events for its listeners
    /// does. `false` (default): consumed as soon as it is released (the caller of
    /// `poll_event` is the application).
    pub app_consumption: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            max_payload: 1 << 20,
            max_frame: 1400 - DATAGRAM_OVERHEAD,
            window: 256,
            queue_limit: 16_384,
            queue_bytes: 16 << 20,
            reassembly_per_peer: 4 << 20,
            reassembly_total: 32 << 20,
            reassembly_idle: Duration::from_secs(5),
            initial_rtt: Duration::from_millis(100),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(2),
            ack_delay: Duration::from_millis(5),
            ack_every: 8,
            give_up_after: Some(Duration::from_secs(30)),
            stream_silence: Duration::from_secs(1),
            credit_window: 4 << 20,
            unread_total: 32 << 20,
            app_consumption: false,
        }
    }
}

impl DeliveryConfig {
    /// The engine's settings for a node configuration: `max_payload = max_event_payload`,
    /// `max_frame = max_datagram - DATAGRAM_OVERHEAD`, the rest default.
    pub fn from_config(c: &Config) -> Self {
        DeliveryConfig {
            max_payload: c.max_event_payload,
            max_frame: c.max_datagram.saturating_sub(DATAGRAM_OVERHEAD),
            credit_window: c.event_window_bytes,
            unread_total: c.max_unread_event_bytes,
            ..DeliveryConfig::default()
        }
    }

    /// Fragment data size: what fits in one `max_frame` with headers and a small ack.
    pub fn frag_size(&self) -> usize {
        self.max_frame.saturating_sub(FRAG_RESERVE).max(1)
    }

    /// Accounted memory one message may take while reassembled (payload plus per-fragment
    /// bookkeeping of fragments no smaller than half the smallest legitimate fragment).
    pub fn message_cap(&self) -> usize {
        self.max_payload + self.max_payload / 2 + ENTRY_COST + 4096
    }

    /// Flow-control cost of the largest message (payload, name, [`super::MSG_COST`]).
    pub fn max_message_cost(&self) -> usize {
        self.max_payload + crate::event::MAX_EVENT_NAME + super::MSG_COST as usize
    }

    /// Checks that the settings can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: &str| Err(ConfigError(s.to_string()));
        if self.max_frame < MIN_FRAME {
            return bad(&format!(
                "delivery max_frame must be at least {MIN_FRAME} bytes"
            ));
        }
        if self.max_payload == 0 || self.max_payload > u32::MAX as usize / 2 {
            return bad("delivery max_payload must be between 1 byte and 2 GiB");
        }
        if self.window == 0 || self.queue_limit == 0 || self.ack_every == 0 {
            return bad("delivery window, queue_limit and ack_every must be at least 1");
        }
        if self.min_rto.is_zero() || self.min_rto > self.max_rto {
            return bad("delivery min_rto must be positive and at most max_rto");
        }
        Ok(())
    }

    /// The configuration with memory limits raised to workable minimums.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_frame = self.max_frame.max(MIN_FRAME);
        self.max_payload = self.max_payload.clamp(1, u32::MAX as usize / 2);
        self.window = self.window.max(1);
        self.queue_limit = self.queue_limit.max(1);
        self.ack_every = self.ack_every.max(1);
        self.min_rto = self.min_rto.max(Duration::from_millis(1));
        self.max_rto = self.max_rto.max(self.min_rto);
        let cap = self.message_cap();
        self.reassembly_per_peer = self.reassembly_per_peer.max(2 * cap);
        self.reassembly_total = self.reassembly_total.max(self.reassembly_per_peer);
        self.credit_window = self.credit_window.max(self.max_message_cost());
        self.unread_total = self.unread_total.max(self.credit_window);
        self
    }
}
