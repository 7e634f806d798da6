//! Wire types of the delivery protocol, carried inside sealed records as
//! [`crate::wire::Msg::Delivery`].
//!
//! One [`Frame`] goes from one node to one peer. It carries the sender's stream id, the
//! sender's *base* (every message to this peer below it is finished: acknowledged or
//! abandoned), an optional acknowledgement of the peer's own stream and any number of data
//! [`Segment`]s. Messages are numbered per peer (`seq`); a message larger than one frame is
//! split into fragments of equal size (the last one shorter) that share its `seq`.
//!
//! Everything here comes from the network and is validated by the receiver; nothing in these
//! types is trusted (lengths, counts, offsets).

use crate::event::RequestId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A delivery frame carried in `Msg::Delivery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The sending engine's stream id (random per engine instance; a change means the sender
    /// restarted and the receiver resets its state for it).
    pub stream: u64,
    /// Every message of this stream to the receiver with `seq < base` is finished
    /// (acknowledged or abandoned); the receiver may skip forward to it.
    pub base: u64,
    /// Acknowledgement of the receiver's stream (piggybacked or alone).
    pub ack: Option<Ack>,
    /// Data segments, each a whole message or one fragment of one.
    pub segs: Vec<Segment>,
    /// The sender has messages waiting for flow-control credit from the receiver (a
    /// *blocked probe*): the receiver answers with an acknowledgement at once, carrying its
    /// current credit, so a lost credit update cannot deadlock the pair.
    pub blocked: bool,
}

/// One run in a delta-coded list of ranges: skip `gap`, then `len` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Items skipped since the end of the previous run (or since the list's origin).
    pub gap: u64,
    /// Items in this run (at least 1 to mean anything).
    pub len: u64,
}

/// Fragments received so far of one incomplete message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialAck {
    /// The message: `seq = Ack::cumulative + off`.
    pub off: u64,
    /// Received fragment indices as runs from fragment 0. Fragments beyond the end of the
    /// last run are "not reported" (the list may be truncated), fragments in gaps are missing.
    pub frags: Vec<Run>,
}

/// Acknowledgement of one stream: cumulative, selective (whole messages) and per fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The acknowledged stream (the data sender's stream id, echoed).
    pub stream: u64,
    /// Increases with every ack the receiver sends to this sender; older acks are not used
    /// for per-fragment information or RTT samples.
    pub serial: u64,
    /// How long the receiver held this ack back, in microseconds (subtracted from RTT).
    pub delay_us: u64,
    /// Every message with `seq < cumulative` was received.
    pub cumulative: u64,
    /// Complete messages above `cumulative`, as runs starting at `cumulative` (final: the
    /// receiver will release them in order). Complete subscription-routed events are not
    /// listed here until their turn comes (they are reported in `partials` meanwhile): only
    /// then does the receiver decide whether it takes them. Skipped ones are not listed
    /// either.
    pub ranges: Vec<Run>,
    /// Incomplete messages and the fragments they have (and complete subscription-routed
    /// events waiting for their turn, with all their fragments).
    pub partials: Vec<PartialAck>,
    /// Where `declined` starts: `cumulative - declined_back`.
    pub declined_back: u64,
    /// Messages below `cumulative` that the receiver did not take: declined
    /// (subscription-routed events whose turn came while it no longer subscribed to their
    /// name) or skipped (tombstones, invalid messages), as runs from
    /// `cumulative - declined_back`. Complete from there up to `cumulative`: a message in
    /// that span not listed was taken. The sender reports the listed ones failed.
    pub declined: Vec<Run>,
    /// Every message with `seq < consumed` was handed to the receiver's application (or not
    /// taken, as listed in `declined`). At most `cumulative`. A taken message's send is
    /// reported delivered only once `consumed` passes it.
    pub consumed: u64,
    /// Flow-control credit in cost units (a message costs its payload length plus
    /// [`MSG_COST`]): the sender may have messages whose costs add up to at most this, from
    /// `consumed` on (received, in flight or new). The sender turns it into an absolute
    /// limit of its own stream (`offset(consumed) + credit`) and keeps the largest one seen,
    /// so a duplicated or reordered ack never lowers it.
    pub credit: u64,
}

/// Flow-control cost of a message beyond its payload bytes (so that many tiny messages also
/// use up credit).
pub const MSG_COST: u64 = 64;

/// What a message is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MsgKind {
    /// A custom event (a request when `request` is set).
    Event {
        /// Event name.
        name: String,
        /// Set when the sender waits for replies.
        request: Option<RequestId>,
        /// Routed by subscription (not to explicit targets): a receiver that is no longer
        /// subscribed to `name` declines it.
        subscribers_only: bool,
    },
    /// A reply to one of the receiver's requests.
    Reply {
        /// The request answered.
        request: RequestId,
    },
    /// Abandoned by the sender (its target unsubscribed): the receiver skips this `seq`.
    Skip,
    /// Gap notice: while the receiver was out of the sender's member view (removed as
    /// failed, then back), the sender published `count` subscription-routed events named
    /// `name` that did not go to the receiver. Reported to the application as
    /// `Event::EventsMissed`. Empty payload.
    Missed {
        /// The event name.
        name: String,
        /// How many events of that name were published meanwhile.
        count: u64,
    },
}

/// Message header, carried by fragment 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Total payload length of the message.
    pub total_len: u32,
    /// What the message is.
    pub kind: MsgKind,
}

/// A whole message or one fragment of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The message: `seq = Frame::base + off`.
    pub off: u64,
    /// Fragment index, `0..frags`.
    pub frag: u32,
    /// Number of fragments of the message (1 when not fragmented).
    pub frags: u32,
    /// The header; present exactly in fragment 0.
    pub head: Option<Head>,
    /// The fragment's bytes. All fragments but the last have the same length.
    #[serde(with = "bytes_serde")]
    pub data: Bytes,
}

/// Decodes a list of runs starting at `origin` into half-open ranges, stopping at the first
/// overflow or after `max` runs. Zero-length runs are skipped.
pub(crate) fn decode_runs(origin: u64, runs: &[Run], max: usize) -> Vec<(u64, u64)> {
    let mut out = Vec::with_capacity(runs.len().min(max));
    let mut at = origin;
    for r in runs.iter().take(max) {
        let Some(start) = at.checked_add(r.gap) else {
            break;
        };
        let Some(end) = start.checked_add(r.len) else {
            break;
        };
        if r.len > 0 {
            out.push((start, end));
        }
        at = end;
    }
    out
}

/// Encoded size of a value (exact, postcard).
pub(crate) fn size_of<T: Serialize>(v: &T) -> usize {
    postcard::experimental::serialized_size(v).unwrap_or(usize::MAX / 4)
}

/// Encoded size of an unsigned varint.
pub(crate) fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Serde for `Bytes` as a postcard byte string (no `serde` feature of `bytes` needed).
mod bytes_serde {
    use bytes::Bytes;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Bytes;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }
        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }
        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            // Growth is driven by elements actually present in the input, never by a claimed
            // length.
            let mut v = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                v.push(b);
            }
            Ok(Bytes::from(v))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_postcard() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            assert_eq!(varint_len(v), size_of(&v), "{v}");
        }
    }

    #[test]
    fn runs_decode_with_overflow_guard() {
        let runs = [
            Run { gap: 1, len: 2 },
            Run { gap: 0, len: 0 },
            Run { gap: 3, len: 1 },
        ];
        assert_eq!(decode_runs(10, &runs, 10), vec![(11, 13), (16, 17)]);
        let bad = [Run {
            gap: u64::MAX,
            len: 5,
        }];
        assert!(decode_runs(10, &bad, 10).is_empty());
        assert_eq!(decode_runs(0, &runs, 1), vec![(1, 3)]);
    }

    #[test]
    fn frame_roundtrip() {
        let f = Frame {
            stream: 7,
            base: 3,
            ack: Some(Ack {
                stream: 9,
                serial: 1,
                delay_us: 5,
                cumulative: 2,
                ranges: vec![Run { gap: 1, len: 1 }],
                partials: vec![PartialAck {
                    off: 0,
                    frags: vec![Run { gap: 0, len: 3 }],
                }],
                declined_back: 2,
                declined: vec![Run { gap: 0, len: 1 }],
                consumed: 1,
                credit: 4096,
            }),
            segs: vec![Segment {
                off: 0,
                frag: 0,
                frags: 1,
                head: Some(Head {
                    total_len: 3,
                    kind: MsgKind::Event {
                        name: "x".into(),
                        request: Some(RequestId(4)),
                        subscribers_only: false,
                    },
                }),
                data: Bytes::from_static(b"abc"),
            }],
            blocked: false,
        };
        let enc = postcard::to_allocvec(&f).unwrap();
        assert_eq!(enc.len(), size_of(&f));
        let dec: Frame = postcard::from_bytes(&enc).unwrap();
        assert_eq!(dec, f);
    }
}
