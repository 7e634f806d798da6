//! The member-message harness on random `Msg` values: ids from a small pool (the target,
//! its members, a stranger), numbers biased to the extremes, statements sometimes signed by
//! the sender. Debug builds: every overflow panics, so this finds what `checked_*` misses.

use super::*;
use crate::wire::{Claim, DigestChunk, DigestRecord, DigestStatus, StateChunk, ViewSummary};
use proptest::prelude::*;

fn arb_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        Just(NodeId(0x0F00)),
        Just(NodeId(0x1000)),
        Just(NodeId(0x1001)),
        Just(NodeId(0xBAD)),
        any::<u128>().prop_map(NodeId),
    ]
}

fn arb_num() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(statements::MAX_INCARNATION_JUMP + 1),
        any::<u64>(),
    ]
}

fn arb_signed() -> impl Strategy<Value = SignedEntry> {
    (
        arb_id(),
        arb_num(),
        any::<u8>(),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(|(id, inc, host, eligible, priority)| {
            let mut e = NodeInfo::new(id, "x", SocketAddr::from(([127, 0, 0, host], 27272)));
            e.incarnation = inc;
            e.master_eligible = eligible;
            e.priority = priority;
            e.subscriptions.insert("jobs".into());
            SignedEntry {
                entry: e,
                signature: vec![1; 8],
            }
        })
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        arb_signed().prop_map(Update::Alive),
        (arb_id(), arb_num(), arb_id()).prop_map(|(id, incarnation, by)| Update::Suspect {
            id,
            incarnation,
            by
        }),
        (arb_id(), arb_num(), arb_id()).prop_map(|(id, incarnation, by)| Update::Dead {
            id,
            incarnation,
            by
        }),
        (arb_id(), arb_num()).prop_map(|(id, incarnation)| Update::Left {
            id,
            incarnation,
            signature: vec![2; 8]
        }),
    ]
}

fn arb_claim() -> impl Strategy<Value = Claim> {
    // Terms stay below 2^40 here: term arithmetic belongs to the election (its checks are
    // another part of issue 10); the fuzz target sends any term.
    (0u64..1 << 40, any::<u32>(), arb_id()).prop_map(|(term, priority, master)| Claim {
        majority: false,
        term,
        priority,
        master,
    })
}

fn arb_record() -> impl Strategy<Value = DigestRecord> {
    let status = prop_oneof![
        Just(DigestStatus::Alive),
        Just(DigestStatus::Suspect),
        Just(DigestStatus::Dead),
        Just(DigestStatus::Left),
    ];
    (arb_id(), arb_num(), status, any::<[u8; 4]>()).prop_map(|(id, incarnation, status, hash)| {
        DigestRecord {
            id,
            incarnation,
            status,
            hash,
        }
    })
}

/// Anti-entropy digests: offers, answers (sorted or not, any range) and requests.
fn arb_digest_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (arb_num(), proptest::option::of(arb_claim()), any::<u32>()).prop_map(
            |(round, claim, live)| Msg::DigestOffer {
                round,
                summary: ViewSummary {
                    claim,
                    master_alive: live % 2 == 0,
                    max_term: 3,
                    live,
                    hash: [0; 8],
                },
            }
        ),
        arb_num().prop_map(|round| Msg::DigestEqual { round }),
        (
            arb_num(),
            proptest::option::of(arb_claim()),
            (arb_id(), arb_id()),
            proptest::collection::vec(arb_record(), 0..6),
            any::<bool>(),
        )
            .prop_map(|(round, claim, (lo, hi), mut records, sorted)| {
                if sorted {
                    records.sort_by_key(|r| r.id);
                    records.dedup_by_key(|r| r.id);
                }
                Msg::Digest(DigestChunk {
                    round,
                    claim,
                    claim_signature: Vec::new(),
                    master_alive: true,
                    max_term: 3,
                    lo: if sorted { NodeId(0) } else { lo },
                    hi: if sorted { NodeId(u128::MAX) } else { hi },
                    records,
                    index: 0,
                    total: 1,
                })
            }),
        (arb_num(), proptest::collection::vec(arb_id(), 0..8))
            .prop_map(|(round, ids)| Msg::DigestRequest { round, ids }),
    ]
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        arb_digest_msg(),
        (arb_num(), any::<u32>()).prop_map(|(seq, members)| Msg::Ping { seq, members }),
        arb_num().prop_map(|seq| Msg::Ack { seq }),
        (arb_num(), arb_id()).prop_map(|(seq, target)| Msg::PingReq { seq, target }),
        (arb_num(), arb_id()).prop_map(|(seq, target)| Msg::IndirectAck { seq, target }),
        (arb_signed(), arb_num()).prop_map(|(node, attempt)| Msg::JoinRequest { node, attempt }),
        (arb_signed(), arb_num()).prop_map(|(by, attempt)| Msg::JoinAccept { attempt, by }),
        arb_num().prop_map(|attempt| Msg::JoinReject {
            attempt,
            reason: "no".into()
        }),
        proptest::collection::vec(arb_update(), 0..4).prop_map(Msg::Updates),
        proptest::collection::vec(arb_update(), 1..4).prop_map(Msg::Updates),
        (arb_claim(), arb_num(), any::<u32>()).prop_map(|(claim, incarnation, members)| {
            Msg::Heartbeat {
                claim,
                incarnation,
                members,
            }
        }),
        arb_claim().prop_map(Msg::Claim),
        arb_claim().prop_map(Msg::Resign),
        (
            proptest::option::of(arb_claim()),
            any::<bool>(),
            0u64..1 << 40,
            proptest::collection::vec(arb_update(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(claim, master_alive, max_term, members, reply)| {
                Msg::State(StateChunk {
                    claim,
                    claim_signature: Vec::new(),
                    master_alive,
                    max_term,
                    members,
                    reply,
                    index: 0,
                    total: 1,
                })
            }),
    ]
}

fn arb_input() -> impl Strategy<Value = Vec<u8>> {
    let batch = (any::<u8>(), proptest::collection::vec(arb_msg(), 1..4));
    let raw = proptest::collection::vec(any::<u8>(), 0..48);
    (proptest::collection::vec(batch, 1..12), raw).prop_map(|(batches, raw)| {
        let mut input = encode_input(&batches);
        // A tail of raw bytes: a delivery frame (Msg variant 14) or garbage.
        let mut body = vec![1u8, 14];
        body.extend_from_slice(&raw);
        input.push(0);
        input.extend_from_slice(&(body.len() as u16).to_le_bytes());
        input.extend_from_slice(&body);
        input
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        if std::env::var_os("ESPIAL_LONG").is_some() { 20_000 } else { 256 }
    ))]

    #[test]
    fn member_messages_never_panic(input in arb_input()) {
        member_messages(&input);
    }
}

/// The attacks of issue 10 through the harness, signed by a lying member where they can be.
#[test]
fn extreme_counters_from_a_lying_member_do_not_panic() {
    let me = NodeId(0x0F00);
    let a = NodeId(0x1000);
    let c = NodeId(0x1001);
    let mut liar = member_entry(0, u64::MAX);
    liar.entry.addr = SocketAddr::from(([127, 0, 0, 11], 27272));
    let batches = vec![
        (
            0u8,
            vec![Msg::Updates(vec![Update::Suspect {
                id: me,
                incarnation: u64::MAX,
                by: a,
            }])],
        ),
        (
            0,
            vec![Msg::Updates(vec![Update::Dead {
                id: me,
                incarnation: u64::MAX,
                by: a,
            }])],
        ),
        (
            4,
            vec![Msg::Updates(vec![Update::Left {
                id: c,
                incarnation: u64::MAX,
                signature: vec![],
            }])],
        ),
        (4, vec![Msg::Updates(vec![Update::Alive(liar)])]),
        (
            4 | (40 << 3),
            vec![Msg::Updates(vec![Update::Suspect {
                id: a,
                incarnation: u64::MAX,
                by: c,
            }])],
        ),
        (
            0,
            vec![Msg::Heartbeat {
                claim: Claim {
                    majority: false,
                    term: 1 << 40,
                    priority: u32::MAX,
                    master: a,
                },
                incarnation: u64::MAX,
                members: u32::MAX,
            }],
        ),
    ];
    member_messages(&encode_input(&batches));
}

/// A digest exchange through the harness: an offer, an answer to the node's own open offer
/// (round 0) claiming huge incarnations and unknown members, a request for everything.
#[test]
fn digest_answers_from_a_lying_member_do_not_panic() {
    let me = NodeId(0x0F00);
    let (a, c) = (NodeId(0x1000), NodeId(0x1001));
    let rec = |id, incarnation, status| DigestRecord {
        id,
        incarnation,
        status,
        hash: [0; 4],
    };
    let chunk = DigestChunk {
        round: 0,
        claim: None,
        claim_signature: Vec::new(),
        master_alive: true,
        max_term: u64::MAX,
        lo: NodeId(0),
        hi: NodeId(u128::MAX),
        records: vec![
            rec(NodeId(1), u64::MAX, DigestStatus::Alive),
            rec(me, u64::MAX, DigestStatus::Left),
            rec(c, u64::MAX, DigestStatus::Dead),
        ],
        index: u16::MAX,
        total: 0,
    };
    let batches = vec![
        (
            0u8,
            vec![Msg::DigestOffer {
                round: u64::MAX,
                summary: ViewSummary {
                    claim: None,
                    master_alive: true,
                    max_term: u64::MAX,
                    live: u32::MAX,
                    hash: [0; 8],
                },
            }],
        ),
        (0, vec![Msg::Digest(chunk)]),
        (
            0,
            vec![Msg::DigestRequest {
                round: 0,
                ids: vec![me, a, c, NodeId(1), me],
            }],
        ),
        (0, vec![Msg::DigestEqual { round: 0 }]),
    ];
    member_messages(&encode_input(&batches));
}
