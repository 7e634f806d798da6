//! Tests of the delivery engine: scenarios on a simulated network (`harness`), property
//! tests under random faults (`prop`), and decode-safety fuzzing of `handle_frame` (`fuzz`).

mod chaos;
mod decline;
mod flow;
mod fuzz;
mod harness;
mod prop;
mod scenarios;

use bytes::Bytes;

/// A payload that names its sender and index and whose every byte can be checked.
pub(super) fn payload(sender: usize, k: u32, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len.max(8));
    v.extend_from_slice(&(sender as u32).to_be_bytes());
    v.extend_from_slice(&k.to_be_bytes());
    let mut j = 0u32;
    while v.len() < len {
        v.push((k.wrapping_mul(31) ^ j.wrapping_mul(7) ^ sender as u32) as u8);
        j += 1;
    }
    Bytes::from(v)
}

/// Checks a payload made by [`payload`] and returns its `(sender, index)`.
pub(super) fn check_payload(b: &[u8]) -> (usize, u32) {
    assert!(b.len() >= 8, "payload too short");
    let sender = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let k = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let expect = payload(sender, k, b.len());
    assert!(expect == b, "payload {sender}/{k} corrupted");
    (sender, k)
}
