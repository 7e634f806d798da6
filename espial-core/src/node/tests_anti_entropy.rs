//! Digest-first anti-entropy (docs/PROTOCOL.md, "Anti-entropy"). Two nodes exchange
//! messages directly (the queued messages of one are dispatched to the other as if they came
//! over their session), so every message and byte of an exchange is counted.

use super::Node;
use crate::cipher::{CryptoError, KeyExchange, DOMAIN_CLAIM};
use crate::membership::{statements, Liveness};
use crate::wire::{
    msg_size, Claim, DigestChunk, DigestRecord, DigestStatus, Msg, SignedEntry, StateChunk, Update,
    ViewSummary,
};
use crate::{Cipher, Config, Event, NodeId, NodeInfo, Output, PlaintextTestCipher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const A: NodeId = NodeId(0xA000);
const B: NodeId = NodeId(0xB000);
const C: NodeId = NodeId(0xC000);
const D: NodeId = NodeId(0xD000);
const E: NodeId = NodeId(0xE000);

fn addr_of(id: NodeId) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, (id.0 >> 12) as u8], 27272))
}

/// The test cipher, counting signature verifications.
struct Counting {
    inner: PlaintextTestCipher,
    verified: Arc<AtomicUsize>,
}

impl Cipher for Counting {
    fn suite(&self) -> &'static str {
        self.inner.suite()
    }
    fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
        self.inner.start_exchange()
    }
    fn identity_public_key(&self) -> Vec<u8> {
        self.inner.identity_public_key()
    }
    fn node_id_for(&self, public_key: &[u8]) -> Option<NodeId> {
        self.inner.node_id_for(public_key)
    }
    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        self.inner.sign(domain, msg)
    }
    fn verify(&self, key: &[u8], domain: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        self.verified.fetch_add(1, Ordering::Relaxed);
        self.inner.verify(key, domain, msg, sig)
    }
}

fn node(id: NodeId, now: Instant) -> (Node, Arc<AtomicUsize>) {
    let verified = Arc::new(AtomicUsize::new(0));
    let cipher = Counting {
        inner: PlaintextTestCipher::for_node(id),
        verified: verified.clone(),
    };
    let info = NodeInfo::new(id, format!("n{:x}", id.0), addr_of(id));
    let n = Node::new(Config::lan(), info, Box::new(cipher), id.0 as u64, now).unwrap();
    (n, verified)
}

/// Member `id`'s own signed entry at `incarnation`.
fn entry(id: NodeId, incarnation: u64) -> SignedEntry {
    let cipher = PlaintextTestCipher::for_node(id);
    let mut info = NodeInfo::new(id, format!("n{:x}", id.0), addr_of(id));
    info.public_key = cipher.identity_public_key();
    info.incarnation = incarnation;
    statements::sign_alive(&cipher, &info)
}

/// A and B know each other; each also holds the given entries.
fn pair(now: Instant, a_holds: &[SignedEntry], b_holds: &[SignedEntry]) -> (Node, Node) {
    let (mut a, _) = node(A, now);
    let (mut b, _) = node(B, now);
    a.fuzz_add_member(now, b.my_entry.clone());
    b.fuzz_add_member(now, a.my_entry.clone());
    for s in a_holds {
        a.fuzz_add_member(now, s.clone());
    }
    for s in b_holds {
        b.fuzz_add_member(now, s.clone());
    }
    drain(&mut a);
    drain(&mut b);
    (a, b)
}

fn drain(n: &mut Node) -> Vec<Event> {
    n.outbox.clear();
    let mut events = Vec::new();
    while let Some(o) = n.outputs.pop_front() {
        if let Output::Event(e) = o {
            events.push(e);
        }
    }
    events
}

fn kind(m: &Msg) -> &'static str {
    match m {
        Msg::DigestOffer { .. } => "offer",
        Msg::DigestEqual { .. } => "equal",
        Msg::Digest(_) => "digest",
        Msg::DigestRequest { .. } => "request",
        Msg::State(_) => "state",
        _ => "other",
    }
}

/// Delivers the queued messages between `a` and `b` (both ways) until neither queues
/// more; returns every message moved, with its direction (`true`: a → b).
fn exchange(a: &mut Node, b: &mut Node, now: Instant) -> Vec<(bool, Msg)> {
    let mut log = Vec::new();
    for _ in 0..16 {
        let ab = a.outbox.remove(&b.id()).map(|o| o.msgs).unwrap_or_default();
        let ba = b.outbox.remove(&a.id()).map(|o| o.msgs).unwrap_or_default();
        if ab.is_empty() && ba.is_empty() {
            return log;
        }
        for m in ab {
            log.push((true, m.clone()));
            b.dispatch(now, a.id(), a.me.addr, m);
        }
        for m in ba {
            log.push((false, m.clone()));
            a.dispatch(now, b.id(), b.me.addr, m);
        }
    }
    panic!("the exchange did not end: {:?}", log.len());
}

fn kinds(log: &[(bool, Msg)]) -> Vec<(bool, &'static str)> {
    log.iter()
        .map(|(d, m)| (*d, kind(m)))
        .filter(|(_, k)| *k != "other")
        .collect()
}

fn bytes(log: &[(bool, Msg)]) -> usize {
    log.iter().map(|(_, m)| msg_size(m)).sum()
}

fn held(n: &Node, id: NodeId) -> Option<(u64, Liveness, Vec<u8>)> {
    n.members
        .get(id)
        .map(|m| (m.info.incarnation, m.state, m.signature.clone()))
}

#[test]
fn equal_views_exchange_only_a_summary_and_an_equal_answer() {
    let now = Instant::now();
    let mut spent = Vec::new();
    for n in [2u128, 60] {
        let others: Vec<SignedEntry> = (1..=n).map(|i| entry(NodeId(i << 20), 3)).collect();
        let (mut a, mut b) = pair(now, &others, &others);
        a.offer_digest(now, B);
        let log = exchange(&mut a, &mut b, now);
        assert_eq!(kinds(&log), vec![(true, "offer"), (false, "equal")]);
        assert!(a.anti_entropy.rounds.is_empty(), "the round is closed");
        let full: usize = a
            .state_chunks(true)
            .iter()
            .map(|c| msg_size(&Msg::State(c.clone())))
            .sum();
        spent.push((bytes(&log), full));
    }
    // The same few bytes whatever the cluster size, against a full state growing with it.
    let ((small, _), (large, full)) = (spent[0], spent[1]);
    assert!(large <= 80 && large <= small + 1, "{spent:?}");
    assert!(large * 50 < full, "{spent:?}");
}

#[test]
fn one_exchange_repairs_both_sides() {
    let now = Instant::now();
    // A holds C at a newer incarnation; B holds D, which A lacks, and suspects nobody.
    let (mut a, mut b) = pair(now, &[entry(C, 2)], &[entry(C, 1), entry(D, 4)]);
    a.offer_digest(now, B);
    let log = exchange(&mut a, &mut b, now);
    assert_eq!(
        kinds(&log),
        vec![
            (true, "offer"),
            (false, "digest"),
            (true, "state"),
            (true, "request"),
            (false, "state")
        ]
    );
    assert_eq!(held(&b, C).map(|h| h.0), Some(2), "B repaired");
    assert_eq!(held(&a, D).map(|h| (h.0, h.1)), Some((4, Liveness::Alive)));
    // The repair sent exactly the two entries, not the whole state.
    let states: Vec<&StateChunk> = log
        .iter()
        .filter_map(|(_, m)| match m {
            Msg::State(c) => Some(c),
            _ => None,
        })
        .collect();
    let sent: Vec<NodeId> = states
        .iter()
        .flat_map(|c| c.members.iter().map(Update::subject))
        .collect();
    assert_eq!(sent, vec![C, D]);
    // Views now agree: the next exchange is the summary and the equal answer, both ways.
    a.offer_digest(now, B);
    assert_eq!(
        kinds(&exchange(&mut a, &mut b, now)),
        vec![(true, "offer"), (false, "equal")]
    );
    b.offer_digest(now, A);
    assert_eq!(
        kinds(&exchange(&mut a, &mut b, now)),
        vec![(false, "offer"), (true, "equal")]
    );
}

#[test]
fn a_suspicion_and_a_restart_under_the_same_key_are_exchanged() {
    let now = Instant::now();
    let (mut a, _) = node(A, now);
    let (mut b, _) = node(B, now);
    // B holds an entry of A at A's incarnation with other content (A's earlier life under
    // the same key): only the hash tells them apart.
    let mut old = a.me.clone();
    old.metadata.insert("life", "1");
    let old = statements::sign_alive(&PlaintextTestCipher::for_node(A), &old);
    a.fuzz_add_member(now, b.my_entry.clone());
    b.fuzz_add_member(now, old);
    a.fuzz_add_member(now, entry(C, 1));
    b.fuzz_add_member(now, entry(C, 1));
    // B suspects C at the incarnation both hold: the status decides (alive < suspect).
    b.members
        .apply_suspect(now, C, 1, std::time::Duration::from_secs(60));
    drain(&mut a);
    drain(&mut b);
    let inc = a.me.incarnation;
    a.offer_digest(now, B);
    exchange(&mut a, &mut b, now);
    assert!(
        matches!(held(&a, C).unwrap().1, Liveness::Suspect { .. }),
        "A learned the suspicion"
    );
    assert!(
        a.me.incarnation > inc,
        "A published above its earlier life's entry"
    );
}

#[test]
fn malformed_or_unsolicited_digests_are_refused_without_work() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now, &[entry(C, 1)], &[entry(C, 1)]);
    let chunk = |round: u64, lo: u128, hi: u128, records: Vec<DigestRecord>| {
        Msg::Digest(DigestChunk {
            round,
            claim: None,
            claim_signature: Vec::new(),
            master_alive: false,
            max_term: 0,
            lo: NodeId(lo),
            hi: NodeId(hi),
            records,
            index: 0,
            total: u16::MAX,
        })
    };
    let rec = |id: u128, status| DigestRecord {
        id: NodeId(id),
        incarnation: 1,
        status,
        hash: [0; 4],
    };
    // Not an answer to an offer of ours.
    a.dispatch(now, B, addr_of(B), chunk(7, 0, u128::MAX, vec![]));
    assert_eq!(a.stats.digests_refused, 1);
    a.offer_digest(now, B);
    drain(&mut a);
    let round = *a.anti_entropy.rounds.keys().next().unwrap();
    // From another member than the one asked.
    a.dispatch(now, C, addr_of(C), chunk(round, 0, u128::MAX, vec![]));
    // Unsorted, duplicated, outside the range, empty range.
    let bad = [
        chunk(
            round,
            0,
            u128::MAX,
            vec![rec(9, DigestStatus::Alive), rec(3, DigestStatus::Alive)],
        ),
        chunk(
            round,
            0,
            u128::MAX,
            vec![rec(3, DigestStatus::Alive), rec(3, DigestStatus::Dead)],
        ),
        chunk(round, 10, 20, vec![rec(30, DigestStatus::Alive)]),
        chunk(round, 20, 10, vec![]),
    ];
    for m in bad {
        a.dispatch(now, B, addr_of(B), m);
    }
    assert_eq!(a.stats.digests_refused, 6);
    assert!(a.outbox.is_empty(), "nothing sent for refused chunks");
    // A chunk larger than any datagram, of members A never heard of: at most one id
    // asked for per record, in requests that each fit a record.
    let many: Vec<DigestRecord> = (1..=3000u128)
        .map(|i| rec(i << 64, DigestStatus::Alive))
        .collect();
    a.dispatch(now, B, addr_of(B), chunk(round, 0, u128::MAX, many));
    let sent = a.outbox.remove(&B).map(|o| o.msgs).unwrap_or_default();
    let budget = a.sessions.plaintext_budget();
    let mut asked = 0;
    for m in &sent {
        assert!(msg_size(m) <= budget, "{} > {budget}", msg_size(m));
        if let Msg::DigestRequest { ids, .. } = m {
            asked += ids.len();
        }
    }
    assert_eq!(asked, 3000);
    // A request naming one member 5,000 times and 5,000 unknown ids: one entry back.
    let mut ids = vec![C; 5000];
    ids.extend((0..5000u128).map(|i| NodeId(i << 70)));
    b.dispatch(now, A, addr_of(A), Msg::DigestRequest { round, ids });
    let back = b.outbox.remove(&A).map(|o| o.msgs).unwrap_or_default();
    let entries: Vec<NodeId> = back
        .iter()
        .flat_map(|m| match m {
            Msg::State(c) => c.members.iter().map(Update::subject).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(entries, vec![C]);
    // An offer claiming any count is only compared (its answer is our own digest).
    let offer = Msg::DigestOffer {
        round: 5,
        summary: ViewSummary {
            claim: None,
            master_alive: false,
            max_term: u64::MAX,
            live: u32::MAX,
            hash: [0xff; 8],
        },
    };
    b.dispatch(now, A, addr_of(A), offer);
    let back = b.outbox.remove(&A).map(|o| o.msgs).unwrap_or_default();
    assert!(matches!(back.as_slice(), [Msg::Digest(c)] if c.records.len() == 3));
    assert_eq!(b.stats.election_dropped, 1, "implausible max_term refused");
}

#[test]
fn a_lying_digest_cannot_remove_or_overwrite_anything() {
    let now = Instant::now();
    let (mut a, b) = pair(
        now,
        &[entry(C, 2), entry(D, 1)],
        &[entry(C, 2), entry(D, 1)],
    );
    let before: Vec<_> = [B, C, D].iter().map(|id| held(&a, *id)).collect();
    let my_inc = a.me.incarnation;
    a.offer_digest(now, B);
    drain(&mut a);
    let round = *a.anti_entropy.rounds.keys().next().unwrap();
    // B claims: A left at u64::MAX, C is dead at u64::MAX, D does not exist, E (unknown) is
    // alive far ahead.
    let rec = |id, incarnation, status| DigestRecord {
        id,
        incarnation,
        status,
        hash: [7; 4],
    };
    let lie = DigestChunk {
        round,
        claim: None,
        claim_signature: Vec::new(),
        master_alive: false,
        max_term: 0,
        lo: NodeId(0),
        hi: NodeId(u128::MAX),
        records: vec![
            rec(A, u64::MAX, DigestStatus::Left),
            rec(B, 0, DigestStatus::Alive),
            rec(C, u64::MAX, DigestStatus::Dead),
            rec(E, u64::MAX, DigestStatus::Alive),
        ],
        index: 0,
        total: 1,
    };
    a.dispatch(now, B, addr_of(B), Msg::Digest(lie));
    let after: Vec<_> = [B, C, D].iter().map(|id| held(&a, *id)).collect();
    assert_eq!(before, after, "a digest changed the member table");
    assert_eq!(a.me.incarnation, my_inc, "a digest moved our incarnation");
    assert!(held(&a, E).is_none());
    // A sent what B "lacks" (D) and asked for the rest: nothing else.
    let sent = a.outbox.remove(&B).map(|o| o.msgs).unwrap_or_default();
    let asked: Vec<NodeId> = sent
        .iter()
        .flat_map(|m| match m {
            Msg::DigestRequest { ids, .. } => ids.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(asked, vec![A, C, E]);
    // B can only answer with statements it can sign: its forgeries are refused, and a
    // death is a suspicion (as in gossip), never a removal.
    let b_key = PlaintextTestCipher::for_node(B);
    let mut forged_c = entry(C, u64::MAX).entry;
    forged_c.addr = addr_of(B);
    let forged = vec![
        Update::Alive(statements::sign_alive(&b_key, &forged_c)),
        Update::Left {
            id: A,
            incarnation: u64::MAX,
            signature: statements::sign_left(&b_key, A, u64::MAX),
        },
        Update::Dead {
            id: C,
            incarnation: u64::MAX,
            by: B,
        },
    ];
    let answer = StateChunk {
        claim: None,
        claim_signature: Vec::new(),
        master_alive: false,
        max_term: 0,
        members: forged,
        reply: false,
        index: 0,
        total: 1,
    };
    a.dispatch(now, B, addr_of(B), Msg::State(answer));
    assert_eq!(a.stats.statements_rejected, 2);
    let c = held(&a, C).unwrap();
    assert_eq!(
        (c.0, c.2.clone()),
        (2, entry(C, 2).signature),
        "C overwritten"
    );
    assert!(!drain(&mut a)
        .iter()
        .any(|e| matches!(e, Event::NodeRemoved { .. })));
    assert_eq!(a.me.incarnation, my_inc);
    drop(b);
}

#[test]
fn a_relayed_claim_already_held_is_not_verified_again() {
    let now = Instant::now();
    let (mut a, verified) = node(A, now);
    let (b, _) = node(B, now);
    a.fuzz_add_member(now, b.my_entry.clone());
    a.fuzz_add_member(now, entry(C, 1));
    drain(&mut a);
    let claim = Claim {
        majority: true,
        term: 1,
        priority: 0,
        master: B,
    };
    let signature =
        PlaintextTestCipher::for_node(B).sign(DOMAIN_CLAIM, &super::election::claim_bytes(&claim));
    let chunk = StateChunk {
        claim: Some(claim),
        claim_signature: signature,
        master_alive: true,
        max_term: 1,
        members: vec![
            Update::Alive(b.my_entry.clone()),
            Update::Alive(entry(C, 1)),
        ],
        reply: false,
        index: 0,
        total: 1,
    };
    a.dispatch(now, B, addr_of(B), Msg::State(chunk.clone()));
    assert_eq!(a.claim(), Some(claim));
    let first = verified.load(Ordering::Relaxed);
    assert_eq!(first, 1, "the claim's signature, once");
    for _ in 0..10 {
        a.dispatch(now, B, addr_of(B), Msg::State(chunk.clone()));
    }
    assert_eq!(
        verified.load(Ordering::Relaxed),
        first,
        "identical statements re-verified"
    );
    // Other signature bytes for the same claim are verified (and refused when bad).
    let mut other = chunk;
    other.claim_signature[0] ^= 1;
    a.dispatch(now, B, addr_of(B), Msg::State(other));
    assert_eq!(verified.load(Ordering::Relaxed), first + 1);
    assert_eq!(a.stats.election_dropped, 1);
}
