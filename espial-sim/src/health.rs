//! Which nodes are *healthy*, for the step-level invariant "no healthy node is removed by a
//! healthy node" (issue 11).
//!
//! Definition. A slot is **faulted** while a fault acts on it, and for [`Health::window`]
//! after the fault ends (a verdict formed during the fault may still be on its way). The
//! faults that act on a slot are:
//! - a pause, a slow-processing period ([`crate::Action::Slow`]) or a crash of that slot;
//!   a restarted or newly booted node counts as faulted for the window after its start;
//! - a partition that puts the slot outside the unique largest group (with a tie between
//!   the largest groups, every slot is faulted);
//! - a cut directed link of which the slot is an end (one-way faults);
//! - a loss burst set with [`crate::Action::SetLoss`] (every slot: it is cluster-wide).
//!   Loss configured for the whole run (`NetConfig::loss`, the `loss` scenario) is not a
//!   fault: the protocol must not remove live nodes under it.
//!
//! A slot is **healthy** at `t` when it is not faulted at `t`. The invariant: at every step,
//! when a running node in a healthy slot emits `removed_node` with reason `failed` for the
//! current id of a running, healthy slot, that is a violation.

use std::collections::BTreeSet;

/// Default window after a fault during which a slot still counts as faulted.
pub const DEFAULT_WINDOW_MS: u64 = 10_000;

/// Marks `u64::MAX`: the fault is still acting.
const ONGOING: u64 = u64::MAX;

/// The fault ledger of a run (times in ns of simulated time).
#[derive(Debug, Clone)]
pub struct Health {
    /// Per slot: when its latest fault ended (`ONGOING` while it acts; 0 = never).
    until: Vec<u64>,
    /// Slots faulted by the current partition or cut links (cleared by a heal).
    partitioned: BTreeSet<usize>,
    /// End of the latest cluster-wide fault (loss burst).
    global_until: u64,
    /// The current partition faults group 0, where slots started later land.
    group0_faulted: bool,
    /// How long after a fault a slot still counts as faulted (ns).
    pub window: u64,
    /// Violations found ("healthy removed healthy").
    pub false_removals: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            until: Vec::new(),
            partitioned: BTreeSet::new(),
            global_until: 0,
            group0_faulted: false,
            window: DEFAULT_WINDOW_MS * 1_000_000,
            false_removals: 0,
        }
    }
}

impl Health {
    fn slot(&mut self, s: usize) -> &mut u64 {
        if self.until.len() <= s {
            self.until.resize(s + 1, 0);
        }
        &mut self.until[s]
    }

    /// A fault starts acting on `slot` now and lasts until [`Health::end`].
    pub fn start(&mut self, slot: usize) {
        *self.slot(slot) = ONGOING;
    }

    /// The fault on `slot` ends at `now` (ns).
    pub fn end(&mut self, slot: usize, now: u64) {
        *self.slot(slot) = now;
    }

    /// A fault acts on `slot` until `end` (ns), e.g. a pause of known length.
    pub fn until(&mut self, slot: usize, end: u64) {
        let u = self.slot(slot);
        if *u != ONGOING {
            *u = (*u).max(end);
        }
    }

    /// A cluster-wide fault starts (`on`) or ends at `now`.
    pub fn global(&mut self, on: bool, now: u64) {
        self.global_until = if on {
            ONGOING
        } else if self.global_until == ONGOING {
            now
        } else {
            self.global_until
        };
    }

    /// A partition into `groups` (slot lists; unlisted slots of `0..n` join the first).
    pub fn partition(&mut self, groups: &[Vec<usize>], n: usize, now: u64) {
        self.heal(now);
        let mut group_of = vec![0usize; n];
        for (g, members) in groups.iter().enumerate() {
            for &s in members {
                if s < n {
                    group_of[s] = g;
                }
            }
        }
        let mut sizes = vec![0usize; groups.len().max(1)];
        for &g in &group_of {
            sizes[g] += 1;
        }
        let max = sizes.iter().copied().max().unwrap_or(0);
        let unique = sizes.iter().filter(|&&c| c == max).count() == 1;
        for (s, &g) in group_of.iter().enumerate() {
            if !(unique && sizes[g] == max) {
                self.partitioned.insert(s);
                self.start(s);
            }
        }
        self.group0_faulted = !(unique && sizes[0] == max);
    }

    /// A slot created now (a joiner) lands in group 0 of the current partition.
    pub fn new_slot(&mut self, slot: usize) {
        if self.group0_faulted {
            self.partitioned.insert(slot);
            self.start(slot);
        }
    }

    /// The directed link `a → b` is cut: both ends are faulted until the heal.
    pub fn cut(&mut self, a: usize, b: usize) {
        for s in [a, b] {
            self.partitioned.insert(s);
            self.start(s);
        }
    }

    /// Every partition and cut link is removed at `now`.
    pub fn heal(&mut self, now: u64) {
        self.group0_faulted = false;
        for s in std::mem::take(&mut self.partitioned) {
            self.end(s, now);
        }
    }

    /// Whether `slot` is healthy at `now` (see the module doc).
    pub fn healthy(&self, slot: usize, now: u64) -> bool {
        let recent =
            |end: u64| end == ONGOING || (end > 0 && now < end.saturating_add(self.window));
        let own = self.until.get(slot).copied().unwrap_or(0);
        !recent(own) && !recent(self.global_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minority_and_ties_are_faulted_for_the_window() {
        let mut h = Health {
            window: 100,
            ..Health::default()
        };
        h.partition(&[vec![0, 1, 2], vec![3, 4]], 5, 10);
        assert!(h.healthy(0, 20) && !h.healthy(3, 20));
        h.heal(50);
        assert!(!h.healthy(3, 149) && h.healthy(3, 150));
        h.partition(&[vec![0], vec![1, 2]], 3, 60);
        h.new_slot(4);
        assert!(!h.healthy(4, 70), "a joiner lands in the minority group 0");
        h.heal(80);
        h.partition(&[vec![0, 1], vec![2, 3]], 4, 200);
        assert!(
            (0..4).all(|s| !h.healthy(s, 210)),
            "a tie faults both sides"
        );
        h.heal(300);
        h.global(true, 400);
        assert!(!h.healthy(0, 1_000));
        h.global(false, 1_000);
        assert!(!h.healthy(0, 1_099) && h.healthy(0, 1_100));
    }

    #[test]
    fn timed_faults_extend_but_never_shorten_an_ongoing_one() {
        let mut h = Health {
            window: 10,
            ..Health::default()
        };
        h.until(2, 100);
        assert!(!h.healthy(2, 105) && h.healthy(2, 110));
        h.start(2);
        h.until(2, 50);
        assert!(!h.healthy(2, 10_000));
    }
}
