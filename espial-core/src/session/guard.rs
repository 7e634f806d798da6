//! Denial-of-service guard for the responder: stateless cookies (WireGuard-style) and the
//! key-exchange budgets.
//!
//! A Hello costs the responder a key exchange and a signature. While the responder is not
//! under load it answers every well-formed Hello. It is *under load* when the unverified
//! half-open table passes its watermark or the unverified key-exchange budget (a global
//! token bucket) is spent; then a Hello without a valid cookie gets only a small [`Cookie`]
//! reply (no state, no key work), and the initiator repeats its Hello with the cookie,
//! proving it receives at its source address. Cookie-verified Hellos draw on a separate
//! global budget and on a per-source-IP budget, so spoofed floods cannot starve them and
//! one real source cannot take the whole verified budget.
//!
//! [`Cookie`]: crate::wire::Cookie

use crate::rng::Rng;
use crate::NodeId;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The cookie secret rotates this often; cookies of the current and previous secret are
/// accepted (so a cookie lives 120 to 240 s).
pub const COOKIE_ROTATION: Duration = Duration::from_secs(120);
/// Unverified key exchanges: sustained rate per second and burst.
pub const UNVERIFIED_RATE: f64 = 200.0;
/// Burst of the unverified budget.
pub const UNVERIFIED_BURST: f64 = 400.0;
/// Cookie-verified key exchanges: sustained rate per second and burst (all sources).
pub const VERIFIED_RATE: f64 = 1_000.0;
/// Burst of the verified budget.
pub const VERIFIED_BURST: f64 = 1_000.0;
/// Cookie-verified key exchanges per source IP: rate per second and burst.
pub const PER_SOURCE_RATE: f64 = 20.0;
/// Burst of the per-source budget.
pub const PER_SOURCE_BURST: f64 = 20.0;
/// Source IPs tracked by the per-source budget (oldest entry evicted when full).
pub const MAX_SOURCES: usize = 4_096;

/// A token bucket refilled by elapsed (virtual) time.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(now: Instant, burst: f64) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do with a Hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Run the key exchange; `verified` = it carried a valid cookie.
    Exchange {
        /// The Hello carried a valid cookie (it counts against the verified budgets).
        verified: bool,
    },
    /// Under load and no valid cookie: answer with a cookie only.
    SendCookie,
    /// A valid cookie but its budget is spent: drop (the initiator retries).
    Refuse,
}

/// Cookie secrets and key-exchange budgets of one node.
pub struct Guard {
    secret: [u64; 4],
    previous: Option<[u64; 4]>,
    rotated: Instant,
    unverified: Bucket,
    verified: Bucket,
    sources: BTreeMap<IpAddr, Bucket>,
}

impl Guard {
    /// A guard with a fresh secret from the node's (seeded) rng.
    pub fn new(now: Instant, rng: &mut Rng) -> Self {
        Guard {
            secret: fresh_secret(rng),
            previous: None,
            rotated: now,
            unverified: Bucket::full(now, UNVERIFIED_BURST),
            verified: Bucket::full(now, VERIFIED_BURST),
            sources: BTreeMap::new(),
        }
    }

    fn rotate(&mut self, now: Instant, rng: &mut Rng) {
        if now.saturating_duration_since(self.rotated) >= COOKIE_ROTATION {
            let gap = now.saturating_duration_since(self.rotated);
            self.previous = (gap < COOKIE_ROTATION * 2).then_some(self.secret);
            self.secret = fresh_secret(rng);
            self.rotated = now;
        }
    }

    /// The cookie for a Hello from `addr` claiming `id` with `attempt`.
    pub fn cookie(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        addr: SocketAddr,
        id: NodeId,
        attempt: u64,
    ) -> [u8; 16] {
        self.rotate(now, rng);
        cookie_mac(&self.secret, addr, id, attempt)
    }

    fn cookie_valid(&self, addr: SocketAddr, id: NodeId, attempt: u64, c: &[u8; 16]) -> bool {
        let ok = |s: &[u64; 4]| ct_eq(&cookie_mac(s, addr, id, attempt), c);
        ok(&self.secret) || self.previous.as_ref().is_some_and(ok)
    }

    /// Decides whether a Hello may cost a key exchange. `half_open_unverified` and
    /// `watermark` describe the unverified half-open table.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        addr: SocketAddr,
        id: NodeId,
        attempt: u64,
        cookie: Option<&[u8; 16]>,
        half_open_unverified: usize,
        watermark: usize,
    ) -> Admit {
        self.rotate(now, rng);
        if let Some(c) = cookie {
            if self.cookie_valid(addr, id, attempt, c) {
                let ip = addr.ip();
                if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
                    self.evict_source(now);
                }
                let src = self
                    .sources
                    .entry(ip)
                    .or_insert_with(|| Bucket::full(now, PER_SOURCE_BURST));
                if !src.take(now, PER_SOURCE_RATE, PER_SOURCE_BURST) {
                    return Admit::Refuse;
                }
                if !self.verified.take(now, VERIFIED_RATE, VERIFIED_BURST) {
                    return Admit::Refuse;
                }
                return Admit::Exchange { verified: true };
            }
        }
        if half_open_unverified >= watermark {
            return Admit::SendCookie;
        }
        if self.unverified.take(now, UNVERIFIED_RATE, UNVERIFIED_BURST) {
            Admit::Exchange { verified: false }
        } else {
            Admit::SendCookie
        }
    }

    /// Drops idle (refilled) per-source entries, else the least recently used one.
    fn evict_source(&mut self, now: Instant) {
        self.sources.retain(|_, b| {
            b.refill(now, PER_SOURCE_RATE, PER_SOURCE_BURST);
            b.tokens < PER_SOURCE_BURST
        });
        if self.sources.len() >= MAX_SOURCES {
            if let Some(ip) = self
                .sources
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(ip, _)| *ip)
            {
                self.sources.remove(&ip);
            }
        }
    }

    /// Number of tracked sources (for bound tests).
    pub fn sources_len(&self) -> usize {
        self.sources.len()
    }
}

fn fresh_secret(rng: &mut Rng) -> [u64; 4] {
    [
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
    ]
}

/// `cookie = SipHash-2-4(k0,k1; m) ‖ SipHash-2-4(k2,k3; m)` (little-endian), where
/// `m = ip (16 bytes, IPv4 as IPv4-mapped IPv6) ‖ port (2, big-endian) ‖ id (16, big-endian)
/// ‖ attempt (8, big-endian)`. SipHash is a PRF keyed by the secret: without it nobody
/// can compute a cookie for an address they do not receive at.
pub fn cookie_mac(secret: &[u64; 4], addr: SocketAddr, id: NodeId, attempt: u64) -> [u8; 16] {
    let mut m = Vec::with_capacity(42);
    let ip = match addr.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    m.extend_from_slice(&ip.octets());
    m.extend_from_slice(&addr.port().to_be_bytes());
    m.extend_from_slice(&id.to_bytes());
    m.extend_from_slice(&attempt.to_be_bytes());
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&siphash24(secret[0], secret[1], &m).to_le_bytes());
    out[8..].copy_from_slice(&siphash24(secret[2], secret[3], &m).to_le_bytes());
    out
}

/// Constant-time comparison of two cookies.
fn ct_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SipHash-2-4 with a 128-bit key `(k0, k1)`, 64-bit output (Aumasson & Bernstein).
pub fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let m = u64::from_le_bytes(b);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let m = u64::from_le_bytes(last) | ((msg.len() as u64 & 0xff) << 56);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siphash_reference_vectors() {
        // Reference key 00..0f; vectors from the SipHash paper's appendix / reference code.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn cookie_binds_address_id_and_attempt_and_rotates() {
        let t0 = Instant::now();
        let mut rng = Rng::new(1);
        let mut g = Guard::new(t0, &mut rng);
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let b: SocketAddr = "10.0.0.1:6".parse().unwrap();
        let c = g.cookie(t0, &mut rng, a, NodeId(1), 7);
        assert!(g.cookie_valid(a, NodeId(1), 7, &c));
        assert!(!g.cookie_valid(b, NodeId(1), 7, &c));
        assert!(!g.cookie_valid(a, NodeId(2), 7, &c));
        assert!(!g.cookie_valid(a, NodeId(1), 8, &c));
        // Still valid one rotation later, gone after two.
        g.rotate(t0 + COOKIE_ROTATION, &mut rng);
        assert!(g.cookie_valid(a, NodeId(1), 7, &c));
        g.rotate(t0 + COOKIE_ROTATION * 2, &mut rng);
        assert!(!g.cookie_valid(a, NodeId(1), 7, &c));
    }

    #[test]
    fn per_source_table_is_bounded() {
        let t0 = Instant::now();
        let mut rng = Rng::new(2);
        let mut g = Guard::new(t0, &mut rng);
        for i in 0..(MAX_SOURCES as u32 + 1) {
            let addr = SocketAddr::from((std::net::Ipv4Addr::from(i), 1));
            let c = g.cookie(t0, &mut rng, addr, NodeId(1), 1);
            let now = t0 + Duration::from_millis(i as u64);
            let r = g.admit(now, &mut rng, addr, NodeId(1), 1, Some(&c), 0, 10);
            assert_ne!(r, Admit::SendCookie);
        }
        assert!(g.sources_len() <= MAX_SOURCES);
    }
}
