//! Unverified discovery: addresses announced by open multicast beacons, which anyone on the
//! link can forge — including from the victim's own address naming itself, the one form the
//! source-address check lets through. Without care every member would answer each forged
//! beacon with padded Hellos and retries (3 members × 8 tries × 320 B for one 35 B beacon).
//!
//! The rules, each bounding the bytes a node sends toward an address that has not answered
//! by what that address itself sent (amplification ≤ 1×):
//! - Beacons are padded to at least `wire::HELLO_MIN_LEN` bytes (`espial_net::multicast`),
//!   so one beacon is as large as the Hello it may cause.
//! - One member of a cluster answers an announcement: the live member (this node included)
//!   with the lowest `designation_rank(addr, id)`; the rank is a keyed hash an attacker
//!   cannot steer, so it cannot make every member answer. A node alone answers itself.
//! - That member sends one Hello, no retries, at most once per announcement and per join
//!   gap; the reconnect loop never retries an unverified seed (loss is covered by the
//!   newcomer, which hears our beacons and joins us itself).

use super::Node;
use crate::session::guard::siphash24;
use crate::NodeId;
use std::net::SocketAddr;
use std::time::Instant;

/// Fixed SipHash key of the designation rank ("espial-beacon-rk"): every node must compute
/// the same rank. An attacker knows it but chooses neither the members' ids nor, once it
/// spoofs the victim's own address, the address.
const RANK_KEY: (u64, u64) = (0x6573_7069_616c_2d62, 0x6561_636f_6e2d_726b);

/// The rank of member `id` for answering an announcement of `addr` (lowest answers).
///
/// ```
/// # use espial_core::{node::designation_rank, NodeId};
/// let a = "127.0.0.9:7000".parse().unwrap();
/// assert_eq!(designation_rank(a, NodeId(1)), designation_rank(a, NodeId(1)));
/// assert_ne!(designation_rank(a, NodeId(1)), designation_rank(a, NodeId(2)));
/// ```
pub fn designation_rank(addr: SocketAddr, id: NodeId) -> u64 {
    let mut m = Vec::with_capacity(16 + 18);
    m.extend_from_slice(&id.0.to_be_bytes());
    match addr {
        SocketAddr::V4(a) => m.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => m.extend_from_slice(&a.ip().octets()),
    }
    m.extend_from_slice(&addr.port().to_be_bytes());
    siphash24(RANK_KEY.0, RANK_KEY.1, &m)
}

impl Node {
    /// An unverified announcement of `addr` (see the module doc).
    pub(super) fn discovered_unverified(&mut self, now: Instant, addr: SocketAddr) {
        if addr == self.me.addr || self.seed_refused(now, addr) {
            return;
        }
        let last = self.note_seed(now, addr, true);
        if self.members.live_at(addr).is_some() || !self.designated_for(addr) {
            return;
        }
        if last.is_none_or(|t| now >= t + self.join_gap()) {
            self.try_join(now, addr, true);
        }
    }

    /// Whether this node is the live member that answers an announcement of `addr`.
    pub(super) fn designated_for(&self, addr: SocketAddr) -> bool {
        let mine = designation_rank(addr, self.me.id);
        self.members
            .live_ids()
            .iter()
            .all(|id| designation_rank(addr, *id) > mine)
    }
}
