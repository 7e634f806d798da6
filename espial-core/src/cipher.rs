//! The `Cipher` trait: the cryptographic primitives the core's session layer uses.
//!
//! The core runs the handshake and record state machines (`session` module): transcripts,
//! counters, replay windows, rekeying. A `Cipher` only provides primitives: an ephemeral key
//! exchange that derives two directional AEAD keys from a transcript, optional identity
//! signatures, and beacon MACs. `espial-crypto` implements it with aws-lc-rs;
//! [`PlaintextTestCipher`] is a transparent stand-in **for tests and simulation only**.

use crate::NodeId;
use std::fmt;

/// A cryptographic failure. The packet that caused it is dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Authentication tag mismatch (tampering, wrong key or wrong pre-shared key).
    #[error("authentication failed")]
    BadTag,
    /// A peer's key share has the wrong length or is invalid.
    #[error("invalid key share")]
    BadKeyShare,
    /// An identity signature did not verify.
    #[error("identity signature did not verify")]
    BadSignature,
    /// Input too short or malformed for the primitive.
    #[error("malformed input")]
    Malformed,
    /// The primitive failed internally.
    #[error("crypto primitive failed")]
    Internal,
}

/// Which side of a handshake we are; decides which derived key seals and which opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sent the `Hello`.
    Initiator,
    /// Answered it.
    Responder,
}

/// One direction's authenticated cipher with a 64-bit counter nonce supplied by the caller.
pub trait Aead: Send {
    /// Encrypts `in_out` in place and appends the tag. `nonce` must never repeat for a key.
    fn seal(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError>;
    /// Verifies and decrypts `in_out` in place (the tag is removed).
    fn open(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError>;
    /// Tag length in bytes.
    fn tag_len(&self) -> usize;
}

/// Keys derived by a completed exchange.
pub struct SessionKeys {
    /// Seals what we send.
    pub send: Box<dyn Aead>,
    /// Opens what we receive.
    pub recv: Box<dyn Aead>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<secret>)")
    }
}

/// An ephemeral key exchange in progress (one per handshake attempt).
pub trait KeyExchange: Send {
    /// Our public share, sent in the clear in the handshake.
    fn public_share(&self) -> &[u8];
    /// Derives directional keys from the peer's share and the handshake transcript
    /// (which binds protocol version, both node ids and both shares). A pre-shared
    /// key, when the cipher has one, is mixed in here.
    fn complete(
        self: Box<Self>,
        peer_share: &[u8],
        transcript: &[u8],
        role: Role,
    ) -> Result<SessionKeys, CryptoError>;
}

/// Domain string of the handshake transcript signature (see `docs/PROTOCOL.md`).
pub const DOMAIN_HANDSHAKE: &[u8] = b"espial handshake v2";
/// Domain string of a member's signed `Alive` entry.
pub const DOMAIN_ALIVE: &[u8] = b"espial alive v2";
/// Domain string of a member's signed `Left` statement.
pub const DOMAIN_LEFT: &[u8] = b"espial left v2";
/// Domain string of a master's signed claim.
pub const DOMAIN_CLAIM: &[u8] = b"espial claim v2";

/// Factory for key exchanges, plus the node's static identity key and beacon authentication.
///
/// Every node has a static identity key; its [`NodeId`] is derived from the public key
/// ([`Cipher::node_id_for`]), so an id can only be used by the holder of the private key:
/// the handshake proves it and statements about a node are signed with it.
pub trait Cipher: Send {
    /// Short name of the suite, e.g. `"aes128gcm"`.
    fn suite(&self) -> &'static str;
    /// Starts a fresh ephemeral key exchange.
    fn start_exchange(&mut self) -> Box<dyn KeyExchange>;
    /// Our static identity public key (always present).
    fn identity_public_key(&self) -> Vec<u8>;
    /// The node id a public key implies; `None` when the bytes are not a valid key.
    fn node_id_for(&self, public_key: &[u8]) -> Option<NodeId>;
    /// Our own node id: the one our identity key implies.
    fn node_id(&self) -> NodeId {
        self.node_id_for(&self.identity_public_key())
            .unwrap_or_default()
    }
    /// Signs `msg` with our identity key under a purpose `domain` (one of the `DOMAIN_*`
    /// constants), so a signature made for one purpose never verifies for another.
    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8>;
    /// Verifies a signature made by [`Cipher::sign`] with the key `public_key`.
    fn verify(
        &self,
        public_key: &[u8],
        domain: &[u8],
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError>;
    /// MAC over a discovery beacon under the cluster pre-shared key (`None` without a PSK).
    fn beacon_mac(&self, _beacon: &[u8]) -> Option<[u8; 16]> {
        None
    }
    /// Whether a beacon MAC is valid; `true` when no pre-shared key is configured.
    fn verify_beacon(&self, _beacon: &[u8], _mac: Option<&[u8; 16]>) -> bool {
        true
    }
}

/// **Tests and simulation only: provides no confidentiality.** A transparent cipher whose
/// "keys" are a checksum of the transcript, so records still fail to open when the
/// transcript differs or bytes are flipped. Never the default of anything public.
///
/// Its identity is a *test* identity: the "public key" is the node id followed by a
/// checksum, and "signatures" are a checksum anyone could compute. Honest simulated nodes
/// only sign for their own key; an adversary in a test must be written not to forge (use
/// `AesGcmCipher` from `espial-crypto` when forgery itself is under test).
///
/// ```
/// use espial_core::{Cipher, NodeId, PlaintextTestCipher};
/// let c = PlaintextTestCipher::for_node(NodeId(7));
/// assert_eq!(c.node_id(), NodeId(7));
/// let sig = c.sign(b"d", b"m");
/// assert!(c.verify(&c.identity_public_key(), b"d", b"m", &sig).is_ok());
/// assert!(c.verify(&c.identity_public_key(), b"d", b"other", &sig).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct PlaintextTestCipher {
    counter: u64,
    id: NodeId,
}

impl PlaintextTestCipher {
    /// A test cipher whose identity is `id`.
    pub fn for_node(id: NodeId) -> Self {
        PlaintextTestCipher { counter: 0, id }
    }

    /// The test "public key" of `id`: 16 id bytes and an 8-byte checksum of them.
    pub fn public_key_of(id: NodeId) -> Vec<u8> {
        let mut pk = id.to_bytes().to_vec();
        pk.extend_from_slice(&fnv(&id.to_bytes(), 0x1d).to_le_bytes());
        pk
    }

    fn test_signature(public_key: &[u8], domain: &[u8], msg: &[u8]) -> Vec<u8> {
        let seed = fnv(public_key, fnv(domain, 0x5e));
        let a = fnv(msg, seed);
        let b = fnv(msg, seed ^ 0xffff);
        [a.to_le_bytes(), b.to_le_bytes()].concat()
    }
}

struct TestExchange {
    share: Vec<u8>,
}

struct TestAead {
    key: u64,
}

fn fnv(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Aead for TestAead {
    fn seal(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let tag = fnv(in_out, fnv(aad, self.key ^ nonce));
        in_out.extend_from_slice(&tag.to_le_bytes());
        Ok(())
    }
    fn open(&self, nonce: u64, aad: &[u8], in_out: &mut Vec<u8>) -> Result<(), CryptoError> {
        if in_out.len() < 8 {
            return Err(CryptoError::Malformed);
        }
        let split = in_out.len() - 8;
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&in_out[split..]);
        in_out.truncate(split);
        if fnv(in_out, fnv(aad, self.key ^ nonce)) != u64::from_le_bytes(tag) {
            return Err(CryptoError::BadTag);
        }
        Ok(())
    }
    fn tag_len(&self) -> usize {
        8
    }
}

impl KeyExchange for TestExchange {
    fn public_share(&self) -> &[u8] {
        &self.share
    }
    fn complete(
        self: Box<Self>,
        peer_share: &[u8],
        transcript: &[u8],
        role: Role,
    ) -> Result<SessionKeys, CryptoError> {
        if peer_share.len() != 8 {
            return Err(CryptoError::BadKeyShare);
        }
        let base = fnv(transcript, 7);
        let i2r = Box::new(TestAead { key: base ^ 1 });
        let r2i = Box::new(TestAead { key: base ^ 2 });
        Ok(match role {
            Role::Initiator => SessionKeys {
                send: i2r,
                recv: r2i,
            },
            Role::Responder => SessionKeys {
                send: r2i,
                recv: i2r,
            },
        })
    }
}

impl Cipher for PlaintextTestCipher {
    fn suite(&self) -> &'static str {
        "test-plaintext"
    }
    fn identity_public_key(&self) -> Vec<u8> {
        Self::public_key_of(self.id)
    }
    fn node_id_for(&self, public_key: &[u8]) -> Option<NodeId> {
        let bytes: [u8; 16] = public_key.get(..16)?.try_into().ok()?;
        let id = NodeId(u128::from_be_bytes(bytes));
        (Self::public_key_of(id) == public_key).then_some(id)
    }
    fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        Self::test_signature(&self.identity_public_key(), domain, msg)
    }
    fn verify(
        &self,
        public_key: &[u8],
        domain: &[u8],
        msg: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        if Self::test_signature(public_key, domain, msg) == signature {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
    fn start_exchange(&mut self) -> Box<dyn KeyExchange> {
        self.counter += 1;
        Box::new(TestExchange {
            share: self.counter.to_le_bytes().to_vec(),
        })
    }
}
