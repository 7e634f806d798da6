//! Denial of service and amplification: half-open bounds and expiry, cookies, the
//! reply-size property over every pre-session message, heals, and the PSK silence rule.

use super::tests::{a, deliver, ping, pump, side, Side};
use super::*;
use crate::cipher::{KeyExchange, PlaintextTestCipher};
use crate::rng::Rng;
use crate::wire::{Cookie, Hello, HelloAck, IdentityProof};
use proptest::prelude::*;

fn hello(from: u128, attempt: u64, cookie: Option<[u8; 16]>) -> Vec<u8> {
    wire::encode_hello(
        &Hello {
            from: NodeId(from),
            to: None,
            attempt,
            share: attempt.to_le_bytes().to_vec(),
            cookie,
        },
        0,
    )
}

/// Total bytes in `out` sent to `to`, and whether anything went elsewhere.
fn bytes_to(out: &[(SocketAddr, Vec<u8>)], to: SocketAddr) -> (usize, bool) {
    let n = out
        .iter()
        .filter(|(a, _)| *a == to)
        .map(|(_, d)| d.len())
        .sum();
    (n, out.iter().any(|(a, _)| *a != to))
}

#[test]
fn short_hellos_are_refused_silently() {
    let c = Config::lan();
    let now = Instant::now();
    let mut y = side(2, 2, &c);
    let short = wire::encode_clear(
        Kind::Hello,
        &Hello {
            from: NodeId(5),
            to: None,
            attempt: 1,
            share: vec![0; 8],
            cookie: None,
        },
    );
    assert!(short.len() < wire::HELLO_MIN_LEN);
    let (_, out) = deliver(now, &mut y, a(9), &short);
    assert!(out.is_empty());
    assert_eq!(y.stats.handshake_failures, 1);
}

#[test]
fn half_open_state_expires_and_is_evicted_oldest_first() {
    let mut c = Config::lan();
    c.max_pending_handshakes = 8;
    let now = Instant::now();
    let mut y = side(2, 2, &c);
    // An established session first: it must survive everything below.
    let mut x = side(1, 1, &c);
    let out = x.send(now, 2, y.addr, ping(1));
    pump(now, &mut x, &mut y, out, vec![]);
    assert_eq!(y.s.footprint(), (1, 0));
    // Fill past the cap (watermark = 16 > cap here, so no cookies): bounded, oldest out.
    for i in 0..9u64 {
        deliver(now, &mut y, a(50), &hello(100 + i as u128, i, None));
    }
    assert_eq!(y.s.footprint(), (1, 8));
    assert!(
        y.s.half_open.get_mut(NodeId(100), 0).is_none(),
        "oldest evicted"
    );
    assert!(y.s.half_open.get_mut(NodeId(108), 8).is_some());
    assert_eq!(y.stats.half_open_dropped, 1);
    // Past the ttl everything unconfirmed is gone; the established session stays.
    let later = now + c.handshake_timeout * HALF_OPEN_TIMEOUTS;
    assert!(y.s.poll_timeout().is_some_and(|t| t <= later));
    let mut out = Vec::new();
    y.s.handle_timeout(later, &mut y.stats, &mut out);
    assert_eq!(y.s.footprint(), (1, 0));
    let out = x.send(later, 2, y.addr, ping(2));
    let (_, at_y) = pump(later, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(2));
}

#[test]
fn under_load_a_cookie_lets_the_real_initiator_through() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    // Spoofed flood: past the watermark every cookieless Hello gets only a cookie.
    for i in 0..2_000u64 {
        let src = SocketAddr::from(([172, 16, (i >> 8) as u8, i as u8], 9));
        let h = hello(1_000 + i as u128, i, None);
        let (_, out) = deliver(now, &mut y, src, &h);
        let (n, elsewhere) = bytes_to(&out, src);
        assert!(n <= h.len() && !elsewhere);
    }
    assert!(y.stats.cookies_sent > 1_000, "{:?}", y.stats);
    let (_, half_open) = y.s.footprint();
    assert!(half_open <= (c.max_pending_handshakes / 8).max(16) + 1);
    // The real initiator gets a cookie, repeats its Hello with it, and gets through.
    let out = x.send(now, 2, y.addr, ping(7));
    let (_, at_y) = pump(now, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(7));
    assert!(x.stats.handshakes_completed == 1 && y.s.has_session(NodeId(1)));
    // A cookie for one source is worthless from another.
    let mut g = y.s.guard.take().unwrap();
    let ck = g.cookie(now, &mut y.s.guard_rng, a(1), NodeId(1), 5);
    y.s.guard = Some(g);
    let (_, out) = deliver(now, &mut y, a(3), &hello(1, 5, Some(ck)));
    assert!(out.iter().all(|(_, d)| d[3] == Kind::Cookie as u8));
}

#[test]
fn cookie_from_elsewhere_or_unknown_attempt_is_ignored() {
    let c = Config::lan();
    let now = Instant::now();
    let mut x = side(1, 1, &c);
    let out = x.send(now, 2, a(2), ping(1));
    let (_, body) = wire::split_header(&out[0].1, 1400).unwrap();
    let h: Hello = wire::decode_body(body).unwrap();
    let cookie = |attempt| {
        wire::encode_clear(
            Kind::Cookie,
            &Cookie {
                attempt,
                cookie: [7; 16],
            },
        )
    };
    let (_, o) = deliver(now, &mut x, a(9), &cookie(h.attempt));
    assert!(o.is_empty(), "not from the address we contacted");
    let (_, o) = deliver(now, &mut x, a(2), &cookie(h.attempt ^ 1));
    assert!(o.is_empty(), "unknown attempt");
    let (_, o) = deliver(now, &mut x, a(2), &cookie(h.attempt));
    assert_eq!(o.len(), 1, "one Hello with the cookie, counted as a try");
    let (_, o) = deliver(now, &mut x, a(2), &cookie(h.attempt));
    assert!(o.is_empty(), "the same cookie again gets nothing");
}

#[test]
fn heal_goes_to_the_recorded_address_never_to_the_source() {
    let c = Config::lan();
    let now = Instant::now();
    let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
    let out = x.send(now, 2, y.addr, ping(1));
    pump(now, &mut x, &mut y, out, vec![]);
    // A forged record "from" x with an unknown epoch, from a victim's address.
    let mut forged = Vec::new();
    SealedHeader {
        sender: NodeId(1),
        epoch: 0xdead,
        counter: 0,
    }
    .write(&mut forged);
    forged.extend_from_slice(&[0; 16]);
    let victim = a(77);
    let (_, out) = deliver(now, &mut y, victim, &forged);
    assert!(out.iter().all(|(to, _)| *to == x.addr), "{out:?}");
    assert_eq!(out.len(), 1, "one Hello to x's recorded address");
    // Rate-limited: a second forged record sends nothing.
    let (_, out2) = deliver(now, &mut y, victim, &forged);
    assert!(out2.is_empty());
    // An unknown sender gets nothing at all.
    let mut unknown = Vec::new();
    SealedHeader {
        sender: NodeId(99),
        epoch: 1,
        counter: 0,
    }
    .write(&mut unknown);
    unknown.extend_from_slice(&[0; 16]);
    let (_, out3) = deliver(now, &mut y, victim, &unknown);
    assert!(out3.is_empty());
    // The heal handshake retries few times, never a storm.
    let mut sent = out.len();
    for i in 1..40u32 {
        let mut o = Vec::new();
        y.s.handle_timeout(now + c.handshake_timeout * 4 * i, &mut y.stats, &mut o);
        assert!(o.iter().all(|(to, _)| *to == x.addr));
        sent += o.len();
    }
    assert!(sent <= MAX_HEAL_TRIES as usize, "{sent} Hellos");
}

/// A test cipher with a cluster "PSK": the MAC is a keyed checksum (tests only).
struct PskTest(PlaintextTestCipher, u8);
impl Cipher for PskTest {
    fn suite(&self) -> &'static str {
        "psk-test"
    }
    fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
        self.0.start_exchange()
    }
    fn identity_public_key(&self) -> Vec<u8> {
        self.0.identity_public_key()
    }
    fn node_id_for(&self, pk: &[u8]) -> Option<NodeId> {
        self.0.node_id_for(pk)
    }
    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        self.0.sign(domain, msg)
    }
    fn verify(
        &self,
        pk: &[u8],
        domain: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), crate::cipher::CryptoError> {
        self.0.verify(pk, domain, msg, sig)
    }
    fn beacon_mac(&self, data: &[u8]) -> Option<[u8; 16]> {
        let mut m = [self.1; 16];
        for (i, b) in data.iter().enumerate() {
            m[i % 16] = m[i % 16].wrapping_mul(31).wrapping_add(*b);
        }
        Some(m)
    }
    fn verify_beacon(&self, data: &[u8], mac: Option<&[u8; 16]>) -> bool {
        mac == self.beacon_mac(data).as_ref()
    }
}

fn psk_side(id: u128, i: u8, key: u8) -> Side {
    Side {
        s: Sessions::new(
            NodeId(id),
            Box::new(PskTest(PlaintextTestCipher::for_node(NodeId(id)), key)),
            &Config::lan(),
        ),
        rng: Rng::new(id as u64),
        stats: Stats::default(),
        addr: a(i),
    }
}

#[test]
fn with_a_psk_packets_without_the_key_get_no_answer_and_one_report() {
    let now = Instant::now();
    let (mut x, mut y) = (psk_side(1, 1, 1), psk_side(2, 2, 1));
    let out = x.send(now, 2, y.addr, ping(1));
    let (_, at_y) = pump(now, &mut x, &mut y, out, vec![]);
    assert_eq!(at_y, ping(1), "same key: works");
    let mut z = psk_side(3, 3, 2);
    let out = z.send(now, 2, y.addr, ping(1));
    for _ in 0..3 {
        let (_, o) = deliver(now, &mut y, z.addr, &out[0].1);
        assert!(o.is_empty());
    }
    // Reported once for that address, with the operator hint.
    let f = y.s.take_failures();
    assert_eq!(f, vec![(z.addr, "different cluster key?".to_string())]);
    // Unkeyed Hellos, cookies, acks and records get nothing either.
    for d in [hello(5, 5, None), forged_record(2)] {
        let (_, o) = deliver(now, &mut y, a(9), &d);
        assert!(o.is_empty());
    }
    // A heal needs the key too: an unknown epoch from a known peer gets nothing.
    let (_, o) = deliver(now, &mut y, a(9), &forged_record(1));
    assert!(o.is_empty());
}

fn forged_record(sender: u128) -> Vec<u8> {
    let mut d = Vec::new();
    SealedHeader {
        sender: NodeId(sender),
        epoch: 4242,
        counter: 0,
    }
    .write(&mut d);
    d.extend_from_slice(&[1; 24]);
    d
}

/// One pre-session datagram an attacker can send (fields arbitrary).
fn pre_session() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![Just(1u128), Just(2u128), any::<u128>()];
    let share = proptest::collection::vec(any::<u8>(), 0..40);
    let hello = (
        id.clone(),
        any::<u64>(),
        share.clone(),
        any::<Option<[u8; 16]>>(),
        0usize..400,
    )
        .prop_map(|(from, attempt, share, cookie, cut)| {
            let mut d = wire::encode_hello(
                &Hello {
                    from: NodeId(from),
                    to: None,
                    attempt,
                    share,
                    cookie,
                },
                0,
            );
            d.truncate(d.len().saturating_sub(cut).max(4));
            d
        });
    let ack = (id.clone(), any::<u64>(), any::<u32>(), share.clone()).prop_map(
        |(from, attempt, epoch, share)| {
            wire::encode_clear(
                Kind::HelloAck,
                &HelloAck {
                    from: NodeId(from),
                    to: NodeId(2),
                    attempt,
                    epoch,
                    share,
                    identity: IdentityProof {
                        public_key: vec![1; 32],
                        signature: vec![2; 64],
                    },
                    confirm: vec![0; 8],
                },
            )
        },
    );
    let cookie = (any::<u64>(), any::<[u8; 16]>()).prop_map(|(attempt, cookie)| {
        wire::encode_clear(Kind::Cookie, &Cookie { attempt, cookie })
    });
    let sealed = (
        id,
        any::<u32>(),
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(sender, epoch, counter, ct)| {
            let mut d = Vec::new();
            SealedHeader {
                sender: NodeId(sender),
                epoch,
                counter,
            }
            .write(&mut d);
            d.extend_from_slice(&ct);
            d
        });
    prop_oneof![hello, ack, cookie, sealed]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// reply_len <= request_len for every pre-session message, to the datagram's source;
    /// anything else only goes to an established peer's recorded address (a heal).
    #[test]
    fn no_pre_session_message_is_amplified(dgrams in proptest::collection::vec(pre_session(), 1..20)) {
        let c = Config::lan();
        let now = Instant::now();
        // y has a session with x (id 1) and a handshake of its own in flight to a(3).
        let (mut x, mut y) = (side(1, 1, &c), side(2, 2, &c));
        let out = x.send(now, 2, y.addr, ping(1));
        pump(now, &mut x, &mut y, out, vec![]);
        y.send(now, 3, a(3), ping(1));
        let src = a(66);
        for (i, d) in dgrams.iter().enumerate() {
            let t = now + Duration::from_millis(i as u64);
            let Ok((kind, body)) = wire::split_header(d, 1400) else { continue };
            let mut out = Vec::new();
            let _ = y.s.handle(t, src, kind, body, &mut y.rng, &mut y.stats, &mut out);
            let to_src: usize = out.iter().filter(|(a, _)| *a == src).map(|(_, d)| d.len()).sum();
            prop_assert!(to_src <= d.len(), "{} bytes for {} ({kind:?})", to_src, d.len());
            prop_assert!(out.iter().all(|(a, _)| *a == src || *a == x.addr));
        }
    }
}
