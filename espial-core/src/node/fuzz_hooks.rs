//! Entry points for the fuzz harnesses (`espial_core::fuzzing`, `fuzz/`): member messages
//! handled as if authenticated, members added without checks. Hidden from the docs; never
//! used by the library itself.

use super::Node;
use crate::wire::Msg;
use crate::NodeId;
use std::net::SocketAddr;
use std::time::Instant;

impl Node {
    /// Fuzzing only: adds a member as if this node had accepted it (no checks at all).
    #[doc(hidden)]
    pub fn fuzz_add_member(&mut self, now: Instant, s: crate::wire::SignedEntry) {
        let applied = self.members.apply_alive(now, s);
        self.on_applied(now, applied, None);
        self.flush(now);
    }

    /// Fuzzing only: handles one message as if it came from `from` at `addr` over an
    /// authenticated session (see `espial_core::fuzzing`).
    #[doc(hidden)]
    pub fn fuzz_as_member(&mut self, now: Instant, from: NodeId, addr: SocketAddr, msg: Msg) {
        if self.left || from == self.me.id {
            return;
        }
        self.dispatch(now, from, addr, msg);
        self.deferred_flush = Some(now);
    }

    /// Fuzzing only: the round of an open anti-entropy offer to `peer` (one is made if none
    /// is open), so a harness can answer it as that member would.
    #[doc(hidden)]
    pub fn fuzz_digest_round(&mut self, now: Instant, peer: NodeId) -> u64 {
        self.open_round_to(now, peer)
    }
}
