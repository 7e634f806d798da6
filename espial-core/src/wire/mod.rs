//! The wire codec: every datagram starts with a 4-byte header (magic, version, kind).
//!
//! Layout (see `docs/PROTOCOL.md`):
//!
//! ```text
//! 0      2        3      4
//! +------+--------+------+------------------------------------------+
//! | E5 1A| version| kind | body (depends on kind)                   |
//! +------+--------+------+------------------------------------------+
//! kind 1 Beacon    body = postcard(Beacon)                 (clear, optional PSK MAC)
//! kind 2 Hello     body = postcard(Hello) | zero padding   (clear, >= HELLO_MIN_LEN bytes)
//! kind 3 HelloAck  body = postcard(HelloAck)               (clear, carries a key confirmation)
//! kind 5 Cookie    body = postcard(Cookie)                 (clear, answer under load)
//! kind 4 Sealed    body = sender id (16) | epoch (4) | counter (8) | AEAD(postcard(Vec<Msg>))
//!                  the 32 header bytes are the associated data
//! ```
//!
//! Decoding never panics: every failure is a [`DecodeError`] that the caller counts.

mod messages;

pub use messages::*;

use crate::NodeId;
use serde::{de::DeserializeOwned, Serialize};

/// First two bytes of every espial datagram.
pub const MAGIC: [u8; 2] = [0xE5, 0x1A];
/// Protocol version carried in every datagram.
pub const VERSION: u8 = 2;
/// Smallest accepted Hello datagram (header, body, padding and the PSK MAC if any). The
/// initiator pads its Hello to this size so that the HelloAck (which carries a signature)
/// is never larger than the Hello: a forged source address gains no amplification.
pub const HELLO_MIN_LEN: usize = 320;
/// Length of the common header.
pub const HEADER_LEN: usize = 4;
/// Length of a sealed record's clear header (common header + sender + epoch + counter).
pub const SEALED_HEADER_LEN: usize = HEADER_LEN + 16 + 4 + 8;

/// Datagram kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Discovery beacon.
    Beacon = 1,
    /// First handshake message.
    Hello = 2,
    /// Handshake answer.
    HelloAck = 3,
    /// Encrypted record.
    Sealed = 4,
    /// Stateless cookie reply of a responder under load.
    Cookie = 5,
}

/// Why a datagram could not be decoded. The datagram is dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the header of its kind.
    #[error("datagram too short")]
    TooShort,
    /// Not an espial datagram.
    #[error("bad magic")]
    BadMagic,
    /// From an incompatible protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// Unknown kind byte.
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    /// Larger than the configured maximum datagram size.
    #[error("datagram of {0} bytes exceeds the maximum")]
    TooLarge(usize),
    /// The body did not parse.
    #[error("malformed body")]
    Malformed,
}

/// Parses the common header, returning the kind and the body.
pub fn split_header(data: &[u8], max_datagram: usize) -> Result<(Kind, &[u8]), DecodeError> {
    if data.len() > max_datagram {
        return Err(DecodeError::TooLarge(data.len()));
    }
    if data.len() < HEADER_LEN {
        return Err(DecodeError::TooShort);
    }
    if data[0..2] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if data[2] != VERSION {
        return Err(DecodeError::Version(data[2]));
    }
    let kind = match data[3] {
        1 => Kind::Beacon,
        2 => Kind::Hello,
        3 => Kind::HelloAck,
        4 => Kind::Sealed,
        5 => Kind::Cookie,
        k => return Err(DecodeError::UnknownKind(k)),
    };
    Ok((kind, &data[HEADER_LEN..]))
}

/// Writes the common header for `kind` into a new buffer with room for `capacity` bytes.
pub fn start_datagram(kind: Kind, capacity: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(capacity.max(HEADER_LEN));
    v.extend_from_slice(&MAGIC);
    v.push(VERSION);
    v.push(kind as u8);
    v
}

/// Encodes a clear message (beacon or handshake) as a complete datagram.
pub fn encode_clear<T: Serialize>(kind: Kind, body: &T) -> Vec<u8> {
    let mut v = start_datagram(kind, 128);
    // Serializing our own types to a Vec cannot fail.
    let body = postcard::to_allocvec(body).unwrap_or_default();
    v.extend_from_slice(&body);
    v
}

/// Decodes a clear message body. Bytes after the encoded value (a Hello's padding) are
/// ignored.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(body).map_err(|_| DecodeError::Malformed)
}

/// Encodes a Hello datagram padded with zeros to `HELLO_MIN_LEN - extra` bytes (`extra` is
/// the length of a MAC the caller appends).
pub fn encode_hello(hello: &Hello, extra: usize) -> Vec<u8> {
    let mut v = encode_clear(Kind::Hello, hello);
    let target = HELLO_MIN_LEN.saturating_sub(extra);
    if v.len() < target {
        v.resize(target, 0);
    }
    v
}

/// The clear header of a sealed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedHeader {
    /// The sending node.
    pub sender: NodeId,
    /// Which session (key epoch) sealed it.
    pub epoch: u32,
    /// The record counter (AEAD nonce).
    pub counter: u64,
}

impl SealedHeader {
    /// Writes the complete 32-byte clear header of a sealed record.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(Kind::Sealed as u8);
        out.extend_from_slice(&self.sender.to_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
    }

    /// Parses the part after the common header; returns the header and the ciphertext.
    pub fn parse(body: &[u8]) -> Result<(SealedHeader, &[u8]), DecodeError> {
        if body.len() < SEALED_HEADER_LEN - HEADER_LEN {
            return Err(DecodeError::TooShort);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&body[0..16]);
        let mut epoch = [0u8; 4];
        epoch.copy_from_slice(&body[16..20]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&body[20..28]);
        Ok((
            SealedHeader {
                sender: NodeId(u128::from_be_bytes(id)),
                epoch: u32::from_be_bytes(epoch),
                counter: u64::from_be_bytes(counter),
            },
            &body[28..],
        ))
    }
}

/// Encodes a batch of messages as a sealed record's plaintext.
pub fn encode_msgs(msgs: &[Msg]) -> Vec<u8> {
    postcard::to_allocvec(msgs).unwrap_or_default()
}

/// Decodes a sealed record's plaintext.
pub fn decode_msgs(plain: &[u8]) -> Result<Vec<Msg>, DecodeError> {
    postcard::from_bytes(plain).map_err(|_| DecodeError::Malformed)
}

/// Encoded size of any wire value (parts of messages, e.g. digest records).
pub fn encoded_size<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::experimental::serialized_size(value).unwrap_or(usize::MAX / 2)
}

/// Encoded size of one message (used to fill datagrams up to the limit).
pub fn msg_size(msg: &Msg) -> usize {
    postcard::experimental::serialized_size(msg).unwrap_or(usize::MAX / 2)
}

#[cfg(test)]
mod tests;
