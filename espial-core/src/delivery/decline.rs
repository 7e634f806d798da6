//! Receive side: the messages of one sender stream that were not taken at their turn
//! (declined subscription-routed events whose name the local node no longer subscribes to,
//! and skipped ones), remembered until the sender's base passes them so that every
//! acknowledgement covering them can report them (acknowledgements may be lost).

use std::collections::BTreeSet;

/// Declined sequence numbers at or above `floor` (complete: every declined message at or
/// above `floor` is listed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Declined {
    floor: u64,
    seqs: BTreeSet<u64>,
}

impl Declined {
    /// Nothing declined at or above `floor`.
    pub(crate) fn new(floor: u64) -> Self {
        Declined {
            floor,
            seqs: BTreeSet::new(),
        }
    }

    /// Where the list starts.
    pub(crate) fn floor(&self) -> u64 {
        self.floor
    }

    /// The sender's base reached `base`: everything below is finished there, so it need not
    /// be reported any more.
    pub(crate) fn note_base(&mut self, base: u64) {
        if base <= self.floor {
            return;
        }
        self.floor = base;
        self.seqs = self.seqs.split_off(&base);
    }

    /// Records a declined message. At most `cap` are kept (an honest sender has at most a
    /// window of unfinished messages); beyond that the oldest is forgotten and the floor
    /// moves above it.
    pub(crate) fn insert(&mut self, seq: u64, cap: usize) {
        if seq < self.floor {
            return;
        }
        self.seqs.insert(seq);
        while self.seqs.len() > cap.max(1) {
            if let Some(s) = self.seqs.pop_first() {
                self.floor = self.floor.max(s.saturating_add(1));
            }
        }
    }

    /// Declined messages in `[from, to)` as half-open runs of consecutive numbers.
    pub(crate) fn runs(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        if from >= to {
            return out;
        }
        for &s in self.seqs.range(from..to) {
            match out.last_mut() {
                Some((_, e)) if *e == s => *e = s + 1,
                _ => out.push((s, s + 1)),
            }
        }
        out
    }

    /// Number of remembered declined messages.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seqs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_floor_and_cap() {
        let mut d = Declined::new(10);
        for s in [9, 10, 11, 13, 14, 20] {
            d.insert(s, 100);
        }
        assert_eq!(d.runs(0, 100), vec![(10, 12), (13, 15), (20, 21)]);
        assert_eq!(d.runs(11, 14), vec![(11, 12), (13, 14)]);
        d.note_base(13);
        assert_eq!(d.floor(), 13);
        assert_eq!(d.runs(0, 100), vec![(13, 15), (20, 21)]);
        d.insert(21, 2);
        assert_eq!(d.len(), 2);
        assert_eq!(d.floor(), 15);
        assert_eq!(d.runs(0, 100), vec![(20, 22)]);
        d.note_base(5);
        assert_eq!(d.floor(), 15);
    }
}
