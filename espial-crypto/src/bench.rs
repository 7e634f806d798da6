//! Crypto microbenchmark: our record cipher next to raw aws-lc-rs, in one run.
//!
//! Figures (all single-threaded, AES-128-GCM, 32-byte associated data like a sealed
//! record header):
//! - `seal_open_ns`: one seal plus one open of a 128-byte record through our
//!   [`Aead`] wrapper (as the core calls it: `Box<dyn Aead>`, in place on a `Vec`), and
//!   `raw_seal_open_ns`: the same through aws-lc-rs `LessSafeKey` directly;
//! - bulk seal throughput in GB/s (10^9 bytes of plaintext per second) for 16 KiB and
//!   1400-byte records, ours and raw (`LessSafeKey::seal_in_place_separate_tag`).
//!
//! - `handshakes_per_s`: complete v2 handshakes per second on one core, both sides' work
//!   (Hello, HelloAck with the responder's Ed25519 proof, Confirm with the initiator's,
//!   ConfirmAck; X25519, HKDF, two signatures and two verifications) through the core's
//!   `Sessions`; and `exchange_only_per_s`: the same count of bare ephemeral exchanges
//!   (X25519 + HKDF on both sides, no identity proofs: the cryptographic cost of the v1
//!   handshake without identity keys), for comparison.
//!
//! Each figure is the median of several trials; ours and raw trials alternate so that
//! frequency changes hit both alike. No sockets are opened.

use crate::aead::GcmAead;
use crate::primitives::gcm_nonce;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use espial_core::cipher::Aead;
use std::fmt;
use std::hint::black_box;
use std::time::Instant;

/// Associated data length used by the benchmark (a sealed record's clear header).
const AAD_LEN: usize = 32;
/// Record size of the per-message figure.
pub const SMALL_RECORD: usize = 128;
/// Record sizes of the bulk figures.
pub const BULK_RECORDS: [usize; 2] = [16 * 1024, 1400];

/// Bulk seal throughput for one record size.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkFigure {
    /// Plaintext bytes per record.
    pub record_bytes: usize,
    /// Through our wrapper, GB/s (10^9 bytes/s).
    pub ours_gbps: f64,
    /// Through raw aws-lc-rs, GB/s.
    pub raw_gbps: f64,
    /// `ours_gbps / raw_gbps` (the acceptance bar is >= 0.9).
    pub ratio: f64,
}

/// The benchmark's results.
#[derive(Debug, Clone, PartialEq)]
pub struct CryptoBenchReport {
    /// Cipher suite measured.
    pub suite: &'static str,
    /// Whether the short (`quick`) variant ran.
    pub quick: bool,
    /// Trials per figure (medians are over these).
    pub trials: usize,
    /// Plaintext size of the per-message figure.
    pub small_record_bytes: usize,
    /// Seal + open of one small record through our wrapper, ns (median).
    pub seal_open_ns: f64,
    /// Seal + open of one small record through raw aws-lc-rs, ns (median).
    pub raw_seal_open_ns: f64,
    /// `raw_seal_open_ns / seal_open_ns` (1.0 = as fast as raw; higher is better).
    pub seal_open_ratio: f64,
    /// Bulk seal throughput per record size.
    pub bulk: Vec<BulkFigure>,
    /// The smallest bulk ratio (the figure held to the >= 0.9 bar).
    pub bulk_ratio_min: f64,
    /// Complete v2 handshakes per second, both sides on one core (median).
    pub handshakes_per_s: f64,
    /// Bare ephemeral exchanges (both sides, no identity proofs) per second (median).
    pub exchange_only_per_s: f64,
    /// Operations that failed (must be 0; a non-zero value means a broken build).
    pub errors: u64,
}

impl CryptoBenchReport {
    /// The report as one JSON object (no serde dependency needed).
    pub fn to_json(&self) -> String {
        let bulk: Vec<String> = self
            .bulk
            .iter()
            .map(|b| {
                format!(
                    "{{\"record_bytes\":{},\"ours_gbps\":{:.3},\"raw_gbps\":{:.3},\"ratio\":{:.3}}}",
                    b.record_bytes, b.ours_gbps, b.raw_gbps, b.ratio
                )
            })
            .collect();
        format!(
            "{{\"suite\":\"{}\",\"quick\":{},\"trials\":{},\"small_record_bytes\":{},\
             \"seal_open_ns\":{:.1},\"raw_seal_open_ns\":{:.1},\"seal_open_ratio\":{:.3},\
             \"bulk\":[{}],\"bulk_ratio_min\":{:.3},\"handshakes_per_s\":{:.0},\
             \"exchange_only_per_s\":{:.0},\"errors\":{}}}",
            self.suite,
            self.quick,
            self.trials,
            self.small_record_bytes,
            self.seal_open_ns,
            self.raw_seal_open_ns,
            self.seal_open_ratio,
            bulk.join(","),
            self.bulk_ratio_min,
            self.handshakes_per_s,
            self.exchange_only_per_s,
            self.errors
        )
    }
}

impl fmt::Display for CryptoBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crypto bench ({}, {} trials{}):",
            self.suite,
            self.trials,
            if self.quick { ", quick" } else { "" }
        )?;
        writeln!(
            f,
            "  seal+open {} B record: ours {:.0} ns, raw aws-lc-rs {:.0} ns (raw/ours {:.2})",
            self.small_record_bytes, self.seal_open_ns, self.raw_seal_open_ns, self.seal_open_ratio
        )?;
        for b in &self.bulk {
            writeln!(
                f,
                "  bulk seal {:>5} B records: ours {:.2} GB/s, raw aws-lc-rs {:.2} GB/s (ours/raw {:.3})",
                b.record_bytes, b.ours_gbps, b.raw_gbps, b.ratio
            )?;
        }
        writeln!(
            f,
            "  handshakes/s per core (v2, both sides, Ed25519 proofs): {:.0}; bare key \
             exchanges/s (no proofs): {:.0}",
            self.handshakes_per_s, self.exchange_only_per_s
        )?;
        write!(
            f,
            "  bulk ratio (min) {:.3} (bar >= 0.9); errors {}",
            self.bulk_ratio_min, self.errors
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn raw_key(key: &[u8]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_128_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

/// Seconds for `iters` seal+open pairs of a small record through our wrapper.
fn ours_seal_open(aead: &dyn Aead, aad: &[u8], iters: u64, errors: &mut u64) -> f64 {
    let mut buf = Vec::with_capacity(SMALL_RECORD + aead.tag_len());
    let start = Instant::now();
    for i in 0..iters {
        buf.clear();
        buf.resize(SMALL_RECORD, 0x5a);
        if aead.seal(i, aad, &mut buf).is_err() || aead.open(i, aad, &mut buf).is_err() {
            *errors += 1;
        }
        black_box(&buf);
    }
    start.elapsed().as_secs_f64()
}

/// Seconds for `iters` seal+open pairs of a small record through raw aws-lc-rs.
fn raw_seal_open(key: &LessSafeKey, aad: &[u8], iters: u64, errors: &mut u64) -> f64 {
    let mut buf: Vec<u8> = Vec::with_capacity(SMALL_RECORD + 16);
    let start = Instant::now();
    for i in 0..iters {
        buf.clear();
        buf.resize(SMALL_RECORD, 0x5a);
        let sealed = key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(gcm_nonce(i)),
            Aad::from(aad),
            &mut buf,
        );
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(gcm_nonce(i)),
                Aad::from(aad),
                &mut buf,
            )
            .map(|p| p.len());
        match (sealed, opened) {
            (Ok(()), Ok(n)) => buf.truncate(n),
            _ => *errors += 1,
        }
        black_box(&buf);
    }
    start.elapsed().as_secs_f64()
}

/// Seconds for `iters` seals of `len`-byte records through our wrapper.
fn ours_bulk(aead: &dyn Aead, aad: &[u8], len: usize, iters: u64, errors: &mut u64) -> f64 {
    let mut buf = vec![0x5a; len];
    buf.reserve(aead.tag_len());
    let start = Instant::now();
    for i in 0..iters {
        buf.truncate(len);
        if aead.seal(i, aad, &mut buf).is_err() {
            *errors += 1;
        }
        black_box(&buf);
    }
    start.elapsed().as_secs_f64()
}

/// Seconds for `iters` seals of `len`-byte records through raw aws-lc-rs.
fn raw_bulk(key: &LessSafeKey, aad: &[u8], len: usize, iters: u64, errors: &mut u64) -> f64 {
    let mut buf = vec![0x5a; len];
    let start = Instant::now();
    for i in 0..iters {
        match key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(gcm_nonce(i)),
            Aad::from(aad),
            &mut buf,
        ) {
            Ok(tag) => {
                let _ = black_box(tag);
            }
            Err(_) => *errors += 1,
        }
        black_box(&buf);
    }
    start.elapsed().as_secs_f64()
}

/// Runs the benchmark. `quick` takes well under a second in a release build (for tests and
/// smoke runs); the full run takes one to a few seconds and gives steadier figures.
pub fn run(quick: bool) -> CryptoBenchReport {
    let trials = if quick { 5 } else { 21 };
    let small_iters: u64 = if quick { 5_000 } else { 100_000 };
    let bulk_bytes: u64 = if quick { 8 << 20 } else { 128 << 20 };

    let key_bytes = [0x42u8; 16];
    let aad = [0xa5u8; AAD_LEN];
    let mut errors = 0u64;
    let (ours, raw): (Box<dyn Aead>, LessSafeKey) =
        match (GcmAead::new(&key_bytes), raw_key(&key_bytes)) {
            (Ok(o), Some(r)) => (Box::new(o), r),
            _ => {
                return CryptoBenchReport {
                    suite: "aes128gcm",
                    quick,
                    trials: 0,
                    small_record_bytes: SMALL_RECORD,
                    seal_open_ns: 0.0,
                    raw_seal_open_ns: 0.0,
                    seal_open_ratio: 0.0,
                    bulk: Vec::new(),
                    bulk_ratio_min: 0.0,
                    handshakes_per_s: 0.0,
                    exchange_only_per_s: 0.0,
                    errors: 1,
                }
            }
        };

    // Warm up caches, the allocator and the CPU clock.
    ours_seal_open(&*ours, &aad, small_iters / 4, &mut errors);
    raw_seal_open(&raw, &aad, small_iters / 4, &mut errors);

    let (mut o, mut r) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        o.push(ours_seal_open(&*ours, &aad, small_iters, &mut errors) * 1e9 / small_iters as f64);
        r.push(raw_seal_open(&raw, &aad, small_iters, &mut errors) * 1e9 / small_iters as f64);
    }
    let seal_open_ns = median(o);
    let raw_seal_open_ns = median(r);

    let mut bulk = Vec::new();
    for len in BULK_RECORDS {
        let iters = (bulk_bytes / len as u64).max(1);
        ours_bulk(&*ours, &aad, len, iters / 4 + 1, &mut errors);
        raw_bulk(&raw, &aad, len, iters / 4 + 1, &mut errors);
        let (mut o, mut r) = (Vec::new(), Vec::new());
        for _ in 0..trials {
            let bytes = (iters * len as u64) as f64;
            o.push(bytes / ours_bulk(&*ours, &aad, len, iters, &mut errors) / 1e9);
            r.push(bytes / raw_bulk(&raw, &aad, len, iters, &mut errors) / 1e9);
        }
        let (ours_gbps, raw_gbps) = (median(o), median(r));
        bulk.push(BulkFigure {
            record_bytes: len,
            ours_gbps,
            raw_gbps,
            ratio: if raw_gbps > 0.0 {
                ours_gbps / raw_gbps
            } else {
                0.0
            },
        });
    }
    let bulk_ratio_min = bulk.iter().map(|b| b.ratio).fold(f64::INFINITY, f64::min);

    let hs_iters: u32 = if quick { 50 } else { 500 };
    let hs_trials = if quick { 3 } else { 7 };
    let (mut h, mut x) = (Vec::new(), Vec::new());
    for _ in 0..hs_trials {
        h.push(handshakes(hs_iters, &mut errors));
        x.push(exchanges(hs_iters, &mut errors));
    }
    let handshakes_per_s = median(h);
    let exchange_only_per_s = median(x);

    CryptoBenchReport {
        suite: "aes128gcm",
        quick,
        trials,
        small_record_bytes: SMALL_RECORD,
        seal_open_ns,
        raw_seal_open_ns,
        seal_open_ratio: if seal_open_ns > 0.0 {
            raw_seal_open_ns / seal_open_ns
        } else {
            0.0
        },
        bulk,
        bulk_ratio_min,
        handshakes_per_s,
        exchange_only_per_s,
        errors,
    }
}

/// One side of the handshake benchmark.
struct HsSide {
    s: espial_core::session::Sessions,
    rng: espial_core::rng::Rng,
    stats: espial_core::Stats,
    addr: std::net::SocketAddr,
    id: espial_core::NodeId,
}

fn hs_side(i: u8, errors: &mut u64) -> Option<HsSide> {
    use espial_core::Cipher as _;
    let Ok(key) = crate::IdentityKey::generate() else {
        *errors += 1;
        return None;
    };
    let cipher = crate::AesGcmCipher::new().with_identity(key);
    let id = cipher.node_id();
    Some(HsSide {
        s: espial_core::session::Sessions::new(id, Box::new(cipher), &espial_core::Config::lan()),
        rng: espial_core::rng::Rng::new(i as u64),
        stats: espial_core::Stats::default(),
        addr: std::net::SocketAddr::from(([127, 0, 0, i], 1)),
        id,
    })
}

/// Complete v2 handshakes per second (both sides on this thread), through `Sessions`.
fn handshakes(iters: u32, errors: &mut u64) -> f64 {
    use espial_core::wire::{split_header, Msg};
    let (Some(mut a), Some(mut b)) = (hs_side(1, errors), hs_side(2, errors)) else {
        return 0.0;
    };
    // Virtual time advances 10 ms per handshake so the responder's key-exchange budget
    // never engages its cookie path (this measures the handshake, not the DoS guard).
    let mut now = std::time::Instant::now();
    let start = Instant::now();
    for _ in 0..iters {
        now += std::time::Duration::from_millis(10);
        let mut to_b = Vec::new();
        a.s.send(
            now,
            Some(b.id),
            b.addr,
            vec![Msg::Ping { seq: 1, members: 2 }],
            &mut a.rng,
            &mut a.stats,
            &mut to_b,
        );
        for _ in 0..3 {
            let mut to_a = Vec::new();
            for (_, d) in to_b.drain(..) {
                if let Ok((kind, body)) = split_header(&d, usize::MAX) {
                    let _ =
                        b.s.handle(now, a.addr, kind, body, &mut b.rng, &mut b.stats, &mut to_a);
                }
            }
            for (_, d) in to_a {
                if let Ok((kind, body)) = split_header(&d, usize::MAX) {
                    let _ =
                        a.s.handle(now, b.addr, kind, body, &mut a.rng, &mut a.stats, &mut to_b);
                }
            }
        }
        if !(a.s.has_session(b.id) && b.s.has_session(a.id)) {
            *errors += 1;
        }
        a.s.remove_peer(b.id);
        b.s.remove_peer(a.id);
    }
    iters as f64 / start.elapsed().as_secs_f64()
}

/// Bare ephemeral exchanges per second (both sides, no identity proofs).
fn exchanges(iters: u32, errors: &mut u64) -> f64 {
    use espial_core::cipher::{Cipher as _, Role};
    let (mut a, mut b) = (crate::AesGcmCipher::new(), crate::AesGcmCipher::new());
    let t = [0x11u8; 96];
    let start = Instant::now();
    for _ in 0..iters {
        let (x, y) = (a.start_exchange(), b.start_exchange());
        let (xs, ys) = (x.public_share().to_vec(), y.public_share().to_vec());
        let kx = x.complete(&ys, &t, Role::Initiator);
        let ky = y.complete(&xs, &t, Role::Responder);
        if kx.is_err() || ky.is_err() {
            *errors += 1;
        }
        let _ = black_box((kx, ky));
    }
    iters as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_run_reports_sane_figures() {
        let r = run(true);
        assert_eq!(r.errors, 0);
        assert!(r.seal_open_ns > 0.0 && r.raw_seal_open_ns > 0.0);
        assert_eq!(r.bulk.len(), 2);
        assert!(r.bulk.iter().all(|b| b.ours_gbps > 0.0 && b.raw_gbps > 0.0));
        let json = r.to_json();
        assert!(
            json.starts_with('{') && json.contains("\"bulk_ratio_min\""),
            "{json}"
        );
        assert!(r.to_string().contains("GB/s"));
        assert!(r.handshakes_per_s > 0.0 && r.exchange_only_per_s > r.handshakes_per_s);
        assert!(json.contains("\"handshakes_per_s\""));
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
