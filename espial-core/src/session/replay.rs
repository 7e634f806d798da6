//! Sliding replay window over 64-bit record counters (accepts reordering, rejects repeats).

/// Width of the window in counters.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Tracks which counters near the highest one have been seen.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted so far, plus one (0 = none yet).
    top: u64,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: 0,
            bits: [0; WORDS],
        }
    }
}

impl ReplayWindow {
    /// Whether `counter` would be accepted (not yet seen and not too old). Does not record it.
    pub fn check(&self, counter: u64) -> bool {
        if counter == u64::MAX {
            return false;
        }
        if counter >= self.top {
            return true;
        }
        if self.top - counter > WINDOW {
            return false;
        }
        let (w, b) = Self::slot(counter);
        self.bits[w] & (1 << b) == 0
    }

    /// Records `counter` as seen; call only after the record authenticated.
    pub fn accept(&mut self, counter: u64) {
        if counter >= self.top {
            let advance = counter + 1 - self.top;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for c in self.top..=counter {
                    let (w, b) = Self::slot(c);
                    self.bits[w] &= !(1 << b);
                }
            }
            self.top = counter + 1;
        }
        let (w, b) = Self::slot(counter);
        self.bits[w] |= 1 << b;
    }

    fn slot(counter: u64) -> (usize, u32) {
        let i = counter % WINDOW;
        ((i / 64) as usize, (i % 64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_duplicates_and_old() {
        let mut w = ReplayWindow::default();
        assert!(w.check(0));
        w.accept(0);
        assert!(!w.check(0));
        w.accept(5000);
        assert!(!w.check(5000));
        assert!(w.check(4999));
        assert!(!w.check(5000 - WINDOW - 1));
    }

    proptest! {
        #[test]
        fn each_counter_accepted_at_most_once(seq in proptest::collection::vec(0u64..3000, 1..400)) {
            let mut w = ReplayWindow::default();
            let mut seen = std::collections::HashSet::new();
            for c in seq {
                if w.check(c) {
                    prop_assert!(seen.insert(c), "counter {} accepted twice", c);
                    w.accept(c);
                }
            }
        }

        #[test]
        fn reordering_inside_window_accepted_once(base in 0u64..1_000_000, perm in Just((0u64..200).collect::<Vec<_>>()).prop_shuffle()) {
            let mut w = ReplayWindow::default();
            for c in &perm {
                prop_assert!(w.check(base + c));
                w.accept(base + c);
            }
            for c in &perm {
                prop_assert!(!w.check(base + c));
            }
        }
    }
}
