//! The handshake: Hello, Cookie, HelloAck and the initiator's Confirm, with the identity
//! proofs of both sides. This is the one place where a node id is bound to its static key:
//! [`Sessions::proof`] makes a proof, [`Sessions::check_proof`] checks one (signature over
//! the transcript and role, and `node_id_for(public key) == claimed id`).

use super::guard::{Admit, Guard};
use super::half_open::HalfOpen;
use super::{seal, Drop, Keys, Opened, Pending, ReplayWindow, Sessions, MAX_QUEUED_BATCHES};
use crate::cipher::Role;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::wire::{
    self, Cookie, Hello, HelloAck, IdentityProof, Kind, Msg, SealedHeader, HELLO_MIN_LEN, VERSION,
};
use crate::NodeId;
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Instant;

/// Signature domain of handshake identity proofs.
pub use crate::cipher::DOMAIN_HANDSHAKE as HANDSHAKE_DOMAIN;
/// Associated data of the key-confirmation record.
const CONFIRM_AAD: &[u8] = b"espial-confirm-v2";
/// Largest accepted key share.
const MAX_SHARE: usize = 256;
/// HelloAck resends for duplicate Hellos (each answers one Hello from the original source).
const MAX_ACK_RESENDS: u32 = 3;
/// Reason given for a handshake that fails on the cluster key.
const KEY_REASON: &str = "different cluster key?";

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

/// The message an identity proof signs: the transcript followed by one role byte
/// (1 = responder, in the HelloAck; 2 = initiator, in the Confirm), so neither side's
/// proof can be reflected as the other's.
pub fn proof_message(transcript: &[u8], role: Role) -> Vec<u8> {
    let mut m = Vec::with_capacity(transcript.len() + 1);
    m.extend_from_slice(transcript);
    m.push(match role {
        Role::Responder => 1,
        Role::Initiator => 2,
    });
    m
}

impl Sessions {
    /// Our identity proof for a handshake transcript in `role`: our static public key and
    /// its signature (domain [`HANDSHAKE_DOMAIN`]) over [`proof_message`].
    fn proof(&self, t: &[u8], role: Role) -> IdentityProof {
        IdentityProof {
            public_key: self.cipher.identity_public_key(),
            signature: self.cipher.sign(HANDSHAKE_DOMAIN, &proof_message(t, role)),
        }
    }

    /// Checks a peer's identity proof: `proof.public_key` derives the `claimed` node id, and
    /// its signature over this handshake's transcript and the peer's role verifies (so a
    /// proof from another session, or the other side's proof, fails). Failures are counted
    /// in `identity_mismatch`.
    fn check_proof(
        &self,
        claimed: NodeId,
        proof: &IdentityProof,
        t: &[u8],
        role: Role,
        stats: &mut Stats,
    ) -> bool {
        let ok = self.cipher.node_id_for(&proof.public_key) == Some(claimed)
            && self
                .cipher
                .verify(
                    &proof.public_key,
                    HANDSHAKE_DOMAIN,
                    &proof_message(t, role),
                    &proof.signature,
                )
                .is_ok();
        if !ok {
            stats.identity_mismatch += 1;
        }
        ok
    }

    /// Encodes a clear handshake datagram; with a cluster PSK a 16-byte MAC over the kind
    /// byte and everything after the header is appended, so peers without the PSK are
    /// refused before any key work.
    fn clear_datagram<T: Serialize>(&self, kind: Kind, body: &T) -> Vec<u8> {
        let d = wire::encode_clear(kind, body);
        self.append_mac(d)
    }

    fn append_mac(&self, mut d: Vec<u8>) -> Vec<u8> {
        let mac_input = &d[wire::HEADER_LEN - 1..];
        if let Some(mac) = self.cipher.beacon_mac(mac_input) {
            d.extend_from_slice(&mac);
        }
        d
    }

    fn hello_datagram(&self, hello: &Hello) -> Vec<u8> {
        let mac_len = if self.has_psk() { 16 } else { 0 };
        self.append_mac(wire::encode_hello(hello, mac_len))
    }

    fn has_psk(&self) -> bool {
        self.cipher.beacon_mac(&[]).is_some()
    }

    /// Verifies and strips the PSK MAC of a clear handshake body (no-op without a PSK).
    fn check_clear_mac<'a>(&self, kind: Kind, body: &'a [u8]) -> Option<&'a [u8]> {
        if !self.has_psk() {
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

    /// A clear handshake datagram: check the PSK MAC, decode, dispatch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_clear(
        &mut self,
        now: Instant,
        from: SocketAddr,
        kind: Kind,
        body: &[u8],
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<Opened, Drop> {
        let datagram_len = body.len() + wire::HEADER_LEN;
        let fail = |stats: &mut Stats| {
            stats.handshake_failures += 1;
            Err(Drop::Handshake)
        };
        let Some(body) = self.check_clear_mac(kind, body) else {
            // Nothing is sent in answer to a packet without the cluster key.
            let expected = kind == Kind::HelloAck && self.pending.values().any(|p| p.addr == from)
                || kind == Kind::Hello && datagram_len >= HELLO_MIN_LEN;
            if expected {
                self.report(from, KEY_REASON);
            }
            return fail(stats);
        };
        match kind {
            Kind::Hello => {
                if datagram_len < HELLO_MIN_LEN {
                    return fail(stats); // unpadded: answering could amplify
                }
                let Ok(hello) = wire::decode_body::<Hello>(body) else {
                    return fail(stats);
                };
                self.on_hello(now, from, datagram_len, hello, rng, stats, out)?;
                Err(Drop::Handled)
            }
            Kind::HelloAck => {
                let Ok(ack) = wire::decode_body::<HelloAck>(body) else {
                    return fail(stats);
                };
                self.on_hello_ack(now, from, ack, stats, out)
            }
            _ => {
                let Ok(cookie) = wire::decode_body::<Cookie>(body) else {
                    return fail(stats);
                };
                self.on_cookie(now, from, cookie, stats, out);
                Err(Drop::Handled)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_handshake(
        &mut self,
        now: Instant,
        peer: Option<NodeId>,
        addr: SocketAddr,
        msgs: Vec<Msg>,
        max_tries: u32,
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
        let share = exchange.public_share().to_vec();
        let hello = self.hello_datagram(&Hello {
            from: self.me,
            to: peer,
            attempt,
            share: share.clone(),
            cookie: None,
        });
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
                share,
                cookie: None,
                next_retry: now + self.handshake_timeout,
                tries: 1,
                max_tries,
                queued: if msgs.is_empty() { vec![] } else { vec![msgs] },
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hello_len: usize,
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
            || hello.share.len() > MAX_SHARE
        {
            return fail(stats);
        }
        // Duplicate of a Hello we answered: resend the same answer, only to the original
        // source, a bounded number of times, each in answer to one Hello at least as large.
        if let Some(h) = self.half_open.get_mut(hello.from, hello.attempt) {
            if h.share == hello.share {
                if h.addr == from && h.resends < MAX_ACK_RESENDS && h.ack.len() <= hello_len {
                    h.resends += 1;
                    out.push((from, h.ack.clone()));
                    return Ok(());
                }
                return fail(stats);
            }
        }
        // Crossed handshakes: if we are initiating to the same node and our id is lower,
        // ours wins and theirs is ignored (the peer answers ours). Otherwise we answer
        // theirs and keep ours until their proven Confirm arrives (a forged Hello must not
        // cancel our handshake).
        let crossing = self
            .pending
            .values()
            .any(|p| p.peer == Some(hello.from) || (p.peer.is_none() && p.addr == from));
        if crossing && self.me < hello.from {
            return Ok(());
        }
        let grng = &mut self.guard_rng;
        let guard = self.guard.get_or_insert_with(|| Guard::new(now, grng));
        let watermark = (self.max_pending / 8).max(16);
        let admit = guard.admit(
            now,
            grng,
            from,
            hello.from,
            hello.attempt,
            hello.cookie.as_ref(),
            self.half_open.count(false),
            watermark,
        );
        let verified = match admit {
            Admit::Exchange { verified } => verified,
            Admit::Refuse => {
                stats.handshakes_refused += 1;
                return Err(Drop::Handshake);
            }
            Admit::SendCookie => {
                let cookie = guard.cookie(now, grng, from, hello.from, hello.attempt);
                let reply = self.clear_datagram(
                    Kind::Cookie,
                    &Cookie {
                        attempt: hello.attempt,
                        cookie,
                    },
                );
                if reply.len() <= hello_len {
                    stats.cookies_sent += 1;
                    out.push((from, reply));
                }
                return Ok(());
            }
        };
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
            stats.seal_failures += 1;
            return fail(stats);
        }
        let identity = self.proof(&t, Role::Responder);
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
        if ack.len() > hello_len {
            // Never answer with more bytes than the question (the padding rule prevents
            // this for every supported cipher).
            return fail(stats);
        }
        out.push((from, ack.clone()));
        let evicted = self.half_open.insert(
            hello.from,
            hello.attempt,
            HalfOpen {
                addr: from,
                share: hello.share,
                keys: Keys {
                    epoch,
                    initiator: hello.from,
                    transcript: t,
                    send: keys.send,
                    recv: keys.recv,
                    send_counter: 1,
                    window: ReplayWindow::default(),
                    created: now,
                },
                ack,
                resends: 0,
                created: now,
                verified,
            },
        );
        stats.half_open_dropped += evicted as u64;
        if let Some(t) = self.half_open.next_expiry() {
            self.note_deadline(t);
        }
        Ok(())
    }

    /// A cookie from a responder under load: repeat our Hello with it, at once but counted
    /// as one of the attempt's tries (a cookie never makes us send more Hellos than the
    /// retry schedule allows), and only when it comes from the address we contacted.
    fn on_cookie(
        &mut self,
        now: Instant,
        from: SocketAddr,
        c: Cookie,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        let me = self.me;
        let Some(p) = self.pending.get(&c.attempt) else {
            stats.handshake_failures += 1;
            return;
        };
        if p.addr != from || p.cookie == Some(c.cookie) || p.tries >= p.max_tries {
            stats.handshake_failures += 1;
            return;
        }
        let hello = Hello {
            from: me,
            to: p.peer,
            attempt: c.attempt,
            share: p.share.clone(),
            cookie: Some(c.cookie),
        };
        let data = self.hello_datagram(&hello);
        if let Some(p) = self.pending.get_mut(&c.attempt) {
            p.cookie = Some(c.cookie);
            p.hello = data.clone();
            p.tries += 1;
            p.next_retry = now + self.handshake_timeout;
            out.push((from, data));
        }
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
        // Verify the responder's proof before consuming the exchange: a forged answer must
        // not kill the real handshake.
        let t = transcript(self.me, ack.from, &p.share, &ack.share);
        if !self.check_proof(ack.from, &ack.identity, &t, Role::Responder, stats) {
            return fail(stats);
        }
        let Some(mut pending) = self.pending.remove(&ack.attempt) else {
            return fail(stats);
        };
        let Some(exchange) = pending.exchange.take() else {
            return fail(stats);
        };
        let keys = exchange.complete(&ack.share, &t, Role::Initiator);
        let mut confirm = ack.confirm.clone();
        let keys = match keys {
            Ok(k) if k.recv.open(0, CONFIRM_AAD, &mut confirm).is_ok() => k,
            _ => {
                // A proven responder whose keys differ from ours: a different cluster key or
                // cipher suite (operator-fixable).
                stats.handshake_failures += 1;
                self.report(from, "different cluster key or cipher suite?");
                self.retry_with_fresh_exchange(now, ack.attempt, pending);
                return Err(Drop::Handshake);
            }
        };
        self.pending_by_addr.remove(&pending.addr);
        let mut window = ReplayWindow::default();
        window.accept(0);
        let mut new_keys = Keys {
            epoch: ack.epoch,
            initiator: self.me,
            transcript: t.clone(),
            send: keys.send,
            recv: keys.recv,
            send_counter: 0,
            window,
            created: now,
        };
        let confirm_msg = Msg::Confirm {
            identity: self.proof(&t, Role::Initiator),
        };
        // Confirm first, then what was queued, sealed with the new keys.
        let mut first = vec![confirm_msg.clone()];
        let mut queued = pending.queued.into_iter();
        if let Some(b) = queued.next() {
            first.extend(b);
        }
        let mut records = Vec::new();
        records.extend(seal(self.me, &mut new_keys, &first, stats));
        for batch in queued {
            records.extend(seal(self.me, &mut new_keys, &batch, stats));
        }
        let key = ack.identity.public_key.clone();
        let retry = now + self.handshake_timeout;
        let peer = self.install(now, ack.from, from, new_keys);
        peer.confirm_retry = Some((retry, 1));
        peer.rekeying = false;
        peer.confirm_msg = Some(confirm_msg);
        peer.verified_key = Some(key);
        stats.handshakes_completed += 1;
        for r in records {
            out.push((from, r));
        }
        Ok(Opened {
            from: ack.from,
            addr: from,
            msgs: Vec::new(),
            new_session: true,
        })
    }

    /// A proven responder whose keys do not match ours: keep the attempt and retry with a
    /// fresh key exchange at the next retransmission (counted against the tries).
    fn retry_with_fresh_exchange(&mut self, now: Instant, attempt: u64, mut pending: Pending) {
        let fresh = self.cipher.start_exchange();
        pending.share = fresh.public_share().to_vec();
        pending.hello = self.hello_datagram(&Hello {
            from: self.me,
            to: pending.peer,
            attempt,
            share: pending.share.clone(),
            cookie: pending.cookie,
        });
        pending.exchange = Some(fresh);
        pending.next_retry = pending.next_retry.max(now);
        self.note_deadline(pending.next_retry);
        self.pending.insert(attempt, pending);
    }

    /// The first record of a half-open session: it must hold the initiator's Confirm with
    /// a valid proof for the record's sender. Then the session is established.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_confirm(
        &mut self,
        now: Instant,
        from: SocketAddr,
        hdr: SealedHeader,
        aad: &[u8],
        ct: &[u8],
        attempt: u64,
        rng: &mut Rng,
        stats: &mut Stats,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Result<Opened, Drop> {
        let Some(h) = self.half_open.get_mut(hdr.sender, attempt) else {
            return Err(Drop::UnknownSession(hdr.sender));
        };
        if !h.keys.window.check(hdr.counter) {
            stats.replays += 1;
            return Err(Drop::Replay);
        }
        let mut buf = ct.to_vec();
        if h.keys.recv.open(hdr.counter, aad, &mut buf).is_err() {
            stats.decrypt_failures += 1;
            return Err(Drop::Auth);
        }
        let msgs = match wire::decode_msgs(&buf) {
            Ok(m) => m,
            Err(_) => {
                stats.decode_errors += 1;
                return Err(Drop::Decode);
            }
        };
        let mut msgs = msgs.into_iter();
        let Some(Msg::Confirm { identity }) = msgs.next() else {
            // Records before the Confirm (reordered) are dropped; the peer retransmits.
            stats.unknown_session += 1;
            return Err(Drop::UnknownSession(hdr.sender));
        };
        let t = h.keys.transcript.clone();
        if !self.check_proof(hdr.sender, &identity, &t, Role::Initiator, stats) {
            stats.handshake_failures += 1;
            return Err(Drop::Handshake);
        }
        let Some(mut h) = self.half_open.remove(hdr.sender, attempt) else {
            return Err(Drop::UnknownSession(hdr.sender));
        };
        h.keys.window.accept(hdr.counter);
        self.half_open.remove_id(hdr.sender);
        // Our own handshake to the same node (crossed) is superseded: its queued messages
        // go over the new session.
        let ours: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.peer == Some(hdr.sender))
            .map(|(k, _)| *k)
            .collect();
        let mut inherited = Vec::new();
        for k in ours {
            if let Some(p) = self.pending.remove(&k) {
                self.pending_by_addr.remove(&p.addr);
                inherited.extend(p.queued);
            }
        }
        let me = self.me;
        let peer = self.install(now, hdr.sender, from, h.keys);
        peer.rekeying = false;
        peer.verified_key = Some(identity.public_key);
        if let Some(data) = seal(me, &mut peer.current, &[Msg::ConfirmAck], stats) {
            out.push((from, data));
        }
        stats.handshakes_completed += 1;
        for batch in inherited {
            self.send(now, Some(hdr.sender), from, batch, rng, stats, out);
        }
        Ok(Opened {
            from: hdr.sender,
            addr: from,
            msgs: msgs.collect(),
            new_session: true,
        })
    }
}
