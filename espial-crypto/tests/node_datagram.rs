//! Always-on stand-in for the `node_datagram` fuzz target: arbitrary bytes fed to
//! `Node::handle_datagram` never panic (1024 cases by default; `PROPTEST_CASES` overrides).

use espial_core::wire::{encode_clear, Beacon, Hello, HelloAck, Kind, MAGIC, VERSION};
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
        Box::new(PlaintextTestCipher::new()),
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
            encode_clear(
                Kind::Hello,
                &Hello {
                    from: NodeId(from),
                    to: to.map(NodeId),
                    attempt,
                    share,
                },
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
                    identity: None,
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
