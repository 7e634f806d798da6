use super::*;
use crate::{Metadata, NodeInfo};
use proptest::prelude::*;
use std::net::SocketAddr;

fn arb_id() -> impl Strategy<Value = NodeId> {
    any::<u128>().prop_map(NodeId)
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn arb_info() -> impl Strategy<Value = NodeInfo> {
    (
        arb_id(),
        "[a-z0-9.-]{0,20}",
        arb_addr(),
        proptest::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,16}", 0..4),
        any::<bool>(),
        any::<u32>(),
        any::<u64>(),
        proptest::collection::btree_set("[a-z]{1,10}", 0..4),
        proptest::collection::vec(any::<u8>(), 0..33),
    )
        .prop_map(
            |(id, name, addr, md, elig, prio, inc, subs, key)| NodeInfo {
                id,
                name,
                addr,
                metadata: Metadata::from_pairs(md, 10_000).unwrap(),
                master_eligible: elig,
                priority: prio,
                incarnation: inc,
                subscriptions: subs,
                public_key: key,
            },
        )
}

fn arb_claim() -> impl Strategy<Value = Claim> {
    (any::<u64>(), any::<u32>(), arb_id()).prop_map(|(term, priority, master)| Claim {
        majority: term % 2 == 0,
        term,
        priority,
        master,
    })
}

pub(crate) fn arb_signed() -> impl Strategy<Value = SignedEntry> {
    (arb_info(), proptest::collection::vec(any::<u8>(), 0..65))
        .prop_map(|(entry, signature)| SignedEntry { entry, signature })
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        arb_signed().prop_map(Update::Alive),
        (arb_id(), any::<u64>(), arb_id()).prop_map(|(id, incarnation, by)| Update::Suspect {
            id,
            incarnation,
            by
        }),
        (arb_id(), any::<u64>(), arb_id()).prop_map(|(id, incarnation, by)| Update::Dead {
            id,
            incarnation,
            by
        }),
        (
            arb_id(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..65)
        )
            .prop_map(|(id, incarnation, signature)| Update::Left {
                id,
                incarnation,
                signature
            }),
    ]
}

fn arb_status() -> impl Strategy<Value = DigestStatus> {
    prop_oneof![
        Just(DigestStatus::Alive),
        Just(DigestStatus::Suspect),
        Just(DigestStatus::Dead),
        Just(DigestStatus::Left),
    ]
}

fn arb_record() -> impl Strategy<Value = DigestRecord> {
    (arb_id(), any::<u64>(), arb_status(), any::<[u8; 4]>()).prop_map(
        |(id, incarnation, status, hash)| DigestRecord {
            id,
            incarnation,
            status,
            hash,
        },
    )
}

fn arb_digest_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (
            any::<u64>(),
            proptest::option::of(arb_claim()),
            any::<bool>(),
            any::<u64>(),
            any::<u32>(),
            any::<[u8; 8]>()
        )
            .prop_map(|(round, claim, master_alive, max_term, live, hash)| {
                Msg::DigestOffer {
                    round,
                    summary: ViewSummary {
                        claim,
                        master_alive,
                        max_term,
                        live,
                        hash,
                    },
                }
            }),
        any::<u64>().prop_map(|round| Msg::DigestEqual { round }),
        (
            any::<u64>(),
            proptest::option::of(arb_claim()),
            proptest::collection::vec(any::<u8>(), 0..65),
            (any::<bool>(), any::<u64>()),
            (arb_id(), arb_id()),
            proptest::collection::vec(arb_record(), 0..8),
            (any::<u16>(), any::<u16>())
        )
            .prop_map(
                |(
                    round,
                    claim,
                    claim_signature,
                    (master_alive, max_term),
                    (lo, hi),
                    records,
                    (index, total),
                )| {
                    Msg::Digest(DigestChunk {
                        round,
                        claim,
                        claim_signature,
                        master_alive,
                        max_term,
                        lo,
                        hi,
                        records,
                        index,
                        total,
                    })
                }
            ),
        (any::<u64>(), proptest::collection::vec(arb_id(), 0..8))
            .prop_map(|(round, ids)| Msg::DigestRequest { round, ids }),
    ]
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        (any::<u64>(), any::<u32>()).prop_map(|(seq, members)| Msg::Ping { seq, members }),
        arb_digest_msg(),
        any::<u64>().prop_map(|seq| Msg::Ack { seq }),
        (any::<u64>(), arb_id()).prop_map(|(seq, target)| Msg::PingReq { seq, target }),
        (arb_signed(), any::<u64>()).prop_map(|(node, attempt)| Msg::JoinRequest { node, attempt }),
        (any::<u64>(), ".{0,40}").prop_map(|(attempt, reason)| Msg::JoinReject { attempt, reason }),
        proptest::collection::vec(arb_update(), 0..5).prop_map(Msg::Updates),
        (arb_claim(), any::<u64>()).prop_map(|(claim, incarnation)| Msg::Heartbeat {
            claim,
            incarnation,
            members: 5
        }),
        arb_claim().prop_map(Msg::Claim),
        arb_claim().prop_map(Msg::Resign),
        (arb_claim(), any::<u64>()).prop_map(|(claim, round)| Msg::LeaseRequest { claim, round }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(term, round, granted)| {
            Msg::LeaseAck {
                term,
                round,
                granted,
            }
        }),
        (arb_claim(), any::<u32>(), any::<bool>()).prop_map(|(claim, attempt, force)| {
            Msg::VoteRequest {
                claim,
                attempt,
                force,
            }
        }),
        (
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(arb_claim())
        )
            .prop_map(|(term, attempt, master)| Msg::VoteReply {
                term,
                attempt,
                granted: term % 3 == 0,
                voted_term: term / 2,
                master,
            }),
        any::<u64>().prop_map(|seq| Msg::Nack { seq }),
        (
            proptest::option::of(arb_claim()),
            any::<bool>(),
            proptest::collection::vec(arb_update(), 0..4)
        )
            .prop_map(|(claim, reply, members)| Msg::State(StateChunk {
                claim,
                claim_signature: Vec::new(),
                master_alive: true,
                max_term: 3,
                members,
                reply,
                index: 0,
                total: 1,
            })),
    ]
}

proptest! {
    #[test]
    fn msgs_round_trip(msgs in proptest::collection::vec(arb_msg(), 0..6)) {
        let bytes = encode_msgs(&msgs);
        prop_assert_eq!(decode_msgs(&bytes).unwrap(), msgs.clone());
        let total: usize = msgs.iter().map(msg_size).sum();
        prop_assert!(bytes.len() <= total + 2);
    }

    #[test]
    fn hello_round_trip(from in arb_id(), to in proptest::option::of(arb_id()), attempt in any::<u64>(), share in proptest::collection::vec(any::<u8>(), 0..64)) {
        let h = Hello { from, to, attempt, share, cookie: None };
        let dgram = encode_hello(&h, 0);
        prop_assert!(dgram.len() >= HELLO_MIN_LEN);
        let (kind, body) = split_header(&dgram, 1400).unwrap();
        prop_assert_eq!(kind, Kind::Hello);
        prop_assert_eq!(decode_body::<Hello>(body).unwrap(), h);
    }

    #[test]
    fn sealed_header_round_trip(sender in arb_id(), epoch in any::<u32>(), counter in any::<u64>()) {
        let h = SealedHeader { sender, epoch, counter };
        let mut v = Vec::new();
        h.write(&mut v);
        prop_assert_eq!(v.len(), SEALED_HEADER_LEN);
        let (kind, body) = split_header(&v, 1400).unwrap();
        prop_assert_eq!(kind, Kind::Sealed);
        let (parsed, rest) = SealedHeader::parse(body).unwrap();
        prop_assert_eq!(parsed, h);
        prop_assert!(rest.is_empty());
    }

    /// Decoding arbitrary bytes never panics and never allocates without bound.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = split_header(&data, 1400);
        let _ = decode_msgs(&data);
        let _ = decode_body::<Hello>(&data);
        let _ = decode_body::<HelloAck>(&data);
        let _ = decode_body::<Beacon>(&data);
        let _ = decode_body::<Cookie>(&data);
        let _ = SealedHeader::parse(&data);
    }

    /// Valid headers followed by garbage bodies.
    #[test]
    fn garbage_bodies_never_panic(kind in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut d = vec![MAGIC[0], MAGIC[1], VERSION, kind];
        d.extend_from_slice(&body);
        if let Ok((k, b)) = split_header(&d, 1400) {
            match k {
                Kind::Hello => { let _ = decode_body::<Hello>(b); }
                Kind::HelloAck => { let _ = decode_body::<HelloAck>(b); }
                Kind::Beacon => { let _ = decode_body::<Beacon>(b); }
                Kind::Cookie => { let _ = decode_body::<Cookie>(b); }
                Kind::Sealed => { let _ = SealedHeader::parse(b); let _ = decode_msgs(b); }
            }
        }
    }
}

#[test]
fn header_errors_are_specific() {
    assert_eq!(split_header(&[0xE5], 1400), Err(DecodeError::TooShort));
    assert_eq!(
        split_header(&[1, 2, 3, 4], 1400),
        Err(DecodeError::BadMagic)
    );
    assert_eq!(
        split_header(&[0xE5, 0x1A, 9, 1], 1400),
        Err(DecodeError::Version(9))
    );
    assert_eq!(
        split_header(&[0xE5, 0x1A, VERSION, 77], 1400),
        Err(DecodeError::UnknownKind(77))
    );
    assert_eq!(
        split_header(&[0u8; 1401], 1400),
        Err(DecodeError::TooLarge(1401))
    );
}

#[test]
fn huge_length_prefix_does_not_allocate() {
    // A Vec<Msg> claiming 2^60 elements must fail fast, not allocate.
    let mut d = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
    d.extend_from_slice(&[0; 8]);
    assert!(decode_msgs(&d).is_err());
}

#[test]
fn a_digest_claiming_2_pow_60_records_fails_fast() {
    // [1 message] Digest (variant 23): round 1, no claim, empty signature, master_alive
    // false, max_term 0, lo 0, hi 0, then the records' length prefix.
    let head = [0x01, 23, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    let mut ok = head.to_vec();
    ok.extend_from_slice(&[0x00, 0x00, 0x01]); // no records, index 0, total 1
    let expected = Msg::Digest(DigestChunk {
        round: 1,
        claim: None,
        claim_signature: Vec::new(),
        master_alive: false,
        max_term: 0,
        lo: NodeId(0),
        hi: NodeId(0),
        records: Vec::new(),
        index: 0,
        total: 1,
    });
    assert_eq!(decode_msgs(&ok).unwrap(), vec![expected]);
    let mut huge = head.to_vec();
    huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
    huge.extend_from_slice(&[0; 64]);
    assert!(decode_msgs(&huge).is_err());
    // The same for a request's ids.
    let huge = [
        0x01, 24, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0,
    ];
    assert!(decode_msgs(&huge).is_err());
}
