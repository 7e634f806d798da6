//! Per-pair encrypted sessions: the handshake state machine and sealed records.
//!
//! ```text
//! initiator                                   responder
//!   Hello{from, to?, attempt, share_i, cookie?} + padding  ---->
//!                           (under load, no valid cookie) <----  Cookie{attempt, cookie}
//!   Hello{..., cookie} + padding                           ---->
//!                                                          <----  HelloAck{from, to, attempt, epoch,
//!                                                                  share_r, proof_r, confirm}
//!   Sealed[Confirm{proof_i}, ...]                          ---->  (session established here)
//!                                                          <----  Sealed[ConfirmAck]
//! ```
//! Keys come from `Cipher::KeyExchange::complete` over a transcript binding the protocol
//! version, both node ids and both shares. Both sides prove their static identity key: a
//! signature over the transcript (and the role) whose public key must hash to the claimed
//! node id ([`handshake`] module); nothing is accepted from an id before its proof.
//! The responder keeps no established state until the initiator's proof arrives
//! ([`half_open`]), and under load answers with a stateless cookie ([`guard`]).
//! Nonces are per-direction counters; a replay window rejects repeats. Crossed handshakes
//! resolve to the one started by the lower node id. A session is rekeyed after
//! `rekey_after_messages` records or `rekey_after`; the previous session still opens
//! records for `rekey_grace`.

pub mod guard;
mod half_open;
mod handshake;
mod replay;

pub use replay::ReplayWindow;

use crate::cipher::Cipher;
use crate::config::Config;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::wire::{self, DecodeError, Kind, Msg, SealedHeader};
use crate::NodeId;
use guard::Guard;
use half_open::HalfOpenTable;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use handshake::{proof_message, transcript, HANDSHAKE_DOMAIN};

/// Handshake attempts before giving up on a peer (queued messages are dropped and counted).
pub(crate) const MAX_HELLO_TRIES: u32 = 8;
/// Hello attempts of a "heal" handshake (started by a record with an unknown epoch).
const MAX_HEAL_TRIES: u32 = 3;
/// Message batches buffered per peer while its handshake runs.
const MAX_QUEUED_BATCHES: usize = 64;
/// A key never seals beyond this counter: reaching it forces a rekey (never a wrap).
const COUNTER_LIMIT: u64 = u64::MAX - 1;
/// Half-open handshakes and crossed-handshake windows last this many handshake timeouts.
const HALF_OPEN_TIMEOUTS: u32 = 4;
/// Addresses remembered for once-only handshake failure reports.
const MAX_REPORTED: usize = 256;

pub(crate) struct Keys {
    epoch: u32,
    /// Who sent the Hello of the handshake that made these keys.
    initiator: NodeId,
    /// Transcript of the handshake that made these keys.
    transcript: Vec<u8>,
    send: Box<dyn crate::cipher::Aead>,
    recv: Box<dyn crate::cipher::Aead>,
    send_counter: u64,
    window: ReplayWindow,
    created: Instant,
}

/// An established session: the peer proved the static key behind its id.
struct Peer {
    addr: SocketAddr,
    current: Keys,
    previous: Option<(Keys, Instant)>,
    /// Initiator side: our Confirm still awaits its ack; (next retry, tries).
    confirm_retry: Option<(Instant, u32)>,
    /// The peer's static identity key, as proven in the handshake.
    verified_key: Option<Vec<u8>>,
    /// A rekey handshake of ours is in progress.
    rekeying: bool,
    /// Initiator side: the Confirm message, resent until acknowledged.
    confirm_msg: Option<Msg>,
}

struct Pending {
    peer: Option<NodeId>,
    addr: SocketAddr,
    exchange: Option<Box<dyn crate::cipher::KeyExchange>>,
    /// The Hello as sent (cookie and all), resent on timeout.
    hello: Vec<u8>,
    /// The Hello's share and attempt, to rebuild it with a cookie.
    share: Vec<u8>,
    cookie: Option<[u8; 16]>,
    next_retry: Instant,
    tries: u32,
    max_tries: u32,
    queued: Vec<Vec<Msg>>,
}

/// Messages opened from one sealed record.
#[derive(Debug)]
pub struct Opened {
    /// Authenticated sender.
    pub from: NodeId,
    /// Where the record came from.
    pub addr: SocketAddr,
    /// The messages.
    pub msgs: Vec<Msg>,
    /// The sender's handshake just completed on our side (first record of a new session).
    pub new_session: bool,
}

/// Why a datagram was dropped by the session layer (already counted in the stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Undecodable.
    Decode,
    /// Failed authentication.
    Auth,
    /// Replayed or duplicate record.
    Replay,
    /// No session for that sender/epoch (the claimed sender is given; it is unverified).
    UnknownSession(NodeId),
    /// Bad or unexpected handshake.
    Handshake,
    /// Nothing to report (e.g. a handshake message that was handled).
    Handled,
}

/// All sessions of one node.
pub struct Sessions {
    me: NodeId,
    cipher: Box<dyn Cipher>,
    peers: BTreeMap<NodeId, Peer>,
    /// Peers with a confirmation retry or a previous session to expire (keeps
    /// `poll_timeout` independent of the number of peers).
    timed: BTreeSet<NodeId>,
    pending: BTreeMap<u64, Pending>,
    pending_by_addr: BTreeMap<SocketAddr, u64>,
    half_open: HalfOpenTable,
    guard: Option<Guard>,
    /// Seeds the guard's own generator (cookie secrets), so cookies never draw from (and
    /// never perturb) the node's random sequence.
    guard_rng: Rng,
    /// Last re-handshake started because a peer used an epoch we do not have.
    heals: BTreeMap<NodeId, Instant>,
    /// Operator-fixable handshake failures to report (address, reason).
    failures: Vec<(SocketAddr, String)>,
    /// Addresses already reported (oldest first), so each is reported once.
    reported: VecDeque<SocketAddr>,
    /// Earliest deadline, recomputed by `handle_timeout` and lowered as deadlines are added
    /// (a stale value only delays work until the node's next periodic tick).
    cached_deadline: Option<Instant>,
    handshake_timeout: Duration,
    max_pending: usize,
    rekey_after_messages: u64,
    rekey_after: Duration,
    rekey_grace: Duration,
    max_datagram: usize,
}

impl Sessions {
    /// Creates the session table.
    pub fn new(me: NodeId, cipher: Box<dyn Cipher>, config: &Config) -> Self {
        let ttl = config.handshake_timeout * HALF_OPEN_TIMEOUTS;
        Sessions {
            me,
            cipher,
            peers: BTreeMap::new(),
            timed: BTreeSet::new(),
            pending: BTreeMap::new(),
            pending_by_addr: BTreeMap::new(),
            half_open: HalfOpenTable::new(config.max_pending_handshakes, ttl),
            guard: None,
            guard_rng: Rng::new(me.0 as u64 ^ (me.0 >> 64) as u64 ^ 0x636f_6f6b_6965),
            heals: BTreeMap::new(),
            failures: Vec::new(),
            reported: VecDeque::new(),
            cached_deadline: None,
            handshake_timeout: config.handshake_timeout,
            max_pending: config.max_pending_handshakes,
            rekey_after_messages: config.rekey_after_messages.max(2),
            rekey_after: config.rekey_after,
            rekey_grace: config.rekey_grace,
            max_datagram: config.max_datagram,
        }
    }

    /// Seeds the cookie secrets' generator. `Node::new` calls it with the node's (secret)
    /// seed; without it the generator is seeded from the node id (tests only).
    pub fn seed_guard(&mut self, seed: u64) {
        self.guard_rng = Rng::new(seed ^ 0x636f_6f6b_6965);
        self.guard = None;
    }

    /// The cipher (for beacon MACs).
    pub fn cipher(&self) -> &dyn Cipher {
        &*self.cipher
    }

    /// Whether a session with `peer` exists.
    pub fn has_session(&self, peer: NodeId) -> bool {
        self.peers.contains_key(&peer)
    }

    /// The peer's identity key as verified in the handshake.
    pub fn verified_key(&self, peer: NodeId) -> Option<&[u8]> {
        self.peers
            .get(&peer)
            .and_then(|p| p.verified_key.as_deref())
    }

    /// The address an established session last authenticated `peer` at.
    pub fn peer_addr(&self, peer: NodeId) -> Option<SocketAddr> {
        self.peers.get(&peer).map(|p| p.addr)
    }

    /// Largest plaintext that fits one sealed datagram.
    pub fn plaintext_budget(&self) -> usize {
        self.max_datagram - wire::SEALED_HEADER_LEN - 32
    }

    /// Number of sessions and handshakes held (for memory-bound tests): established
    /// sessions, and initiator plus half-open responder handshakes.
    pub fn footprint(&self) -> (usize, usize) {
        (self.peers.len(), self.pending.len() + self.half_open.len())
    }

    /// Operator-fixable handshake failures since the last call, each address once.
    pub fn take_failures(&mut self) -> Vec<(SocketAddr, String)> {
        std::mem::take(&mut self.failures)
    }

    /// A datagram of another protocol version from `addr` (reported once per address).
    pub fn report_version(&mut self, addr: SocketAddr, version: u8) {
        let reason = format!(
            "protocol version {version}, this node speaks {} (upgrade every node?)",
            wire::VERSION
        );
        self.report(addr, &reason);
    }

    /// Records an operator-fixable failure for `addr` (reported once per address).
    fn report(&mut self, addr: SocketAddr, reason: &str) {
        if self.reported.contains(&addr) {
            return;
        }
        if self.reported.len() >= MAX_REPORTED {
            self.reported.pop_front();
        }
        self.reported.push_back(addr);
        tracing::warn!(%addr, reason, "handshake failed");
        self.failures.push((addr, reason.to_string()));
    }

    /// Forgets a peer (it left or failed); a later contact handshakes anew.
    pub fn remove_peer(&mut self, peer: NodeId) {
        self.peers.remove(&peer);
        self.timed.remove(&peer);
        self.half_open.remove_id(peer);
        let stale: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.peer == Some(peer))
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(p) = self.pending.remove(&k) {
                self.pending_by_addr.remove(&p.addr);
            }
        }
    }

    /// Sends `msgs` to `peer` at `addr` (`peer = None` when only the address is known, e.g.
    /// a seed). Starts a handshake when no session exists and queues the messages meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        now: Instant,
        peer: Option<NodeId>,
        addr: SocketAddr,
        msgs: Vec<Msg>,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let peer = peer.or_else(|| {
            self.peers
                .iter()
                .find(|(_, p)| p.addr == addr)
                .map(|(id, _)| *id)
        });
        if let Some(id) = peer {
            if let Some(p) = self.peers.get_mut(&id) {
                p.addr = addr;
                let needs_rekey = p.current.send_counter
                    >= self.rekey_after_messages.min(COUNTER_LIMIT)
                    || now.saturating_duration_since(p.current.created) >= self.rekey_after;
                if p.current.send_counter < COUNTER_LIMIT {
                    if let Some(data) = seal(self.me, &mut p.current, &msgs, stats) {
                        out.push((addr, data));
                    }
                } else {
                    stats.unsent_dropped += 1;
                }
                if needs_rekey && !p.rekeying {
                    p.rekeying = true;
                    self.start_handshake(
                        now,
                        Some(id),
                        addr,
                        Vec::new(),
                        MAX_HELLO_TRIES,
                        rng,
                        stats,
                        out,
                    );
                }
                return;
            }
        }
        self.start_handshake(now, peer, addr, msgs, MAX_HELLO_TRIES, rng, stats, out);
    }

    /// Sends `msgs` to whatever peer holds a session at `addr`; without one, starts a
    /// handshake that sends at most `tries` Hellos (1: an unverified address, see
    /// `node::beacons`) and queues the messages meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub fn send_with_tries(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        msgs: Vec<Msg>,
        tries: u32,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if tries >= MAX_HELLO_TRIES || self.peers.values().any(|p| p.addr == addr) {
            self.send(now, None, addr, msgs, rng, stats, out);
        } else {
            self.start_handshake(now, None, addr, msgs, tries.max(1), rng, stats, out);
        }
    }

    /// Handles a Hello, HelloAck, Cookie or Sealed datagram body. Returns opened messages,
    /// or why nothing came out (every drop is already counted in `stats`).
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        kind: Kind,
        body: &[u8],
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<Opened, Drop> {
        match kind {
            Kind::Hello | Kind::HelloAck | Kind::Cookie => {
                self.on_clear(now, from, kind, body, rng, stats, out)
            }
            Kind::Sealed => self.on_sealed(now, from, body, rng, stats, out),
            Kind::Beacon => Err(Drop::Handled),
        }
    }

    fn on_sealed(
        &mut self,
        now: Instant,
        from: SocketAddr,
        body: &[u8],
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<Opened, Drop> {
        let (hdr, ct) = SealedHeader::parse(body).map_err(|_| {
            stats.decode_errors += 1;
            Drop::Decode
        })?;
        let mut aad = Vec::with_capacity(wire::SEALED_HEADER_LEN);
        hdr.write(&mut aad);
        let peer_epoch = self.peers.get(&hdr.sender).map(|p| {
            if p.current.epoch == hdr.epoch {
                Some(false)
            } else if p
                .previous
                .as_ref()
                .is_some_and(|(k, until)| k.epoch == hdr.epoch && now < *until)
            {
                Some(true)
            } else {
                None
            }
        });
        let Some(Some(previous)) = peer_epoch else {
            // Not an established epoch: the first record of a half-open session must be the
            // initiator's Confirm with its identity proof.
            if let Some(attempt) = self.half_open.find_epoch(hdr.sender, hdr.epoch) {
                return self.on_confirm(now, from, hdr, &aad, ct, attempt, rng, stats, out);
            }
            stats.unknown_session += 1;
            if peer_epoch.is_some() {
                // An established peer uses an epoch we do not have: it lost our session.
                self.heal(now, hdr.sender, None, rng, stats, out);
            }
            return Err(Drop::UnknownSession(hdr.sender));
        };
        let Some(peer) = self.peers.get_mut(&hdr.sender) else {
            return Err(Drop::UnknownSession(hdr.sender));
        };
        let keys = match (previous, peer.previous.as_mut()) {
            (false, _) => &mut peer.current,
            (true, Some((k, _))) => k,
            (true, None) => return Err(Drop::UnknownSession(hdr.sender)),
        };
        if !keys.window.check(hdr.counter) {
            stats.replays += 1;
            return Err(Drop::Replay);
        }
        let mut buf = ct.to_vec();
        if keys.recv.open(hdr.counter, &aad, &mut buf).is_err() {
            stats.decrypt_failures += 1;
            return Err(Drop::Auth);
        }
        keys.window.accept(hdr.counter);
        let msgs = match wire::decode_msgs(&buf) {
            Ok(m) => m,
            Err(DecodeError::Malformed) | Err(_) => {
                stats.decode_errors += 1;
                return Err(Drop::Decode);
            }
        };
        let mut reply_confirm_ack = false;
        let mut kept = Vec::with_capacity(msgs.len());
        for m in msgs {
            match m {
                // A retransmitted Confirm of the session already established (our ack
                // was lost): authenticated by the session keys; acknowledge it again.
                Msg::Confirm { .. } => reply_confirm_ack = true,
                Msg::ConfirmAck => peer.confirm_retry = None,
                other => kept.push(other),
            }
        }
        // Any record from the responder on the current session proves it got our Confirm.
        if !previous && peer.confirm_retry.is_some() {
            peer.confirm_retry = None;
        }
        peer.addr = from;
        if reply_confirm_ack {
            if let Some(data) = seal(self.me, &mut peer.current, &[Msg::ConfirmAck], stats) {
                out.push((from, data));
            }
        }
        Ok(Opened {
            from: hdr.sender,
            addr: from,
            msgs: kept,
            new_session: false,
        })
    }

    /// Installs freshly established keys for `id`. Crossed handshakes (both sides
    /// initiated at once) resolve to the session started by the lower node id: a newer
    /// session started by the higher id does not replace a recent one started by the lower
    /// id (it is kept as `previous` so records on it still open during the grace period).
    fn install(&mut self, now: Instant, id: NodeId, addr: SocketAddr, keys: Keys) -> &mut Peer {
        let grace = now + self.rekey_grace;
        let window = self.handshake_timeout * HALF_OPEN_TIMEOUTS;
        self.timed.insert(id);
        self.note_deadline(grace.min(now + self.handshake_timeout));
        match self.peers.entry(id) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let p = e.into_mut();
                let keep_current = now.saturating_duration_since(p.current.created) < window
                    && p.current.initiator < keys.initiator;
                if keep_current {
                    p.previous = Some((keys, grace));
                } else {
                    let old = std::mem::replace(&mut p.current, keys);
                    p.previous = Some((old, grace));
                }
                p.addr = addr;
                p
            }
            std::collections::btree_map::Entry::Vacant(e) => e.insert(Peer {
                addr,
                current: keys,
                previous: None,
                confirm_retry: None,
                verified_key: None,
                rekeying: false,
                confirm_msg: None,
            }),
        }
    }

    /// A peer sealed with an epoch we do not have (we lost or never adopted its session):
    /// start a fresh handshake with it, but only with an established peer or a known
    /// member (`member_addr`), only to its recorded address (never to the datagram's
    /// source), at most once per `HALF_OPEN_TIMEOUTS` handshake timeouts per node, with few
    /// retries, and never under a PSK (with a PSK nothing is sent in answer to a packet
    /// that does not prove the key; the peer re-handshakes on its own next send).
    pub fn heal(
        &mut self,
        now: Instant,
        peer: NodeId,
        member_addr: Option<SocketAddr>,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if peer == self.me || self.cipher.beacon_mac(&[]).is_some() {
            return;
        }
        let Some(addr) = self.peers.get(&peer).map(|p| p.addr).or(member_addr) else {
            return;
        };
        let period = (self.handshake_timeout * HALF_OPEN_TIMEOUTS).max(Duration::from_secs(1));
        if self.heals.get(&peer).is_some_and(|t| now < *t + period) {
            return;
        }
        if self.heals.len() >= self.max_pending {
            self.heals.retain(|_, t| now < *t + period);
            if self.heals.len() >= self.max_pending {
                return;
            }
        }
        self.heals.insert(peer, now);
        if self.pending.values().any(|p| p.peer == Some(peer)) {
            return;
        }
        self.start_handshake(
            now,
            Some(peer),
            addr,
            Vec::new(),
            MAX_HEAL_TRIES,
            rng,
            stats,
            out,
        );
    }

    /// Retransmits handshakes and confirmations; expires old sessions and half-open
    /// handshakes.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let expired = self.half_open.expire(now);
        stats.half_open_dropped += expired as u64;
        let mut give_up = Vec::new();
        for (k, p) in self.pending.iter_mut() {
            if p.next_retry <= now {
                if p.tries >= p.max_tries {
                    give_up.push(*k);
                    continue;
                }
                p.tries += 1;
                p.next_retry = now
                    + self
                        .handshake_timeout
                        .mul_f64(1.5f64.powi(p.tries as i32 - 1).min(8.0));
                out.push((p.addr, p.hello.clone()));
            }
        }
        for k in give_up {
            if let Some(p) = self.pending.remove(&k) {
                self.pending_by_addr.remove(&p.addr);
                stats.unsent_dropped += p.queued.len() as u64;
                if let Some(id) = p.peer {
                    if let Some(peer) = self.peers.get_mut(&id) {
                        peer.rekeying = false;
                    }
                }
            }
        }
        let me = self.me;
        let mut idle = Vec::new();
        for id in &self.timed {
            let Some(peer) = self.peers.get_mut(id) else {
                idle.push(*id);
                continue;
            };
            if let Some((at, tries)) = peer.confirm_retry {
                if at <= now {
                    if tries >= MAX_HELLO_TRIES {
                        peer.confirm_retry = None;
                    } else {
                        peer.confirm_retry = Some((now + self.handshake_timeout, tries + 1));
                        if let Some(m) = peer.confirm_msg.clone() {
                            if let Some(data) = seal(me, &mut peer.current, &[m], stats) {
                                out.push((peer.addr, data));
                            }
                        }
                    }
                }
            }
            if let Some((_, until)) = &peer.previous {
                if *until <= now {
                    peer.previous = None;
                }
            }
            if peer.previous.is_none() && peer.confirm_retry.is_none() {
                idle.push(*id);
            }
        }
        for id in idle {
            self.timed.remove(&id);
        }
        self.cached_deadline = self.compute_deadline();
    }

    fn note_deadline(&mut self, t: Instant) {
        self.cached_deadline = Some(self.cached_deadline.map_or(t, |d| d.min(t)));
    }

    /// Earliest retransmission or expiry deadline (cached; see `cached_deadline`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cached_deadline
    }

    fn compute_deadline(&self) -> Option<Instant> {
        let a = self.pending.values().map(|p| p.next_retry).min();
        let timed = || self.timed.iter().filter_map(|id| self.peers.get(id));
        let b = timed()
            .filter_map(|p| p.confirm_retry.map(|(t, _)| t))
            .min();
        let c = timed()
            .filter_map(|p| p.previous.as_ref().map(|(_, t)| *t))
            .min();
        let d = self.half_open.next_expiry();
        [a, b, c, d].into_iter().flatten().min()
    }
}

/// Seals `msgs` as one record. Fails closed: if the AEAD fails, nothing is returned (and
/// nothing is ever sent in the clear); the failure is counted in `seal_failures`.
fn seal(me: NodeId, keys: &mut Keys, msgs: &[Msg], stats: &mut Stats) -> Option<Vec<u8>> {
    let hdr = SealedHeader {
        sender: me,
        epoch: keys.epoch,
        counter: keys.send_counter,
    };
    // Callers check COUNTER_LIMIT first; saturate rather than wrap regardless.
    keys.send_counter = keys.send_counter.saturating_add(1);
    let plain = wire::encode_msgs(msgs);
    let mut data = Vec::with_capacity(wire::SEALED_HEADER_LEN + plain.len() + keys.send.tag_len());
    hdr.write(&mut data);
    let mut buf = plain;
    if keys.send.seal(hdr.counter, &data, &mut buf).is_err() {
        stats.seal_failures += 1;
        return None;
    }
    data.extend_from_slice(&buf);
    Some(data)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dos;
