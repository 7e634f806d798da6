//! Per-pair encrypted sessions: the handshake state machine and sealed records.
//!
//! ```text
//! initiator                                   responder
//!   Hello{from, to?, attempt, share_i}  ---->
//!                                       <----  HelloAck{from, to, attempt, epoch, share_r,
//!                                                       identity?, confirm = seal_r(0, "")}
//!   Sealed[Confirm{identity?}] ...     ---->   (records open as soon as keys exist)
//!                                       <----  Sealed[ConfirmAck]
//! ```
//! Keys come from `Cipher::KeyExchange::complete` over a transcript binding the protocol
//! version, both node ids and both shares. Nonces are per-direction counters; a replay window
//! rejects repeats. Crossed handshakes resolve to the one started by the lower node id.
//! A session is rekeyed after `rekey_after_messages` records or `rekey_after`; the previous
//! session still opens records for `rekey_grace`.

mod replay;

pub use replay::ReplayWindow;

use crate::cipher::{Cipher, KeyExchange, Role, DOMAIN_HANDSHAKE};
use crate::config::Config;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::wire::{
    self, DecodeError, Hello, HelloAck, IdentityProof, Kind, Msg, SealedHeader, VERSION,
};
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Handshake attempts before giving up on a peer (queued messages are dropped and counted).
const MAX_HELLO_TRIES: u32 = 8;
/// Message batches buffered per peer while its handshake runs.
const MAX_QUEUED_BATCHES: usize = 64;
/// A key never seals beyond this counter: reaching it forces a rekey (never a wrap).
const COUNTER_LIMIT: u64 = u64::MAX - 1;
/// Associated data of the key-confirmation record.
const CONFIRM_AAD: &[u8] = b"espial-confirm-v1";

/// Builds the key-derivation transcript: version, ids and shares of both sides.
pub fn transcript(initiator: NodeId, responder: NodeId, share_i: &[u8], share_r: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(64 + share_i.len() + share_r.len());
    t.extend_from_slice(b"espial-handshake");
    t.push(VERSION);
    t.extend_from_slice(&initiator.to_bytes());
    t.extend_from_slice(&responder.to_bytes());
    t.extend_from_slice(&(share_i.len() as u16).to_be_bytes());
    t.extend_from_slice(share_i);
    t.extend_from_slice(&(share_r.len() as u16).to_be_bytes());
    t.extend_from_slice(share_r);
    t
}

struct Keys {
    epoch: u32,
    /// Transcript of the handshake that made these keys (identity signatures cover it).
    transcript: Vec<u8>,
    send: Box<dyn crate::cipher::Aead>,
    recv: Box<dyn crate::cipher::Aead>,
    send_counter: u64,
    window: ReplayWindow,
    created: Instant,
}

struct Peer {
    addr: SocketAddr,
    current: Keys,
    /// Responder side: a new session answered while `current` works. We keep sending on
    /// `current` until the initiator's first record on the new epoch proves it adopted it
    /// (a stale or duplicated Hello then cannot break a working session).
    next: Option<Keys>,
    previous: Option<(Keys, Instant)>,
    /// Responder side: the Hello attempt answered and the cached answer (for duplicates).
    answered: Option<(u64, Vec<u8>)>,
    /// The peer proved possession of the keys (any authenticated record, or Confirm).
    confirmed: bool,
    /// Initiator side: our Confirm still awaits its ack; (bytes-to-resend trigger, next retry, tries).
    confirm_retry: Option<(Instant, u32)>,
    verified_key: Option<Vec<u8>>,
    /// A rekey handshake of ours is in progress.
    rekeying: bool,
    /// Initiator side: the Confirm message, resent until acknowledged.
    confirm_msg: Option<Msg>,
}

struct Pending {
    peer: Option<NodeId>,
    addr: SocketAddr,
    exchange: Option<Box<dyn KeyExchange>>,
    hello: Vec<u8>,
    next_retry: Instant,
    tries: u32,
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
    /// No session for that sender/epoch.
    UnknownSession,
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
    /// Last re-handshake started because a peer used an epoch we do not have.
    heals: BTreeMap<NodeId, Instant>,
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
        Sessions {
            me,
            cipher,
            peers: BTreeMap::new(),
            timed: BTreeSet::new(),
            pending: BTreeMap::new(),
            pending_by_addr: BTreeMap::new(),
            heals: BTreeMap::new(),
            cached_deadline: None,
            handshake_timeout: config.handshake_timeout,
            max_pending: config.max_pending_handshakes,
            rekey_after_messages: config.rekey_after_messages.max(2),
            rekey_after: config.rekey_after,
            rekey_grace: config.rekey_grace,
            max_datagram: config.max_datagram,
        }
    }

    /// The cipher (for beacon MACs).
    pub fn cipher(&self) -> &dyn Cipher {
        &*self.cipher
    }

    /// Encodes a clear handshake datagram; with a cluster PSK a 16-byte MAC over the kind
    /// byte and body is appended, so peers without the PSK are refused before any key work.
    fn clear_datagram<T: serde::Serialize>(&self, kind: Kind, body: &T) -> Vec<u8> {
        let mut d = wire::encode_clear(kind, body);
        let mac_input = &d[wire::HEADER_LEN - 1..];
        if let Some(mac) = self.cipher.beacon_mac(mac_input) {
            d.extend_from_slice(&mac);
        }
        d
    }

    /// Verifies and strips the PSK MAC of a clear handshake body (no-op without a PSK).
    fn check_clear_mac<'a>(&self, kind: Kind, body: &'a [u8]) -> Option<&'a [u8]> {
        if self.cipher.beacon_mac(&[]).is_none() {
            return Some(body);
        }
        if body.len() < 16 {
            return None;
        }
        let (msg, tag) = body.split_at(body.len() - 16);
        let mut input = Vec::with_capacity(msg.len() + 1);
        input.push(kind as u8);
        input.extend_from_slice(msg);
        let mut mac = [0u8; 16];
        mac.copy_from_slice(tag);
        self.cipher.verify_beacon(&input, Some(&mac)).then_some(msg)
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

    /// Largest plaintext that fits one sealed datagram.
    pub fn plaintext_budget(&self) -> usize {
        self.max_datagram - wire::SEALED_HEADER_LEN - 32
    }

    /// Number of sessions and handshakes held (for memory-bound tests).
    pub fn footprint(&self) -> (usize, usize) {
        (self.peers.len(), self.pending.len())
    }

    /// Forgets a peer (it left or failed); a later contact handshakes anew.
    pub fn remove_peer(&mut self, peer: NodeId) {
        self.peers.remove(&peer);
        self.timed.remove(&peer);
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
                    let data = seal(self.me, &mut p.current, &msgs);
                    out.push((addr, data));
                } else {
                    stats.unsent_dropped += 1;
                }
                if needs_rekey && !p.rekeying {
                    p.rekeying = true;
                    self.start_handshake(now, Some(id), addr, Vec::new(), rng, stats, out);
                }
                return;
            }
        }
        self.start_handshake(now, peer, addr, msgs, rng, stats, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn start_handshake(
        &mut self,
        now: Instant,
        peer: Option<NodeId>,
        addr: SocketAddr,
        msgs: Vec<Msg>,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if let Some(attempt) = self.pending_by_addr.get(&addr).copied() {
            if let Some(p) = self.pending.get_mut(&attempt) {
                if !msgs.is_empty() {
                    if p.queued.len() >= MAX_QUEUED_BATCHES {
                        p.queued.remove(0);
                        stats.unsent_dropped += 1;
                    }
                    p.queued.push(msgs);
                }
                return;
            }
        }
        if self.pending.len() >= self.max_pending {
            stats.handshakes_refused += 1;
            stats.unsent_dropped += 1;
            return;
        }
        let attempt = rng.next_u64();
        let exchange = self.cipher.start_exchange();
        let hello = self.clear_datagram(
            Kind::Hello,
            &Hello {
                from: self.me,
                to: peer,
                attempt,
                share: exchange.public_share().to_vec(),
            },
        );
        out.push((addr, hello.clone()));
        self.note_deadline(now + self.handshake_timeout);
        self.pending_by_addr.insert(addr, attempt);
        self.pending.insert(
            attempt,
            Pending {
                peer,
                addr,
                exchange: Some(exchange),
                hello,
                next_retry: now + self.handshake_timeout,
                tries: 1,
                queued: if msgs.is_empty() { vec![] } else { vec![msgs] },
            },
        );
    }

    /// Handles a Hello, HelloAck or Sealed datagram body. Returns opened messages, or why
    /// nothing came out (every drop is already counted in `stats`).
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
        let body = match kind {
            Kind::Hello | Kind::HelloAck => match self.check_clear_mac(kind, body) {
                Some(b) => b,
                None => {
                    stats.handshake_failures += 1;
                    return Err(Drop::Handshake);
                }
            },
            _ => body,
        };
        match kind {
            Kind::Hello => {
                let hello: Hello = wire::decode_body(body).map_err(|_| {
                    stats.handshake_failures += 1;
                    Drop::Handshake
                })?;
                self.on_hello(now, from, hello, rng, stats, out)?;
                Err(Drop::Handled)
            }
            Kind::HelloAck => {
                let ack: HelloAck = wire::decode_body(body).map_err(|_| {
                    stats.handshake_failures += 1;
                    Drop::Handshake
                })?;
                self.on_hello_ack(now, from, ack, stats, out)
            }
            Kind::Sealed => self.on_sealed(now, from, body, rng, stats, out),
            Kind::Beacon => Err(Drop::Handled),
        }
    }

    /// Our proof of the static identity key for a handshake transcript.
    fn proof(&self, transcript: &[u8]) -> IdentityProof {
        IdentityProof {
            public_key: self.cipher.identity_public_key(),
            signature: self.cipher.sign(DOMAIN_HANDSHAKE, transcript),
        }
    }

    fn check_proof(
        &self,
        claimed: NodeId,
        proof: Option<&IdentityProof>,
        transcript: &[u8],
        stats: &mut Stats,
    ) -> Option<Vec<u8>> {
        check_proof(&*self.cipher, claimed, proof, transcript, stats)
    }

    fn on_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hello: Hello,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<(), Drop> {
        let fail = |stats: &mut Stats| {
            stats.handshake_failures += 1;
            Err(Drop::Handshake)
        };
        if hello.from == self.me
            || hello.to.is_some_and(|t| t != self.me)
            || hello.share.len() > 256
        {
            return fail(stats);
        }
        // Duplicate of a Hello we already answered: answer again, identically.
        if let Some(p) = self.peers.get(&hello.from) {
            if let Some((attempt, bytes)) = &p.answered {
                if *attempt == hello.attempt {
                    out.push((from, bytes.clone()));
                    return Ok(());
                }
            }
        }
        // Crossed handshakes: the one started by the lower id wins.
        let mine = self
            .pending
            .iter()
            .find(|(_, p)| p.peer == Some(hello.from) || (p.peer.is_none() && p.addr == from))
            .map(|(k, _)| *k);
        let mut inherited = Vec::new();
        if let Some(k) = mine {
            if self.me < hello.from {
                return Ok(()); // ours wins; they will answer it
            }
            if let Some(p) = self.pending.remove(&k) {
                self.pending_by_addr.remove(&p.addr);
                inherited = p.queued;
            }
        }
        // Memory bound: count half-open responder sessions.
        let half_open = self.peers.values().filter(|p| !p.confirmed).count();
        if half_open >= self.max_pending && !self.peers.contains_key(&hello.from) {
            stats.handshakes_refused += 1;
            return Err(Drop::Handshake);
        }
        let exchange = self.cipher.start_exchange();
        let share_r = exchange.public_share().to_vec();
        let t = transcript(hello.from, self.me, &hello.share, &share_r);
        let keys = match exchange.complete(&hello.share, &t, Role::Responder) {
            Ok(k) => k,
            Err(_) => return fail(stats),
        };
        let epoch = rng.next_u64() as u32;
        let mut confirm = Vec::new();
        if keys.send.seal(0, CONFIRM_AAD, &mut confirm).is_err() {
            return fail(stats);
        }
        let identity = Some(self.proof(&t));
        let ack = self.clear_datagram(
            Kind::HelloAck,
            &HelloAck {
                from: self.me,
                to: hello.from,
                attempt: hello.attempt,
                epoch,
                share: share_r,
                identity,
                confirm,
            },
        );
        out.push((from, ack.clone()));
        let new_keys = Keys {
            epoch,
            transcript: t,
            send: keys.send,
            recv: keys.recv,
            send_counter: 1,
            window: ReplayWindow::default(),
            created: now,
        };
        match self.peers.get_mut(&hello.from) {
            Some(p) => {
                p.next = Some(new_keys);
                p.addr = from;
                p.answered = Some((hello.attempt, ack));
            }
            None => {
                self.peers.insert(
                    hello.from,
                    Peer {
                        addr: from,
                        current: new_keys,
                        next: None,
                        previous: None,
                        answered: Some((hello.attempt, ack)),
                        confirmed: false,
                        confirm_retry: None,
                        verified_key: None,
                        rekeying: false,
                        confirm_msg: None,
                    },
                );
            }
        }
        self.timed.insert(hello.from);
        self.note_deadline(now + self.rekey_grace);
        stats.handshakes_completed += 1;
        for batch in inherited {
            self.send(now, Some(hello.from), from, batch, rng, stats, out);
        }
        Ok(())
    }

    fn on_hello_ack(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ack: HelloAck,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<Opened, Drop> {
        let fail = |stats: &mut Stats| {
            stats.handshake_failures += 1;
            Err(Drop::Handshake)
        };
        let Some(p) = self.pending.get(&ack.attempt) else {
            return fail(stats); // unknown, duplicate or stale answer
        };
        if ack.to != self.me || p.peer.is_some_and(|id| id != ack.from) || ack.from == self.me {
            return fail(stats);
        }
        let Some(mut pending) = self.pending.remove(&ack.attempt) else {
            return fail(stats);
        };
        let Some(exchange) = pending.exchange.take() else {
            return fail(stats);
        };
        let share_i = exchange.public_share().to_vec();
        let t = transcript(self.me, ack.from, &share_i, &ack.share);
        // A forged answer must not kill the real handshake: verify before consuming it.
        let keys = match exchange.complete(&ack.share, &t, Role::Initiator) {
            Ok(k) => k,
            Err(_) => {
                stats.handshake_failures += 1;
                self.retry_with_fresh_exchange(now, ack.attempt, pending);
                return Err(Drop::Handshake);
            }
        };
        let mut confirm = ack.confirm.clone();
        let verified = self.check_proof(ack.from, ack.identity.as_ref(), &t, stats);
        if keys.recv.open(0, CONFIRM_AAD, &mut confirm).is_err() || verified.is_none() {
            stats.handshake_failures += 1;
            self.retry_with_fresh_exchange(now, ack.attempt, pending);
            return Err(Drop::Handshake);
        }
        self.pending_by_addr.remove(&pending.addr);
        let mut window = ReplayWindow::default();
        window.accept(0);
        let new_keys = Keys {
            epoch: ack.epoch,
            transcript: t.clone(),
            send: keys.send,
            recv: keys.recv,
            send_counter: 0,
            window,
            created: now,
        };
        let grace = now + self.rekey_grace;
        let retry = Some((now + self.handshake_timeout, 1));
        let identity = Some(self.proof(&t));
        let confirm_msg = Msg::Confirm { identity };
        match self.peers.get_mut(&ack.from) {
            Some(p) => {
                let old = std::mem::replace(&mut p.current, new_keys);
                p.previous = Some((old, grace));
                p.addr = from;
                p.confirmed = true;
                p.confirm_retry = retry;
                p.rekeying = false;
                p.answered = None;
                p.next = None;
                p.confirm_msg = Some(confirm_msg.clone());
                if verified.is_some() {
                    p.verified_key = verified;
                }
            }
            None => {
                self.peers.insert(
                    ack.from,
                    Peer {
                        addr: from,
                        current: new_keys,
                        next: None,
                        previous: None,
                        answered: None,
                        confirmed: true,
                        confirm_retry: retry,
                        verified_key: verified,
                        rekeying: false,
                        confirm_msg: Some(confirm_msg.clone()),
                    },
                );
            }
        }
        self.timed.insert(ack.from);
        self.note_deadline(now + self.handshake_timeout);
        stats.handshakes_completed += 1;
        // Confirm first, then what was queued.
        let Some(peer) = self.peers.get_mut(&ack.from) else {
            return Err(Drop::Handled);
        };
        let mut first = vec![confirm_msg];
        let mut queued = pending.queued.into_iter();
        if let Some(b) = queued.next() {
            first.extend(b);
        }
        out.push((from, seal(self.me, &mut peer.current, &first)));
        for batch in queued {
            out.push((from, seal(self.me, &mut peer.current, &batch)));
        }
        Ok(Opened {
            from: ack.from,
            addr: from,
            msgs: Vec::new(),
            new_session: true,
        })
    }

    /// A forged or broken answer must not kill the real handshake: keep the attempt and
    /// retry at once with a fresh key exchange (the genuine answer may still come).
    fn retry_with_fresh_exchange(&mut self, now: Instant, attempt: u64, mut pending: Pending) {
        let fresh = self.cipher.start_exchange();
        pending.hello = self.clear_datagram(
            Kind::Hello,
            &Hello {
                from: self.me,
                to: pending.peer,
                attempt,
                share: fresh.public_share().to_vec(),
            },
        );
        pending.exchange = Some(fresh);
        pending.next_retry = now;
        self.note_deadline(now);
        self.pending.insert(attempt, pending);
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
        #[derive(PartialEq)]
        enum Which {
            Current,
            Next,
            Previous,
        }
        let which = match self.peers.get(&hdr.sender) {
            Some(p) if p.current.epoch == hdr.epoch => Some(Which::Current),
            Some(p) if p.next.as_ref().is_some_and(|k| k.epoch == hdr.epoch) => Some(Which::Next),
            Some(p)
                if p.previous
                    .as_ref()
                    .is_some_and(|(k, until)| k.epoch == hdr.epoch && now < *until) =>
            {
                Some(Which::Previous)
            }
            _ => None,
        };
        let Some(which) = which else {
            stats.unknown_session += 1;
            self.heal(now, hdr.sender, from, rng, stats, out);
            return Err(Drop::UnknownSession);
        };
        let grace = now + self.rekey_grace;
        let Some(peer) = self.peers.get_mut(&hdr.sender) else {
            return Err(Drop::UnknownSession);
        };
        let keys = match which {
            Which::Current => &mut peer.current,
            Which::Next => match peer.next.as_mut() {
                Some(k) => k,
                None => return Err(Drop::UnknownSession),
            },
            Which::Previous => match peer.previous.as_mut() {
                Some((k, _)) => k,
                None => return Err(Drop::UnknownSession),
            },
        };
        if !keys.window.check(hdr.counter) {
            stats.replays += 1;
            return Err(Drop::Replay);
        }
        let mut aad = Vec::with_capacity(wire::SEALED_HEADER_LEN);
        hdr.write(&mut aad);
        let mut buf = ct.to_vec();
        if keys.recv.open(hdr.counter, &aad, &mut buf).is_err() {
            stats.decrypt_failures += 1;
            return Err(Drop::Auth);
        }
        keys.window.accept(hdr.counter);
        if which == Which::Next {
            // The initiator adopted the session we answered: switch to it.
            if let Some(next) = peer.next.take() {
                let old = std::mem::replace(&mut peer.current, next);
                peer.previous = Some((old, grace));
                peer.rekeying = false;
                peer.confirm_msg = None;
                peer.confirm_retry = None;
                peer.confirmed = false;
                self.timed.insert(hdr.sender);
                self.cached_deadline = Some(self.cached_deadline.map_or(grace, |d| d.min(grace)));
            }
        }
        let msgs = match wire::decode_msgs(&buf) {
            Ok(m) => m,
            Err(DecodeError::Malformed) | Err(_) => {
                stats.decode_errors += 1;
                return Err(Drop::Decode);
            }
        };
        let mut new_session = false;
        let mut reply_confirm_ack = false;
        let mut kept = Vec::with_capacity(msgs.len());
        for m in msgs {
            match m {
                Msg::Confirm { identity } => {
                    let Some(key) = check_proof(
                        &*self.cipher,
                        hdr.sender,
                        identity.as_ref(),
                        &peer.current.transcript,
                        stats,
                    ) else {
                        stats.handshake_failures += 1;
                        return Err(Drop::Handshake);
                    };
                    peer.verified_key = Some(key);
                    if !peer.confirmed {
                        new_session = true;
                    }
                    peer.confirmed = true;
                    reply_confirm_ack = true;
                }
                Msg::ConfirmAck => {
                    peer.confirm_retry = None;
                }
                other => kept.push(other),
            }
        }
        if !peer.confirmed {
            // The initiator's first record must carry its identity proof.
            stats.handshake_failures += 1;
            return Err(Drop::Handshake);
        }
        // Any record from the responder proves it got our Confirm's session.
        if which == Which::Current && peer.confirm_retry.is_some() && peer.answered.is_none() {
            peer.confirm_retry = None;
        }
        peer.addr = from;
        if reply_confirm_ack {
            let data = seal(self.me, &mut peer.current, &[Msg::ConfirmAck]);
            out.push((from, data));
        }
        let _ = now;
        Ok(Opened {
            from: hdr.sender,
            addr: from,
            msgs: kept,
            new_session,
        })
    }

    /// A peer sealed with an epoch we do not have (we lost or never adopted its session):
    /// start a fresh handshake with it, at most once per second per node and with a bounded
    /// table, so forged headers cannot make us flood.
    fn heal(
        &mut self,
        now: Instant,
        peer: NodeId,
        addr: SocketAddr,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if peer == self.me {
            return;
        }
        if self
            .heals
            .get(&peer)
            .is_some_and(|t| now < *t + Duration::from_secs(1))
        {
            return;
        }
        if self.heals.len() >= self.max_pending {
            self.heals.retain(|_, t| now < *t + Duration::from_secs(1));
            if self.heals.len() >= self.max_pending {
                return;
            }
        }
        self.heals.insert(peer, now);
        if self.pending.values().any(|p| p.peer == Some(peer)) {
            return;
        }
        self.start_handshake(now, Some(peer), addr, Vec::new(), rng, stats, out);
    }

    /// Retransmits handshakes and confirmations; expires old sessions.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let mut give_up = Vec::new();
        for (k, p) in self.pending.iter_mut() {
            if p.next_retry <= now {
                if p.tries >= MAX_HELLO_TRIES {
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
                            let data = seal(me, &mut peer.current, &[m]);
                            out.push((peer.addr, data));
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
        [a, b, c].into_iter().flatten().min()
    }
}

/// Checks a peer's identity proof: the signature over this handshake's transcript verifies
/// under the presented key, and that key derives the node id the peer claims. Returns the
/// verified key; a mismatch is counted in `identity_mismatch`, a bad signature in
/// `handshake_failures` by the caller.
fn check_proof(
    cipher: &dyn Cipher,
    claimed: NodeId,
    proof: Option<&IdentityProof>,
    transcript: &[u8],
    stats: &mut Stats,
) -> Option<Vec<u8>> {
    let proof = proof?;
    if cipher.node_id_for(&proof.public_key) != Some(claimed) {
        stats.identity_mismatch += 1;
        return None;
    }
    cipher
        .verify(
            &proof.public_key,
            DOMAIN_HANDSHAKE,
            transcript,
            &proof.signature,
        )
        .ok()?;
    Some(proof.public_key.clone())
}

fn seal(me: NodeId, keys: &mut Keys, msgs: &[Msg]) -> Vec<u8> {
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
    // Sealing with a fresh counter cannot fail for a well-formed key.
    let _ = keys.send.seal(hdr.counter, &data, &mut buf);
    data.extend_from_slice(&buf);
    data
}

#[cfg(test)]
mod tests;
