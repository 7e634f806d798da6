//! The run's trace: a rolling hash over every delivered datagram, node event and fault, plus
//! (optionally) the readable records themselves. The same seed gives the same trace.

use std::fmt::Write;

/// Hashes bytes (8 at a time; not cryptographic, only for run comparison).
pub fn hash_bytes(data: &[u8]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64 ^ data.len() as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        h = mix(h ^ u64::from_le_bytes(b));
    }
    let mut tail = 0u64;
    for (i, b) in chunks.remainder().iter().enumerate() {
        tail |= (*b as u64) << (8 * i);
    }
    mix(h ^ tail)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

/// A compact record of the run.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    hash: u64,
    count: u64,
    records: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps only the rolling hash (`keep_records = false`) or also every record.
    pub fn new(keep_records: bool) -> Self {
        Trace {
            hash: 0,
            count: 0,
            records: keep_records.then(Vec::new),
        }
    }

    fn push(&mut self, words: &[u64]) {
        for w in words {
            self.hash = mix(self.hash ^ w).rotate_left(17) ^ self.count;
        }
        self.count += 1;
    }

    /// A datagram delivered at `t_ns` from slot `from` to slot `to`.
    pub fn delivery(&mut self, t_ns: u64, from: usize, to: usize, data: &[u8]) {
        let h = hash_bytes(data);
        self.push(&[1, t_ns, from as u64, to as u64, h]);
        if let Some(r) = &mut self.records {
            r.push(format!(
                "{:.3} dgram {from}->{to} len={} h={h:016x} {}",
                t_ns as f64 / 1e6,
                data.len(),
                crate::metrics::describe_datagram(data)
            ));
        }
    }

    /// An event reported by the node in `slot` (`text` is its short description).
    pub fn event(&mut self, t_ns: u64, slot: usize, text: &str) {
        self.push(&[2, t_ns, slot as u64, hash_bytes(text.as_bytes())]);
        if let Some(r) = &mut self.records {
            r.push(format!("{:.3} event n{slot} {text}", t_ns as f64 / 1e6));
        }
    }

    /// A fault or scripted action.
    pub fn fault(&mut self, t_ns: u64, text: &str) {
        self.push(&[3, t_ns, hash_bytes(text.as_bytes())]);
        if let Some(r) = &mut self.records {
            let mut s = String::new();
            let _ = write!(s, "{:.3} fault {text}", t_ns as f64 / 1e6);
            r.push(s);
        }
    }

    /// The rolling hash of everything recorded so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many records were hashed.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The readable records, when kept.
    pub fn records(&self) -> Option<&[String]> {
        self.records.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_content_and_order() {
        let mut a = Trace::new(true);
        a.delivery(1, 0, 1, b"hello");
        a.fault(2, "crash n1");
        let mut b = Trace::new(false);
        b.delivery(1, 0, 1, b"hello");
        b.fault(2, "crash n1");
        assert_eq!(a.hash(), b.hash());
        let mut c = Trace::new(false);
        c.fault(2, "crash n1");
        c.delivery(1, 0, 1, b"hello");
        assert_ne!(a.hash(), c.hash());
        assert_ne!(hash_bytes(b"hello"), hash_bytes(b"hellp"));
        assert_eq!(a.records().unwrap().len(), 2);
    }
}
