//! Who may say what about a member: the authentication rules for membership statements, in
//! one place (docs/PROTOCOL.md, "Membership statements", says the same).
//!
//! - **Only X can say X is alive at an address, incarnation, metadata and subscriptions.**
//!   `Update::Alive` carries X's signature (domain [`ALIVE_DOMAIN`]) over the exact postcard
//!   encoding of the entry; the entry's `public_key` must derive X's id. The same signed
//!   entry is used in `JoinRequest` and `JoinAccept`.
//! - **Only X can say X left.** `Update::Left` carries X's signature (domain [`LEFT_DOMAIN`])
//!   over `id (16 bytes, big-endian) || incarnation (8 bytes, big-endian)`, verified with the
//!   key of X's entry as the receiver knows it (unknown X: ignored, nothing to remove). A
//!   `Left` that X sends itself, over its own session (bound to X's key by the handshake
//!   proofs), is applied on that authentication; its signature is verified at the
//!   receiver's next timer, before it is forwarded (gossip or state), and never forwarded
//!   if it fails (counted). A `Left` about X from anyone else is verified before anything.
//! - **Anyone may only suspect.** `Suspect` and `Dead` are unsigned. They never change X's
//!   stored incarnation (only X's signed entry does); a `Dead` received from someone else is
//!   applied as a suspicion: the receiver removes X only when its own suspicion expires after
//!   its own checks.
//! - **Incarnations are checked.** Arithmetic on incarnations is checked (no overflow on any
//!   input). A node refutes a suspicion of itself by publishing `max(own, claimed) + 1`, but
//!   adopts a claimed incarnation more than [`MAX_INCARNATION_JUMP`] above its own only from
//!   its own signed statement (an earlier life with the same key); otherwise it publishes
//!   `own + 1`, which suffices because nobody's stored incarnation for it moved.
//!
//! Receivers verify before forwarding, and before applying (except X's own `Left`, above);
//! they forward only what they applied. A statement that fails is dropped and counted in
//! `Stats::statements_rejected`. Verification is done at most once per new statement: a
//! statement older than or equal to what a node stores is ignored before any signature work
//! (the stored entry and signature are the cache of the last verified statement per member).

use crate::cipher::Cipher;
use crate::wire::SignedEntry;
use crate::{NodeId, NodeInfo};

/// Signature domain of `Update::Alive` entries.
pub const ALIVE_DOMAIN: &[u8] = crate::cipher::DOMAIN_ALIVE;
/// Signature domain of `Update::Left`.
pub const LEFT_DOMAIN: &[u8] = crate::cipher::DOMAIN_LEFT;
/// Largest incarnation jump a node accepts from someone else's (unsigned) statement about it.
pub const MAX_INCARNATION_JUMP: u64 = 1 << 20;

/// Why a statement was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The public key is malformed or does not derive the subject's id.
    KeyMismatch,
    /// The signature does not verify.
    BadSignature,
    /// The subject's key is unknown (a `Left` about a member never seen).
    UnknownAuthor,
}

/// The bytes an `Alive` signature covers: the entry's postcard encoding.
pub fn alive_message(entry: &NodeInfo) -> Vec<u8> {
    postcard::to_allocvec(entry).unwrap_or_default()
}

/// The bytes a `Left` signature covers: id (16, big-endian) then incarnation (8, big-endian).
pub fn left_message(id: NodeId, incarnation: u64) -> [u8; 24] {
    let mut m = [0u8; 24];
    m[..16].copy_from_slice(&id.to_bytes());
    m[16..].copy_from_slice(&incarnation.to_be_bytes());
    m
}

/// Signs our own entry.
pub fn sign_alive(cipher: &dyn Cipher, entry: &NodeInfo) -> SignedEntry {
    let signature = sign(cipher, ALIVE_DOMAIN, &alive_message(entry));
    SignedEntry {
        entry: entry.clone(),
        signature,
    }
}

/// Signs our own departure.
pub fn sign_left(cipher: &dyn Cipher, id: NodeId, incarnation: u64) -> Vec<u8> {
    sign(cipher, LEFT_DOMAIN, &left_message(id, incarnation))
}

/// Checks that `key` is the identity key behind `id`.
pub fn key_matches(cipher: &dyn Cipher, key: &[u8], id: NodeId) -> bool {
    cipher.node_id_for(key) == Some(id)
}

/// Verifies a signed entry: its key derives its id and the signature covers the entry.
pub fn verify_alive(cipher: &dyn Cipher, s: &SignedEntry) -> Result<(), Refused> {
    if !key_matches(cipher, &s.entry.public_key, s.entry.id) {
        return Err(Refused::KeyMismatch);
    }
    verify(
        cipher,
        &s.entry.public_key,
        ALIVE_DOMAIN,
        &alive_message(&s.entry),
        &s.signature,
    )
}

/// Verifies a `Left` with the subject's key as known by the receiver (`None`: unknown).
pub fn verify_left(
    cipher: &dyn Cipher,
    key: Option<&[u8]>,
    id: NodeId,
    incarnation: u64,
    signature: &[u8],
) -> Result<(), Refused> {
    let key = key.ok_or(Refused::UnknownAuthor)?;
    if !key_matches(cipher, key, id) {
        return Err(Refused::KeyMismatch);
    }
    verify(
        cipher,
        key,
        LEFT_DOMAIN,
        &left_message(id, incarnation),
        signature,
    )
}

/// The incarnation a node publishes to refute someone's suspicion (or failure or leave
/// notice) of it at `claimed`, when its own is `mine`. `signed_by_me`: the claim comes from
/// our own signature (an earlier life), so any jump is ours. `None`: nothing to do (stale
/// claim) or impossible (`u64::MAX` reached: the node cannot refute and says so in stats).
/// Returns the new incarnation and whether the claim was implausible (clamped to `mine + 1`).
pub fn refutation(mine: u64, claimed: u64, signed_by_me: bool) -> Option<(u64, bool)> {
    if claimed < mine {
        return None;
    }
    let plausible = signed_by_me || claimed - mine <= MAX_INCARNATION_JUMP;
    let base = if plausible { claimed } else { mine };
    match base.checked_add(1) {
        Some(n) => Some((n, !plausible)),
        None => mine.checked_add(1).map(|n| (n, true)),
    }
}

fn sign(cipher: &dyn Cipher, domain: &[u8], msg: &[u8]) -> Vec<u8> {
    cipher.sign(domain, msg)
}

fn verify(
    cipher: &dyn Cipher,
    key: &[u8],
    domain: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), Refused> {
    cipher
        .verify(key, domain, msg, sig)
        .map_err(|_| Refused::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refutation_is_checked_and_bounded() {
        assert_eq!(refutation(5, 4, false), None, "stale");
        assert_eq!(refutation(5, 5, false), Some((6, false)));
        assert_eq!(refutation(5, 9, false), Some((10, false)));
        assert_eq!(
            refutation(5, u64::MAX, false),
            Some((6, true)),
            "implausible: clamped"
        );
        assert_eq!(
            refutation(5, u64::MAX, true),
            Some((6, true)),
            "no overflow"
        );
        assert_eq!(refutation(u64::MAX, u64::MAX, true), None);
        assert_eq!(
            refutation(0, MAX_INCARNATION_JUMP, false),
            Some((MAX_INCARNATION_JUMP + 1, false))
        );
        assert_eq!(refutation(0, 1 << 40, true), Some(((1 << 40) + 1, false)));
    }

    #[test]
    fn left_message_layout() {
        let m = left_message(NodeId(0x0102), 0x0304);
        assert_eq!(&m[14..16], &[1, 2]);
        assert_eq!(&m[22..24], &[3, 4]);
    }
}
