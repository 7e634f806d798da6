//! Timings and limits of a node, with memberlist-style profiles.

use std::time::Duration;

/// Smallest accepted `max_datagram`.
pub const MIN_DATAGRAM: usize = 576;
/// Largest accepted `max_datagram` (a UDP payload over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;

/// Every timing and limit of the protocol. Start from a profile ([`Config::lan`] is the
/// default) and adjust fields; [`Config::validate`] explains what is wrong with a bad one.
///
/// ```
/// use espial_core::Config;
/// let mut c = Config::lan();
/// c.quorum = Some(3);
/// c.validate().unwrap();
/// assert!(Config::wan().probe_interval > Config::lan().probe_interval);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Largest datagram the node sends or accepts, in bytes.
    pub max_datagram: usize,
    /// Limit on a node's metadata (keys plus values), in bytes.
    pub max_metadata_bytes: usize,
    /// How often a node probes one member (SWIM protocol period).
    pub probe_interval: Duration,
    /// How long to wait for a direct probe's ack before asking others to probe indirectly.
    pub probe_timeout: Duration,
    /// How many members are asked to probe indirectly.
    pub indirect_checks: usize,
    /// Shortest suspicion (Lifeguard's minimum): `suspicion_mult * max(1, log10 n) *
    /// probe_interval`, at least `suspicion_min`. A suspicion starts at the longest
    /// (`suspicion_max_mult` times this) and shrinks toward it as independent members
    /// confirm it (see [`Config::suspicion_timeout_after`]).
    pub suspicion_mult: u32,
    /// Floor of the shortest suspicion timeout.
    pub suspicion_min: Duration,
    /// Longest suspicion = this many times the shortest (memberlist's
    /// `SuspicionMaxTimeoutMult`).
    pub suspicion_max_mult: u32,
    /// Independent confirmations (distinct authenticated senders besides the first accuser)
    /// after which a suspicion lasts only the shortest timeout (Lifeguard's K).
    pub suspicion_confirmations: u32,
    /// Local health: probe interval and timeout are multiplied by (score + 1), with the
    /// score in `0..awareness_max` (memberlist's `AwarenessMaxMultiplier`; 1 disables).
    pub awareness_max: u32,
    /// How often pending membership updates are gossiped.
    pub gossip_interval: Duration,
    /// How many random members receive each gossip round.
    pub gossip_fanout: usize,
    /// Each update is retransmitted `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Period of full state exchange (anti-entropy) with one random member.
    pub push_pull_interval: Duration,
    /// How often a node retries seeds and recently failed members (heals partitions).
    pub reconnect_interval: Duration,
    /// How long a failed or departed member is remembered (and retried).
    pub dead_retention: Duration,
    /// Period of the master's heartbeat to every member.
    pub master_heartbeat_interval: Duration,
    /// Silence from the master after which members start confirming it is alive.
    pub master_timeout: Duration,
    /// Suspicion timeout applied to a suspected master.
    pub master_suspicion_timeout: Duration,
    /// Time after start before a node that knows no master runs an election.
    pub election_timeout: Duration,
    /// Back-off per rank position before a lower-ranked eligible node promotes itself.
    pub election_backoff: Duration,
    /// Quorum mode: a node becomes master only with the votes of this many members (itself
    /// included) and stays master only while a lease renewed by this many acknowledgements
    /// runs, so two nodes never act as master at the same instant (see `lease`). Set it to
    /// a majority of the cluster's size: it is one only while at most `2 × quorum − 1` nodes
    /// run, and members refuse a join beyond that. `None` (default) keeps every partition
    /// available.
    pub quorum: Option<usize>,
    /// Quorum mode: the master lease `L`. The master counts it from the send time of a
    /// lease round that a quorum acknowledged and steps down the moment it lapses. Each
    /// acknowledger promises not to support another master for
    /// [`Config::lease_promise`] `= L·(1+ρ)/(1−ρ)` (plus 1 ms) from receipt.
    pub lease: Duration,
    /// Bound `ρ` on clock-rate drift between any node's monotonic clock and real time
    /// (0.01 = 1 %): quorum mode is safe while every clock runs at a rate in `[1−ρ, 1+ρ]`.
    pub max_clock_drift: f64,
    /// Retry period of an unanswered handshake or join request.
    pub handshake_timeout: Duration,
    /// Upper bound on handshakes and joins in progress (memory bound for unknown peers).
    pub max_pending_handshakes: usize,
    /// Rekey a session after this many sealed records in one direction.
    pub rekey_after_messages: u64,
    /// Rekey a session after this age.
    pub rekey_after: Duration,
    /// How long the previous session still opens records after a rekey.
    pub rekey_grace: Duration,
    /// Largest custom event payload (bigger sends fail with a clear error).
    pub max_event_payload: usize,
    /// Flow control of custom events, per sending peer: received events the application
    /// has not consumed yet, plus those the peer may still send, stay within this many
    /// bytes (payload + 64 per event). Raised to at least one largest event. When it is
    /// used up the sender sees backpressure; nothing is dropped.
    pub event_window_bytes: usize,
    /// Unread custom events over all peers, in bytes (payload + 64 per event): past it no
    /// peer gets more credit until the application reads. Raised to at least
    /// `event_window_bytes`.
    pub max_unread_event_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self::lan()
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl Config {
    /// Local-area network (the default): fast failure detection and failover.
    pub fn lan() -> Self {
        Config {
            max_datagram: 1400,
            max_metadata_bytes: crate::metadata::DEFAULT_MAX_METADATA_BYTES,
            probe_interval: ms(500),
            probe_timeout: ms(200),
            indirect_checks: 3,
            suspicion_mult: 1,
            suspicion_min: ms(1000),
            suspicion_max_mult: 5,
            suspicion_confirmations: 3,
            awareness_max: 8,
            gossip_interval: ms(100),
            gossip_fanout: 3,
            retransmit_mult: 4,
            push_pull_interval: ms(15_000),
            reconnect_interval: ms(1_000),
            dead_retention: ms(120_000),
            master_heartbeat_interval: ms(150),
            master_timeout: ms(500),
            master_suspicion_timeout: ms(250),
            election_timeout: ms(500),
            election_backoff: ms(100),
            quorum: None,
            lease: ms(400),
            max_clock_drift: 0.01,
            handshake_timeout: ms(250),
            max_pending_handshakes: 1024,
            rekey_after_messages: 1 << 32,
            rekey_after: ms(3_600_000),
            rekey_grace: ms(10_000),
            max_event_payload: 1 << 20,
            event_window_bytes: 4 << 20,
            max_unread_event_bytes: 32 << 20,
        }
    }

    /// Wide-area network: longer timeouts, tolerant of 100 ms+ latency.
    pub fn wan() -> Self {
        let lan = Self::lan();
        Config {
            probe_interval: ms(3_000),
            probe_timeout: ms(1_500),
            suspicion_mult: 4,
            suspicion_min: ms(10_000),
            suspicion_max_mult: 6,
            gossip_interval: ms(500),
            gossip_fanout: 4,
            push_pull_interval: ms(60_000),
            reconnect_interval: ms(5_000),
            master_heartbeat_interval: ms(1_000),
            master_timeout: ms(4_000),
            master_suspicion_timeout: ms(2_000),
            election_timeout: ms(3_000),
            election_backoff: ms(500),
            lease: ms(3_200),
            handshake_timeout: ms(1_500),
            ..lan
        }
    }

    /// One host (loopback): very short timeouts.
    pub fn local() -> Self {
        let lan = Self::lan();
        Config {
            max_datagram: 8192,
            probe_interval: ms(200),
            probe_timeout: ms(50),
            suspicion_min: ms(500),
            suspicion_max_mult: 4,
            gossip_interval: ms(50),
            push_pull_interval: ms(5_000),
            reconnect_interval: ms(500),
            master_heartbeat_interval: ms(50),
            master_timeout: ms(200),
            master_suspicion_timeout: ms(100),
            election_timeout: ms(200),
            election_backoff: ms(40),
            lease: ms(160),
            handshake_timeout: ms(100),
            ..lan
        }
    }

    /// Checks that the configuration is usable, explaining what to change when it is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError(what.to_string()));
        if !(MIN_DATAGRAM..=MAX_DATAGRAM).contains(&self.max_datagram) {
            return bad(&format!(
                "max_datagram must be between {MIN_DATAGRAM} and {MAX_DATAGRAM} bytes, got {}",
                self.max_datagram
            ));
        }
        if self.max_metadata_bytes + 256 > self.max_datagram {
            return bad("max_metadata_bytes must leave 256 bytes of room in max_datagram");
        }
        if self.probe_timeout >= self.probe_interval {
            return bad("probe_timeout must be shorter than probe_interval");
        }
        if self.master_timeout <= self.master_heartbeat_interval {
            return bad("master_timeout must be longer than master_heartbeat_interval");
        }
        if self.quorum == Some(0) {
            return bad("quorum must be at least 1 (or None to disable quorum mode)");
        }
        if !(0.0..=0.2).contains(&self.max_clock_drift) {
            return bad("max_clock_drift must be between 0 and 0.2");
        }
        if self.quorum.is_some() && self.lease < self.master_heartbeat_interval * 2 {
            return bad("lease must be at least two master_heartbeat_intervals (renewal rounds)");
        }
        // The follower's election timeout is master_timeout: its own promise must have run
        // out by the time its master watch starts, or every failover waits for it.
        if self.quorum.is_some()
            && self.lease_promise() + self.lease_margin() >= self.master_timeout
        {
            return bad(&format!(
                "lease_promise ({} ms = lease·(1+ρ)/(1−ρ)) plus a margin of {} ms must be \
                 shorter than master_timeout ({} ms): shorten lease or lengthen master_timeout",
                self.lease_promise().as_millis(),
                self.lease_margin().as_millis(),
                self.master_timeout.as_millis()
            ));
        }
        let zero = [
            ("probe_interval", self.probe_interval),
            ("gossip_interval", self.gossip_interval),
            ("push_pull_interval", self.push_pull_interval),
            ("reconnect_interval", self.reconnect_interval),
            ("master_heartbeat_interval", self.master_heartbeat_interval),
            ("handshake_timeout", self.handshake_timeout),
        ];
        for (name, d) in zero {
            if d.is_zero() {
                return bad(&format!("{name} must be greater than zero"));
            }
        }
        if self.suspicion_max_mult == 0 || self.awareness_max == 0 {
            return bad("suspicion_max_mult and awareness_max must be at least 1");
        }
        if self.max_pending_handshakes == 0 || self.gossip_fanout == 0 {
            return bad("max_pending_handshakes and gossip_fanout must be at least 1");
        }
        if self.max_event_payload == 0 || self.max_event_payload > (1 << 30) {
            return bad("max_event_payload must be between 1 byte and 1 GiB");
        }
        Ok(())
    }

    /// How long a lease acknowledgement or a vote binds its sender (quorum mode):
    /// `lease·(1+ρ)/(1−ρ)` rounded up, plus 1 ms. A master's lease, counted on its clock from
    /// before the promise was received, then ends in real time before any promise that
    /// renewed it, whatever the two clocks' rates within `[1−ρ, 1+ρ]`.
    pub fn lease_promise(&self) -> Duration {
        let rho = self.max_clock_drift.clamp(0.0, 0.5);
        let l = self.lease.as_nanos() as f64 * (1.0 + rho) / (1.0 - rho);
        Duration::from_nanos(l.ceil() as u64) + Duration::from_millis(1)
    }

    /// Margin required between [`Config::lease_promise`] and `master_timeout`.
    pub fn lease_margin(&self) -> Duration {
        (self.master_timeout / 20).max(Duration::from_millis(1))
    }

    /// Shortest suspicion timeout for a cluster of `n` members:
    /// `suspicion_mult * max(1, log10 n) * probe_interval`, at least `suspicion_min`.
    pub fn suspicion_timeout(&self, n: usize) -> Duration {
        let scale = (n.max(10) as f64).log10();
        let t = self
            .probe_interval
            .mul_f64(self.suspicion_mult as f64 * scale);
        t.max(self.suspicion_min)
    }

    /// Longest suspicion timeout (where a suspicion starts) for `n` members.
    pub fn suspicion_max_timeout(&self, n: usize) -> Duration {
        self.suspicion_timeout(n) * self.suspicion_max_mult.max(1)
    }

    /// Suspicion timeout after `c` independent confirmations in a cluster of `n` members
    /// (Lifeguard, as memberlist): `max - (max - min) * ln(c + 1) / ln(k + 1)`, floored at
    /// `min`, with `k = min(suspicion_confirmations, n - 2)`; `k = 0` gives `min`.
    pub fn suspicion_timeout_after(&self, n: usize, c: u32) -> Duration {
        let min = self.suspicion_timeout(n);
        let max = self.suspicion_max_timeout(n);
        let k = self.suspicion_confirmations.min(n.saturating_sub(2) as u32);
        if k == 0 || c >= k {
            return min;
        }
        let frac = ((c as f64) + 1.0).ln() / ((k as f64) + 1.0).ln();
        let t = max.as_secs_f64() - (max - min).as_secs_f64() * frac;
        Duration::from_secs_f64(t.max(min.as_secs_f64()))
    }

    /// How many times a gossiped update is retransmitted in a cluster of `n` members
    /// (at least 6, so refutations survive loss in small clusters).
    pub fn retransmits(&self, n: usize) -> u32 {
        let scale = ((n + 1) as f64).log10().ceil().max(1.0) as u32;
        (self.retransmit_mult * scale).max(6)
    }
}

/// A configuration that cannot work; the message says which field to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
// Exhaustive on purpose: a message newtype, its shape will not grow.
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);
