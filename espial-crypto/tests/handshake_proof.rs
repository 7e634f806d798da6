//! The static-key proof of the v2 handshake: a known-answer test (RFC 8032 test key 1),
//! and real-cipher sessions showing that an id cannot be used without its private key.

use espial_core::cipher::{Cipher, Role, DOMAIN_HANDSHAKE};
use espial_core::rng::Rng;
use espial_core::session::{proof_message, transcript, Sessions};
use espial_core::wire::{self, Kind, Msg};
use espial_core::{Config, NodeId, Stats};
use espial_crypto::{node_id_from_public_key, AesGcmCipher, IdentityKey};
use std::net::SocketAddr;
use std::time::Instant;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 8032 section 7.1, TEST 1.
const RFC8032_SK: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn static_key_proof_known_answer() {
    let sk: [u8; 32] = unhex(RFC8032_SK).try_into().unwrap();
    let key = IdentityKey::from_seed(&sk).unwrap();
    assert_eq!(hex(&key.public_key()), RFC8032_PK);
    // Node id = first 16 bytes of SHA-256(public key), big-endian.
    let id = node_id_from_public_key(&key.public_key());
    assert_eq!(format!("{:032x}", id.0), "21fe31dfa154a261626bf854046fd227");
    // The responder (this key) proves itself in a handshake with initiator id 1:
    // transcript = "espial-handshake" || version || id_i || id_r || len||share_i || len||share_r,
    // signed message = domain || 0x00 || transcript || role (1 = responder, 2 = initiator).
    let t = transcript(NodeId(1), id, &[0xaa; 32], &[0xbb; 32]);
    assert_eq!(
        hex(&t[..16 + 1 + 32]),
        format!("{}02{:032x}{:032x}", hex(b"espial-handshake"), 1, id.0)
    );
    let msg = proof_message(&t, Role::Responder);
    assert_eq!(*msg.last().unwrap(), 1);
    let sig = key.sign(DOMAIN_HANDSHAKE, &msg);
    // Cross-checked with an independent Ed25519 (pyca/cryptography) over the bytes
    // b"espial handshake v2" || 0x00 || transcript || 0x01 built from docs/PROTOCOL.md.
    assert_eq!(
        hex(&sig),
        "13f08c56acbf49bca82e8d5af9c53d60c3818b6a80e5b6028d9336adca0ac7b5\
         1a7d89a081a767ae2ca9982131757d6d51acd84c13c8c94ff3d2af3caa7cf501"
    );
    let c = AesGcmCipher::new().with_identity(key.clone());
    assert_eq!(c.node_id_for(&key.public_key()), Some(id));
    assert!(c
        .verify(&key.public_key(), DOMAIN_HANDSHAKE, &msg, &sig)
        .is_ok());
    // Bound to the session and the role: another transcript, the other role or another
    // domain fails.
    let other = transcript(NodeId(1), id, &[0xaa; 32], &[0xbc; 32]);
    let replayed = proof_message(&other, Role::Responder);
    assert!(c
        .verify(&key.public_key(), DOMAIN_HANDSHAKE, &replayed, &sig)
        .is_err());
    let reflected = proof_message(&t, Role::Initiator);
    assert!(c
        .verify(&key.public_key(), DOMAIN_HANDSHAKE, &reflected, &sig)
        .is_err());
    assert!(c
        .verify(&key.public_key(), b"espial alive v2", &msg, &sig)
        .is_err());
}

struct Side {
    s: Sessions,
    rng: Rng,
    stats: Stats,
    addr: SocketAddr,
}

fn side(key: IdentityKey, i: u8) -> Side {
    let cipher = AesGcmCipher::seeded(i as u64, false).with_identity(key.clone());
    Side {
        s: Sessions::new(key.node_id(), Box::new(cipher), &Config::lan()),
        rng: Rng::new(i as u64),
        stats: Stats::default(),
        addr: SocketAddr::from(([10, 0, 0, i], 1)),
    }
}

fn deliver(now: Instant, to: &mut Side, from: SocketAddr, d: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    let (kind, body) = wire::split_header(d, 1400).unwrap();
    let mut out = Vec::new();
    let _ =
        to.s.handle(now, from, kind, body, &mut to.rng, &mut to.stats, &mut out);
    out
}

/// Runs the handshake from `x` to `y` (claimed id `to`); returns whether both ended up
/// with a session.
fn connect(now: Instant, x: &mut Side, y: &mut Side, to: NodeId) -> bool {
    let mut out = Vec::new();
    x.s.send(
        now,
        Some(to),
        y.addr,
        vec![Msg::Ping { seq: 1, members: 2 }],
        &mut x.rng,
        &mut x.stats,
        &mut out,
    );
    for _ in 0..6 {
        let mut back = Vec::new();
        for (_, d) in out.drain(..) {
            back.extend(deliver(now, y, x.addr, &d));
        }
        for (_, d) in back {
            out.extend(deliver(now, x, y.addr, &d));
        }
    }
    x.s.has_session(to) && y.s.has_session(x.s.cipher().node_id())
}

#[test]
fn real_keys_complete_and_prove_both_ways() {
    let now = Instant::now();
    let (ka, kb) = (
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
    );
    let (mut a, mut b) = (side(ka.clone(), 1), side(kb.clone(), 2));
    assert!(connect(now, &mut a, &mut b, kb.node_id()));
    assert_eq!(
        a.s.verified_key(kb.node_id()),
        Some(kb.public_key().as_slice())
    );
    assert_eq!(
        b.s.verified_key(ka.node_id()),
        Some(ka.public_key().as_slice())
    );
}

/// An attacker with a fresh key claiming the victim's id: neither as initiator (its Confirm
/// proof fails) nor as responder (its HelloAck proof fails) does a session come up.
#[test]
fn a_fresh_key_cannot_claim_someone_elses_id() {
    let now = Instant::now();
    let victim = IdentityKey::generate().unwrap();
    let target = IdentityKey::generate().unwrap();
    // The attacker's Sessions believe they are the victim (same id, wrong key).
    let attacker_key = IdentityKey::generate().unwrap();
    let cipher = AesGcmCipher::seeded(3, false).with_identity(attacker_key);
    let mut m = Side {
        s: Sessions::new(victim.node_id(), Box::new(cipher), &Config::lan()),
        rng: Rng::new(3),
        stats: Stats::default(),
        addr: SocketAddr::from(([10, 0, 0, 3], 1)),
    };
    let mut t = side(target.clone(), 2);
    // As initiator.
    let mut out = Vec::new();
    m.s.send(
        now,
        Some(target.node_id()),
        t.addr,
        vec![Msg::Ping { seq: 1, members: 2 }],
        &mut m.rng,
        &mut m.stats,
        &mut out,
    );
    for _ in 0..4 {
        let mut back = Vec::new();
        for (_, d) in out.drain(..) {
            back.extend(deliver(now, &mut t, m.addr, &d));
        }
        for (_, d) in back {
            out.extend(deliver(now, &mut m, t.addr, &d));
        }
    }
    assert!(
        !t.s.has_session(victim.node_id()),
        "target accepted the impostor"
    );
    assert!(t.stats.identity_mismatch >= 1, "{:?}", t.stats);
    // As responder: the target initiates to the victim's id, the impostor answers.
    let mut out = Vec::new();
    t.s.send(
        now,
        Some(victim.node_id()),
        m.addr,
        vec![Msg::Ping { seq: 2, members: 2 }],
        &mut t.rng,
        &mut t.stats,
        &mut out,
    );
    for (_, d) in out {
        for (_, ack) in deliver(now, &mut m, t.addr, &d) {
            if ack[3] == Kind::HelloAck as u8 {
                deliver(now, &mut t, m.addr, &ack);
            }
        }
    }
    assert!(!t.s.has_session(victim.node_id()));
    assert!(t.stats.identity_mismatch >= 2, "{:?}", t.stats);
}
