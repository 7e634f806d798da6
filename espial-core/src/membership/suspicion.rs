//! Lifeguard suspicion timing: a suspicion starts at the longest timeout and shrinks as
//! *independent* members confirm it.
//!
//! A confirmation is counted once per distinct **authenticated sender** (the peer whose
//! sealed record carried the `Suspect` or `Dead`, or the local node after its own failed
//! probe), never per name inside a payload, and never for the first accuser. So one member,
//! however many names it writes into `by` fields, can only shorten a suspicion once.

use crate::config::Config;
use crate::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Upper bound on confirmations remembered per suspicion (more cannot shorten it further).
const MAX_CONFIRMERS: usize = 64;

/// One suspicion's confirmations.
#[derive(Debug, Clone)]
struct Timer {
    start: Instant,
    incarnation: u64,
    first: NodeId,
    confirmers: BTreeSet<NodeId>,
}

/// Confirmations of the current suspicions.
#[derive(Debug, Default)]
pub struct Suspicions {
    timers: BTreeMap<NodeId, Timer>,
}

impl Suspicions {
    /// A suspicion of `id` at `incarnation` started at `now`, first raised by `first`.
    pub fn start(&mut self, now: Instant, id: NodeId, incarnation: u64, first: NodeId) {
        self.timers.insert(
            id,
            Timer {
                start: now,
                incarnation,
                first,
                confirmers: BTreeSet::new(),
            },
        );
    }

    /// `from` confirms the suspicion of `id` at `incarnation`. Returns the deadline the
    /// suspicion should now have when this was a new independent confirmation (the caller
    /// moves the deadline earlier only), `None` otherwise.
    pub fn confirm(
        &mut self,
        config: &Config,
        n: usize,
        id: NodeId,
        incarnation: u64,
        from: NodeId,
    ) -> Option<Instant> {
        let t = self.timers.get_mut(&id)?;
        if incarnation < t.incarnation || from == t.first || t.confirmers.len() >= MAX_CONFIRMERS {
            return None;
        }
        if !t.confirmers.insert(from) {
            return None;
        }
        let c = t.confirmers.len() as u32;
        Some(t.start + config.suspicion_timeout_after(n, c))
    }

    /// Independent confirmations of the suspicion of `id` so far.
    pub fn confirmations(&self, id: NodeId) -> usize {
        self.timers.get(&id).map_or(0, |t| t.confirmers.len())
    }

    /// Forgets suspicions for which `keep` is false (no longer suspected).
    pub fn retain(&mut self, mut keep: impl FnMut(NodeId) -> bool) {
        self.timers.retain(|id, _| keep(*id));
    }

    /// Forgets the suspicion of `id`.
    pub fn remove(&mut self, id: NodeId) {
        self.timers.remove(&id);
    }
}

/// The timeout a new suspicion starts with: the longest one.
pub fn start_timeout(config: &Config, n: usize) -> Duration {
    config.suspicion_timeout_after(n, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_starts_at_max_and_shrinks_to_min_with_k_confirmations() {
        let c = Config::lan();
        let n = 50;
        let (min, max) = (c.suspicion_timeout(n), c.suspicion_max_timeout(n));
        assert_eq!(start_timeout(&c, n), max);
        let mut last = max;
        for k in 1..=c.suspicion_confirmations {
            let t = c.suspicion_timeout_after(n, k);
            assert!(t < last && t >= min, "{k}: {t:?}");
            last = t;
        }
        assert_eq!(last, min);
        // Too few members to confirm: the minimum at once.
        assert_eq!(c.suspicion_timeout_after(2, 0), c.suspicion_timeout(2));
    }

    #[test]
    fn one_sender_confirms_once_whatever_names_it_uses_and_the_accuser_never() {
        let c = Config::lan();
        let now = Instant::now();
        let mut s = Suspicions::default();
        let (x, accuser, liar) = (NodeId(9), NodeId(1), NodeId(2));
        s.start(now, x, 4, accuser);
        assert_eq!(s.confirm(&c, 50, x, 4, accuser), None, "first accuser");
        let d = s.confirm(&c, 50, x, 4, liar).expect("new confirmation");
        assert_eq!(d, now + c.suspicion_timeout_after(50, 1));
        // The liar relays suspicions "by" many names: still one authenticated sender.
        for _ in 0..10 {
            assert_eq!(s.confirm(&c, 50, x, 4, liar), None);
        }
        assert_eq!(s.confirmations(x), 1);
        assert_eq!(
            s.confirm(&c, 50, x, 3, NodeId(3)),
            None,
            "older incarnation"
        );
    }
}
