//! Always-on stand-in for the `node_datagram` fuzz target: arbitrary bytes fed to
//! `Node::handle_datagram` never panic (1024 cases by default; `PROPTEST_CASES` overrides).

use espial_core::wire::{
    encode_clear, encode_hello, Beacon, Hello, HelloAck, IdentityProof, Kind, MAGIC, VERSION,
};
use espial_core::{Config, Node, NodeId, NodeInfo, PlaintextTestCipher};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn fresh_node(now: Instant) -> Node {
    let me = NodeInfo::new(NodeId(1), "fuzz", "127.0.0.1:27272".parse().unwrap());
    Node::new(
        Config::lan(),
        me,
        Box::new(PlaintextTestCipher::for_node(NodeId(1))),
        7,
        now,
    )
    .unwrap()
}

fn drain(node: &mut Node) {
    for _ in 0..10_000 {
        if node.poll_output().is_none() {
            break;
        }
    }
}

/// Datagrams: pure noise, a valid header with a noisy body, or well-formed clear messages
/// with arbitrary fields (so the decoders and the handshake code are reached).
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let noise = proptest::collection::vec(any::<u8>(), 0..1500);
    let headed =
        (1u8..=5, proptest::collection::vec(any::<u8>(), 0..1500)).prop_map(|(k, body)| {
            let mut v = vec![MAGIC[0], MAGIC[1], VERSION, k];
            v.extend_from_slice(&body);
            v
        });
    let hello = (
        any::<u128>(),
        any::<Option<u128>>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(from, to, attempt, share)| {
            encode_hello(
                &Hello {
                    from: NodeId(from),
                    to: to.map(NodeId),
                    attempt,
                    share,
                    cookie: None,
                },
                0,
            )
        });
    let ack = (
        any::<u128>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(from, attempt, epoch, share, confirm)| {
            encode_clear(
                Kind::HelloAck,
                &HelloAck {
                    from: NodeId(from),
                    to: NodeId(1),
                    attempt,
                    epoch,
                    share,
                    identity: IdentityProof {
                        public_key: vec![],
                        signature: vec![],
                    },
                    confirm,
                },
            )
        });
    let beacon =
        (any::<u128>(), any::<u16>(), any::<Option<[u8; 16]>>()).prop_map(|(id, port, mac)| {
            let addr: SocketAddr = ([127, 0, 0, 2], port).into();
            encode_clear(
                Kind::Beacon,
                &Beacon {
                    cluster: "espial".into(),
                    id: NodeId(id),
                    addr,
                    mac,
                },
            )
        });
    prop_oneof![noise, headed, hello, ack, beacon]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn handle_datagram_never_panics(dgrams in proptest::collection::vec(datagram(), 1..4)) {
        let start = Instant::now();
        let mut node = fresh_node(start);
        drain(&mut node);
        let from: SocketAddr = "127.0.0.2:4000".parse().unwrap();
        for (i, d) in dgrams.iter().enumerate() {
            let now = start + Duration::from_millis(10 * i as u64);
            node.handle_datagram(now, from, d);
            drain(&mut node);
            node.handle_timeout(now);
            drain(&mut node);
        }
        // Reaching here means no panic; the stats snapshot must still be readable.
        let _ = node.stats();
    }
}

// ------------------------------------------------------------------ authenticated garbage
//
// Past the handshake: a peer that holds valid session keys sends arbitrary record
// plaintexts (noise, or well-formed messages with arbitrary fields). The node must never
// panic, with the test cipher and with the real AES-GCM cipher.

mod authenticated {
    use super::*;
    use espial_core::cipher::{Cipher, Role, SessionKeys, DOMAIN_HANDSHAKE};
    use espial_core::session::{proof_message, transcript};
    use espial_core::wire::{
        decode_body, encode_msgs, split_header, Claim, IdentityProof, Msg, SealedHeader,
        SignedEntry, StateChunk, Update,
    };
    use espial_core::Output;
    use espial_crypto::AesGcmCipher;

    const ME: NodeId = NodeId(1);
    const PEER: NodeId = NodeId(2);

    fn make_cipher(aes: bool, seed: u64) -> Box<dyn Cipher> {
        if aes {
            Box::new(AesGcmCipher::seeded(seed, false))
        } else {
            Box::new(PlaintextTestCipher::for_node(NodeId(seed as u128)))
        }
    }

    /// Our side of a session with the node under test.
    struct Peer {
        id: NodeId,
        keys: SessionKeys,
        epoch: u32,
        /// The plaintext of our first record: `Confirm` with our identity proof.
        confirm: Vec<u8>,
    }

    /// Runs a Hello/HelloAck with the node (id `me`) as a peer with its own identity.
    fn handshake(node: &mut Node, me: NodeId, now: Instant, from: SocketAddr, aes: bool) -> Peer {
        let mut ours = make_cipher(aes, 99);
        let peer = ours.node_id();
        let ex = ours.start_exchange();
        let share = ex.public_share().to_vec();
        let hello = Hello {
            from: peer,
            to: Some(me),
            attempt: 5,
            share: share.clone(),
            cookie: None,
        };
        node.handle_datagram(now, from, &encode_hello(&hello, 0));
        let mut ack = None;
        while let Some(o) = node.poll_output() {
            if let Output::Transmit(t) = o {
                if let Ok((Kind::HelloAck, body)) = split_header(&t.data, usize::MAX) {
                    ack = decode_body::<HelloAck>(body).ok();
                }
            }
        }
        let ack = ack.expect("the node answers a Hello with a HelloAck");
        let t = transcript(peer, me, &share, &ack.share);
        let keys = ex.complete(&ack.share, &t, Role::Initiator).expect("keys");
        let identity = IdentityProof {
            public_key: ours.identity_public_key(),
            signature: ours.sign(DOMAIN_HANDSHAKE, &proof_message(&t, Role::Initiator)),
        };
        Peer {
            id: peer,
            keys,
            epoch: ack.epoch,
            confirm: encode_msgs(&[Msg::Confirm { identity }]),
        }
    }

    fn record(p: &Peer, counter: u64, plain: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        SealedHeader {
            sender: p.id,
            epoch: p.epoch,
            counter,
        }
        .write(&mut d);
        let mut body = plain.to_vec();
        p.keys.send.seal(counter, &d, &mut body).unwrap();
        d.extend_from_slice(&body);
        d
    }

    fn id() -> impl Strategy<Value = NodeId> {
        prop_oneof![Just(ME), Just(PEER), any::<u128>().prop_map(NodeId)]
    }

    fn claim() -> impl Strategy<Value = Claim> {
        (any::<u64>(), any::<u32>(), id()).prop_map(|(term, priority, master)| Claim {
            majority: term % 2 == 0,
            term,
            priority,
            master,
        })
    }

    fn update() -> impl Strategy<Value = Update> {
        prop_oneof![
            (id(), any::<u64>(), id()).prop_map(|(id, incarnation, by)| Update::Suspect {
                id,
                incarnation,
                by
            }),
            (id(), any::<u64>(), id()).prop_map(|(id, incarnation, by)| Update::Dead {
                id,
                incarnation,
                by
            }),
            (id(), any::<u64>()).prop_map(|(id, incarnation)| Update::Left {
                id,
                incarnation,
                signature: vec![0; 64],
            }),
            (id(), "[a-z]{0,12}", any::<u16>()).prop_map(|(id, name, port)| {
                Update::Alive(SignedEntry {
                    entry: NodeInfo::new(id, name, ([127, 0, 0, 3], port).into()),
                    signature: vec![0; 64],
                })
            }),
        ]
    }

    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            Just(Msg::Confirm {
                identity: IdentityProof {
                    public_key: vec![],
                    signature: vec![]
                }
            }),
            Just(Msg::ConfirmAck),
            (id(), "[a-z]{0,12}", any::<u64>()).prop_map(|(i, name, attempt)| Msg::JoinRequest {
                node: SignedEntry {
                    entry: NodeInfo::new(i, name, "127.0.0.2:4000".parse().unwrap()),
                    signature: vec![0; 64],
                },
                attempt,
            }),
            (any::<u64>(), id()).prop_map(|(attempt, i)| Msg::JoinAccept {
                attempt,
                by: SignedEntry {
                    entry: NodeInfo::new(i, "x", "127.0.0.2:4000".parse().unwrap()),
                    signature: vec![0; 64],
                },
            }),
            (any::<u64>(), ".{0,20}")
                .prop_map(|(attempt, reason)| Msg::JoinReject { attempt, reason }),
            (any::<u64>(), any::<u32>()).prop_map(|(seq, members)| Msg::Ping { seq, members }),
            any::<u64>().prop_map(|seq| Msg::Ack { seq }),
            (any::<u64>(), id()).prop_map(|(seq, target)| Msg::PingReq { seq, target }),
            (any::<u64>(), id()).prop_map(|(seq, target)| Msg::IndirectAck { seq, target }),
            proptest::collection::vec(update(), 0..6).prop_map(Msg::Updates),
            (
                proptest::option::of(claim()),
                any::<bool>(),
                any::<u64>(),
                proptest::collection::vec(update(), 0..6),
                any::<bool>(),
                any::<u16>(),
                any::<u16>()
            )
                .prop_map(
                    |(claim, master_alive, max_term, members, reply, index, total)| {
                        Msg::State(StateChunk {
                            claim,
                            claim_signature: Vec::new(),
                            master_alive,
                            max_term,
                            members,
                            reply,
                            index,
                            total,
                        })
                    }
                ),
            (claim(), any::<u64>()).prop_map(|(claim, incarnation)| Msg::Heartbeat {
                claim,
                incarnation,
                members: 5
            }),
            claim().prop_map(Msg::Claim),
            claim().prop_map(Msg::Resign),
            (claim(), any::<u64>()).prop_map(|(claim, round)| Msg::LeaseRequest { claim, round }),
            (claim(), any::<u32>(), any::<bool>()).prop_map(|(claim, attempt, force)| {
                Msg::VoteRequest {
                    claim,
                    attempt,
                    force,
                }
            }),
            (any::<u64>(), any::<u32>(), proptest::option::of(claim())).prop_map(
                |(term, attempt, master)| Msg::VoteReply {
                    term,
                    attempt,
                    granted: true,
                    voted_term: term,
                    master,
                }
            ),
        ]
    }

    fn plaintext() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec(msg(), 0..5).prop_map(|m| encode_msgs(&m)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn authenticated_records_never_panic(
            aes in any::<bool>(),
            plains in proptest::collection::vec((plaintext(), 0u64..8, 0u64..500), 1..6),
        ) {
            let start = Instant::now();
            let mut node = fresh_node(start);
            drain(&mut node);
            let from: SocketAddr = "127.0.0.2:4000".parse().unwrap();
            // fresh_node uses the test cipher; use the real one for the AES case.
            let mut me = ME;
            if aes {
                let cipher = make_cipher(true, 7);
                me = cipher.node_id();
                let info = NodeInfo::new(me, "fuzz", "127.0.0.1:27272".parse().unwrap());
                node = Node::new(Config::lan(), info, cipher, 7, start).unwrap();
                drain(&mut node);
            }
            let peer = handshake(&mut node, me, start, from, aes);
            node.handle_datagram(start, from, &record(&peer, 0, &peer.confirm));
            drain(&mut node);
            let before = node.stats().decrypt_failures;
            for (i, (plain, counter, dt)) in plains.iter().enumerate() {
                let now = start + Duration::from_millis(dt * (i as u64 + 1));
                node.handle_datagram(now, from, &record(&peer, 1 + counter, plain));
                drain(&mut node);
                node.handle_timeout(now);
                drain(&mut node);
            }
            // Every record was sealed with the right keys: none may fail to decrypt.
            prop_assert_eq!(node.stats().decrypt_failures, before);
        }
    }
}
