//! End-to-end flow control: credit that follows the application's consumption, bounded
//! unread bytes, blocked probes, and credit that never goes down (issue 11 item 4).

use super::harness::{id, Faults, Net};
use super::{check_payload, payload};
use crate::delivery::frame::{Ack, MsgKind};
use crate::delivery::tx::{Queued, Tx};
use crate::delivery::DeliveryConfig;
use crate::error::SendError;
use crate::event::{Event, SendId};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::time::Duration;

const WINDOW: usize = 64 * 1024;
const SIZE: usize = 1024;

fn cfg() -> DeliveryConfig {
    DeliveryConfig {
        max_payload: 4096,
        credit_window: WINDOW,
        unread_total: 4 * WINDOW,
        queue_limit: 64,
        app_consumption: true,
        ..DeliveryConfig::default()
    }
}

/// Custom events node `i` was handed (its application may not have consumed them yet).
fn handed(net: &Net, i: usize) -> usize {
    net.events[i]
        .iter()
        .filter(|e| matches!(e, Event::Custom(_)))
        .count()
}

/// Sends `count` events 0 → 1 (retrying on backpressure), the reader consuming only when
/// `reading(t)` says so. Returns (backpressure refusals, peak unread bytes at node 1).
fn stream(net: &mut Net, count: u32, mut reading: impl FnMut(&Net) -> bool) -> (u64, u64) {
    let mut next = 0u32;
    let mut refused = 0u64;
    let mut consumed = 0usize;
    let mut peak = 0u64;
    let limit = net.now + Duration::from_secs(120);
    while (next < count || !net.quiet()) && net.now < limit {
        if next < count {
            match net.nodes[0].send(net.now, "jobs", payload(0, next, SIZE), &[id(1)], None) {
                Ok(_) => next += 1,
                Err(SendError::Backpressure(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        net.flush(0);
        net.run_for(Duration::from_millis(1));
        peak = peak.max(net.nodes[1].unread().1);
        if reading(net) {
            let h = handed(net, 1);
            if h > consumed {
                net.nodes[1].app_consumed(net.now, h - consumed);
                consumed = h;
                net.flush(1);
            }
        }
    }
    (refused, peak)
}

fn check_all_delivered(net: &Net, count: u32) {
    let got: Vec<u32> = net
        .received(1, 0)
        .iter()
        .map(|b| check_payload(b).1)
        .collect();
    assert_eq!(got, (0..count).collect::<Vec<_>>(), "exactly once, in order");
    let outcomes = net.outcomes(0);
    assert_eq!(outcomes.len(), count as usize, "every send has an outcome");
    assert!(outcomes.iter().all(|o| o.delivered == vec![id(1)]));
}

#[test]
fn paused_reader_backpressures_within_the_bound_and_loses_nothing() {
    let mut net = Net::new(2, cfg(), Faults::default(), 7);
    let count = (10 * WINDOW / SIZE) as u32; // 10 windows
    let pause_until = net.now + Duration::from_secs(3);
    let mut delivered_while_paused = 0;
    let (refused, peak) = stream(&mut net, count, |n| {
        if n.now < pause_until {
            delivered_while_paused = n
                .outcomes(0)
                .iter()
                .filter(|o| !o.delivered.is_empty())
                .count();
            false
        } else {
            true
        }
    });
    assert_eq!(delivered_while_paused, 0, "nothing delivered before it was consumed");
    assert!(refused > 0, "the sender saw backpressure");
    assert!(peak <= WINDOW as u64, "unread {peak} B within the window");
    check_all_delivered(&net, count);
}

#[test]
fn lost_credit_updates_recover_through_blocked_probes() {
    let count = (6 * WINDOW / SIZE) as u32;
    // Credit updates (1 → 0) are dropped while the reader catches up.
    let mut net3 = Net::new(2, cfg(), Faults::default(), 13);
    let pause_until = net3.now + Duration::from_secs(1);
    let cut_until = net3.now + Duration::from_secs(3);
    let mut next = 0u32;
    let mut consumed = 0usize;
    let limit = net3.now + Duration::from_secs(60);
    while (next < count || !net3.quiet()) && net3.now < limit {
        if next < count {
            if net3.nodes[0]
                .send(net3.now, "jobs", payload(0, next, SIZE), &[id(1)], None)
                .is_ok()
            {
                next += 1;
            }
        }
        let t = net3.now;
        net3.cut[1][0] = t >= pause_until && t < cut_until;
        net3.flush(0);
        net3.run_for(Duration::from_millis(1));
        if t >= pause_until {
            let h = handed(&net3, 1);
            if h > consumed {
                net3.nodes[1].app_consumed(net3.now, h - consumed);
                consumed = h;
                net3.flush(1);
            }
        }
    }
    net3.cut[1][0] = false;
    check_all_delivered(&net3, count);
    assert!(
        net3.nodes[0].stats().credit_probes_out > 0,
        "the blocked sender probed"
    );
}

#[test]
fn reader_unsubscribing_mid_stream_releases_credit_and_fails_the_rest_clearly() {
    let mut net = Net::new(2, cfg(), Faults::default(), 5);
    let subs: BTreeSet<String> = ["jobs".to_string()].into();
    net.nodes[1].set_subscriptions(&subs);
    let mut sent = Vec::new();
    for k in 0..200u32 {
        if let Ok(s) =
            net.nodes[0].send_to_subscribers(net.now, "jobs", payload(0, k, SIZE), &[id(1)], None)
        {
            sent.push(s);
        }
        net.flush(0);
        net.run_for(Duration::from_millis(1));
    }
    let handed_before = handed(&net, 1);
    assert!(handed_before > 0 && handed_before < sent.len(), "credit held the rest back");
    // The reader unsubscribes; the sender learns it from gossip.
    net.nodes[1].set_subscriptions(&BTreeSet::new());
    let now = net.now;
    net.nodes[0].peer_unsubscribed(now, id(1), "jobs");
    net.flush(0);
    // The application reads what it was handed.
    net.nodes[1].app_consumed(net.now, handed_before);
    net.flush(1);
    net.run_until(Duration::from_secs(30), |n| n.quiet());
    let outcomes = net.outcomes(0);
    assert_eq!(outcomes.len(), sent.len(), "every send has an outcome");
    let delivered = outcomes.iter().filter(|o| !o.delivered.is_empty()).count();
    let failed = outcomes.iter().filter(|o| !o.failed.is_empty()).count();
    assert_eq!(delivered, handed(&net, 1), "delivered = what the application read");
    assert_eq!(delivered + failed, sent.len());
    assert_eq!(net.nodes[1].unread(), (0, 0), "credit released");
}

fn queued(k: u64) -> Queued {
    Queued {
        send: Some(SendId(k)),
        kind: MsgKind::Event {
            name: "x".into(),
            request: None,
            subscribers_only: false,
        },
        payload: bytes::Bytes::from(vec![0u8; 100]),
    }
}

fn ack(consumed: u64, credit: u64, serial: u64) -> Ack {
    Ack {
        stream: 1,
        serial,
        delay_us: 0,
        cumulative: consumed,
        ranges: Vec::new(),
        partials: Vec::new(),
        declined_back: 0,
        declined: Vec::new(),
        consumed,
        credit,
    }
}

proptest! {
    /// Duplicated and reordered credit updates (and arbitrary garbage ones) never lower the
    /// sender's limit: it is always the largest `offset(consumed) + credit` seen.
    #[test]
    fn credit_never_goes_down(
        steps in prop::collection::vec((0u64..40, 0u64..20_000), 1..60),
        order in prop::collection::vec(0usize..1000, 0..80),
        junk in prop::collection::vec((any::<u64>(), any::<u64>()), 0..8),
    ) {
        let cfg = DeliveryConfig { credit_window: 1 << 20, ..DeliveryConfig::default() };
        let now = std::time::Instant::now();
        let mut tx = Tx::new(0, &cfg);
        for k in 0..40 {
            tx.enqueue(queued(k), &cfg);
        }
        // The receiver's acks, in its order (consumed only grows), then replayed in a
        // shuffled, duplicated order with junk mixed in.
        let mut consumed = 0;
        let mut acks = Vec::new();
        for (i, (c, credit)) in steps.iter().enumerate() {
            consumed = consumed.max((*c).min(tx.next_seq));
            acks.push(ack(consumed, *credit, i as u64 + 1));
        }
        let mut replay: Vec<Ack> = order.iter().map(|i| acks[i % acks.len()].clone()).collect();
        replay.extend(junk.iter().map(|(c, cr)| ack(*c, *cr, 0)));
        replay.extend(acks.iter().cloned());
        let mut last = tx.limit;
        for a in &replay {
            tx.on_ack(now, &cfg, a);
            prop_assert!(tx.limit >= last, "limit went down: {} < {}", tx.limit, last);
            last = tx.limit;
        }
    }
}
