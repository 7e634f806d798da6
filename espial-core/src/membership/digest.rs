//! Anti-entropy digests: one small record per member and keyed hashes, so that two nodes
//! find out cheaply whether their views differ and where (docs/PROTOCOL.md, "Anti-entropy").
//!
//! Nothing here applies anything. A digest only decides which signed entries a node sends or
//! asks for; what arrives is a `State` chunk whose statements are verified like any other
//! (`membership::statements`). A lying member's digest can therefore make a node send it
//! entries, or ask it for entries (which it cannot forge), never drop or overwrite one.
//!
//! Hashes are SipHash-2-4 keyed with `(round, DIGEST_K1)`, where `round` is the random id of
//! the exchange chosen by the offering node: a member that crafts entries in advance cannot
//! aim at a collision under a key it does not know yet. A collision would only make one
//! exchange miss a difference (the next one uses another key).

use super::{Liveness, Member};
use crate::session::guard::siphash24;
use crate::wire::{DigestChunk, DigestRecord, DigestStatus};
use crate::NodeId;

/// Second word of every digest hash key (`"digest-1"` read as a big-endian u64); the first
/// word is the exchange's `round`.
pub const DIGEST_K1: u64 = u64::from_be_bytes(*b"digest-1");

/// Bytes of one record in the view hash: id (16) + incarnation (8) + status (1) + hash (4).
const VIEW_RECORD_LEN: usize = 29;

/// The digest status of a liveness.
pub fn status_of(state: Liveness) -> DigestStatus {
    match state {
        Liveness::Alive => DigestStatus::Alive,
        Liveness::Suspect { .. } => DigestStatus::Suspect,
        Liveness::Dead { .. } => DigestStatus::Dead,
        Liveness::Left { .. } => DigestStatus::Left,
    }
}

/// Alive or suspected: the entry is worth sending to a node that lacks the member.
pub fn is_live(s: DigestStatus) -> bool {
    matches!(s, DigestStatus::Alive | DigestStatus::Suspect)
}

/// A record's `hash`: the first 4 bytes of the little-endian SipHash-2-4 `(round,
/// DIGEST_K1)` of the stored entry's signature (which covers the whole entry: two entries
/// of one member at one incarnation with different content have different signatures).
pub fn entry_hash(round: u64, signature: &[u8]) -> [u8; 4] {
    let h = siphash24(round, DIGEST_K1, signature).to_le_bytes();
    [h[0], h[1], h[2], h[3]]
}

/// The record of a stored member.
pub fn record(round: u64, m: &Member) -> DigestRecord {
    DigestRecord {
        id: m.info.id,
        incarnation: m.info.incarnation,
        status: status_of(m.state),
        hash: entry_hash(round, &m.signature),
    }
}

/// The record of the local node (alive at its own incarnation, its own signature).
pub fn self_record(round: u64, id: NodeId, incarnation: u64, signature: &[u8]) -> DigestRecord {
    DigestRecord {
        id,
        incarnation,
        status: DigestStatus::Alive,
        hash: entry_hash(round, signature),
    }
}

/// The view hash: SipHash-2-4 `(round, DIGEST_K1)`, 8 bytes little-endian, over the
/// concatenation, in ascending id order, of every **live** record (alive or suspected, the
/// local node included) as `id (16, BE) || incarnation (8, BE) || status (1) || hash (4)`.
/// Failed and departed members are left out: a node that never knew (or already purged) a
/// dead member has nothing to learn from it.
pub fn view_hash<'a>(round: u64, records: impl Iterator<Item = &'a DigestRecord>) -> [u8; 8] {
    let mut buf = Vec::new();
    for r in records.filter(|r| is_live(r.status)) {
        buf.reserve(VIEW_RECORD_LEN);
        buf.extend_from_slice(&r.id.0.to_be_bytes());
        buf.extend_from_slice(&r.incarnation.to_be_bytes());
        buf.push(r.status as u8);
        buf.extend_from_slice(&r.hash);
    }
    siphash24(round, DIGEST_K1, &buf).to_le_bytes()
}

/// Whether a received chunk is well formed: `lo <= hi`, records strictly ascending by id and
/// all within `lo..=hi`. Anything else is refused whole (no partial use).
pub fn chunk_ok(c: &DigestChunk) -> bool {
    if c.lo > c.hi {
        return false;
    }
    let mut prev: Option<NodeId> = None;
    for r in &c.records {
        if r.id < c.lo || r.id > c.hi || prev.is_some_and(|p| r.id <= p) {
            return false;
        }
        prev = Some(r.id);
    }
    true
}

/// What a comparison found: members whose entry to send to the peer (we know better, or it
/// lacks them), and members whose entry to ask it for (it knows better, or we lack them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Differences {
    /// Send our entry for these (by id).
    pub send: Vec<NodeId>,
    /// Ask the peer for these (by id).
    pub want: Vec<NodeId>,
}

/// Compares our records with the peer's over one range (both sorted by id, strictly
/// ascending, as [`chunk_ok`] checks). Per member, `(incarnation, status)` decides who knows
/// better (a later status wins at the same incarnation: alive < suspect < dead < left); a
/// member only one side holds is sent or asked for only when it is live there (a dead or
/// departed record tells a node that never knew the member nothing). The same incarnation
/// and status with another hash is acted on only for the local node `me` (another life under
/// the same key published other content: ask for it, so that the node can publish above it);
/// for anyone else neither copy is newer, as with gossip, and nothing is done.
pub fn compare(me: NodeId, mine: &[DigestRecord], theirs: &[DigestRecord]) -> Differences {
    let mut d = Differences::default();
    let (mut i, mut j) = (0, 0);
    loop {
        match (mine.get(i), theirs.get(j)) {
            (None, None) => break,
            (Some(a), b) if b.is_none_or(|b| a.id < b.id) => {
                if is_live(a.status) {
                    d.send.push(a.id);
                }
                i += 1;
            }
            (a, Some(b)) if a.is_none_or(|a| b.id < a.id) => {
                if is_live(b.status) {
                    d.want.push(b.id);
                }
                j += 1;
            }
            (Some(a), Some(b)) => {
                let ours = (a.incarnation, a.status);
                let theirs = (b.incarnation, b.status);
                if ours > theirs {
                    d.send.push(a.id);
                } else if theirs > ours || (a.id == me && a.hash != b.hash) {
                    d.want.push(a.id);
                }
                i += 1;
                j += 1;
            }
            // Unreachable: the arms above cover every pair (kept total, no panic).
            _ => break,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u128, incarnation: u64, status: DigestStatus, h: u8) -> DigestRecord {
        DigestRecord {
            id: NodeId(id),
            incarnation,
            status,
            hash: [h; 4],
        }
    }

    #[test]
    fn compare_finds_both_directions() {
        use DigestStatus::*;
        let me = NodeId(5);
        let mine = [
            rec(1, 3, Alive, 0),   // theirs older: send
            rec(2, 3, Alive, 0),   // theirs suspect at 3: want
            rec(3, 1, Dead, 0),    // they lack it, dead: nothing
            rec(4, 1, Alive, 0),   // they lack it: send
            rec(5, 2, Alive, 1),   // me, other content at my incarnation: want
            rec(7, 9, Alive, 0),   // same everywhere: nothing
            rec(8, 1, Suspect, 3), // other hash, not me: nothing
        ];
        let theirs = [
            rec(1, 2, Alive, 0),
            rec(2, 3, Suspect, 0),
            rec(5, 2, Alive, 2),
            rec(6, 4, Alive, 0), // we lack it: want
            rec(7, 9, Alive, 0),
            rec(8, 1, Suspect, 4),
            rec(9, 2, Left, 0), // we lack it, left: nothing
        ];
        let d = compare(me, &mine, &theirs);
        assert_eq!(d.send, vec![NodeId(1), NodeId(4)]);
        assert_eq!(d.want, vec![NodeId(2), NodeId(5), NodeId(6)]);
        assert_eq!(compare(me, &mine, &mine), Differences::default());
    }

    #[test]
    fn malformed_chunks_are_refused() {
        use DigestStatus::*;
        let mut c = DigestChunk {
            round: 1,
            claim: None,
            claim_signature: Vec::new(),
            master_alive: false,
            max_term: 0,
            lo: NodeId(10),
            hi: NodeId(20),
            records: vec![rec(10, 1, Alive, 0), rec(20, 1, Alive, 0)],
            index: 0,
            total: 1,
        };
        assert!(chunk_ok(&c));
        c.records.swap(0, 1);
        assert!(!chunk_ok(&c), "unsorted");
        c.records = vec![rec(12, 1, Alive, 0), rec(12, 2, Alive, 0)];
        assert!(!chunk_ok(&c), "duplicate id");
        c.records = vec![rec(21, 1, Alive, 0)];
        assert!(!chunk_ok(&c), "outside the range");
        c.records.clear();
        c.lo = NodeId(30);
        assert!(!chunk_ok(&c), "empty range");
    }

    #[test]
    fn view_hash_ignores_dead_records_and_depends_on_the_key() {
        use DigestStatus::*;
        let live = [rec(1, 1, Alive, 0), rec(2, 1, Suspect, 0)];
        let with_dead = [
            rec(1, 1, Alive, 0),
            rec(2, 1, Suspect, 0),
            rec(3, 1, Dead, 0),
        ];
        assert_eq!(view_hash(7, live.iter()), view_hash(7, with_dead.iter()));
        assert_ne!(view_hash(7, live.iter()), view_hash(8, live.iter()));
        let other = [rec(1, 1, Alive, 0), rec(2, 1, Alive, 0)];
        assert_ne!(view_hash(7, live.iter()), view_hash(7, other.iter()));
        assert_ne!(entry_hash(1, b"sig"), entry_hash(2, b"sig"));
    }
}
