//! Arbitrary datagrams into a fresh node (PlaintextTestCipher): must never panic.
//!
//! The input is fed whole, then split at every occurrence of the wire magic (E5 1A) into a
//! sequence of datagrams with time advancing between them, so the fuzzer can build
//! multi-message exchanges (Hello, then records) out of one input.
#![no_main]

use espial_core::wire::MAGIC;
use espial_core::{Config, Node, NodeId, NodeInfo, PlaintextTestCipher};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn drain(node: &mut Node) {
    for _ in 0..100_000 {
        if node.poll_output().is_none() {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let me = NodeInfo::new(NodeId(1), "fuzz", "127.0.0.1:27272".parse().unwrap());
    let Ok(mut node) = Node::new(
        Config::lan(),
        me,
        Box::new(PlaintextTestCipher::for_node(NodeId(1))),
        7,
        start,
    ) else {
        return;
    };
    drain(&mut node);
    let from: SocketAddr = "127.0.0.2:4000".parse().unwrap();
    node.handle_datagram(start, from, data);
    drain(&mut node);

    let mut starts: Vec<usize> = data
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == MAGIC)
        .map(|(i, _)| i)
        .collect();
    starts.push(data.len());
    for (n, pair) in starts.windows(2).take(64).enumerate() {
        let now = start + Duration::from_millis(50 * (n as u64 + 1));
        node.handle_datagram(now, from, &data[pair[0]..pair[1]]);
        drain(&mut node);
        node.handle_timeout(now);
        drain(&mut node);
    }
    let _ = node.stats();
});
