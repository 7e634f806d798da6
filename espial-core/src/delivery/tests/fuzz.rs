//! Decode safety: arbitrary frames (bogus sequence numbers, huge fragment counts, offsets,
//! lengths, runs) never panic and never push accounted memory past the limits; a peer that
//! never completes its messages cannot starve another peer.

use super::harness::{id, Faults, Net};
use super::payload;
use crate::delivery::{
    Ack, Delivery, DeliveryConfig, Frame, Head, MsgKind, PartialAck, Run, Segment,
};
use crate::wire::{decode_msgs, Msg};
use crate::{NodeId, RequestId};
use bytes::Bytes;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn small_cfg() -> DeliveryConfig {
    DeliveryConfig {
        max_payload: 8 * 1024,
        reassembly_per_peer: 0, // raised to the minimum by the engine
        reassembly_total: 0,
        window: 16,
        ..DeliveryConfig::default()
    }
}

fn u64s() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..8, 1 => any::<u64>()]
}

fn u32s() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..6, 1 => any::<u32>()]
}

fn runs() -> impl Strategy<Value = Vec<Run>> {
    prop::collection::vec(
        (u64s(), u64s()).prop_map(|(gap, len)| Run { gap, len }),
        0..6,
    )
}

fn kind() -> impl Strategy<Value = MsgKind> {
    prop_oneof![
        ("[a-z]{0,70}", prop::option::of(any::<u64>()), any::<bool>()).prop_map(
            |(name, r, subscribers_only)| MsgKind::Event {
                name,
                request: r.map(RequestId),
                subscribers_only,
            }
        ),
        any::<u64>().prop_map(|r| MsgKind::Reply {
            request: RequestId(r)
        }),
        Just(MsgKind::Skip),
    ]
}

fn segment() -> impl Strategy<Value = Segment> {
    (
        u64s(),
        u32s(),
        u32s(),
        prop::option::of((prop_oneof![0u32..3000, any::<u32>()], kind())),
        prop::collection::vec(any::<u8>(), 0..1200),
    )
        .prop_map(|(off, frag, frags, head, data)| Segment {
            off,
            frag,
            frags,
            head: head.map(|(total_len, kind)| Head { total_len, kind }),
            data: Bytes::from(data),
        })
}

/// `(from peer 0..3, own-stream ack?, frame)`
fn input() -> impl Strategy<Value = (usize, bool, Frame)> {
    (
        0usize..3,
        any::<bool>(),
        prop_oneof![3 => 1u64..3, 1 => any::<u64>()],
        u64s(),
        prop::option::of((
            any::<u64>(),
            u64s(),
            u64s(),
            any::<u64>(),
            runs(),
            prop::collection::vec(
                (u64s(), runs()).prop_map(|(off, frags)| PartialAck { off, frags }),
                0..4,
            ),
            (prop_oneof![3 => u64s(), 1 => any::<u64>()], runs()),
        )),
        prop::collection::vec(segment(), 0..6),
    )
        .prop_map(|(from, own, stream, base, ack, segs)| {
            let ack = ack.map(
                |(
                    st,
                    serial,
                    cumulative,
                    delay_us,
                    ranges,
                    partials,
                    (declined_back, declined),
                )| {
                    Ack {
                        stream: st,
                        serial,
                        delay_us,
                        cumulative,
                        ranges,
                        partials,
                        declined_back,
                        declined,
                        // Arbitrary but derived (the strategy tuple is full): below, at and
                        // above `cumulative`, with credits from tiny to huge.
                        consumed: cumulative.wrapping_add(delay_us % 5).wrapping_sub(2),
                        credit: serial.rotate_left((delay_us % 64) as u32),
                    }
                },
            );
            (
                from,
                own,
                Frame {
                    stream,
                    base,
                    ack,
                    segs,
                    blocked: base % 3 == 0,
                },
            )
        })
}

fn check_bounds(d: &Delivery) {
    let cfg = d.config();
    let mut total = 0;
    for p in d.peers.values() {
        if let Some(rx) = &p.rx {
            assert!(rx.hol + rx.ooo <= cfg.reassembly_per_peer, "per-peer bound");
            assert!(rx.hol <= cfg.message_cap(), "head-of-line bound");
            total += rx.hol + rx.ooo;
        }
    }
    assert_eq!(total, d.mem.total(), "accounting consistent");
    assert!(d.mem.total() <= cfg.reassembly_total, "total bound");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_frames_never_panic_and_memory_stays_bounded(
        inputs in prop::collection::vec(input(), 1..40),
        seed in any::<u64>(),
    ) {
        let cfg = small_cfg();
        let me = NodeId(100);
        let mut d = Delivery::new(cfg.clone(), me, seed);
        let mut now = Instant::now();
        let peers = [NodeId(1), NodeId(2), NodeId(3)];
        // Outgoing data so that acks have something to act on.
        for (k, p) in peers.iter().enumerate() {
            let _ = d.send(now, "out", payload(0, k as u32, 3000), &[*p], None);
        }
        while d.poll_transmit(now, cfg.max_frame).is_some() {}
        for (from, own, mut frame) in inputs {
            if own {
                if let Some(a) = &mut frame.ack {
                    a.stream = d.stream_id();
                }
            }
            d.handle_frame(now, peers[from], frame);
            check_bounds(&d);
            now += Duration::from_millis(3);
            d.handle_timeout(now);
            for _ in 0..10_000 {
                match d.poll_transmit(now, cfg.max_frame) {
                    Some((_, f)) => prop_assert!(crate::wire::msg_size(&Msg::Delivery(f)) <= cfg.max_frame),
                    None => break,
                }
            }
            while d.poll_event().is_some() {}
        }
        let s = d.stats();
        prop_assert!(s.reassembly_peak <= d.config().reassembly_total as u64);
        let _ = d.poll_timeout();
    }

    #[test]
    fn arbitrary_bytes_decode_or_are_dropped(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut d = Delivery::new(small_cfg(), NodeId(100), 1);
        if let Ok(msgs) = decode_msgs(&bytes) {
            for m in msgs {
                if let Msg::Delivery(f) = m {
                    d.handle_frame(Instant::now(), NodeId(1), f);
                    check_bounds(&d);
                }
            }
        }
    }
}

/// A peer that sends the first fragments of many large messages and never completes them
/// holds at most its share; another peer's 1 MiB message still gets through.
#[test]
fn never_completing_peer_cannot_exhaust_memory_or_starve_others() {
    // Tight: the total is one peer's share, so the liar alone could fill it.
    let tight = DeliveryConfig {
        reassembly_per_peer: 0,
        reassembly_total: 0,
        ..DeliveryConfig::default()
    };
    let mut net = Net::new(2, tight, Faults::default(), 30);
    let cfg = net.nodes[1].config().clone();
    let liar = NodeId(99);
    let frag = cfg.frag_size();
    // 200 messages of 1 MiB, all fragments but the last of each: far more than any limit.
    'outer: for seq in 0..200u64 {
        for f in 0..100u32 {
            let seg = Segment {
                off: seq,
                frag: f,
                frags: 900,
                head: (f == 0).then(|| Head {
                    total_len: (900 * frag) as u32,
                    kind: MsgKind::Event {
                        name: "x".into(),
                        request: None,
                        subscribers_only: false,
                    },
                }),
                data: Bytes::from(vec![7u8; frag]),
            };
            let frame = Frame {
                stream: 5,
                base: 0,
                ack: None,
                segs: vec![seg],
                blocked: false,
            };
            net.inject(liar, 1, frame);
            check_bounds(&net.nodes[1]);
            if net.nodes[1].stats().reassembly_refused > 2000 {
                break 'outer;
            }
        }
    }
    let s = net.nodes[1].stats();
    assert!(s.reassembly_refused > 0, "limits were hit");
    assert!(s.reassembly_bytes as usize <= cfg.reassembly_per_peer);
    assert!(
        s.reassembly_bytes as usize > cfg.reassembly_total / 2,
        "the liar filled it"
    );
    // A real sender's 1 MiB message gets through: head-of-line messages evict the liar's
    // out-of-order partial messages.
    let big = payload(0, 0, 1 << 20);
    net.nodes[0]
        .send(net.now, "blob", big.clone(), &[id(1)], None)
        .unwrap();
    net.flush(0);
    net.run_until(Duration::from_secs(60), |n| !n.outcomes(0).is_empty());
    assert!(net.received(1, 0)[0] == big);
    check_bounds(&net.nodes[1]);
}
