//! **Fuzzing support, not a public API.** A harness that feeds decoded messages to a node as
//! if they came from live members over authenticated sessions (the session layer is
//! bypassed, so member-message handling is reached on every input). Used by the
//! `member_msgs` cargo-fuzz target (`fuzz/`) and by a proptest in this crate on random
//! [`Msg`] values, so CI exercises the same harness.
//!
//! Input format (any bytes are valid; what does not parse is skipped):
//!
//! ```text
//! repeat { ctl: u8 | len: u16 little-endian | batch: [len bytes] }
//!   ctl bits 0-1: sender (0, 1: the harness members A, B; 2: the node's master if any,
//!                 else A; 3: a node the target never heard of)
//!   ctl bit 2:    sign as the sender: every Alive/Left in the batch about the sender is
//!                 re-signed with the sender's key (a lying member can sign anything about
//!                 itself); other statements stay as given
//!   ctl bits 3-7: time advance before the batch, in units of 25 ms
//!   batch:        postcard(Vec<Msg>) (the plaintext of a sealed record)
//! ```
//!
//! A `Digest` or `DigestEqual` with `round = 0` answers an open anti-entropy offer of the node
//! to the sender (one is made first if none is open), so digest answers reach the comparison.
//!
//! After each batch the node's outputs are drained and its timers run. The node must never
//! panic (the fuzz crate and tests build with overflow checks on).

use crate::membership::statements;
use crate::wire::{self, Msg, SignedEntry, Update};
use crate::{Cipher, Config, Node, NodeId, NodeInfo, PlaintextTestCipher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One harness member: a test identity that signs its own statements.
struct Member {
    cipher: PlaintextTestCipher,
    info: NodeInfo,
}

fn member(i: u8) -> Member {
    let id = NodeId(0x1000 + i as u128);
    let cipher = PlaintextTestCipher::for_node(id);
    let mut info = NodeInfo::new(
        id,
        format!("m{i}"),
        SocketAddr::from(([127, 0, 0, 10 + i], 27272)),
    );
    info.public_key = cipher.identity_public_key();
    Member { cipher, info }
}

fn drain(node: &mut Node) {
    for _ in 0..100_000 {
        if node.poll_output().is_none() {
            return;
        }
    }
}

/// Re-signs the sender's own statements in a batch (what a lying member can do).
fn sign_as(m: &Member, msgs: &mut [Msg]) {
    let fix = |u: &mut Update| match u {
        Update::Alive(s) if s.entry.id == m.info.id => {
            s.entry.public_key = m.info.public_key.clone();
            *s = statements::sign_alive(&m.cipher, &s.entry);
        }
        Update::Left {
            id,
            incarnation,
            signature,
        } if *id == m.info.id => {
            *signature = statements::sign_left(&m.cipher, *id, *incarnation);
        }
        _ => {}
    };
    for msg in msgs {
        match msg {
            Msg::Updates(ups) => ups.iter_mut().for_each(fix),
            Msg::State(c) => c.members.iter_mut().for_each(fix),
            Msg::JoinRequest { node: s, .. } | Msg::JoinAccept { by: s, .. }
                if s.entry.id == m.info.id =>
            {
                s.entry.public_key = m.info.public_key.clone();
                *s = statements::sign_alive(&m.cipher, &s.entry);
            }
            _ => {}
        }
    }
}

/// Runs one input through a fresh node with two live members. Never panics unless the
/// node does.
pub fn member_messages(data: &[u8]) {
    let start = Instant::now();
    let me_cipher = PlaintextTestCipher::for_node(NodeId(0x0F00));
    let me = NodeInfo::new(
        NodeId(0x0F00),
        "target",
        SocketAddr::from(([127, 0, 0, 1], 27272)),
    );
    let Ok(mut node) = Node::new(Config::lan(), me, Box::new(me_cipher), 7, start) else {
        return;
    };
    let members = [member(0), member(1)];
    for m in &members {
        let s = statements::sign_alive(&m.cipher, &m.info);
        node.fuzz_add_member(start, s);
    }
    drain(&mut node);
    let stranger = NodeId(0xBAD);
    let mut now = start;
    let mut rest = data;
    let mut batches = 0;
    while rest.len() >= 3 && batches < 256 {
        batches += 1;
        let (ctl, len) = (rest[0], u16::from_le_bytes([rest[1], rest[2]]) as usize);
        let end = (3 + len).min(rest.len());
        let body = &rest[3..end];
        rest = &rest[end..];
        now += Duration::from_millis(25 * (ctl >> 3) as u64);
        node.handle_timeout(now);
        drain(&mut node);
        let Ok(mut msgs) = wire::decode_msgs(body) else {
            continue;
        };
        let (from, addr) = match ctl & 3 {
            0 | 1 => {
                let m = &members[(ctl & 1) as usize];
                (m.info.id, m.info.addr)
            }
            2 => match node.master().filter(|m| *m != node.id()) {
                Some(id) => (
                    id,
                    node.member(id)
                        .map(|n| n.addr)
                        .unwrap_or(members[0].info.addr),
                ),
                None => (members[0].info.id, members[0].info.addr),
            },
            _ => (stranger, SocketAddr::from(([127, 0, 0, 99], 27272))),
        };
        if ctl & 4 != 0 {
            if let Some(m) = members.iter().find(|m| m.info.id == from) {
                sign_as(m, &mut msgs);
            }
        }
        for mut msg in msgs {
            match &mut msg {
                Msg::Digest(c) if c.round == 0 => c.round = node.fuzz_digest_round(now, from),
                Msg::DigestEqual { round } if *round == 0 => {
                    *round = node.fuzz_digest_round(now, from)
                }
                _ => {}
            }
            node.fuzz_as_member(now, from, addr, msg);
        }
        drain(&mut node);
    }
    node.handle_timeout(now + Duration::from_secs(30));
    drain(&mut node);
    let _ = node.stats();
    let _ = node.members();
}

/// Encodes batches in the harness's input format (for tests and seed corpora).
pub fn encode_input(batches: &[(u8, Vec<Msg>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ctl, msgs) in batches {
        let body = wire::encode_msgs(msgs);
        let Ok(len) = u16::try_from(body.len()) else {
            continue;
        };
        out.push(*ctl);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// A signed entry of harness member `i` (0 or 1) at `incarnation` (for seed inputs).
pub fn member_entry(i: u8, incarnation: u64) -> SignedEntry {
    let m = member(i);
    let mut info = m.info.clone();
    info.incarnation = incarnation;
    statements::sign_alive(&m.cipher, &info)
}

#[cfg(test)]
mod tests;
