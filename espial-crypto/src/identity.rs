//! Ed25519 static identity keys.

use crate::error::CryptoConfigError;
use crate::primitives::sha256;
use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use espial_core::cipher::CryptoError;
use espial_core::NodeId;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The bytes an identity signature covers: `domain || 0x00 || msg`. Every purpose has its
/// own domain string (`espial_core::cipher::DOMAIN_*`), so a signature made for one purpose
/// (a handshake transcript) can never be mistaken for another (a statement about a member).
fn signed_bytes(domain: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + msg.len());
    m.extend_from_slice(domain);
    m.push(0);
    m.extend_from_slice(msg);
    m
}

/// A node's static Ed25519 identity key. Cheap to clone (shared).
///
/// Its public key identifies the node ([`node_id_from_public_key`]) and is shown, verified,
/// to the admission filter. Store it with [`IdentityKey::to_pkcs8`] to keep the same
/// identity (and node id) across restarts; session keys still rotate on every restart.
#[derive(Clone)]
pub struct IdentityKey {
    pair: Arc<Ed25519KeyPair>,
    pkcs8: Arc<Zeroizing<Vec<u8>>>,
}

impl IdentityKey {
    /// A new random identity key (OS randomness).
    pub fn generate() -> Result<Self, CryptoConfigError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| {
            CryptoConfigError::new(
                "could not generate an Ed25519 identity key (system randomness failed)",
            )
        })?;
        Self::from_pair(pair)
    }

    /// Loads an identity key from an unencrypted PKCS#8 (v1 or v2) Ed25519 document, as
    /// written by [`IdentityKey::to_pkcs8`] or `openssl genpkey -algorithm ED25519 -outform DER`.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, CryptoConfigError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| {
            CryptoConfigError::new(format!(
                "not a valid PKCS#8 Ed25519 private key ({e}); give the DER bytes written by IdentityKey::to_pkcs8 or `openssl genpkey -algorithm ED25519 -outform DER`"
            ))
        })?;
        Self::from_pair(pair)
    }

    /// An identity key from a 32-byte Ed25519 seed (RFC 8032 private key). Anyone holding
    /// the seed holds the identity: derive it from a secret, never from a counter.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, CryptoConfigError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| CryptoConfigError::new(format!("invalid Ed25519 seed ({e})")))?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: Ed25519KeyPair) -> Result<Self, CryptoConfigError> {
        let doc = pair.to_pkcs8().map_err(|_| {
            CryptoConfigError::new("could not encode the Ed25519 identity key as PKCS#8")
        })?;
        Ok(IdentityKey {
            pair: Arc::new(pair),
            pkcs8: Arc::new(Zeroizing::new(doc.as_ref().to_vec())),
        })
    }

    /// The private key as a PKCS#8 v2 DER document. **Secret**: store it like a password.
    pub fn to_pkcs8(&self) -> Vec<u8> {
        self.pkcs8.to_vec()
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The node id this key implies ([`node_id_from_public_key`]).
    pub fn node_id(&self) -> NodeId {
        node_id_from_public_key(self.pair.public_key().as_ref())
    }

    /// Signs `msg` for the purpose `domain` (64 bytes; Ed25519 over `domain || 0 || msg`).
    pub fn sign(&self, domain: &[u8], msg: &[u8]) -> Vec<u8> {
        // Ed25519 signing is deterministic and cannot fail for a valid key pair.
        self.pair
            .try_sign(&signed_bytes(domain, msg))
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("node_id", &self.node_id())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The node id implied by an identity public key: the first 16 bytes of SHA-256(pk),
/// big-endian.
///
/// ```
/// use espial_crypto::{node_id_from_public_key, IdentityKey};
/// let key = IdentityKey::from_seed(&[7; 32]).unwrap();
/// assert_eq!(node_id_from_public_key(&key.public_key()), key.node_id());
/// ```
pub fn node_id_from_public_key(pk: &[u8]) -> NodeId {
    let digest = sha256(pk);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    NodeId(u128::from_be_bytes(id))
}

/// Verifies an identity signature made by [`IdentityKey::sign`] for `domain`.
pub fn verify_identity(
    public_key: &[u8],
    domain: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CryptoError> {
    if public_key.len() != 32 || sig.len() != 64 {
        return Err(CryptoError::BadSignature);
    }
    UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(&signed_bytes(domain, msg), sig)
        .map_err(|_| CryptoError::BadSignature)
}
