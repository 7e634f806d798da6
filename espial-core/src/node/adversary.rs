//! **Test-only hook for adversary simulation** (`espial-sim`, the attack suite in `tests/`).
//!
//! An admitted member that lies is an honest `Node` whose outgoing messages are crafted by
//! the test: [`Node::adversary_send`] seals whatever it is given over this node's own
//! session, bypassing every rule. Nothing in espial calls it; it is hidden from the docs and
//! gives a test no power a modified binary would not have (it only uses our own keys).

use super::Node;
use crate::wire::Msg;
use crate::NodeId;
use std::net::SocketAddr;
use std::time::Instant;

impl Node {
    /// **Adversary tests only.** Seals `msgs` exactly as given to `to` at `addr` over this
    /// node's own session (a handshake starts first when none exists). The transmits come
    /// out of [`Node::poll_output`] like any other.
    #[doc(hidden)]
    pub fn adversary_send(&mut self, now: Instant, to: NodeId, addr: SocketAddr, msgs: Vec<Msg>) {
        let mut out = Vec::new();
        self.sessions.send(
            now,
            Some(to),
            addr,
            msgs,
            &mut self.rng,
            &mut self.stats,
            &mut out,
        );
        self.push_transmits(out);
    }
}
