use super::*;
use crate::cipher::PlaintextTestCipher;
use crate::wire::{split_header, Hello};

pub(super) fn a(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 1))
}

pub(super) struct Side {
    pub(super) s: Sessions,
    pub(super) rng: Rng,
    pub(super) stats: Stats,
    pub(super) addr: SocketAddr,
}

impl Side {
    /// Sends `msgs` to node `to` at `addr`, returning the datagrams to deliver.
    pub(super) fn send(
        &mut self,
        now: Instant,
        to: u128,
        addr: SocketAddr,
        msgs: Vec<Msg>,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        self.s.send(
            now,
            Some(NodeId(to)),
            addr,
            msgs,
            &mut self.rng,
            &mut self.stats,
            &mut out,
        );
        out
    }
}

pub(super) fn side(id: u128, i: u8, config: &Config) -> Side {
    Side {
        s: Sessions::new(
            NodeId(id),
            Box::new(PlaintextTestCipher::for_node(NodeId(id))),
            config,
        ),
        rng: Rng::new(id as u64),
        stats: Stats::default(),
        addr: a(i),
    }
}

/// Delivers one datagram to `to`, returning the opened messages (if any) and its outputs.
pub(super) fn deliver(
    now: Instant,
    to: &mut Side,
    from: SocketAddr,
    data: &[u8],
) -> (Option<Opened>, Vec<(SocketAddr, Vec<u8>)>) {
    let (kind, body) = split_header(data, 1400).unwrap();
    let mut out = Vec::new();
    let r =
        to.s.handle(now, from, kind, body, &mut to.rng, &mut to.stats, &mut out);
    (r.ok(), out)
}

/// Runs datagrams back and forth until quiet; returns messages opened at each side.
pub(super) fn pump(
    now: Instant,
    x: &mut Side,
    y: &mut Side,
    mut to_y: Vec<(SocketAddr, Vec<u8>)>,
    mut to_x: Vec<(SocketAddr, Vec<u8>)>,
) -> (Vec<Msg>, Vec<Msg>) {
    let (mut at_x, mut at_y) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        if to_x.is_empty() && to_y.is_empty() {
            break;
        }
        let mut nx = Vec::new();
        let mut ny = Vec::new();
        for (_, d) in std::mem::take(&mut to_y) {
            let (o, out) = deliver(now, y, x.addr, &d);
            if let Some(o) = o {
                at_y.extend(o.msgs);
            }
            nx.extend(out);
        }
        for (_, d) in std::mem::take(&mut to_x) {
            let (o, out) = deliver(now, x, y.addr, &d);
            if let Some(o) = o {
                at_x.extend(o.msgs);
            }
            ny.extend(out);
        }
        to_x = nx;
        to_y = ny;
    }
    (at_x, at_y)
}

pub(super) fn ping(seq: u64) -> Vec<Msg> {
    vec![Msg::Ping { seq, members: 2 }]
}

#[test]
fn handshake_then_records_flow_both_ways() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let out = x.send(now, 2, y.addr, ping(1));
    let (_, at_y) = pump(now, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(1));
    let out = y.send(now, 1, x.addr, ping(2));
    let (at_x, _) = pump(now, &mut x, &mut y, vec![], out);
    assert_eq!(at_x, ping(2));
    assert_eq!(x.stats.handshakes_completed, 1);
    assert_eq!(y.stats.handshakes_completed, 1);
}

#[test]
fn crossed_handshakes_resolve_to_one_session_without_loss() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let (mut ox, mut oy) = (Vec::new(), Vec::new());
    x.s.send(
        now,
        Some(NodeId(2)),
        y.addr,
        ping(10),
        &mut x.rng,
        &mut x.stats,
        &mut ox,
    );
    y.s.send(
        now,
        Some(NodeId(1)),
        x.addr,
        ping(20),
        &mut y.rng,
        &mut y.stats,
        &mut oy,
    );
    let (at_x, at_y) = pump(now, &mut x, &mut y, ox, oy);
    assert_eq!(at_y, ping(10), "x's message arrives");
    assert_eq!(
        at_x,
        ping(20),
        "y's queued message arrives through the winning session"
    );
    // Exactly one session each side, same epoch.
    assert_eq!(x.s.footprint(), (1, 0));
    assert_eq!(y.s.footprint(), (1, 0));
    assert_eq!(
        x.s.peers[&NodeId(2)].current.epoch,
        y.s.peers[&NodeId(1)].current.epoch
    );
}

#[test]
fn duplicated_hello_gets_the_same_answer() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let out = x.send(now, 2, y.addr, ping(1));
    let hello = out[0].1.clone();
    let (_, ack1) = deliver(now, &mut y, x.addr, &hello);
    let (_, ack2) = deliver(now, &mut y, x.addr, &hello);
    assert_eq!(ack1, ack2);
    assert!(ack1[0].1.len() <= hello.len(), "never more than the Hello");
    // Never to another source, and only a few times.
    let (_, other) = deliver(now, &mut y, a(9), &hello);
    assert!(
        other.is_empty(),
        "a duplicate from another source gets nothing"
    );
    let mut answers = 2;
    for _ in 0..10 {
        answers += deliver(now, &mut y, x.addr, &hello).1.len();
    }
    assert_eq!(answers, 4, "the first answer plus 3 resends");
    // Nothing is established before the initiator's proof.
    assert_eq!(y.stats.handshakes_completed, 0);
    assert_eq!(y.s.footprint(), (0, 1));
}

#[test]
fn replayed_and_tampered_records_are_dropped_and_counted() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let out = x.send(now, 2, y.addr, ping(1));
    pump(now, &mut x, &mut y, out, vec![]);
    let out = x.send(now, 2, y.addr, ping(2));
    let rec = out[0].1.clone();
    let (o, _) = deliver(now, &mut y, x.addr, &rec);
    assert_eq!(o.unwrap().msgs, ping(2));
    let (o, _) = deliver(now, &mut y, x.addr, &rec);
    assert!(o.is_none());
    assert_eq!(y.stats.replays, 1);
    for bit in 0..(rec.len() * 8) {
        let mut t = rec.clone();
        t[bit / 8] ^= 1 << (bit % 8);
        let Ok((kind, body)) = split_header(&t, 1400) else {
            continue;
        };
        let mut o = Vec::new();
        let r =
            y.s.handle(now, x.addr, kind, body, &mut y.rng, &mut y.stats, &mut o);
        assert!(r.is_err(), "flipped bit {bit} accepted");
    }
    assert!(y.stats.decrypt_failures + y.stats.unknown_session + y.stats.replays > 100);
}

#[test]
fn rekey_after_message_limit_loses_nothing() {
    let mut c = Config::lan();
    c.rekey_after_messages = 5;
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let mut got = Vec::new();
    for i in 0..30u64 {
        let out = x.send(now, 2, y.addr, ping(i));
        let (_, at_y) = pump(now, &mut x, &mut y, out, vec![]);
        got.extend(at_y);
    }
    let want: Vec<Msg> = (0..30).flat_map(ping).collect();
    assert_eq!(got, want);
    assert!(x.stats.handshakes_completed >= 3, "rekeyed several times");
}

fn forged_hello(from: u128, attempt: u64) -> Vec<u8> {
    wire::encode_hello(
        &Hello {
            from: NodeId(from),
            to: None,
            attempt,
            share: vec![0; 8],
            cookie: None,
        },
        0,
    )
}

#[test]
fn hello_flood_is_bounded() {
    let mut c = Config::lan();
    c.max_pending_handshakes = 16;
    let now = Instant::now();
    let mut y = side(2, 2, &c);
    for i in 0..1000u128 {
        deliver(now, &mut y, a(9), &forged_hello(1000 + i, i as u64));
    }
    let (peers, pending) = y.s.footprint();
    assert!(peers == 0 && pending <= 16, "footprint {peers} {pending}");
    assert!(y.stats.cookies_sent >= 984, "{:?}", y.stats);
}

#[test]
fn lost_hello_is_retransmitted() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let lost = x.send(now, 2, y.addr, ping(1));
    assert_eq!(lost.len(), 1, "one hello, lost");
    let mut out = Vec::new();
    let later = now + c.handshake_timeout;
    x.s.handle_timeout(later, &mut x.stats, &mut out);
    assert_eq!(out.len(), 1, "hello resent");
    let (_, at_y) = pump(later, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(1));
}

#[test]
fn stale_hello_does_not_break_a_working_session() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    // y (higher id) starts; its Hello is kept aside and delivered late, after the session
    // it started is up: the crossed-handshake race that used to split the epochs.
    let out = y.send(now, 1, x.addr, ping(1));
    let stale_hello = out[0].1.clone();
    let (at_x, _) = pump(now, &mut x, &mut y, vec![], out);
    assert_eq!(at_x, ping(1));
    // The stale Hello reaches x again (duplicate from the network): x answers, but must
    // keep sending on the session y uses.
    let (_, ack) = deliver(now, &mut x, y.addr, &stale_hello);
    drop(ack); // y ignores or never gets the answer
    let out = x.send(now, 2, y.addr, ping(2));
    let (_, at_y) = pump(now, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(2), "x's records still open at y");
    assert_eq!(y.stats.unknown_session, 0);
}

#[test]
fn a_peer_that_lost_its_session_heals_by_rehandshake() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let out = x.send(now, 2, y.addr, ping(1));
    pump(now, &mut x, &mut y, out, vec![]);
    x.s.remove_peer(NodeId(2)); // e.g. purged while y still considers the session live
    let out = y.send(now, 1, x.addr, ping(7));
    // x cannot open it and, not knowing the (unverified) sender, sends nothing.
    let (at_x, out) = deliver(now, &mut x, y.addr, &out[0].1);
    assert!(at_x.is_none() && out.is_empty());
    assert_eq!(x.stats.unknown_session, 1);
    // The node knows y as a member: it heals at y's recorded address.
    let mut out = Vec::new();
    x.s.heal(
        now,
        NodeId(2),
        Some(y.addr),
        &mut x.rng,
        &mut x.stats,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, y.addr);
    pump(now, &mut x, &mut y, out, vec![]);
    let out = y.send(now, 1, x.addr, ping(8));
    let (at_x, _) = pump(now, &mut x, &mut y, vec![], out);
    assert_eq!(at_x, ping(8));
}
